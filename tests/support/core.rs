//! Script helpers for the core's tests: drain outputs, drive a connection to `connected`.
#![allow(dead_code)]

use serde_json::Value;
use sockline::core::{Action, Connection, Event, Input, Instant, Payload, SocketId, Transport};
use sockline::ConnectionConfig;

pub const URL: &str = "ws://test.invalid/ws";

pub fn config() -> ConnectionConfig {
    let mut config = ConnectionConfig::new(URL);
    config.seed = 7;
    config
}

pub fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

pub fn actions(conn: &mut Connection) -> Vec<Action> {
    std::iter::from_fn(|| conn.poll_action()).collect()
}

pub fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// `value` as a send payload (compact JSON text, as the server would send it back).
pub fn payload(value: Value) -> Payload {
    Payload::from_json(value.to_string()).expect("a Value encodes to valid JSON")
}

/// Only the state names of the `StateChanged` events, in order.
pub fn states(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged { to, .. } => Some(to.name()),
            _ => None,
        })
        .collect()
}

/// The text of every `SendFrame` action, in order.
pub fn frames(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendFrame { text, .. } => Some(serde_json::from_str(text).expect("json frame")),
            _ => None,
        })
        .collect()
}

pub fn authenticated(session: &str, resumed: bool) -> String {
    format!(
        r#"{{"type":"authenticated","user_id":"u1","session":"{session}","heartbeat_ms":30000,"resumed":{resumed}}}"#
    )
}

pub fn frame(conn: &mut Connection, now: Instant, socket: SocketId, text: &str) {
    conn.handle_input(now, Input::Transport(socket, Transport::Frame(text.into())));
}

pub fn close(conn: &mut Connection, now: Instant, socket: SocketId, code: u16) {
    conn.handle_input(
        now,
        Input::Transport(
            socket,
            Transport::Closed {
                code,
                reason: "test".into(),
            },
        ),
    );
}

/// Answers the pending `FetchToken` with `token` and returns the socket it opens.
pub fn answer_token(conn: &mut Connection, now: Instant) -> SocketId {
    let acts = actions(conn);
    let request = acts
        .iter()
        .find_map(|a| match a {
            Action::FetchToken { request } => Some(*request),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no FetchToken in {acts:?}"));
    conn.handle_input(now, Input::TokenFetched(request, Ok("tok".into())));
    match conn.poll_action() {
        Some(Action::OpenSocket { socket, .. }) => socket,
        other => panic!("expected OpenSocket, got {other:?}"),
    }
}

/// From a pending `FetchToken`, goes all the way to `connected` with `session`; returns the
/// socket and the frames sent after `auth`.
pub fn finish_connect(
    conn: &mut Connection,
    now: Instant,
    session: &str,
    resumed: bool,
) -> (SocketId, Vec<Value>) {
    let socket = answer_token(conn, now);
    conn.handle_input(now, Input::Transport(socket, Transport::Opened));
    let auth = frames(&actions(conn));
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0]["type"], "auth");
    frame(conn, now, socket, &authenticated(session, resumed));
    (socket, frames(&actions(conn)))
}

/// A fresh connection, connected at `t = 0` with session `s1`; outputs drained.
pub fn live() -> (Connection, SocketId) {
    let mut conn = Connection::new(config(), Instant::ZERO);
    conn.connect(Instant::ZERO);
    let (socket, _) = finish_connect(&mut conn, Instant::ZERO, "s1", false);
    events(&mut conn);
    (conn, socket)
}
