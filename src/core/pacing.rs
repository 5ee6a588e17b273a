//! Send pacing: a mirror of the server's per-socket token bucket (`authenticated.limits`), so
//! a long outbox flush after a reconnect goes out at the rate the server takes instead of
//! tripping `rate_limited` (PROTOCOL.md §5, §8).
//!
//! The server's bucket starts full when it sends `authenticated` and this one when it arrives,
//! and every send reaches the server after it left here, so with the same rate and burst the
//! server always holds at least as many tokens as this mirror thinks.

use super::Instant;
use crate::protocol::SendLimits;

/// Tokens are counted in thousandths, so refills need no floating point.
const MILLI: u64 = 1_000;

/// The send bucket of the current link.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    /// Tokens per second.
    rate: u64,
    /// Capacity, in thousandths of a token.
    capacity: u64,
    /// Tokens held, in thousandths.
    tokens: u64,
    last: Instant,
}

impl Pacer {
    /// A full bucket for `limits` at `now`; `None` (no limits told, or a zero rate) never waits.
    pub(crate) fn new(limits: Option<SendLimits>, now: Instant) -> Option<Self> {
        let limits = limits.filter(|l| l.sends_per_s > 0 && l.burst > 0)?;
        let capacity = u64::from(limits.burst) * MILLI;
        Some(Pacer {
            rate: u64::from(limits.sends_per_s),
            capacity,
            tokens: capacity,
            last: now,
        })
    }

    /// Takes a token at `now`; `Err(at)` when none is left until `at`.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Instant> {
        let elapsed_ms = now.as_millis().saturating_sub(self.last.as_millis());
        // rate tokens per 1000 ms = rate thousandths per ms.
        self.tokens = (self.tokens + elapsed_ms.saturating_mul(self.rate)).min(self.capacity);
        self.last = now;
        if self.tokens >= MILLI {
            self.tokens -= MILLI;
            return Ok(());
        }
        let missing = MILLI - self.tokens;
        let wait_ms = missing.div_ceil(self.rate);
        Err(Instant::from_millis(now.as_millis() + wait_ms))
    }
}
