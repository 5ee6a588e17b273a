//! The server under test as a child process: `sockline-server --dev` on 127.0.0.1:0 with known
//! secrets, its address read from the `listening on` line, stopped with SIGTERM at the end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// A running `sockline-server` child.
pub struct ServerChild {
    pub addr: SocketAddr,
    pub pid: u32,
    pub log: PathBuf,
    child: Child,
}

/// Starts `bin` with the soak's settings; its stderr (warnings and errors only) goes to `log`.
pub async fn spawn(
    bin: &Path,
    jwt_secret: &str,
    server_key: &str,
    extra: &[String],
    log: PathBuf,
) -> Result<ServerChild, String> {
    let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(bin)
        .args(["--dev", "--addr", "127.0.0.1:0"])
        .args(extra)
        .env("SOCKLINE_JWT_SECRET", jwt_secret)
        .env("SOCKLINE_SERVER_KEY", server_key)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e} (build it: cargo build --release --features server --bin sockline-server)", bin.display()))?;
    let pid = child.id().ok_or("the server exited at once")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = timeout(Duration::from_secs(10), lines.next_line())
        .await
        .map_err(|_| "no `listening on` line within 10 s".to_owned())?
        .map_err(|e| e.to_string())?
        .ok_or("the server exited before listening")?;
    let addr = first
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("unexpected first line: {first}"))?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(ServerChild {
        addr,
        pid,
        log,
        child,
    })
}

impl ServerChild {
    /// SIGTERM (graceful: every socket closed with 1001), then waits up to 10 s.
    pub async fn stop(mut self) -> Result<(), String> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("kill -TERM {} failed", self.pid));
        }
        match timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(exit)) if exit.success() => Ok(()),
            Ok(Ok(exit)) => Err(format!("the server exited with {exit}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err("the server did not stop within 10 s of SIGTERM".to_owned())
            }
        }
    }
}
