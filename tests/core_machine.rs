//! Script tests of the core state machine: one per edge of the state table and per rule.
//! They run natively and on wasm32 (in Node, through wasm-bindgen-test-runner).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[path = "support/core.rs"]
mod support;

use serde_json::json;
use sockline::core::{
    Action, Cause, Connection, ConnectionState, DisconnectReason, Env, Event, Input, Instant,
    LinkError, Payload, RequestId, SendId, SocketId, StaticToken, Transport,
};
use sockline::{AckError, ClientError, SendError};
use std::time::Duration;
use support::*;

fn reconnecting_at(conn: &Connection) -> (u32, Instant) {
    match conn.state() {
        ConnectionState::Reconnecting {
            attempt,
            next_at: Some(at),
        } => (*attempt, *at),
        other => panic!("expected reconnecting with a timer, got {other:?}"),
    }
}

#[test]
fn starts_disconnected_and_idle() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    assert_eq!(
        conn.state(),
        &ConnectionState::Disconnected {
            reason: DisconnectReason::NotStarted
        }
    );
    assert_eq!(conn.poll_action(), None);
    assert_eq!(conn.poll_event(), None);
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn connect_fetches_a_token_and_arms_the_connect_timeout() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    assert_eq!(
        actions(&mut conn),
        [Action::FetchToken {
            request: sockline::core::RequestId(1)
        }]
    );
    assert_eq!(states(&events(&mut conn)), ["connecting"]);
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
    assert_eq!(conn.poll_timeout(), Some(at(20_000)));
}

#[test]
fn token_opens_the_socket_to_the_configured_url() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    actions(&mut conn);
    conn.handle_input(
        at(5),
        Input::TokenFetched(sockline::core::RequestId(1), Ok("tok".into())),
    );
    assert_eq!(
        actions(&mut conn),
        [Action::OpenSocket {
            socket: SocketId(1),
            url: URL.into()
        }]
    );
}

#[test]
fn open_sends_auth_first_and_arms_the_auth_timeout() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    events(&mut conn);
    conn.handle_input(at(100), Input::Transport(socket, Transport::Opened));
    assert_eq!(
        actions(&mut conn),
        [Action::SendFrame {
            socket,
            text: r#"{"type":"auth","v":1,"token":"tok"}"#.into()
        }]
    );
    assert_eq!(states(&events(&mut conn)), ["authenticating"]);
    assert_eq!(conn.poll_timeout(), Some(at(5_100)));
}

#[test]
fn authenticated_connects_and_arms_the_heartbeat_deadline() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    actions(&mut conn);
    events(&mut conn);
    frame(&mut conn, at(50), socket, &authenticated("s1", false));
    assert_eq!(
        events(&mut conn),
        [Event::StateChanged {
            from: ConnectionState::Authenticating { attempt: 0 },
            to: ConnectionState::Connected {
                session: "s1".into()
            },
            cause: Cause::Authenticated,
        }]
    );
    // heartbeat 30 s + grace 10 s
    assert_eq!(conn.poll_timeout(), Some(at(40_050)));
}

#[test]
fn auth_error_disconnects_without_retry() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    actions(&mut conn);
    events(&mut conn);
    frame(
        &mut conn,
        at(10),
        socket,
        r#"{"type":"auth_error","code":"invalid_token","message":"bad signature"}"#,
    );
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::CloseSocket { code: 1000, .. }]
    ));
    assert_eq!(
        conn.state(),
        &ConnectionState::Disconnected {
            reason: DisconnectReason::AuthRejected {
                code: "invalid_token".into(),
                message: "bad signature".into()
            }
        }
    );
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn close_4001_while_authenticating_is_auth_rejected() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    actions(&mut conn);
    close(&mut conn, at(10), socket, 4001);
    assert!(matches!(
        conn.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::AuthRejected { .. }
        }
    ));
    assert_eq!(actions(&mut conn), []);
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn auth_timeout_closes_and_schedules_retry_one() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    actions(&mut conn);
    events(&mut conn);
    conn.handle_input(at(5_000), Input::Timeout);
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::CloseSocket { socket: s, .. }] if *s == socket
    ));
    let (attempt, next_at) = reconnecting_at(&conn);
    assert_eq!(attempt, 1);
    assert!(
        (5_500..=6_000).contains(&next_at.as_millis()),
        "{next_at:?}"
    );
    assert_eq!(conn.poll_timeout(), Some(next_at));
}

#[test]
fn connect_timeout_schedules_a_retry() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(at(19_999), Input::Timeout);
    assert!(matches!(conn.state(), ConnectionState::Connecting { .. }));
    conn.handle_input(at(20_000), Input::Timeout);
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::CloseSocket { socket: s, .. }] if *s == socket
    ));
    assert_eq!(reconnecting_at(&conn).0, 1);
}

#[test]
fn failed_token_fetch_is_a_retryable_failure() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let request = match actions(&mut conn).as_slice() {
        [Action::FetchToken { request }] => *request,
        other => panic!("{other:?}"),
    };
    conn.handle_input(at(1), Input::TokenFetched(request, Err("offline".into())));
    assert_eq!(
        actions(&mut conn),
        [],
        "no socket was opened, none to close"
    );
    assert_eq!(reconnecting_at(&conn).0, 1);
}

#[test]
fn close_before_open_schedules_a_retry() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    close(&mut conn, at(3), socket, 1006);
    assert_eq!(actions(&mut conn), []);
    assert_eq!(reconnecting_at(&conn).0, 1);
}

#[test]
fn abnormal_close_while_connected_reconnects() {
    let (mut conn, socket) = live();
    close(&mut conn, at(1_000), socket, 1006);
    let evs = events(&mut conn);
    assert_eq!(states(&evs), ["reconnecting"]);
    let (attempt, next_at) = reconnecting_at(&conn);
    assert_eq!(attempt, 1);
    assert!((1_500..=2_000).contains(&next_at.as_millis()));
    assert_eq!(conn.stats().reconnects, 1);
    assert_eq!(
        conn.last_error(),
        Some(&LinkError::Closed {
            code: 1006,
            reason: "test".into()
        })
    );
}

