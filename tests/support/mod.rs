//! Test helpers shared by integration tests: starting a server, a tiny HTTP/1.1 client over a
//! raw `TcpStream`, and a raw WebSocket client that speaks `sockline::protocol` frames.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use sockline::protocol::{ClientFrame, ResumePoint, ServerFrame, MAX_FRAME_BYTES};
use sockline::server::{mint_token, start, RunningServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a helper waits for something that should happen before failing the test.
pub const WAIT: Duration = Duration::from_secs(3);

/// Starts a server, failing the test if it cannot bind.
pub async fn start_server(config: ServerConfig) -> RunningServer {
    start(config).await.expect("server starts")
}

/// A token for `user` signed with [`ServerConfig::for_tests`]'s secret, valid for a minute.
pub fn token(user: &str) -> String {
    mint_token("test-secret", user, Duration::from_secs(60))
}

/// `GET path` → (status, JSON body; `Value::String` for a non-JSON body, `Null` for none).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http_raw(addr, request.as_bytes()).await
}

/// `POST path` with a JSON body and an optional bearer token → (status, JSON body).
pub async fn http_post_json(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    http_post_raw(addr, path, bearer, &body.to_string()).await
}

/// `POST path` with a raw body labelled as JSON → (status, JSON body).
pub async fn http_post_raw(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let auth = bearer.map_or(String::new(), |b| format!("Authorization: Bearer {b}\r\n"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_raw(addr, request.as_bytes()).await
}

/// Sends a raw HTTP/1.1 request and parses the response (content-length or chunked).
pub async fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, Value) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(WAIT, exchange)
        .await
        .expect("HTTP response in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()))
    };
    (status, value)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("a chunk size");
        if size == 0 {
            return out;
        }
        body = &body[eol + 2..];
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What ended a read.
#[derive(Debug)]
pub enum Received {
    /// A server frame.
    Frame(ServerFrame),
    /// A close frame with this code and reason.
    Close(u16, String),
    /// The stream ended (or failed) without a close frame.
    Dropped,
    /// Nothing arrived in time.
    Timeout,
}

/// A raw WebSocket client that speaks protocol frames.
pub struct WsClient {
    ws: Stream,
}

impl WsClient {
    /// Opens `ws://addr/ws`.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::try_connect(addr, None)
            .await
            .expect("WebSocket connects")
    }

    /// Opens `ws://addr/ws`, optionally with an `Origin` header; the error keeps the HTTP response.
    pub async fn try_connect(
        addr: SocketAddr,
        origin: Option<&str>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .expect("a valid URL");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("a valid header"));
        }
        let (ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")?;
        Ok(WsClient { ws })
    }

    /// Connects and authenticates as `user`; returns the client and its `authenticated` frame.
    pub async fn authed(addr: SocketAddr, user: &str) -> (Self, ServerFrame) {
        Self::authed_with(addr, &token(user), None).await
    }

    /// Connects and sends `auth` with this token and resume point; expects `authenticated`.
    pub async fn authed_with(
        addr: SocketAddr,
        token: &str,
        resume: Option<ResumePoint>,
    ) -> (Self, ServerFrame) {
        Self::authed_as(addr, token, None, resume).await
    }

    /// Connects and sends `auth` with this token, client id and resume point; expects
    /// `authenticated`.
    pub async fn authed_as(
        addr: SocketAddr,
        token: &str,
        client_id: Option<&str>,
        resume: Option<ResumePoint>,
    ) -> (Self, ServerFrame) {
        let mut client = Self::connect(addr).await;
        client
            .send(&ClientFrame::Auth {
                v: 1,
                token: token.to_owned(),
                client: client_id.map(str::to_owned),
                resume,
            })
            .await;
        let frame = client.recv().await;
        assert!(
            matches!(frame, ServerFrame::Authenticated { .. }),
            "expected authenticated, got {frame:?}"
        );
        (client, frame)
    }

    /// Sends a protocol frame.
    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_text(&frame.encode()).await;
    }

    /// Sends `send {id, event, data}`.
    pub async fn send_event(&mut self, id: u64, event: &str, data: Value) {
        self.send(&ClientFrame::Send {
            id,
            event: event.to_owned(),
            data,
        })
        .await;
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send a text frame");
    }

    /// Sends a close frame with this code.
    pub async fn send_close(&mut self, code: u16) {
        let frame = CloseFrame {
            code: code.into(),
            reason: "".into(),
        };
        self.ws
            .send(Message::Close(Some(frame)))
            .await
            .expect("send a close frame");
    }

    /// Sends a ping frame.
    pub async fn send_ping(&mut self) {
        self.ws
            .send(Message::Ping(vec![1].into()))
            .await
            .expect("send a ping");
    }

    /// Sends a raw binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send a binary frame");
    }

    /// The next thing that happens on the socket, waiting at most `wait`.
    pub async fn next(&mut self, wait: Duration) -> Received {
        loop {
            let msg = match timeout(wait, self.ws.next()).await {
                Err(_) => return Received::Timeout,
                Ok(None | Some(Err(_))) => return Received::Dropped,
                Ok(Some(Ok(msg))) => msg,
            };
            return match msg {
                Message::Text(text) => Received::Frame(
                    ServerFrame::decode(text.as_str(), usize::MAX)
                        .unwrap_or_else(|e| panic!("server sent an invalid frame {text}: {e}")),
                ),
                Message::Close(Some(frame)) => {
                    Received::Close(frame.code.into(), frame.reason.to_string())
                }
                Message::Close(None) => Received::Close(1005, String::new()),
                Message::Binary(_) => panic!("server sent a binary frame"),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
        }
    }

    /// The next frame, pings included; fails the test on close or timeout.
    pub async fn recv(&mut self) -> ServerFrame {
        match self.next(WAIT).await {
            Received::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame that is not a `ping`.
    pub async fn recv_no_ping(&mut self) -> ServerFrame {
        loop {
            match self.recv().await {
                ServerFrame::Ping { .. } => continue,
                frame => return frame,
            }
        }
    }

    /// Skips frames until one matches; fails the test if none does in time.
    pub async fn recv_until(&mut self, wanted: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        self.recv_until_within(WAIT, wanted).await
    }

    /// [`recv_until`](Self::recv_until), waiting at most `wait`.
    pub async fn recv_until_within(
        &mut self,
        wait: Duration,
        mut wanted: impl FnMut(&ServerFrame) -> bool,
    ) -> ServerFrame {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Received::Frame(frame) if wanted(&frame) => return frame,
                Received::Frame(_) => continue,
                other => panic!("expected a matching frame, got {other:?}"),
            }
        }
    }

    /// The next `event` frame named `name`: (seq, data); seq 0 for a volatile event.
    pub async fn recv_event(&mut self, name: &str) -> (u64, Value) {
        self.recv_event_within(WAIT, name).await
    }

    /// [`recv_event`](Self::recv_event), waiting at most `wait`.
    pub async fn recv_event_within(&mut self, wait: Duration, name: &str) -> (u64, Value) {
        match self
            .recv_until_within(
                wait,
                |f| matches!(f, ServerFrame::Event { event, .. } if event == name),
            )
            .await
        {
            ServerFrame::Event { seq, data, .. } => (seq.unwrap_or(0), data),
            _ => unreachable!(),
        }
    }

    /// The `ack` for send `id`.
    pub async fn recv_ack(&mut self, id: u64) -> ServerFrame {
        self.recv_until(|f| matches!(f, ServerFrame::Ack { id: got, .. } if *got == id))
            .await
    }

    /// Asserts that no frame other than `ping` arrives within `wait`.
    pub async fn expect_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Received::Timeout => return,
                Received::Frame(ServerFrame::Ping { .. }) => continue,
                other => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Skips frames until a close frame; asserts its code and returns its reason.
    pub async fn expect_close(&mut self, code: u16) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Received::Frame(_) => continue,
                Received::Close(got, reason) => {
                    assert_eq!(got, code, "close code (reason: {reason})");
                    return reason;
                }
                other => panic!("expected close {code}, got {other:?}"),
            }
        }
    }

    /// Asserts the socket ends without a close frame (skipping frames until then).
    pub async fn expect_dropped(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Received::Frame(_) => continue,
                Received::Dropped => return,
                other => panic!("expected the socket to drop, got {other:?}"),
            }
        }
    }
}

