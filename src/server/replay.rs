//! Replay memory: event bodies shared by every session that buffers them, each session's buffer
//! of `(seq, body)` entries, and the one global byte budget over all of it.
//!
//! A stored event is encoded once into a [`Body`] (the frame's shared tail, see `frames`); each
//! member session keeps only an entry pointing at it. The budget counts every live body once plus
//! [`ENTRY_COST`] per entry and [`BODY_COST`] per body. When it is exceeded the oldest bodies are
//! evicted first (their bytes freed at once, every session that held them sees a gap and resumes
//! fresh); a user's sessions together hold at most `replay_user_bytes` (each entry at its full
//! size), the receiving session dropping its own oldest first. Entries whose body was evicted are
//! released when their session next receives, acks or resumes, or by the janitor.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::stats::{Gauge, Stats};

/// Budget cost of one buffered entry (its slot, its `Arc` and the session's share of bookkeeping).
pub(crate) const ENTRY_COST: usize = 32;
/// Budget cost of one body beyond its bytes (the `Arc`, its lock and its place in the queue).
pub(crate) const BODY_COST: usize = 96;

/// One stored event's encoded tail, shared by every session that buffers it.
#[derive(Debug)]
pub(crate) struct Body {
    bytes: Mutex<Option<Bytes>>,
    len: usize,
    at: Instant,
    stats: Arc<Stats>,
}

impl Body {
    fn lock(&self) -> MutexGuard<'_, Option<Bytes>> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The encoded tail, or `None` once the budget evicted it.
    pub(crate) fn tail(&self) -> Option<Bytes> {
        self.lock().clone()
    }

    fn is_evicted(&self) -> bool {
        self.lock().is_none()
    }

    /// Frees the bytes; `true` if they were still there.
    fn evict(&self) -> bool {
        let evicted = self.lock().take().is_some();
        if evicted {
            self.stats.replay_bytes.sub(self.len);
        }
        evicted
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let held = self.bytes.get_mut().map_or(true, |bytes| bytes.is_some());
        self.stats
            .replay_bytes
            .sub(BODY_COST + if held { self.len } else { 0 });
    }
}

/// The bounds of one session's buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayLimits {
    pub(crate) max_events: usize,
    pub(crate) max_age: Duration,
    /// Bytes one user's sessions may hold together.
    pub(crate) user_bytes: usize,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    body: Arc<Body>,
}

/// Why a resume cannot be served from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap;

/// A session's recent events, contiguous by `seq` and ending at the latest one.
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    events: VecDeque<Entry>,
    /// Bytes all sessions of this user hold (each entry at its body's full size).
    user: Arc<Gauge>,
    stats: Arc<Stats>,
}

impl ReplayBuffer {
    /// An empty buffer counting into `user` (shared by the user's sessions) and `stats`.
    pub(crate) fn new(user: Arc<Gauge>, stats: Arc<Stats>) -> Self {
        ReplayBuffer {
            events: VecDeque::new(),
            user,
            stats,
        }
    }

    /// Appends the event with the next `seq`, then evicts from the front to respect `limits`.
    pub(crate) fn push(&mut self, seq: u64, body: Arc<Body>, limits: &ReplayLimits, now: Instant) {
        self.user.add(body.len);
        self.stats.replay_bytes.add(ENTRY_COST);
        self.stats.replay_entries.add(1);
        self.events.push_back(Entry { seq, body });
        while self.events.len() > limits.max_events {
            self.pop_front();
        }
        while self.user.get() > limits.user_bytes && self.events.len() > 1 {
            self.pop_front();
            self.stats.replay_evicted_user.bump();
        }
        self.evict_stale(now, limits.max_age);
    }

    /// Drops events buffered more than `max_age` ago and, from the front, events whose body the
    /// budget evicted.
    pub(crate) fn evict_stale(&mut self, now: Instant, max_age: Duration) {
        while self.events.front().is_some_and(|e| {
            now.saturating_duration_since(e.body.at) >= max_age || e.body.is_evicted()
        }) {
            self.pop_front();
        }
    }

    /// Drops events the client acknowledged (`seq` and below).
    pub(crate) fn trim_acked(&mut self, seq: u64) {
        while self.events.front().is_some_and(|e| e.seq <= seq) {
            self.pop_front();
        }
    }

    /// The `(seq, tail)` of events `after+1 ..= last`, or a [`Gap`] if some were evicted.
    pub(crate) fn since(&self, after: u64, last: u64) -> Result<Vec<(u64, Bytes)>, Gap> {
        if after >= last {
            return Ok(Vec::new());
        }
        let first = self.events.front().ok_or(Gap)?.seq;
        if first > after + 1 {
            return Err(Gap);
        }
        self.events
            .iter()
            .filter(|e| e.seq > after)
            .map(|e| e.body.tail().map(|tail| (e.seq, tail)).ok_or(Gap))
            .collect()
    }

    /// Drops every entry (the session is gone).
    pub(crate) fn clear(&mut self) {
        while !self.events.is_empty() {
            self.pop_front();
        }
    }

    /// How many events are buffered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.events.pop_front() {
            self.release(&e);
        }
    }

    fn release(&self, e: &Entry) {
        self.user.sub(e.body.len);
        self.stats.replay_bytes.sub(ENTRY_COST);
        self.stats.replay_entries.sub(1);
    }
}

