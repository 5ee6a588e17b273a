//! Helpers for the hardening tests: connections from a chosen loopback source address (so the
//! legitimate client and the attacker do not share a per-IP count), raw HTTP from there, a
//! minimal authenticated client, and the server's own `/health` numbers.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sockline::protocol::{ClientFrame, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::support::token;

/// The legitimate client's source address.
pub const LEGIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Where `/health` and `/notify` come from.
pub const OPS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// How long a helper waits before failing the test.
pub const WAIT: Duration = Duration::from_secs(5);

/// A TCP connection to `addr` from `source` (any port).
pub async fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(addr).await
}

/// Sends a raw HTTP/1.1 request from `source` and returns (status, JSON body or `Null`).
pub async fn http_from(source: Ipv4Addr, addr: SocketAddr, request: &str) -> (u16, Value) {
    let exchange = async {
        let mut stream = connect_from(source, addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = timeout(WAIT, exchange)
        .await
        .expect("an HTTP answer in time");
    parse_response(&raw).expect("a complete HTTP response")
}

/// Parses a `Content-Length` HTTP response: (status, JSON body or `Null`).
pub fn parse_response(raw: &[u8]) -> Option<(u16, Value)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = &raw[split + 4..];
    Some((status, serde_json::from_slice(body).unwrap_or(Value::Null)))
}

/// `GET /health` from [`OPS`].
pub async fn health(addr: SocketAddr) -> Value {
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (status, body) = http_from(OPS, addr, &request).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The server's resident set size, from `/health`.
pub async fn rss(addr: SocketAddr) -> u64 {
    health(addr).await["rss_bytes"].as_u64().expect("rss_bytes")
}

/// `POST /notify` from [`OPS`] with the test key.
pub async fn notify(addr: SocketAddr, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST /notify HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer test-key\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_from(OPS, addr, &request).await
}

/// Runs the tests of one binary that read the process's RSS one at a time (they share the
/// process, so a neighbour's memory would show in their numbers).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// Prints the RSS figures the closing note reports.
pub fn report(test: &str, before: u64, during: u64, after: u64) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "RSS {test}: before {:.1} MiB, during {:.1} MiB, after {:.1} MiB",
        mib(before),
        mib(during),
        mib(after)
    );
}

/// A minimal authenticated client from a chosen source address.
pub struct Legit {
    ws: WebSocketStream<TcpStream>,
}

impl Legit {
    /// Connects from `source` and upgrades, without authenticating.
    pub async fn upgrade(addr: SocketAddr, source: Ipv4Addr) -> Self {
        let stream = connect_from(source, addr).await.expect("connect");
        let (ws, _) = timeout(
            WAIT,
            tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream),
        )
        .await
        .expect("upgrade in time")
        .expect("upgrade");
        Legit { ws }
    }

    /// Connects from `source` and authenticates as `user`.
    pub async fn connect(addr: SocketAddr, source: Ipv4Addr, user: &str) -> Self {
        let mut client = Self::upgrade(addr, source).await;
        client
            .send(&ClientFrame::Auth {
                v: 1,
                token: token(user),
                client: None,
                resume: None,
            })
            .await;
        match client.recv().await {
            Some(ServerFrame::Authenticated { .. }) => client,
            other => panic!("expected authenticated, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.ws
            .send(Message::Text(frame.encode().into()))
            .await
            .expect("send");
    }

    /// Sends any WebSocket message (raw frames included).
    pub async fn send_message(&mut self, message: Message) -> Result<(), String> {
        self.ws.send(message).await.map_err(|e| e.to_string())
    }

    /// Reads (without answering pings itself beyond what tungstenite does) until a close frame:
    /// its (code, reason); panics if the socket ends without one or nothing comes in time.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return (frame.code.into(), frame.reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) => return (1005, String::new()),
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// The next server frame (`None` on close or timeout).
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        loop {
            match timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return ServerFrame::decode(text.as_str(), usize::MAX).ok()
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// Waits for the `event` frame named `name` and returns its data.
    pub async fn recv_event(&mut self, name: &str) -> Value {
        loop {
            match self.recv().await {
                Some(ServerFrame::Event { event, data, .. }) if event == name => return data,
                Some(_) => continue,
                None => panic!("the legitimate client lost its socket waiting for {name}"),
            }
        }
    }
}

/// A legitimate client connects from [`LEGIT`], gets a `/notify` sent to it, and leaves.
pub async fn legit_round_trip(addr: SocketAddr, user: &str) {
    let mut client = Legit::connect(addr, LEGIT, user).await;
    let body = json!({"user": user, "event": "ping_check", "data": {"ok": true}});
    let (status, reply) = notify(addr, &body).await;
    assert_eq!(
        (status, reply["delivered"].as_u64()),
        (202, Some(1)),
        "{reply}"
    );
    assert_eq!(client.recv_event("ping_check").await, json!({"ok": true}));
}