#[test]
fn non_retryable_close_codes_disconnect_with_the_reason() {
    for code in [4003u16, 4008, 1008, 1009] {
        let (mut conn, socket) = live();
        close(&mut conn, at(10), socket, code);
        assert_eq!(
            conn.state(),
            &ConnectionState::Disconnected {
                reason: DisconnectReason::Refused {
                    code,
                    reason: "test".into()
                }
            },
            "{code}"
        );
        assert_eq!(conn.poll_timeout(), None, "{code}");
    }
}

#[test]
fn backoff_timer_starts_the_next_attempt() {
    let (mut conn, socket) = live();
    close(&mut conn, at(1_000), socket, 1001);
    events(&mut conn);
    let (_, next_at) = reconnecting_at(&conn);
    conn.handle_input(next_at, Input::Timeout);
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::FetchToken { .. }]
    ));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 1 });
}

/// A server that never accepts: exactly five retries with delays inside [0.5, 1] × (1, 2, 4, 8,
/// 16) s, then `RetriesExhausted`.
fn exhaust(conn: &mut Connection) -> Instant {
    conn.connect(Instant::ZERO);
    let mut now = Instant::ZERO;
    let mut retries = Vec::new();
    loop {
        let socket = answer_token(conn, now);
        close(conn, now, socket, 1006);
        match conn.state().clone() {
            ConnectionState::Reconnecting {
                attempt,
                next_at: Some(next_at),
            } => {
                retries.push((attempt, next_at.as_millis() - now.as_millis()));
                now = next_at;
                conn.handle_input(now, Input::Timeout);
            }
            ConnectionState::Disconnected { reason } => {
                assert!(matches!(
                    reason,
                    DisconnectReason::RetriesExhausted { retries: 5, .. }
                ));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(retries.len(), 5, "{retries:?}");
    for (i, (attempt, delay)) in retries.iter().enumerate() {
        let base = 1_000u64 << i;
        assert_eq!(*attempt as usize, i + 1);
        assert!(
            (base / 2..=base).contains(delay),
            "retry {attempt}: {delay} ms outside [{}, {base}]",
            base / 2
        );
    }
    assert_eq!(conn.poll_timeout(), None);
    actions(conn);
    events(conn);
    now
}

#[test]
fn never_accepting_server_gives_five_jittered_retries_then_gives_up() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    exhaust(&mut conn);
}

#[test]
fn connect_online_or_visible_after_giving_up_start_over_with_backoff_reset() {
    type Revive = fn(&mut Connection, Instant);
    let revivals: [Revive; 3] = [
        |c, now| c.connect(now),
        |c, now| c.handle_input(now, Input::Env(Env::Online)),
        |c, now| c.handle_input(now, Input::Env(Env::Visible)),
    ];
    for revive in revivals {
        let mut conn = Connection::new(config(), Instant::ZERO);
        let now = exhaust(&mut conn);
        revive(&mut conn, now);
        assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
        // The backoff is reset: the next failure is retry 1 again, about 1 s away.
        let socket = answer_token(&mut conn, now);
        close(&mut conn, now, socket, 1006);
        let (attempt, next_at) = reconnecting_at(&conn);
        assert_eq!(attempt, 1);
        assert!(next_at.as_millis() - now.as_millis() <= 1_000);
    }
}

#[test]
fn after_disconnect_neither_online_nor_visible_revives() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    let now = exhaust(&mut conn);
    conn.disconnect(now);
    for env in [Env::Offline, Env::Online, Env::Hidden, Env::Visible] {
        conn.handle_input(now, Input::Env(env));
    }
    assert_eq!(
        conn.state(),
        &ConnectionState::Disconnected {
            reason: DisconnectReason::Requested
        }
    );
    assert_eq!(actions(&mut conn), []);
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn disconnect_closes_with_1000_and_stops_every_timer() {
    let (mut conn, socket) = live();
    conn.disconnect(at(10));
    assert_eq!(
        actions(&mut conn),
        [Action::CloseSocket {
            socket,
            code: 1000,
            reason: "client disconnect".into()
        }]
    );
    assert_eq!(states(&events(&mut conn)), ["disconnected"]);
    assert_eq!(conn.poll_timeout(), None);
    // A late close event from the old socket is ignored.
    close(&mut conn, at(20), socket, 1006);
    assert_eq!(events(&mut conn), []);
}

#[test]
fn disconnect_then_connect_starts_over() {
    let (mut conn, _) = live();
    conn.disconnect(at(10));
    conn.connect(at(20));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
    assert!(matches!(
        actions(&mut conn).last(),
        Some(Action::FetchToken { .. })
    ));
}

#[test]
fn connect_while_connected_does_nothing() {
    let (mut conn, _) = live();
    conn.connect(at(5));
    assert_eq!(actions(&mut conn), []);
    assert_eq!(events(&mut conn), []);
}

#[test]
fn a_stable_connection_resets_the_retry_count_and_a_flapping_one_does_not() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let (socket, _) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    // Drops at once: retry 1.
    close(&mut conn, at(100), socket, 1006);
    let (_, next_at) = reconnecting_at(&conn);
    conn.handle_input(next_at, Input::Timeout);
    let (socket, _) = finish_connect(&mut conn, next_at, "s2", false);
    // Accepted, then dropped after 1 s (< 5 s stable): the count is not reset -> retry 2.
    let dropped = next_at + Duration::from_secs(1);
    close(&mut conn, dropped, socket, 1006);
    let (attempt, next_at) = reconnecting_at(&conn);
    assert_eq!(attempt, 2);
    conn.handle_input(next_at, Input::Timeout);
    let (socket, _) = finish_connect(&mut conn, next_at, "s3", false);
    // Stayed 6 s (>= 5 s): reset -> retry 1 again.
    close(&mut conn, next_at + Duration::from_secs(6), socket, 1006);
    assert_eq!(reconnecting_at(&conn).0, 1);
}

#[test]
fn heartbeat_silence_is_a_dead_link() {
    let (mut conn, socket) = live();
    conn.handle_input(at(39_999), Input::Timeout);
    assert!(conn.state().is_connected());
    conn.handle_input(at(40_000), Input::Timeout);
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::CloseSocket { socket: s, .. }] if *s == socket
    ));
    assert_eq!(reconnecting_at(&conn).0, 1);
}

