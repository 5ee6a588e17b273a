//! The native driver against scripted peers (tokio-tungstenite servers written here, doing what
//! the reference server never does): a binary frame, a close with a reason, a refused send, and
//! a server that floods and never reads. Each checks what the application hears — the same
//! rules the browser tests check on wasm32.
#![cfg(not(target_arch = "wasm32"))]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use sockline::core::{Backoff, Cause, ConnectionState, LinkError};
use sockline::native::{Client, ClientConfig, Notice, StateChange, StateStream};
use sockline::protocol::{ClientFrame, ErrorBody, ServerFrame, MAX_FRAME_BYTES};
use sockline::{AckError, ClientError};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Peer = WebSocketStream<TcpStream>;

/// Serves every connection with `script`, after answering its `auth` with `authenticated`.
async fn scripted<F, Fut>(script: F) -> SocketAddr
where
    F: Fn(Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let Some(Ok(Message::Text(auth))) = ws.next().await else {
                    return;
                };
                assert!(matches!(
                    ClientFrame::decode(auth.as_str(), MAX_FRAME_BYTES),
                    Ok(ClientFrame::Auth { .. })
                ));
                let hello = ServerFrame::Authenticated {
                    v: 1,
                    user_id: "u1".into(),
                    session: "s1".into(),
                    heartbeat_ms: 30_000,
                    resumed: false,
                    missed: 0,
                    expires_in_ms: None,
                    limits: None,
                };
                if ws.send(Message::text(hello.encode())).await.is_ok() {
                    script(ws).await;
                }
            });
        }
    });
    addr
}

fn config(addr: SocketAddr) -> ClientConfig {
    ClientConfig::new(format!("ws://{addr}/ws"), "t").backoff(Backoff {
        initial: Duration::from_secs(30),
        ..Backoff::default()
    })
}

fn record_notices(client: &Client) -> Arc<Mutex<Vec<Notice>>> {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    client
        .on_notice(move |n| sink.lock().unwrap().push(n.clone()))
        .forget();
    notices
}

