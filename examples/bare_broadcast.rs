//! A bare tokio-tungstenite broadcast server: the near-the-limit reference that
//! `examples/server_load.rs` measures sockline-server and the Node peers (`bench/peers/`) against.
//!
//! Run: `cargo run --release --example bare_broadcast [PORT]` (0, the default, lets the OS pick);
//! the first line on stdout is `listening on http://127.0.0.1:PORT`, as sockline-server prints it.
//!
//! The same job as the peers, and nothing more: a WebSocket on any path; a text frame
//! `{"join":ROOM}` joins a room and is answered `{"joined":ROOM}`; `POST /notify
//! {"room","event","data"}` sends `{"event":…,"data":…}` to every member of the room, encoded
//! once (every socket's queue holds the same shared bytes) and answers `202 {"delivered":N}`;
//! `GET /health` answers `{"status","connections","rss_bytes"}`. No auth, no replay, no acks, no
//! heartbeat. Each socket is one task with a [`READ_BUFFER`]-byte read buffer and no write
//! buffering, the settings sockline-server's upgrade uses, so the difference between the two is
//! sockline's own work. (With a 4 KiB read buffer, as sockline-server had before its rewrite,
//! this server held 12.5 KiB per idle socket at 10,000 sockets.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Frames a socket's queue holds; a fan-out to a full queue skips that socket (and counts it).
const QUEUE: usize = 256;
/// tungstenite's read buffer per socket, allocated up front (its default is 128 KiB).
const READ_BUFFER: usize = 512;
/// Largest request head or `/notify` body read, in bytes.
const MAX_HTTP: usize = 64 * 1024;

/// Rooms and their members' queues, behind one short-held lock.
#[derive(Default)]
struct Hub {
    rooms: Mutex<HashMap<String, HashMap<u64, mpsc::Sender<Utf8Bytes>>>>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    /// Frames not queued because a member's queue was full.
    skipped: AtomicU64,
}

impl Hub {
    fn rooms(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, mpsc::Sender<Utf8Bytes>>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the same bytes on every member of `room`; returns how many got them.
    fn fan_out(&self, room: &str, frame: Utf8Bytes) -> usize {
        let rooms = self.rooms();
        let Some(members) = rooms.get(room) else {
            return 0;
        };
        let mut delivered = 0;
        for tx in members.values() {
            match tx.try_send(frame.clone()) {
                Ok(()) => delivered += 1,
                Err(_) => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        delivered
    }
}

#[derive(Deserialize)]
struct Notify<'a> {
    room: String,
    event: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Join {
    join: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        None => 0,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: bare_broadcast [PORT]");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let hub = Arc::new(Hub::default());
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: the socket is lost, the server goes on.
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(serve(tcp, hub.clone()));
    }
}

/// One request head, owned.
struct Head {
    method: String,
    path: String,
    ws_key: Option<String>,
    content_length: usize,
    len: usize,
}

/// Reads until a complete request head is in `buf`; `None` on EOF, error or a malformed head.
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Head> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                };
                return Some(Head {
                    method: request.method?.to_owned(),
                    path: request.path?.split('?').next()?.to_owned(),
                    ws_key: header("sec-websocket-key").map(str::to_owned),
                    content_length: header("content-length")
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0),
                    len,
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HTTP => {}
            _ => return None,
        }
        buf.reserve(4096);
        match tcp.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn serve(mut tcp: TcpStream, hub: Arc<Hub>) {
    let _ = tcp.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let Some(head) = read_head(&mut tcp, &mut buf).await else {
        return;
    };
    match (head.method.as_str(), head.path.as_str(), &head.ws_key) {
        ("GET", _, Some(key)) => {
            let accept = derive_accept_key(key.as_bytes());
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if tcp.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            let rest = buf.split_off(head.len);
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(0);
            let ws =
                WebSocketStream::from_partially_read(tcp, rest, Role::Server, Some(config)).await;
            socket(ws, &hub).await;
        }
        ("GET", "/health", None) => {
            let body = serde_json::json!({
                "status": "ok",
                "connections": hub.connections.load(Ordering::Relaxed),
                "rss_bytes": rss_bytes(),
                "skipped": hub.skipped.load(Ordering::Relaxed),
            });
            respond(&mut tcp, "200 OK", &body.to_string()).await;
        }
        ("POST", "/notify", None) => {
            if head.content_length > MAX_HTTP {
                return respond(
                    &mut tcp,
                    "413 Payload Too Large",
                    r#"{"error":{"code":"too_large"}}"#,
                )
                .await;
            }
            while buf.len() < head.len + head.content_length {
                buf.reserve(head.len + head.content_length - buf.len());
                match tcp.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
            let body = &buf[head.len..head.len + head.content_length];
            match serde_json::from_slice::<Notify<'_>>(body) {
                Ok(notify) => {
                    let event = serde_json::to_string(&notify.event).unwrap_or_default();
                    let data = notify.data.map_or("null", RawValue::get);
                    let frame = Utf8Bytes::from(format!(r#"{{"event":{event},"data":{data}}}"#));
                    let delivered = hub.fan_out(&notify.room, frame);
                    respond(
                        &mut tcp,
                        "202 Accepted",
                        &format!(r#"{{"delivered":{delivered}}}"#),
                    )
                    .await;
                }
                Err(e) => {
                    let body = serde_json::json!({"error": {"code": "bad_request", "message": e.to_string()}});
                    respond(&mut tcp, "400 Bad Request", &body.to_string()).await;
                }
            }
        }
        _ => {
            respond(
                &mut tcp,
                "404 Not Found",
                r#"{"error":{"code":"not_found"}}"#,
            )
            .await
        }
    }
}

async fn respond(tcp: &mut TcpStream, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// One WebSocket until it closes: `{"join":ROOM}` in, queued fan-out frames out.
async fn socket(mut ws: WebSocketStream<TcpStream>, hub: &Hub) {
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    let mut joined: Vec<String> = Vec::new();
    hub.connections.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let reply = match serde_json::from_str::<Join>(text.as_str()) {
                        Ok(Join { join }) if !join.is_empty() => {
                            let reply = serde_json::json!({ "joined": join }).to_string();
                            hub.rooms().entry(join.clone()).or_default().insert(id, tx.clone());
                            joined.push(join);
                            reply
                        }
                        _ => r#"{"error":"expected {\"join\":ROOM}"}"#.to_owned(),
                    };
                    if ws.send(Message::text(reply)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                // tungstenite answers pings itself.
                Some(Ok(_)) => {}
            },
            Some(frame) = rx.recv() => {
                if ws.send(Message::Text(frame)).await.is_err() {
                    break;
                }
            }
        }
    }
    {
        let mut rooms = hub.rooms();
        for room in &joined {
            if let Some(members) = rooms.get_mut(room) {
                members.remove(&id);
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
        }
    }
    hub.connections.fetch_sub(1, Ordering::Relaxed);
}

/// This process's resident set size from `/proc/self/status` (Linux), in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
