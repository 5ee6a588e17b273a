//! The shared state of a running server: sessions, rooms, live sockets, users' unread
//! notifications, and the delivery of events to sessions.
//!
//! All of it sits behind one mutex that is never held across an `.await`; every operation is a
//! short, synchronous step. Events get their `seq` and enter a session's replay buffer and its
//! socket's queue under that lock, so per-session order is the `seq` order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::clock::now_rfc3339;
use super::config::ServerConfig;
use super::session::{ConnId, Detached, ReplayLimits, Session, SessionId};
use crate::protocol::{CloseCode, ResumePoint, ServerFrame};

/// Frames a socket's queue holds before the socket is judged too slow and closed.
pub(crate) const SOCKET_QUEUE: usize = 256;
/// Sessions without a socket kept at most (the oldest go first).
const MAX_DETACHED_SESSIONS: usize = 10_000;
/// Bytes of encoded frames a session's replay buffer keeps at most.
const REPLAY_MAX_BYTES: usize = 1 << 20;
/// Unread notification ids kept per user (the oldest go first).
pub(crate) const MAX_UNREAD_PER_USER: usize = 1_000;

/// Why the hub closes a socket it no longer wants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kill {
    pub(crate) code: CloseCode,
    pub(crate) reason: &'static str,
}

/// The hub's side of an authenticated socket.
#[derive(Debug)]
struct ConnHandle {
    user: String,
    session: SessionId,
    tx: mpsc::Sender<String>,
    kill: Option<oneshot::Sender<Kill>>,
}

#[derive(Debug, Default)]
struct UserState {
    live_sockets: usize,
    unread: VecDeque<String>,
}

/// The user already has `max_conns_per_user` live sockets.
#[derive(Debug)]
pub(crate) struct TooManyConnections;

/// A socket that was just attached to a session.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) session: SessionId,
    pub(crate) resumed: bool,
    /// Frames to send right after `authenticated`, in `seq` order.
    pub(crate) replay: Vec<String>,
}

/// The numbers `/health` reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) connections: usize,
    pub(crate) users: usize,
    pub(crate) rooms: usize,
}

/// The lock around [`HubState`].
#[derive(Debug)]
pub(crate) struct Hub {
    state: Mutex<HubState>,
}

impl Hub {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        Hub {
            state: Mutex::new(HubState::new(config)),
        }
    }

    /// Locks the state. Nothing panics while holding it, but a poisoned lock is still usable:
    /// every step leaves the state consistent before it can fail.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the server knows; see the module docs.
#[derive(Debug)]
pub(crate) struct HubState {
    pub(crate) max_conns_per_user: usize,
    /// The largest frame clients accept; events that would not fit are refused up front.
    max_frame_bytes: usize,
    replay: ReplayLimits,
    sessions: HashMap<SessionId, Session>,
    pub(crate) rooms: HashMap<String, HashSet<SessionId>>,
    conns: HashMap<ConnId, ConnHandle>,
    users: HashMap<String, UserState>,
    detached: VecDeque<(SessionId, u64)>,
    next_generation: u64,
    message_prefix: String,
    next_message: u64,
    /// Sockets whose queue overflowed during the current operation; closed before it returns.
    overflowed: Vec<ConnId>,
}

impl HubState {
    fn new(config: &ServerConfig) -> Self {
        HubState {
            max_conns_per_user: config.max_conns_per_user,
            max_frame_bytes: config.max_frame_bytes,
            replay: ReplayLimits {
                max_events: config.replay_max,
                max_bytes: REPLAY_MAX_BYTES,
                max_age: config.replay_age,
            },
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            conns: HashMap::new(),
            users: HashMap::new(),
            detached: VecDeque::new(),
            next_generation: 0,
            message_prefix: format!("m{:08x}", rand::random::<u32>()),
            next_message: 0,
            overflowed: Vec::new(),
        }
    }

