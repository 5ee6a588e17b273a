//! One session's memory: its rooms, its event `seq` counter, its replay buffer and the socket it
//! is attached to, behind the session's own lock. (Its send-id memory lives in `dedupe`, keyed
//! by (user, client), or by the session for a client without an id.)
//!
//! The hub owns every session and decides when one attaches, detaches or dies; delivery locks one
//! session at a time, so no global lock is held while events fan out.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::time::Instant;

use super::outbox::{ConnCell, Outgoing, Pushed};
use super::replay::{Body, ReplayBuffer, ReplayLimits};
use super::rooms::Room;

/// A session id: 128 random bits, shown as 32 hex digits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SessionId(pub(crate) u128);

impl SessionId {
    /// A fresh random id.
    pub(crate) fn random() -> Self {
        SessionId(rand::random::<u128>())
    }

    /// The id a client sent back in `resume` (`None` if it is not one of ours).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(SessionId)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A socket id, unique within one server run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnId(pub(crate) u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// When and in which order a session lost its socket (the generation tells stale queue entries apart).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Detached {
    pub(crate) at: Instant,
    pub(crate) generation: u64,
}

/// What a delivery did for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A live socket took it.
    Live,
    /// Buffered only (no socket, or the socket is being closed).
    Buffered,
    /// The session is gone.
    Gone,
}

/// A session: it outlives its socket by the replay window so a reconnecting client can resume it.
#[derive(Debug)]
pub(crate) struct SessionCell {
    pub(crate) id: SessionId,
    pub(crate) user: Arc<str>,
    state: Mutex<SessionState>,
}

/// The part of a session behind its lock.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// False once the hub dropped the session; deliveries that still hold it skip it.
    pub(crate) alive: bool,
    /// The chat rooms it is in (its user room is implied).
    pub(crate) rooms: Vec<Arc<Room>>,
    next_seq: u64,
    pub(crate) replay: ReplayBuffer,
    pub(crate) attached: Option<Arc<ConnCell>>,
    pub(crate) detached: Option<Detached>,
}

impl SessionCell {
    /// A new live session with no rooms yet and its first event at `seq` 1.
    pub(crate) fn new(id: SessionId, user: Arc<str>, replay: ReplayBuffer) -> Self {
        SessionCell {
            id,
            user,
            state: Mutex::new(SessionState {
                alive: true,
                rooms: Vec::new(),
                next_seq: 1,
                replay,
                attached: None,
                detached: None,
            }),
        }
    }

    /// Locks the session. Nothing panics while holding it; a poisoned lock is still consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives a stored event the session's next `seq`, buffers it for resume and queues it on the
    /// attached socket.
    pub(crate) fn deliver(
        &self,
        body: &Arc<Body>,
        tail: &Bytes,
        limits: &ReplayLimits,
        now: Instant,
    ) -> Reach {
        let mut state = self.lock();
        if !state.alive {
            return Reach::Gone;
        }
        let seq = state.take_seq();
        state.replay.push(seq, body.clone(), limits, now);
        state.queue_event(seq, tail)
    }
}

impl SessionCell {
    /// Queues a stored event whose `seq` the cluster gave (and whose replay lives in Redis) on
    /// the attached socket.
    pub(crate) fn deliver_at(&self, seq: u64, tail: &Bytes) -> Reach {
        let mut state = self.lock();
        if !state.alive {
            return Reach::Gone;
        }
        state.continue_after(seq);
        state.queue_event(seq, tail)
    }

    /// Queues a volatile frame (no `seq`, never buffered) on the attached socket; `true` if taken.
    pub(crate) fn deliver_volatile(&self, frame: &Outgoing) -> bool {
        let state = self.lock();
        match (&state.attached, state.alive) {
            (Some(conn), true) => conn.push(frame.clone()) == Pushed::Queued,
            _ => false,
        }
    }
}

impl SessionState {
    /// Continues numbering after `last` (a session adopted from another node).
    pub(crate) fn continue_after(&mut self, last: u64) {
        self.next_seq = self.next_seq.max(last + 1);
    }

    /// Queues stored event `seq` on the attached socket.
    fn queue_event(&self, seq: u64, tail: &Bytes) -> Reach {
        match &self.attached {
            Some(conn) => match conn.push(Outgoing::Event {
                seq,
                tail: tail.clone(),
            }) {
                Pushed::Queued => Reach::Live,
                Pushed::Refused => Reach::Buffered,
            },
            None => Reach::Buffered,
        }
    }

    /// Takes the next event `seq`.
    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The `seq` of the latest event (0 before the first).
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_and_refuse_foreign_text() {
        let id = SessionId::random();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
        for bad in [
            "",
            "nope",
            "+0000000000000000000000000000000",
            &"f".repeat(33),
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad}");
        }
    }
}
