//! Script tests of the guarantees that hold past one session (PROTOCOL.md §5–§7): the client id
//! in `auth`, send ids that are never renumbered, paced flushes, a contiguous inbox, and the
//! token lifecycle (expired → refetch, in-band refresh, 4002). Native and wasm32.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[path = "support/core.rs"]
mod support;

use serde_json::{json, Value};
use sockline::core::{
    Action, Cause, Connection, ConnectionState, DisconnectReason, Event, Input, Instant, LinkError,
    RequestId, StaticToken, Transport,
};
use sockline::ClientError;
use support::*;

fn authenticated_with(session: &str, extra: &str) -> String {
    format!(
        r#"{{"type":"authenticated","user_id":"u1","session":"{session}","heartbeat_ms":30000,"resumed":false{extra}}}"#
    )
}

fn fetch_request(actions: &[Action]) -> Option<RequestId> {
    actions.iter().find_map(|a| match a {
        Action::FetchToken { request } => Some(*request),
        _ => None,
    })
}

fn auth_frame(actions: &[Action]) -> Value {
    frames(actions)
        .into_iter()
        .find(|f| f["type"] == "auth")
        .expect("an auth frame")
}

#[test]
fn auth_carries_the_client_id_when_the_driver_gave_one() {
    let mut config = config();
    config.client_id = Some("client-0123456789ab".into());
    let mut conn = Connection::new(config, Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    assert_eq!(
        auth_frame(&actions(&mut conn)),
        json!({"type":"auth","v":1,"token":"tok","client":"client-0123456789ab"})
    );
}

#[test]
fn send_ids_keep_counting_across_sessions_and_failed_resumes() {
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
    let Some(next_at) = conn.poll_timeout() else {
        panic!("a retry is scheduled")
    };
    conn.handle_input(next_at, Input::Timeout);
    let (_, sent) = finish_connect(&mut conn, next_at, "s2", false);
    let ids: Vec<&Value> = sent.iter().map(|f| &f["id"]).collect();
    assert_eq!(
        ids,
        [2, 3],
        "unacked sends keep their ids after resumed:false"
    );
    let next = conn.send(next_at, "message", &payload(json!({}))).unwrap();
    assert_eq!(next.0, 4, "new sends continue the count");
}

#[test]
fn a_paced_flush_goes_out_at_the_servers_rate() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    for n in 0..5 {
        conn.send(at(0), "message", &payload(json!({ "n": n })))
            .unwrap();
    }
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    actions(&mut conn);
    let limits = r#","limits":{"sends_per_s":10,"burst":2}"#;
    frame(&mut conn, at(0), socket, &authenticated_with("s1", limits));
    assert_eq!(
        frames(&actions(&mut conn)).len(),
        2,
        "the burst goes at once"
    );
    let mut times = Vec::new();
    while let Some(at_) = conn.poll_timeout().filter(|t| t.as_millis() < 1_000) {
        conn.handle_input(at_, Input::Timeout);
        for f in frames(&actions(&mut conn)) {
            assert_eq!(f["type"], "send");
            times.push(at_.as_millis());
        }
    }
    assert_eq!(times, [100, 200, 300], "then one every 100 ms");
}

#[test]
fn no_limits_means_no_pacing() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    for n in 0..50 {
        conn.send(at(0), "message", &payload(json!({ "n": n })))
            .unwrap();
    }
    conn.connect(Instant::ZERO);
    let (_, sent) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    assert_eq!(sent.len(), 50);
}

#[test]
fn a_gap_is_reported_and_resumed_from_the_contiguous_point_at_once() {
    let (mut conn, socket) = live();
    frame(
        &mut conn,
        at(1),
        socket,
        r#"{"type":"event","seq":1,"event":"e"}"#,
    );
    frame(
        &mut conn,
        at(2),
        socket,
        r#"{"type":"event","seq":5,"event":"e"}"#,
    );
    let evs = events(&mut conn);
    assert!(matches!(evs[0], Event::Message { seq: Some(1), .. }));
    assert_eq!(
        evs[1],
        Event::Error(ClientError::SeqGap {
            expected: 2,
            got: 5
        })
    );
    assert!(matches!(
        &evs[2],
        Event::StateChanged {
            to: ConnectionState::Reconnecting { next_at: Some(t), .. },
            cause: Cause::Lost(LinkError::SeqGap { expected: 2, got: 5 }),
            ..
        } if *t == at(2)
    ));
    assert_eq!(evs.len(), 3, "seq 5 is not delivered");
    // The ack never skips ahead: 1 is acknowledged, then the link closes.
    let acts = actions(&mut conn);
    assert_eq!(frames(&acts), [json!({"type":"ack","seq":1})], "{acts:?}");
    conn.handle_input(at(2), Input::Timeout);
    let socket = answer_token(&mut conn, at(2));
    conn.handle_input(at(2), Input::Transport(socket, Transport::Opened));
    assert_eq!(
        auth_frame(&actions(&mut conn))["resume"],
        json!({"session":"s1","seq":1})
    );
}

