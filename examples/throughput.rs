//! Event throughput: server → `sockline::native::Client` → a typed listener, against a bare
//! tokio-tungstenite loop reading the same frames from the same server, in the same run.
//!
//! Run: `cargo run --release --example throughput [EVENTS] [ROUNDS]` (defaults 200000, 9).
//!
//! The "server" here is a minimal blaster on 127.0.0.1:0 that answers `auth` and then writes
//! pre-encoded `event` frames as fast as the socket takes them, so the numbers measure the
//! client path, not the reference server. Prints events/s for each path (median of the
//! rounds) and the ratio sockline / bare.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use sockline::events::NewNotification;
use sockline::native::{Client, ClientConfig};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const AUTHENTICATED: &str = r#"{"type":"authenticated","user_id":"bench","session":"s","heartbeat_ms":30000,"resumed":false}"#;

fn frames(events: u64) -> Arc<Vec<String>> {
    Arc::new(
        (1..=events)
            .map(|seq| {
                format!(
                    r#"{{"type":"event","seq":{seq},"event":"new_notification","data":{{"id":"n{seq}","title":"Build finished","body":"main is green"}},"ts":"2026-11-23T00:00:00Z"}}"#
                )
            })
            .collect(),
    )
}

/// Accepts connections; after `auth`, writes every frame, then drains until close. It runs on
/// an OS thread and single-threaded runtime of its own, so the client paths always have the
/// other core to themselves: on one shared runtime the scheduler sometimes ran the blaster and
/// the client on the same worker and sometimes not, and either path's rate moved by 1.5×
/// from round to round.
async fn blaster(frames: Arc<Vec<String>>) -> std::net::SocketAddr {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("blaster runtime");
        runtime.block_on(serve(frames, tx));
    });
    rx.await.expect("blaster address")
}

async fn serve(
    frames: Arc<Vec<String>>,
    bound: tokio::sync::oneshot::Sender<std::net::SocketAddr>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let _ = bound.send(listener.local_addr().expect("addr"));
    while let Ok((tcp, _)) = listener.accept().await {
        let frames = frames.clone();
        tokio::spawn(async move {
            // What the client sends back (acks, pongs) is small: a small read buffer, so
            // each read does not zero tungstenite's default 128 KiB (the reference server
            // sizes its own the same way).
            let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
            else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let _auth = stream.next().await;
            // Drain what the client sends (acks, pongs) so it never blocks.
            tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            if sink.send(Message::text(AUTHENTICATED)).await.is_err() {
                return;
            }
            for frame in frames.iter() {
                if sink.feed(Message::text(frame.as_str())).await.is_err() {
                    return;
                }
            }
            let _ = sink.flush().await;
            // Keep the socket open until the client hangs up.
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    }
}

/// The bare loop: connect, auth, read frames until `counts` accepted `events` of them.
async fn bare(addr: std::net::SocketAddr, events: u64, counts: fn(&str) -> bool) -> Duration {
    let start = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    ws.send(Message::text(r#"{"type":"auth","token":"t"}"#))
        .await
        .expect("auth");
    let mut seen = 0;
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(text) = message {
            if counts(text.as_str()) {
                seen += 1;
                if seen == events {
                    break;
                }
            }
        }
    }
    let elapsed = start.elapsed();
    let _ = ws.close(None).await;
    elapsed
}

/// Read only: an event frame is counted without being parsed.
fn read_only(text: &str) -> bool {
    text.starts_with(r#"{"type":"event""#)
}

/// What a hand-written client does with each frame at the least: parse it into typed structs.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct TypedFrame {
    #[serde(rename = "type")]
    kind: String,
    seq: u64,
    event: String,
    data: NewNotification,
}

/// Parsed: an event frame is counted once it decodes into `TypedFrame`.
fn parsed(text: &str) -> bool {
    serde_json::from_str::<TypedFrame>(text)
        .map(std::hint::black_box)
        .is_ok()
}

/// What the sockline path's listener does with each event.
#[derive(Clone, Copy)]
enum Listener {
    /// `on::<NewNotification>`: the payload decoded into the app's struct (what apps do).
    Typed,
    /// `on_any`: the payload's raw JSON text only (the core and driver alone, no decode).
    Raw,
}

/// The same frames through `Client` into a listener.
async fn through_sockline(addr: std::net::SocketAddr, events: u64, listener: Listener) -> Duration {
    let start = Instant::now();
    // Subscribed before it starts: events that arrive first are not missed.
    let client = Client::new(ClientConfig::new(format!("ws://{addr}/ws"), "t"));
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (c, d) = (count.clone(), done.clone());
    let counted = move || {
        if c.fetch_add(1, Ordering::Relaxed) + 1 == events {
            d.notify_one();
        }
    };
    let _guard = match listener {
        Listener::Typed => client.on::<NewNotification>(move |n| {
            std::hint::black_box(n);
            counted();
        }),
        Listener::Raw => client.on_any(move |m| {
            std::hint::black_box(m.data.json());
            counted();
        }),
    };
    client.start();
    done.notified().await;
    let elapsed = start.elapsed();
    client.disconnect().await;
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(9);
    let only = args.next();
    if only.as_deref() == Some("parsed-only") {
        // For profiling the parsing loop alone.
        let addr = blaster(frames(events)).await;
        for _ in 0..rounds {
            let rate = events as f64 / bare(addr, events, parsed).await.as_secs_f64();
            println!("parsing loop: {rate:.0} events/s");
        }
        return;
    }
    if only.as_deref() == Some("sockline-only") {
        // For profiling the client path alone.
        let addr = blaster(frames(events)).await;
        for _ in 0..rounds {
            let rate = events as f64
                / through_sockline(addr, events, Listener::Typed)
                    .await
                    .as_secs_f64();
            println!("sockline: {rate:.0} events/s");
        }
        return;
    }
    let addr = blaster(frames(events)).await;
    // Warm up both paths once.
    bare(addr, events.min(10_000), read_only).await;
    through_sockline(addr, events.min(10_000), Listener::Typed).await;
    bare(addr, events.min(10_000), parsed).await;
    let (mut bare_rates, mut parsing_rates, mut sockline_rates, mut raw_rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare_rates.push(events as f64 / bare(addr, events, read_only).await.as_secs_f64());
        parsing_rates.push(events as f64 / bare(addr, events, parsed).await.as_secs_f64());
        sockline_rates.push(
            events as f64
                / through_sockline(addr, events, Listener::Typed)
                    .await
                    .as_secs_f64(),
        );
        raw_rates.push(
            events as f64
                / through_sockline(addr, events, Listener::Raw)
                    .await
                    .as_secs_f64(),
        );
    }
    let (b, p, s, r) = (
        median(bare_rates),
        median(parsing_rates),
        median(sockline_rates),
        median(raw_rates),
    );
    println!("events per round: {events}, rounds: {rounds} (median of rounds)");
    println!("bare loop, frames read only:          {b:>10.0} events/s");
    println!("bare loop, frames parsed to structs:  {p:>10.0} events/s");
    println!("sockline Client -> on::<T> listener:  {s:>10.0} events/s");
    println!("sockline Client -> on_any, raw JSON:  {r:>10.0} events/s");
    println!("ratio sockline / bare (read only):    {:>10.2}", s / b);
    println!("ratio sockline / bare (parsed):       {:>10.2}", s / p);
    println!("ratio on_any raw / bare (parsed):     {:>10.2}", r / p);
}
