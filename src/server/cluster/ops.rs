//! What a cluster node asks of Redis: fan-out, membership, unread lists, presence, send-id
//! dedupe and socket leases, and the re-registration after the subscription came back.

use std::sync::Arc;

use bytes::Bytes;
use redis::{AsyncCommands, ScriptInvocation};
use tracing::debug;

use super::route::BusMessage;
use super::{conns_key, members_key, ms, session_key, Cluster, CHANNEL};
use crate::protocol::ErrorBody;
use crate::server::broker::Unavailable;
use crate::server::clock::now_ms;
use crate::server::dedupe::{Scope, WINDOW};
use crate::server::handlers::{ack_frame, expired_ack, is_unavailable, Caller, Outcome};
use crate::server::hub::Hub;
use crate::server::session::SessionCell;
use crate::server::users::MAX_UNREAD_PER_USER;

/// How long a claimed send id stays claimed if its node dies before recording the ack.
const CLAIM_LEASE_MS: u64 = 10_000;
/// How long a client is told to wait when another socket of its client is processing the id.
const PENDING_RETRY_MS: u64 = 200;

/// What Redis knows of a send id.
enum Claim {
    Ack(String),
    Expired,
    Pending,
    New,
}

/// A send being processed in a cluster: its pair's key, its id, and the ack text to keep if
/// it succeeds (empty for the plain ok).
pub(crate) struct SendRecord<'a> {
    key: &'a str,
    id: u64,
    ack: String,
}

impl<'a> SendRecord<'a> {
    /// What to record for the send `id` of the pair `key` if it ends with `outcome`.
    pub(crate) fn new(key: &'a str, id: u64, outcome: &Outcome) -> Self {
        let ack = match outcome {
            Ok(None) => String::new(),
            outcome => ack_frame(id, outcome.clone()),
        };
        SendRecord { key, id, ack }
    }
}

/// `sl:d:{user length}:{user}:{scope}`: a pair's memory (the length keeps users containing
/// `:` apart from scopes).
fn pair_key(user: &str, scope: &Scope) -> String {
    match scope {
        Scope::Client(client) => format!("sl:d:{}:{user}:c:{client}", user.len()),
        Scope::Session(session) => format!("sl:d:{}:{user}:s:{session}", user.len()),
    }
}

impl Cluster {
    pub(super) fn down<T>(&self, result: redis::RedisResult<T>) -> Result<T, Unavailable> {
        result.map_err(|e| {
            debug!(node = %self.node, error = %e, "Redis call failed");
            self.failed(&e);
            Unavailable
        })
    }

    /// A durable event to every session of `dest` on every node; how many sessions. With
    /// `send`, the send it carries out is recorded in the same script (see `FANOUT`).
    pub(crate) async fn fanout(
        &self,
        dest: &str,
        tail: &Bytes,
        send: Option<&SendRecord<'_>>,
    ) -> Result<usize, Unavailable> {
        let tail = String::from_utf8_lossy(tail);
        let mut script = self.scripts.fanout.key(members_key(dest));
        script
            .arg(&*tail)
            .arg(self.replay_max)
            .arg(ms(self.replay_age).max(1))
            .arg(CHANNEL)
            .arg(now_ms())
            .arg("");
        if let Some(send) = send {
            self.record_args(&mut script, send);
        }
        let result = script.invoke_async::<usize>(&mut self.conn()).await;
        self.down(result)
    }

    /// A volatile event to the members of `room` attached now, on every node.
    pub(crate) async fn publish_volatile(
        &self,
        room: &str,
        tail: &Bytes,
        except_user: Option<&str>,
        max_members: Option<usize>,
    ) -> Result<(), Unavailable> {
        if max_members == Some(0) {
            return Ok(());
        }
        let message = BusMessage::Volatile {
            dest: room.to_owned(),
            tail: String::from_utf8_lossy(tail).into_owned(),
            except: except_user.map(str::to_owned),
        };
        let result = self
            .scripts
            .volatile
            .key(members_key(room))
            .arg(CHANNEL)
            .arg(message.encode())
            .arg(max_members.unwrap_or(0))
            .invoke_async::<u8>(&mut self.conn())
            .await;
        self.down(result).map(|_| ())
    }

    /// `session` joined `room`.
    pub(crate) async fn joined(
        &self,
        session: &SessionCell,
        room: &str,
    ) -> Result<(), Unavailable> {
        let id = session.id.to_string();
        let rooms = format!("{}:rooms", session_key(&id));
        let ttl = i64::try_from(ms(self.replay_age + self.lease)).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.sadd(members_key(room), &id).ignore();
        pipe.sadd(&rooms, room).ignore();
        pipe.pexpire(&rooms, ttl).ignore();
        let result = pipe.query_async::<()>(&mut self.conn()).await;
        self.down(result)
    }