#[test]
fn a_seq_out_of_range_is_a_bad_frame() {
    let (mut conn, socket) = live();
    for seq in ["0", "9007199254740992", "18446744073709551615", "1.0"] {
        frame(
            &mut conn,
            at(1),
            socket,
            &format!(r#"{{"type":"event","seq":{seq},"event":"e"}}"#),
        );
        assert!(
            matches!(
                events(&mut conn).as_slice(),
                [Event::Error(ClientError::BadFrame(_))]
            ),
            "{seq}"
        );
    }
    assert!(conn.state().is_connected());
    frame(
        &mut conn,
        at(1),
        socket,
        r#"{"type":"event","seq":1,"event":"e"}"#,
    );
    assert!(matches!(
        events(&mut conn).as_slice(),
        [Event::Message { seq: Some(1), .. }]
    ));
}

#[test]
fn an_expired_token_is_refetched_and_retried_at_once() {
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
        r#"{"type":"auth_error","code":"expired","message":"the token has expired"}"#,
    );
    assert_eq!(
        conn.state(),
        &ConnectionState::Reconnecting {
            attempt: 1,
            next_at: Some(at(10))
        }
    );
    conn.handle_input(at(10), Input::Timeout);
    let request = fetch_request(&actions(&mut conn)).expect("a fresh token is fetched");
    conn.handle_input(at(10), Input::TokenFetched(request, Ok("fresh".into())));
    let Some(Action::OpenSocket { socket, .. }) = conn.poll_action() else {
        panic!("expected OpenSocket");
    };
    conn.handle_input(at(10), Input::Transport(socket, Transport::Opened));
    assert_eq!(auth_frame(&actions(&mut conn))["token"], "fresh");
}

#[test]
fn the_same_expired_token_again_is_final() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    frame(
        &mut conn,
        at(10),
        socket,
        r#"{"type":"auth_error","code":"expired","message":""}"#,
    );
    conn.handle_input(at(10), Input::Timeout);
    actions(&mut conn);
    // `answer_token` answers "tok" again: the token that just expired.
    let request = RequestId(2);
    conn.handle_input(at(10), Input::TokenFetched(request, Ok("tok".into())));
    assert!(matches!(
        conn.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::AuthRejected { code, .. }
        } if code == "expired"
    ));
}

#[test]
fn a_static_token_that_expired_is_final_without_a_retry_loop() {
    let mut config = config();
    config.token = Some(StaticToken::new("tok"));
    let mut conn = Connection::new(config, Instant::ZERO);
    conn.connect(Instant::ZERO);
    let (socket, _) = {
        let acts = actions(&mut conn);
        let socket = acts
            .iter()
            .find_map(|a| match a {
                Action::OpenSocket { socket, .. } => Some(*socket),
                _ => None,
            })
            .unwrap();
        (socket, acts)
    };
    conn.handle_input(at(0), Input::Transport(socket, Transport::Opened));
    frame(&mut conn, at(0), socket, &authenticated("s1", false));
    close(&mut conn, at(100), socket, 4002);
    conn.handle_input(at(100), Input::Timeout);
    assert!(matches!(
        conn.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::AuthRejected { code, .. }
        } if code == "expired"
    ));
}

#[test]
fn close_4002_reconnects_at_once_with_a_fresh_token() {
    let (mut conn, socket) = live();
    close(&mut conn, at(100), socket, 4002);
    let evs = events(&mut conn);
    assert!(matches!(
        evs.as_slice(),
        [Event::StateChanged {
            to: ConnectionState::Reconnecting { next_at: Some(t), .. },
            cause: Cause::Lost(LinkError::TokenExpired),
            ..
        }] if *t == at(100)
    ));
    conn.handle_input(at(100), Input::Timeout);
    assert!(fetch_request(&actions(&mut conn)).is_some());
}

