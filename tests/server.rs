//! Integration tests for the reference server over loopback: authentication, `/notify`,
//! `/health`, the HTTP face, shutdown and the binary. Every server binds 127.0.0.1:0.
//! (Sends, rooms and resume: `server_sends.rs`; the guarantees of PROTOCOL.md §5 and §7:
//! `server_guarantees.rs`.)
#![cfg(feature = "server")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use sockline::protocol::{ClientFrame, ServerFrame};
use sockline::server::ServerConfig;
use support::*;

#[tokio::test]
async fn auth_succeeds_with_a_valid_token() {
    let server = start_server(ServerConfig::for_tests()).await;
    let (_client, frame) = WsClient::authed(server.local_addr(), "u1").await;
    match frame {
        ServerFrame::Authenticated {
            user_id,
            session,
            heartbeat_ms,
            resumed,
            missed,
            v,
            ..
        } => {
            assert_eq!(v, 1);
            assert_eq!(user_id, "u1");
            assert_eq!(session.len(), 32);
            assert_eq!(heartbeat_ms, 1000);
            assert!(!resumed);
            assert_eq!(missed, 0);
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_and_expired_tokens_are_rejected_with_4001() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (frame, code) = auth_and_expect_close(addr, "not-a-jwt").await;
    assert!(matches!(frame, ServerFrame::AuthError { ref code, .. } if code == "invalid_token"));
    assert_eq!(code, 4001);
    let wrong_secret = sockline::server::mint_token("other", "u1", Duration::from_secs(60));
    let (frame, code) = auth_and_expect_close(addr, &wrong_secret).await;
    assert!(matches!(frame, ServerFrame::AuthError { ref code, .. } if code == "invalid_token"));
    assert_eq!(code, 4001);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "u1", "exp": now - 10}),
        &jsonwebtoken::EncodingKey::from_secret(b"test-secret"),
    )
    .unwrap();
    let (frame, code) = auth_and_expect_close(addr, &expired).await;
    assert!(matches!(frame, ServerFrame::AuthError { ref code, .. } if code == "expired"));
    assert_eq!(code, 4001);
    server.shutdown().await;
}

#[tokio::test]
async fn no_auth_in_time_closes_with_4000() {
    let config = ServerConfig {
        auth_timeout: Duration::from_millis(200),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let mut client = WsClient::connect(server.local_addr()).await;
    let frame = client.recv().await;
    assert!(matches!(frame, ServerFrame::AuthError { ref code, .. } if code == "timeout"));
    client.expect_close(4000).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_first_frame_other_than_auth_closes_with_4001() {
    let server = start_server(ServerConfig::for_tests()).await;
    let mut client = WsClient::connect(server.local_addr()).await;
    client.send(&ClientFrame::Pong { t: 1 }).await;
    client.expect_close(4001).await;
    let mut client = WsClient::connect(server.local_addr()).await;
    client.send_text("{not json").await;
    client.expect_close(4001).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_sixth_socket_is_refused_with_4008_and_the_others_keep_working() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(WsClient::authed(addr, "u1").await.0);
    }
    let mut sixth = WsClient::connect(addr).await;
    sixth
        .send(&ClientFrame::Auth {
            v: 1,
            client: None,
            token: token("u1"),
            resume: None,
        })
        .await;
    sixth.expect_close(4008).await;
    for client in &mut clients {
        client.send_event(1, "get_unread_count", json!({})).await;
        let (ok, data, _) = ack_parts(client.recv_ack(1).await);
        assert!(ok);
        assert_eq!(data, Some(json!({"count": 0})));
    }
    // Another user is not affected by u1's limit.
    let _other = WsClient::authed(addr, "u2").await;
    server.shutdown().await;
}

#[tokio::test]
async fn notify_reaches_a_users_sockets_and_a_rooms_members() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a1, _) = WsClient::authed(addr, "u1").await;
    let (mut a2, _) = WsClient::authed(addr, "u1").await;
    let (mut b, _) = WsClient::authed(addr, "u2").await;
    let body =
        json!({"user": "u1", "event": "new_notification", "data": {"id": "n1", "title": "hi"}});
    let (status, reply) = http_post_json(addr, "/notify", Some("test-key"), &body).await;
    assert_eq!((status, reply), (202, json!({"delivered": 2})));
    for client in [&mut a1, &mut a2] {
        let (seq, data) = client.recv_event("new_notification").await;
        assert_eq!(seq, 1);
        assert_eq!(data, json!({"id": "n1", "title": "hi"}));
    }
    b.send_event(1, "join_room", json!({"room": "chat:7"}))
        .await;
    assert!(ack_parts(b.recv_ack(1).await).0);
    a1.send_event(1, "join_room", json!({"room": "chat:7"}))
        .await;
    assert!(ack_parts(a1.recv_ack(1).await).0);
    let body = json!({"room": "chat:7", "event": "conversation_update", "data": {"x": 1}});
    let (status, reply) = http_post_json(addr, "/notify", Some("test-key"), &body).await;
    assert_eq!((status, reply), (202, json!({"delivered": 2})));
    assert_eq!(
        a1.recv_event("conversation_update").await.1,
        json!({"x": 1})
    );
    assert_eq!(b.recv_event("conversation_update").await.1, json!({"x": 1}));
    let body = json!({"room": "chat:none", "event": "e"});
    let (status, reply) = http_post_json(addr, "/notify", Some("test-key"), &body).await;
    assert_eq!((status, reply), (202, json!({"delivered": 0})));
    server.shutdown().await;
}

