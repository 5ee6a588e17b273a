//! The reconnect delay policy ([`Backoff`]) and the seeded PRNG its jitter draws from.

use std::time::Duration;

/// How long to wait before each retry.
///
/// The base delay of retry `n` (1-based) is `min(initial · factor^(n-1), max)`. With `jitter`
/// on ("equal jitter"), the delay is drawn uniformly from `[base/2, base]`, so clients that lost
/// the same server spread out while no delay ever exceeds `max`. After `max_retries` failed
/// retries the connection gives up (`disconnected { RetriesExhausted }`); `None` retries
/// forever (every `max` at most).
///
/// The defaults give retries after about 1, 2, 4, 8 and 16 s:
/// `initial = 1 s, max = 30 s, factor = 2, max_retries = 5, jitter = true`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The base delay of the first retry.
    pub initial: Duration,
    /// The cap on any delay.
    pub max: Duration,
    /// The growth factor between retries (at least 1).
    pub factor: f64,
    /// How many retries before giving up; `None`: never give up.
    pub max_retries: Option<u32>,
    /// Whether to draw the delay from `[base/2, base]` instead of using `base`.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            factor: 2.0,
            max_retries: Some(5),
            jitter: true,
        }
    }
}

impl Backoff {
    /// The base (un-jittered) delay of retry `retry` (1-based), capped at `max`.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let initial_ms = self.initial.as_millis() as f64;
        let max_ms = self.max.as_millis() as f64;
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exponent = retry.saturating_sub(1).min(1024) as i32;
        let ms = (initial_ms * factor.powi(exponent)).min(max_ms);
        Duration::from_millis(ms as u64)
    }

    /// The delay of retry `retry` (1-based), jittered with `rng` when `jitter` is on.
    pub(crate) fn delay(&self, retry: u32, rng: &mut Rng) -> Duration {
        self.sample(retry, rng.next_u64())
    }

    /// The delay of retry `retry` (1-based) given 64 random bits: what the core waits, for a
    /// tool that wants the same schedule with its own random source.
    pub fn sample(&self, retry: u32, random: u64) -> Duration {
        let base = self.base_delay(retry).as_millis() as u64;
        if !self.jitter || base == 0 {
            return Duration::from_millis(base);
        }
        let half = base / 2;
        Duration::from_millis(base - half + random % (half + 1))
    }
}

/// A small deterministic PRNG (SplitMix64), seeded from the config so tests are reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