impl Drop for ReplayBuffer {
    fn drop(&mut self) {
        for e in &self.events {
            self.release(e);
        }
    }
}

/// Every live body in creation order, for budget and age eviction.
#[derive(Debug)]
pub(crate) struct ReplayStore {
    queue: Mutex<VecDeque<Weak<Body>>>,
    budget: usize,
    stats: Arc<Stats>,
}

impl ReplayStore {
    pub(crate) fn new(budget: usize, stats: Arc<Stats>) -> Self {
        ReplayStore {
            queue: Mutex::new(VecDeque::new()),
            budget,
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Weak<Body>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores an encoded tail as a new body.
    pub(crate) fn body(&self, tail: Bytes, now: Instant) -> Arc<Body> {
        let len = tail.len();
        self.stats.replay_bytes.add(len + BODY_COST);
        let body = Arc::new(Body {
            bytes: Mutex::new(Some(tail)),
            len,
            at: now,
            stats: self.stats.clone(),
        });
        self.lock().push_back(Arc::downgrade(&body));
        body
    }

    /// Evicts the oldest bodies until the budget holds (or none is left to evict).
    pub(crate) fn enforce(&self) {
        if self.stats.replay_bytes.get() <= self.budget {
            return;
        }
        let mut queue = self.lock();
        while self.stats.replay_bytes.get() > self.budget {
            let Some(oldest) = queue.pop_front() else {
                break;
            };
            if oldest.upgrade().is_some_and(|body| body.evict()) {
                self.stats.replay_evicted_budget.bump();
            }
        }
    }

    /// Forgets bodies that no session holds any more and frees those older than `max_age`
    /// (no session may replay them).
    pub(crate) fn expire(&self, now: Instant, max_age: Duration) {
        let mut queue = self.lock();
        while let Some(front) = queue.front() {
            match front.upgrade() {
                Some(body) if now.saturating_duration_since(body.at) < max_age => break,
                Some(body) => {
                    body.evict();
                }
                None => {}
            }
            queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReplayLimits = ReplayLimits {
        max_events: 3,
        max_age: Duration::from_secs(60),
        user_bytes: 1 << 20,
    };

    fn setup(budget: usize) -> (ReplayStore, ReplayBuffer, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let store = ReplayStore::new(budget, stats.clone());
        let buf = ReplayBuffer::new(Arc::new(Gauge::default()), stats.clone());
        (store, buf, stats)
    }

    fn tails(got: Vec<(u64, Bytes)>) -> Vec<(u64, String)> {
        got.into_iter()
            .map(|(seq, b)| (seq, String::from_utf8_lossy(&b).into_owned()))
            .collect()
    }

    #[test]
    fn replay_returns_missed_events_or_reports_a_gap() {
        let now = Instant::now();
        let (store, mut buf, _) = setup(usize::MAX);
        for seq in 1..=5 {
            buf.push(seq, store.body(format!("e{seq}").into(), now), &LIMITS, now);
        }
        assert_eq!(buf.len(), 3);
        let e = |s: u64| (s, format!("e{s}"));
        assert_eq!(tails(buf.since(3, 5).unwrap()), vec![e(4), e(5)]);
        assert_eq!(tails(buf.since(2, 5).unwrap()), vec![e(3), e(4), e(5)]);
        assert_eq!(buf.since(1, 5), Err(Gap));
        assert_eq!(buf.since(5, 5), Ok(vec![]));
        buf.trim_acked(4);
        assert_eq!(tails(buf.since(4, 5).unwrap()), vec![e(5)]);
        assert_eq!(buf.since(3, 5), Err(Gap));
    }

    #[test]
    fn the_budget_evicts_the_oldest_bodies_and_the_accounting_returns_to_zero() {
        let now = Instant::now();
        let (store, mut buf, stats) = setup(3 * (100 + BODY_COST + ENTRY_COST));
        let limits = ReplayLimits {
            max_events: 100,
            ..LIMITS
        };
        for seq in 1..=5 {
            buf.push(seq, store.body(vec![b'x'; 100].into(), now), &limits, now);
            store.enforce();
        }
        assert!(stats.replay_bytes.get() <= 3 * (100 + BODY_COST + ENTRY_COST));
        assert!(stats.replay_evicted_budget.get() >= 2);
        assert_eq!(buf.since(0, 5), Err(Gap), "the oldest are gone");
        assert!(buf.since(4, 5).is_ok(), "the newest are kept");
        drop(buf);
        store.expire(now, LIMITS.max_age);
        assert_eq!(stats.replay_bytes.get(), 0);
        assert_eq!(stats.replay_entries.get(), 0);
    }

    #[test]
    fn a_users_cap_drops_the_receiving_sessions_oldest_and_age_evicts() {
        let t0 = Instant::now();
        let (store, mut buf, stats) = setup(usize::MAX);
        let small = ReplayLimits {
            user_bytes: 250,
            max_events: 100,
            ..LIMITS
        };
        for seq in 1..=3 {
            buf.push(seq, store.body(vec![b'x'; 100].into(), t0), &small, t0);
        }
        assert_eq!(buf.len(), 2);
        assert_eq!(stats.replay_evicted_user.get(), 1);
        let later = t0 + Duration::from_secs(61);
        buf.push(4, store.body("y".into(), later), &small, later);
        assert_eq!(tails(buf.since(3, 4).unwrap()), vec![(4, "y".to_owned())]);
    }
}
