//! [`ClientConfig`]: the native client's builder — url, token or async token provider, and the
//! core's tunables.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::core::{Backoff, ConnectionConfig, StaticToken};

/// A boxed token future.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// An async token provider, called before every connection attempt.
#[derive(Clone)]
pub(crate) struct TokenProvider(pub(crate) Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider(<fn>)")
    }
}

/// Configuration of a native [`Client`](super::Client).
///
/// ```
/// use std::time::Duration;
/// use sockline::native::ClientConfig;
///
/// let config = ClientConfig::new("ws://127.0.0.1:8080/ws")
///     .token("eyJ…")
///     .room("chat:7")
///     .heartbeat_grace(Duration::from_secs(5))
///     .outbox(500, 256 * 1024);
/// assert_eq!(config.connection().outbox_max_messages, 500);
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) connection: ConnectionConfig,
    /// `None`: the static token in `connection` is used.
    pub(crate) provider: Option<TokenProvider>,
    pub(crate) rooms: Vec<String>,
}

impl ClientConfig {
    /// The defaults of [`ConnectionConfig::new`], connecting to `url` with an empty token.
    pub fn new(url: impl Into<String>) -> Self {
        let mut connection = ConnectionConfig::new(url);
        connection.seed = random_seed();
        // Native clients have no page to hide; nothing sends `Env(Hidden)`, but be explicit.
        connection.pause_when_hidden = false;
        connection.token = Some(StaticToken::new(String::new()));
        ClientConfig {
            connection,
            provider: None,
            rooms: Vec::new(),
        }
    }

    /// Authenticates with the same `token` on every connect.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.connection.token = Some(StaticToken::new(token));
        self.provider = None;
        self
    }

    /// Calls `provider` for a fresh token on every (re)connect; an `Err` counts as a retryable
    /// connection failure.
    pub fn token_provider<F, Fut, E>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        self.provider = Some(TokenProvider(Arc::new(move || {
            let fut = provider();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        })));
        self.connection.token = None;
        self
    }

    /// The reconnect policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.connection.backoff = backoff;
        self
    }

    /// Silence allowed beyond the server's heartbeat before the link counts as dead.
    pub fn heartbeat_grace(mut self, grace: Duration) -> Self {
        self.connection.heartbeat_grace = grace;
        self
    }

    /// The outbox bounds: at most `max_messages` sends and `max_bytes` bytes waiting for acks.
    pub fn outbox(mut self, max_messages: usize, max_bytes: usize) -> Self {
        self.connection.outbox_max_messages = max_messages;
        self.connection.outbox_max_bytes = max_bytes;
        self
    }

    /// Joins `room` on connect (and re-joins it after every new session).
    pub fn room(mut self, room: impl Into<String>) -> Self {
        self.rooms.push(room.into());
        self
    }

    /// How long [`Client::request`](super::Client::request) waits for its ack (10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.connection.request_timeout = timeout;
        self
    }

    /// Changes any core setting (timeouts, stable period, ack batching, seed, …).
    pub fn with_connection(mut self, change: impl FnOnce(&mut ConnectionConfig)) -> Self {
        change(&mut self.connection);
        self
    }

    /// The core settings.
    pub fn connection(&self) -> &ConnectionConfig {
        &self.connection
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process; mix in the time for distinct clients.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}
