//! [`TestServer`]: the reference server in-process on a loopback port, with tokens, `/notify`,
//! and stop, crash and restart on the same port.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::api::ServerApi;
use super::http::HttpError;
use crate::server::{mint_token, start, RunningServer, ServerConfig};

/// How long [`TestServer::token`] tokens are valid.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The reference server running inside the test's tokio runtime on `127.0.0.1` (an OS-chosen
/// port), with dev mode on and the known secrets of [`ServerConfig::for_tests`].
///
/// | method | what it does |
/// |---|---|
/// | [`token`](Self::token) | a valid token for a user (an hour) |
/// | [`ws_url`](Self::ws_url), [`http_url`](Self::http_url) | where to point a client |
/// | [`notify_user`](Self::notify_user), [`notify_room`](Self::notify_room) | `POST /notify` as a backend would |
/// | [`stop`](Self::stop) | graceful stop: every socket closed with 1001 (`going away`) |
/// | [`crash`](Self::crash) | sockets dropped without a close frame, as when the process dies |
/// | [`restart`](Self::restart) | listen again on the same port with empty state: sessions and rooms are gone, so clients cannot resume |
///
/// Every method takes `&self`, so one server can be shared (`Arc<TestServer>`) by the tasks of
/// a test. Dropping it stops it gracefully in the background.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use serde_json::json;
/// use sockline::testing::TestServer;
///
/// let server = TestServer::start().await?;
/// assert!(server.ws_url().starts_with("ws://127.0.0.1:"));
/// // Nobody is connected as alice: the event is buffered for nobody.
/// let delivered = server.notify_user("alice", "new_notification", json!({"id": "n1"})).await?;
/// assert_eq!(delivered, 0);
///
/// server.crash();
/// assert!(!server.is_running());
/// server.restart().await?;
/// assert_eq!(server.health().await?["connections"], 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestServer {
    /// The config every (re)start uses, with the port fixed after the first bind.
    config: ServerConfig,
    running: Mutex<Option<RunningServer>>,
}

impl TestServer {
    /// [`ServerConfig::for_tests`] with dev mode on: 1 s heartbeat and auth timeout, 5 s replay
    /// window, JWT secret `test-secret`, `/notify` key `test-key`. Change fields and pass the
    /// result to [`with_config`](Self::with_config).
    pub fn default_config() -> ServerConfig {
        ServerConfig {
            dev: true,
            ..ServerConfig::for_tests()
        }
    }

    /// Starts a server with [`default_config`](Self::default_config).
    pub async fn start() -> io::Result<TestServer> {
        Self::with_config(Self::default_config()).await
    }

    /// Starts a server with `config` (use port 0 to let the OS pick one).
    pub async fn with_config(mut config: ServerConfig) -> io::Result<TestServer> {
        let running = start(config.clone()).await?;
        config.addr = running.local_addr();
        Ok(TestServer {
            config,
            running: Mutex::new(Some(running)),
        })
    }

    fn running(&self) -> MutexGuard<'_, Option<RunningServer>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The address it listens on; it stays the same across restarts.
    pub fn addr(&self) -> SocketAddr {
        self.config.addr
    }

    /// `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The config it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// A token for `user`, valid for an hour (and across restarts: the secret stays).
    pub fn token(&self, user: &str) -> String {
        self.token_valid_for(user, TOKEN_TTL)
    }

    /// A token for `user` that expires after `ttl`, counted in whole seconds (at least 1).
    pub fn token_valid_for(&self, user: &str, ttl: Duration) -> String {
        mint_token(&self.config.jwt_secret, user, ttl)
    }

    /// Its HTTP API (`/notify`, `/health`); it stays valid across restarts.
    pub fn api(&self) -> ServerApi {
        ServerApi::new(self.addr(), self.config.server_key.clone())
    }

    /// `POST /notify {"user", "event", "data"}`; returns how many live sockets it reached (the
    /// event is also buffered for the user's sessions to resume).
    pub async fn notify_user(
        &self,
        user: &str,
        event: &str,
        data: impl Serialize,
    ) -> Result<u64, HttpError> {
        self.api().notify_user(user, event, data).await
    }

    /// `POST /notify {"room", "event", "data"}`; returns how many live sockets it reached.
    pub async fn notify_room(
        &self,
        room: &str,
        event: &str,
        data: impl Serialize,
    ) -> Result<u64, HttpError> {
        self.api().notify_room(room, event, data).await
    }

    /// `GET /health`: `{"status", "connections", "users", "rooms", "uptime_s", …}`.
    pub async fn health(&self) -> Result<Value, HttpError> {
        self.api().health().await
    }

    /// Whether it is listening (not stopped or crashed).
    pub fn is_running(&self) -> bool {
        self.running().is_some()
    }

    /// Graceful stop: refuses new sockets, closes every socket with 1001 and releases the port.
    /// Does nothing when already stopped.
    pub async fn stop(&self) {
        let running = self.running().take();
        if let Some(running) = running {
            running.shutdown().await;
        }
    }

    /// Crash: every socket dropped at once without a close frame (clients see a reset or EOF),
    /// and the port released. Does nothing when already stopped.
    pub fn crash(&self) {
        if let Some(running) = self.running().take() {
            running.abort();
        }
    }

    /// Stops gracefully if still running, then listens again on the same port with a fresh
    /// state: no sessions, rooms or buffered events survive, so clients that come back get a
    /// new session (`resume_failed`).
    pub async fn restart(&self) -> io::Result<()> {
        self.stop().await;
        let running = start(self.config.clone()).await?;
        *self.running() = Some(running);
        Ok(())
    }
}
