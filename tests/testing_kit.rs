//! The test kit (`sockline::testing`) against a real native client: each fault of `FaultProxy`
//! does what its docs say, and `TestServer`'s stop, crash and restart look to a client as a
//! real server's would.
#![cfg(feature = "testing")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use sockline::core::{Backoff, DisconnectReason};
use sockline::native::{Client, ClientConfig, Notice};
use sockline::testing::{EventLog, FaultProxy, Faults, StateWatch, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

/// The kit's defaults with a 300 ms heartbeat, so dead-link detection is quick.
async fn server() -> TestServer {
    let mut config = TestServer::default_config();
    config.heartbeat = Duration::from_millis(300);
    config.replay_age = Duration::from_secs(30);
    TestServer::with_config(config)
        .await
        .expect("server starts")
}

fn config(url: &str, server: &TestServer, user: &str) -> ClientConfig {
    ClientConfig::new(url, server.token(user))
        .backoff(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            max_retries: Some(50),
            ..Backoff::default()
        })
        .heartbeat_grace(Duration::from_millis(500))
        .with_connection(|c| c.connect_timeout = Duration::from_millis(500))
}

/// A client through `proxy`, started and connected; with its event log and state watch.
async fn connected(
    proxy: &FaultProxy,
    server: &TestServer,
    user: &str,
) -> (Client, EventLog, StateWatch) {
    let client = Client::new(config(&proxy.ws_url(), server, user));
    let log = EventLog::new(&client);
    let mut watch = StateWatch::new(&client);
    client.start();
    watch.wait_for("connected", WAIT).await.unwrap();
    (client, log, watch)
}

/// Counts acks per send id (and keeps failures) as the client reports them.
fn ack_counter(
    client: &Client,
) -> (
    Arc<Mutex<BTreeMap<u64, u32>>>,
    sockline::native::ListenerGuard,
) {
    let acks: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let sink = acks.clone();
    let guard = client.on_notice(move |notice| {
        if let Notice::Ack { id, result } = notice {
            assert!(result.is_ok(), "send {id:?} failed: {result:?}");
            *sink.lock().unwrap().entry(id.0).or_default() += 1;
        }
    });
    (acks, guard)
}

async fn until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_cut_sends_the_client_to_reconnecting_and_back_with_nothing_lost_or_doubled() {
    let server = server().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let (client, log, mut watch) = connected(&proxy, &server, "alice").await;
    let (acks, _acks) = ack_counter(&client);

    // Cut, and keep the link down while both sides keep talking.
    proxy.refuse(true);
    proxy.cut();
    watch.wait_for("reconnecting", WAIT).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        server
            .notify_user("alice", "new_notification", json!({ "id": i }))
            .await
            .unwrap();
        ids.push(client.send("get_unread_count", json!({})).unwrap().0);
    }
    // At least one retry met the refusal before the network comes back.
    until(|| proxy.stats().refused >= 1).await;
    proxy.refuse(false);
    watch.wait_for("connected", WAIT).await.unwrap();
    log.wait_for_len(10, WAIT).await.unwrap();
    until(|| acks.lock().unwrap().len() == 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let got: Vec<_> = log
        .messages()
        .iter()
        .map(|m| (m.seq, m.data.to_value()["id"].clone()))
        .collect();
    let want: Vec<_> = (0..10).map(|i| (Some(i as u64 + 1), json!(i))).collect();
    assert_eq!(got, want, "lost, doubled or reordered");
    let acks = acks.lock().unwrap().clone();
    assert_eq!(acks.keys().copied().collect::<Vec<_>>(), ids);
    assert!(
        acks.values().all(|n| *n == 1),
        "an ack arrived twice: {acks:?}"
    );
    assert_eq!(client.stats().reconnects, 1);
    let stats = proxy.stats();
    assert_eq!(stats.links_cut, 1, "{stats:?}");
}

#[tokio::test]
async fn refuse_fails_new_connections_and_keeps_open_links() {
    let server = server().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let (_alice, alice_log, _) = connected(&proxy, &server, "alice").await;

    proxy.refuse(true);
    let bob = Client::new(config(&proxy.ws_url(), &server, "bob"));
    let mut bob_states = StateWatch::new(&bob);
    bob.start();
    until(|| proxy.stats().refused >= 2).await;
    bob_states.wait_for("reconnecting", WAIT).await.unwrap();
    assert!(
        !bob_states.names().contains(&"authenticating"),
        "{:?}",
        bob_states.names()
    );

    // Alice's link, open before, still carries events.
    assert_eq!(
        server
            .notify_user("alice", "ping_me", json!(1))
            .await
            .unwrap(),
        1
    );
    alice_log.wait_for_len(1, WAIT).await.unwrap();

    proxy.refuse(false);
    bob_states.wait_for("connected", WAIT).await.unwrap();
}