    /// `session` left `room`.
    pub(crate) async fn left(&self, session: &SessionCell, room: &str) -> Result<(), Unavailable> {
        let id = session.id.to_string();
        let mut pipe = redis::pipe();
        pipe.srem(members_key(room), &id).ignore();
        pipe.srem(format!("{}:rooms", session_key(&id)), room)
            .ignore();
        let result = pipe.query_async::<()>(&mut self.conn()).await;
        self.down(result)
    }

    pub(crate) async fn unread_add(&self, user: &str, id: &str) -> Result<(), Unavailable> {
        let result = self
            .scripts
            .unread_add
            .key(format!("sl:un:{user}"))
            .arg(id)
            .arg(MAX_UNREAD_PER_USER)
            .invoke_async::<u8>(&mut self.conn())
            .await;
        self.down(result).map(|_| ())
    }

    pub(crate) async fn unread_remove(&self, user: &str, id: &str) -> Result<usize, Unavailable> {
        let result = self
            .scripts
            .unread_remove
            .key(format!("sl:un:{user}"))
            .arg(id)
            .invoke_async::<usize>(&mut self.conn())
            .await;
        self.down(result)
    }

    pub(crate) async fn unread_count(&self, user: &str) -> Result<usize, Unavailable> {
        let result = self.conn().llen(format!("sl:un:{user}")).await;
        self.down(result)
    }

    /// This node's count of `user`'s live sessions in `room` crossed 0 (`online`: it became 1).
    /// Updates the cluster's view and, when the user's presence changed cluster-wide, tells
    /// the room (a volatile event). Runs in the background: presence is best effort.
    pub(crate) fn presence_changed(self: &Arc<Self>, room: &str, user: &str, online: bool) {
        let (cluster, room, user) = (self.clone(), room.to_owned(), user.to_owned());
        tokio::spawn(async move {
            let nodes = match cluster.presence_step(&room, &user, online).await {
                Ok(nodes) => nodes,
                Err(Unavailable) => return,
            };
            // Up: only the first node tells. Down: only when no node has the user any more.
            if (online && nodes == 1) || (!online && nodes == 0) {
                let Some(hub) = cluster.hub() else { return };
                let note = serde_json::json!({ "room": room, "user": user, "online": online });
                let max = Some(hub.announce_max_members);
                hub.fanout_volatile(&room, "presence", &note, Some(&user), max)
                    .await;
            }
        });
    }

    async fn presence_step(&self, room: &str, user: &str, up: bool) -> Result<usize, Unavailable> {
        let result = self
            .scripts
            .presence
            .key(format!("sl:p:{room}:{user}"))
            .key(format!("sl:pr:{room}"))
            .key("sl:nodes")
            .arg(&self.node)
            .arg(now_ms())
            .arg(user)
            .arg(if up { "1" } else { "0" })
            .invoke_async::<usize>(&mut self.conn())
            .await;
        self.down(result)
    }

    /// Who is present in `room` on any live node: the count and up to `max` users.
    pub(crate) async fn present(
        &self,
        room: &str,
        max: usize,
    ) -> Result<(usize, Vec<String>), Unavailable> {
        let result = self
            .scripts
            .present
            .key(format!("sl:pr:{room}"))
            .key("sl:nodes")
            .arg(room)
            .arg(now_ms())
            .arg(max)
            .invoke_async::<Vec<String>>(&mut self.conn())
            .await;
        let mut values = self.down(result)?.into_iter();
        let count = values.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        Ok((count, values.collect()))
    }

    /// `send` in a cluster: the pair's memory is in Redis, so a resend to any node is
    /// answered, not processed again (PROTOCOL.md §5).
    pub(crate) async fn handle_send(
        &self,
        hub: &Hub,
        caller: &Caller<'_>,
        id: u64,
        event: &str,
        data: &serde_json::Value,
    ) -> String {
        let key = pair_key(caller.user, caller.scope);
        match self.claim(&key, id).await {
            Err(Unavailable) => ack_frame(id, Err(Unavailable.into())),
            Ok(Claim::Ack(ack)) if ack.is_empty() => ack_frame(id, Ok(None)),
            Ok(Claim::Ack(ack)) => ack,
            Ok(Claim::Expired) => expired_ack(id),
            Ok(Claim::Pending) => ack_frame(
                id,
                Err(ErrorBody {
                    code: "rate_limited".to_owned(),
                    message: "not processed here: another socket of this client is processing \
                              this id; send it again after retry_after_ms"
                        .to_owned(),
                    retry_after_ms: Some(PENDING_RETRY_MS),
                }),
            ),
            Ok(Claim::New) => {
                // A fan-out that carries the send out records it in the same script.
                let caller = Caller {
                    send: Some((&key, id)),
                    ..*caller
                };
                let outcome = hub.dispatch(&caller, event, data).await;
                let ack = ack_frame(id, outcome.clone());
                if is_unavailable(&outcome) {
                    // Keeps an ack a fan-out recorded before the node stopped waiting for it.
                    let _ = self.unclaim(&key, id).await;
                    return ack;
                }
                // If Redis went away after processing (and no fan-out recorded it), the claim
                // lapses after CLAIM_LEASE_MS and a resend may be processed again: the
                // at-least-once edge of §5.
                let _ = self.record(&SendRecord::new(&key, id, &outcome)).await;
                ack
            }
        }
    }

