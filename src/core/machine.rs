//! [`Connection`]: the state machine itself — inputs, commands, timers and the two output queues.

use std::collections::VecDeque;
use std::time::Duration;

use super::Payload;
use super::{
    Action, Arrival, ConnectionState, DisconnectReason, Entry, EntryKind, Env, Event, Inbox, Input,
    Instant, Outbox, RequestId, Rng, SendId, SocketId, Stats, Timer, TimerTable, Transport,
};
use crate::config::ConnectionConfig;
use crate::error::{AckError, ClientError, SendError};
use crate::json;
use crate::protocol::{encode, CloseCode, ErrorBody, IncomingFrame, ResumePoint};

/// Room for the frame envelope around an entry's event and data (`{"type":"send","id":…}`).
const SEND_ENVELOPE_BYTES: usize = 64;

/// What the current link is waiting for (private phase data behind the public state).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    /// No socket and nothing in flight.
    Idle,
    /// `FetchToken` is out.
    AwaitingToken { request: RequestId },
    /// `OpenSocket` is out; `auth` goes first once it opens.
    AwaitingOpen { socket: SocketId, token: String },
    /// `auth` is sent.
    AwaitingAuth { socket: SocketId },
    /// Authenticated.
    Live { socket: SocketId },
}

impl Link {
    fn socket(&self) -> Option<SocketId> {
        match self {
            Link::AwaitingOpen { socket, .. }
            | Link::AwaitingAuth { socket }
            | Link::Live { socket } => Some(*socket),
            Link::Idle | Link::AwaitingToken { .. } => None,
        }
    }
}

/// Why the link failed.
enum Failure {
    /// Worth another attempt (network error, timeout, retryable close); the message says what.
    Retryable(String),
    /// Final: the connection stops with this reason.
    Fatal(DisconnectReason),
}

impl Failure {
    fn retryable(message: impl Into<String>) -> Self {
        Failure::Retryable(message.into())
    }

    fn fatal(reason: DisconnectReason) -> Self {
        Failure::Fatal(reason)
    }
}

/// The sans-IO connection state machine. See the [module docs](super) for the drain rule.
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    state: ConnectionState,
    state_since: Instant,
    last_now: Instant,
    rng: Rng,
    timers: TimerTable,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    link: Link,
    next_socket: u64,
    next_request: u64,
    next_send: u64,
    /// Retries spent since the last reset.
    retries: u32,
    connected_at: Instant,
    online: bool,
    visible: bool,
    /// `disconnect()` was called and no `connect()` since: nothing else revives the connection.
    stopped: bool,
    /// The session to resume, from the last `authenticated`.
    session: Option<String>,
    heartbeat: Duration,
    /// The room set, sorted (re-joined in this order). A vector: apps join a few rooms.
    rooms: Vec<String>,
    outbox: Outbox,
    /// The timeout of each pending request, for the error it reports.
    /// (Send ids only grow, so pushing keeps it sorted.)
    request_timeouts: Vec<(SendId, Duration)>,
    inbox: Inbox,
    reconnects: u64,
    frames_in: u64,
    frames_out: u64,
    last_rtt: Option<Duration>,
    last_error: Option<String>,
}

impl Connection {
    /// A connection in `disconnected { NotStarted }`; call [`connect`](Self::connect) to start.
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        Connection {
            rng: Rng::new(config.seed),
            outbox: Outbox::new(config.outbox_max_messages, config.outbox_max_bytes),
            config,
            state: ConnectionState::Disconnected {
                reason: DisconnectReason::NotStarted,
            },
            state_since: now,
            last_now: now,
            timers: TimerTable::default(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            link: Link::Idle,
            next_socket: 1,
            next_request: 1,
            next_send: 1,
            retries: 0,
            connected_at: now,
            online: true,
            visible: true,
            stopped: false,
            session: None,
            heartbeat: Duration::from_secs(30),
            rooms: Vec::new(),
            request_timeouts: Vec::new(),
            inbox: Inbox::default(),
            reconnects: 0,
            frames_in: 0,
            frames_out: 0,
            last_rtt: None,
            last_error: None,
        }
    }

