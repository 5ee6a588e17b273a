//! The reference server's side of the guarantees that hold past one session (issue 15,
//! PROTOCOL.md §3, §5, §7): send ids deduped per (user, client) across sessions, ids processed
//! out of order, the floor, ids outside 1 ..= 2^53 − 1 refused without an ack, the protocol
//! version and client id checked at `auth`, `nbf`, `expires_in_ms`, in-band `refresh` and 4002
//! at expiry. Every server binds 127.0.0.1:0.
#![cfg(feature = "server")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use sockline::protocol::{ClientFrame, ServerFrame};
use sockline::server::{mint_token, ServerConfig};
use support::*;

const CLIENT: &str = "k3J9x0Qa7mB2nP4s";

/// A config whose heartbeat leaves room for tests that wait a few seconds without answering.
fn quiet_config() -> ServerConfig {
    ServerConfig {
        heartbeat: Duration::from_secs(10),
        ..ServerConfig::for_tests()
    }
}

async fn join(client: &mut WsClient, id: u64, room: &str) {
    client
        .send_event(id, "join_room", json!({"room": room}))
        .await;
    assert!(ack_parts(client.recv_ack(id).await).0, "join {room}");
}

fn message(text: &str) -> Value {
    json!({"chat_id": "1", "text": text})
}

/// Bob in `chat:1`, listening; returns his socket.
async fn listener(addr: SocketAddr) -> WsClient {
    let (mut bob, _) = WsClient::authed(addr, "bob").await;
    join(&mut bob, 1, "chat:1").await;
    bob
}