    /// Attaches an authenticated socket: resumes `resume` when it can, else opens a new session.
    pub(crate) fn attach(
        &mut self,
        conn: ConnId,
        user: &str,
        resume: Option<&ResumePoint>,
        tx: mpsc::Sender<String>,
        kill: oneshot::Sender<Kill>,
        now: Instant,
    ) -> Result<Attached, TooManyConnections> {
        let resumed = resume.and_then(|point| self.prepare_resume(user, point, now));
        let live = self.users.get(user).map_or(0, |u| u.live_sockets);
        if live >= self.max_conns_per_user {
            return Err(TooManyConnections);
        }
        let (session_id, replay, is_resumed) = match resumed {
            Some((id, replay)) => (id, replay, true),
            None => {
                let id = SessionId::random();
                let mut session = Session::new(user.to_owned());
                let own_room = format!("user:{user}");
                session.rooms.insert(own_room.clone());
                self.rooms.entry(own_room).or_default().insert(id.clone());
                self.sessions.insert(id.clone(), session);
                (id, Vec::new(), false)
            }
        };
        if let Some(session) = self.sessions.get_mut(&session_id) {
            session.attached = Some(conn);
            session.detached = None;
        }
        self.conns.insert(
            conn,
            ConnHandle {
                user: user.to_owned(),
                session: session_id.clone(),
                tx,
                kill: Some(kill),
            },
        );
        self.users.entry(user.to_owned()).or_default().live_sockets += 1;
        Ok(Attached {
            session: session_id,
            resumed: is_resumed,
            replay,
        })
    }

    /// Checks a resume request and, if it can be honoured, frees the session from any old socket
    /// and returns the frames to replay. A session that cannot be resumed by its own user
    /// (gap, inconsistent seq, expired) is dropped; another user's session is never touched.
    fn prepare_resume(
        &mut self,
        user: &str,
        point: &ResumePoint,
        now: Instant,
    ) -> Option<(SessionId, Vec<String>)> {
        let id = SessionId(point.session.clone());
        let session = self.sessions.get_mut(&id)?;
        if session.user != user {
            return None;
        }
        let expired = session
            .detached
            .is_some_and(|d| now.saturating_duration_since(d.at) >= self.replay.max_age);
        session.replay.evict_older_than(now, self.replay.max_age);
        let replay = if expired || point.seq > session.last_seq() {
            None
        } else {
            session.replay.since(point.seq, session.last_seq())
        };
        let Some(replay) = replay else {
            let old_conn = session.attached;
            if let Some(conn) = old_conn {
                self.remove_conn(conn, Some(SUPERSEDED), now);
            }
            self.drop_session(&id);
            return None;
        };
        if let Some(conn) = session.attached {
            self.remove_conn(conn, Some(SUPERSEDED), now);
        }
        Some((id, replay))
    }

    /// The socket went away: forget it and keep its session for resume.
    pub(crate) fn detach(&mut self, conn: ConnId, now: Instant) {
        self.remove_conn(conn, None, now);
    }

    /// Forgets a socket (closing it with `kill` if given) and detaches its session.
    fn remove_conn(&mut self, conn: ConnId, kill: Option<Kill>, now: Instant) {
        let Some(mut handle) = self.conns.remove(&conn) else {
            return;
        };
        if let (Some(kill), Some(tx)) = (kill, handle.kill.take()) {
            // The socket task may already be gone; then there is nobody left to tell.
            let _ = tx.send(kill);
        }
        if let Some(user) = self.users.get_mut(&handle.user) {
            user.live_sockets = user.live_sockets.saturating_sub(1);
            if user.live_sockets == 0 && user.unread.is_empty() {
                self.users.remove(&handle.user);
            }
        }
        let generation = self.next_generation;
        if let Some(session) = self.sessions.get_mut(&handle.session) {
            if session.attached == Some(conn) {
                session.attached = None;
                session.detached = Some(Detached {
                    at: now,
                    generation,
                });
                self.next_generation += 1;
                self.detached
                    .push_back((handle.session.clone(), generation));
            }
        }
        self.cap_detached_of(&handle.user);
        while self.detached.len() > MAX_DETACHED_SESSIONS {
            if let Some((id, generation)) = self.detached.pop_front() {
                if self.is_detached_as(&id, generation) {
                    self.drop_session(&id);
                }
            }
        }
    }