    async fn claim(&self, key: &str, id: u64) -> Result<Claim, Unavailable> {
        let now = now_ms();
        let result = self
            .scripts
            .claim
            .key(key)
            .arg(id)
            .arg(ms(self.retention).max(1))
            .arg(now + CLAIM_LEASE_MS)
            .arg(now)
            .invoke_async::<Vec<String>>(&mut self.conn())
            .await;
        let reply = self.down(result)?;
        Ok(match reply.first().map(String::as_str) {
            Some("ack") => Claim::Ack(reply.get(1).cloned().unwrap_or_default()),
            Some("expired") => Claim::Expired,
            Some("pending") => Claim::Pending,
            _ => Claim::New,
        })
    }

    async fn record(&self, send: &SendRecord<'_>) -> Result<(), Unavailable> {
        let mut script = self.scripts.record.prepare_invoke();
        self.record_args(&mut script, send);
        let result = script.invoke_async::<u8>(&mut self.conn()).await;
        self.down(result).map(|_| ())
    }

    /// The keys and arguments `record` (`RECORD_FN`) takes, after what `script` has already:
    /// the pair hash and its order list; the id, its ack, the window, the retention.
    fn record_args(&self, script: &mut ScriptInvocation<'_>, send: &SendRecord<'_>) {
        script
            .key(send.key)
            .key(format!("{}:q", send.key))
            .arg(send.id)
            .arg(&send.ack)
            .arg(WINDOW)
            .arg(ms(self.retention).max(1));
    }

    async fn unclaim(&self, key: &str, id: u64) -> Result<(), Unavailable> {
        let result = self
            .scripts
            .unclaim
            .key(key)
            .arg(id)
            .invoke_async::<u8>(&mut self.conn())
            .await;
        self.down(result).map(|_| ())
    }

    /// Counts a socket of `user` cluster-wide under `member`: `Ok(false)` when the user
    /// already has the maximum.
    pub(crate) async fn reserve_conn(&self, user: &str, member: &str) -> Result<bool, Unavailable> {
        let result = self
            .scripts
            .reserve
            .key(conns_key(user))
            .arg(now_ms())
            .arg(ms(self.lease))
            .arg(member)
            .arg(self.max_conns_per_user)
            .invoke_async::<u8>(&mut self.conn())
            .await;
        self.down(result).map(|counted| counted == 1)
    }

    /// Stops counting a socket (in the background: its lease runs out anyway).
    pub(crate) fn release_conn(self: &Arc<Self>, user: &str, member: &str) {
        let (cluster, key, member) = (self.clone(), conns_key(user), member.to_owned());
        tokio::spawn(async move {
            let result = cluster.conn().zrem::<_, _, ()>(key, member).await;
            let _ = cluster.down(result);
        });
    }

    /// Registers a session of this node (new, resumed here, or again after Redis came back).
    pub(crate) async fn register(
        &self,
        session: &SessionCell,
        last_seq: u64,
    ) -> Result<(), Unavailable> {
        let id = session.id.to_string();
        let result = self
            .scripts
            .register
            .key(session_key(&id))
            .key(members_key(&format!("user:{}", session.user)))
            .arg(&*session.user)
            .arg(&self.node)
            .arg(last_seq)
            .arg(ms(self.replay_age + self.lease))
            .arg(&id)
            .invoke_async::<u8>(&mut self.conn())
            .await;
        self.down(result).map(|_| ())
    }

    /// After (re)subscribing: this node's sessions, rooms, sockets and presence, again.
    pub(super) async fn resync(&self, hub: &Hub) -> redis::RedisResult<()> {
        let now = now_ms();
        let lease = ms(self.lease);
        let _: () = self
            .conn()
            .zadd("sl:nodes", &self.node, now + lease)
            .await?;
        for (session, last_seq, rooms) in hub.local_sessions() {
            self.register(&session, last_seq)
                .await
                .map_err(|_| super::timeout_error())?;
            for room in rooms {
                let mut pipe = redis::pipe();
                let id = session.id.to_string();
                pipe.sadd(members_key(&room), &id).ignore();
                pipe.sadd(format!("{}:rooms", session_key(&id)), &room)
                    .ignore();
                pipe.query_async::<()>(&mut self.conn()).await?;
            }
        }
        for (user, member) in hub.live_leases() {
            let _: () = self
                .conn()
                .zadd(conns_key(&user), member, now + lease)
                .await?;
        }
        for (room, user) in hub.present_here() {
            let _ = self.presence_step(&room, &user, true).await;
        }
        Ok(())
    }
}
