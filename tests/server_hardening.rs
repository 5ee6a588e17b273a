//! Attacks before authentication (issue 10), over loopback, each bounded in count and time:
//! idle and slow HTTP connections, a per-IP flood, the global connection cap, frame floods,
//! invalid UTF-8 and resume close reasons. In every one a legitimate client from another source
//! address connects and receives a `/notify` while the attack runs, and the server's RSS (read
//! from its own `/health`) stays within a stated bound.
#![cfg(feature = "server")]

#[path = "support/attack.rs"]
mod attack;
mod support;

use std::time::Duration;

use attack::*;
use bytes::Bytes;
use serde_json::json;
use sockline::protocol::{ClientFrame, ResumePoint, ServerFrame};
use sockline::server::ServerConfig;
use support::{http_get, start_server, token, Received, WsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1024 * 1024;

/// Reads until the peer closes; `true` if it closed (EOF or reset) within `wait`.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut sink = [0u8; 512];
    timeout(wait, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn idle_and_partial_request_connections_are_cut_off_by_the_header_timeout() {
    let config = ServerConfig {
        header_timeout: Duration::from_millis(400),
        max_unauthed_per_ip: 0,
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let _serial = serial().await;
    let before = rss(addr).await;
    let mut attack = Vec::new();
    for n in 0..300 {
        let mut stream = connect_from(std::net::Ipv4Addr::LOCALHOST, addr)
            .await
            .expect("connect");
        if n % 2 == 1 {
            // Slowloris: a request head that never ends.
            stream
                .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .expect("write");
        }
        attack.push(stream);
    }
    let started = Instant::now();
    let during = health(addr).await;
    assert!(during["tcp_connections"].as_u64() >= Some(300), "{during}");
    legit_round_trip(addr, "legit").await;
    for stream in &mut attack {
        assert!(
            closed_within(stream, Duration::from_secs(3)).await,
            "an idle connection outlived the header timeout"
        );
    }
    let cut_after = started.elapsed();
    let after = health(addr).await;
    assert_eq!(
        after["tcp_connections"], 1,
        "only this /health request: {after}"
    );
    assert!(after["timeouts"]["header"].as_u64() >= Some(300), "{after}");
    legit_round_trip(addr, "legit").await;
    let (before, during, after) = (
        before,
        during["rss_bytes"].as_u64().unwrap(),
        after["rss_bytes"].as_u64().unwrap(),
    );
    report("300 idle/slowloris connections", before, during, after);
    println!("all 300 closed {cut_after:?} after the attack was in place");
    assert!(during < before + 32 * MIB && after < before + 32 * MIB);
    server.shutdown().await;
}

#[tokio::test]
async fn a_trickled_request_body_is_cut_off_by_the_upgrade_deadline() {
    let config = ServerConfig {
        upgrade_timeout: Duration::from_millis(300),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let mut stream = connect_from(std::net::Ipv4Addr::LOCALHOST, addr)
        .await
        .unwrap();
    stream
        .write_all(b"POST /notify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\nContent-Length: 60000\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = async {
        while stream.write_all(b" ").await.is_ok() {
            sleep(Duration::from_millis(50)).await;
            if started.elapsed() > Duration::from_secs(3) {
                return false;
            }
        }
        true
    };
    legit_round_trip(addr, "legit").await;
    assert!(trickle.await, "the trickling connection was never cut off");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(health(addr).await["timeouts"]["upgrade"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn unauthenticated_connections_over_the_per_ip_cap_get_503() {
    let config = ServerConfig {
        max_unauthed_per_ip: 20,
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let _serial = serial().await;
    let before = rss(addr).await;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..50 {
        let mut stream = connect_from(std::net::Ipv4Addr::LOCALHOST, addr)
            .await
            .unwrap();
        // Admitted connections get nothing yet (they have not sent a request); refused ones get
        // their 503 at once.
        let mut raw = Vec::new();
        let read = timeout(Duration::from_millis(100), stream.read_to_end(&mut raw)).await;
        match read {
            Ok(_) => {
                let (status, body) = parse_response(&raw).expect("a response");
                assert_eq!(status, 503);
                assert_eq!(body["error"]["code"], "too_many_unauthenticated");
                refused += 1;
            }
            Err(_) => held.push(stream),
        }
    }
    assert_eq!((held.len(), refused), (20, 30));
    let during = health(addr).await;
    assert_eq!(during["refused"]["unauthed_per_ip"], 30);
    legit_round_trip(addr, "legit").await;
    // An authenticated socket no longer counts against its address: free one place, fill it
    // with a socket that authenticates, and the place is free again.
    held.pop();
    sleep(Duration::from_millis(100)).await;
    let (mut authed, _) = WsClient::authed(addr, "u1").await;
    let mut again = connect_from(std::net::Ipv4Addr::LOCALHOST, addr)
        .await
        .unwrap();
    let mut raw = Vec::new();
    let quiet = timeout(Duration::from_millis(200), again.read_to_end(&mut raw)).await;
    assert!(
        quiet.is_err(),
        "admitted: {}",
        String::from_utf8_lossy(&raw)
    );
    let mut over = connect_from(std::net::Ipv4Addr::LOCALHOST, addr)
        .await
        .unwrap();
    let mut raw = Vec::new();
    timeout(WAIT, over.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parse_response(&raw).unwrap().0, 503);
    authed.send_event(1, "get_unread_count", json!({})).await;
    authed.recv_ack(1).await;
    drop((held, again));
    let after = rss(addr).await;
    report(
        "50 unauthenticated from one IP (cap 20)",
        before,
        during["rss_bytes"].as_u64().unwrap(),
        after,
    );
    assert!(after < before + 16 * MIB);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_max_connections_get_503_and_established_sockets_keep_working() {
    let config = ServerConfig {
        max_connections: 30,
        max_unauthed_per_ip: 0,
        // The sockets stay quiet for the whole test.
        heartbeat: Duration::from_secs(30),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let _serial = serial().await;
    let before = rss(addr).await;
    let mut alice = Legit::connect(addr, LEGIT, "alice").await;
    let mut bob = Legit::connect(addr, LEGIT, "bob").await;
    for client in [&mut alice, &mut bob] {
        client
            .send(&ClientFrame::Send {
                id: 1,
                event: "join_room".into(),
                data: json!({"room": "chat:1"}),
            })
            .await;
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut stream = connect_from(std::net::Ipv4Addr::LOCALHOST, addr)
            .await
            .unwrap();
        let mut raw = Vec::new();
        match timeout(Duration::from_millis(100), stream.read_to_end(&mut raw)).await {
            Ok(_) => {
                let (status, body) = parse_response(&raw).expect("a response");
                assert_eq!(
                    (status, &body["error"]["code"]),
                    (503, &json!("server_full"))
                );
                refused += 1;
            }
            Err(_) => held.push(stream),
        }
    }
    assert_eq!(
        (held.len(), refused),
        (28, 12),
        "2 sockets + 28 = the cap of 30"
    );
    // Established sockets are served while the server is full.
    bob.send(&ClientFrame::Send {
        id: 2,
        event: "message".into(),
        data: json!({"chat_id": "1", "text": "still here"}),
    })
    .await;
    assert_eq!(alice.recv_event("new_message").await["text"], "still here");
    drop(held);
    sleep(Duration::from_millis(100)).await;
    let after = health(addr).await;
    assert_eq!(after["refused"]["max_connections"], 12);
    legit_round_trip(addr, "legit").await;
    report(
        "40 connections over a cap of 30",
        before,
        after["rss_bytes"].as_u64().unwrap(),
        rss(addr).await,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_ping_flood_before_auth_is_closed_with_1008_after_eight_frames() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let _serial = serial().await;
    let before = rss(addr).await;
    let mut floods = Vec::new();
    for _ in 0..4 {
        let mut ws = Legit::upgrade(addr, std::net::Ipv4Addr::LOCALHOST).await;
        floods.push(tokio::spawn(async move {
            // Never reads while flooding: pongs pile up on the server unless it bounds them.
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(1) {
                if ws
                    .send_message(Message::Ping(Bytes::from(vec![7u8; 125])))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            ws
        }));
    }
    legit_round_trip(addr, "legit").await;
    let during = rss(addr).await;
    for flood in floods {
        let mut ws = flood.await.unwrap();
        assert_eq!(
            ws.expect_close().await,
            (1008, "too many frames".to_owned())
        );
    }
    let after = health(addr).await;
    assert_eq!(after["closed"]["frame_budget"], 4);
    report(
        "4 sockets flooding pings before auth",
        before,
        during,
        after["rss_bytes"].as_u64().unwrap(),
    );
    assert!(during < before + 32 * MIB);
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let bad = || {
        Message::Frame(Frame::message(
            Bytes::from_static(&[b'{', 0xff, 0xfe, b'}']),
            OpCode::Data(Data::Text),
            true,
        ))
    };
    let mut before_auth = Legit::upgrade(addr, LEGIT).await;
    before_auth.send_message(bad()).await.unwrap();
    assert_eq!(before_auth.expect_close().await.0, 1007);
    let mut authed = Legit::connect(addr, LEGIT, "u1").await;
    authed.send_message(bad()).await.unwrap();
    assert_eq!(authed.expect_close().await.0, 1007);
    assert_eq!(health(addr).await["closed"]["invalid_utf8"], 2);
    server.shutdown().await;
}

#[tokio::test]
async fn a_resume_from_a_future_seq_leaves_the_sessions_live_socket_alone() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut first, hello) = WsClient::authed(addr, "u1").await;
    let ServerFrame::Authenticated { session, .. } = hello else {
        unreachable!()
    };
    let future = ResumePoint { session, seq: 99 };
    let (_second, fresh) = WsClient::authed_with(addr, &token("u1"), Some(future)).await;
    assert!(matches!(
        fresh,
        ServerFrame::Authenticated { resumed: false, .. }
    ));
    let body = json!({"user": "u1", "event": "after", "data": 1});
    let (_, reply) = notify(addr, &body).await;
    assert_eq!(reply["delivered"], 2, "both sockets are live");
    match first.next(Duration::from_secs(1)).await {
        Received::Frame(ServerFrame::Event { event, seq, .. }) => {
            assert_eq!((event.as_str(), seq), ("after", Some(1)))
        }
        other => panic!("the first socket should still be served, got {other:?}"),
    }
    server.shutdown().await;
}

/// The test configuration with a probe listener on a free loopback port.
fn with_probe_listener() -> ServerConfig {
    ServerConfig {
        health_addr: Some(std::net::SocketAddr::from((
            std::net::Ipv4Addr::LOCALHOST,
            0,
        ))),
        ..ServerConfig::for_tests()
    }
}

/// A connection that starts with a health probe is answered on the accept thread and closed
/// (`Connection: close`), even when the client asked to keep it: its next request comes on a new
/// connection, and a WebSocket opened right after is a full socket on the main runtime.
#[tokio::test]
async fn a_health_probe_is_answered_with_connection_close_and_the_next_connection_is_served() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("closed after the answer")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert_eq!(
        parse_response(&raw).map(|(_, body)| body["status"].clone()),
        Some(json!("ok"))
    );
    let mut client = Legit::connect(addr, LEGIT, "after-probe").await;
    let body = json!({"user": "after-probe", "event": "ping_check", "data": {"n": 1}});
    let (status, reply) = notify(addr, &body).await;
    assert_eq!(
        (status, reply["delivered"].as_u64()),
        (202, Some(1)),
        "{reply}"
    );
    assert_eq!(client.recv_event("ping_check").await, json!({"n": 1}));
    let stopped = tokio::spawn(server.shutdown());
    assert_eq!(client.expect_close().await.0, 1001);
    stopped.await.expect("shutdown");
}

/// `/health`'s `tasks` counts the server's runtime, on whichever thread answers it: with 8 sockets
/// open, both the main port (the accept thread) and the probe port count at least their 8 tasks.
#[tokio::test]
async fn health_counts_the_servers_runtime_tasks_on_both_ports() {
    let server = start_server(with_probe_listener()).await;
    let mut sockets = Vec::new();
    for n in 0..8 {
        sockets.push(
            WsClient::authed(server.local_addr(), &format!("t{n}"))
                .await
                .0,
        );
    }
    let probe = server.health_addr().expect("a probe address");
    for addr in [server.local_addr(), probe] {
        let (status, body) = http_get(addr, "/health").await;
        assert_eq!((status, &body["connections"]), (200, &json!(8)), "{body}");
        assert!(body["tasks"].as_u64() >= Some(8), "{addr}: {body}");
    }
    drop(sockets);
    server.shutdown().await;
}

/// A blocking `GET path` on `addr`: the status line, or why none came within `limit`.
fn blocking_get(addr: std::net::SocketAddr, path: &str, limit: Duration) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, limit).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// `/health` is answered by threads of their own — on the main port by the accept thread, on the
/// probe port by the probe listener's: with the server's runtime stalled (here blocked outright,
/// as a reconnect wave on a saturated box stalls it for hundreds of ms), both answer at once, while
/// every other request on the main port waits for the runtime; after a shutdown both ports are
/// closed.
#[tokio::test(flavor = "current_thread")]
async fn health_is_answered_while_the_main_runtime_is_stalled_and_nothing_else_is() {
    let server = start_server(with_probe_listener()).await;
    let (main, probe) = (
        server.local_addr(),
        server.health_addr().expect("a probe address"),
    );
    assert_ne!(main, probe);
    let asked = std::thread::spawn(move || {
        let limit = Duration::from_secs(2);
        let probe_answer = blocking_get(probe, "/health", limit);
        let main_answer = blocking_get(main, "/health?verbose", limit);
        // Not a probe: handed to the stalled runtime (`/healthz` is not `/health`).
        let other_answer = blocking_get(main, "/healthz", Duration::from_millis(500));
        (probe_answer, main_answer, other_answer)
    });
    // Block the only thread of the runtime the server runs on until all requests are over.
    std::thread::sleep(Duration::from_millis(2_000));
    let (probe_answer, main_answer, other_answer) = asked.join().expect("the asking thread");
    assert_eq!(probe_answer.as_deref(), Ok("HTTP/1.1 200 OK"));
    assert_eq!(main_answer.as_deref(), Ok("HTTP/1.1 200 OK"));
    assert!(
        other_answer.is_err(),
        "a stalled runtime answered a request that is not a probe: {other_answer:?}"
    );
    // Unstalled, both answer the same body, and the main port serves everything else again.
    for addr in [main, probe] {
        let (status, body) = http_get(addr, "/health").await;
        assert_eq!((status, &body["status"]), (200, &json!("ok")));
        assert_eq!(body["connections"], 0);
    }
    assert_eq!(http_get(main, "/healthz").await.0, 404);
    server.shutdown().await;
    for addr in [main, probe] {
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "{addr} is still open after shutdown"
        );
    }
}
