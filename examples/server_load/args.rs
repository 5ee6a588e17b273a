//! The load tool's command line ([`Args`]), the wire it speaks ([`Proto`]) and the servers it
//! drives ([`Target`]: loopback addresses only).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Opens N idle WebSockets against a running server (each its own user, all in one room), then
/// times room fan-outs triggered by `POST /notify`, and optionally a disconnect/reconnect storm.
#[derive(Debug, Parser)]
#[command(name = "server_load", after_help = AFTER_HELP)]
pub(crate) struct Args {
    /// The wire to speak.
    #[arg(long, value_enum, default_value = "sockline")]
    pub proto: Proto,
    /// A server's base URL, `http://127.0.0.1:PORT` (repeatable: sockets go round-robin, socket
    /// i to URL i mod count). Loopback only.
    #[arg(long = "url", value_name = "URL", required_unless_present = "table")]
    pub urls: Vec<String>,
    /// Storm: a server's probe listener, `http://127.0.0.1:PORT` (`sockline-server
    /// --health-addr`; repeatable): its `/health` is polled as well and reported apart.
    #[arg(long = "probe-url", value_name = "URL")]
    pub probe_urls: Vec<String>,
    /// Where `POST /notify` goes [default: the first --url].
    #[arg(long, value_name = "URL")]
    pub notify_url: Option<String>,
    /// The name this run has in reports and tables [default: the --proto name].
    #[arg(long)]
    pub label: Option<String>,
    /// Sockets to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub sockets: usize,
    /// Measured fan-out rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Rounds run first and left out of the figures.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Pause between rounds, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub round_gap_ms: u64,
    /// How long a round waits for the last socket, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub round_timeout_ms: u64,
    /// Bytes of padding in each event's data (on top of ~20 bytes of round marker).
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub payload_bytes: usize,
    /// The room every socket joins (sockline accepts `chat:{id}` rooms).
    #[arg(long, default_value = "chat:bench")]
    pub room: String,
    /// Users are PREFIX0 … PREFIX{N-1}, one per socket.
    #[arg(long, value_name = "PREFIX", default_value = "u")]
    pub user_prefix: String,
    /// Handshakes (TCP + WebSocket + auth + join) in flight at once while connecting.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub connect_concurrency: usize,
    /// How long connecting all N may take before the run goes on with the sockets it has.
    #[arg(long, value_name = "S", default_value_t = 120)]
    pub connect_timeout_s: u64,
    /// Quiet time (no frame received) after joining that counts as settled before RSS is read.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub settle_ms: u64,
    /// Longest wait for that quiet time, in seconds.
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub settle_timeout_s: u64,
    /// Server process whose RSS (/proc/PID/status VmRSS) is read (repeatable: summed). Without
    /// it, `rss_bytes` from each server's /health is used when it reports one.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pids: Vec<u32>,
    /// sockline: mint HS256 tokens with this secret (what the server has in SOCKLINE_JWT_SECRET).
    /// Without it, tokens come from the server's `GET /dev/token?user=ID` (`--dev` servers).
    #[arg(long, env = "SOCKLINE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// sockline: the bearer key for `POST /notify` (SOCKLINE_SERVER_KEY).
    #[arg(
        long,
        env = "SOCKLINE_SERVER_KEY",
        hide_env_values = true,
        default_value = "dev-key"
    )]
    pub server_key: String,
    /// After the rounds: drop every socket at once (TCP reset), wait for the server to see them
    /// all gone, then reconnect them all (sockline: resuming their sessions).
    #[arg(long)]
    pub storm: bool,
    /// Storm: events posted to the room while every socket is away (sockline must replay them).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub storm_events: u32,
    /// Storm: one more event every MS while sockets come back (0: none).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub storm_live_interval_ms: u64,
    /// Storm: `/health` is polled every MS, one request at a time.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub health_interval_ms: u64,
    /// Storm: longest wait for the server to report 0 connections after the drop.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub drain_timeout_s: u64,
    /// Storm: longest wait for every socket to be back.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub storm_timeout_s: u64,
    /// Storm: the first reconnect delay's base (the SDK's `Backoff::initial`, 1 s); retry n waits
    /// base·2^(n-1), at most 5 retries, as the SDK does.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub backoff_initial_ms: u64,
    /// Storm: no jitter (the SDK draws each delay from [base/2, base]; this uses base).
    #[arg(long)]
    pub no_jitter: bool,
    /// Runtime worker threads of this tool (1: a current-thread runtime) [default: the CPUs].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Print the side-by-side table of these JSON reports (ratios against the `bare` label)
    /// and exit; nothing is connected.
    #[arg(long, value_name = "REPORT", num_args = 1..)]
    pub table: Vec<PathBuf>,
}

const AFTER_HELP: &str = "\
Examples:
  sockline-server --dev --addr 127.0.0.1:0          # prints its port; then:
  server_load --url http://127.0.0.1:PORT -n 1000 --storm
  node bench/peers/socketio-server.mjs 0; server_load --proto socketio --url http://127.0.0.1:PORT
  scripts/bench-server.sh                           # every server, both N, one table

It raises its own RLIMIT_NOFILE soft limit to the hard limit (or says how to raise it).";

/// The wire the tool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Proto {
    /// sockline (DESIGN §3): `auth` (with `resume` on reconnect), `send join_room`, events with `seq`, acks.
    Sockline,
    /// Socket.IO v4 over Engine.IO v4, WebSocket transport only: `40`, `42["join",ROOM]` with an ack.
    Socketio,
    /// The bare `ws` peer: `{"join":ROOM}` → `{"joined":ROOM}`, events `{"event","data"}`.
    Ws,
    /// The bare tokio-tungstenite peer (examples/bare_broadcast.rs): the same wire as `ws`.
    Bare,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Sockline => "sockline",
            Proto::Socketio => "socketio",
            Proto::Ws => "ws",
            Proto::Bare => "bare",
        }
    }

    /// The WebSocket path on the server.
    fn ws_path(self) -> &'static str {
        match self {
            Proto::Sockline => "/ws",
            Proto::Socketio => "/socket.io/?EIO=4&transport=websocket",
            Proto::Ws | Proto::Bare => "/ws",
        }
    }

    /// Whether the server keeps sessions across reconnects (so the storm checks replay).
    pub(crate) fn resumes(self) -> bool {
        self == Proto::Sockline
    }
}

/// One server: its loopback address and WebSocket URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    pub ws_url: String,
}

impl Target {
    /// Parses `http://HOST:PORT` (a trailing `/` allowed); refuses anything not on loopback.
    pub(crate) fn parse(url: &str, proto: Proto) -> Result<Target, String> {
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: expected http://HOST:PORT"))?
            .trim_end_matches('/');
        if authority.contains('/') {
            return Err(format!("{url}: give the base URL only (http://HOST:PORT)"));
        }
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: resolves to no address"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{url}: this load tool only drives servers on loopback"
            ));
        }
        Ok(Target {
            addr,
            ws_url: format!("ws://{addr}{}", proto.ws_path()),
        })
    }
}