/// The session id of an `authenticated` frame.
pub fn session_of(frame: &ServerFrame) -> String {
    match frame {
        ServerFrame::Authenticated { session, .. } => session.clone(),
        other => panic!("not authenticated: {other:?}"),
    }
}

/// An ack's (ok, data, error code).
pub fn ack_parts(frame: ServerFrame) -> (bool, Option<Value>, Option<String>) {
    match frame {
        ServerFrame::Ack {
            ok, data, error, ..
        } => (ok, data, error.map(|e| e.code)),
        other => panic!("not an ack: {other:?}"),
    }
}

/// Sends `auth` with `token` and returns the frame that answers it and the close code after it.
pub async fn auth_and_expect_close(addr: SocketAddr, token: &str) -> (ServerFrame, u16) {
    let mut client = WsClient::connect(addr).await;
    client
        .send(&ClientFrame::Auth {
            v: 1,
            client: None,
            token: token.to_owned(),
            resume: None,
        })
        .await;
    let frame = client.recv().await;
    let code = match client.next(WAIT).await {
        Received::Close(code, _) => code,
        other => panic!("expected close, got {other:?}"),
    };
    (frame, code)
}

/// A frame just over the default limit.
pub fn oversize_text() -> String {
    format!(
        r#"{{"type":"send","id":1,"event":"message","data":{{"text":"{}"}}}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    )
}
