//! Property test of the core: random `(delay, input)` sequences never break its invariants.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use sockline::core::{
    Action, Connection, ConnectionState, Env, Event, Input, Instant, Payload, RequestId, SendId,
    SocketId, Transport,
};
use sockline::{AckError, ConnectionConfig};

#[derive(Debug, Clone)]
enum Step {
    Timeout,
    Connect,
    Disconnect,
    Send,
    Request(u64),
    Join(u8),
    Leave(u8),
    Env(u8),
    Token(bool),
    Opened,
    Closed(u16),
    Authenticated(bool),
    AuthError,
    Ack(u64, bool),
    Event(u64),
    Ping,
    Garbage,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Timeout),
        2 => Just(Step::Connect),
        1 => Just(Step::Disconnect),
        3 => Just(Step::Send),
        1 => (1u64..5_000).prop_map(Step::Request),
        1 => (0u8..3).prop_map(Step::Join),
        1 => (0u8..3).prop_map(Step::Leave),
        2 => (0u8..4).prop_map(Step::Env),
        3 => prop_oneof![4 => Just(true), 1 => Just(false)].prop_map(Step::Token),
        3 => Just(Step::Opened),
        2 => prop_oneof![Just(1000u16), Just(1001), Just(1006), Just(4000), Just(4001), Just(4008)].prop_map(Step::Closed),
        3 => any::<bool>().prop_map(Step::Authenticated),
        1 => Just(Step::AuthError),
        3 => (1u64..20, any::<bool>()).prop_map(|(id, ok)| Step::Ack(id, ok)),
        2 => (1u64..20).prop_map(Step::Event),
        1 => Just(Step::Ping),
        1 => Just(Step::Garbage),
    ]
}

struct World {
    conn: Connection,
    now: Instant,
    open: BTreeSet<SocketId>,
    current: Option<SocketId>,
    pending_token: Option<RequestId>,
    /// `disconnect()` was called and no `connect()` since.
    stopped: bool,
    accepted: Vec<SendId>,
    settled: BTreeSet<SendId>,
    max_delay: Duration,
    /// The last `now` the connection was given.
    fed: Instant,
}

impl World {
    fn drain(&mut self, after_disconnect_call: bool) -> Result<(), TestCaseError> {
        while let Some(action) = self.conn.poll_action() {
            match action {
                Action::OpenSocket { socket, .. } => {
                    self.open.insert(socket);
                    self.current = Some(socket);
                    prop_assert!(self.open.len() <= 1, "two sockets open: {:?}", self.open);
                }
                Action::CloseSocket { socket, .. } => {
                    self.open.remove(&socket);
                }
                Action::FetchToken { request } => self.pending_token = Some(request),
                Action::SendFrame { socket, .. } => {
                    prop_assert!(self.open.contains(&socket), "frame on a closed socket");
                }
                other => prop_assert!(false, "an action this test does not know: {:?}", other),
            }
        }
        while let Some(event) = self.conn.poll_event() {
            if self.stopped {
                // The disconnect() call itself reports its failed requests, then the change to
                // `disconnected`; after that, nothing.
                let from_the_call = after_disconnect_call
                    && matches!(
                        &event,
                        Event::StateChanged {
                            to: ConnectionState::Disconnected { .. },
                            ..
                        } | Event::Ack {
                            result: Err(AckError::Disconnected),
                            ..
                        }
                    );
                prop_assert!(from_the_call, "event after disconnect(): {event:?}");
            }
            match event {
                Event::Ack { id, .. } => {
                    prop_assert!(self.settled.insert(id), "{id:?} settled twice");
                }
                Event::StateChanged {
                    to:
                        ConnectionState::Reconnecting {
                            next_at: Some(at), ..
                        },
                    ..
                } => {
                    prop_assert!(at.saturating_duration_since(self.fed) <= self.max_delay);
                }
                _ => {}
            }
        }
        if let Some(next) = self.conn.poll_timeout() {
            prop_assert!(
                next >= self.fed,
                "timeout {next:?} before now {:?}",
                self.fed
            );
        }
        for id in &self.accepted {
            prop_assert!(
                self.settled.contains(id) || self.conn.is_pending(*id),
                "send {id:?} vanished"
            );
        }
        Ok(())
    }

