//! The timer table: one deadline per [`Timer`]; the connection's next timeout is its minimum.

use super::{Instant, SendId};

/// Everything the connection may need to be woken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Token fetch plus socket open took too long.
    ConnectTimeout,
    /// `authenticated` did not arrive in time after `auth` was sent.
    AuthTimeout,
    /// The backoff delay before the next retry ran out.
    Backoff,
    /// No frame arrived for heartbeat + grace: the link is dead.
    HeartbeatDeadline,
    /// Time to send the batched cumulative `ack`.
    AckFlush,
    /// The next queued send may go out: a pacing token is due, or the server's `rate_limited`
    /// hint ran out.
    OutboxReady,
    /// Time to fetch a fresh token and `refresh` the live socket before its token expires.
    TokenRefresh,
    /// The page stayed hidden for `hidden_grace`: pause.
    HiddenGrace,
    /// A request's ack did not arrive in time.
    Request(SendId),
}

/// Deadlines keyed by [`Timer`].
///
/// A short unsorted vector: it holds a handful of timers (plus one per pending request), so a
/// linear scan is as fast as a tree and far smaller in wasm.
#[derive(Debug, Default, Clone)]
pub struct TimerTable {
    deadlines: Vec<(Timer, Instant)>,
}

impl TimerTable {
    /// Arms (or re-arms) `timer` to fire at `at`.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        match self.deadlines.iter_mut().find(|(t, _)| *t == timer) {
            Some(entry) => entry.1 = at,
            None => self.deadlines.push((timer, at)),
        }
    }

    /// Disarms `timer`.
    pub fn cancel(&mut self, timer: Timer) {
        self.deadlines.retain(|(t, _)| *t != timer);
    }

    /// Whether `timer` is armed.
    pub fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines
            .iter()
            .find(|(t, _)| *t == timer)
            .map(|(_, at)| *at)
    }

    /// Disarms every timer for which `keep` returns false.
    pub fn retain(&mut self, mut keep: impl FnMut(Timer) -> bool) {
        self.deadlines.retain(|(timer, _)| keep(*timer));
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().map(|(_, at)| *at).min()
    }

    /// Disarms and returns the earliest timer due at `now`, if any (ties go to the smaller
    /// [`Timer`], so the order never depends on when timers were armed).
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let index = self
            .deadlines
            .iter()
            .enumerate()
            .filter(|(_, (_, at))| *at <= now)
            .min_by_key(|(_, (timer, at))| (*at, *timer))
            .map(|(i, _)| i)?;
        Some(self.deadlines.swap_remove(index).0)
    }
}
