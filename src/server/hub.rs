//! The shared state of a running server and its lifecycle steps: attaching and resuming sessions,
//! detaching them, expiring and evicting them, and fanning events out to rooms and users.
//!
//! There is no global lock over the whole state. The sessions map, the users map, the rooms map
//! and the detached queue each have a short-held lock of their own (every step under them is O(1)
//! or bounded per user); each session, room and socket queue has its own. A fan-out encodes the
//! event once, copies the member list, and delivers to each member under that member's lock. The
//! lock order is: a send's pair in `dedupe`, users, session, rooms map, room, socket queue, replay
//! store; no step takes them the other way round. `/health` reads counters only.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use super::clock::now_rfc3339;
use super::config::ServerConfig;
use super::dedupe::{Dedupe, Scope};
use super::dev::Outages;
use super::frames;
use super::outbox::{ConnCell, Kill, Outgoing};
use super::replay::{Gap, ReplayBuffer, ReplayLimits, ReplayStore};
use super::rooms::Rooms;
use super::session::{Detached, Reach, SessionCell, SessionId};
use super::stats::Stats;
use super::users::{TooManyConnections, UserHandle, Users};
use crate::protocol::{CloseCode, ResumePoint};

/// Sessions without a socket kept at most (the oldest go first).
const MAX_DETACHED_SESSIONS: usize = 10_000;

/// Closes a socket whose session was resumed on a newer socket.
const SUPERSEDED: Kill = Kill {
    code: CloseCode::NORMAL,
    reason: "session resumed on another connection",
};

/// A socket that was just attached to a session.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) session: Arc<SessionCell>,
    pub(crate) conn: Arc<ConnCell>,
    pub(crate) user: UserHandle,
    /// Whose send-id memory this socket's sends use: its client's, or its session's.
    pub(crate) scope: Scope,
    pub(crate) resumed: bool,
    /// `(seq, tail)` of the events to send right after `authenticated`, in `seq` order.
    pub(crate) replay: Vec<(u64, Bytes)>,
}

#[derive(Debug, Default)]
struct DetachedQueue {
    /// Sessions in the order they lost their socket; entries whose generation no longer matches
    /// (the session was resumed or dropped since) are skipped.
    queue: VecDeque<(Weak<SessionCell>, u64, Instant)>,
    next_generation: u64,
}