    /// Keeps at most `2 × max_conns_per_user` detached sessions per user, dropping the oldest:
    /// one user cannot fill the server with sessions (each a room member with a replay buffer)
    /// by opening and closing sockets.
    fn cap_detached_of(&mut self, user: &str) {
        let cap = self.max_conns_per_user.saturating_mul(2).max(1);
        let theirs: Vec<SessionId> = self
            .detached
            .iter()
            .filter(|(id, generation)| {
                self.is_detached_as(id, *generation)
                    && self.sessions.get(id).is_some_and(|s| s.user == user)
            })
            .map(|(id, _)| id.clone())
            .collect();
        // The queue is oldest first.
        for id in theirs.iter().take(theirs.len().saturating_sub(cap)) {
            self.drop_session(id);
        }
    }

    fn is_detached_as(&self, id: &SessionId, generation: u64) -> bool {
        self.sessions
            .get(id)
            .and_then(|s| s.detached)
            .is_some_and(|d| d.generation == generation)
    }

    /// Removes a session and its room memberships.
    fn drop_session(&mut self, id: &SessionId) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        for room in &session.rooms {
            self.remove_member(room, id);
        }
    }

    fn remove_member(&mut self, room: &str, id: &SessionId) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Drops sessions detached for longer than the replay window and old buffered events.
    pub(crate) fn expire(&mut self, now: Instant) {
        let max_age = self.replay.max_age;
        while let Some((id, generation)) = self.detached.front().cloned() {
            let Some(detached) = self.sessions.get(&id).and_then(|s| s.detached) else {
                self.detached.pop_front();
                continue;
            };
            if detached.generation != generation {
                self.detached.pop_front();
                continue;
            }
            if now.saturating_duration_since(detached.at) < max_age {
                break;
            }
            self.detached.pop_front();
            self.drop_session(&id);
        }
        for session in self.sessions.values_mut() {
            session.replay.evict_older_than(now, max_age);
        }
    }

    /// The session and user of a live socket.
    pub(crate) fn conn_session(&self, conn: ConnId) -> Option<(String, SessionId)> {
        self.conns
            .get(&conn)
            .map(|h| (h.user.clone(), h.session.clone()))
    }

    pub(crate) fn session_mut(&mut self, id: &SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(id)
    }

    /// The client acknowledged events up to `seq`: they need not be replayed any more.
    pub(crate) fn trim_acked(&mut self, conn: ConnId, seq: u64) {
        if let Some((_, id)) = self.conn_session(conn) {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.replay.trim_acked(seq);
            }
        }
    }

    /// Adds a session to a room (`true` if it was not a member yet).
    pub(crate) fn join(&mut self, id: &SessionId, room: &str) -> bool {
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        if !session.rooms.insert(room.to_owned()) {
            return false;
        }
        self.rooms
            .entry(room.to_owned())
            .or_default()
            .insert(id.clone());
        true
    }

    /// Removes a session from a room (`true` if it was a member).
    pub(crate) fn leave(&mut self, id: &SessionId, room: &str) -> bool {
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        if !session.rooms.remove(room) {
            return false;
        }
        self.remove_member(room, id);
        true
    }

    /// How many rooms a session is in.
    pub(crate) fn room_count(&self, id: &SessionId) -> usize {
        self.sessions.get(id).map_or(0, |s| s.rooms.len())
    }

    /// A fresh server-made message id.
    pub(crate) fn next_message_id(&mut self) -> String {
        self.next_message += 1;
        format!("{}-{}", self.message_prefix, self.next_message)
    }

    /// Delivers an event to every session in `room` (skipping `except_user`'s sessions);
    /// returns how many live sockets it reached.
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

    pub(crate) fn deliver_room(
        &mut self,
        room: &str,
        event: &str,
        data: &Value,
        except_user: Option<&str>,
        now: Instant,
    ) -> usize {
        let members: Vec<SessionId> = match self.rooms.get(room) {
            Some(members) => members.iter().cloned().collect(),
            None => return 0,
        };
        let mut reached = 0;
        for id in members {
            let skip =
                except_user.is_some_and(|u| self.sessions.get(&id).is_some_and(|s| s.user == u));
            if !skip && self.deliver_session(&id, event, data, now) {
                reached += 1;
            }
        }
        self.close_overflowed(now);
        reached
    }

    /// Gives the event the session's next `seq`, buffers it for resume and queues it on the
    /// session's socket; `true` if a live socket took it.
    fn deliver_session(&mut self, id: &SessionId, event: &str, data: &Value, now: Instant) -> bool {
        let limits = self.replay;
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        let seq = session.take_seq();
        let text = ServerFrame::Event {
            seq: Some(seq),
            event: event.to_owned(),
            data: data.clone(),
            ts: now_rfc3339(),
        }
        .encode();
        let attached = session.attached;
        session.replay.push(seq, text.clone(), now, limits);
        let Some(conn) = attached else {
            return false;
        };
        let Some(handle) = self.conns.get(&conn) else {
            return false;
        };
        match handle.tx.try_send(text) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.push(conn);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn close_overflowed(&mut self, now: Instant) {
        for conn in std::mem::take(&mut self.overflowed) {
            tracing::warn!(conn = %conn, "socket queue full; closing the socket (its session keeps buffering)");
            self.remove_conn(conn, Some(TOO_SLOW), now);
        }
    }

    /// `/notify` to a user: records a `new_notification`'s id as unread, then delivers.
    pub(crate) fn notify_user(
        &mut self,
        user: &str,
        event: &str,
        data: &Value,
        now: Instant,
    ) -> usize {
        if event == "new_notification" {
            if let Some(id) = data.get("id").and_then(Value::as_str) {
                let state = self.users.entry(user.to_owned()).or_default();
                if !state.unread.iter().any(|u| u == id) {
                    state.unread.push_back(id.to_owned());
                    if state.unread.len() > MAX_UNREAD_PER_USER {
                        state.unread.pop_front();
                    }
                }
            }
        }
        self.deliver_room(&format!("user:{user}"), event, data, None, now)
    }

    /// Removes a notification from the user's unread list; returns the new unread count.
    pub(crate) fn remove_unread(&mut self, user: &str, id: &str) -> usize {
        let Some(state) = self.users.get_mut(user) else {
            return 0;
        };
        state.unread.retain(|u| u != id);
        state.unread.len()
    }

    /// The user's unread notification count.
    pub(crate) fn unread_count(&self, user: &str) -> usize {
        self.users.get(user).map_or(0, |u| u.unread.len())
    }

    /// Live numbers for `/health`.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            connections: self.conns.len(),
            users: self.users.values().filter(|u| u.live_sockets > 0).count(),
            rooms: self.rooms.len(),
        }
    }
}

