//! Three reference-server nodes sharing one real `redis-server` (issue 11): fan-out from any
//! node, resume on another node, dedupe across nodes, the socket limit across nodes, presence
//! across nodes, a Redis outage in the middle, and a node killed. Every node and Redis bind
//! 127.0.0.1.
#![cfg(feature = "server")]

#[path = "support/redis.rs"]
mod redis_server;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use redis_server::{node, node_config, RedisServer};
use serde_json::{json, Value};
use sockline::protocol::{ClientFrame, ResumePoint, ServerFrame};
use sockline::server::{start, RunningServer, ServerConfig};
use support::*;

const CLIENT: &str = "cluster-client-0001";

async fn three(redis: &RedisServer) -> [RunningServer; 3] {
    [
        node(redis, "A").await,
        node(redis, "B").await,
        node(redis, "C").await,
    ]
}

async fn join(client: &mut WsClient, id: u64, room: &str) {
    client
        .send_event(id, "join_room", json!({"room": room}))
        .await;
    assert!(ack_parts(client.recv_ack(id).await).0, "join {room}");
}

async fn notify(addr: SocketAddr, body: Value) -> (u16, Value) {
    http_post_json(addr, "/notify", Some("test-key"), &body).await
}

/// The events that arrive within `wait`, named `name` (every one for `""`): (name, seq, data).
async fn all_within(
    client: &mut WsClient,
    name: &str,
    wait: Duration,
) -> Vec<(String, Option<u64>, Value)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next(left).await {
            Received::Frame(ServerFrame::Event {
                seq, event, data, ..
            }) if name.is_empty() || event == name => {
                seen.push((event, seq, data));
            }
            Received::Frame(_) => continue,
            Received::Timeout => return seen,
            other => panic!("{other:?}"),
        }
    }
}

/// The events named `name` that arrive within `wait`: (seq, data).
async fn events_within(
    client: &mut WsClient,
    name: &str,
    wait: Duration,
) -> Vec<(Option<u64>, Value)> {
    let all = all_within(client, name, wait).await;
    all.into_iter().map(|(_, seq, data)| (seq, data)).collect()
}

/// A `new_notification` for alice carrying `n`.
fn note(n: u32) -> Value {
    json!({"user": "alice", "event": "new_notification", "data": {"n": n}})
}

/// Alice (client [`CLIENT`]) on `node`, joined to `room`, having received note 1 posted to `via`;
/// returns her socket and session id.
async fn alice_on(node: SocketAddr, via: SocketAddr, room: &str) -> (WsClient, String) {
    let (mut alice, hello) = WsClient::authed_as(node, &token("alice"), Some(CLIENT), None).await;
    let session = session_of(&hello);
    join(&mut alice, 1, room).await;
    notify(via, note(1)).await;
    assert_eq!(
        events_within(&mut alice, "new_notification", Duration::from_millis(300)).await,
        [(Some(1), json!({"n": 1}))]
    );
    (alice, session)
}

/// Alice resuming `session` from seq 1 on `node`: resumed, with `missed` events to replay.
async fn alice_resumes(node: SocketAddr, session: &str, missed: u64) -> WsClient {
    let point = ResumePoint {
        session: session.to_owned(),
        seq: 1,
    };
    let (back, hello) = WsClient::authed_as(node, &token("alice"), Some(CLIENT), Some(point)).await;
    match hello {
        ServerFrame::Authenticated {
            session: s,
            resumed,
            missed: m,
            ..
        } => assert_eq!((s.as_str(), resumed, m), (session, true, missed)),
        other => panic!("{other:?}"),
    }
    back
}