/// The texts of the `new_message`s that arrive within `wait`.
async fn messages_within(client: &mut WsClient, wait: Duration) -> Vec<String> {
    let mut texts = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next(left).await {
            Received::Frame(ServerFrame::Event { event, data, .. }) if event == "new_message" => {
                texts.push(data["text"].as_str().unwrap_or_default().to_owned());
            }
            Received::Frame(_) => continue,
            Received::Timeout => return texts,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_same_id_from_a_new_session_of_the_same_client_is_answered_not_processed_again() {
    let server = start_server(quiet_config()).await;
    let addr = server.local_addr();
    let mut bob = listener(addr).await;
    let (mut alice, _) = WsClient::authed_as(addr, &token("alice"), Some(CLIENT), None).await;
    join(&mut alice, 1, "chat:1").await;
    alice.send_event(2, "message", message("once")).await;
    let first = alice.recv_ack(2).await;
    drop(alice);
    // A new session (no resume), the same client id, a socket of its own.
    let (mut again, hello) = WsClient::authed_as(addr, &token("alice"), Some(CLIENT), None).await;
    assert!(matches!(
        hello,
        ServerFrame::Authenticated { resumed: false, .. }
    ));
    again.send_event(2, "message", message("once")).await;
    assert_eq!(
        again.recv_ack(2).await,
        first,
        "the same ack, data included"
    );
    // Two sockets of the client at once share the memory as well.
    let (mut third, _) = WsClient::authed_as(addr, &token("alice"), Some(CLIENT), None).await;
    third.send_event(2, "message", message("once")).await;
    assert_eq!(third.recv_ack(2).await, first);
    assert_eq!(
        messages_within(&mut bob, Duration::from_millis(400)).await,
        ["once"]
    );
    // Another client of the same user, and the same client id of another user, are apart.
    let (mut other_client, _) =
        WsClient::authed_as(addr, &token("alice"), Some("another-client-id"), None).await;
    join(&mut other_client, 1, "chat:1").await;
    other_client
        .send_event(2, "message", message("other client"))
        .await;
    assert!(ack_parts(other_client.recv_ack(2).await).0);
    let (mut carol, _) = WsClient::authed_as(addr, &token("carol"), Some(CLIENT), None).await;
    join(&mut carol, 1, "chat:1").await;
    carol.send_event(2, "message", message("other user")).await;
    assert!(ack_parts(carol.recv_ack(2).await).0);
    let mut seen = messages_within(&mut bob, Duration::from_millis(400)).await;
    seen.sort();
    assert_eq!(seen, ["other client", "other user"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_lower_id_never_seen_is_processed_and_a_client_without_an_id_is_deduped_per_session() {
    let server = start_server(quiet_config()).await;
    let addr = server.local_addr();
    let mut bob = listener(addr).await;
    let (mut alice, _) = WsClient::authed_as(addr, &token("alice"), Some(CLIENT), None).await;
    join(&mut alice, 1, "chat:1").await;
    // A huge id does not make later ids "repeats".
    alice
        .send_event(9_007_199_254_740_991, "message", message("top"))
        .await;
    assert!(ack_parts(alice.recv_ack(9_007_199_254_740_991).await).0);
    alice.send_event(10, "message", message("ten")).await;
    assert!(ack_parts(alice.recv_ack(10).await).0);
    alice.send_event(5, "message", message("five")).await;
    let (ok, data, _) = ack_parts(alice.recv_ack(5).await);
    assert!(
        ok && data.is_some(),
        "processed: the ack carries the message id"
    );
    assert_eq!(
        messages_within(&mut bob, Duration::from_millis(400)).await,
        ["top", "ten", "five"]
    );
    // Without `client`, each session has its own memory: id 1 is new in a new session.
    for text in ["first session", "second session"] {
        let (mut anon, _) = WsClient::authed(addr, "dave").await;
        join(&mut anon, 1, "chat:1").await;
        anon.send_event(2, "message", message(text)).await;
        assert!(ack_parts(anon.recv_ack(2).await).0);
    }
    assert_eq!(
        messages_within(&mut bob, Duration::from_millis(400)).await,
        ["first session", "second session"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ids_outside_the_wire_range_are_invalid_frames_and_get_no_ack_for_any_id() {
    let server = start_server(quiet_config()).await;
    let (mut a, _) = WsClient::authed(server.local_addr(), "u1").await;
    for bad in [
        "0",
        "-1",
        "1.5",
        "1e3",
        "7.0",
        "\"7\"",
        "9007199254740992",
        "18446744073709551615",
        "18446744073709551616",
    ] {
        a.send_text(&format!(
            r#"{{"type":"send","id":{bad},"event":"get_unread_count","data":{{}}}}"#
        ))
        .await;
        let reply = a.recv_no_ping().await;
        assert!(
            matches!(reply, ServerFrame::Error { ref code, .. } if code == "invalid_frame"),
            "{bad}: {reply:?}"
        );
    }
    a.send_text(r#"{"type":"send","event":"get_unread_count"}"#)
        .await;
    assert!(matches!(a.recv_no_ping().await, ServerFrame::Error { .. }));
    // The next frame is the ack of 1: no ack was sent for any of the bad ids (not even id 1
    // for `1.5` or `1e3`), and none of them made id 1 look processed.
    a.send_event(1, "get_unread_count", json!({})).await;
    match a.recv_no_ping().await {
        ServerFrame::Ack {
            id: 1,
            ok: true,
            data,
            ..
        } => assert_eq!(data, Some(json!({"count": 0}))),
        other => panic!("{other:?}"),
    }
    // Acks and resume points beyond 2^53 - 1 are invalid too.
    a.send_text(r#"{"type":"ack","seq":9007199254740992}"#)
        .await;
    assert!(matches!(a.recv_no_ping().await, ServerFrame::Error { .. }));
    server.shutdown().await;
}

#[tokio::test]
async fn ids_the_server_forgot_are_id_expired_and_an_evicted_client_keeps_its_floor() {
    let config = ServerConfig {
        rate_limit: 0,
        frame_rate: 0,
        dedupe_clients_per_user: 1,
        ..quiet_config()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed_as(addr, &token("u1"), Some(CLIENT), None).await;
    // 1,025 processed ids: the oldest one falls out of the window and becomes the floor.
    for id in 1..=1_025 {
        a.send_event(id, "get_unread_count", json!({})).await;
    }
    a.recv_ack(1_025).await;
    a.send_event(1, "get_unread_count", json!({})).await;
    let (ok, _, code) = ack_parts(a.recv_ack(1).await);
    assert!(!ok);
    assert_eq!(code.as_deref(), Some("id_expired"));
    a.send_event(2, "get_unread_count", json!({})).await;
    assert!(ack_parts(a.recv_ack(2).await).0, "still remembered");
    // A second client of u1 takes the only window; the first keeps its floor: nothing it
    // processed can be processed again, and the eviction is counted.
    let (mut b, _) = WsClient::authed_as(addr, &token("u1"), Some("second-client-id"), None).await;
    b.send_event(1, "get_unread_count", json!({})).await;
    assert!(ack_parts(b.recv_ack(1).await).0);
    a.send_event(1_000, "get_unread_count", json!({})).await;
    assert_eq!(
        ack_parts(a.recv_ack(1_000).await).2.as_deref(),
        Some("id_expired")
    );
    a.send_event(1_026, "get_unread_count", json!({})).await;
    assert!(ack_parts(a.recv_ack(1_026).await).0, "above the floor: new");
    let (_, health) = http_get(addr, "/health").await;
    assert!(health["dedupe"]["evicted"].as_u64() >= Some(1), "{health}");
    assert_eq!(health["dedupe"]["floors_dropped"], 0);
    assert!(health["dedupe"]["pairs"].as_u64() >= Some(2), "{health}");
    server.shutdown().await;
}

#[tokio::test]
async fn auth_refuses_another_version_a_malformed_client_id_and_a_token_before_its_nbf() {
    let server = start_server(quiet_config()).await;
    let addr = server.local_addr();
    let refused = |text: String| async move {
        let mut c = WsClient::connect(addr).await;
        c.send_text(&text).await;
        let frame = c.recv().await;
        let code = match frame {
            ServerFrame::AuthError { code, .. } => code,
            other => panic!("{other:?}"),
        };
        c.expect_close(4001).await;
        code
    };
    let t = token("u1");
    assert_eq!(
        refused(format!(r#"{{"type":"auth","v":2,"token":"{t}"}}"#)).await,
        "unsupported_version"
    );
    assert_eq!(
        refused(format!(
            r#"{{"type":"auth","token":"{t}","client":"has spaces in it!"}}"#
        ))
        .await,
        "invalid_client"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let with_nbf = |nbf: u64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": "u1", "exp": now + 600, "nbf": nbf}),
            &jsonwebtoken::EncodingKey::from_secret(b"test-secret"),
        )
        .unwrap()
    };
    let (frame, code) = auth_and_expect_close(addr, &with_nbf(now + 300)).await;
    assert!(
        matches!(frame, ServerFrame::AuthError { ref code, .. } if code == "invalid_token"),
        "{frame:?}"
    );
    assert_eq!(code, 4001);
    WsClient::authed_with(addr, &with_nbf(now - 5), None).await;
    // `v` absent is version 1.
    let mut c = WsClient::connect(addr).await;
    c.send_text(&format!(r#"{{"type":"auth","token":"{t}"}}"#))
        .await;
    assert!(matches!(
        c.recv().await,
        ServerFrame::Authenticated { v: 1, .. }
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn a_refresh_moves_the_expiry_and_without_one_the_socket_is_closed_with_4002() {
    let server = start_server(quiet_config()).await;
    let addr = server.local_addr();
    // `mint_token` counts whole seconds: a 2 s token has 1–2 s left.
    let short = mint_token("test-secret", "u1", Duration::from_secs(2));
    let (mut kept, hello) = WsClient::authed_with(addr, &short, None).await;
    match hello {
        ServerFrame::Authenticated { expires_in_ms, .. } => {
            let left = expires_in_ms.expect("expires_in_ms");
            assert!((500..=2_000).contains(&left), "{left}");
        }
        other => panic!("{other:?}"),
    }
    let (mut lapsed, _) = WsClient::authed_with(addr, &short, None).await;
    kept.send(&ClientFrame::Refresh { token: token("u1") })
        .await;
    match kept.recv_no_ping().await {
        ServerFrame::Refreshed { expires_in_ms } => {
            assert!(
                (55_000..=60_000).contains(&expires_in_ms),
                "{expires_in_ms}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(lapsed.expect_close(4002).await, "token expired");
    // The refreshed socket outlived its first token.
    kept.send_event(1, "get_unread_count", json!({})).await;
    assert!(ack_parts(kept.recv_ack(1).await).0);
    let (_, health) = http_get(addr, "/health").await;
    assert_eq!(health["closed"]["token_expired"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_refresh_for_another_user_or_with_a_bad_token_is_refused_then_4001() {
    let server = start_server(quiet_config()).await;
    let addr = server.local_addr();
    let expired = mint_token("test-secret", "u1", Duration::from_secs(1));
    for (token, code) in [
        (token("u2"), "user_mismatch"),
        (
            mint_token("other-secret", "u1", Duration::from_secs(60)),
            "invalid_token",
        ),
        ("garbage".to_owned(), "invalid_token"),
    ] {
        let (mut a, _) = WsClient::authed(addr, "u1").await;
        a.send(&ClientFrame::Refresh { token }).await;
        match a.recv_no_ping().await {
            ServerFrame::AuthError { code: got, .. } => assert_eq!(got, code),
            other => panic!("{other:?}"),
        }
        a.expect_close(4001).await;
    }
    // A token that expired while the socket lived (1 s token, refreshed after it lapsed).
    let (mut a, _) = WsClient::authed(addr, "u1").await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    a.send(&ClientFrame::Refresh { token: expired }).await;
    match a.recv_no_ping().await {
        ServerFrame::AuthError { code, .. } => assert_eq!(code, "expired"),
        other => panic!("{other:?}"),
    }
    a.expect_close(4001).await;
    server.shutdown().await;
}
