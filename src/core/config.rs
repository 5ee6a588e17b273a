//! [`ConnectionConfig`]: every tunable of the core with its default, and [`StaticToken`].

use std::fmt;
use std::time::Duration;

use super::Backoff;
use crate::protocol::MAX_FRAME_BYTES;

/// A token that never prints: its `Debug` is `StaticToken(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticToken(String);

impl StaticToken {
    /// Wraps `token`.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(token.into())
    }

    /// The token text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

/// Configuration of a [`Connection`](super::Connection). `ConnectionConfig::new(url)` gives
/// the defaults; change fields as needed. Drivers read their defaults from here too, so every
/// face has the same ones.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// The WebSocket URL, e.g. `wss://example.com/ws`. The token never goes in it.
    pub url: String,
    /// A token used for every connection attempt, answered by the core itself. `None` (the
    /// default): the core asks the driver with [`Action::FetchToken`](super::Action::FetchToken)
    /// before every attempt (an async provider).
    pub token: Option<StaticToken>,
    /// How long a request waits for its ack when it names no timeout (10 s).
    pub request_timeout: Duration,
    /// The reconnect delay policy (1, 2, 4, 8, 16 s with equal jitter, cap 30 s, five retries).
    pub backoff: Backoff,
    /// How long token fetch plus socket open may take (20 s).
    pub connect_timeout: Duration,
    /// How long to wait for `authenticated` after sending `auth` (5 s).
    pub auth_timeout: Duration,
    /// Silence allowed beyond the server's heartbeat interval before the link counts as dead (10 s).
    pub heartbeat_grace: Duration,
    /// How long a connection must stay `connected` before the retry count resets (5 s).
    pub stable_after: Duration,
    /// Whether a hidden page pauses the connection (true).
    pub pause_when_hidden: bool,
    /// How long the page may stay hidden before the connection pauses (0).
    pub hidden_grace: Duration,
    /// The most application sends the outbox holds (1,000).
    pub outbox_max_messages: usize,
    /// The most payload bytes the outbox holds (1 MiB).
    pub outbox_max_bytes: usize,
    /// How long to batch event acks before sending one (200 ms).
    pub ack_delay: Duration,
    /// Send the ack at once when this many events are unacknowledged (32).
    pub ack_batch: u64,
    /// How long to wait before resending sends the server refused with `rate_limited` (1 s).
    pub rate_limit_retry: Duration,
    /// The largest frame accepted or sent (64 KiB).
    pub max_frame_bytes: usize,
    /// The seed of the jitter PRNG. Drivers seed it randomly; tests fix it.
    pub seed: u64,
}

impl ConnectionConfig {
    /// The defaults, connecting to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectionConfig {
            url: url.into(),
            token: None,
            request_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(20),
            auth_timeout: Duration::from_secs(5),
            heartbeat_grace: Duration::from_secs(10),
            stable_after: Duration::from_secs(5),
            pause_when_hidden: true,
            hidden_grace: Duration::ZERO,
            outbox_max_messages: 1_000,
            outbox_max_bytes: 1024 * 1024,
            ack_delay: Duration::from_millis(200),
            ack_batch: 32,
            rate_limit_retry: Duration::from_secs(1),
            max_frame_bytes: MAX_FRAME_BYTES,
            seed: 0x5eed,
        }
    }
}