    // ---- getters ----------------------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> &ConnectionState {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// The room set: rooms joined and re-joined after every new session.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.iter().map(String::as_str)
    }

    /// What made the link fail last (e.g. `socket closed (1006): …`), if it ever failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether send `id` is still in the outbox (queued or awaiting its ack).
    pub fn is_pending(&self, id: SendId) -> bool {
        self.outbox.contains(id)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        Stats {
            state: self.state.name(),
            time_in_state: self.last_now.saturating_duration_since(self.state_since),
            attempt: self.state.attempt(),
            reconnects: self.reconnects,
            last_rtt: self.last_rtt,
            outbox_depth: self.outbox.len(),
            outbox_bytes: self.outbox.bytes(),
            frames_in: self.frames_in,
            frames_out: self.frames_out,
            duplicates_dropped: self.inbox.duplicates(),
            rooms: self.rooms.len(),
        }
    }

    // ---- outputs ----------------------------------------------------------------------------

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing the application hears.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to feed [`Input::Timeout`] next; never earlier than the last `now` given.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ---- inputs -----------------------------------------------------------------------------

    /// Feeds what happened at `now`. Infallible: failures become state changes and events.
    ///
    /// Timers due at `now` fire first, whatever the input, so a late wake-up (a throttled tab,
    /// a laptop back from sleep) still sees every expiry.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        let now = self.advance(now);
        match input {
            Input::Timeout => {}
            Input::Transport(socket, event) => {
                if self.link.socket() == Some(socket) {
                    self.handle_transport(now, socket, event);
                }
            }
            Input::Env(env) => self.handle_env(now, env),
            Input::TokenFetched(request, result) => self.handle_token(now, request, result),
        }
    }

    /// Moves the clock to `now` (never backwards) and fires every timer due by then.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = now.max(self.last_now);
        self.last_now = now;
        while let Some(timer) = self.timers.pop_due(now) {
            self.fire(now, timer);
        }
        now
    }

    fn fire(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::ConnectTimeout => self.fail(now, Failure::retryable("connect timed out")),
            Timer::AuthTimeout => self.fail(now, Failure::retryable("auth timed out")),
            Timer::Backoff => {
                let attempt = self.retries;
                self.start_attempt(now, attempt);
            }
            Timer::HeartbeatDeadline => self.fail(
                now,
                Failure::retryable(format!(
                    "heartbeat timeout: no frame for {} ms",
                    // As u64: formatting a u128 would link its own formatter.
                    (self.heartbeat + self.config.heartbeat_grace).as_millis() as u64
                )),
            ),
            Timer::AckFlush => self.flush_inbox_ack(),
            Timer::HiddenGrace => self.pause(),
            Timer::RateLimitRetry => {
                if let Link::Live { .. } = self.link {
                    for frame in self.outbox.transmit_unsent() {
                        self.send_frame(frame);
                    }
                }
            }
            Timer::Request(id) => {
                let timeout = self.take_request_timeout(id).unwrap_or_default();
                if self.outbox.remove(id).is_some() {
                    self.events.push_back(Event::Ack {
                        id,
                        result: Err(AckError::Timeout {
                            timeout_ms: timeout.as_millis() as u64,
                        }),
                    });
                }
            }
        }
    }

    fn handle_transport(&mut self, now: Instant, socket: SocketId, event: Transport) {
        match event {
            Transport::Opened => {
                let Link::AwaitingOpen { token, .. } = &self.link else {
                    return;
                };
                let resume = self.session.clone().map(|session| ResumePoint {
                    session,
                    seq: self.inbox.last_seq(),
                });
                let auth = encode::auth(token, resume.as_ref());
                self.link = Link::AwaitingAuth { socket };
                self.send_frame(auth);
                self.timers.cancel(Timer::ConnectTimeout);
                self.timers
                    .set(Timer::AuthTimeout, now + self.config.auth_timeout);
                let attempt = self.state.attempt();
                self.set_state(now, ConnectionState::Authenticating { attempt });
            }
            Transport::Frame(text) => {
                self.frames_in += 1;
                self.handle_frame(now, &text);
            }
            Transport::Closed { code, reason } => {
                // The socket is gone: nothing to close.
                self.link = Link::Idle;
                let close = CloseCode(code);
                let failure = if close == CloseCode::AUTH_REJECTED {
                    Failure::fatal(DisconnectReason::AuthRejected {
                        code: "rejected".into(),
                        message: reason,
                    })
                } else if !close.is_retryable() {
                    Failure::fatal(DisconnectReason::Refused { code, reason })
                } else {
                    Failure::retryable(format!("socket closed ({code}): {reason}"))
                };
                self.fail(now, failure);
            }
            Transport::Error(message) => {
                self.fail(now, Failure::retryable(format!("socket error: {message}")));
            }
        }
    }

    fn handle_frame(&mut self, now: Instant, text: &str) {
        let frame = match IncomingFrame::decode(text, self.config.max_frame_bytes) {
            Ok(frame) => frame,
            Err(error) => {
                self.events
                    .push_back(Event::Error(ClientError::BadFrame(error)));
                return;
            }
        };
        if let Link::Live { .. } = self.link {
            self.arm_heartbeat(now);
        }
        match frame {
            IncomingFrame::Authenticated {
                session,
                heartbeat_ms,
                resumed,
                missed,
                ..
            } => self.handle_authenticated(now, session, heartbeat_ms, resumed, missed),
            IncomingFrame::AuthError { code, message } => {
                if !matches!(self.link, Link::AwaitingAuth { .. }) {
                    return self.unexpected("auth_error");
                }
                if code == "timeout" {
                    self.fail(now, Failure::retryable(format!("auth timeout: {message}")));
                } else {
                    self.fail(
                        now,
                        Failure::fatal(DisconnectReason::AuthRejected { code, message }),
                    );
                }
            }
            IncomingFrame::Event {
                seq, event, data, ..
            } => self.handle_event(now, seq, event, Payload::from_valid(data)),
            IncomingFrame::Ack {
                id,
                ok,
                data,
                error,
            } => self.handle_ack(now, id, ok, data.map(Payload::from_valid), error),
            IncomingFrame::Error { code, message } => {
                self.events
                    .push_back(Event::Error(ClientError::Server { code, message }));
            }
            IncomingFrame::Ping { t, rtt_ms } => {
                if let Some(rtt) = rtt_ms {
                    self.last_rtt = Some(Duration::from_millis(rtt));
                }
                self.send_frame(encode::pong(t));
            }
        }
    }

    fn handle_event(&mut self, now: Instant, seq: u64, event: String, data: Payload) {
        if !matches!(self.link, Link::Live { .. }) {
            return self.unexpected("event");
        }
        if self.inbox.accept(seq) == Arrival::Deliver {
            self.events.push_back(Event::Message { event, data, seq });
            if self.inbox.unacked() >= self.config.ack_batch {
                self.flush_inbox_ack();
            } else if !self.timers.is_set(Timer::AckFlush) {
                self.timers
                    .set(Timer::AckFlush, now + self.config.ack_delay);
            }
        }
    }

    fn unexpected(&mut self, frame: &'static str) {
        self.events
            .push_back(Event::Error(ClientError::UnexpectedFrame { frame }));
    }

    fn handle_authenticated(
        &mut self,
        now: Instant,
        session: String,
        heartbeat_ms: u64,
        resumed: bool,
        missed: u64,
    ) {
        let Link::AwaitingAuth { socket } = self.link else {
            return self.unexpected("authenticated");
        };
        let asked_to_resume = self.session.is_some();
        self.link = Link::Live { socket };
        self.timers.cancel(Timer::AuthTimeout);
        self.connected_at = now;
        self.heartbeat = Duration::from_millis(heartbeat_ms.max(1));
        self.arm_heartbeat(now);
        let resumed = resumed && asked_to_resume;
        if resumed {
            // The resume point told the server what we have: nothing new to ack yet.
            self.inbox.take_ack();
        } else {
            self.inbox.reset();
            let mut rejoin = Vec::with_capacity(self.rooms.len());
            for room in self.rooms.clone() {
                rejoin.push(self.room_entry(room, true));
            }
            self.outbox.start_session(rejoin);
        }
        self.session = Some(session.clone());
        self.set_state(now, ConnectionState::Connected { session });
        if resumed {
            self.events.push_back(Event::Resumed { missed });
        } else if asked_to_resume {
            self.events.push_back(Event::ResumeFailed);
        }
        for frame in self.outbox.transmit_all() {
            self.send_frame(frame);
        }
    }

    fn handle_ack(
        &mut self,
        now: Instant,
        wire_id: u64,
        ok: bool,
        data: Option<Payload>,
        error: Option<ErrorBody>,
    ) {
        let Some(entry) = self.outbox.take_acked(wire_id) else {
            return; // a repeated ack for a send already settled
        };
        let (code, message) = error
            .map(|e| (e.code, e.message))
            .unwrap_or_else(|| ("rejected".into(), String::new()));
        match entry.kind {
            EntryKind::App if !ok && code == "rate_limited" => {
                // Not processed: send it again later (under a new id) rather than fail it.
                self.outbox.requeue(entry);
                if !self.timers.is_set(Timer::RateLimitRetry) {
                    self.timers
                        .set(Timer::RateLimitRetry, now + self.config.rate_limit_retry);
                }
            }
            EntryKind::App => {
                self.timers.cancel(Timer::Request(entry.id));
                self.take_request_timeout(entry.id);
                let result = if ok {
                    Ok(data)
                } else {
                    Err(AckError::Rejected { code, message })
                };
                self.events.push_back(Event::Ack {
                    id: entry.id,
                    result,
                });
            }
            EntryKind::Room { room, join } => {
                if !ok {
                    if join {
                        self.remove_room(&room);
                    }
                    self.events.push_back(Event::Error(ClientError::Room {
                        room,
                        code,
                        message,
                    }));
                }
            }
        }
    }

    fn handle_env(&mut self, now: Instant, env: Env) {
        match env {
            Env::Online => {
                self.online = true;
                if self.stopped {
                    return;
                }
                self.come_back(now, false);
            }
            Env::Offline => {
                self.online = false;
                if self.stopped || matches!(self.state, ConnectionState::Disconnected { .. }) {
                    return;
                }
                if self.state.is_connected() {
                    self.reconnects += 1;
                }
                self.drop_link("offline");
                self.last_error = Some("offline".to_owned());
                self.timers.cancel(Timer::Backoff);
                self.wait_for_network(now);
            }
            Env::Hidden => {
                self.visible = false;
                if self.stopped
                    || !self.config.pause_when_hidden
                    || matches!(self.state, ConnectionState::Disconnected { .. })
                {
                    return;
                }
                self.pause_soon(now);
            }
            Env::Visible => {
                self.visible = true;
                self.timers.cancel(Timer::HiddenGrace);
                if self.stopped {
                    return;
                }
                self.come_back(now, true);
            }
        }
    }

    fn handle_token(&mut self, now: Instant, request: RequestId, result: Result<String, String>) {
        if self.link != (Link::AwaitingToken { request }) {
            return; // stale answer
        }
        match result {
            Ok(token) => {
                let socket = SocketId(self.next_socket);
                self.next_socket += 1;
                self.link = Link::AwaitingOpen { socket, token };
                self.actions.push_back(Action::OpenSocket {
                    socket,
                    url: self.config.url.clone(),
                });
            }
            Err(error) => self.fail(
                now,
                Failure::retryable(format!("token fetch failed: {error}")),
            ),
        }
    }

    // ---- commands ---------------------------------------------------------------------------

    /// Starts connecting (from `disconnected`, whatever the reason) with the backoff reset.
    /// Does nothing while already connecting, connected or reconnecting.
    pub fn connect(&mut self, now: Instant) {
        let now = self.advance(now);
        if let ConnectionState::Disconnected { .. } = self.state {
            self.stopped = false;
            self.restart(now);
        }
    }

    /// Stops: closes the socket with 1000 and enters `disconnected { Requested }`. Nothing but
    /// [`connect`](Self::connect) revives the connection — not online, not visible. Pending
    /// requests fail with [`AckError::Disconnected`] (reported before the state change; nothing
    /// follows it); plain sends and the room set are kept for the next `connect()`.
    pub fn disconnect(&mut self, now: Instant) {
        // Timers due by now are dropped, not fired: after `disconnect()` the app hears nothing
        // but the change to `disconnected`.
        let now = now.max(self.last_now);
        self.last_now = now;
        if matches!(self.link, Link::Live { .. }) {
            self.flush_inbox_ack();
        }
        self.stopped = true;
        self.drop_link("client disconnect");
        self.timers.retain(|_| false);
        // Requests are waited on: each fails now, before the state change, and leaves the
        // outbox. Plain sends stay queued for the next `connect()`.
        for (id, _) in std::mem::take(&mut self.request_timeouts) {
            if self.outbox.remove(id).is_some() {
                self.events.push_back(Event::Ack {
                    id,
                    result: Err(AckError::Disconnected),
                });
            }
        }
        if self.state
            != (ConnectionState::Disconnected {
                reason: DisconnectReason::Requested,
            })
        {
            self.set_state(
                now,
                ConnectionState::Disconnected {
                    reason: DisconnectReason::Requested,
                },
            );
        }
    }

    /// Queues an application event; it is sent at once when connected, else after the next
    /// `authenticated`, and stays queued until the server acks it (resent after reconnects).
    ///
    /// `Err` only when the send cannot be taken at all (outbox full, frame too large, empty
    /// name); nothing else is dropped.
    pub fn send(&mut self, now: Instant, event: &str, data: &Payload) -> Result<SendId, SendError> {
        self.advance(now);
        self.enqueue(event, data, None)
    }

    /// Like [`send`](Self::send), but gives up after `timeout`: if no ack arrived by then the send
    /// is removed from the outbox and reported as `Ack { result: Err(Timeout) }`.
    pub fn request(
        &mut self,
        now: Instant,
        event: &str,
        data: &Payload,
        timeout: Duration,
    ) -> Result<SendId, SendError> {
        let now = self.advance(now);
        if self.stopped {
            // No ack can come until `connect()`: refuse rather than leave the caller waiting.
            return Err(SendError::Disconnected);
        }
        self.enqueue(event, data, Some((now, timeout)))
    }

    fn enqueue(
        &mut self,
        event: &str,
        data: &Payload,
        timeout: Option<(Instant, Duration)>,
    ) -> Result<SendId, SendError> {
        if event.is_empty() {
            return Err(SendError::EmptyEventName);
        }
        let mut event_json = String::new();
        json::write_string(&mut event_json, event);
        let data_json = String::from(data.json());
        let size = event_json.len() + data_json.len() + SEND_ENVELOPE_BYTES;
        if size > self.config.max_frame_bytes {
            return Err(SendError::TooLarge {
                size,
                limit: self.config.max_frame_bytes,
            });
        }
        let id = SendId(self.next_send);
        let entry = Entry::new(id, EntryKind::App, event_json, data_json);
        self.outbox.push(entry).map_err(|_| SendError::OutboxFull {
            max_messages: self.config.outbox_max_messages,
            max_bytes: self.config.outbox_max_bytes,
        })?;
        self.next_send += 1;
        if let Some((now, timeout)) = timeout {
            self.request_timeouts.push((id, timeout));
            self.timers.set(Timer::Request(id), now + timeout);
        }
        self.transmit_last_if_live();
        Ok(id)
    }

    /// Adds `room` to the room set and joins it (now if connected, else on the next session).
    pub fn join(&mut self, now: Instant, room: &str) {
        self.advance(now);
        if let Err(index) = self.rooms.binary_search_by(|r| r.as_str().cmp(room)) {
            self.rooms.insert(index, room.to_owned());
            self.queue_room(room.to_owned(), true);
        }
    }

    /// Removes `room` from the room set and leaves it.
    pub fn leave(&mut self, now: Instant, room: &str) {
        self.advance(now);
        if self.remove_room(room) {
            self.queue_room(room.to_owned(), false);
        }
    }

    /// Removes `room` from the room set; whether it was there.
    fn remove_room(&mut self, room: &str) -> bool {
        match self.rooms.binary_search_by(|r| r.as_str().cmp(room)) {
            Ok(index) => {
                self.rooms.remove(index);
                true
            }
            Err(_) => false,
        }
    }

    /// Forgets request `id`'s timeout and returns it.
    fn take_request_timeout(&mut self, id: SendId) -> Option<Duration> {
        let index = self.request_timeouts.iter().position(|(i, _)| *i == id)?;
        Some(self.request_timeouts.remove(index).1)
    }

    fn queue_room(&mut self, room: String, join: bool) {
        let entry = self.room_entry(room, join);
        // Room entries are exempt from the bounds, so this cannot fail.
        let _ = self.outbox.push(entry);
        self.transmit_last_if_live();
    }

    fn room_entry(&mut self, room: String, join: bool) -> Entry {
        let id = SendId(self.next_send);
        self.next_send += 1;
        let event = if join {
            "\"join_room\""
        } else {
            "\"leave_room\""
        };
        let mut data = String::from(r#"{"room":"#);
        json::write_string(&mut data, &room);
        data.push('}');
        Entry::new(id, EntryKind::Room { room, join }, event.into(), data)
    }

    fn transmit_last_if_live(&mut self) {
        if let Link::Live { .. } = self.link {
            if let Some(frame) = self.outbox.transmit_last() {
                self.send_frame(frame);
            }
        }
    }

    // ---- transitions ------------------------------------------------------------------------

    /// Starts over: backoff reset, first attempt now (or wait if offline).
    fn restart(&mut self, now: Instant) {
        self.retries = 0;
        self.timers.cancel(Timer::Backoff);
        // Started (or revived) while the page is hidden: pause as a hidden page would.
        if !self.visible && self.config.pause_when_hidden && self.pause_soon(now) {
            return;
        }
        self.start_attempt(now, 0);
    }

    /// The network (`from_pause` false) or the page (`from_pause` true) came back: a scheduled
    /// retry runs now (count kept); a client waiting for the network, one that gave up, or — for
    /// the page — one paused while hidden starts over with the backoff reset.
    fn come_back(&mut self, now: Instant, from_pause: bool) {
        match &self.state {
            ConnectionState::Reconnecting {
                next_at: Some(_), ..
            } => self.retry_now(now),
            ConnectionState::Reconnecting { next_at: None, .. }
            | ConnectionState::Disconnected {
                reason: DisconnectReason::RetriesExhausted { .. },
            } => self.restart(now),
            ConnectionState::Disconnected {
                reason: DisconnectReason::Paused,
            } if from_pause => self.restart(now),
            _ => {}
        }
    }

    /// The page is hidden: pause now (no grace) or arm the grace timer. Whether it paused now.
    fn pause_soon(&mut self, now: Instant) -> bool {
        if self.config.hidden_grace.is_zero() {
            self.pause();
            return true;
        }
        if !self.timers.is_set(Timer::HiddenGrace) {
            self.timers
                .set(Timer::HiddenGrace, now + self.config.hidden_grace);
        }
        false
    }

    /// Runs the scheduled retry now (the network or the page came back while waiting on the
    /// backoff timer). The retry count is kept: flapping visibility cannot defeat the give-up.
    fn retry_now(&mut self, now: Instant) {
        self.timers.cancel(Timer::Backoff);
        let attempt = self.retries;
        self.start_attempt(now, attempt);
    }

    fn start_attempt(&mut self, now: Instant, attempt: u32) {
        self.drop_link("restarting");
        if !self.online {
            return self.wait_for_network(now);
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.link = Link::AwaitingToken { request };
        self.actions.push_back(Action::FetchToken { request });
        self.timers
            .set(Timer::ConnectTimeout, now + self.config.connect_timeout);
        self.set_state(now, ConnectionState::Connecting { attempt });
    }

    /// Offline: wait in `reconnecting` with no timer and no retry spent until `Env(Online)`.
    fn wait_for_network(&mut self, now: Instant) {
        self.set_state(
            now,
            ConnectionState::Reconnecting {
                attempt: self.retries,
                next_at: None,
            },
        );
    }

    /// The link failed: close what is open, then retry later, wait for the network, or stop.
    fn fail(&mut self, now: Instant, failure: Failure) {
        let was_connected = self.state.is_connected();
        let (message, fatal) = match failure {
            Failure::Retryable(message) => (message, None),
            Failure::Fatal(reason) => (reason.to_string(), Some(reason)),
        };
        self.drop_link(&message);
        self.last_error = Some(message.clone());
        if was_connected {
            self.reconnects += 1;
            if now.saturating_duration_since(self.connected_at) >= self.config.stable_after {
                self.retries = 0;
            }
        }
        if let Some(reason) = fatal {
            return self.set_state(now, ConnectionState::Disconnected { reason });
        }
        if !self.online {
            return self.wait_for_network(now);
        }
        if self.retries >= self.config.backoff.max_retries {
            let reason = DisconnectReason::RetriesExhausted {
                retries: self.retries,
                last_error: message,
            };
            self.set_state(now, ConnectionState::Disconnected { reason });
            return;
        }
        self.retries += 1;
        let delay = self.config.backoff.delay(self.retries, &mut self.rng);
        let next_at = now + delay;
        self.timers.set(Timer::Backoff, next_at);
        self.set_state(
            now,
            ConnectionState::Reconnecting {
                attempt: self.retries,
                next_at: Some(next_at),
            },
        );
    }

    /// Hidden for long enough: close and wait for visible.
    fn pause(&mut self) {
        let now = self.last_now;
        self.drop_link("paused while hidden");
        self.timers.cancel(Timer::Backoff);
        self.set_state(
            now,
            ConnectionState::Disconnected {
                reason: DisconnectReason::Paused,
            },
        );
    }

    /// Closes the current socket (if any), forgets the link and its timers.
    fn drop_link(&mut self, reason: &str) {
        if let Some(socket) = self.link.socket() {
            self.actions.push_back(Action::CloseSocket {
                socket,
                code: CloseCode::NORMAL.0,
                reason: reason.to_owned(),
            });
        }
        self.link = Link::Idle;
        for timer in [
            Timer::ConnectTimeout,
            Timer::AuthTimeout,
            Timer::HeartbeatDeadline,
            Timer::AckFlush,
        ] {
            self.timers.cancel(timer);
        }
    }

    fn arm_heartbeat(&mut self, now: Instant) {
        self.timers.set(
            Timer::HeartbeatDeadline,
            now + self.heartbeat + self.config.heartbeat_grace,
        );
    }

    fn flush_inbox_ack(&mut self) {
        self.timers.cancel(Timer::AckFlush);
        if let Link::Live { .. } = self.link {
            if let Some(seq) = self.inbox.take_ack() {
                self.send_frame(encode::ack(seq));
            }
        }
    }

    fn send_frame(&mut self, text: String) {
        if let Some(socket) = self.link.socket() {
            self.frames_out += 1;
            self.actions.push_back(Action::SendFrame { socket, text });
        }
    }

    fn set_state(&mut self, now: Instant, to: ConnectionState) {
        if to == self.state {
            return;
        }
        if let ConnectionState::Disconnected { .. } = to {
            // Down for good (or paused already): a pending pause must not rewrite the reason.
            self.timers.cancel(Timer::HiddenGrace);
        }
        let from = std::mem::replace(&mut self.state, to.clone());
        self.state_since = now;
        self.events.push_back(Event::StateChanged { from, to });
    }
}