async fn until_state(states: &mut StateStream, name: &str) -> StateChange {
    timeout(Duration::from_secs(10), async {
        loop {
            let change = states.next().await.expect("state stream open");
            if change.to.name() == name {
                return change;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `{name}` within 10 s"))
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps the peer open, reading (and ignoring) whatever the client sends.
async fn drain(mut ws: Peer) {
    while let Some(Ok(_)) = ws.next().await {}
}

#[tokio::test]
async fn a_binary_frame_is_a_binary_frame_error_and_the_client_stays_connected() {
    let addr = scripted(|mut ws| async move {
        let _ = ws.send(Message::binary(vec![1, 2, 3])).await;
        drain(ws).await;
    })
    .await;
    let client = Client::new(config(addr));
    let notices = record_notices(&client);
    let mut states = client.states();
    client.start();
    until_state(&mut states, "connected").await;
    until("the binary frame error", || {
        notices
            .lock()
            .unwrap()
            .contains(&Notice::Error(ClientError::BinaryFrame))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(client.state().is_connected());
    assert_eq!(notices.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn reconnecting_carries_the_close_that_caused_it() {
    let addr = scripted(|mut ws| async move {
        let frame = CloseFrame {
            code: CloseCode::from(1011),
            reason: "boom".into(),
        };
        let _ = ws.send(Message::Close(Some(frame))).await;
        drain(ws).await;
    })
    .await;
    let client = Client::new(config(addr));
    let mut states = client.states();
    client.start();
    until_state(&mut states, "connected").await;
    let lost = until_state(&mut states, "reconnecting").await;
    assert_eq!(
        lost.cause,
        Cause::Lost(LinkError::Closed {
            code: 1011,
            reason: "boom".into()
        })
    );
    assert!(matches!(
        lost.to,
        ConnectionState::Reconnecting {
            attempt: 1,
            next_at: Some(_)
        }
    ));
    let retry_in = lost.retry_in.expect("a retry is scheduled");
    assert!(retry_in >= Duration::from_secs(14) && retry_in <= Duration::from_secs(30));
}

#[tokio::test]
async fn a_failed_plain_send_is_an_error_notice_and_an_ack_notice() {
    let addr = scripted(|mut ws| async move {
        while let Some(Ok(Message::Text(text))) = ws.next().await {
            if let Ok(ClientFrame::Send { id, .. }) =
                ClientFrame::decode(text.as_str(), MAX_FRAME_BYTES)
            {
                let ack = ServerFrame::Ack {
                    id,
                    ok: false,
                    data: None,
                    error: Some(ErrorBody::new("forbidden", "no")),
                };
                let _ = ws.send(Message::text(ack.encode())).await;
            }
        }
    })
    .await;
    let client = Client::new(config(addr));
    let notices = record_notices(&client);
    let mut states = client.states();
    client.start();
    until_state(&mut states, "connected").await;
    let id = client.send("message", serde_json::json!({})).unwrap();
    let rejected = AckError::Rejected {
        code: "forbidden".into(),
        message: "no".into(),
    };
    until("both notices", || {
        (notices.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        *notices.lock().unwrap(),
        [
            Notice::Error(ClientError::SendFailed {
                id,
                error: rejected.clone()
            }),
            Notice::Ack {
                id,
                result: Err(rejected)
            },
        ]
    );
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test]
async fn a_server_that_floods_and_never_reads_is_a_dead_link_not_unbounded_memory() {
    // The peer writes events as fast as the client reads them (so the heartbeat never fires)
    // and never reads a byte back, so what the client sends can only pile up.
    let addr = scripted(|ws| async move {
        let (mut sink, _never_read) = ws.split();
        let mut seq = 0u64;
        loop {
            seq += 1;
            let event = ServerFrame::Event {
                seq: Some(seq),
                event: "new_notification".into(),
                data: serde_json::json!({"id": "n", "title": "x".repeat(200)}),
                ts: String::new(),
            };
            if sink.send(Message::text(event.encode())).await.is_err() {
                return;
            }
        }
    })
    .await;
    let client = Client::new(
        config(addr)
            .heartbeat_grace(Duration::from_secs(2))
            .outbox(1_000, 16 << 20),
    );
    let mut states = client.states();
    let before = rss_bytes();
    client.start();
    until_state(&mut states, "connected").await;
    // 9 MiB of sends: more than the kernel's socket buffers hold.
    for _ in 0..300 {
        client
            .send("message", serde_json::json!({"text": "x".repeat(30_000)}))
            .unwrap();
    }
    let lost = until_state(&mut states, "reconnecting").await;
    let after = rss_bytes();
    let Cause::Lost(LinkError::Socket(why)) = &lost.cause else {
        panic!("expected a socket error, got {:?}", lost.cause);
    };
    assert!(
        why.contains("write stalled") || why.contains("write queue full"),
        "{why}"
    );
    let grown = after.saturating_sub(before);
    println!(
        "RSS before {} KiB, at the reconnect {} KiB (+{} KiB)",
        before / 1024,
        after / 1024,
        grown / 1024
    );
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_events_is_read_and_acked_without_a_false_dead_link() {
    // The peer writes events as fast as the socket takes them and reads every ack, in one task.
    // The client must keep up its acks while it reads: they once waited behind the reader for
    // the socket's lock until the write queue overflowed, and a healthy link was dropped as
    // "write queue full".
    const EVENTS: u64 = 300_000;
    let addr = scripted(|mut ws| async move {
        let mut acked = 0;
        for seq in 1..=EVENTS {
            let event = ServerFrame::Event {
                seq: Some(seq),
                event: "new_notification".into(),
                data: serde_json::json!({"id": "n", "title": "t"}),
                ts: String::new(),
            };
            if ws.feed(Message::text(event.encode())).await.is_err() {
                return;
            }
            if seq % 64 == 0 {
                if ws.flush().await.is_err() {
                    return;
                }
                while let Some(Some(Ok(Message::Text(text)))) = ws.next().now_or_never() {
                    if let Ok(ClientFrame::Ack { seq }) =
                        ClientFrame::decode(text.as_str(), MAX_FRAME_BYTES)
                    {
                        acked = seq;
                    }
                }
            }
        }
        let _ = ws.flush().await;
        assert!(acked > 0, "the peer read acks while it wrote");
        drain(ws).await;
    })
    .await;
    let client = Client::new(config(addr));
    let heard = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = heard.clone();
    let _guard = client.on_any(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let mut states = client.states();
    client.start();
    until_state(&mut states, "connected").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while heard.load(std::sync::atomic::Ordering::Relaxed) < EVENTS {
        assert!(
            Instant::now() < deadline,
            "not every event arrived within 60 s"
        );
        if let Ok(Some(change)) = timeout(Duration::from_millis(20), states.next()).await {
            panic!(
                "the link was dropped: {} ({})",
                change.to.name(),
                change.cause
            );
        }
    }
    let stats = client.stats();
    assert_eq!((stats.reconnects, stats.frames_in), (0, EVENTS + 1));
    client.disconnect().await;
}
