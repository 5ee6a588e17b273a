//! Driver-level behaviour tested once, in virtual time, through the shell both drivers run (the
//! pair in `support/pair.rs`): state views with their causes and retry delays, request
//! settlement, what a failed send or a binary frame reports, delivery order. They run natively
//! and on wasm32 (in Node), like the core's script tests.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[path = "support/pair.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use sockline::core::{Action, Backoff, Transport};
use sockline::protocol::ErrorBody;
use support::{pair_config, Heard, Pair};

fn connected() -> Pair {
    let mut pair = Pair::new(pair_config());
    pair.command(|conn, now| conn.connect(now));
    assert!(pair.shell.conn().state().is_connected(), "{:?}", pair.log);
    pair.log.clear();
    pair
}

#[test]
fn a_static_token_connects_without_asking_the_driver() {
    let mut pair = Pair::new(pair_config());
    pair.command(|conn, now| conn.connect(now));
    assert!(pair.shell.conn().state().is_connected());
    assert!(
        !pair
            .actions
            .iter()
            .any(|(_, a)| matches!(a, Action::FetchToken { .. })),
        "{:?}",
        pair.actions
    );
    assert_eq!(
        pair.states(),
        [
            ("connecting", "connect", None),
            ("authenticating", "socket_open", None),
            ("connected", "authenticated", None),
        ]
    );
}

#[test]
fn a_provider_is_asked_before_every_attempt() {
    let mut config = pair_config();
    config.token = None;
    let mut pair = Pair::new(config);
    pair.command(|conn, now| conn.connect(now));
    assert!(pair.shell.conn().state().is_connected());
    let fetches = pair
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::FetchToken { .. }))
        .count();
    assert_eq!(fetches, 1);
}

#[test]
fn a_lost_server_is_retried_on_the_backoff_schedule_with_the_cause_then_given_up() {
    let mut config = pair_config();
    config.backoff = Backoff {
        jitter: false,
        ..Backoff::default()
    };
    let mut pair = Pair::new(config);
    pair.server.up = false;
    pair.command(|conn, now| conn.connect(now));
    pair.run_for(60_000);
    let states = pair.states();
    let retries: Vec<_> = states
        .iter()
        .filter(|(s, _, _)| *s == "reconnecting")
        .collect();
    assert_eq!(
        retries,
        [
            &("reconnecting", "socket_error", Some(1_000)),
            &("reconnecting", "socket_error", Some(2_000)),
            &("reconnecting", "socket_error", Some(4_000)),
            &("reconnecting", "socket_error", Some(8_000)),
            &("reconnecting", "socket_error", Some(16_000)),
        ]
    );
    let attempts: Vec<_> = states
        .iter()
        .filter(|(s, _, _)| *s == "connecting")
        .collect();
    assert_eq!(attempts.len(), 6);
    assert!(attempts[1..].iter().all(|(_, cause, _)| *cause == "retry"));
    assert_eq!(
        states.last(),
        Some(&("disconnected", "retries_exhausted", None))
    );
    // The attempts ran when their delays said: 0, 1, 3, 7, 15 and 31 s.
    let opened: Vec<u64> = pair
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::OpenSocket { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(opened, [0, 1_000, 3_000, 7_000, 15_000, 31_000]);
}

#[test]
fn a_rejected_token_stops_at_once() {
    let mut pair = Pair::new(pair_config());
    pair.server.token = "another".into();
    pair.command(|conn, now| conn.connect(now));
    pair.run_for(60_000);
    assert_eq!(
        pair.states().last(),
        Some(&("disconnected", "auth_rejected", None))
    );
    let opened = pair
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::OpenSocket { .. }))
        .count();
    assert_eq!(opened, 1, "no retry");
}

#[test]
fn a_silent_link_is_lost_after_heartbeat_plus_grace_and_says_why() {
    let mut pair = connected();
    pair.server.silent = true;
    pair.run_for(39_999);
    assert!(pair.shell.conn().state().is_connected());
    pair.run_for(1);
    assert_eq!(
        pair.log[0],
        (
            40_000,
            Heard::State("reconnecting", "heartbeat_timeout", pair.states()[0].2)
        )
    );
}

