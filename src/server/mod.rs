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
//! The wire protocol is DESIGN §3 ([`crate::protocol`]). Where things live: admission caps in
//! `gate`; the accept thread (which answers `/health` itself and hands every other connection to
//! the main runtime) and the header and upgrade deadlines in `listener`; the handshake in
//! `upgrade`; the socket lifecycle and its close codes in `connection`; what each client event
//! does in `handlers`; sessions, resume and fan-out in `hub` (with `session`, `rooms`, `users`,
//! `replay` and `outbox`); the `/health` counters in `stats`; and the probe listener (`/health` on
//! a port and thread of its own, [`ServerConfig::health_addr`]) in `probe`. Nothing here panics
//! on input, and every buffer is bounded (see [`ServerConfig`] for each limit and its default).

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod auth;
mod broker;
pub mod cli;
mod clock;
mod cluster;
mod config;
mod connection;
mod dedupe;
mod dev;
mod frames;
mod gate;
mod handlers;
mod handshake;
#[cfg(feature = "fuzzing")]
pub(crate) mod harness;
mod http;
mod hub;
mod listener;
mod logsafe;
mod outbox;
mod presence;
mod probe;
mod rate;
mod replay;
mod rooms;
mod session;
mod stats;
mod tasks;
mod upgrade;
mod users;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use tracing::{info, warn};

pub use auth::mint_token;
pub use cluster::ClusterError;
pub use config::{
    ServerConfig, DEFAULT_ANNOUNCE_MAX_MEMBERS, DEFAULT_AUTH_TIMEOUT, DEFAULT_CLUSTER_LEASE,
    DEFAULT_DEDUPE_BUDGET_BYTES, DEFAULT_DEDUPE_CLIENTS_PER_USER, DEFAULT_DEDUPE_RETENTION,
    DEFAULT_FRAME_RATE, DEFAULT_HEADER_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNS_PER_USER, DEFAULT_MAX_UNAUTHED_PER_IP, DEFAULT_RATE_LIMIT,
    DEFAULT_REPLAY_AGE, DEFAULT_REPLAY_BUDGET_BYTES, DEFAULT_REPLAY_MAX, DEFAULT_REPLAY_USER_BYTES,
    DEFAULT_UNREAD_BUDGET_BYTES, DEFAULT_UPGRADE_TIMEOUT,
};

use broker::Backend;
use gate::Gate;
use hub::Hub;
use stats::Stats;
use tasks::Tasks;

/// How long `shutdown` waits for sockets and HTTP connections before aborting what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Connections the kernel may queue for `accept`.
const LISTEN_BACKLOG: u32 = 8192;
/// How long `start` retries a port still held by a server that was just stopped.
const BIND_RETRY: Duration = Duration::from_secs(2);

/// Whether the server is taking new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Running,
    ShuttingDown,
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
/// [`abort`](Self::abort) starts the same graceful stop in the background (every socket closed
/// with 1001) without waiting for it.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    /// The probe listener's address and thread (`ServerConfig::health_addr`).
    probe: Option<(SocketAddr, std::thread::JoinHandle<()>)>,
    mode: watch::Sender<Mode>,
    accept: listener::AcceptThread,
    janitor: JoinHandle<()>,
    /// A cluster node's subscription and lease renewal.
    background: Vec<JoinHandle<()>>,
    tasks: Arc<Tasks>,
}