/// Closes a socket whose session was resumed on a newer socket.
const SUPERSEDED: Kill = Kill {
    code: CloseCode::NORMAL,
    reason: "session resumed on another connection",
};

/// Closes a socket that does not read its events fast enough.
const TOO_SLOW: Kill = Kill {
    code: CloseCode::TRY_AGAIN_LATER,
    reason: "socket queue full",
};

/// How often the janitor should run for a given replay window.
pub(crate) fn janitor_period(replay_age: Duration) -> Duration {
    (replay_age / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> HubState {
        HubState::new(&ServerConfig::for_tests())
    }

    fn socket() -> (
        mpsc::Sender<String>,
        mpsc::Receiver<String>,
        oneshot::Sender<Kill>,
    ) {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let (kill, _) = oneshot::channel();
        (tx, rx, kill)
    }

    #[test]
    fn detached_sessions_keep_buffering_and_resume_in_order() {
        let now = Instant::now();
        let mut hub = state();
        let (tx, mut rx, kill) = socket();
        let a = hub.attach(ConnId(1), "u1", None, tx, kill, now).unwrap();
        assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 1);
        assert!(rx.try_recv().unwrap().contains("\"seq\":1"));
        hub.detach(ConnId(1), now);
        assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 0);
        assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 0);
        let (tx, _rx, kill) = socket();
        let point = ResumePoint {
            session: a.session.0.clone(),
            seq: 1,
        };
        let b = hub
            .attach(ConnId(2), "u1", Some(&point), tx, kill, now)
            .unwrap();
        assert!(b.resumed);
        assert_eq!(b.session, a.session);
        assert_eq!(b.replay.len(), 2);
        assert!(b.replay[0].contains("\"seq\":2") && b.replay[1].contains("\"seq\":3"));
    }

    #[test]
    fn a_user_keeps_at_most_twice_their_socket_limit_of_detached_sessions() {
        let now = Instant::now();
        let mut hub = state();
        let cap = hub.max_conns_per_user * 2;
        let mut sessions = Vec::new();
        for n in 0..cap as u64 + 3 {
            let (tx, _rx, kill) = socket();
            let a = hub.attach(ConnId(n), "u1", None, tx, kill, now).unwrap();
            hub.detach(ConnId(n), now);
            sessions.push(a.session);
        }
        let (tx, _rx, kill) = socket();
        hub.attach(ConnId(99), "u2", None, tx, kill, now).unwrap();
        hub.detach(ConnId(99), now);
        let kept: Vec<_> = sessions
            .iter()
            .filter(|id| hub.sessions.contains_key(*id))
            .collect();
        assert_eq!(kept.len(), cap);
        assert!(
            !hub.sessions.contains_key(&sessions[0]),
            "the oldest went first"
        );
        assert!(hub.sessions.contains_key(sessions.last().unwrap()));
        assert_eq!(
            hub.sessions.len(),
            cap + 1,
            "another user's session is untouched"
        );
    }

    #[test]
    fn another_users_or_expired_session_is_not_resumed() {
        let now = Instant::now();
        let mut hub = state();
        let (tx, _rx, kill) = socket();
        let a = hub.attach(ConnId(1), "u1", None, tx, kill, now).unwrap();
        hub.detach(ConnId(1), now);
        let point = ResumePoint {
            session: a.session.0.clone(),
            seq: 0,
        };
        let (tx, _rx, kill) = socket();
        let b = hub
            .attach(ConnId(2), "u2", Some(&point), tx, kill, now)
            .unwrap();
        assert!(!b.resumed);
        hub.expire(now + Duration::from_secs(60));
        let (tx, _rx, kill) = socket();
        let c = hub
            .attach(ConnId(3), "u1", Some(&point), tx, kill, now)
            .unwrap();
        assert!(!c.resumed);
        assert_eq!(hub.counts().connections, 2);
    }

    #[test]
    fn a_full_socket_queue_closes_the_socket_but_not_the_session() {
        let now = Instant::now();
        let mut hub = state();
        let (tx, _rx) = mpsc::channel(1);
        let (kill, mut killed) = oneshot::channel();
        hub.attach(ConnId(1), "u1", None, tx, kill, now).unwrap();
        assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 1);
        assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 0);
        assert_eq!(killed.try_recv().unwrap().code, CloseCode::TRY_AGAIN_LATER);
        assert_eq!(hub.counts().connections, 0);
        assert_eq!(hub.counts().rooms, 1);
    }
}
