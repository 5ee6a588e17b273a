//! A real `redis-server` for cluster tests: on a free loopback port, persistence off, stopped
//! (killed) when dropped; [`RedisServer::stop`] and [`RedisServer::start_again`] make an outage.
//! Without the binary a test is skipped with a message, unless `SOCKLINE_REQUIRE_REDIS` is set
//! (`make test` sets it, so CI never skips silently): then it fails.
#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockline::server::{start, RunningServer, ServerConfig};

/// A `redis-server` child process.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

/// Set (non-empty): a missing `redis-server` fails the test instead of skipping it.
const REQUIRE: &str = "SOCKLINE_REQUIRE_REDIS";

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

impl RedisServer {
    /// Starts `redis-server` (Debian's package; `scripts/setup.sh --redis` installs it), or
    /// `None` when it is not installed and `SOCKLINE_REQUIRE_REDIS` is unset (the test is then
    /// skipped; it says so on stderr). Panics when it is required and missing.
    pub fn start() -> Option<RedisServer> {
        if let Err(e) = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
        {
            let required = std::env::var_os(REQUIRE).is_some_and(|v| !v.is_empty());
            assert!(
                !required,
                "redis-server cannot run ({e}) and {REQUIRE} is set: install it \
                 (scripts/setup.sh --redis, or apt-get install redis-server)"
            );
            // Straight to stderr: the test harness would capture `eprintln!` of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: redis-server cannot run ({e}); install it (scripts/setup.sh --redis) \
                 or set {REQUIRE}=1 to make this a failure"
            );
            return None;
        }
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.start_again();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port, empty (it was stopped: nothing was kept).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server runs (install it: scripts/setup.sh --redis)");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..200 {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on {addr}");
    }

    /// Kills it (as a crash would: no data kept, persistence is off).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cluster node on 127.0.0.1:0 named `node`, sharing `redis`; a 10 s heartbeat so raw test
/// clients that do not answer pings stay up.
pub async fn node(redis: &RedisServer, node: &str) -> RunningServer {
    start(node_config(redis, node))
        .await
        .expect("the node starts")
}

/// What [`node`] starts a node with.
pub fn node_config(redis: &RedisServer, node: &str) -> ServerConfig {
    ServerConfig {
        redis: Some(redis.url()),
        node_id: Some(node.to_owned()),
        heartbeat: Duration::from_secs(10),
        replay_age: Duration::from_secs(30),
        ..ServerConfig::for_tests()
    }
}