#[tokio::test]
async fn a_blackhole_is_found_by_the_heartbeat_not_by_a_reset() {
    let server = server().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let (client, _log, mut watch) = connected(&proxy, &server, "alice").await;

    proxy.blackhole(true);
    let from = Instant::now();
    watch.wait_for("reconnecting", WAIT).await.unwrap();
    let detected = from.elapsed();
    // Only silence beyond the 500 ms grace ends the link; a reset would be seen at once.
    assert!(
        detected >= Duration::from_millis(500),
        "dead link after {detected:?}"
    );
    assert_eq!(proxy.stats().links_cut, 0);

    // The retry hangs until the client's connect timeout (500 ms) instead of failing fast.
    let (opened, mark) = (proxy.stats().links_opened, watch.seen().len());
    watch.wait_for("connecting", WAIT).await.unwrap();
    let retry_from = Instant::now();
    watch.wait_for("reconnecting", WAIT).await.unwrap();
    let retry = retry_from.elapsed();
    assert!(
        retry >= Duration::from_millis(450),
        "the retry ended after {retry:?}"
    );
    assert_eq!(watch.names()[mark..], ["connecting", "reconnecting"]);
    assert_eq!(proxy.stats().links_opened, opened + 1);

    proxy.blackhole(false);
    watch.wait_for("connected", WAIT).await.unwrap();
    assert!(client.stats().reconnects >= 1);
}

#[tokio::test]
async fn bytes_held_by_a_blackhole_are_delivered_when_it_lifts_and_a_fin_passes_as_a_fin() {
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = FaultProxy::start(target.local_addr().unwrap())
        .await
        .unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut upstream, _) = target.accept().await.unwrap();

    proxy.blackhole(true);
    client.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 4];
    let early = tokio::time::timeout(Duration::from_millis(200), upstream.read(&mut buf)).await;
    assert!(early.is_err(), "bytes crossed a blackhole: {early:?}");
    proxy.blackhole(false);
    upstream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"held");

    // The target closes cleanly: the client reads the rest, then EOF (not a reset).
    upstream.write_all(b"bye").await.unwrap();
    drop(upstream);
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .expect("EOF in time")
        .unwrap();
    assert_eq!(rest, b"bye");
}

#[tokio::test]
async fn latency_is_added_to_each_direction_of_a_round_trip() {
    let server = server().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let (client, _log, _) = connected(&proxy, &server, "alice").await;

    proxy.latency(Duration::from_millis(150));
    let started = Instant::now();
    client.request("get_unread_count", json!({})).await.unwrap();
    let slow = started.elapsed();
    assert!(
        slow >= Duration::from_millis(300),
        "round trip {slow:?} under 2 × 150 ms"
    );

    proxy.latency(Duration::ZERO);
    let started = Instant::now();
    client.request("get_unread_count", json!({})).await.unwrap();
    let fast = started.elapsed();
    assert!(
        fast < slow,
        "removing the latency did not speed up: {fast:?} vs {slow:?}"
    );
}

#[tokio::test]
async fn sliced_frames_still_arrive_whole_both_ways() {
    let server = server().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    // Sliced from the start: the upgrade request and response are cut up too.
    proxy.slice(Some(7));
    let (client, log, _) = connected(&proxy, &server, "alice").await;
    let text = "x".repeat(2_000);
    for i in 0..3 {
        server
            .notify_user(
                "alice",
                "new_notification",
                json!({ "id": i, "body": text }),
            )
            .await
            .unwrap();
    }
    log.wait_for_len(3, WAIT).await.unwrap();
    for (i, message) in log.messages().iter().enumerate() {
        assert_eq!(message.data.to_value(), json!({ "id": i, "body": text }));
    }
    let reply = client.request("get_unread_count", json!({})).await.unwrap();
    assert!(reply.is_some());

    let stats = proxy.stats();
    assert!(stats.bytes_down > 6_000, "{stats:?}");
    // Every write was at most 7 bytes.
    assert!(
        stats.writes_down >= stats.bytes_down.div_ceil(7),
        "{stats:?}"
    );
    assert!(stats.writes_up >= stats.bytes_up.div_ceil(7), "{stats:?}");
}

