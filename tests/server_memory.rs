//! Attacks after authentication and memory bounds (issue 10), over loopback, bounded in count and
//! time: frame floods of every type, a peer that never reads, replay and unread memory under
//! their budgets, and clean logs. A legitimate client receives a `/notify` throughout, and the
//! server's RSS (from its own `/health`) stays within a stated bound.
#![cfg(feature = "server")]

#[path = "support/attack.rs"]
mod attack;
mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use attack::*;
use bytes::Bytes;
use serde_json::json;
use sockline::protocol::{ClientFrame, ResumePoint, ServerFrame};
use sockline::server::ServerConfig;
use support::{start_server, token, WsClient};
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn every_inbound_frame_type_counts_against_the_frame_budget() {
    let config = ServerConfig {
        frame_rate: 50,
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    type Flood = (&'static str, fn() -> Message);
    let floods: [Flood; 5] = [
        ("ping", || Message::Ping(Bytes::from_static(b"x"))),
        ("pong", || Message::Text(r#"{"type":"pong","t":1}"#.into())),
        ("ack", || Message::Text(r#"{"type":"ack","seq":0}"#.into())),
        ("invalid", || Message::Text("{nope".into())),
        ("binary", || Message::Binary(Bytes::from_static(b"\x01"))),
    ];
    for (n, (kind, frame)) in floods.into_iter().enumerate() {
        let mut client = Legit::connect(addr, LEGIT, &format!("flood{n}")).await;
        for _ in 0..300 {
            if client.send_message(frame()).await.is_err() {
                break;
            }
        }
        assert_eq!(
            client.expect_close().await,
            (1008, "too many frames".to_owned()),
            "{kind}"
        );
    }
    assert_eq!(health(addr).await["closed"]["frame_budget"], 5);
    legit_round_trip(addr, "legit").await;
    server.shutdown().await;
}

#[tokio::test]
async fn pongs_for_a_ping_flood_that_is_never_read_do_not_pile_up() {
    // The frame budget is off: only tungstenite's bounded write buffer stands between the flood
    // and memory (without it, one such socket grew the server by ~220 MiB in 30 s).
    let config = ServerConfig {
        frame_rate: 0,
        heartbeat: Duration::from_secs(30),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let _serial = serial().await;
    let before = rss(addr).await;
    let mut flood = Legit::connect(addr, LEGIT, "flooder").await;
    let flooding = tokio::spawn(async move {
        let started = Instant::now();
        let mut sent = 0u64;
        // 125-byte pings: 400,000 of them would be 50 MB of pongs.
        while sent < 400_000 && started.elapsed() < Duration::from_secs(8) {
            if flood
                .send_message(Message::Ping(Bytes::from_static(&[7u8; 125])))
                .await
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        (flood, sent)
    });
    sleep(Duration::from_millis(500)).await;
    legit_round_trip(addr, "legit").await;
    let (_flood, sent) = flooding.await.unwrap();
    let during = rss(addr).await;
    legit_round_trip(addr, "legit").await;
    let after = rss(addr).await;
    report(
        &format!("{sent} unread pings (budget off)"),
        before,
        during,
        after,
    );
    assert!(
        sent > 100_000,
        "the flood was too small to mean anything: {sent}"
    );
    assert!(during < before + 24 * MIB, "pongs piled up");
    server.shutdown().await;
}

#[tokio::test]
async fn a_socket_that_never_reads_is_closed_with_1013_and_its_session_kept() {
    let config = ServerConfig {
        heartbeat: Duration::from_secs(30),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let _serial = serial().await;
    let before = rss(addr).await;
    let mut slow = Legit::connect(addr, LEGIT, "slow").await;
    let text = "x".repeat(40_000);
    let mut delivered_to_slow = 0;
    // Loopback kernel buffers alone absorb several MB before the server's queue fills.
    for n in 0..2000 {
        let body = json!({"user": "slow", "event": "big", "data": {"n": n, "text": text}});
        let (status, reply) = notify(addr, &body).await;
        assert_eq!(status, 202);
        delivered_to_slow += reply["delivered"].as_u64().unwrap();
        if reply["delivered"] == 0 {
            break;
        }
    }
    assert!(delivered_to_slow < 2000, "the queue never filled");
    // The socket task sees the kill once its current write gives up (at most 2 s).
    let mut during = health(addr).await;
    for _ in 0..100 {
        if during["closed"]["slow_consumer"] == 1 {
            break;
        }
        sleep(Duration::from_millis(50)).await;
        during = health(addr).await;
    }
    assert_eq!(during["closed"]["slow_consumer"], 1, "{during}");
    assert_eq!(during["connections"], 0);
    assert_eq!(during["sessions"], 1, "the session is kept for resume");
    legit_round_trip(addr, "legit").await;
    // Reading now drains what the kernel held, then the close frame.
    // The kill reaches the socket even while its write waits on the peer.
    let (code, reason) = slow.expect_close().await;
    assert_eq!((code, reason.as_str()), (1013, "socket queue full"));
    let after = rss(addr).await;
    report(
        &format!("a socket that never reads ({delivered_to_slow} x 40 KB events taken)"),
        before,
        during["rss_bytes"].as_u64().unwrap(),
        after,
    );
    assert!(during["rss_bytes"].as_u64().unwrap() < before + 32 * MIB);
    server.shutdown().await;
}

/// Connects `n` users to `room` and drops their sockets, leaving `n` detached sessions.
async fn detached_members(
    addr: std::net::SocketAddr,
    n: usize,
    room: &str,
) -> Vec<(String, String)> {
    let mut sessions = Vec::new();
    for i in 0..n {
        let user = format!("m{i}");
        let (mut client, hello) = WsClient::authed(addr, &user).await;
        client
            .send_event(1, "join_room", json!({"room": room}))
            .await;
        client.recv_ack(1).await;
        let ServerFrame::Authenticated { session, .. } = hello else {
            unreachable!()
        };
        sessions.push((user, session));
    }
    // Sockets drop when the clients go out of scope; wait until the server saw it.
    for _ in 0..200 {
        if health(addr).await["connections"] == 0 {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    sessions
}

#[tokio::test]
async fn replay_memory_stays_under_the_global_budget_oldest_evicted_first() {
    let budget = 4 * MIB as usize;
    let config = ServerConfig {
        replay_budget_bytes: budget,
        // Large enough that only the global budget evicts here.
        replay_user_bytes: 64 << 20,
        replay_age: Duration::from_secs(60),
        heartbeat: Duration::from_secs(30),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let sessions = detached_members(addr, 200, "chat:big").await;
    let before = rss(addr).await;
    let text = "y".repeat(60_000);
    let mut max_bytes = 0;
    for n in 0..120 {
        let body = json!({"room": "chat:big", "event": "big", "data": {"n": n, "text": text}});
        assert_eq!(notify(addr, &body).await.0, 202);
        let replay = &health(addr).await["replay"];
        max_bytes = max_bytes.max(replay["bytes"].as_u64().unwrap());
    }
    let during = health(addr).await;
    legit_round_trip(addr, "legit").await;
    assert!(max_bytes <= budget as u64, "{max_bytes} > {budget}");
    assert!(
        during["replay"]["evicted_budget"].as_u64() >= Some(50),
        "{during}"
    );
    // The oldest events are gone: a session that saw none of them cannot resume...
    let (user, session) = &sessions[0];
    let from_start = ResumePoint {
        session: session.clone(),
        seq: 0,
    };
    let (_c, hello) = WsClient::authed_with(addr, &token(user), Some(from_start)).await;
    assert!(matches!(
        hello,
        ServerFrame::Authenticated { resumed: false, .. }
    ));
    // ...while one that saw all but the two newest resumes with exactly those (the last member
    // to join saw nothing but the 120 events, seq 1..=120).
    let (user, session) = &sessions[199];
    let recent = ResumePoint {
        session: session.clone(),
        seq: 118,
    };
    let (mut c, hello) = WsClient::authed_with(addr, &token(user), Some(recent)).await;
    assert!(
        matches!(
            hello,
            ServerFrame::Authenticated {
                resumed: true,
                missed: 2,
                ..
            }
        ),
        "{hello:?} {}",
        health(addr).await
    );
    assert_eq!(c.recv_event("big").await.1["n"], 118);
    let after = rss(addr).await;
    report(
        "200 detached sessions x 120 events of 60 KB (budget 4 MiB)",
        before,
        during["rss_bytes"].as_u64().unwrap(),
        after,
    );
    assert!(during["rss_bytes"].as_u64().unwrap() < before + 40 * MIB);
    server.shutdown().await;
}

#[tokio::test]
async fn one_users_sessions_hold_at_most_their_replay_cap() {
    let config = ServerConfig {
        replay_user_bytes: 512 * 1024,
        replay_age: Duration::from_secs(60),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let sessions = detached_members(addr, 3, "chat:x").await;
    let _ = sessions;
    let (a, _) = WsClient::authed(addr, "hoarder").await;
    drop(a);
    sleep(Duration::from_millis(100)).await;
    let text = "z".repeat(50_000);
    for n in 0..30 {
        let body = json!({"user": "hoarder", "event": "big", "data": {"n": n, "text": text}});
        notify(addr, &body).await;
    }
    let replay = health(addr).await["replay"].clone();
    assert!(replay["evicted_user_cap"].as_u64() >= Some(20), "{replay}");
    assert!(replay["bytes"].as_u64() < Some(600 * 1024), "{replay}");
    legit_round_trip(addr, "legit").await;
    server.shutdown().await;
}

#[tokio::test]
async fn unread_ids_for_offline_users_stay_under_their_budget() {
    let config = ServerConfig {
        unread_budget_bytes: 16 * 1024,
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    for n in 0..600 {
        let body = json!({"user": format!("offline{n}"), "event": "new_notification", "data": {"id": format!("n{n}")}});
        notify(addr, &body).await;
    }
    let unread = health(addr).await["unread"].clone();
    assert!(unread["bytes"].as_u64() <= Some(16 * 1024), "{unread}");
    assert!(unread["evicted_users"].as_u64() >= Some(100), "{unread}");
    let count = |user: &'static str| async move {
        let mut client = Legit::connect(addr, LEGIT, user).await;
        client
            .send(&ClientFrame::Send {
                id: 1,
                event: "get_unread_count".into(),
                data: json!({}),
            })
            .await;
        loop {
            if let Some(ServerFrame::Ack { data, .. }) = client.recv().await {
                return data.unwrap()["count"].clone();
            }
        }
    };
    assert_eq!(count("offline599").await, json!(1), "the newest is kept");
    assert_eq!(count("offline0").await, json!(0), "the oldest went first");
    legit_round_trip(addr, "legit").await;
    server.shutdown().await;
}

#[tokio::test]
async fn logs_escape_user_ids_have_no_colours_when_piped_and_never_show_tokens() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockline-server"))
        .args(["--addr", "127.0.0.1:0", "--dev"])
        .env("SOCKLINE_JWT_SECRET", "test-secret")
        .env("SOCKLINE_SERVER_KEY", "test-key")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 128];
        let n = stdout.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    let addr: std::net::SocketAddr = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    let evil = "eve\nINFO forged: admin logged in\r\u{1b}[31mred\u{1b}[0m";
    let evil_token = token(evil);
    let _eve = Legit::connect(addr, LEGIT, evil).await;
    let body = json!({"user": evil, "event": "e\u{1b}[2J", "data": {}});
    assert_eq!(notify(addr, &body).await.0, 202);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains('\u{1b}'),
        "an escape reached the log:\n{stderr}"
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("INFO forged")),
        "a forged line:\n{stderr}"
    );
    assert!(stderr.contains(r"eve\u{a}INFO forged"), "{stderr}");
    assert!(!stderr.contains(&evil_token), "a token was logged");
}
