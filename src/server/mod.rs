//! The reference server (feature `server`): axum routes over a hub of sessions and rooms.
//!
//! [`start`] binds and spawns everything, then hands back a [`RunningServer`] to stop it with —
//! gracefully ([`RunningServer::shutdown`]: every socket closed with 1001) or as a crash
//! ([`RunningServer::abort`]: sockets dropped without a close frame).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sockline::server::{mint_token, start, ServerConfig};
//! let server = start(ServerConfig::for_tests()).await?;
//! let url = format!("ws://{}/ws", server.local_addr());
//! let token = mint_token("test-secret", "u1", std::time::Duration::from_secs(60));
//! # let _ = (url, token);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The wire protocol is DESIGN §3 ([`crate::protocol`]); what each client event does is in the
//! `handlers` module, the socket lifecycle and its close codes in `connection`, sessions and
//! resume in `session` and `hub`. Nothing here panics on input.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod auth;
pub mod cli;
mod clock;
mod config;
mod connection;
mod handlers;
mod http;
mod hub;
mod rate;
mod session;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{sleep, timeout, Instant};
use tracing::{info, warn};

pub use auth::mint_token;
pub use config::{
    ServerConfig, DEFAULT_AUTH_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_MAX_CONNS_PER_USER,
    DEFAULT_RATE_LIMIT, DEFAULT_REPLAY_AGE, DEFAULT_REPLAY_MAX,
};

use hub::Hub;
use session::ConnId;

/// How long `shutdown` waits for sockets and HTTP connections before aborting what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long `start` retries a port still held by a server that was just stopped.
const BIND_RETRY: Duration = Duration::from_secs(2);

/// Whether the server is taking new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Running,
    ShuttingDown,
}

/// The socket tasks of a server, so they can be awaited or aborted.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    map: Mutex<HashMap<ConnId, AbortHandle>>,
    emptied: Notify,
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, AbortHandle>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, id: ConnId, task: AbortHandle) {
        self.lock().insert(id, task);
    }

    pub(crate) fn remove(&self, id: ConnId) {
        let mut map = self.lock();
        map.remove(&id);
        if map.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    fn abort_all(&self) {
        for task in self.lock().values() {
            task.abort();
        }
    }

    async fn wait_idle(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

/// What every request handler and socket shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) mode: watch::Receiver<Mode>,
    pub(crate) tasks: Arc<Tasks>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) started: Instant,
}

pub(crate) type AppState = Arc<Shared>;

/// A server started by [`start`]. Dropping it without [`shutdown`](Self::shutdown) or
/// [`abort`](Self::abort) leaves it running until the runtime ends.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    serve: JoinHandle<()>,
    janitor: JoinHandle<()>,
    tasks: Arc<Tasks>,
}

impl RunningServer {
    /// The address the server listens on (with the OS-chosen port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful stop: refuses new sockets, closes every socket with 1001 (`going away`), waits for
    /// all socket tasks and HTTP connections to end (at most 5 s, then aborts the rest), and
    /// releases the port.
    pub async fn shutdown(self) {
        info!(addr = %self.addr, "shutting down");
        self.mode.send_replace(Mode::ShuttingDown);
        if timeout(SHUTDOWN_GRACE, self.tasks.wait_idle())
            .await
            .is_err()
        {
            warn!("sockets still open after the grace period; aborting them");
            self.tasks.abort_all();
        }
        let serve_abort = self.serve.abort_handle();
        if timeout(SHUTDOWN_GRACE, self.serve).await.is_err() {
            warn!("HTTP connections still open after the grace period; aborting them");
            serve_abort.abort();
        }
        self.janitor.abort();
        info!("shut down");
    }

    /// Crash simulation: aborts every task at once; sockets are dropped without a close frame.
    /// The port is released as soon as the runtime drops the aborted listener task; [`start`]
    /// on the same address retries for up to 2 s meanwhile.
    pub fn abort(self) {
        warn!(addr = %self.addr, "aborting");
        self.serve.abort();
        self.janitor.abort();
        self.tasks.abort_all();
    }
}

/// Binds `config.addr`, spawns the server on the current tokio runtime and returns at once.
///
/// If the port is still held by a server that was just stopped, binding is retried for up to 2 s.
pub async fn start(config: ServerConfig) -> io::Result<RunningServer> {
    let listener = bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let config = Arc::new(config);
    let hub = Arc::new(Hub::new(&config));
    let (mode_tx, mode_rx) = watch::channel(Mode::Running);
    let tasks = Arc::new(Tasks::default());
    let state: AppState = Arc::new(Shared {
        hub: hub.clone(),
        config: config.clone(),
        mode: mode_rx.clone(),
        tasks: tasks.clone(),
        next_conn: AtomicU64::new(1),
        started: Instant::now(),
    });
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut signal = mode_rx;
    let serve = tokio::spawn(async move {
        let stop = async move {
            // Err means the sender is gone, which only happens when the server is dropped.
            let _ = signal.wait_for(|mode| *mode != Mode::Running).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            warn!(error = %e, "server stopped with an error");
        }
    });
    let period = hub::janitor_period(config.replay_age);
    let janitor = tokio::spawn(async move {
        loop {
            sleep(period).await;
            hub.lock().expire(Instant::now());
        }
    });
    info!(addr = %addr, dev = config.dev, "listening");
    Ok(RunningServer {
        addr,
        mode: mode_tx,
        serve,
        janitor,
        tasks,
    })
}

/// Binds, retrying briefly while a just-stopped server still holds a fixed port.
/// (tokio sets `SO_REUSEADDR` on Unix, so sockets in `TIME_WAIT` do not block the port.)
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let deadline = Instant::now() + BIND_RETRY;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && addr.port() != 0
                    && Instant::now() < deadline =>
            {
                sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
