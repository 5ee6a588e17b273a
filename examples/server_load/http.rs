//! The tool's HTTP side: one request per connection (`Connection: close`) over a plain
//! `TcpStream`, for `POST /notify`, `GET /health` and `GET /dev/token`; and the `/proc`
//! readings (a server's RSS, a process's CPU time).
//!
//! A new connection per request is what a load balancer's health check or an app's
//! notification call does, and it keeps a stalled server from holding a pooled connection.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Largest response read, in bytes.
const MAX_RESPONSE: usize = 256 * 1024;

/// A response: status and body bytes.
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends one request and reads the whole response, within `limit`.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Result<Response, String> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let exchange = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        tcp.write_all(&out)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        (&mut tcp)
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(raw)
    };
    let raw = timeout(limit, exchange)
        .await
        .map_err(|_| format!("no answer within {} ms", limit.as_millis()))??;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err("incomplete response head".to_owned()),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = response.code.ok_or("no status code")?;
    let chunked = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding") && h.value.eq_ignore_ascii_case(b"chunked")
    });
    let rest = &raw[len..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

/// Decodes a chunked body (`SIZE\r\nDATA\r\n` … `0\r\n\r\n`).
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let data = rest.get(eol + 2..eol + 2 + size).ok_or("truncated chunk")?;
        out.extend_from_slice(data);
        rest = rest.get(eol + 4 + size..).ok_or("truncated chunk")?;
    }
}

/// `POST /notify` with `body`; `Ok(())` on any 2xx.
pub(crate) async fn notify(addr: SocketAddr, key: &str, body: &str) -> Result<(), String> {
    let bearer = format!("Bearer {key}");
    let response = request(
        addr,
        "POST",
        "/notify",
        &[("Authorization", &bearer)],
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .await?;
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(format!(
            "POST /notify: {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        ))
    }
}

/// What the tool reads from `/health`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct Health {
    #[serde(default)]
    pub connections: Option<u64>,
    #[serde(default)]
    pub rss_bytes: Option<u64>,
}

/// `GET /health`.
pub(crate) async fn health(addr: SocketAddr, limit: Duration) -> Result<Health, String> {
    let response = request(addr, "GET", "/health", &[], b"", limit).await?;
    if response.status != 200 {
        return Err(format!("GET /health: {}", response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| format!("GET /health body: {e}"))
}

/// A token for `user` from a `--dev` sockline server's `GET /dev/token?user=ID`.
pub(crate) async fn dev_token(addr: SocketAddr, user: &str) -> Result<String, String> {
    let path = format!("/dev/token?user={user}");
    let response = request(addr, "GET", &path, &[], b"", Duration::from_secs(10)).await?;
    if response.status != 200 {
        return Err(format!(
            "GET /dev/token: {} (is the server running with --dev? else pass --jwt-secret)",
            response.status
        ));
    }
    let body: Value = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
    body.get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "GET /dev/token: no `token` in the answer".to_owned())
}

/// A process's resident set size from `/proc/PID/status` (`VmRSS`), in bytes.
pub(crate) fn proc_rss(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{path}: no VmRSS line"))?;
    Ok(kib * 1024)
}

/// CPU time (user + system) a process has used, in ms, from `/proc/PID/stat` (`self` without a
/// pid). Linux counts it in clock ticks of 10 ms (USER_HZ = 100).
pub(crate) fn proc_cpu_ms(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or("/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_or_chunks() {
        let plain =
            parse_response(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((plain.status, plain.body.as_slice()), (202, &b"{}"[..]));
        let chunked = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, br#"{"a":1}"#);
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\nab")
                .is_err()
        );
        assert!(parse_response(b"HTTP/1.1 200").is_err());
    }

    #[test]
    fn cpu_time_of_this_process_grows() {
        // Spin until the reading shows 20 ms more CPU (on a loaded machine 60 ms of wall time
        // may hold less than that), within 10 s of wall time.
        let before = proc_cpu_ms(None).unwrap();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while proc_cpu_ms(None).unwrap() < before + 20.0 {
            assert!(
                spin.elapsed() < Duration::from_secs(10),
                "CPU time did not grow"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        assert!(proc_cpu_ms(Some(std::process::id())).is_some());
    }
}
