//! The `sockline-server` command line: its options ([`Args`]), how they and the environment
//! become a [`ServerConfig`], and the run-until-signal loop ([`run`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use super::{start, ServerConfig};

/// Environment variable holding the HS256 secret for client tokens.
pub const JWT_SECRET_ENV: &str = "SOCKLINE_JWT_SECRET";
/// Environment variable holding the bearer key for `POST /notify`.
pub const SERVER_KEY_ENV: &str = "SOCKLINE_SERVER_KEY";
/// The `/notify` key `--dev` uses when none is set.
pub const DEV_SERVER_KEY: &str = "dev-key";

/// The reference sockline WebSocket server.
#[derive(Debug, Parser)]
#[command(
    name = "sockline-server",
    version,
    about = "The reference sockline WebSocket server: GET /ws, POST /notify, GET /health.",
    after_help = "Environment:\n  SOCKLINE_JWT_SECRET  HS256 secret for client tokens (claims: sub = user id, exp required); required unless --dev\n  SOCKLINE_SERVER_KEY  bearer key for POST /notify; required unless --dev (then `dev-key`)\n  RUST_LOG             log filter for stderr (default: info)\n\nThe first line on stdout is `listening on http://HOST:PORT`; with --health-addr the second is `health on http://HOST:PORT`. SIGINT/SIGTERM close every socket with 1001, then exit 0."
)]
pub struct Args {
    /// Address to listen on; port 0 lets the OS pick one.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Also serve GET /health here, on a thread and runtime of its own, for load balancer and orchestrator probes kept off the public port (the main port's accept thread answers GET /health as promptly during a reconnect wave); port 0 lets the OS pick (printed on stdout's second line); bind it to an internal address: it has none of the main port's admission limits [default: none].
    #[arg(long, value_name = "HOST:PORT")]
    pub health_addr: Option<SocketAddr>,
    /// Milliseconds a new socket has to send its `auth` frame (then close 4000).
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub auth_timeout_ms: u64,
    /// Milliseconds between pings; a socket silent for two intervals is closed with 1001.
    #[arg(long, value_name = "MS", default_value_t = 30000)]
    pub heartbeat_ms: u64,
    /// Live sockets allowed per user; the next one is closed with 4008.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_conns_per_user: usize,
    /// Largest text frame accepted, in bytes; a larger one closes the socket with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = crate::protocol::MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// Sends per second per socket (token bucket; burst is twice this; 0 disables).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub rate_limit: u32,
    /// Inbound frames of every type (pings, pongs, acks, invalid frames, sends) per second per socket; burst is twice this; over it the socket is closed with 1008 (0 disables).
    #[arg(long, value_name = "N", default_value_t = crate::server::DEFAULT_FRAME_RATE)]
    pub frame_rate: u32,
    /// Milliseconds a new TCP connection has to send a complete HTTP request head (also the longest idle gap between keep-alive requests); then it is closed.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub header_timeout_ms: u64,
    /// Milliseconds from accept until the connection has upgraded to a WebSocket; then a plain HTTP connection is shut down gracefully.
    #[arg(long, value_name = "MS", default_value_t = 10000)]
    pub upgrade_timeout_ms: u64,
    /// Open TCP connections at most (HTTP and WebSocket); the next is answered 503 `server_full` and closed (0: no cap; keep it under `ulimit -n`).
    #[arg(long, value_name = "N", default_value_t = crate::server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Connections from one IP (one /64 for IPv6) that have not authenticated yet; the next is answered 503 `too_many_unauthenticated` and closed (0: no cap; behind a proxy every client shares its IP).
    #[arg(long, value_name = "N", default_value_t = crate::server::DEFAULT_MAX_UNAUTHED_PER_IP)]
    pub max_unauthed_per_ip: usize,
    /// Browser origin allowed to open /ws (repeatable); requests without Origin always pass [default: none, so any origin is accepted].
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// Directory served at / (unknown paths fall back to its index.html) [default: none].
    #[arg(long, value_name = "DIR")]
    pub static_dir: Option<PathBuf>,
    /// Events each session keeps for resume.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub replay_max: usize,
    /// Milliseconds buffered events and disconnected sessions are kept for resume.
    #[arg(long, value_name = "MS", default_value_t = 120000)]
    pub replay_age_ms: u64,
    /// Bytes all replay buffers may use together (each event body once plus a small cost per buffered entry); over it the oldest events are evicted first (sized for a 1 GiB box).
    #[arg(long, value_name = "BYTES", default_value_t = crate::server::DEFAULT_REPLAY_BUDGET_BYTES)]
    pub replay_budget_bytes: usize,
    /// Replay bytes one user's sessions may hold together (each event at full size); over it the receiving session drops its own oldest events first.
    #[arg(long, value_name = "BYTES", default_value_t = crate::server::DEFAULT_REPLAY_USER_BYTES)]
    pub replay_user_bytes: usize,
    /// Bytes of unread-notification ids kept for all users together; over it the user notified least recently loses their unread list first.
    #[arg(long, value_name = "BYTES", default_value_t = crate::server::DEFAULT_UNREAD_BUDGET_BYTES)]
    pub unread_budget_bytes: usize,
    /// Rooms announce joins and leaves (volatile user_joined/user_left events) only while they have at most this many members; 0 turns announcements off.
    #[arg(long, value_name = "N", default_value_t = crate::server::DEFAULT_ANNOUNCE_MAX_MEMBERS)]
    pub announce_max_members: usize,
    /// Seconds a (user, client) pair's send-id memory is kept after its last send (PROTOCOL.md §5: a resend of an id it processed is answered, not processed again); keep it far above the replay window.
    #[arg(long, value_name = "SECS", default_value_t = crate::server::DEFAULT_DEDUPE_RETENTION.as_secs())]
    pub dedupe_retention: u64,
    /// Bytes all send-id memory may use together; over it the least recently used pairs keep only their floor (ids at or below it are answered id_expired), then the oldest floors are dropped (counted in /health).
    #[arg(long, value_name = "BYTES", default_value_t = crate::server::DEFAULT_DEDUPE_BUDGET_BYTES)]
    pub dedupe_budget_bytes: usize,
    /// Clients of one user whose recent acks are kept at once; the user's least recently used one beyond it keeps only its floor (and a user keeps at most 64 times this many clients in all).
    #[arg(long, value_name = "N", default_value_t = crate::server::DEFAULT_DEDUPE_CLIENTS_PER_USER)]
    pub dedupe_clients_per_user: usize,
    /// Cluster mode: share sessions, fan-out, replay, dedupe, socket limits, unread counts and presence with every node using the same Redis (redis://HOST:PORT, a single primary) [default: none, one node in memory].
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// This node's id in the cluster, shown in /health [default: random].
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Demo mode (never in production): serves GET /dev/token?user=ID and the fault routes POST /dev/drop?user=U&code=C (close U's sockets with C), /dev/outage?user=U&seconds=S (U's new sockets closed with 1013 after auth for S <= 120 s) and /dev/expire?user=U (close U's sockets with 4002); falls back to a random secret and key `dev-key` [default: off].
    #[arg(long)]
    pub dev: bool,
}

impl Args {
    /// Builds the config, reading secrets through `env`. Returns warnings to print, or an error
    /// message when a secret is missing outside `--dev`.
    pub fn into_config(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(ServerConfig, Vec<String>), String> {
        let mut warnings = Vec::new();
        let present = |name: &str| env(name).filter(|v| !v.is_empty());
        let jwt_secret = match present(JWT_SECRET_ENV) {
            Some(secret) => secret,
            None if self.dev => {
                warnings.push(format!(
                    "warning: {JWT_SECRET_ENV} is not set; --dev uses a random secret (tokens die with this process)"
                ));
                format!("{:032x}", rand::random::<u128>())
            }
            None => {
                return Err(format!(
                    "{JWT_SECRET_ENV} is not set: it is the HS256 secret client tokens are checked with (only --dev may run without it)"
                ))
            }
        };
        let server_key = match present(SERVER_KEY_ENV) {
            Some(key) => key,
            None if self.dev => {
                warnings.push(format!(
                    "warning: {SERVER_KEY_ENV} is not set; --dev accepts `{DEV_SERVER_KEY}` on POST /notify"
                ));
                DEV_SERVER_KEY.to_owned()
            }
            None => {
                return Err(format!(
                    "{SERVER_KEY_ENV} is not set: it is the bearer key POST /notify requires (only --dev may run without it)"
                ))
            }
        };
        let config = ServerConfig {
            addr: self.addr,
            health_addr: self.health_addr,
            auth_timeout: Duration::from_millis(self.auth_timeout_ms),
            heartbeat: Duration::from_millis(self.heartbeat_ms.max(1)),
            max_conns_per_user: self.max_conns_per_user,
            max_frame_bytes: self.max_frame_bytes,
            rate_limit: self.rate_limit,
            frame_rate: self.frame_rate,
            header_timeout: Duration::from_millis(self.header_timeout_ms.max(1)),
            upgrade_timeout: Duration::from_millis(self.upgrade_timeout_ms.max(1)),
            max_connections: self.max_connections,
            max_unauthed_per_ip: self.max_unauthed_per_ip,
            allowed_origins: self.allowed_origins,
            static_dir: self.static_dir,
            replay_max: self.replay_max,
            replay_age: Duration::from_millis(self.replay_age_ms),
            replay_budget_bytes: self.replay_budget_bytes,
            replay_user_bytes: self.replay_user_bytes,
            unread_budget_bytes: self.unread_budget_bytes,
            announce_max_members: self.announce_max_members,
            dedupe_retention: Duration::from_secs(self.dedupe_retention),
            dedupe_budget_bytes: self.dedupe_budget_bytes,
            dedupe_clients_per_user: self.dedupe_clients_per_user,
            redis: self.redis,
            node_id: self.node_id,
            cluster_lease: crate::server::DEFAULT_CLUSTER_LEASE,
            dev: self.dev,
            jwt_secret,
            server_key,
        };
        Ok((config, warnings))
    }
}

/// Runs the server from parsed arguments until SIGINT or SIGTERM, then shuts it down gracefully.
/// Prints `listening on http://HOST:PORT` as the first line on stdout once bound.
pub async fn run(args: Args) -> ExitCode {
    let (config, warnings) = match args.into_config(|name| std::env::var(name).ok()) {
        Ok(built) => built,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    for warning in warnings {
        eprintln!("{warning}");
    }
    let server = match start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let printed = writeln!(stdout, "listening on http://{}", server.local_addr())
        .and_then(|()| match server.health_addr() {
            Some(addr) => writeln!(stdout, "health on http://{addr}"),
            None => Ok(()),
        })
        .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(e) = printed {
        tracing::warn!(error = %e, "could not write the listening line to stdout");
    }
    match wait_for_signal().await {
        Ok(name) => tracing::info!(signal = name, "stopping"),
        Err(e) => {
            eprintln!("error: cannot listen for signals: {e}");
            server.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<&'static str> {
    tokio::signal::ctrl_c().await.map(|()| "ctrl-c")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::parse_from(std::iter::once("sockline-server").chain(extra.iter().copied()))
    }

    #[test]
    fn secrets_are_required_outside_dev() {
        let err = args(&[]).into_config(|_| None).unwrap_err();
        assert!(err.contains(JWT_SECRET_ENV));
        let err = args(&[])
            .into_config(|n| (n == JWT_SECRET_ENV).then(|| "s".to_owned()))
            .unwrap_err();
        assert!(err.contains(SERVER_KEY_ENV));
        let (config, warnings) = args(&["--dev"]).into_config(|_| None).unwrap();
        assert_eq!(warnings.len(), 2);
        assert_eq!(config.server_key, DEV_SERVER_KEY);
        assert_eq!(config.jwt_secret.len(), 32);
    }

    #[test]
    fn defaults_match_the_design() {
        let (config, _) = args(&[]).into_config(|_| Some("x".to_owned())).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.auth_timeout, crate::server::DEFAULT_AUTH_TIMEOUT);
        assert_eq!(config.heartbeat, crate::server::DEFAULT_HEARTBEAT);
        assert_eq!(config.max_conns_per_user, 5);
        assert_eq!(config.max_frame_bytes, 65536);
        assert_eq!(config.rate_limit, 50);
        assert_eq!(config.replay_max, 1000);
        assert_eq!(config.replay_age, crate::server::DEFAULT_REPLAY_AGE);
        assert_eq!(config.frame_rate, 1000);
        assert_eq!(config.header_timeout, crate::server::DEFAULT_HEADER_TIMEOUT);
        assert_eq!(
            config.upgrade_timeout,
            crate::server::DEFAULT_UPGRADE_TIMEOUT
        );
        assert_eq!(config.max_connections, 16_384);
        assert_eq!(config.max_unauthed_per_ip, 256);
        assert_eq!(config.replay_budget_bytes, 256 << 20);
        assert_eq!(config.replay_user_bytes, 1 << 20);
        assert_eq!(config.unread_budget_bytes, 32 << 20);
        assert_eq!(config.announce_max_members, 100);
        assert_eq!(config.dedupe_retention, Duration::from_secs(86_400));
        assert_eq!(config.dedupe_budget_bytes, 64 << 20);
        assert_eq!(config.dedupe_clients_per_user, 16);
        assert!(config.allowed_origins.is_empty() && config.static_dir.is_none() && !config.dev);
    }
}
