//! [`ClientConfig`]: the native client's builder — url, token or async token provider, and the
//! core's tunables.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::core::{Backoff, ConnectionConfig, StaticToken};
use crate::protocol::{client_id_from, is_client_id};

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
/// let config = ClientConfig::new("ws://127.0.0.1:8080/ws", "eyJ…")
///     .room("chat:7")
///     .heartbeat_grace(Duration::from_secs(5))
///     .outbox(500, 256 * 1024);
/// assert_eq!(config.connection().outbox_max_messages, 500);
/// ```
///
/// The token (or a token provider) is required at construction; this does not compile:
///
/// ```compile_fail
/// let config = sockline::native::ClientConfig::new("ws://127.0.0.1:8080/ws");
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) connection: ConnectionConfig,
    /// `None`: the static token in `connection` is used.
    pub(crate) provider: Option<TokenProvider>,
    pub(crate) rooms: Vec<String>,
}

impl ClientConfig {
    /// The defaults of [`ConnectionConfig::new`], connecting to `url` and authenticating with
    /// the same `token` on every connect. For tokens that expire, use
    /// [`with_token_provider`](Self::with_token_provider).
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self::base(url).token(token)
    }

    /// The defaults, connecting to `url` with a fresh token from `provider` before every
    /// (re)connect and before the current one expires (an in-band `refresh`).
    pub fn with_token_provider<F, Fut, E>(url: impl Into<String>, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        Self::base(url).token_provider(provider)
    }

    fn base(url: impl Into<String>) -> Self {
        let mut connection = ConnectionConfig::new(url);
        connection.seed = random_seed();
        // Native clients have no page to hide; nothing sends `Env(Hidden)`, but be explicit.
        connection.pause_when_hidden = false;
        connection.client_id = Some(random_client_id());
        ClientConfig {
            connection,
            provider: None,
            rooms: Vec::new(),
        }
    }

    /// Authenticates with the same `token` on every connect (replacing a provider).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.connection.token = Some(StaticToken::new(token));
        self.provider = None;
        self
    }

    /// Calls `provider` for a fresh token on every (re)connect and refresh (replacing a static
    /// token); an `Err` counts as a retryable connection failure.
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

    /// Uses `id` as the client id (16–64 of `[A-Za-z0-9_-]`) instead of a random one: a
    /// process that restarts with its unacked sends (kept by the app) resends them under the
    /// same (client, id) pairs, so the server processes each once.
    pub fn client_id(mut self, id: impl Into<String>) -> Result<Self, InvalidClientId> {
        let id = id.into();
        if !is_client_id(&id) {
            return Err(InvalidClientId(id));
        }
        self.connection.client_id = Some(id);
        Ok(self)
    }

    /// The core settings.
    pub fn connection(&self) -> &ConnectionConfig {
        &self.connection
    }
}

/// A client id that is not 16–64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid client id {0:?}: use 16-64 characters of [A-Za-z0-9_-]")]
pub struct InvalidClientId(pub String);

/// A client id from the OS random source (or, if that fails, from the seed mixer below).
fn random_client_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&random_seed().to_le_bytes());
        bytes[8..].copy_from_slice(&random_seed().to_le_bytes());
    }
    client_id_from(bytes)
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