#[test]
fn a_late_timer_still_sees_the_heartbeat_expiry() {
    let (mut conn, _) = live();
    // The tab was throttled / the laptop slept: the first wake-up is an hour late.
    conn.handle_input(at(3_600_000), Input::Timeout);
    assert_eq!(states(&events(&mut conn)), ["reconnecting"]);
    assert!(conn.poll_timeout().unwrap() >= at(3_600_000));
}

#[test]
fn any_frame_pushes_the_heartbeat_deadline_back() {
    let (mut conn, socket) = live();
    frame(&mut conn, at(30_000), socket, r#"{"type":"ping","t":1}"#);
    assert_eq!(conn.poll_timeout(), Some(at(70_000)));
    conn.handle_input(at(60_000), Input::Timeout);
    assert!(conn.state().is_connected());
}

#[test]
fn ping_is_answered_with_pong_and_rtt_is_recorded() {
    let (mut conn, socket) = live();
    frame(
        &mut conn,
        at(10),
        socket,
        r#"{"type":"ping","t":123456,"rtt_ms":42}"#,
    );
    assert_eq!(
        frames(&actions(&mut conn)),
        [json!({"type":"pong","t":123456})]
    );
    assert_eq!(conn.stats().last_rtt, Some(Duration::from_millis(42)));
}

#[test]
fn hidden_pauses_at_once_and_visible_reconnects_at_once() {
    let (mut conn, socket) = live();
    conn.handle_input(at(10), Input::Env(Env::Hidden));
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::CloseSocket { socket: s, .. }] if *s == socket
    ));
    assert_eq!(
        conn.state(),
        &ConnectionState::Disconnected {
            reason: DisconnectReason::Paused
        }
    );
    assert_eq!(conn.poll_timeout(), None);
    conn.handle_input(at(60_000), Input::Env(Env::Visible));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::FetchToken { .. }]
    ));
}

#[test]
fn hidden_grace_delays_the_pause_and_visible_cancels_it() {
    let mut cfg = config();
    cfg.hidden_grace = Duration::from_secs(10);
    let mut conn = Connection::new(cfg, Instant::ZERO);
    conn.connect(Instant::ZERO);
    finish_connect(&mut conn, Instant::ZERO, "s1", false);
    conn.handle_input(at(1_000), Input::Env(Env::Hidden));
    assert!(conn.state().is_connected());
    conn.handle_input(at(5_000), Input::Env(Env::Visible));
    conn.handle_input(at(11_000), Input::Timeout);
    assert!(conn.state().is_connected(), "visible cancelled the pause");
    conn.handle_input(at(12_000), Input::Env(Env::Hidden));
    conn.handle_input(at(22_000), Input::Timeout);
    assert_eq!(
        conn.state(),
        &ConnectionState::Disconnected {
            reason: DisconnectReason::Paused
        }
    );
}

#[test]
fn pause_when_hidden_off_keeps_the_link() {
    let mut cfg = config();
    cfg.pause_when_hidden = false;
    let mut conn = Connection::new(cfg, Instant::ZERO);
    conn.connect(Instant::ZERO);
    finish_connect(&mut conn, Instant::ZERO, "s1", false);
    conn.handle_input(at(10), Input::Env(Env::Hidden));
    assert!(conn.state().is_connected());
    assert_eq!(actions(&mut conn), []);
}

#[test]
fn offline_closes_and_waits_without_a_timer_and_online_connects_at_once() {
    let (mut conn, socket) = live();
    conn.handle_input(at(10), Input::Env(Env::Offline));
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::CloseSocket { socket: s, .. }] if *s == socket
    ));
    assert_eq!(
        conn.state(),
        &ConnectionState::Reconnecting {
            attempt: 0,
            next_at: None
        }
    );
    assert_eq!(conn.poll_timeout(), None);
    // An hour offline spends no retry.
    conn.handle_input(at(3_600_000), Input::Timeout);
    assert_eq!(conn.state().attempt(), 0);
    conn.handle_input(at(3_600_001), Input::Env(Env::Online));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
    assert!(matches!(
        actions(&mut conn).as_slice(),
        [Action::FetchToken { .. }]
    ));
}

#[test]
fn offline_while_reconnecting_cancels_the_backoff_timer() {
    let (mut conn, socket) = live();
    close(&mut conn, at(10), socket, 1006);
    assert!(conn.poll_timeout().is_some());
    conn.handle_input(at(20), Input::Env(Env::Offline));
    assert_eq!(conn.poll_timeout(), None);
    assert!(matches!(
        conn.state(),
        ConnectionState::Reconnecting { next_at: None, .. }
    ));
}

#[test]
fn connect_while_offline_waits_for_the_network() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Env(Env::Offline));
    conn.connect(at(1));
    assert_eq!(actions(&mut conn), []);
    assert_eq!(
        conn.state(),
        &ConnectionState::Reconnecting {
            attempt: 0,
            next_at: None
        }
    );
    conn.handle_input(at(2), Input::Env(Env::Online));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
}

#[test]
fn sends_while_disconnected_are_queued_and_flushed_in_order_after_auth() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    let a = conn
        .send(Instant::ZERO, "message", &payload(json!({"n": 1})))
        .unwrap();
    let b = conn
        .send(Instant::ZERO, "message", &payload(json!({"n": 2})))
        .unwrap();
    assert_eq!((a, b), (SendId(1), SendId(2)));
    assert_eq!(conn.stats().outbox_depth, 2);
    conn.connect(Instant::ZERO);
    let (_, sent) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    assert_eq!(
        sent,
        [
            json!({"type":"send","id":1,"event":"message","data":{"n":1}}),
            json!({"type":"send","id":2,"event":"message","data":{"n":2}}),
        ]
    );
}

