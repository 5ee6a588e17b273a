//! One session's memory: its rooms, its event `seq` counter, its replay buffer and its send-id memory.
//!
//! Pure data with no I/O; the hub owns every session and decides when one attaches, detaches or dies.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// How many recent acks a session remembers verbatim for repeated send ids.
const REMEMBERED_ACKS: usize = 128;

/// A session id (random, 128 bits, hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionId(pub(crate) String);

impl SessionId {
    /// A fresh random id.
    pub(crate) fn random() -> Self {
        SessionId(format!("{:032x}", rand::random::<u128>()))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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

/// The bounds of a replay buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayLimits {
    pub(crate) max_events: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_age: Duration,
}

#[derive(Debug)]
struct Buffered {
    seq: u64,
    text: String,
    at: Instant,
}

/// The session's recent events as encoded frames, contiguous by `seq` and ending at the latest one.
#[derive(Debug, Default)]
pub(crate) struct ReplayBuffer {
    events: VecDeque<Buffered>,
    bytes: usize,
}

impl ReplayBuffer {
    /// Appends the event with the next `seq`, then evicts from the front to respect `limits`.
    pub(crate) fn push(&mut self, seq: u64, text: String, now: Instant, limits: ReplayLimits) {
        self.bytes += text.len();
        self.events.push_back(Buffered { seq, text, at: now });
        while self.events.len() > limits.max_events || self.bytes > limits.max_bytes {
            self.pop_front();
        }
        self.evict_older_than(now, limits.max_age);
    }

    /// Drops events buffered more than `max_age` ago.
    pub(crate) fn evict_older_than(&mut self, now: Instant, max_age: Duration) {
        while self
            .events
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) >= max_age)
        {
            self.pop_front();
        }
    }

    /// Drops events the client acknowledged (`seq` and below).
    pub(crate) fn trim_acked(&mut self, seq: u64) {
        while self.events.front().is_some_and(|e| e.seq <= seq) {
            self.pop_front();
        }
    }

    /// The frames with `seq` in `after+1 ..= last`, or `None` if some of them were evicted.
    pub(crate) fn since(&self, after: u64, last: u64) -> Option<Vec<String>> {
        if after >= last {
            return Some(Vec::new());
        }
        let first = self.events.front()?.seq;
        if first > after + 1 {
            return None;
        }
        Some(
            self.events
                .iter()
                .filter(|e| e.seq > after)
                .map(|e| e.text.clone())
                .collect(),
        )
    }

    /// How many events are buffered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.events.pop_front() {
            self.bytes -= e.text.len();
        }
    }
}

/// What the session remembers about client send ids, for exactly-once processing.
#[derive(Debug, Default)]
pub(crate) struct SendMemory {
    highest: Option<u64>,
    recent: VecDeque<(u64, String)>,
}

/// What to do with an incoming send id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendCheck {
    /// A new id: process it, then [`SendMemory::record`] its ack.
    New,
    /// Already processed: answer with this ack (`None`: too old to remember, answer `ok: true`).
    Repeated(Option<String>),
}

impl SendMemory {
    /// Whether `id` is new or was already processed.
    pub(crate) fn check(&self, id: u64) -> SendCheck {
        match self.highest {
            Some(highest) if id <= highest => SendCheck::Repeated(
                self.recent
                    .iter()
                    .find(|(seen, _)| *seen == id)
                    .map(|(_, ack)| ack.clone()),
            ),
            _ => SendCheck::New,
        }
    }

    /// Remembers that `id` was processed and answered with `ack`.
    pub(crate) fn record(&mut self, id: u64, ack: String) {
        self.highest = Some(self.highest.map_or(id, |h| h.max(id)));
        self.recent.push_back((id, ack));
        if self.recent.len() > REMEMBERED_ACKS {
            self.recent.pop_front();
        }
    }
}

/// When and in which order a session lost its socket (the generation tells stale queue entries apart).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Detached {
    pub(crate) at: Instant,
    pub(crate) generation: u64,
}

/// A session: it outlives its socket by the replay window so a reconnecting client can resume it.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) rooms: HashSet<String>,
    next_seq: u64,
    pub(crate) replay: ReplayBuffer,
    pub(crate) sends: SendMemory,
    pub(crate) attached: Option<ConnId>,
    pub(crate) detached: Option<Detached>,
}

impl Session {
    /// A new session with no rooms yet and its first event at `seq` 1.
    pub(crate) fn new(user: String) -> Self {
        Session {
            user,
            rooms: HashSet::new(),
            next_seq: 1,
            replay: ReplayBuffer::default(),
            sends: SendMemory::default(),
            attached: None,
            detached: None,
        }
    }

    /// Takes the next event `seq`.
    pub(crate) fn take_seq(&mut self) -> u64 {
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

    const LIMITS: ReplayLimits = ReplayLimits {
        max_events: 3,
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(60),
    };

    #[test]
    fn replay_returns_missed_events_or_reports_a_gap() {
        let now = Instant::now();
        let mut buf = ReplayBuffer::default();
        for seq in 1..=5 {
            buf.push(seq, format!("e{seq}"), now, LIMITS);
        }
        assert_eq!(buf.len(), 3);
        assert_eq!(buf.since(3, 5), Some(vec!["e4".into(), "e5".into()]));
        assert_eq!(
            buf.since(2, 5),
            Some(vec!["e3".into(), "e4".into(), "e5".into()])
        );
        assert_eq!(buf.since(1, 5), None);
        assert_eq!(buf.since(5, 5), Some(vec![]));
        buf.trim_acked(4);
        assert_eq!(buf.since(4, 5), Some(vec!["e5".into()]));
        assert_eq!(buf.since(3, 5), None);
    }

    #[test]
    fn replay_evicts_by_age_and_bytes() {
        let t0 = Instant::now();
        let mut buf = ReplayBuffer::default();
        buf.push(1, "a".into(), t0, LIMITS);
        buf.push(2, "b".into(), t0 + Duration::from_secs(61), LIMITS);
        assert_eq!(buf.since(1, 2), Some(vec!["b".into()]));
        let small = ReplayLimits {
            max_bytes: 3,
            ..LIMITS
        };
        let mut buf = ReplayBuffer::default();
        buf.push(1, "aa".into(), t0, small);
        buf.push(2, "bb".into(), t0, small);
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn send_memory_answers_repeats_with_the_same_ack() {
        let mut mem = SendMemory::default();
        assert_eq!(mem.check(0), SendCheck::New);
        mem.record(0, "ack0".into());
        mem.record(1, "ack1".into());
        assert_eq!(mem.check(1), SendCheck::Repeated(Some("ack1".into())));
        assert_eq!(mem.check(2), SendCheck::New);
        for id in 2..200 {
            mem.record(id, format!("ack{id}"));
        }
        assert_eq!(mem.check(1), SendCheck::Repeated(None));
    }
}
