//! The timer table: one deadline per [`Timer`]; the connection's next timeout is its minimum.

use std::collections::BTreeMap;

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
    /// The page stayed hidden for `hidden_grace`: pause.
    HiddenGrace,
    /// A request's ack did not arrive in time.
    Request(SendId),
}

/// Deadlines keyed by [`Timer`].
#[derive(Debug, Default, Clone)]
pub struct TimerTable {
    deadlines: BTreeMap<Timer, Instant>,
}

impl TimerTable {
    /// Arms (or re-arms) `timer` to fire at `at`.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines.insert(timer, at);
    }

    /// Disarms `timer`.
    pub fn cancel(&mut self, timer: Timer) {
        self.deadlines.remove(&timer);
    }

    /// Whether `timer` is armed.
    pub fn is_set(&self, timer: Timer) -> bool {
        self.deadlines.contains_key(&timer)
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines.get(&timer).copied()
    }

    /// Disarms every timer for which `keep` returns false.
    pub fn retain(&mut self, mut keep: impl FnMut(Timer) -> bool) {
        self.deadlines.retain(|timer, _| keep(*timer));
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// Disarms and returns the earliest timer due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (timer, _) = self
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .min_by_key(|(timer, at)| (**at, **timer))?;
        let timer = *timer;
        self.deadlines.remove(&timer);
        Some(timer)
    }
}
