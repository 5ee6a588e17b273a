//! Integration tests for the reference server over loopback: chat messages, typing, room rules,
//! notifications read, repeated send ids, resume and replay, malformed and oversize frames, and
//! the send rate limit. Every server binds 127.0.0.1:0.
#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use serde_json::json;
use sockline::protocol::{ResumePoint, ServerFrame, MAX_FRAME_BYTES};
use sockline::server::ServerConfig;
use support::*;

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
    // Id 1 is remembered too: its ack (ok) again, and `fly` is not even looked at.
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
async fn sends_over_the_rate_limit_are_refused_in_their_ack_until_the_deadline_named() {
    // 1 send per second, a burst of 2: the refusal window is long enough that a loaded machine
    // still sends everything inside it.
    let config = ServerConfig {
        rate_limit: 1,
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let (mut a, hello) = WsClient::authed(server.local_addr(), "u1").await;
    match hello {
        ServerFrame::Authenticated { limits, .. } => assert_eq!(
            limits,
            Some(sockline::protocol::SendLimits {
                sends_per_s: 1,
                burst: 2
            })
        ),
        other => panic!("{other:?}"),
    }
    for id in 1..=5 {
        a.send_event(id, "get_unread_count", json!({})).await;
    }
    let mut refused = Vec::new();
    for id in 1..=5 {
        // Acks only, in order: no separate `error` frame for a refusal (PROTOCOL.md §4).
        match a.recv_no_ping().await {
            ServerFrame::Ack {
                id: got, ok, error, ..
            } => {
                assert_eq!(got, id);
                if id <= 2 {
                    assert!(ok, "{id} is within the burst");
                } else {
                    let error = error.expect("a refusal has an error body");
                    assert!(!ok);
                    assert_eq!(error.code, "rate_limited");
                    refused.push(error.retry_after_ms.expect("retry_after_ms"));
                }
            }
            other => panic!("expected the ack of {id}, got {other:?}"),
        }
    }
    // One window: every refusal names the same deadline, so the waits only shrink.
    assert!(refused[0] <= 1_000 && refused[0] > 500, "{refused:?}");
    assert!(refused.windows(2).all(|w| w[1] <= w[0]), "{refused:?}");
    // A refused id was not processed and is not remembered: after the wait it goes through.
    tokio::time::sleep(Duration::from_millis(refused[0])).await;
    a.send_event(3, "get_unread_count", json!({})).await;
    let (ok, data, _) = ack_parts(a.recv_ack(3).await);
    assert!(ok);
    assert_eq!(data, Some(json!({"count": 0})));
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
