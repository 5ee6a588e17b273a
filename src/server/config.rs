//! The server's configuration ([`ServerConfig`]) and its documented defaults.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::MAX_FRAME_BYTES;

/// Default `auth` deadline after the upgrade (DESIGN §4: 5 s).
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Default interval between server pings (DESIGN §4: 30 s).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(30_000);
/// Default limit of live sockets per user.
pub const DEFAULT_MAX_CONNS_PER_USER: usize = 5;
/// Default sends per second per socket (the burst is twice this).
pub const DEFAULT_RATE_LIMIT: u32 = 50;
/// Default number of events a session keeps for resume.
pub const DEFAULT_REPLAY_MAX: usize = 1_000;
/// Default age after which buffered events and detached sessions are dropped.
pub const DEFAULT_REPLAY_AGE: Duration = Duration::from_millis(120_000);

/// Everything [`start`](super::start) needs. Build it with [`ServerConfig::for_tests`] or a struct
/// literal; the binary builds it from its command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 lets the OS pick (see [`RunningServer::local_addr`](super::RunningServer::local_addr)).
    pub addr: SocketAddr,
    /// How long a new socket may take to send its `auth` frame before it is closed with 4000.
    pub auth_timeout: Duration,
    /// Interval between `ping` frames; a socket silent for two intervals is closed with 1001.
    pub heartbeat: Duration,
    /// Live sockets allowed per user; the next one is closed with 4008.
    pub max_conns_per_user: usize,
    /// Largest text frame accepted, in bytes; a larger one closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// `send` frames per second per socket (token bucket, burst = 2x); 0 disables the limit.
    pub rate_limit: u32,
    /// Browser origins allowed to open `/ws`; empty accepts any. A request without `Origin`
    /// (a native client) is always accepted: the check guards against cross-site pages.
    pub allowed_origins: Vec<String>,
    /// A directory served at `/`, with `index.html` as the fallback for unknown paths (SPA routing).
    pub static_dir: Option<PathBuf>,
    /// Events kept per session for resume (also bounded to 1 MiB of frames per session).
    pub replay_max: usize,
    /// How long buffered events, and sessions without a socket, are kept for resume.
    pub replay_age: Duration,
    /// Demo mode: serves `GET /dev/token?user=ID`.
    pub dev: bool,
    /// HS256 secret that `auth` tokens are verified with.
    pub jwt_secret: String,
    /// Bearer key that `POST /notify` requires.
    pub server_key: String,
}

impl ServerConfig {
    /// A config for tests: `127.0.0.1:0`, 1 s auth timeout and heartbeat, 5 s replay window,
    /// the product limits otherwise, secret `test-secret` and server key `test-key`.
    pub fn for_tests() -> Self {
        ServerConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            auth_timeout: Duration::from_millis(1_000),
            heartbeat: Duration::from_millis(1_000),
            max_conns_per_user: DEFAULT_MAX_CONNS_PER_USER,
            max_frame_bytes: MAX_FRAME_BYTES,
            rate_limit: DEFAULT_RATE_LIMIT,
            allowed_origins: Vec::new(),
            static_dir: None,
            replay_max: DEFAULT_REPLAY_MAX,
            replay_age: Duration::from_millis(5_000),
            dev: false,
            jwt_secret: "test-secret".to_owned(),
            server_key: "test-key".to_owned(),
        }
    }
}