#[tokio::test]
async fn a_bandwidth_cap_slows_a_large_frame_to_its_rate() {
    let server = server().await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    // Pings queue behind the large frame: the grace must outlast its 1.5 s.
    let client = Client::new(
        config(&proxy.ws_url(), &server, "alice").heartbeat_grace(Duration::from_secs(5)),
    );
    let log = EventLog::new(&client);
    client.start();
    StateWatch::new(&client)
        .wait_for("connected", WAIT)
        .await
        .unwrap();

    proxy.bandwidth(Some(20_000));
    let body = "y".repeat(30_000);
    let started = Instant::now();
    server
        .notify_user("alice", "new_notification", json!({ "body": body }))
        .await
        .unwrap();
    log.wait_for_len(1, Duration::from_secs(10)).await.unwrap();
    let took = started.elapsed();
    // 30 kB at 20 kB/s: 1.5 s, less the first 400-byte step that goes out at once.
    assert!(
        took >= Duration::from_millis(1_400),
        "30 kB took {took:?} at 20 kB/s"
    );
    assert_eq!(log.messages()[0].data.to_value()["body"], body);

    proxy.heal();
    assert_eq!(proxy.faults(), Faults::none());
}

#[tokio::test]
async fn a_restarted_server_has_lost_every_session() {
    let server = server().await;
    let client = Client::new(config(&server.ws_url(), &server, "alice").room("chat:1"));
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let _notices = client.on_notice(move |n| sink.lock().unwrap().push(n.clone()));
    let mut watch = StateWatch::new(&client);
    client.start();
    watch.wait_for("connected", WAIT).await.unwrap();
    room_reaches_one(&server, "chat:1").await;

    server.restart().await.unwrap();
    assert!(server.is_running());
    watch.wait_for("reconnecting", WAIT).await.unwrap();
    watch.wait_for("connected", WAIT).await.unwrap();
    // A new server: the session could not be resumed, the room is re-joined from scratch.
    until(|| notices.lock().unwrap().contains(&Notice::ResumeFailed)).await;
    assert!(!notices
        .lock()
        .unwrap()
        .iter()
        .any(|n| matches!(n, Notice::Resumed { .. })));
    let health = server.health().await.unwrap();
    assert_eq!(health["connections"], 1, "{health}");
    room_reaches_one(&server, "chat:1").await;
}

/// Notifies `room` until one socket gets it (the client's join is a send of its own).
async fn room_reaches_one(server: &TestServer, room: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let delivered = server
            .notify_room(room, "announce", json!("hi"))
            .await
            .unwrap();
        if delivered == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nobody in {room} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How a raw WebSocket to the server ends: `Some(code)` for a close frame, `None` without one.
async fn how_it_ends(ws: &mut WsStream) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the socket ends in time")
        {
            Some(Ok(Message::Close(frame))) => return Some(frame.map_or(1005, |f| f.code.into())),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return None,
        }
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn authed_socket(server: &TestServer, user: &str) -> WsStream {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let auth = json!({ "type": "auth", "token": server.token(user) }).to_string();
    ws.send(Message::text(auth)).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(text))) => assert!(text.contains("authenticated"), "{text}"),
        other => panic!("expected authenticated, got {other:?}"),
    }
    ws
}

#[tokio::test]
async fn a_crash_drops_sockets_without_a_close_frame_and_a_stop_closes_them_with_1001() {
    let server = server().await;
    let mut ws = authed_socket(&server, "alice").await;
    server.crash();
    assert!(!server.is_running());
    assert_eq!(how_it_ends(&mut ws).await, None);
    assert!(tokio_tungstenite::connect_async(server.ws_url())
        .await
        .is_err());

    server.restart().await.unwrap();
    let mut ws = authed_socket(&server, "alice").await;
    server.stop().await;
    assert_eq!(how_it_ends(&mut ws).await, Some(1001));
}

#[tokio::test]
async fn a_kit_token_is_accepted_until_it_expires() {
    let server = server().await;
    let token = server.token_valid_for("alice", Duration::from_secs(1));
    let client = Client::new(ClientConfig::new(server.ws_url(), token.clone()));
    let mut watch = StateWatch::new(&client);
    client.start();
    watch.wait_for("connected", WAIT).await.unwrap();

    // `exp` is in whole seconds: one second from now is expired within two.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let late = Client::new(ClientConfig::new(server.ws_url(), token));
    let mut watch = StateWatch::new(&late);
    late.start();
    watch.wait_for("disconnected", WAIT).await.unwrap();
    assert!(
        matches!(
            late.state(),
            sockline::core::ConnectionState::Disconnected {
                reason: DisconnectReason::AuthRejected { .. }
            }
        ),
        "{:?}",
        late.state()
    );
}
