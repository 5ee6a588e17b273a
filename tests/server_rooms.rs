//! Membership at scale (issue 16): join/leave and typing events are volatile (no `seq`, never
//! replayed), large rooms do not announce joins, and `get_room_members` is the snapshot instead.
#![cfg(feature = "server")]

mod support;

use serde_json::json;
use sockline::protocol::{ResumePoint, ServerFrame};
use sockline::server::ServerConfig;
use support::*;

/// The next `event` frame named `name`: (seq, data), seq `None` for a volatile event.
async fn event(client: &mut WsClient, name: &str) -> (Option<u64>, serde_json::Value) {
    match client
        .recv_until(|f| matches!(f, ServerFrame::Event { event, .. } if event == name))
        .await
    {
        ServerFrame::Event { seq, data, .. } => (seq, data),
        _ => unreachable!(),
    }
}

async fn join(client: &mut WsClient, id: u64, room: &str) {
    client
        .send_event(id, "join_room", json!({"room": room}))
        .await;
    match client.recv_ack(id).await {
        ServerFrame::Ack { ok: true, .. } => {}
        other => panic!("join refused: {other:?}"),
    }
}

#[tokio::test]
async fn membership_and_typing_events_are_volatile_and_never_replayed() {
    let server = start_server(ServerConfig::for_tests()).await;
    let addr = server.local_addr();
    let (mut a, hello) = WsClient::authed(addr, "alice").await;
    let (mut b, _) = WsClient::authed(addr, "bob").await;
    join(&mut a, 1, "chat:1").await;
    join(&mut b, 1, "chat:1").await;
    assert_eq!(
        event(&mut a, "user_joined").await,
        (None, json!({"room": "chat:1", "user": "bob"}))
    );
    b.send_event(2, "typing_start", json!({"chat_id": "1"}))
        .await;
    assert_eq!(event(&mut a, "typing_update").await.0, None);
    drop(a);
    for _ in 0..100 {
        if http_get(addr, "/health").await.1["connections"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // While alice is away: a join, typing, a leave (all volatile) and one message (stored).
    let (mut c, _) = WsClient::authed(addr, "carol").await;
    join(&mut c, 1, "chat:1").await;
    b.send_event(3, "typing_stop", json!({"chat_id": "1"}))
        .await;
    b.send_event(
        4,
        "message",
        json!({"chat_id": "1", "text": "while you were out"}),
    )
    .await;
    b.recv_ack(4).await;
    c.send_event(2, "leave_room", json!({"room": "chat:1"}))
        .await;
    c.recv_ack(2).await;
    let resume = ResumePoint {
        session: session_of(&hello),
        seq: 0,
    };
    let (mut back, hello) = WsClient::authed_with(addr, &token("alice"), Some(resume)).await;
    assert!(
        matches!(
            hello,
            ServerFrame::Authenticated {
                resumed: true,
                missed: 1,
                ..
            }
        ),
        "only the message is replayed: {hello:?}"
    );
    match back.recv_no_ping().await {
        ServerFrame::Event { seq, event, .. } => {
            assert_eq!((seq, event.as_str()), (Some(1), "new_message"))
        }
        other => panic!("{other:?}"),
    }
    back.expect_quiet(std::time::Duration::from_millis(150))
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_over_the_announce_limit_stay_quiet_and_members_are_listed_on_request() {
    let config = ServerConfig {
        announce_max_members: 2,
        ..ServerConfig::for_tests()
    };
    let server = start_server(config).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed(addr, "alice").await;
    let (mut b, _) = WsClient::authed(addr, "bob").await;
    let (mut c, _) = WsClient::authed(addr, "carol").await;
    join(&mut a, 1, "chat:big").await;
    join(&mut b, 1, "chat:big").await;
    assert_eq!(event(&mut a, "user_joined").await.1["user"], "bob");
    join(&mut c, 1, "chat:big").await;
    a.expect_quiet(std::time::Duration::from_millis(150)).await;
    b.expect_quiet(std::time::Duration::from_millis(10)).await;
    a.send_event(2, "get_room_members", json!({"room": "chat:big"}))
        .await;
    match a.recv_ack(2).await {
        ServerFrame::Ack {
            ok: true,
            data: Some(data),
            ..
        } => {
            assert_eq!(
                (data["count"].clone(), data["truncated"].clone()),
                (json!(3), json!(false))
            );
            let mut users: Vec<String> = serde_json::from_value(data["users"].clone()).unwrap();
            users.sort();
            assert_eq!(users, ["alice", "bob", "carol"]);
        }
        other => panic!("{other:?}"),
    }
    let (mut outsider, _) = WsClient::authed(addr, "dave").await;
    outsider
        .send_event(1, "get_room_members", json!({"room": "chat:big"}))
        .await;
    match outsider.recv_ack(1).await {
        ServerFrame::Ack {
            ok: false, error, ..
        } => {
            assert_eq!(error.unwrap().code, "forbidden")
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}