#[test]
fn a_send_while_connected_goes_out_at_once_and_its_ack_is_reported() {
    let (mut conn, socket) = live();
    let id = conn
        .send(at(1), "get_unread_count", &payload(json!({})))
        .unwrap();
    assert_eq!(
        frames(&actions(&mut conn)),
        [json!({"type":"send","id":1,"event":"get_unread_count","data":{}})]
    );
    frame(
        &mut conn,
        at(2),
        socket,
        r#"{"type":"ack","id":1,"ok":true,"data":{"count":3}}"#,
    );
    assert_eq!(
        events(&mut conn),
        [Event::Ack {
            id,
            result: Ok(Some(payload(json!({"count": 3}))))
        }]
    );
    assert_eq!(conn.stats().outbox_depth, 0);
    // A repeated ack is ignored.
    frame(
        &mut conn,
        at(3),
        socket,
        r#"{"type":"ack","id":1,"ok":true}"#,
    );
    assert_eq!(events(&mut conn), []);
}

#[test]
fn a_rejected_ack_is_reported_with_the_server_code() {
    let (mut conn, socket) = live();
    let id = conn.send(at(1), "nope", &payload(json!(null))).unwrap();
    frame(
        &mut conn,
        at(2),
        socket,
        r#"{"type":"ack","id":1,"ok":false,"error":{"code":"unknown_event","message":"?"}}"#,
    );
    assert_eq!(
        events(&mut conn),
        [Event::Ack {
            id,
            result: Err(AckError::Rejected {
                code: "unknown_event".into(),
                message: "?".into()
            })
        }]
    );
}

#[test]
fn a_full_outbox_refuses_only_the_send_that_does_not_fit() {
    let mut cfg = config();
    cfg.outbox_max_messages = 3;
    let mut conn = Connection::new(cfg, Instant::ZERO);
    for n in 0..3 {
        conn.send(Instant::ZERO, "message", &payload(json!({ "n": n })))
            .unwrap();
    }
    assert_eq!(
        conn.send(Instant::ZERO, "message", &payload(json!({"n": 3}))),
        Err(SendError::OutboxFull {
            max_messages: 3,
            max_bytes: 1024 * 1024
        })
    );
    assert_eq!(conn.stats().outbox_depth, 3);
    conn.connect(Instant::ZERO);
    let (_, sent) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    let ns: Vec<_> = sent.iter().map(|f| f["data"]["n"].clone()).collect();
    assert_eq!(ns, [json!(0), json!(1), json!(2)]);
}

#[test]
fn the_byte_bound_and_frame_limit_are_enforced() {
    let mut cfg = config();
    cfg.outbox_max_bytes = 100;
    let mut conn = Connection::new(cfg, Instant::ZERO);
    conn.send(Instant::ZERO, "m", &payload(json!("x".repeat(60))))
        .unwrap();
    assert!(matches!(
        conn.send(Instant::ZERO, "m", &payload(json!("x".repeat(60)))),
        Err(SendError::OutboxFull { .. })
    ));
    let huge = json!("x".repeat(70_000));
    assert!(matches!(
        conn.send(Instant::ZERO, "m", &payload(huge)),
        Err(SendError::TooLarge { limit: 65_536, .. })
    ));
    assert_eq!(
        conn.send(Instant::ZERO, "", &payload(json!(1))),
        Err(SendError::EmptyEventName)
    );
    assert_eq!(conn.stats().outbox_depth, 1);
}

#[test]
fn unacked_sends_are_resent_with_the_same_ids_after_a_resume() {
    let (mut conn, socket) = live();
    for n in 0..3 {
        conn.send(at(1), "message", &payload(json!({ "n": n })))
            .unwrap();
    }
    actions(&mut conn);
    frame(
        &mut conn,
        at(2),
        socket,
        r#"{"type":"ack","id":1,"ok":true}"#,
    );
    close(&mut conn, at(3), socket, 1006);
    let (_, next_at) = reconnecting_at(&conn);
    conn.handle_input(next_at, Input::Timeout);
    let (_, sent) = finish_connect(&mut conn, next_at, "s1", true);
    let ids: Vec<_> = sent.iter().map(|f| f["id"].clone()).collect();
    assert_eq!(ids, [json!(2), json!(3)]);
    assert_eq!(conn.stats().outbox_depth, 2);
}

#[test]
fn a_new_session_resends_unacked_sends_under_their_own_ids_after_rejoining_rooms() {
    let (mut conn, socket) = live();
    conn.join(at(1), "chat:7");
    conn.send(at(1), "message", &payload(json!({"text": "a"})))
        .unwrap();
    assert_eq!(
        frames(&actions(&mut conn)),
        [
            json!({"type":"send","id":1,"event":"join_room","data":{"room":"chat:7"}}),
            json!({"type":"send","id":2,"event":"message","data":{"text":"a"}}),
        ]
    );
    close(&mut conn, at(3), socket, 1006);
    let (_, next_at) = reconnecting_at(&conn);
    conn.handle_input(next_at, Input::Timeout);
    let (_, sent) = finish_connect(&mut conn, next_at, "s2", false);
    // Ids are per client and never renumbered: the message keeps id 2, so the server's
    // (user, client) dedupe processes it once even if it saw it before the cut. The room is
    // joined again under a new id (the old join belongs to the old session).
    assert_eq!(
        sent,
        [
            json!({"type":"send","id":3,"event":"join_room","data":{"room":"chat:7"}}),
            json!({"type":"send","id":2,"event":"message","data":{"text":"a"}}),
        ]
    );
    assert_eq!(
        events(&mut conn)
            .into_iter()
            .filter(|e| *e == Event::ResumeFailed)
            .count(),
        1
    );
}