async fn shutdown(nodes: impl IntoIterator<Item = RunningServer>) {
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_notify_posted_to_one_node_reaches_a_socket_on_another_exactly_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = three(&redis).await;
    let (mut alice, _) = WsClient::authed(a.local_addr(), "alice").await;
    let (mut bob, _) = WsClient::authed(b.local_addr(), "bob").await;
    join(&mut alice, 1, "chat:9").await;
    join(&mut bob, 1, "chat:9").await;
    let (status, reply) = notify(
        c.local_addr(),
        json!({"user": "alice", "event": "new_notification", "data": {"id": "n1"}}),
    )
    .await;
    assert_eq!((status, reply), (202, json!({"delivered": 1})));
    let (status, _) = notify(
        c.local_addr(),
        json!({"room": "chat:9", "event": "conversation_update", "data": {"x": 1}}),
    )
    .await;
    assert_eq!(status, 202);
    // Read once, then count by name (a read skips what it is not looking for).
    let at_alice = all_within(&mut alice, "", Duration::from_millis(400)).await;
    let named = |all: &[(String, Option<u64>, Value)], name: &str| {
        all.iter().filter(|(n, ..)| n == name).count()
    };
    assert_eq!(named(&at_alice, "new_notification"), 1, "{at_alice:?}");
    assert_eq!(named(&at_alice, "conversation_update"), 1, "{at_alice:?}");
    let notified = at_alice.iter().find(|(n, ..)| n == "new_notification");
    assert_eq!(
        notified.map(|(_, seq, data)| (*seq, data.clone())),
        Some((Some(1), json!({"id": "n1"})))
    );
    let at_bob = all_within(&mut bob, "", Duration::from_millis(200)).await;
    assert_eq!(named(&at_bob, "conversation_update"), 1, "{at_bob:?}");
    // The unread count lives in Redis: node B sees the notification posted on C.
    let (mut alice_b, _) = WsClient::authed(b.local_addr(), "alice").await;
    alice_b.send_event(1, "get_unread_count", json!({})).await;
    assert_eq!(
        ack_parts(alice_b.recv_ack(1).await).1,
        Some(json!({"count": 1}))
    );
    let (_, health) = http_get(a.local_addr(), "/health").await;
    assert_eq!(health["node"]["id"], "A");
    assert_eq!(health["node"]["redis"], "up");
    shutdown([a, b, c]).await;
}

#[tokio::test]
async fn a_client_cut_on_one_node_resumes_on_another_with_every_event_once_in_order() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = three(&redis).await;
    let (alice, session) = alice_on(a.local_addr(), c.local_addr(), "chat:5").await;
    drop(alice);
    // While cut: notifications and room events, posted to any node.
    for n in 2..=6 {
        let target = if n % 2 == 0 {
            c.local_addr()
        } else {
            a.local_addr()
        };
        assert_eq!(notify(target, note(n)).await.0, 202);
    }
    notify(
        b.local_addr(),
        json!({"room": "chat:5", "event": "conversation_update", "data": {}}),
    )
    .await;
    let mut back = alice_resumes(b.local_addr(), &session, 6).await;
    let mut seqs = Vec::new();
    for _ in 0..6 {
        match back.recv_no_ping().await {
            ServerFrame::Event { seq, .. } => seqs.push(seq.unwrap()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seqs, [2, 3, 4, 5, 6, 7], "in order, none missed or doubled");
    // Live on B from now on, numbered after the replay; the room carried over.
    notify(a.local_addr(), note(7)).await;
    notify(
        c.local_addr(),
        json!({"room": "chat:5", "event": "conversation_update", "data": {}}),
    )
    .await;
    let live = events_within(&mut back, "new_notification", Duration::from_millis(300)).await;
    assert_eq!(live, [(Some(8), json!({"n": 7}))]);
    back.expect_quiet(Duration::from_millis(100)).await;
    shutdown([a, b, c]).await;
}

#[tokio::test]
async fn a_send_processed_on_one_node_and_resent_to_another_is_not_processed_twice() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = three(&redis).await;
    let (mut bob, _) = WsClient::authed(c.local_addr(), "bob").await;
    join(&mut bob, 1, "chat:1").await;
    let (mut alice, _) =
        WsClient::authed_as(a.local_addr(), &token("alice"), Some(CLIENT), None).await;
    join(&mut alice, 1, "chat:1").await;
    let send = json!({"chat_id": "1", "text": "once"});
    alice.send_event(2, "message", send.clone()).await;
    // Processed (bob has it); alice's socket goes before she reads the ack.
    assert_eq!(
        events_within(&mut bob, "new_message", Duration::from_millis(500))
            .await
            .len(),
        1
    );
    drop(alice);
    let (mut again, hello) =
        WsClient::authed_as(b.local_addr(), &token("alice"), Some(CLIENT), None).await;
    assert!(matches!(
        hello,
        ServerFrame::Authenticated { resumed: false, .. }
    ));
    again.send_event(2, "message", send).await;
    let (ok, data, _) = ack_parts(again.recv_ack(2).await);
    assert!(
        ok && data.is_some_and(|d| d["id"].is_string()),
        "the first ack again"
    );
    assert_eq!(
        events_within(&mut bob, "new_message", Duration::from_millis(400)).await,
        []
    );
    shutdown([a, b, c]).await;
}