/// Everything the server knows; see the module docs.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) max_conns_per_user: usize,
    /// Rooms with more members do not announce joins and leaves.
    announce_max_members: usize,
    /// The largest frame clients accept; events that would not fit are refused up front.
    max_frame_bytes: usize,
    replay: ReplayLimits,
    pub(crate) stats: Arc<Stats>,
    sessions: Mutex<HashMap<SessionId, Arc<SessionCell>>>,
    pub(crate) users: Users,
    pub(crate) rooms: Rooms,
    pub(crate) dedupe: Dedupe,
    /// Users whose new sockets `/dev/outage` refuses for now (dev mode only).
    pub(crate) outages: Outages,
    store: ReplayStore,
    detached: Mutex<DetachedQueue>,
    message_prefix: String,
    next_message: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    pub(crate) fn new(config: &ServerConfig, stats: Arc<Stats>) -> Self {
        Hub {
            max_conns_per_user: config.max_conns_per_user,
            announce_max_members: config.announce_max_members,
            max_frame_bytes: config.max_frame_bytes,
            replay: ReplayLimits {
                max_events: config.replay_max,
                max_age: config.replay_age,
                user_bytes: config.replay_user_bytes,
            },
            sessions: Mutex::new(HashMap::new()),
            users: Users::new(config.unread_budget_bytes, stats.clone()),
            rooms: Rooms::new(stats.clone()),
            dedupe: Dedupe::new(
                config.dedupe_budget_bytes,
                config.dedupe_clients_per_user,
                config.dedupe_retention,
                stats.clone(),
            ),
            outages: Outages::default(),
            store: ReplayStore::new(config.replay_budget_bytes, stats.clone()),
            detached: Mutex::new(DetachedQueue::default()),
            message_prefix: format!("m{:08x}", rand::random::<u32>()),
            next_message: AtomicU64::new(0),
            stats,
        }
    }

    /// Attaches an authenticated socket: resumes `resume` when it can, else opens a new session.
    /// `client` (the `auth.client` id) scopes its send-id memory; without one, its session does.
    pub(crate) fn attach(
        &self,
        user: &str,
        client: Option<&str>,
        resume: Option<&ResumePoint>,
        now: Instant,
    ) -> Result<Attached, TooManyConnections> {
        let conn = Arc::new(ConnCell::new());
        if let Some(attached) = resume.and_then(|point| self.resume(&conn, user, point, now)) {
            return attached.map(|mut attached| {
                attached.scope = scope_of(client, &attached.session);
                attached
            });
        }
        let handle = self.users.reserve_socket(user, self.max_conns_per_user)?;
        let id = SessionId::random();
        let replay = ReplayBuffer::new(handle.replay_bytes.clone(), self.stats.clone());
        let session = Arc::new(SessionCell::new(id, handle.name.clone(), replay));
        session.lock().attached = Some(conn.clone());
        lock(&self.sessions).insert(id, session.clone());
        self.users.add_session(&session);
        self.stats.sessions.add(1);
        self.stats.sockets.add(1);
        Ok(Attached {
            scope: scope_of(client, &session),
            session,
            conn,
            user: handle,
            resumed: false,
            replay: Vec::new(),
        })
    }

    /// Resumes the user's session named in `point` on `conn`, taking it over from an older
    /// socket, or returns `None` when it cannot be resumed. A session that fails to resume (gap,
    /// a `seq` it never sent, expired) is dropped if no socket uses it and left alone otherwise;
    /// another user's session is never touched.
    fn resume(
        &self,
        conn: &Arc<ConnCell>,
        user: &str,
        point: &ResumePoint,
        now: Instant,
    ) -> Option<Result<Attached, TooManyConnections>> {
        let id = SessionId::parse(&point.session)?;
        let session = lock(&self.sessions).get(&id).cloned()?;
        if &*session.user != user {
            return None;
        }
        let max_age = self.replay.max_age;
        let mut state = session.lock();
        if !state.alive {
            return None;
        }
        let expired = state
            .detached
            .is_some_and(|d| now.saturating_duration_since(d.at) >= max_age);
        state.replay.evict_stale(now, max_age);
        let replay = if expired || point.seq > state.last_seq() {
            Err(Gap)
        } else {
            state.replay.since(point.seq, state.last_seq())
        };
        let replay = match replay {
            Ok(replay) => replay,
            Err(Gap) => {
                let unused = state.attached.is_none();
                drop(state);
                if unused {
                    self.drop_session(&session);
                }
                return None;
            }
        };
        let old = state.attached.replace(conn.clone());
        let was_detached = state.detached.take().is_some();
        drop(state);
        if was_detached {
            self.stats.detached.sub(1);
        }
        if let Some(old) = old {
            old.kill(SUPERSEDED);
            self.release(&old, user);
        }
        let handle = match self.users.reserve_socket(user, self.max_conns_per_user) {
            Ok(handle) => handle,
            Err(too_many) => {
                // Another socket of the user took the slot meanwhile: the session stays detached.
                // `conn` was never counted, so it is marked released before it is detached.
                conn.release();
                self.detach_conn(&session, conn, user, now);
                return Some(Err(too_many));
            }
        };
        self.stats.sockets.add(1);
        Some(Ok(Attached {
            scope: Scope::Session(session.id),
            session,
            conn: conn.clone(),
            user: handle,
            resumed: true,
            replay,
        }))
    }

    /// The socket went away: forget it and keep its session for resume.
    pub(crate) fn detach(&self, attached: &Attached, now: Instant) {
        self.detach_conn(&attached.session, &attached.conn, &attached.user.name, now);
    }

    fn detach_conn(
        &self,
        session: &Arc<SessionCell>,
        conn: &Arc<ConnCell>,
        user: &str,
        now: Instant,
    ) {
        let mut state = session.lock();
        let owned = state.alive
            && state
                .attached
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, conn));
        let generation = owned.then(|| {
            let mut queue = lock(&self.detached);
            let generation = queue.next_generation;
            queue.next_generation += 1;
            queue
                .queue
                .push_back((Arc::downgrade(session), generation, now));
            generation
        });
        if let Some(generation) = generation {
            state.attached = None;
            state.detached = Some(Detached {
                at: now,
                generation,
            });
        }
        drop(state);
        self.release(conn, user);
        if generation.is_none() {
            return;
        }
        self.stats.detached.add(1);
        // One user cannot fill the server with sessions (each a room member with a replay
        // buffer) by opening and closing sockets: at most twice their socket limit stay.
        let cap = self.max_conns_per_user.saturating_mul(2).max(1);
        for (victim, generation) in self.users.detached_beyond(user, cap) {
            if self.drop_if_detached_as(&victim, generation) {
                self.stats.sessions_evicted.bump();
            }
        }
        while self.stats.detached.get() > MAX_DETACHED_SESSIONS {
            let Some((oldest, generation, _)) = lock(&self.detached).queue.pop_front() else {
                break;
            };
            if let Some(oldest) = oldest.upgrade() {
                if self.drop_if_detached_as(&oldest, generation) {
                    self.stats.sessions_evicted.bump();
                }
            }
        }
    }

    /// Stops counting `conn` as a live socket of `user` (once).
    fn release(&self, conn: &ConnCell, user: &str) {
        if conn.release() {
            self.users.release_socket(user);
            self.stats.sockets.sub(1);
        }
    }

    fn drop_if_detached_as(&self, session: &Arc<SessionCell>, generation: u64) -> bool {
        let detached_as = session
            .lock()
            .detached
            .is_some_and(|d| d.generation == generation);
        detached_as && self.drop_session(session)
    }

    /// Removes a session, its room memberships and its replay buffer; `false` if it was gone.
    fn drop_session(&self, session: &Arc<SessionCell>) -> bool {
        let rooms = {
            let mut state = session.lock();
            if !state.alive {
                return false;
            }
            state.alive = false;
            if state.detached.take().is_some() {
                self.stats.detached.sub(1);
            }
            state.replay.clear();
            std::mem::take(&mut state.rooms)
        };
        lock(&self.sessions).remove(&session.id);
        self.stats.sessions.sub(1);
        self.users.remove_session(&session.user, session.id);
        self.dedupe.forget_session(&session.user, session.id);
        for room in &rooms {
            self.rooms.leave(room, session.id);
        }
        true
    }

    /// Drops sessions detached for longer than the replay window, old buffered events, and
    /// send-id memory past its retention.
    pub(crate) fn expire(&self, now: Instant) {
        self.dedupe.expire(now);
        let max_age = self.replay.max_age;
        loop {
            let expired = {
                let mut detached = lock(&self.detached);
                match detached.queue.front() {
                    Some((_, _, at)) if now.saturating_duration_since(*at) >= max_age => {
                        detached.queue.pop_front()
                    }
                    _ => None,
                }
            };
            let Some((session, generation, _)) = expired else {
                break;
            };
            if let Some(session) = session.upgrade() {
                self.drop_if_detached_as(&session, generation);
            }
        }
        self.store.expire(now, max_age);
        let sessions: Vec<Arc<SessionCell>> = lock(&self.sessions).values().cloned().collect();
        for session in sessions {
            session.lock().replay.evict_stale(now, max_age);
        }
    }

    /// A fresh server-made message id.
    pub(crate) fn next_message_id(&self) -> String {
        let n = self.next_message.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}-{n}", self.message_prefix)
    }

    /// Whether an `event` frame carrying `event` and `data` stays within the frame limit, so
    /// every client can read it (an oversize event would be refused by each receiver, forever,
    /// on every replay).
    pub(crate) fn event_fits(&self, event: &str, data: &Value) -> bool {
        // `{"type":"event","seq":<u64>,"event":"…","data":…,"ts":"<RFC 3339>"}` around them.
        const ENVELOPE: usize = 128;
        /// Counts the bytes serde_json writes, so measuring allocates nothing.
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0 += bytes.len();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        let data_len = match serde_json::to_writer(&mut count, data) {
            Ok(()) => count.0,
            Err(_) => usize::MAX,
        };
        data_len.saturating_add(event.len() * 6 + ENVELOPE) <= self.max_frame_bytes
    }

    /// Delivers an event to every session in the chat room `room` (skipping `except_user`'s
    /// sessions); returns how many live sockets it reached.
    pub(crate) fn deliver_room(
        &self,
        room: &str,
        event: &str,
        data: &Value,
        except_user: Option<&str>,
        now: Instant,
    ) -> usize {
        if let Some(user) = room.strip_prefix("user:") {
            return self.deliver_user(user, event, data, now);
        }
        let Some(room) = self.rooms.get(room) else {
            return 0;
        };
        self.deliver_to(&room.members(), event, data, except_user, now)
    }

    /// Delivers an event to every session of `user`; returns how many live sockets it reached.
    pub(crate) fn deliver_user(
        &self,
        user: &str,
        event: &str,
        data: &Value,
        now: Instant,
    ) -> usize {
        self.deliver_to(&self.users.sessions_of(user), event, data, None, now)
    }

    /// The fan-out: one encoded tail and one stored body for every member, each member's `seq`
    /// given and its socket fed under that member's own lock.
    fn deliver_to(
        &self,
        members: &[Arc<SessionCell>],
        event: &str,
        data: &Value,
        except_user: Option<&str>,
        now: Instant,
    ) -> usize {
        if members.is_empty() {
            return 0;
        }
        let tail = frames::tail(event, data, &now_rfc3339());
        let body = self.store.body(tail.clone(), now);
        let mut reached = 0;
        for member in members {
            if except_user.is_some_and(|u| *member.user == *u) {
                continue;
            }
            if member.deliver(&body, &tail, &self.replay, now) == Reach::Live {
                reached += 1;
            }
        }
        drop(body);
        self.store.enforce();
        reached
    }

    /// Sends a volatile event (no `seq`, never buffered) to the members of a chat room attached
    /// now, skipping `except_user`'s sessions; returns how many live sockets it reached.
    pub(crate) fn deliver_volatile(
        &self,
        room: &str,
        event: &str,
        data: &Value,
        except_user: Option<&str>,
    ) -> usize {
        match self.rooms.get(room) {
            Some(room) => self.volatile_to(&room.members(), event, data, except_user),
            None => 0,
        }
    }

    /// Announces `user_joined` / `user_left` (volatile) in a room of at most
    /// `announce_max_members` members; larger rooms stay quiet, so a join costs O(1) whatever
    /// the room's size (members learn who is there from `get_room_members`).
    pub(crate) fn announce(&self, room: &str, event: &str, user: &str) {
        let Some(members) = self
            .rooms
            .get(room)
            .and_then(|r| r.members_up_to(self.announce_max_members))
        else {
            return;
        };
        let note = serde_json::json!({ "room": room, "user": user });
        self.volatile_to(&members, event, &note, Some(user));
    }

    fn volatile_to(
        &self,
        members: &[Arc<SessionCell>],
        event: &str,
        data: &Value,
        except_user: Option<&str>,
    ) -> usize {
        if members.is_empty() {
            return 0;
        }
        let tail = frames::tail(event, data, &now_rfc3339());
        let frame = Outgoing::Frame(frames::volatile_frame(&tail));
        members
            .iter()
            .filter(|m| !except_user.is_some_and(|u| *m.user == *u))
            .filter(|m| m.deliver_volatile(&frame))
            .count()
    }

    /// `/notify` to a user: records a `new_notification`'s id as unread, then delivers.
    pub(crate) fn notify_user(&self, user: &str, event: &str, data: &Value, now: Instant) -> usize {
        if event == "new_notification" {
            if let Some(id) = data.get("id").and_then(Value::as_str) {
                self.users.add_unread(user, id);
            }
        }
        self.deliver_user(user, event, data, now)
    }
}

/// The send-id memory a socket uses: its client's when it named one, else its session's.
fn scope_of(client: Option<&str>, session: &SessionCell) -> Scope {
    match client {
        Some(client) => Scope::Client(client.into()),
        None => Scope::Session(session.id),
    }
}

/// How often the janitor should run for a given replay window.
pub(crate) fn janitor_period(replay_age: Duration) -> Duration {
    (replay_age / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

#[cfg(test)]
mod tests;
