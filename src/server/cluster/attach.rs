//! Attaching a socket in a cluster: the user's socket limit counted on every node, and resume
//! from the session's stream in Redis on whichever node the client reached.

use std::sync::Arc;

use bytes::Bytes;
use redis::streams::StreamRangeReply;
use redis::AsyncCommands;
use tokio::time::Instant;

use super::route::BusMessage;
use super::{ms, session_key, Cluster, CHANNEL};
use crate::protocol::ResumePoint;
use crate::server::broker::Unavailable;
use crate::server::clock::now_ms;
use crate::server::hub::{Attached, Hub};
use crate::server::outbox::ConnCell;
use crate::server::session::SessionId;
use crate::server::users::TooManyConnections;

impl Cluster {
    /// Attaches an authenticated socket: resumes `resume` from Redis when it can, else opens a
    /// new session registered in Redis. The user's sockets are counted on every node (while
    /// Redis is down: on this node only).
    pub(crate) async fn attach(
        self: &Arc<Self>,
        hub: &Hub,
        user: &str,
        client: Option<&str>,
        resume: Option<&ResumePoint>,
        now: Instant,
    ) -> Result<Attached, TooManyConnections> {
        let lease = format!("{}:{:016x}", self.node, rand::random::<u64>());
        if let Ok(false) = self.reserve_conn(user, &lease).await {
            return Err(TooManyConnections);
        }
        let resumed = match resume {
            Some(point) => self.resume(hub, user, point, now).await,
            None => None,
        };
        let attached = match resumed {
            Some(attached) => attached.map(|mut attached| {
                if let Some(client) = client {
                    attached.scope = crate::server::dedupe::Scope::Client(client.into());
                }
                attached
            }),
            None => {
                let attached = hub.attach(user, client, None, now);
                if let Ok(attached) = &attached {
                    // Down: registered again once the subscription is back.
                    let _ = self.register(&attached.session, 0).await;
                }
                attached
            }
        };
        match attached {
            Ok(attached) => {
                attached.conn.set_lease(lease);
                Ok(attached)
            }
            Err(too_many) => {
                self.release_conn(user, &lease);
                Err(too_many)
            }
        }
    }

    /// Resumes session `point.session` from Redis, adopting it on this node; `None` when it
    /// cannot be resumed (unknown, another user's, gone from the window, Redis down).
    async fn resume(
        self: &Arc<Self>,
        hub: &Hub,
        user: &str,
        point: &ResumePoint,
        now: Instant,
    ) -> Option<Result<Attached, TooManyConnections>> {
        let id = SessionId::parse(&point.session)?;
        let key = session_key(&id.to_string());
        let (owner, last, rooms) = self.read_meta(&key).await.ok()?;
        if owner.as_deref() != Some(user) || point.seq > last {
            return None;
        }
        // Adopted first, so live events queue on the new socket while the replay is read.
        let conn = Arc::new(ConnCell::new());
        let mut attached = match hub.adopt(id, user, &rooms, last, &conn, now)? {
            Ok(attached) => attached,
            Err(too_many) => return Some(Err(too_many)),
        };
        let replay = match self.claim_and_read(&id.to_string(), point.seq, last).await {
            Ok(Some(replay)) => replay,
            Ok(None) | Err(Unavailable) => {
                hub.let_go(&attached.session);
                return None;
            }
        };
        attached.replayed_through = replay.last().map_or(point.seq, |(seq, _)| *seq);
        attached.replay = replay;
        Some(Ok(attached))
    }

    async fn read_meta(
        &self,
        key: &str,
    ) -> Result<(Option<String>, u64, Vec<String>), Unavailable> {
        let mut pipe = redis::pipe();
        pipe.hget(key, "user")
            .hget(key, "seq")
            .smembers(format!("{key}:rooms"));
        let result = pipe
            .query_async::<(Option<String>, Option<u64>, Vec<String>)>(&mut self.conn())
            .await;
        let (user, seq, rooms) = self.down(result)?;
        Ok((user, seq.unwrap_or(0), rooms))
    }

    /// Takes the session over (`owner`, and a takeover message so its old node lets go), then
    /// reads its events after `after`: `None` when one of them is no longer there.
    async fn claim_and_read(
        &self,
        session: &str,
        after: u64,
        last: u64,
    ) -> Result<Option<Vec<(u64, Bytes)>>, Unavailable> {
        let key = session_key(session);
        let takeover = BusMessage::Takeover {
            session: session.to_owned(),
            node: self.node.clone(),
        };
        let mut pipe = redis::pipe();
        pipe.hset(&key, "owner", &self.node).ignore();
        pipe.publish(CHANNEL, takeover.encode()).ignore();
        let result = pipe.query_async::<()>(&mut self.conn()).await;
        self.down(result)?;
        let start = format!("{}-0", after + 1);
        let result = self
            .conn()
            .xrange_count::<_, _, _, _, StreamRangeReply>(
                format!("{key}:x"),
                start,
                "+",
                self.replay_max + 1,
            )
            .await;
        let reply = self.down(result)?;
        let oldest = now_ms().saturating_sub(ms(self.replay_age));
        let mut replay = Vec::with_capacity(reply.ids.len());
        let mut expected = after + 1;
        for entry in reply.ids {
            let seq = entry
                .id
                .split('-')
                .next()
                .and_then(|s| s.parse::<u64>().ok());
            let at: Option<u64> = entry.get("at");
            let tail: Option<String> = entry.get("t");
            match (seq, at, tail) {
                (Some(seq), Some(at), Some(tail)) if seq == expected && at >= oldest => {
                    replay.push((seq, Bytes::from(tail)));
                    expected += 1;
                }
                _ => return Ok(None),
            }
        }
        // Every event up to `last` (the seq when the session was read) must be there.
        Ok((expected > last).then_some(replay))
    }
}