#[tokio::test]
async fn the_sixth_socket_of_a_user_across_three_nodes_is_refused_with_4008() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let nodes = three(&redis).await;
    let mut sockets = Vec::new();
    for i in 0..5 {
        sockets.push(WsClient::authed(nodes[i % 3].local_addr(), "u1").await.0);
    }
    let mut sixth = WsClient::connect(nodes[2].local_addr()).await;
    sixth
        .send(&ClientFrame::Auth {
            v: 1,
            token: token("u1"),
            client: None,
            resume: None,
        })
        .await;
    sixth.expect_close(4008).await;
    // One goes away: a slot is free again, on any node.
    drop(sockets.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    WsClient::authed(nodes[1].local_addr(), "u1").await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn presence_joined_on_one_node_and_left_on_another_is_seen_on_a_third() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = three(&redis).await;
    let (mut bob, _) = WsClient::authed(b.local_addr(), "bob").await;
    join(&mut bob, 1, "chat:p").await;
    let (mut alice_a, _) = WsClient::authed(a.local_addr(), "alice").await;
    join(&mut alice_a, 1, "chat:p").await;
    let online = events_within(&mut bob, "presence", Duration::from_millis(500)).await;
    assert_eq!(
        online,
        [(
            None,
            json!({"room": "chat:p", "user": "alice", "online": true})
        )]
    );
    // A second socket of alice, on C: she was present already, nothing new to tell.
    let (mut alice_c, _) = WsClient::authed(c.local_addr(), "alice").await;
    join(&mut alice_c, 1, "chat:p").await;
    bob.send_event(2, "presence", json!({"room": "chat:p"}))
        .await;
    let (_, data, _) = ack_parts(bob.recv_ack(2).await);
    let data = data.unwrap();
    let mut members: Vec<String> = serde_json::from_value(data["members"].clone()).unwrap();
    members.sort();
    assert_eq!(
        (members, data["count"].clone()),
        (vec!["alice".to_owned(), "bob".to_owned()], json!(2))
    );
    // Leaving on A keeps her present through C; leaving on C too makes her go.
    alice_a
        .send_event(2, "leave_room", json!({"room": "chat:p"}))
        .await;
    alice_a.recv_ack(2).await;
    assert_eq!(
        events_within(&mut bob, "presence", Duration::from_millis(300)).await,
        []
    );
    alice_c
        .send_event(2, "leave_room", json!({"room": "chat:p"}))
        .await;
    alice_c.recv_ack(2).await;
    let offline = events_within(&mut bob, "presence", Duration::from_millis(500)).await;
    assert_eq!(
        offline,
        [(
            None,
            json!({"room": "chat:p", "user": "alice", "online": false})
        )]
    );
    shutdown([a, b, c]).await;
}