    fn frame(&mut self, text: String) {
        if let Some(socket) = self.current {
            self.conn
                .handle_input(self.now, Input::Transport(socket, Transport::Frame(text)));
            self.fed = self.now;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_input_sequence(
        seed in any::<u64>(),
        steps in prop::collection::vec((0u64..40_000, step()), 1..120),
    ) {
        let mut config = ConnectionConfig::new("ws://x/ws");
        config.seed = seed;
        config.outbox_max_messages = 8;
        config.hidden_grace = Duration::from_millis(seed % 3 * 500);
        let max_delay = config.backoff.max;
        let mut w = World {
            conn: Connection::new(config, Instant::ZERO),
            now: Instant::ZERO,
            open: BTreeSet::new(),
            current: None,
            pending_token: None,
            stopped: false,
            accepted: Vec::new(),
            settled: BTreeSet::new(),
            max_delay,
            fed: Instant::ZERO,
        };
        for (delay, step) in steps {
            w.now = w.now + Duration::from_millis(delay);
            let now = w.now;
            let mut disconnect_call = false;
            match step {
                Step::Timeout => {
                    if let Some(at) = w.conn.poll_timeout() {
                        w.now = w.now.max(at);
                    }
                    w.conn.handle_input(w.now, Input::Timeout);
                    w.fed = w.now;
                }
                Step::Connect => {
                    w.stopped = false;
                    w.conn.connect(now);
                    w.fed = now;
                }
                Step::Disconnect => {
                    w.stopped = true;
                    disconnect_call = true;
                    w.conn.disconnect(now);
                    w.fed = now;
                }
                Step::Send => {
                    w.fed = now;
                    if let Ok(id) = w.conn.send(now, "message", &Payload::from_value(&json!({"t": now.as_millis()}))) {
                        w.accepted.push(id);
                    }
                }
                Step::Request(ms) => {
                    w.fed = now;
                    if let Ok(id) = w.conn.request(now, "x", &Payload::from_value(&json!({})), Some(Duration::from_millis(ms))) {
                        w.accepted.push(id);
                    }
                }
                Step::Join(n) => {
                    w.conn.join(now, &format!("chat:{n}"));
                    w.fed = now;
                }
                Step::Leave(n) => {
                    w.conn.leave(now, &format!("chat:{n}"));
                    w.fed = now;
                }
                Step::Env(n) => {
                    let env = [Env::Online, Env::Offline, Env::Visible, Env::Hidden][n as usize];
                    w.conn.handle_input(now, Input::Env(env));
                    w.fed = now;
                }
                Step::Token(ok) => {
                    if let Some(request) = w.pending_token.take() {
                        let result = if ok { Ok("t".to_string()) } else { Err("no".to_string()) };
                        w.conn.handle_input(now, Input::TokenFetched(request, result));
                        w.fed = now;
                    }
                }
                Step::Opened => {
                    if let Some(socket) = w.current {
                        w.conn.handle_input(now, Input::Transport(socket, Transport::Opened));
                        w.fed = now;
                    }
                }
                Step::Closed(code) => {
                    if let Some(socket) = w.current.take() {
                        w.open.remove(&socket);
                        w.conn.handle_input(
                            now,
                            Input::Transport(socket, Transport::Closed { code, reason: String::new() }),
                        );
                        w.fed = now;
                    }
                }
                Step::Authenticated(resumed) => w.frame(format!(
                    r#"{{"type":"authenticated","user_id":"u","session":"s{}","heartbeat_ms":1000,"resumed":{resumed}}}"#,
                    now.as_millis() % 3
                )),
                Step::AuthError => w.frame(r#"{"type":"auth_error","code":"invalid_token"}"#.into()),
                Step::Ack(id, ok) => w.frame(format!(r#"{{"type":"ack","id":{id},"ok":{ok}}}"#)),
                Step::Event(seq) => w.frame(format!(r#"{{"type":"event","seq":{seq},"event":"x"}}"#)),
                Step::Ping => w.frame(r#"{"type":"ping","t":5}"#.into()),
                Step::Garbage => w.frame("\u{0}{]".into()),
            }
            w.drain(disconnect_call)?;
        }
    }
}
