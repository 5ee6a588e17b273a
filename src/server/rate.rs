//! Per-socket rate limits: the token bucket behind every limit, and the send limiter with its
//! sticky refusal window (PROTOCOL.md §5, §8).

use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::SendLimits;

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

    /// How long until the next token, as of the last [`try_take`](Self::try_take).
    fn until_next_token(&self) -> Duration {
        if self.rate == 0.0 || self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }
}

/// A wait in whole milliseconds, rounded up (what `retry_after_ms` says: never early).
pub(crate) fn ceil_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The `send` limit of one socket: a bucket of `rate` per second with a burst of `2 * rate`.
/// Once it refuses a send, it refuses every send until the deadline it named has passed, so a
/// client that retries the refused send in place is never overtaken by the sends behind it.
#[derive(Debug)]
pub(crate) struct SendLimiter {
    rate: u32,
    bucket: TokenBucket,
    refusing_until: Option<Instant>,
}

impl SendLimiter {
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        SendLimiter {
            rate,
            bucket: TokenBucket::new(rate, now),
            refusing_until: None,
        }
    }

    /// What `authenticated.limits` tells the client (`None`: no limit).
    pub(crate) fn limits(&self) -> Option<SendLimits> {
        (self.rate > 0).then(|| SendLimits {
            sends_per_s: self.rate,
            burst: self.rate.saturating_mul(2),
        })
    }

    /// Admits a send, or refuses it with the wait until sends are admitted again (at least
    /// 1 ms; every refusal in one window names the same deadline).
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.refusing_until {
            if now < until {
                return Err(until - now);
            }
            self.refusing_until = None;
        }
        if self.bucket.try_take(now) {
            return Ok(());
        }
        // Whole milliseconds, rounded up, so the deadline is the one `retry_after_ms` names.
        let wait = Duration::from_millis(ceil_ms(self.bucket.until_next_token()).max(1));
        self.refusing_until = Some(now + wait);
        Err(wait)
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
    fn a_refusal_holds_every_send_until_its_deadline_then_the_bucket_admits_again() {
        let t0 = Instant::now();
        let mut limiter = SendLimiter::new(5, t0);
        assert_eq!(
            limiter.limits(),
            Some(SendLimits {
                sends_per_s: 5,
                burst: 10
            })
        );
        assert!((0..10).all(|_| limiter.admit(t0).is_ok()));
        assert_eq!(limiter.admit(t0), Err(Duration::from_millis(200)));
        // 150 ms later the bucket would almost have a token, but the window holds.
        let t1 = t0 + Duration::from_millis(150);
        assert_eq!(limiter.admit(t1), Err(Duration::from_millis(50)));
        let t2 = t0 + Duration::from_millis(200);
        assert_eq!(limiter.admit(t2), Ok(()));
        assert_eq!(limiter.admit(t2), Err(Duration::from_millis(200)));
        assert_eq!(SendLimiter::new(0, t0).limits(), None);
        // The deadline is named in whole milliseconds, rounded up: the bucket would admit a send
        // a fraction of a millisecond before it, the window still refuses it.
        let mut limiter = SendLimiter::new(3, t0);
        assert!((0..6).all(|_| limiter.admit(t0).is_ok()));
        assert_eq!(limiter.admit(t0), Err(Duration::from_millis(334)));
        let almost = t0 + Duration::from_micros(333_500);
        assert_eq!(limiter.admit(almost), Err(Duration::from_micros(500)));
        assert_eq!(
            ceil_ms(Duration::from_micros(500)),
            1,
            "told as 1 ms, not 0"
        );
        assert_eq!(limiter.admit(t0 + Duration::from_millis(334)), Ok(()));
    }

    #[test]
    fn zero_rate_never_limits() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0, t0);
        assert!((0..1000).all(|_| bucket.try_take(t0)));
    }
}