#[tokio::test]
async fn notify_refuses_a_wrong_key_and_bad_bodies() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let body = json!({"user": "u1", "event": "e"});
    for key in [None, Some("wrong")] {
        let (status, reply) = http_post_json(addr, "/notify", key, &body).await;
        assert_eq!(status, 401);
        assert_eq!(reply["error"]["code"], "unauthorized");
    }
    for bad in [
        json!({"event": "e"}),
        json!({"user": "u1", "room": "chat:1", "event": "e"}),
        json!({"user": "u1"}),
        json!({"user": "u1", "event": ""}),
        json!({"user": "u1", "event": 5}),
        json!([1, 2]),
    ] {
        let (status, reply) = http_post_json(addr, "/notify", Some("test-key"), &bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(reply["error"]["code"], "bad_request", "{bad}");
        assert!(reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, reply) = http_post_raw(addr, "/notify", Some("test-key"), "{oops").await;
    assert_eq!(status, 400);
    assert_eq!(reply["error"]["code"], "bad_request");
    server.shutdown().await;
}

#[tokio::test]
async fn health_reports_live_numbers() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (status, body) = http_get(addr, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(
        (
            body["connections"].as_u64(),
            body["users"].as_u64(),
            body["rooms"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert!(body["uptime_s"].is_u64());
    let (mut a1, _) = WsClient::authed(addr, "u1").await;
    let (_a2, _) = WsClient::authed(addr, "u1").await;
    let (_b, _) = WsClient::authed(addr, "u2").await;
    a1.send_event(1, "join_room", json!({"room": "chat:1"}))
        .await;
    a1.recv_ack(1).await;
    let (_, body) = http_get(addr, "/health").await;
    assert_eq!(body["connections"], 3);
    assert_eq!(body["users"], 2);
    assert_eq!(body["rooms"], 3, "user:u1, user:u2, chat:1");
    server.shutdown().await;
}

#[tokio::test]
async fn a_disallowed_origin_gets_403_before_the_upgrade() {
    let config = ServerConfig {
        allowed_origins: vec!["https://app.example".to_owned()],
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    match WsClient::try_connect(addr, Some("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        Err(other) => panic!("expected an HTTP 403, got {other:?}"),
        Ok(_) => panic!("the upgrade should have been refused"),
    }
    assert!(WsClient::try_connect(addr, Some("https://app.example"))
        .await
        .is_ok());
    assert!(
        WsClient::try_connect(addr, None).await.is_ok(),
        "native clients send no Origin"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_static_dir_is_served_with_an_spa_fallback() {
    let dir = std::env::temp_dir().join(format!("sockline-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(dir.join("app.js"), "console.log(1)").unwrap();
    let config = ServerConfig {
        static_dir: Some(dir.clone()),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    assert_eq!(http_get(addr, "/").await, (200, json!("<h1>demo</h1>")));
    assert_eq!(
        http_get(addr, "/app.js").await,
        (200, json!("console.log(1)"))
    );
    assert_eq!(
        http_get(addr, "/chats/7").await,
        (200, json!("<h1>demo</h1>"))
    );
    assert_eq!(http_get(addr, "/health").await.1["status"], "ok");
    WsClient::authed(addr, "u1").await;
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_two_heartbeats() {
    let config = ServerConfig {
        heartbeat: Duration::from_millis(100),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let (mut a, _) = WsClient::authed(server.local_addr(), "u1").await;
    let started = std::time::Instant::now();
    assert!(matches!(
        a.recv().await,
        ServerFrame::Ping { rtt_ms: None, .. }
    ));
    let reason = a.expect_close(1001).await;
    assert_eq!(reason, "heartbeat timeout");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(150) && elapsed < Duration::from_millis(1000),
        "{elapsed:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_ping_carries_the_rtt_measured_from_the_previous_pong() {
    let config = ServerConfig {
        heartbeat: Duration::from_millis(100),
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let (mut a, _) = WsClient::authed(server.local_addr(), "u1").await;
    let t = match a.recv().await {
        ServerFrame::Ping { t, rtt_ms: None } => t,
        other => panic!("{other:?}"),
    };
    a.send(&ClientFrame::Pong { t }).await;
    match a.recv().await {
        ServerFrame::Ping {
            rtt_ms: Some(rtt), ..
        } => assert!(rtt < 1000, "{rtt}"),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_and_frees_the_port() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed(addr, "u1").await;
    let (mut b, _) = WsClient::authed(addr, "u2").await;
    let mut unauthed = WsClient::connect(addr).await;
    let shutdown = tokio::spawn(server.shutdown());
    a.expect_close(1001).await;
    b.expect_close(1001).await;
    unauthed.expect_close(1001).await;
    tokio::time::timeout(WAIT, shutdown)
        .await
        .expect("shutdown ends")
        .expect("no panic");
    let again = start_server(ServerConfig {
        addr,
        ..ServerConfig::for_tests()
    })
    .await;
    assert_eq!(again.local_addr(), addr);
    WsClient::authed(addr, "u1").await;
    again.shutdown().await;
}

#[tokio::test]
async fn abort_drops_sockets_without_a_close_frame_and_frees_the_port() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed(addr, "u1").await;
    server.abort();
    a.expect_dropped().await;
    let again = start_server(ServerConfig {
        addr,
        ..ServerConfig::for_tests()
    })
    .await;
    WsClient::authed(addr, "u1").await;
    again.abort();
}

#[tokio::test]
async fn the_binary_serves_in_dev_mode_and_exits_0_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockline-server"))
        .args(["--addr", "127.0.0.1:0", "--dev"])
        .env_remove("SOCKLINE_JWT_SECRET")
        .env_remove("SOCKLINE_SERVER_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let addr: std::net::SocketAddr = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .parse()
        .unwrap();
    let (status, body) = http_get(addr, "/dev/token?user=demo").await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().expect("a token").to_owned();
    let (_ws, hello) = WsClient::authed_with(addr, &token, None).await;
    assert!(matches!(hello, ServerFrame::Authenticated { ref user_id, .. } if user_id == "demo"));
    let (status, body) = http_get(addr, "/health").await;
    assert_eq!((status, body["connections"].as_u64()), (200, Some(1)));
    let (status, _) = http_post_json(
        addr,
        "/notify",
        Some("dev-key"),
        &json!({"user": "demo", "event": "e"}),
    )
    .await;
    assert_eq!(status, 202);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SOCKLINE_JWT_SECRET") && stderr.contains("SOCKLINE_SERVER_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains(&token), "a token was logged");
}

#[test]
fn the_binary_refuses_to_start_without_a_secret_outside_dev_mode() {
    let output = Command::new(env!("CARGO_BIN_EXE_sockline-server"))
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("SOCKLINE_JWT_SECRET")
        .env("SOCKLINE_SERVER_KEY", "k")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SOCKLINE_JWT_SECRET is not set"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn the_help_documents_every_limit_with_its_default() {
    let output = Command::new(env!("CARGO_BIN_EXE_sockline-server"))
        .arg("--help")
        .output()
        .expect("the binary runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout).replace('\n', " ");
    for (flag, default) in [
        ("--auth-timeout-ms", "5000"),
        ("--heartbeat-ms", "30000"),
        ("--max-conns-per-user", "5"),
        ("--max-frame-bytes", "65536"),
        ("--rate-limit", "50"),
        ("--frame-rate", "1000"),
        ("--header-timeout-ms", "5000"),
        ("--upgrade-timeout-ms", "10000"),
        ("--max-connections", "16384"),
        ("--max-unauthed-per-ip", "256"),
        ("--replay-max", "1000"),
        ("--replay-age-ms", "120000"),
        ("--replay-budget-bytes", "268435456"),
        ("--replay-user-bytes", "1048576"),
        ("--unread-budget-bytes", "33554432"),
        ("--announce-max-members", "100"),
        ("--dedupe-retention", "86400"),
        ("--dedupe-budget-bytes", "67108864"),
        ("--dedupe-clients-per-user", "16"),
    ] {
        let at = help
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} is not documented"));
        let section = &help[at..];
        let end = section[flag.len()..]
            .find("  --")
            .map_or(section.len(), |e| e + flag.len());
        assert!(
            section[..end].contains(&format!("[default: {default}]")),
            "{flag}: {}",
            &section[..end]
        );
    }
}
