//! Exactly once past a failed resume (issue 15, PROTOCOL.md §5), end to end with the native
//! client: a cut that lands after the server processed a send and before its ack reached the
//! client, on a server that cannot resume the session, still delivers the message once.
#![cfg(feature = "testing")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sockline::core::Backoff;
use sockline::native::{Client, ClientConfig, Notice};
use sockline::testing::{EventLog, FaultProxy, StateWatch, TestServer};
use tokio::time::{sleep, Instant};

const WAIT: Duration = Duration::from_secs(10);
/// The proxy's delay each way while the send is in flight: the width of the window the cut
/// lands in (the ack is still inside the proxy when the other user already has the message).
const LATENCY: Duration = Duration::from_millis(300);

fn count(log: &EventLog, text: &str) -> usize {
    log.messages()
        .iter()
        .filter(|m| m.event == "new_message" && m.data.to_value()["text"] == text)
        .count()
}

#[tokio::test]
async fn a_cut_between_processing_and_the_ack_on_an_unresumable_session_delivers_once() {
    // No resume window: every reconnect is a new session (`resumed: false`), as after a session
    // expired. Only the server's (user, client) memory stands between a resend and a duplicate.
    let config = sockline::server::ServerConfig {
        replay_age: Duration::ZERO,
        ..TestServer::default_config()
    };
    let server = TestServer::with_config(config).await.unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let bob = Client::new(ClientConfig::new(server.ws_url(), server.token("bob")).room("chat:1"));
    let bob_log = EventLog::new(&bob);
    let mut bob_states = StateWatch::new(&bob);
    bob.start();
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max_retries: None,
        ..Backoff::default()
    };
    let alice = Client::new(
        ClientConfig::new(proxy.ws_url(), server.token("alice"))
            .room("chat:1")
            .backoff(backoff),
    );
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let _notices = alice.on_notice(move |n| sink.lock().unwrap().push(n.clone()));
    let mut alice_states = StateWatch::new(&alice);
    alice.start();
    bob_states.wait_for("connected", WAIT).await.unwrap();
    alice_states.wait_for("connected", WAIT).await.unwrap();
    // Both are in the room before the message goes (a join is acked before its effect shows).
    let deadline = Instant::now() + WAIT;
    while server.health().await.unwrap()["rooms"] != 3 && Instant::now() < deadline {
        sleep(Duration::from_millis(20)).await;
    }

    proxy.latency(LATENCY);
    let id = alice
        .send("message", json!({"chat_id": "1", "text": "exactly once"}))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while count(&bob_log, "exactly once") == 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(5)).await;
    }
    // The server processed it (bob has it) and alice has no ack yet: cut now.
    assert_eq!(count(&bob_log, "exactly once"), 1);
    let acked = |notices: &[Notice]| {
        notices
            .iter()
            .filter(|n| matches!(n, Notice::Ack { id: got, .. } if *got == id))
            .count()
    };
    assert_eq!(
        acked(&notices.lock().unwrap()),
        0,
        "the cut must land before the ack"
    );
    proxy.heal();
    proxy.cut();

    // Alice comes back on a new session and resends the unacked message with the same id.
    alice_states.wait_for("reconnecting", WAIT).await.unwrap();
    alice_states.wait_for("connected", WAIT).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while acked(&notices.lock().unwrap()) == 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
    }
    sleep(Duration::from_millis(300)).await;
    let notices = notices.lock().unwrap().clone();
    assert!(notices.contains(&Notice::ResumeFailed), "{notices:?}");
    let ack = notices
        .iter()
        .find(|n| matches!(n, Notice::Ack { id: got, .. } if *got == id));
    match ack {
        Some(Notice::Ack {
            result: Ok(Some(data)),
            ..
        }) => {
            assert!(
                data["id"].is_string(),
                "the first ack, message id included: {data}"
            )
        }
        other => panic!("expected the ok ack of the send, got {other:?}"),
    }
    assert_eq!(acked(&notices), 1, "acked once");
    assert_eq!(count(&bob_log, "exactly once"), 1, "delivered exactly once");
    assert_eq!(alice.stats().outbox_depth, 0);
    server.stop().await;
}
