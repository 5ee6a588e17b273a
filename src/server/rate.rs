//! The per-socket token bucket that limits `send` frames.

use tokio::time::Instant;

/// Refills `rate` tokens per second up to `2 * rate`; each `send` takes one. A rate of 0 never limits.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        TokenBucket {
            rate,
            capacity: rate * 2.0,
            tokens: rate * 2.0,
            last: now,
        }
    }

    /// Takes a token if there is one; `false` means the caller is over the limit.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_is_twice_the_rate_then_refills() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5, t0);
        assert_eq!((0..20).filter(|_| bucket.try_take(t0)).count(), 10);
        assert!(!bucket.try_take(t0));
        assert!(bucket.try_take(t0 + Duration::from_millis(200)));
        assert!(!bucket.try_take(t0 + Duration::from_millis(200)));
    }

    #[test]
    fn zero_rate_never_limits() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0, t0);
        assert!((0..1000).all(|_| bucket.try_take(t0)));
    }
}
