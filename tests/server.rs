//! Integration tests for the reference server over loopback: every server binds 127.0.0.1:0.
#![cfg(feature = "server")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use sockline::protocol::{ClientFrame, ResumePoint, ServerFrame, MAX_FRAME_BYTES};
use sockline::server::ServerConfig;
use support::*;

fn session_of(frame: &ServerFrame) -> String {
    match frame {
        ServerFrame::Authenticated { session, .. } => session.clone(),
        other => panic!("not authenticated: {other:?}"),
    }
}

fn ack_parts(frame: ServerFrame) -> (bool, Option<Value>, Option<String>) {
    match frame {
        ServerFrame::Ack {
            ok, data, error, ..
        } => (ok, data, error.map(|e| e.code)),
        other => panic!("not an ack: {other:?}"),
    }
}

async fn auth_and_expect_close(addr: std::net::SocketAddr, token: &str) -> (ServerFrame, u16) {
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
async fn a_chat_message_reaches_every_member_and_is_acked_with_its_id() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed(addr, "alice").await;
    let (mut b, _) = WsClient::authed(addr, "bob").await;
    let (mut outsider, _) = WsClient::authed(addr, "carol").await;
    for c in [&mut a, &mut b] {
        c.send_event(1, "join_room", json!({"room": "chat:9"}))
            .await;
        assert!(ack_parts(c.recv_ack(1).await).0);
    }
    let (_, joined) = a.recv_event("user_joined").await;
    assert_eq!(joined, json!({"room": "chat:9", "user": "bob"}));
    a.send_event(2, "message", json!({"chat_id": "9", "text": "hello"}))
        .await;
    let (ok, data, _) = ack_parts(a.recv_ack(2).await);
    assert!(ok);
    let id = data.expect("ack data")["id"]
        .as_str()
        .expect("string id")
        .to_owned();
    for c in [&mut a, &mut b] {
        let (_, msg) = c.recv_event("new_message").await;
        assert_eq!(msg["chat_id"], "9");
        assert_eq!(msg["from"], "alice");
        assert_eq!(msg["text"], "hello");
        assert_eq!(msg["id"], id.as_str());
        let ts = msg["ts"].as_str().expect("ts");
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }
    outsider.expect_quiet(Duration::from_millis(150)).await;
    a.send_event(3, "message", json!({"chat_id": 9, "text": "x"}))
        .await;
    assert_eq!(
        ack_parts(a.recv_ack(3).await).2.as_deref(),
        Some("bad_request")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn typing_updates_go_to_the_other_members_only() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed(addr, "alice").await;
    let (mut b, _) = WsClient::authed(addr, "bob").await;
    for c in [&mut a, &mut b] {
        c.send_event(1, "join_room", json!({"room": "chat:3"}))
            .await;
        c.recv_ack(1).await;
    }
    a.recv_event("user_joined").await;
    a.send_event(2, "typing_start", json!({"chat_id": "3"}))
        .await;
    assert!(ack_parts(a.recv_ack(2).await).0);
    let (_, update) = b.recv_event("typing_update").await;
    assert_eq!(
        update,
        json!({"chat_id": "3", "user": "alice", "typing": true})
    );
    a.send_event(3, "typing_stop", json!({"chat_id": "3"}))
        .await;
    a.recv_ack(3).await;
    let (_, update) = b.recv_event("typing_update").await;
    assert_eq!(update["typing"], false);
    a.expect_quiet(Duration::from_millis(150)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn room_rules_and_unknown_events_are_refused_in_the_ack() {
    let server = start_server(ServerConfig::for_tests()).await;
    let (mut a, _) = WsClient::authed(server.local_addr(), "u1").await;
    let cases = [
        ("join_room", json!({"room": "user:u2"}), Some("forbidden")),
        ("join_room", json!({"room": "user:u1"}), None),
        ("join_room", json!({"room": "lobby"}), Some("bad_room")),
        ("join_room", json!({}), Some("bad_request")),
        ("leave_room", json!({"room": "user:u1"}), Some("forbidden")),
        ("fly_to_the_moon", json!({}), Some("unknown_event")),
        (
            "mark_notification_read",
            json!({"id": 3}),
            Some("bad_request"),
        ),
    ];
    for (i, (event, data, expected)) in cases.into_iter().enumerate() {
        let id = i as u64 + 1;
        a.send_event(id, event, data).await;
        let (ok, _, code) = ack_parts(a.recv_ack(id).await);
        assert_eq!(ok, expected.is_none(), "{event}");
        assert_eq!(code.as_deref(), expected, "{event}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn marking_a_notification_read_updates_every_socket_of_the_user() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a1, _) = WsClient::authed(addr, "u1").await;
    let (mut a2, _) = WsClient::authed(addr, "u1").await;
    for id in ["n1", "n2", "n3"] {
        let body = json!({"user": "u1", "event": "new_notification", "data": {"id": id}});
        http_post_json(addr, "/notify", Some("test-key"), &body).await;
    }
    a1.send_event(1, "get_unread_count", json!({})).await;
    assert_eq!(ack_parts(a1.recv_ack(1).await).1, Some(json!({"count": 3})));
    a1.send_event(2, "mark_notification_read", json!({"id": "n2"}))
        .await;
    assert!(ack_parts(a1.recv_ack(2).await).0);
    for c in [&mut a1, &mut a2] {
        assert_eq!(
            c.recv_event("notification_read").await.1,
            json!({"id": "n2"})
        );
        assert_eq!(
            c.recv_event("unread_count_update").await.1,
            json!({"count": 2})
        );
    }
    a2.send_event(1, "delete_notification", json!({"id": "n1"}))
        .await;
    assert!(ack_parts(a2.recv_ack(1).await).0);
    for c in [&mut a1, &mut a2] {
        assert_eq!(
            c.recv_event("notification_deleted").await.1,
            json!({"id": "n1"})
        );
        assert_eq!(
            c.recv_event("unread_count_update").await.1,
            json!({"count": 1})
        );
    }
    a2.send_event(2, "get_unread_count", json!({})).await;
    assert_eq!(ack_parts(a2.recv_ack(2).await).1, Some(json!({"count": 1})));
    server.shutdown().await;
}

#[tokio::test]
async fn a_repeated_send_id_is_acked_again_but_not_processed_again() {
    let server = start_server(ServerConfig::for_tests()).await;
    let (mut a, _) = WsClient::authed(server.local_addr(), "u1").await;
    a.send_event(1, "join_room", json!({"room": "chat:1"}))
        .await;
    a.recv_ack(1).await;
    let send = json!({"chat_id": "1", "text": "once"});
    a.send_event(2, "message", send.clone()).await;
    let first = a.recv_ack(2).await;
    let (_, message) = a.recv_event("new_message").await;
    a.send_event(2, "message", send).await;
    let second = a.recv_ack(2).await;
    assert_eq!(first, second);
    assert_eq!(ack_parts(first).1, Some(json!({"id": message["id"]})));
    a.expect_quiet(Duration::from_millis(200)).await;
    // An id older than any remembered ack is still answered ok without processing.
    a.send_event(1, "fly", json!({})).await;
    assert!(ack_parts(a.recv_ack(1).await).0);
    server.shutdown().await;
}

#[tokio::test]
async fn resume_replays_missed_events_with_their_original_seq() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a, hello) = WsClient::authed(addr, "u1").await;
    let session = session_of(&hello);
    a.send_event(1, "join_room", json!({"room": "chat:5"}))
        .await;
    a.recv_ack(1).await;
    let notify = |n: u32| json!({"user": "u1", "event": "new_notification", "data": {"id": format!("n{n}")}});
    http_post_json(addr, "/notify", Some("test-key"), &notify(1)).await;
    assert_eq!(a.recv_event("new_notification").await.0, 1);
    drop(a);
    // Wait until the server noticed the socket is gone, then send while detached.
    for _ in 0..100 {
        if http_get(addr, "/health").await.1["connections"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, reply) = http_post_json(addr, "/notify", Some("test-key"), &notify(2)).await;
    assert_eq!(reply["delivered"], 0);
    let room = json!({"room": "chat:5", "event": "conversation_update", "data": {"c": 1}});
    http_post_json(addr, "/notify", Some("test-key"), &room).await;
    http_post_json(addr, "/notify", Some("test-key"), &notify(3)).await;
    let resume = ResumePoint {
        session: session.clone(),
        seq: 1,
    };
    let (mut b, hello) = WsClient::authed_with(addr, &token("u1"), Some(resume)).await;
    match hello {
        ServerFrame::Authenticated {
            session: s,
            resumed,
            missed,
            ..
        } => {
            assert_eq!(s, session);
            assert!(resumed);
            assert_eq!(missed, 3);
        }
        other => panic!("{other:?}"),
    }
    let mut replayed = Vec::new();
    for _ in 0..3 {
        match b.recv_no_ping().await {
            ServerFrame::Event { seq, event, .. } => replayed.push((seq, event)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        replayed,
        vec![
            (Some(2), "new_notification".to_owned()),
            (Some(3), "conversation_update".to_owned()),
            (Some(4), "new_notification".to_owned())
        ]
    );
    // The session kept its rooms and its send-id memory.
    b.send_event(1, "fly", json!({})).await;
    assert!(
        ack_parts(b.recv_ack(1).await).0,
        "id 1 was already processed"
    );
    b.send_event(2, "message", json!({"chat_id": "5", "text": "back"}))
        .await;
    b.recv_ack(2).await;
    assert_eq!(b.recv_event("new_message").await.0, 5);
    server.shutdown().await;
}

#[tokio::test]
async fn resume_of_an_unknown_or_foreign_session_starts_fresh() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let unknown = ResumePoint {
        session: "nope".to_owned(),
        seq: 3,
    };
    let (_a, hello) = WsClient::authed_with(addr, &token("u1"), Some(unknown)).await;
    assert!(matches!(
        hello,
        ServerFrame::Authenticated {
            resumed: false,
            missed: 0,
            ..
        }
    ));
    let foreign = ResumePoint {
        session: session_of(&hello),
        seq: 0,
    };
    let (_b, other) = WsClient::authed_with(addr, &token("u2"), Some(foreign)).await;
    assert!(matches!(
        other,
        ServerFrame::Authenticated { resumed: false, .. }
    ));
    assert_ne!(session_of(&other), session_of(&hello));
    server.shutdown().await;
}

#[tokio::test]
async fn resume_after_the_window_or_across_a_gap_starts_fresh() {
    let config = ServerConfig {
        replay_age: Duration::from_millis(200),
        replay_max: 2,
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let (a, hello) = WsClient::authed(addr, "u1").await;
    drop(a);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = ResumePoint {
        session: session_of(&hello),
        seq: 0,
    };
    let (b, fresh) = WsClient::authed_with(addr, &token("u1"), Some(late)).await;
    assert!(matches!(
        fresh,
        ServerFrame::Authenticated { resumed: false, .. }
    ));
    drop(b);
    for n in 0..3 {
        let body = json!({"user": "u1", "event": "e", "data": n});
        http_post_json(addr, "/notify", Some("test-key"), &body).await;
    }
    let gap = ResumePoint {
        session: session_of(&fresh),
        seq: 0,
    };
    let (_c, again) = WsClient::authed_with(addr, &token("u1"), Some(gap)).await;
    assert!(
        matches!(again, ServerFrame::Authenticated { resumed: false, .. }),
        "seq 1 was evicted"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_resumed_session_takes_over_from_its_old_socket() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut old, hello) = WsClient::authed(addr, "u1").await;
    let point = ResumePoint {
        session: session_of(&hello),
        seq: 0,
    };
    let (_new, again) = WsClient::authed_with(addr, &token("u1"), Some(point)).await;
    assert!(matches!(
        again,
        ServerFrame::Authenticated {
            resumed: true,
            missed: 0,
            ..
        }
    ));
    old.expect_close(1000).await;
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_and_binary_frames_get_invalid_frame_and_the_socket_stays_open() {
    let server = start_server(ServerConfig::for_tests()).await;
    let (mut a, _) = WsClient::authed(server.local_addr(), "u1").await;
    for bad in [
        "{nope",
        r#"{"type":"teleport"}"#,
        r#"{"type":"send","id":"x"}"#,
    ] {
        a.send_text(bad).await;
        let frame = a.recv_no_ping().await;
        assert!(
            matches!(frame, ServerFrame::Error { ref code, .. } if code == "invalid_frame"),
            "{bad}: {frame:?}"
        );
    }
    a.send_binary(vec![1, 2, 3]).await;
    assert!(
        matches!(a.recv_no_ping().await, ServerFrame::Error { ref code, .. } if code == "invalid_frame")
    );
    a.send_event(1, "get_unread_count", json!({})).await;
    assert!(ack_parts(a.recv_ack(1).await).0);
    server.shutdown().await;
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed(addr, "u1").await;
    a.send_text(&oversize_text()).await;
    a.expect_close(1009).await;
    // Far above the limit too (past tungstenite's own cap).
    let (mut b, _) = WsClient::authed(addr, "u1").await;
    b.send_text(&"y".repeat(MAX_FRAME_BYTES * 4)).await;
    b.expect_close(1009).await;
    // And before auth.
    let mut c = WsClient::connect(addr).await;
    c.send_text(&oversize_text()).await;
    c.expect_close(1009).await;
    server.shutdown().await;
}

#[tokio::test]
async fn sends_over_the_rate_limit_are_refused_not_processed() {
    let config = ServerConfig {
        rate_limit: 5,
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let (mut a, _) = WsClient::authed(server.local_addr(), "u1").await;
    for id in 1..=12 {
        a.send_event(id, "get_unread_count", json!({})).await;
    }
    let mut ok = 0;
    let mut limited = Vec::new();
    let mut errors = 0;
    while ok + limited.len() < 12 {
        match a.recv_no_ping().await {
            ServerFrame::Ack { ok: true, .. } => ok += 1,
            ServerFrame::Ack {
                id,
                ok: false,
                error,
                ..
            } => {
                assert_eq!(error.expect("error body").code, "rate_limited");
                limited.push(id);
            }
            ServerFrame::Error { code, .. } => {
                assert_eq!(code, "rate_limited");
                errors += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    // The burst is twice the rate; a slow machine may refill a token while the sends go out.
    assert!((10..12).contains(&ok), "{ok} processed");
    assert_eq!(errors, limited.len());
    let first_limited = limited[0];
    assert!(first_limited > 10);
    // A resend of a refused id, even after the bucket refilled and later ids went through, gets
    // the same refusal: it was never processed, and it must never be answered `ok` as a repeat.
    tokio::time::sleep(Duration::from_millis(250)).await;
    a.send_event(13, "get_unread_count", json!({})).await;
    assert!(ack_parts(a.recv_ack(13).await).0, "a new id goes through");
    a.send_event(first_limited, "get_unread_count", json!({}))
        .await;
    let (ok, _, code) = ack_parts(a.recv_ack(first_limited).await);
    assert!(!ok);
    assert_eq!(code.as_deref(), Some("rate_limited"));
    server.shutdown().await;
}

#[tokio::test]
async fn an_undecodable_send_is_still_acked_so_the_client_can_settle_it() {
    let server = start_server(ServerConfig::for_tests()).await;
    let (mut a, _) = WsClient::authed(server.local_addr(), "u1").await;
    // 200 levels of nesting: valid JSON, but deeper than the server parses.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    a.send_text(&format!(
        r#"{{"type":"send","id":7,"event":"message","data":{deep}}}"#
    ))
    .await;
    assert!(
        matches!(a.recv_no_ping().await, ServerFrame::Error { ref code, .. } if code == "invalid_frame")
    );
    let (ok, _, code) = ack_parts(a.recv_ack(7).await);
    assert!(!ok);
    assert_eq!(code.as_deref(), Some("invalid_frame"));
    server.shutdown().await;
}

#[tokio::test]
async fn events_that_would_not_fit_in_a_frame_are_refused_up_front() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed(addr, "u1").await;
    a.send_event(1, "join_room", json!({"room": "chat:1"}))
        .await;
    assert!(ack_parts(a.recv_ack(1).await).0);
    // The text fits in the client's send frame, but the new_message frame around it would not.
    let text = "x".repeat(MAX_FRAME_BYTES - 120);
    a.send_event(2, "message", json!({"chat_id": "1", "text": text}))
        .await;
    let (ok, _, code) = ack_parts(a.recv_ack(2).await);
    assert!(!ok);
    assert_eq!(code.as_deref(), Some("too_large"));
    let body = json!({"room": "chat:1", "event": "x", "data": {"text": "y".repeat(MAX_FRAME_BYTES - 100)}});
    let (status, reply) = http_post_json(addr, "/notify", Some("test-key"), &body).await;
    assert_eq!(status, 413, "{reply}");
    a.expect_quiet(Duration::from_millis(200)).await;
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