impl RunningServer {
    /// The address the server listens on (with the OS-chosen port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The probe listener's address (`GET /health` only, on its own thread), when
    /// [`ServerConfig::health_addr`] asked for one (with the OS-chosen port when it said 0).
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.probe.as_ref().map(|(addr, _)| *addr)
    }

    /// Graceful stop: refuses new connections, closes every socket with 1001 (`going away`),
    /// shuts HTTP connections down gracefully, waits for all of them to end (at most 5 s, then
    /// aborts the rest), and releases the port.
    pub async fn shutdown(self) {
        info!(addr = %self.addr, "shutting down");
        self.mode.send_replace(Mode::ShuttingDown);
        // The accept thread stops accepting at once and ends once the connections it serves (and
        // hands over) are done; only then is every connection in `tasks`.
        let accept = self.accept;
        let abort = accept.abort_handle();
        if !joined_within_grace(move || accept.join()).await {
            abort.abort();
        }
        if timeout(SHUTDOWN_GRACE, self.tasks.wait_idle())
            .await
            .is_err()
        {
            warn!("connections still open after the grace period; aborting them");
            self.tasks.abort_all();
        }
        self.janitor.abort();
        for task in &self.background {
            task.abort();
        }
        if let Some((_, thread)) = self.probe {
            // It saw the mode change and stops once its connections have answered; one that
            // holds a connection open past the grace is left to end with the process.
            if !joined_within_grace(move || drop(thread.join())).await {
                warn!("the probe listener still has connections open; not waiting for it");
            }
        }
        info!("shut down");
    }

    /// Crash simulation: aborts every task at once; sockets are dropped without a close frame.
    /// The port is released as soon as the runtime drops the aborted listener task; [`start`]
    /// on the same address retries for up to 2 s meanwhile.
    pub fn abort(self) {
        warn!(addr = %self.addr, "aborting");
        self.accept.abort();
        self.janitor.abort();
        for task in &self.background {
            task.abort();
        }
        self.tasks.abort_all();
    }
}

/// Runs `join` (a thread's blocking join) off the runtime; whether it returned within
/// [`SHUTDOWN_GRACE`].
async fn joined_within_grace(join: impl FnOnce() + Send + 'static) -> bool {
    timeout(SHUTDOWN_GRACE, tokio::task::spawn_blocking(join))
        .await
        .is_ok()
}

/// Binds `config.addr`, spawns the server on the current tokio runtime (and its accept thread,
/// which hands every connection but a `GET /health` probe to this runtime) and returns at once.
/// With `config.redis`, it first joins the cluster (Redis must answer now; an error of kind
/// `Other` wrapping a [`ClusterError`] otherwise).
///
/// If the port is still held by a server that was just stopped, binding is retried for up to 2 s.
pub async fn start(config: ServerConfig) -> io::Result<RunningServer> {
    let backend = match &config.redis {
        Some(url) => Backend::Redis(
            cluster::Cluster::connect(url, &config)
                .await
                .map_err(io::Error::other)?,
        ),
        None => Backend::Memory,
    };
    let listener = bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let config = Arc::new(config);
    let stats = Arc::new(Stats::default());
    let hub = Arc::new(Hub::new(&config, stats.clone(), backend));
    let background = match hub.cluster() {
        Some(cluster) => cluster.start(&hub),
        None => Vec::new(),
    };
    let gate = Arc::new(Gate::new(
        config.max_connections,
        config.max_unauthed_per_ip,
        stats,
    ));
    let (mode_tx, mode_rx) = watch::channel(Mode::Running);
    let tasks = Arc::new(Tasks::new(tokio::runtime::Handle::current()));
    let state: AppState = Arc::new(Shared {
        hub: hub.clone(),
        config: config.clone(),
        mode: mode_rx,
        tasks: tasks.clone(),
        next_conn: AtomicU64::new(1),
        started: Instant::now(),
    });
    let probe = match config.health_addr {
        Some(addr) => Some(probe::spawn(addr, state.clone())?),
        None => None,
    };
    let router = http::router(state.clone());
    let accept = listener::AcceptThread::spawn(listener.into_std()?, router, state, gate)?;
    let period = hub::janitor_period(config.replay_age);
    let janitor = tokio::spawn(async move {
        loop {
            sleep(period).await;
            hub.expire(Instant::now());
        }
    });
    info!(addr = %addr, dev = config.dev, "listening");
    if let Some((probe_addr, _)) = &probe {
        info!(addr = %probe_addr, "probe listener (GET /health)");
    }
    Ok(RunningServer {
        addr,
        probe,
        mode: mode_tx,
        accept,
        janitor,
        background,
        tasks,
    })
}

/// A listener with a deep accept backlog (the kernel caps it at `net.core.somaxconn`): when
/// thousands of clients reconnect at once, a shallow backlog drops SYNs and each dropped client
/// waits a full SYN retransmit (1 s) before it is even accepted.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds, retrying briefly while a just-stopped server still holds a fixed port.
/// (tokio sets `SO_REUSEADDR` on Unix, so sockets in `TIME_WAIT` do not block the port.)
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let deadline = Instant::now() + BIND_RETRY;
    loop {
        match listen(addr) {
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
