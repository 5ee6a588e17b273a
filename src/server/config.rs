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
/// Default inbound frames of any type per second per socket (the burst is twice this): room for
/// a client flushing a full 1,000-message outbox at once, far below a flood.
pub const DEFAULT_FRAME_RATE: u32 = 1_000;
/// Default number of events a session keeps for resume.
pub const DEFAULT_REPLAY_MAX: usize = 1_000;
/// Default age after which buffered events and detached sessions are dropped.
pub const DEFAULT_REPLAY_AGE: Duration = Duration::from_millis(120_000);
/// Default time a new TCP connection has to send a complete HTTP request head; also the
/// longest a keep-alive HTTP connection may sit idle between requests.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Default time from accept until a connection has upgraded to a WebSocket; a plain HTTP
/// connection is shut down gracefully at that point.
pub const DEFAULT_UPGRADE_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Default cap on open TCP connections (HTTP and WebSocket, authenticated or not).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Default cap on connections from one IP address (one /64 for IPv6) that have not
/// authenticated yet.
pub const DEFAULT_MAX_UNAUTHED_PER_IP: usize = 256;
/// Default global budget for replay memory: a quarter of a 1 GiB box.
pub const DEFAULT_REPLAY_BUDGET_BYTES: usize = 256 << 20;
/// Default replay bytes one user's sessions may hold together (counted at full size).
pub const DEFAULT_REPLAY_USER_BYTES: usize = 1 << 20;
/// Default room size up to which joins and leaves are announced (`user_joined`/`user_left`).
pub const DEFAULT_ANNOUNCE_MAX_MEMBERS: usize = 100;
/// Default global budget for unread-notification ids kept for users.
pub const DEFAULT_UNREAD_BUDGET_BYTES: usize = 32 << 20;
/// Default time a (user, client) pair's send-id memory is kept after its last send: far longer
/// than the replay window, so a client that comes back within a day is never processed twice.
pub const DEFAULT_DEDUPE_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Default global budget for send-id memory (remembered acks and floors of every pair).
pub const DEFAULT_DEDUPE_BUDGET_BYTES: usize = 64 << 20;
/// Default number of a user's clients whose recent acks are kept at once (older ones keep
/// only their floor).
pub const DEFAULT_DEDUPE_CLIENTS_PER_USER: usize = 16;

/// Default lease of a cluster node's sockets and sessions in Redis: a crashed node's sockets
/// stop counting against their users' limits once it runs out.
pub const DEFAULT_CLUSTER_LEASE: Duration = Duration::from_secs(15);