#[test]
fn a_resumed_session_does_not_rejoin_rooms() {
    let (mut conn, socket) = live();
    conn.join(at(1), "chat:7");
    frame(
        &mut conn,
        at(2),
        socket,
        r#"{"type":"ack","id":1,"ok":true}"#,
    );
    actions(&mut conn);
    close(&mut conn, at(3), socket, 1006);
    let (_, next_at) = reconnecting_at(&conn);
    conn.handle_input(next_at, Input::Timeout);
    let (_, sent) = finish_connect(&mut conn, next_at, "s1", true);
    assert_eq!(sent, Vec::<serde_json::Value>::new());
    assert!(events(&mut conn).contains(&Event::Resumed { missed: 0 }));
}

#[test]
fn reconnect_auth_carries_the_resume_point() {
    let (mut conn, socket) = live();
    frame(
        &mut conn,
        at(1),
        socket,
        r#"{"type":"event","seq":1,"event":"x","data":{}}"#,
    );
    frame(
        &mut conn,
        at(1),
        socket,
        r#"{"type":"event","seq":2,"event":"x","data":{}}"#,
    );
    close(&mut conn, at(2), socket, 1006);
    let (_, next_at) = reconnecting_at(&conn);
    conn.handle_input(next_at, Input::Timeout);
    let socket = answer_token(&mut conn, next_at);
    conn.handle_input(next_at, Input::Transport(socket, Transport::Opened));
    assert_eq!(
        frames(&actions(&mut conn)),
        [json!({"type":"auth","v":1,"token":"tok","resume":{"session":"s1","seq":2}})]
    );
}

#[test]
fn duplicate_events_are_dropped_and_counted() {
    let (mut conn, socket) = live();
    for seq in [1, 2, 2, 1, 3] {
        frame(
            &mut conn,
            at(1),
            socket,
            &format!(
                r#"{{"type":"event","seq":{seq},"event":"new_notification","data":{{"id":"n{seq}"}}}}"#
            ),
        );
    }
    let seqs: Vec<u64> = events(&mut conn)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { seq, .. } => seq,
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(conn.stats().duplicates_dropped, 2);
}

#[test]
fn event_acks_are_batched_by_time() {
    let (mut conn, socket) = live();
    frame(
        &mut conn,
        at(100),
        socket,
        r#"{"type":"event","seq":1,"event":"x"}"#,
    );
    frame(
        &mut conn,
        at(150),
        socket,
        r#"{"type":"event","seq":2,"event":"x"}"#,
    );
    assert_eq!(frames(&actions(&mut conn)), Vec::<serde_json::Value>::new());
    assert_eq!(conn.poll_timeout(), Some(at(300)));
    conn.handle_input(at(300), Input::Timeout);
    assert_eq!(frames(&actions(&mut conn)), [json!({"type":"ack","seq":2})]);
}

#[test]
fn event_acks_go_at_once_when_the_batch_fills() {
    let (mut conn, socket) = live();
    for seq in 1..=32 {
        frame(
            &mut conn,
            at(1),
            socket,
            &format!(r#"{{"type":"event","seq":{seq},"event":"x"}}"#),
        );
    }
    assert_eq!(
        frames(&actions(&mut conn)),
        [json!({"type":"ack","seq":32})]
    );
}

#[test]
fn a_failed_resume_resets_the_inbox_and_tells_the_app() {
    let (mut conn, socket) = live();
    frame(
        &mut conn,
        at(1),
        socket,
        r#"{"type":"event","seq":1,"event":"x"}"#,
    );
    close(&mut conn, at(2), socket, 1006);
    let (_, next_at) = reconnecting_at(&conn);
    conn.handle_input(next_at, Input::Timeout);
    let (socket, _) = finish_connect(&mut conn, next_at, "s2", false);
    assert!(events(&mut conn).contains(&Event::ResumeFailed));
    // Seq 1 of the new session is new, not a duplicate.
    frame(
        &mut conn,
        next_at,
        socket,
        r#"{"type":"event","seq":1,"event":"x"}"#,
    );
    assert!(matches!(
        events(&mut conn).as_slice(),
        [Event::Message { seq: Some(1), .. }]
    ));
}

#[test]
fn request_timeout_reports_and_removes_the_send() {
    let (mut conn, socket) = live();
    let id = conn
        .request(
            at(0),
            "get_unread_count",
            &payload(json!({})),
            Some(Duration::from_secs(2)),
        )
        .unwrap();
    conn.handle_input(at(2_000), Input::Timeout);
    assert_eq!(
        events(&mut conn),
        [Event::Ack {
            id,
            result: Err(AckError::Timeout { timeout_ms: 2_000 })
        }]
    );
    assert!(!conn.is_pending(id));
    frame(
        &mut conn,
        at(2_001),
        socket,
        r#"{"type":"ack","id":1,"ok":true}"#,
    );
    assert_eq!(events(&mut conn), [], "a late ack is ignored");
}

#[test]
fn a_forbidden_room_is_reported_and_dropped_from_the_set() {
    let (mut conn, socket) = live();
    conn.join(at(1), "user:bob");
    frame(
        &mut conn,
        at(2),
        socket,
        r#"{"type":"ack","id":1,"ok":false,"error":{"code":"forbidden","message":"not yours"}}"#,
    );
    assert_eq!(
        events(&mut conn),
        [Event::Error(ClientError::Room {
            room: "user:bob".into(),
            code: "forbidden".into(),
            message: "not yours".into()
        })]
    );
    assert_eq!(conn.rooms().count(), 0);
}

#[test]
fn leave_sends_leave_room_and_shrinks_the_set() {
    let (mut conn, _) = live();
    conn.join(at(1), "chat:1");
    conn.leave(at(2), "chat:1");
    conn.leave(at(3), "chat:1");
    let sent = frames(&actions(&mut conn));
    let events: Vec<_> = sent.iter().map(|f| f["event"].clone()).collect();
    assert_eq!(events, [json!("join_room"), json!("leave_room")]);
    assert_eq!(conn.rooms().count(), 0);
}

#[test]
fn inputs_for_a_stale_socket_are_ignored() {
    let (mut conn, old) = live();
    close(&mut conn, at(1), old, 1006);
    let (_, next_at) = reconnecting_at(&conn);
    conn.handle_input(next_at, Input::Timeout);
    let (_, _) = finish_connect(&mut conn, next_at, "s1", true);
    events(&mut conn);
    close(&mut conn, next_at, old, 1006);
    frame(
        &mut conn,
        next_at,
        old,
        r#"{"type":"event","seq":9,"event":"x"}"#,
    );
    assert!(conn.state().is_connected());
    assert_eq!(events(&mut conn), []);
}

#[test]
fn a_stale_token_answer_is_ignored() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    actions(&mut conn);
    conn.handle_input(
        at(1),
        Input::TokenFetched(sockline::core::RequestId(99), Ok("x".into())),
    );
    assert_eq!(actions(&mut conn), []);
}

