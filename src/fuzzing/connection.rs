//! The `core` check: a [`Connection`] driven by a [`Script`] decoded from the bytes (commands,
//! environment changes, token answers, socket events, server frames written by the protocol's
//! encoder and any text as a frame) keeps the invariants of `tests/core_properties.rs` after
//! every step, and a few more a driver relies on:
//!
//! - at most one socket is open, and frames go only to an open one;
//! - no reconnect delay is above the backoff's max; `poll_timeout()` is never in the past;
//! - after `disconnect()` nothing happens but what the call itself reports (requests failed
//!   with `Disconnected`, the change to `disconnected`, the close) until `connect()`;
//! - no accepted send vanishes: each is pending until it is settled, and settled once; an
//!   `ok` settlement only follows an `ok` ack from the server;
//! - durable events are delivered in seq order with no gap or repeat (per session; a resumed
//!   session continues, a new one starts at 1), and the resume point is the last delivered;
//! - every frame the core sends is one the server's decoder reads.

use std::collections::BTreeSet;
use std::time::Duration;

use super::script::{Script, Step};
use super::server::AUTH_ERROR_CODES;
use crate::core::{
    Action, Connection, ConnectionConfig, ConnectionState, Env, Event, Input, Instant, Payload,
    RequestId, SendId, SocketId, StaticToken, Transport,
};
use crate::protocol::{ClientFrame, ErrorBody, IncomingFrame, SendLimits, ServerFrame};
use crate::AckError;

/// Runs the check on one input.
pub fn core(data: &[u8]) {
    let script = Script::parse(data);
    let mut world = World::new(&script);
    for (delay, step) in &script.steps {
        let d = u64::from(*delay);
        world.now = world.now + Duration::from_millis(d * d * 4);
        world.step(step);
    }
}

struct World {
    conn: Connection,
    now: Instant,
    /// The last `now` the connection was given.
    fed: Instant,
    max_delay: Duration,
    max_frame: usize,
    open: BTreeSet<SocketId>,
    current: Option<SocketId>,
    /// The socket whose close is being fed now.
    closing: Option<SocketId>,
    /// Every socket the core asked to open.
    handed_out: BTreeSet<SocketId>,
    /// Sockets the transport reported open.
    opened: BTreeSet<SocketId>,
    /// Sockets the core has sent a frame on.
    talked: BTreeSet<SocketId>,
    /// The state the events drained so far left the connection in is `connected`.
    connected: bool,
    /// The send `restore_send` took in this step.
    restored: Option<SendId>,
    pending_token: Option<RequestId>,
    /// `disconnect()` was called and no `connect()` / `reconnect()` since.
    stopped: bool,
    accepted: BTreeSet<SendId>,
    settled: BTreeSet<SendId>,
    /// Send ids the server acked with `ok: true`.
    acked_ok: BTreeSet<u64>,
    /// The last durable seq delivered in the current session.
    delivered: u64,
    /// `delivered` before the last `connected`, in case it was a resume.
    before_connect: u64,
    sends: u64,
}