#[tokio::test]
async fn while_redis_is_down_clients_stay_up_and_notify_is_503_then_all_works_again() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = three(&redis).await;
    let (mut alice, _) = WsClient::authed(a.local_addr(), "alice").await;
    let (mut bob, _) = WsClient::authed(b.local_addr(), "bob").await;
    join(&mut bob, 1, "chat:r").await;
    redis.stop();
    let (status, body) = notify(
        c.local_addr(),
        json!({"user": "alice", "event": "e", "data": 1}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "broker_unavailable");
    // A send that needs the broker is not processed and is to be retried in place.
    bob.send_event(2, "message", json!({"chat_id": "r", "text": "later"}))
        .await;
    match bob.recv_ack(2).await {
        ServerFrame::Ack {
            ok: false,
            error: Some(e),
            ..
        } => {
            assert_eq!(e.code, "rate_limited");
            assert!(e.retry_after_ms.is_some());
        }
        other => panic!("{other:?}"),
    }
    let (_, health) = http_get(a.local_addr(), "/health").await;
    assert_eq!(health["node"]["redis"], "down", "{health}");
    redis.start_again();
    // Each node resubscribes and registers its sessions again by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for n in [&a, &b, &c] {
        while http_get(n.local_addr(), "/health").await.1["node"]["redis"] != "up" {
            assert!(tokio::time::Instant::now() < deadline, "no resubscription");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (status, _) = notify(
        c.local_addr(),
        json!({"user": "alice", "event": "e", "data": 2}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        events_within(&mut alice, "e", Duration::from_millis(500))
            .await
            .len(),
        1,
        "still connected"
    );
    bob.send_event(2, "message", json!({"chat_id": "r", "text": "later"}))
        .await;
    assert!(ack_parts(bob.recv_ack(2).await).0, "the retry goes through");
    assert_eq!(
        events_within(&mut bob, "new_message", Duration::from_millis(500))
            .await
            .len(),
        1
    );
    shutdown([a, b, c]).await;
}

#[tokio::test]
async fn a_node_killed_its_client_resumes_on_another_node_with_nothing_missed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = three(&redis).await;
    let (_alice, session) = alice_on(a.local_addr(), c.local_addr(), "chat:k").await;
    // Node A dies (no close frames, nothing cleaned up); events keep coming through C.
    a.abort();
    for n in 2..=4 {
        assert_eq!(notify(c.local_addr(), note(n)).await.0, 202);
    }
    let mut back = alice_resumes(b.local_addr(), &session, 3).await;
    let replayed = events_within(&mut back, "new_notification", Duration::from_millis(400)).await;
    assert_eq!(
        replayed,
        [
            (Some(2), json!({"n": 2})),
            (Some(3), json!({"n": 3})),
            (Some(4), json!({"n": 4}))
        ]
    );
    // The room carried over to B: a room event posted to C arrives once, numbered next.
    notify(
        c.local_addr(),
        json!({"room": "chat:k", "event": "conversation_update", "data": {}}),
    )
    .await;
    let live = events_within(&mut back, "conversation_update", Duration::from_millis(400)).await;
    assert_eq!(live, [(Some(5), json!({}))]);
    shutdown([b, c]).await;
}

/// `count` member sessions of `room` that exist only in Redis (each with a user, so a fan-out
/// gives each its seq and stream entry): what makes one fan-out script run for seconds.
async fn crowd(redis: &RedisServer, room: &str, count: usize) {
    let client = ::redis::Client::open(redis.url()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = ::redis::pipe();
        for i in chunk {
            let session = format!("crowd{i:08x}");
            pipe.hset(format!("sl:s:{session}"), "user", format!("c{i}"))
                .ignore();
            pipe.sadd(format!("sl:m:{room}"), session).ignore();
        }
        let () = pipe
            .query_async(&mut conn)
            .await
            .expect("the crowd is stored");
    }
}

#[tokio::test]
async fn a_send_whose_fanout_ran_in_redis_after_the_node_stopped_waiting_is_not_processed_again() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Pings every 2 minutes: the test clients do not answer them, and the test outlasts 10 s.
    let a = start(ServerConfig {
        heartbeat: Duration::from_secs(120),
        ..node_config(&redis, "A")
    })
    .await
    .expect("the node starts");
    let (mut bob, _) = WsClient::authed(a.local_addr(), "bob").await;
    join(&mut bob, 1, "chat:big").await;
    let (mut alice, _) =
        WsClient::authed_as(a.local_addr(), &token("alice"), Some(CLIENT), None).await;
    join(&mut alice, 1, "chat:big").await;
    // The fan-out script then runs longer in Redis than the node waits for an answer (1 s).
    crowd(&redis, "chat:big", 150_000).await;
    let send = json!({"chat_id": "big", "text": "once"});
    let started = std::time::Instant::now();
    alice.send_event(2, "message", send.clone()).await;
    let (ok, _, code) = ack_parts(alice.recv_ack(2).await);
    assert!(
        !ok && code.as_deref() == Some("rate_limited"),
        "the node stopped waiting: not known to be processed, to be sent again ({:?})",
        started.elapsed()
    );
    // Redis ran the script to its end all the same (some 4 s here; Redis answers others BUSY
    // past 5 s, which the node takes as down too): bob has the message, once.
    let (_, first) = bob
        .recv_event_within(Duration::from_secs(40), "new_message")
        .await;
    let took = started.elapsed();
    // The client sends the id again, as told: answered from the pair's memory, not processed.
    alice.send_event(2, "message", send).await;
    let (ok, data, code) = ack_parts(alice.recv_ack(2).await);
    assert!(
        ok && data.is_some_and(|d| d["id"] == first["id"]),
        "the first processing's ack ({code:?})"
    );
    // Processed again, it would reach bob about as long after the resend as the first did.
    assert_eq!(events_within(&mut bob, "new_message", took * 2).await, []);
    shutdown([a]).await;
}