#[test]
fn a_bad_frame_is_reported_and_the_link_stays() {
    let (mut conn, socket) = live();
    frame(&mut conn, at(1), socket, "{not json");
    assert!(matches!(
        events(&mut conn).as_slice(),
        [Event::Error(ClientError::BadFrame(_))]
    ));
    assert!(conn.state().is_connected());
}

#[test]
fn a_server_error_frame_becomes_an_error_event() {
    let (mut conn, socket) = live();
    frame(
        &mut conn,
        at(1),
        socket,
        r#"{"type":"error","code":"rate_limited","message":"slow down"}"#,
    );
    assert_eq!(
        events(&mut conn),
        [Event::Error(ClientError::Server {
            code: "rate_limited".into(),
            message: "slow down".into()
        })]
    );
}

#[test]
fn stats_count_frames_and_time_in_state() {
    let (mut conn, socket) = live();
    frame(&mut conn, at(500), socket, r#"{"type":"ping","t":1}"#);
    let stats = conn.stats();
    assert_eq!(stats.state, "connected");
    assert_eq!(stats.time_in_state, Duration::from_millis(500));
    assert_eq!(stats.frames_in, 2, "authenticated + ping");
    assert_eq!(stats.frames_out, 2, "auth + pong");
}

#[test]
fn disconnect_fails_pending_requests_first_and_refuses_new_ones() {
    let (mut conn, _) = live();
    let request = conn
        .request(at(0), "x", &Payload::null(), Some(Duration::from_secs(1)))
        .unwrap();
    let plain = conn.send(at(0), "x", &Payload::null()).unwrap();
    conn.disconnect(at(10));
    let evs = events(&mut conn);
    assert_eq!(
        evs[0],
        Event::Ack {
            id: request,
            result: Err(AckError::Disconnected)
        }
    );
    assert_eq!(states(&evs), ["disconnected"]);
    assert_eq!(evs.len(), 2, "nothing else: {evs:?}");
    assert!(!conn.is_pending(request));
    assert!(
        conn.is_pending(plain),
        "plain sends wait for the next connect()"
    );
    assert_eq!(
        conn.request(at(20), "x", &Payload::null(), Some(Duration::from_secs(1))),
        Err(SendError::Disconnected)
    );
    conn.handle_input(at(5_000), Input::Timeout);
    assert_eq!(events(&mut conn), [], "no event after disconnect()");
    conn.connect(at(6_000));
    assert!(conn
        .request(
            at(6_000),
            "x",
            &Payload::null(),
            Some(Duration::from_secs(1))
        )
        .is_ok());
}

#[test]
fn a_pending_pause_does_not_overwrite_an_auth_rejection() {
    let mut cfg = config();
    cfg.hidden_grace = Duration::from_secs(5);
    let mut conn = Connection::new(cfg, Instant::ZERO);
    conn.connect(Instant::ZERO);
    let (socket, _) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    conn.handle_input(at(0), Input::Env(Env::Hidden));
    close(&mut conn, at(1_000), socket, 4001);
    conn.handle_input(at(5_000), Input::Timeout);
    assert!(matches!(
        conn.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::AuthRejected { .. }
        }
    ));
    // Visible again does not retry a rejected token.
    conn.handle_input(at(6_000), Input::Env(Env::Visible));
    assert!(matches!(
        conn.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::AuthRejected { .. }
        }
    ));
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn online_or_visible_during_backoff_retries_at_once_but_keeps_the_count() {
    let (mut conn, socket) = live();
    close(&mut conn, at(10), socket, 1006);
    assert_eq!(reconnecting_at(&conn).0, 1);
    for (n, env) in [Env::Visible, Env::Online].into_iter().enumerate() {
        let now = at(20 + n as u64);
        conn.handle_input(now, Input::Env(env));
        assert_eq!(
            conn.state(),
            &ConnectionState::Connecting {
                attempt: n as u32 + 1
            }
        );
        // It fails again: the next retry is n + 2, not 1 — tab switching cannot reset the count.
        let socket = answer_token(&mut conn, now);
        close(&mut conn, now, socket, 1006);
        assert_eq!(reconnecting_at(&conn).0, n as u32 + 2);
    }
}

#[test]
fn connect_while_hidden_pauses_until_visible() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Env(Env::Hidden));
    conn.connect(at(1));
    assert_eq!(actions(&mut conn), []);
    assert_eq!(
        conn.state(),
        &ConnectionState::Disconnected {
            reason: DisconnectReason::Paused
        }
    );
    conn.handle_input(at(2), Input::Env(Env::Visible));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
}

#[test]
fn connect_after_disconnect_while_hidden_pauses_instead_of_staying_stopped() {
    let (mut conn, _) = live();
    conn.handle_input(at(1), Input::Env(Env::Hidden));
    conn.disconnect(at(2));
    conn.connect(at(3));
    assert_eq!(
        conn.state(),
        &ConnectionState::Disconnected {
            reason: DisconnectReason::Paused
        }
    );
    conn.handle_input(at(4), Input::Env(Env::Visible));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
}

#[test]
fn going_offline_while_connected_counts_as_a_lost_link() {
    let (mut conn, _) = live();
    conn.handle_input(at(10), Input::Env(Env::Offline));
    assert_eq!(conn.stats().reconnects, 1);
    assert_eq!(conn.last_error(), Some(&LinkError::Offline));
}