impl World {
    fn new(script: &Script) -> World {
        let bits = script.config;
        let mut config = ConnectionConfig::new("ws://fuzz.invalid/ws");
        config.seed = u64::from(script.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        config.outbox_max_messages = 8;
        if bits & 1 != 0 {
            config.token = Some(StaticToken::new("t"));
        }
        if bits & 2 != 0 {
            config.client_id = Some("fuzz-client-0123456789".into());
        }
        if bits & 4 != 0 {
            config.backoff.max_retries = None;
        }
        config.backoff.jitter = bits & 8 == 0;
        config.pause_when_hidden = bits & 16 == 0;
        if bits & 32 != 0 {
            config.ack_batch = 2;
        }
        config.hidden_grace = Duration::from_millis(u64::from(bits >> 6) * 500);
        World {
            max_delay: config.backoff.max,
            max_frame: config.max_frame_bytes,
            conn: Connection::new(config, Instant::ZERO),
            now: Instant::ZERO,
            fed: Instant::ZERO,
            open: BTreeSet::new(),
            current: None,
            closing: None,
            restored: None,
            handed_out: BTreeSet::new(),
            opened: BTreeSet::new(),
            talked: BTreeSet::new(),
            connected: false,
            pending_token: None,
            stopped: false,
            accepted: BTreeSet::new(),
            settled: BTreeSet::new(),
            acked_ok: BTreeSet::new(),
            delivered: 0,
            before_connect: 0,
            sends: 0,
        }
    }

    fn step(&mut self, step: &Step) {
        let now = self.now;
        let mut disconnect_call = false;
        match step {
            Step::Timeout => {
                if let Some(at) = self.conn.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.input(Input::Timeout);
            }
            Step::Connect => {
                self.stopped = false;
                self.fed = now;
                self.conn.connect(now);
            }
            Step::Reconnect => {
                self.stopped = false;
                self.fed = now;
                self.conn.reconnect(now);
            }
            Step::Disconnect => {
                self.stopped = true;
                disconnect_call = true;
                self.fed = now;
                self.conn.disconnect(now);
            }
            Step::Send(text) => self.send(text),
            Step::Request(n) => {
                self.fed = now;
                let timeout = Some(Duration::from_millis(u64::from(*n) * 100)).filter(|_| *n > 0);
                let data = Payload::null();
                if let Ok(id) = self.conn.request(now, "get_unread_count", &data, timeout) {
                    self.accepted.insert(id);
                }
            }
            Step::Join(n) => {
                self.fed = now;
                self.conn.join(now, &format!("chat:{}", n % 4));
            }
            Step::Leave(n) => {
                self.fed = now;
                self.conn.leave(now, &format!("chat:{}", n % 4));
            }
            Step::Env(n) => {
                let env =
                    [Env::Online, Env::Offline, Env::Visible, Env::Hidden][usize::from(n % 4)];
                self.input(Input::Env(env));
            }
            Step::Token(n) => {
                if let Some(request) = self.pending_token.take() {
                    let token = if n & 2 == 0 { "t" } else { "t2" };
                    let result = if n & 1 == 0 {
                        Ok(token.to_owned())
                    } else {
                        Err("no token".to_owned())
                    };
                    self.input(Input::TokenFetched(request, result));
                }
            }
            Step::Opened => self.transport(Transport::Opened),
            Step::Closed(code) => self.transport(Transport::Closed {
                code: *code,
                reason: String::new(),
            }),
            Step::TransportError => self.transport(Transport::Error("fuzz".into())),
            Step::Binary => self.transport(Transport::Binary),
            Step::Frame(text) => {
                self.transport(Transport::Frame(super::text(text).into_owned()));
            }
            Step::RestoreSend { id, owner } => {
                self.fed = now;
                let owner = [None, Some("u1"), Some("u2")][usize::from(owner % 3)];
                let id = SendId(u64::from(*id));
                let data = Payload::null();
                if self
                    .conn
                    .restore_send(now, id, "message", &data, owner)
                    .is_ok()
                {
                    self.accepted.insert(id);
                    self.restored = Some(id);
                }
            }
            Step::ResumeFrom { session, seq } => {
                let point = crate::protocol::ResumePoint {
                    session: format!("s{session}"),
                    seq: u64::from(*seq),
                };
                let had_session = self.conn.resume_point().is_some();
                self.conn.resume_from(point.clone());
                if !had_session {
                    assert_eq!(self.conn.resume_point(), Some(point), "resume_from ignored");
                    self.delivered = u64::from(*seq);
                }
            }
            Step::Stale { socket, what } => {
                let socket = SocketId(u64::from(*socket));
                if !self.handed_out.contains(&socket) {
                    // A transport only reports on sockets it was asked to open.
                    return self.drain(false);
                }
                let input = match what % 3 {
                    0 => Transport::Opened,
                    1 => Transport::Closed {
                        code: 1006,
                        reason: String::new(),
                    },
                    _ => Transport::Frame(authenticated("u1", "s0", false)),
                };
                self.transport_on(socket, input);
            }
            frame => {
                if let Some(text) = self.server_frame(frame) {
                    self.transport(Transport::Frame(text));
                }
            }
        }
        self.drain(disconnect_call);
    }

    fn input(&mut self, input: Input) {
        self.fed = self.now;
        self.conn.handle_input(self.now, input);
    }

    fn transport(&mut self, input: Transport) {
        if let Some(socket) = self.current {
            self.transport_on(socket, input);
        }
    }

    fn transport_on(&mut self, socket: SocketId, input: Transport) {
        match &input {
            // A transport delivers nothing before its socket opened.
            Transport::Frame(_) | Transport::Binary if !self.opened.contains(&socket) => return,
            Transport::Frame(text) => {
                if let Ok(IncomingFrame::Ack { id, ok: true, .. }) =
                    IncomingFrame::decode(text, self.max_frame)
                {
                    self.acked_ok.insert(id);
                }
            }
            Transport::Opened if self.open.contains(&socket) => {
                self.opened.insert(socket);
            }
            _ => {}
        }
        if matches!(input, Transport::Closed { .. } | Transport::Error(_)) {
            // Gone either way (a late close of a socket the core already closed is fed too).
            // Timers overdue when the close arrives fire first, in virtual time before it, and
            // may still write to the socket: drivers drop those frames (the native one finds
            // no socket, the browser one reports a stale error). Nothing after that.
            if self.open.remove(&socket) {
                self.closing = Some(socket);
            }
            if self.current == Some(socket) {
                self.current = None;
            }
        }
        self.input(Input::Transport(socket, input));
    }

    fn send(&mut self, text: &[u8]) {
        self.sends += 1;
        let data = if text.is_empty() {
            Payload::from_valid(format!(r#"{{"n":{}}}"#, self.sends))
        } else {
            match Payload::from_json(super::text(text).into_owned()) {
                Ok(data) => data,
                Err(_) => return,
            }
        };
        self.fed = self.now;
        if let Ok(id) = self.conn.send(self.now, "message", &data) {
            assert!(self.accepted.insert(id), "{id:?} handed out twice");
        }
    }

    /// The text of a scripted server frame, written by the protocol's encoder.
    fn server_frame(&mut self, step: &Step) -> Option<String> {
        let frame = match *step {
            Step::Authenticated {
                flags,
                session,
                missed,
                heartbeat,
                expires,
                limits,
            } => ServerFrame::Authenticated {
                v: 1,
                user_id: if flags & 2 == 0 { "u1" } else { "u2" }.into(),
                session: format!("s{session}"),
                heartbeat_ms: u64::from(heartbeat) * 1000,
                resumed: flags & 1 != 0,
                missed: u64::from(missed),
                expires_in_ms: Some(u64::from(expires) * 1000).filter(|_| expires > 0),
                limits: Some(SendLimits {
                    sends_per_s: u32::from(limits),
                    burst: u32::from(limits / 4),
                })
                .filter(|_| limits > 0),
            },
            Step::AuthError(n) => ServerFrame::AuthError {
                code: auth_code(n).into(),
                message: String::new(),
            },
            Step::Ack { id, code, retry } => {
                let ok = code & 1 != 0;
                let name = ACK_CODES[usize::from(code >> 1) % ACK_CODES.len()];
                ServerFrame::Ack {
                    id: u64::from(id),
                    ok,
                    data: None,
                    error: (!name.is_empty()).then(|| ErrorBody {
                        code: name.into(),
                        message: String::new(),
                        retry_after_ms: Some(u64::from(retry) * 50).filter(|_| retry > 0),
                    }),
                }
            }
            Step::Event(n) => ServerFrame::Event {
                seq: match n {
                    0 => None,
                    1 => Some(self.conn.resume_point().map_or(0, |p| p.seq) + 1),
                    n => Some(u64::from(n) - 1),
                },
                event: "new_notification".into(),
                data: serde_json::json!({"id": "n1"}),
                ts: String::new(),
            },
            Step::Ping(n) => ServerFrame::Ping {
                t: 1_767_225_600_000,
                rtt_ms: Some(u64::from(n)).filter(|_| n > 0),
            },
            Step::Refreshed(n) => ServerFrame::Refreshed {
                expires_in_ms: u64::from(n) * 1000,
            },
            Step::ServerError => ServerFrame::Error {
                code: "invalid_frame".into(),
                message: String::new(),
            },
            _ => return None,
        };
        Some(frame.encode())
    }

    /// Drains actions and events, checking every invariant.
    fn drain(&mut self, disconnect_call: bool) {
        while let Some(action) = self.conn.poll_action() {
            if self.stopped {
                assert!(
                    disconnect_call
                        && matches!(
                            action,
                            Action::CloseSocket { .. } | Action::SendFrame { .. }
                        ),
                    "action after disconnect(): {action:?}"
                );
            }
            match action {
                Action::OpenSocket { socket, .. } => {
                    assert!(
                        self.open.is_empty(),
                        "{socket:?} opened while {:?}",
                        self.open
                    );
                    self.open.insert(socket);
                    self.handed_out.insert(socket);
                    self.current = Some(socket);
                }
                Action::CloseSocket { socket, .. } => {
                    self.open.remove(&socket);
                }
                Action::FetchToken { request } => self.pending_token = Some(request),
                Action::SendFrame { socket, text } => {
                    assert!(
                        self.open.contains(&socket) || self.closing == Some(socket),
                        "frame on closed {socket:?}: {text}"
                    );
                    assert!(self.opened.contains(&socket), "frame before open: {text}");
                    let frame = match ClientFrame::decode(&text, self.max_frame) {
                        Ok(frame) => frame,
                        Err(e) => panic!("the core sent a frame the server refuses ({e}): {text}"),
                    };
                    if self.talked.insert(socket) {
                        assert!(
                            matches!(frame, ClientFrame::Auth { .. }),
                            "the first frame on {socket:?} is not auth: {text}"
                        );
                    }
                }
            }
        }
        while let Some(event) = self.conn.poll_event() {
            if self.stopped {
                let from_the_call = disconnect_call
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
                assert!(from_the_call, "event after disconnect(): {event:?}");
            }
            self.event(event);
        }
        if let Some(next) = self.conn.poll_timeout() {
            assert!(
                next >= self.fed,
                "timeout {next:?} before now {:?}",
                self.fed
            );
        }
        if let Some(id) = self.restored.take() {
            // An id settled before (even by a timer this very call fired) may be restored
            // again, the app's mistake the core cannot see: it is pending once more.
            self.settled.remove(&id);
            self.acked_ok.remove(&id.0);
        }
        self.check_sends();
        if let Some(point) = self.conn.resume_point() {
            // What a resume asks for (and what acks confirm) is the last contiguous delivery.
            assert_eq!(point.seq, self.delivered, "resume point {point:?}");
        }
        self.closing = None;
        let _ = self.conn.stats();
    }

    /// No accepted send vanishes: each is either settled or pending, never both.
    fn check_sends(&self) {
        for id in &self.accepted {
            assert!(
                self.settled.contains(id) ^ self.conn.is_pending(*id),
                "{id:?}: settled {}, pending {}",
                self.settled.contains(id),
                self.conn.is_pending(*id)
            );
        }
    }

    fn event(&mut self, event: Event) {
        if let Event::StateChanged { to, .. } = &event {
            self.connected = to.is_connected();
        }
        match event {
            Event::Ack { id, result } => {
                assert!(self.accepted.contains(&id), "an ack for {id:?}, never sent");
                if matches!(result, Ok(_) | Err(AckError::Rejected { .. })) {
                    // The server's answer: only on a live link (PROTOCOL.md §2).
                    assert!(
                        self.connected,
                        "{id:?} settled by the server while not connected"
                    );
                }
                assert!(self.settled.insert(id), "{id:?} settled twice");
                if result.is_ok() {
                    assert!(self.acked_ok.contains(&id.0), "{id:?} ok without an ok ack");
                }
            }
            Event::StateChanged { to, .. } => match to {
                ConnectionState::Reconnecting {
                    next_at: Some(at), ..
                } => {
                    let delay = at.saturating_duration_since(self.fed);
                    assert!(delay <= self.max_delay, "a reconnect delay of {delay:?}");
                }
                ConnectionState::Connected { .. } => {
                    self.before_connect = self.delivered;
                    self.delivered = 0;
                }
                _ => {}
            },
            Event::Resumed { .. } => self.delivered = self.before_connect,
            Event::Message { seq: Some(seq), .. } => {
                assert_eq!(seq, self.delivered + 1, "delivered out of order");
                self.delivered = seq;
            }
            _ => {}
        }
    }
}

/// An `auth_error` code for script byte `n`: one PROTOCOL.md names, in their order, or one it
/// does not (a newer server's).
fn auth_code(n: u8) -> &'static str {
    let i = usize::from(n) % (AUTH_ERROR_CODES.len() + 1);
    AUTH_ERROR_CODES.get(i).copied().unwrap_or("something_new")
}

/// Ack error codes; "" = no `error` member.
const ACK_CODES: &[&str] = &[
    "",
    "rate_limited",
    "id_expired",
    "forbidden",
    "bad_room",
    "too_many_rooms",
    "unknown_event",
];

fn authenticated(user: &str, session: &str, resumed: bool) -> String {
    ServerFrame::Authenticated {
        v: 1,
        user_id: user.into(),
        session: session.into(),
        heartbeat_ms: 30_000,
        resumed,
        missed: 0,
        expires_in_ms: None,
        limits: None,
    }
    .encode()
}