#[test]
fn a_request_settles_once_with_its_ack_data() {
    let mut pair = connected();
    pair.request(7, "get_unread_count", None).unwrap();
    assert_eq!(
        pair.heard(),
        [Heard::Settled(7, Ok(Some(r#"{"count":3}"#.into())))]
    );
}

#[test]
fn an_unanswered_request_times_out_after_the_configured_default() {
    let mut config = pair_config();
    config.request_timeout = Duration::from_millis(2_500);
    let mut pair = Pair::new(config);
    pair.command(|conn, now| conn.connect(now));
    pair.server.silent = true;
    pair.log.clear();
    pair.request(1, "x", None).unwrap();
    pair.request(2, "x", Some(Duration::from_millis(500)))
        .unwrap();
    pair.run_for(3_000);
    assert_eq!(
        pair.log,
        [
            (500, Heard::Settled(2, Err("timeout".into()))),
            (2_500, Heard::Settled(1, Err("timeout".into()))),
        ]
    );
}

#[test]
fn disconnect_fails_every_pending_request_before_the_state_change() {
    let mut pair = connected();
    pair.server.silent = true;
    pair.request(1, "x", None).unwrap();
    pair.request(2, "x", None).unwrap();
    pair.command(|conn, now| conn.disconnect(now));
    assert_eq!(
        pair.heard(),
        [
            Heard::Settled(1, Err("disconnected".into())),
            Heard::Settled(2, Err("disconnected".into())),
            Heard::State("disconnected", "requested", None),
        ]
    );
    assert_eq!(pair.shell.pending_requests(), 0);
    // After disconnect() a request is refused at once: nothing would ever answer it.
    assert_eq!(pair.request(3, "x", None), Err("disconnected".into()));
    assert!(pair.shell.take_pending().is_empty());
}

#[test]
fn a_failed_plain_send_is_an_error_and_an_ack_on_every_face() {
    let mut pair = connected();
    pair.server.refuse_sends = Some(ErrorBody::new("forbidden", "no"));
    let id = pair.command(|conn, now| conn.send(now, "message", &sockline::core::Payload::null()));
    let id = id.unwrap().0;
    assert_eq!(
        pair.heard(),
        [
            Heard::Error("forbidden".into()),
            Heard::Ack(id, Err("forbidden".into()))
        ]
    );
}

#[test]
fn a_binary_frame_is_a_binary_frame_error_and_the_link_stays_up() {
    let mut pair = connected();
    pair.server_sends(Transport::Binary);
    assert_eq!(pair.heard(), [Heard::Error("binary_frame".into())]);
    assert!(pair.shell.conn().state().is_connected());
    assert_eq!(pair.shell.conn().stats().frames_in, 2);
}

#[test]
fn outputs_keep_the_order_the_core_produced_them_in() {
    let mut pair = connected();
    let first = pair.server.event("new_notification", json!({"id": "n1"}));
    let second = pair.server.event("new_message", json!({"id": "m1"}));
    pair.server_sends(first);
    pair.request(5, "get_unread_count", None).unwrap();
    pair.server_sends(second);
    pair.server_sends(Transport::Closed {
        code: 1001,
        reason: "bye".into(),
    });
    let heard = pair.heard();
    assert_eq!(
        heard[..3],
        [
            Heard::Message("new_notification".into(), Some(1)),
            Heard::Settled(5, Ok(Some(r#"{"count":3}"#.into()))),
            Heard::Message("new_message".into(), Some(2)),
        ]
    );
    assert!(matches!(
        heard[3],
        Heard::State("reconnecting", "socket_closed", Some(_))
    ));
}

#[test]
fn offline_and_online_say_so() {
    let mut pair = connected();
    pair.command(|conn, now| {
        conn.handle_input(
            now,
            sockline::core::Input::Env(sockline::core::Env::Offline),
        )
    });
    pair.command(|conn, now| {
        conn.handle_input(now, sockline::core::Input::Env(sockline::core::Env::Online))
    });
    assert_eq!(
        pair.states(),
        [
            ("reconnecting", "offline", None),
            ("connecting", "online", None),
            ("authenticating", "socket_open", None),
            ("connected", "authenticated", None),
        ]
    );
}

#[test]
fn reconnect_keeps_a_pending_request_and_settles_it_on_the_new_link() {
    let mut pair = connected();
    pair.server.silent = true;
    pair.request(9, "get_unread_count", None).unwrap();
    pair.server.silent = false;
    pair.command(|conn, now| conn.reconnect(now));
    assert_eq!(
        pair.heard(),
        [
            Heard::State("connecting", "reconnect", None),
            Heard::State("authenticating", "socket_open", None),
            Heard::State("connected", "authenticated", None),
            // The scripted server never resumes.
            Heard::ResumeFailed,
            Heard::Settled(9, Ok(Some(r#"{"count":3}"#.into()))),
        ]
    );
}