#[test]
fn payloads_are_validated_as_they_will_sit_in_their_frame() {
    // The frame adds one level: 126 levels of payload make a 127-deep frame (accepted), 127 do not.
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(Payload::from_json(nested(126)).is_ok());
    assert!(Payload::from_json(nested(127)).is_err());
    assert!(Payload::from_json("{\"a\": [1, 2.5e3, \"\\u00e9\"]}").is_ok());
    assert!(Payload::from_json("{\"a\": }").is_err());
}

#[test]
fn a_rate_limited_send_is_retried_in_place_with_its_id_and_nothing_overtakes_it() {
    let (mut conn, socket) = live();
    let a = conn
        .send(at(0), "message", &payload(json!({"n": 1})))
        .unwrap();
    let b = conn
        .send(at(0), "message", &payload(json!({"n": 2})))
        .unwrap();
    actions(&mut conn);
    frame(
        &mut conn,
        at(10),
        socket,
        r#"{"type":"ack","id":1,"ok":false,"error":{"code":"rate_limited","message":"not processed","retry_after_ms":500}}"#,
    );
    // Sent meanwhile: it waits behind the refused one.
    let c = conn
        .send(at(20), "message", &payload(json!({"n": 3})))
        .unwrap();
    frame(
        &mut conn,
        at(30),
        socket,
        r#"{"type":"ack","id":2,"ok":false,"error":{"code":"rate_limited","message":"not processed","retry_after_ms":500}}"#,
    );
    assert_eq!(
        events(&mut conn),
        [],
        "a refused send is not reported failed"
    );
    assert_eq!(frames(&actions(&mut conn)), Vec::<serde_json::Value>::new());
    assert!(conn.is_pending(a) && conn.is_pending(b) && conn.is_pending(c));
    assert_eq!(conn.poll_timeout(), Some(at(530)), "the later hint wins");
    conn.handle_input(at(530), Input::Timeout);
    assert_eq!(
        frames(&actions(&mut conn)),
        [
            json!({"type":"send","id":1,"event":"message","data":{"n":1}}),
            json!({"type":"send","id":2,"event":"message","data":{"n":2}}),
            json!({"type":"send","id":3,"event":"message","data":{"n":3}}),
        ]
    );
    for id in 1..=3 {
        frame(
            &mut conn,
            at(540),
            socket,
            &format!(r#"{{"type":"ack","id":{id},"ok":true}}"#),
        );
    }
    let acked: Vec<SendId> = events(&mut conn)
        .into_iter()
        .map(|e| match e {
            Event::Ack { id, result: Ok(_) } => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(acked, [a, b, c]);
}

#[test]
fn a_send_processed_despite_a_refusal_ahead_of_it_is_settled_not_resent() {
    let (mut conn, socket) = live();
    conn.send(at(0), "message", &payload(json!({"n": 1})))
        .unwrap();
    let b = conn
        .send(at(0), "message", &payload(json!({"n": 2})))
        .unwrap();
    actions(&mut conn);
    frame(
        &mut conn,
        at(10),
        socket,
        r#"{"type":"ack","id":1,"ok":false,"error":{"code":"rate_limited","message":""}}"#,
    );
    frame(
        &mut conn,
        at(10),
        socket,
        r#"{"type":"ack","id":2,"ok":true}"#,
    );
    assert_eq!(
        events(&mut conn),
        [Event::Ack {
            id: b,
            result: Ok(None)
        }]
    );
    // No hint: the configured 1 s.
    conn.handle_input(at(1_010), Input::Timeout);
    assert_eq!(
        frames(&actions(&mut conn)),
        [json!({"type":"send","id":1,"event":"message","data":{"n":1}})]
    );
}

// ---- decisions the drivers used to make (issue 9) -------------------------------------------

#[test]
fn a_binary_frame_is_reported_as_binary_frame_and_the_link_stays_up() {
    let (mut conn, socket) = live();
    conn.handle_input(at(10), Input::Transport(socket, Transport::Binary));
    assert_eq!(events(&mut conn), [Event::Error(ClientError::BinaryFrame)]);
    assert!(conn.state().is_connected());
    assert_eq!(actions(&mut conn), []);
    // It is traffic: the heartbeat deadline moved.
    assert_eq!(conn.poll_timeout(), Some(at(40_010)));
}

#[test]
fn a_static_token_opens_the_socket_without_a_token_fetch() {
    let mut config = config();
    config.token = Some(StaticToken::new("static"));
    let mut conn = Connection::new(config, Instant::ZERO);
    conn.connect(Instant::ZERO);
    let acts = actions(&mut conn);
    let [Action::OpenSocket { socket, .. }] = acts.as_slice() else {
        panic!("expected only OpenSocket, got {acts:?}");
    };
    conn.handle_input(Instant::ZERO, Input::Transport(*socket, Transport::Opened));
    assert_eq!(
        frames(&actions(&mut conn)),
        [json!({"type":"auth","v":1,"token":"static"})]
    );
}

#[test]
fn every_transition_carries_its_cause() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let (socket, _) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    close(&mut conn, at(10), socket, 1006);
    conn.handle_input(at(5_000), Input::Timeout);
    let socket = answer_token(&mut conn, at(5_000));
    conn.handle_input(at(5_000), Input::Env(Env::Offline));
    conn.handle_input(at(6_000), Input::Env(Env::Online));
    answer_token(&mut conn, at(6_000));
    conn.handle_input(at(6_000), Input::Env(Env::Hidden));
    conn.handle_input(at(7_000), Input::Env(Env::Visible));
    conn.disconnect(at(8_000));
    let causes: Vec<(&str, String)> = events(&mut conn)
        .into_iter()
        .filter_map(|e| match e {
            Event::StateChanged { to, cause, .. } => Some((to.name(), cause.code().to_owned())),
            _ => None,
        })
        .collect();
    let _ = socket;
    assert_eq!(
        causes,
        [
            ("connecting", "connect"),
            ("authenticating", "socket_open"),
            ("connected", "authenticated"),
            ("reconnecting", "socket_closed"),
            ("connecting", "retry"),
            ("reconnecting", "offline"),
            ("connecting", "online"),
            ("disconnected", "paused"),
            ("connecting", "visible"),
            ("disconnected", "requested"),
        ]
        .map(|(s, c)| (s, c.to_owned()))
    );
}

#[test]
fn the_reconnecting_cause_carries_the_failure() {
    let (mut conn, socket) = live();
    close(&mut conn, at(10), socket, 1011);
    let evs = events(&mut conn);
    let [Event::StateChanged { cause, .. }] = evs.as_slice() else {
        panic!("{evs:?}");
    };
    assert_eq!(
        cause,
        &Cause::Lost(LinkError::Closed {
            code: 1011,
            reason: "test".into()
        })
    );
    assert_eq!(cause.to_string(), "socket closed (1011): test");
}

#[test]
fn a_volatile_event_is_delivered_once_and_never_acked() {
    let (mut conn, socket) = live();
    for _ in 0..40 {
        frame(
            &mut conn,
            at(10),
            socket,
            r#"{"type":"event","event":"typing_update","data":{"typing":true}}"#,
        );
    }
    let evs = events(&mut conn);
    assert_eq!(evs.len(), 40);
    assert!(evs
        .iter()
        .all(|e| matches!(e, Event::Message { seq: None, .. })));
    conn.handle_input(at(1_000), Input::Timeout);
    assert_eq!(frames(&actions(&mut conn)), Vec::<serde_json::Value>::new());
    assert_eq!(conn.stats().duplicates_dropped, 0);
}

#[test]
fn a_request_without_a_timeout_uses_the_configured_default() {
    let mut config = config();
    config.request_timeout = Duration::from_millis(1_234);
    let mut conn = Connection::new(config, Instant::ZERO);
    let id = conn.request(at(0), "x", &Payload::null(), None).unwrap();
    conn.handle_input(at(1_233), Input::Timeout);
    assert_eq!(events(&mut conn), []);
    conn.handle_input(at(1_234), Input::Timeout);
    assert_eq!(
        events(&mut conn),
        [Event::Ack {
            id,
            result: Err(AckError::Timeout { timeout_ms: 1_234 })
        }]
    );
}

// ---- reconnect() and retrying forever (issue 13) ---------------------------------------------

#[test]
fn reconnect_replaces_a_live_link_now_and_keeps_sends_and_requests() {
    let (mut conn, socket) = live();
    let sent = conn.send(at(1), "message", &payload(json!({}))).unwrap();
    let asked = conn
        .request(at(1), "get_unread_count", &payload(json!({})), None)
        .unwrap();
    actions(&mut conn);
    conn.reconnect(at(2));
    let acts = actions(&mut conn);
    assert!(acts.contains(&Action::CloseSocket {
        socket,
        code: 1000,
        reason: "restarting".into()
    }));
    assert!(acts.iter().any(|a| matches!(a, Action::FetchToken { .. })));
    let evs = events(&mut conn);
    assert!(matches!(
        evs.as_slice(),
        [Event::StateChanged {
            to: ConnectionState::Connecting { attempt: 0 },
            cause: Cause::Reconnect,
            ..
        }]
    ));
    // Nothing failed: both go out again on the new link under their ids.
    assert!(conn.is_pending(sent) && conn.is_pending(asked));
    let request = RequestId(2);
    conn.handle_input(at(2), Input::TokenFetched(request, Ok("tok".into())));
    let Some(Action::OpenSocket { socket, .. }) = conn.poll_action() else {
        panic!("expected OpenSocket")
    };
    conn.handle_input(at(2), Input::Transport(socket, Transport::Opened));
    actions(&mut conn);
    frame(&mut conn, at(3), socket, &authenticated("s1", true));
    let ids: Vec<serde_json::Value> = frames(&actions(&mut conn))
        .into_iter()
        .map(|f| f["id"].clone())
        .collect();
    assert_eq!(ids, [json!(sent.0), json!(asked.0)]);
    assert_eq!(conn.stats().reconnects, 1);
}

#[test]
fn reconnect_runs_a_scheduled_retry_now_with_the_backoff_reset() {
    let (mut conn, socket) = live();
    close(&mut conn, at(1), socket, 1006);
    close_all_retries(&mut conn, 3);
    assert!(matches!(
        conn.state(),
        ConnectionState::Reconnecting { attempt: 4, .. }
    ));
    conn.reconnect(at(100_000));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
}

#[test]
fn reconnect_starts_a_stopped_client() {
    let (mut conn, _) = live();
    conn.disconnect(at(1));
    conn.reconnect(at(2));
    assert_eq!(conn.state(), &ConnectionState::Connecting { attempt: 0 });
}

#[test]
fn max_retries_none_never_gives_up() {
    let mut config = config();
    config.backoff.max_retries = None;
    config.backoff.max = Duration::from_secs(2);
    let mut conn = Connection::new(config, Instant::ZERO);
    conn.connect(Instant::ZERO);
    let mut now = 0;
    for _ in 0..200 {
        let socket = answer_token(&mut conn, at(now));
        conn.handle_input(
            at(now),
            Input::Transport(socket, Transport::Error("refused".into())),
        );
        let next = conn.poll_timeout().expect("a retry is always scheduled");
        assert!(next.as_millis() - now <= 2_000, "capped at max");
        now = next.as_millis();
        conn.handle_input(at(now), Input::Timeout);
    }
    assert!(matches!(
        conn.state(),
        ConnectionState::Connecting { attempt: 200 }
    ));
}

/// Fails `n` more connection attempts (each: the retry fires, the token comes, the socket fails).
fn close_all_retries(conn: &mut Connection, n: usize) {
    for _ in 0..n {
        let next = conn.poll_timeout().expect("a retry is scheduled");
        conn.handle_input(next, Input::Timeout);
        let socket = answer_token(conn, next);
        conn.handle_input(
            next,
            Input::Transport(socket, Transport::Error("refused".into())),
        );
    }
}