/// Everything [`start`](super::start) needs. Build it with [`ServerConfig::for_tests`] or a struct
/// literal; the binary builds it from its command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 lets the OS pick (see [`RunningServer::local_addr`](super::RunningServer::local_addr)).
    pub addr: SocketAddr,
    /// Where to serve `GET /health` a second time, on its own thread and runtime, for probes kept
    /// off the public port (on `addr` the accept thread answers it as promptly); `None`: only on
    /// `addr`. Port 0 lets the OS pick (see `RunningServer::health_addr`). Meant for an internal
    /// address (the load balancer's side): it has none of the main port's admission limits.
    pub health_addr: Option<SocketAddr>,
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
    /// Inbound frames of every type (pings, pongs, acks, invalid frames, sends) per second per
    /// socket (token bucket, burst = 2x); over it the socket is closed with 1008. 0 disables it.
    pub frame_rate: u32,
    /// Time to receive a complete HTTP request head (and the longest idle keep-alive gap);
    /// then the TCP connection is closed.
    pub header_timeout: Duration,
    /// Time from accept until the connection has upgraded to a WebSocket; then a plain HTTP
    /// connection is shut down gracefully (an in-flight response gets one more such period).
    pub upgrade_timeout: Duration,
    /// Open TCP connections at most; the next one is answered `503` and closed. 0: no cap.
    pub max_connections: usize,
    /// Connections from one IP (one /64 for IPv6) that have not authenticated yet; the next
    /// one is answered `503` (`too_many_unauthenticated`) and closed. 0: no cap.
    pub max_unauthed_per_ip: usize,
    /// Browser origins allowed to open `/ws`; empty accepts any. A request without `Origin`
    /// (a native client) is always accepted: the check guards against cross-site pages.
    pub allowed_origins: Vec<String>,
    /// A directory served at `/`, with `index.html` as the fallback for unknown paths (SPA routing).
    pub static_dir: Option<PathBuf>,
    /// Events kept per session for resume.
    pub replay_max: usize,
    /// How long buffered events, and sessions without a socket, are kept for resume.
    pub replay_age: Duration,
    /// Bytes all replay buffers may use together (event bodies once, plus a per-entry cost);
    /// over it the oldest events are evicted first.
    pub replay_budget_bytes: usize,
    /// Replay bytes one user's sessions may hold together, each event counted at full size;
    /// over it the receiving session drops its own oldest events first.
    pub replay_user_bytes: usize,
    /// Bytes of unread-notification ids kept for all users together; over it the user whose
    /// unread list was touched least recently loses it first.
    pub unread_budget_bytes: usize,
    /// Rooms announce joins and leaves (volatile `user_joined`/`user_left`) only while they
    /// have at most this many members; 0 turns announcements off. Larger rooms stay quiet so a
    /// join costs O(1); members ask `get_room_members` instead.
    pub announce_max_members: usize,
    /// How long a (user, client) pair's send-id memory is kept after its last send
    /// (PROTOCOL.md §5); then a resend of an old id may be processed again.
    pub dedupe_retention: Duration,
    /// Bytes all send-id memory may use together; over it the least recently used pairs lose
    /// their remembered acks first (keeping their floor), then the oldest floors go.
    pub dedupe_budget_bytes: usize,
    /// Pairs (clients) of one user whose acks are kept at once; the user's least recently used
    /// pair beyond it keeps only its floor. A user keeps at most 64 times this many pairs.
    pub dedupe_clients_per_user: usize,
    /// Cluster mode: the Redis to share state with (`redis://HOST:PORT`); `None`: one node,
    /// everything in memory.
    pub redis: Option<String>,
    /// This node's id in the cluster (`None`: a random one).
    pub node_id: Option<String>,
    /// How long a cluster node's socket and session leases last without renewal.
    pub cluster_lease: Duration,
    /// Demo mode: serves `GET /dev/token?user=ID` and the fault routes `POST /dev/drop`,
    /// `/dev/outage` and `/dev/expire` (see the `dev` module docs); without it `/dev/*` is 404.
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
            health_addr: None,
            auth_timeout: Duration::from_millis(1_000),
            heartbeat: Duration::from_millis(1_000),
            max_conns_per_user: DEFAULT_MAX_CONNS_PER_USER,
            max_frame_bytes: MAX_FRAME_BYTES,
            rate_limit: DEFAULT_RATE_LIMIT,
            frame_rate: DEFAULT_FRAME_RATE,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            upgrade_timeout: DEFAULT_UPGRADE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_unauthed_per_ip: DEFAULT_MAX_UNAUTHED_PER_IP,
            allowed_origins: Vec::new(),
            static_dir: None,
            replay_max: DEFAULT_REPLAY_MAX,
            replay_age: Duration::from_millis(5_000),
            replay_budget_bytes: DEFAULT_REPLAY_BUDGET_BYTES,
            replay_user_bytes: DEFAULT_REPLAY_USER_BYTES,
            unread_budget_bytes: DEFAULT_UNREAD_BUDGET_BYTES,
            announce_max_members: DEFAULT_ANNOUNCE_MAX_MEMBERS,
            dedupe_retention: DEFAULT_DEDUPE_RETENTION,
            dedupe_budget_bytes: DEFAULT_DEDUPE_BUDGET_BYTES,
            dedupe_clients_per_user: DEFAULT_DEDUPE_CLIENTS_PER_USER,
            redis: None,
            node_id: None,
            cluster_lease: DEFAULT_CLUSTER_LEASE,
            dev: false,
            jwt_secret: "test-secret".to_owned(),
            server_key: "test-key".to_owned(),
        }
    }
}
