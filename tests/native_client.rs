//! The native client against the real reference server over loopback: typed events, restarts,
//! backoff, dead links through a silent proxy, and "nothing lost, nothing doubled" under resets.
#![cfg(feature = "server")]

#[path = "support/proxy.rs"]
mod proxy;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use sockline::core::{Backoff, ConnectionState, DisconnectReason};
use sockline::events::{NewMessage, NewNotification};
use sockline::native::{Client, ClientConfig, Notice, StateChange, StateStream};
use sockline::server::{RunningServer, ServerConfig};
use sockline::SendError;
use tokio::time::{timeout, Instant};

use proxy::Proxy;
use support::{http_post_json, start_server, token};

fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

fn fast_backoff(initial_ms: u64, max_retries: u32) -> Backoff {
    Backoff {
        initial: Duration::from_millis(initial_ms),
        max: Duration::from_secs(5),
        max_retries: Some(max_retries),
        ..Backoff::default()
    }
}

fn client_config(url: &str, user: &str) -> ClientConfig {
    ClientConfig::new(url, token(user))
        .backoff(fast_backoff(100, 5))
        .heartbeat_grace(Duration::from_millis(500))
}

/// Collects state changes until one enters `name`; fails after `limit`.
async fn until_state(states: &mut StateStream, name: &str, limit: Duration) -> Vec<StateChange> {
    let mut seen = Vec::new();
    let result = timeout(limit, async {
        while let Some(change) = states.next().await {
            let done = change.to.name() == name;
            seen.push(change);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(result.is_ok(), "no `{name}` within {limit:?}; saw {seen:?}");
    seen
}

/// Polls `done` every 10 ms until it holds or `limit` has passed.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `POST /notify` of a `new_notification` with `data` to alice.
async fn notify(addr: SocketAddr, data: serde_json::Value) -> serde_json::Value {
    let body = json!({"user": "alice", "event": "new_notification", "data": data});
    let (status, reply) = http_post_json(addr, "/notify", Some("test-key"), &body).await;
    assert_eq!(status, 202, "{reply}");
    reply
}

fn test_server_config() -> ServerConfig {
    let mut config = ServerConfig::for_tests();
    config.heartbeat = Duration::from_millis(300);
    config.rate_limit = 100_000;
    config.replay_age = Duration::from_secs(30);
    config
}

async fn restart_on(addr: SocketAddr) -> RunningServer {
    let mut config = test_server_config();
    config.addr = addr;
    start_server(config).await
}

#[tokio::test]
async fn typed_events_reach_typed_listeners_and_a_dropped_guard_stops_delivery() {
    let server = start_server(test_server_config()).await;
    let client = Client::new(client_config(&ws_url(server.local_addr()), "alice"));
    let mut states = client.states();
    client.start();
    until_state(&mut states, "connected", Duration::from_secs(5)).await;

    let (tx, mut typed) = tokio::sync::mpsc::unbounded_channel();
    let guard = client.on::<NewNotification>(move |n| {
        let _ = tx.send(n);
    });
    let by_name = Arc::new(Mutex::new(0));
    let counter = by_name.clone();
    let _by_name = client.on_event("new_notification", move |_| *counter.lock().unwrap() += 1);

    let data = json!({"id": "n1", "title": "Hello", "body": "first"});
    notify(server.local_addr(), data).await;
    let got = timeout(Duration::from_secs(3), typed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        NewNotification {
            id: "n1".into(),
            title: "Hello".into(),
            body: "first".into()
        }
    );

    drop(guard);
    notify(server.local_addr(), json!({"id": "n2", "title": "x"})).await;
    wait_until(Duration::from_secs(3), || *by_name.lock().unwrap() >= 2).await;
    assert_eq!(
        *by_name.lock().unwrap(),
        2,
        "the by-name listener heard both"
    );
    assert!(
        typed.try_recv().is_err(),
        "the dropped guard heard nothing more"
    );
    client.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_restart_reconnects_on_the_backoff_schedule_and_rejoins_rooms() {
    let server = start_server(test_server_config()).await;
    let addr = server.local_addr();
    let config = client_config(&ws_url(addr), "alice")
        .backoff(fast_backoff(200, 8))
        .room("chat:1");
    let alice = Client::new(config);
    let mut states = alice.states();
    alice.start();
    until_state(&mut states, "connected", Duration::from_secs(5)).await;

    server.abort();
    // Let three retries fail against the dead port, then bring the server back.
    let mut delays = Vec::new();
    let mut restarted = None;
    let seen = timeout(Duration::from_secs(15), async {
        let mut all = Vec::new();
        while let Some(change) = states.next().await {
            if let ConnectionState::Reconnecting {
                attempt,
                next_at: Some(_),
            } = change.to
            {
                delays.push((attempt, change.retry_in.unwrap()));
                if attempt == 3 && restarted.is_none() {
                    restarted = Some(restart_on(addr).await);
                }
            }
            let done = change.to.is_connected();
            all.push(change);
            if done {
                break;
            }
        }
        all
    })
    .await
    .expect("reconnected");
    assert!(seen.last().unwrap().to.is_connected());
    assert_eq!(
        delays.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [1, 2, 3],
        "{seen:?}"
    );
    for (attempt, delay) in &delays {
        let base = 200u64 << (attempt - 1);
        let ms = delay.as_millis() as u64;
        // The delay is measured from the failure; allow a few ms of scheduling slack.
        assert!(
            (base / 2).saturating_sub(20) <= ms && ms <= base,
            "retry {attempt}: {ms} ms outside [{}, {base}]",
            base / 2
        );
    }

    // Rooms were re-joined without the app doing anything: a message to chat:1 reaches alice.
    let (tx, mut got) = tokio::sync::mpsc::unbounded_channel();
    let _guard = alice.on::<NewMessage>(move |m| {
        let _ = tx.send(m.text);
    });
    let bob = Client::new(client_config(&ws_url(addr), "bob").room("chat:1"));
    let mut bob_states = bob.states();
    bob.start();
    until_state(&mut bob_states, "connected", Duration::from_secs(5)).await;
    bob.request("message", json!({"chat_id": "1", "text": "welcome back"}))
        .await
        .unwrap();
    let text = timeout(Duration::from_secs(3), got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text, "welcome back");
    restarted.unwrap().shutdown().await;
}

#[tokio::test]
async fn a_server_gone_for_good_gets_five_retries_then_retries_exhausted() {
    let server = start_server(test_server_config()).await;
    let addr = server.local_addr();
    server.abort();
    let client = Client::new(client_config(&ws_url(addr), "alice").backoff(fast_backoff(20, 5)));
    let mut states = client.states();
    client.start();
    let seen = until_state(&mut states, "disconnected", Duration::from_secs(10)).await;
    let retries: Vec<u32> = seen
        .iter()
        .filter_map(|c| match c.to {
            ConnectionState::Reconnecting { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [1, 2, 3, 4, 5]);
    assert!(matches!(
        seen.last().unwrap().to,
        ConnectionState::Disconnected {
            reason: DisconnectReason::RetriesExhausted { retries: 5, .. }
        }
    ));
}

#[tokio::test]
async fn a_bad_token_is_auth_rejected_without_retry() {
    let server = start_server(test_server_config()).await;
    let client = Client::new(
        ClientConfig::new(ws_url(server.local_addr()), "not-a-jwt").backoff(fast_backoff(20, 5)),
    );
    let mut states = client.states();
    client.start();
    let seen = until_state(&mut states, "disconnected", Duration::from_secs(5)).await;
    assert!(
        seen.iter().all(|c| c.to.name() != "reconnecting"),
        "{seen:?}"
    );
    assert!(matches!(
        seen.last().unwrap().to,
        ConnectionState::Disconnected {
            reason: DisconnectReason::AuthRejected { .. }
        }
    ));
    // And it stays down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.state().name(), "disconnected");
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_link_is_detected_within_heartbeat_plus_grace_and_recovers() {
    let server = start_server(test_server_config()).await;
    let proxy = Proxy::start(server.local_addr()).await;
    let client = Client::new(client_config(&proxy.ws_url(), "alice"));
    let mut states = client.states();
    client.start();
    until_state(&mut states, "connected", Duration::from_secs(5)).await;

    proxy.silence();
    let silent_at = Instant::now();
    until_state(&mut states, "reconnecting", Duration::from_secs(5)).await;
    let detected = silent_at.elapsed();
    // heartbeat 300 ms + grace 500 ms, plus up to one heartbeat since the last frame.
    assert!(
        detected <= Duration::from_millis(800 + 100),
        "dead link detected after {detected:?}"
    );
    proxy.forward();
    until_state(&mut states, "connected", Duration::from_secs(10)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_thousand_sends_across_resets_are_acked_once_and_delivered_once() {
    const SENDS: usize = 1_000;
    let server = start_server(test_server_config()).await;
    let proxy = Proxy::start(server.local_addr()).await;

    // Bob listens directly; alice sends through the proxy that keeps cutting the link.
    let bob = Client::new(client_config(&ws_url(server.local_addr()), "bob").room("chat:9"));
    let mut bob_states = bob.states();
    bob.start();
    until_state(&mut bob_states, "connected", Duration::from_secs(5)).await;
    let received: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let sink = received.clone();
    let _bob_listener = bob.on::<NewMessage>(move |m| {
        *sink.lock().unwrap().entry(m.text).or_default() += 1;
    });

    let alice = Client::new(
        client_config(&proxy.ws_url(), "alice")
            .backoff(fast_backoff(20, 50))
            .room("chat:9"),
    );
    let acks: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let (ack_sink, failure_sink) = (acks.clone(), failures.clone());
    let _alice_acks = alice.on_notice(move |notice| {
        if let Notice::Ack { id, result } = notice {
            match result {
                Ok(_) => *ack_sink.lock().unwrap().entry(id.0).or_default() += 1,
                Err(error) => failure_sink.lock().unwrap().push(error.clone()),
            }
        }
    });
    let mut alice_states = alice.states();
    alice.start();
    until_state(&mut alice_states, "connected", Duration::from_secs(5)).await;

    let mut ids = BTreeSet::new();
    for i in 0..SENDS {
        let id = alice
            .send("message", json!({"chat_id": "9", "text": format!("m{i}")}))
            .expect("outbox has room for 1,000");
        ids.insert(id.0);
        if i % 200 == 100 {
            // A cut while still reconnecting from the last one cuts nothing: wait for the link.
            proxy.reset_all();
            until_state(&mut alice_states, "connected", Duration::from_secs(5)).await;
        }
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Two more cuts while the outbox drains.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        proxy.reset_all();
        until_state(&mut alice_states, "connected", Duration::from_secs(5)).await;
    }

    wait_until(Duration::from_secs(30), || {
        acks.lock().unwrap().len() >= SENDS && received.lock().unwrap().len() >= SENDS
    })
    .await;
    // Give any stray duplicate time to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(*failures.lock().unwrap(), []);
    let acks = acks.lock().unwrap().clone();
    assert_eq!(acks.keys().copied().collect::<BTreeSet<_>>(), ids);
    assert!(acks.values().all(|n| *n == 1), "an ack arrived twice");
    let received = received.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        SENDS,
        "bob saw {} distinct messages",
        received.len()
    );
    let doubled: Vec<_> = received.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "delivered more than once: {doubled:?}");
    assert!(alice.stats().reconnects >= 3, "{:?}", alice.stats());
    server.shutdown().await;
}

#[tokio::test]
async fn notifications_sent_during_an_outage_arrive_after_resume_without_gap_or_duplicate() {
    let server = start_server(test_server_config()).await;
    let proxy = Proxy::start(server.local_addr()).await;
    let client = Client::new(client_config(&proxy.ws_url(), "alice").backoff(fast_backoff(200, 5)));
    let seqs = Arc::new(Mutex::new(Vec::new()));
    let sink = seqs.clone();
    let _events = client.on_any(move |m| {
        sink.lock()
            .unwrap()
            .push((m.seq, m.data.to_value()["id"].clone()))
    });
    let notices = Arc::new(Mutex::new(Vec::new()));
    let notice_sink = notices.clone();
    let _notices = client.on_notice(move |n| notice_sink.lock().unwrap().push(n.clone()));
    let mut states = client.states();
    client.start();
    until_state(&mut states, "connected", Duration::from_secs(5)).await;

    for i in 0..3 {
        notify(server.local_addr(), json!({"id": format!("before{i}")})).await;
    }
    wait_until(Duration::from_secs(3), || seqs.lock().unwrap().len() >= 3).await;

    proxy.refuse(true);
    proxy.reset_all();
    until_state(&mut states, "reconnecting", Duration::from_secs(3)).await;
    for i in 0..20 {
        notify(server.local_addr(), json!({"id": format!("during{i}")})).await;
    }
    proxy.refuse(false);
    until_state(&mut states, "connected", Duration::from_secs(10)).await;
    wait_until(Duration::from_secs(3), || seqs.lock().unwrap().len() >= 23).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let seqs = seqs.lock().unwrap().clone();
    let numbers: Vec<u64> = seqs.iter().filter_map(|(s, _)| *s).collect();
    assert_eq!(numbers, (1..=23).collect::<Vec<u64>>(), "gap or duplicate");
    let ids: Vec<String> = seqs
        .iter()
        .map(|(_, id)| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids[3], "during0");
    assert_eq!(ids[22], "during19");
    assert!(
        notices
            .lock()
            .unwrap()
            .contains(&Notice::Resumed { missed: 20 }),
        "{:?}",
        notices.lock().unwrap()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn across_a_graceful_restart_every_send_is_delivered_and_the_app_hears_resume_failed() {
    let server = start_server(test_server_config()).await;
    let addr = server.local_addr();
    let alice = Client::new(
        client_config(&ws_url(addr), "alice")
            .backoff(fast_backoff(100, 20))
            .room("chat:5"),
    );
    let texts = Arc::new(Mutex::new(BTreeSet::new()));
    let sink = texts.clone();
    let _messages = alice.on::<NewMessage>(move |m| {
        sink.lock().unwrap().insert(m.text);
    });
    let notices = Arc::new(Mutex::new(Vec::new()));
    let notice_sink = notices.clone();
    let _notices = alice.on_notice(move |n| notice_sink.lock().unwrap().push(n.clone()));
    let mut states = alice.states();
    alice.start();
    until_state(&mut states, "connected", Duration::from_secs(5)).await;

    for i in 0..10 {
        alice
            .send(
                "message",
                json!({"chat_id": "5", "text": format!("before{i}")}),
            )
            .unwrap();
    }
    server.shutdown().await;
    until_state(&mut states, "reconnecting", Duration::from_secs(3)).await;
    for i in 0..10 {
        alice
            .send(
                "message",
                json!({"chat_id": "5", "text": format!("during{i}")}),
            )
            .unwrap();
    }
    let server = restart_on(addr).await;
    until_state(&mut states, "connected", Duration::from_secs(10)).await;
    wait_until(Duration::from_secs(5), || alice.stats().outbox_depth == 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(alice.stats().outbox_depth, 0);
    let texts = texts.lock().unwrap().clone();
    for i in 0..10 {
        assert!(texts.contains(&format!("during{i}")), "during{i} lost");
        assert!(texts.contains(&format!("before{i}")), "before{i} lost");
    }
    assert!(notices.lock().unwrap().contains(&Notice::ResumeFailed));
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_outbox_refuses_that_send_and_drops_nothing_else() {
    let server = start_server(test_server_config()).await;
    let addr = server.local_addr();
    server.abort();
    // No server yet: everything queues.
    let client = Client::connect(
        client_config(&ws_url(addr), "alice")
            .backoff(fast_backoff(50, 50))
            .outbox(5, 1024 * 1024),
    );
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            client
                .send("message", json!({"chat_id": "1", "text": format!("m{i}")}))
                .unwrap(),
        );
    }
    assert!(matches!(
        client.send("message", json!({"chat_id": "1", "text": "m5"})),
        Err(SendError::OutboxFull {
            max_messages: 5,
            ..
        })
    ));
    assert_eq!(client.stats().outbox_depth, 5);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sink = acked.clone();
    let _acks = client.on_notice(move |n| {
        if let Notice::Ack { id, result } = n {
            sink.lock().unwrap().push((*id, result.is_ok()));
        }
    });
    let server = restart_on(addr).await;
    wait_until(Duration::from_secs(10), || acked.lock().unwrap().len() >= 5).await;
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        *acked,
        ids.iter().map(|id| (*id, true)).collect::<Vec<_>>(),
        "every queued send acked ok, in order"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_queue_larger_than_the_rate_limit_burst_is_delivered_in_full_after_reconnect() {
    const SENDS: usize = 300; // the default limit takes 100 at once, then 50 per second
    let mut config = test_server_config();
    config.rate_limit = sockline::server::DEFAULT_RATE_LIMIT;
    let server = start_server(config.clone()).await;
    let addr = server.local_addr();
    server.abort();
    let alice = Client::connect(
        client_config(&ws_url(addr), "alice")
            .backoff(fast_backoff(50, 50))
            .room("chat:8"),
    );
    let texts = Arc::new(Mutex::new(BTreeMap::<String, u32>::new()));
    let sink = texts.clone();
    let _messages = alice.on::<NewMessage>(move |m| {
        *sink.lock().unwrap().entry(m.text).or_default() += 1;
    });
    let failures = Arc::new(Mutex::new(Vec::new()));
    let failure_sink = failures.clone();
    let _acks = alice.on_notice(move |n| {
        if let Notice::Ack { result: Err(e), .. } = n {
            failure_sink.lock().unwrap().push(e.clone());
        }
    });
    for i in 0..SENDS {
        alice
            .send("message", json!({"chat_id": "8", "text": format!("q{i}")}))
            .unwrap();
    }
    config.addr = addr;
    let server = start_server(config).await;
    wait_until(Duration::from_secs(20), || alice.stats().outbox_depth == 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(alice.stats().outbox_depth, 0);
    let failed = failures.lock().unwrap().len();
    assert_eq!(failed, 0, "{failed} sends were reported failed");
    let texts = texts.lock().unwrap().clone();
    assert_eq!(texts.len(), SENDS);
    assert!(texts.values().all(|n| *n == 1), "delivered more than once");
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_while_connected_replaces_the_socket_and_resumes_the_session() {
    let server = start_server(test_server_config()).await;
    let client = Client::new(client_config(&ws_url(server.local_addr()), "re-alice"));
    let mut states = client.states();
    client.start();
    let first = until_state(&mut states, "connected", Duration::from_secs(5)).await;
    let session = match &first.last().unwrap().to {
        sockline::core::ConnectionState::Connected { session } => session.clone(),
        other => panic!("{other:?}"),
    };
    client.reconnect();
    let again = until_state(&mut states, "connected", Duration::from_secs(5)).await;
    assert_eq!(again[0].cause, sockline::core::Cause::Reconnect);
    assert_eq!(
        again.last().unwrap().to,
        sockline::core::ConnectionState::Connected { session }
    );
    let unread = client
        .request("get_unread_count", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(unread, Some(serde_json::json!({"count": 0})));
    server.shutdown().await;
}