#[test]
fn the_token_is_refreshed_in_band_before_it_expires() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    actions(&mut conn);
    // A 60 s token: 10 % of its life (6 s) is less than the 30 s margin. (A long heartbeat so
    // the link is not judged dead meanwhile.)
    frame(
        &mut conn,
        at(0),
        socket,
        r#"{"type":"authenticated","user_id":"u1","session":"s1","heartbeat_ms":3600000,"resumed":false,"expires_in_ms":60000}"#,
    );
    conn.handle_input(at(53_999), Input::Timeout);
    assert_eq!(fetch_request(&actions(&mut conn)), None);
    conn.handle_input(at(54_000), Input::Timeout);
    let request = fetch_request(&actions(&mut conn)).expect("the refresh fetch");
    conn.handle_input(at(54_010), Input::TokenFetched(request, Ok("fresh".into())));
    assert_eq!(
        frames(&actions(&mut conn)),
        [json!({"type":"refresh","token":"fresh"})]
    );
    assert!(conn.state().is_connected(), "the socket stays up");
    // Accepted: the next refresh is armed for the new token (10 min: margin 30 s).
    frame(
        &mut conn,
        at(54_020),
        socket,
        r#"{"type":"refreshed","expires_in_ms":600000}"#,
    );
    conn.handle_input(at(54_020 + 569_999), Input::Timeout);
    assert_eq!(fetch_request(&actions(&mut conn)), None);
    conn.handle_input(at(54_020 + 570_000), Input::Timeout);
    assert!(fetch_request(&actions(&mut conn)).is_some());
}

#[test]
fn a_refresh_refused_for_another_user_is_final() {
    let (mut conn, socket) = live();
    frame(
        &mut conn,
        at(5),
        socket,
        r#"{"type":"auth_error","code":"user_mismatch","message":"a refresh may not change the user"}"#,
    );
    assert!(matches!(
        conn.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::AuthRejected { code, .. }
        } if code == "user_mismatch"
    ));
}

// ---- restoring what an earlier life of the client left (durable outbox, tab failover) ---------

#[test]
fn restored_sends_go_first_in_id_order_and_new_ids_continue_above_them() {
    let mut config = config();
    config.first_send_id = 10;
    let mut conn = Connection::new(config, Instant::ZERO);
    let fresh = conn
        .send(at(0), "message", &payload(json!({"n": "new"})))
        .unwrap();
    assert_eq!(fresh.0, 10);
    for id in [7, 4] {
        conn.restore_send(
            at(0),
            sockline::core::SendId(id),
            "message",
            &payload(json!({ "n": id })),
            None,
        )
        .unwrap();
    }
    assert_eq!(
        conn.restore_send(
            at(0),
            sockline::core::SendId(7),
            "message",
            &payload(json!({})),
            None
        ),
        Err(sockline::SendError::InvalidId),
        "an id already queued"
    );
    conn.connect(Instant::ZERO);
    let (_, sent) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    let ids: Vec<&Value> = sent.iter().map(|f| &f["id"]).collect();
    assert_eq!(ids, [4, 7, 10]);
    assert_eq!(conn.next_send_id().0, 11);
}

#[test]
fn a_restored_send_for_another_user_is_never_sent_in_this_users_name() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    let id = sockline::core::SendId(3);
    conn.restore_send(at(0), id, "message", &payload(json!({})), Some("alice"))
        .unwrap();
    conn.restore_send(
        at(0),
        sockline::core::SendId(4),
        "message",
        &payload(json!({})),
        Some("u1"),
    )
    .unwrap();
    conn.connect(Instant::ZERO);
    // `finish_connect` authenticates as u1.
    let (_, sent) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    let ids: Vec<&Value> = sent.iter().map(|f| &f["id"]).collect();
    assert_eq!(ids, [4], "alice's send stays unsent");
    assert!(events(&mut conn).contains(&Event::Ack {
        id,
        result: Err(sockline::AckError::OtherUser)
    }));
    assert!(!conn.is_pending(id));
    assert_eq!(conn.user(), Some("u1"));
}

#[test]
fn resume_from_a_point_an_earlier_life_persisted() {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.resume_from(sockline::protocol::ResumePoint {
        session: "s-old".into(),
        seq: 41,
    });
    conn.connect(Instant::ZERO);
    let socket = answer_token(&mut conn, Instant::ZERO);
    conn.handle_input(Instant::ZERO, Input::Transport(socket, Transport::Opened));
    assert_eq!(
        auth_frame(&actions(&mut conn))["resume"],
        json!({"session":"s-old","seq":41})
    );
    frame(
        &mut conn,
        at(0),
        socket,
        r#"{"type":"authenticated","user_id":"u1","session":"s-old","heartbeat_ms":30000,"resumed":true,"missed":1}"#,
    );
    frame(
        &mut conn,
        at(0),
        socket,
        r#"{"type":"event","seq":42,"event":"e"}"#,
    );
    let evs = events(&mut conn);
    assert!(evs.contains(&Event::Resumed { missed: 1 }));
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::Message { seq: Some(42), .. })));
    assert_eq!(
        conn.resume_point(),
        Some(sockline::protocol::ResumePoint {
            session: "s-old".into(),
            seq: 42
        })
    );
}
