//! [`Connection`]: the state machine itself — its getters, the input door, the two output queues
//! and the next deadline. The commands are in `commands`, what server frames do in `frames`,
//! queueing and pacing sends in `sending`, the token lifecycle in `tokens`, and the transitions
//! they share in `transitions`.

mod commands;
mod frames;
mod sending;
mod tokens;
mod transitions;

use std::time::Duration;

use super::backoff::Rng;
use super::inbox::Inbox;
use super::link::{Failure, Link};
use super::outbox::Outbox;
use super::pacing::Pacer;
use super::queue::Queue;
use super::rooms::RoomSet;
use super::timers::{Timer, TimerTable};
use super::{
    Action, Cause, ConnectionConfig, ConnectionState, DisconnectReason, Env, Event, Input, Instant,
    LinkError, Payload, RequestId, SendId, SocketId, Stats, Transport,
};
use crate::error::{AckError, ClientError};
use crate::protocol::{encode, CloseCode, ResumePoint};

/// The sans-IO connection state machine. See the [module docs](super) for the drain rule.
///
/// Its methods come in four groups (as in quinn-proto's `Connection`):
/// - getters: [`state`](Self::state), [`stats`](Self::stats), [`config`](Self::config),
///   [`rooms`](Self::rooms), [`last_error`](Self::last_error), [`is_pending`](Self::is_pending);
/// - the input door: [`handle_input`](Self::handle_input), infallible;
/// - commands: [`connect`](Self::connect), [`disconnect`](Self::disconnect),
///   [`send`](Self::send), [`request`](Self::request), [`join`](Self::join),
///   [`leave`](Self::leave);
/// - outputs, drained after every input or command: [`poll_action`](Self::poll_action),
///   [`poll_event`](Self::poll_event), then [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    state: ConnectionState,
    state_since: Instant,
    last_now: Instant,
    rng: Rng,
    timers: TimerTable,
    actions: Queue<Action>,
    events: Queue<Event>,
    link: Link,
    next_socket: u64,
    next_request: u64,
    next_send: u64,
    /// Retries spent since the last reset.
    retries: u32,
    online: bool,
    visible: bool,
    /// `disconnect()` was called and no `connect()` since: nothing else revives the connection.
    stopped: bool,
    /// The session to resume, from the last `authenticated` (or [`Connection::resume_from`]).
    session: Option<String>,
    /// The user the last `authenticated` named.
    user: Option<String>,
    rooms: RoomSet,
    outbox: Outbox,
    /// The timeout of each pending request, for the error it reports.
    /// (Send ids only grow, so pushing keeps it sorted.)
    request_timeouts: Vec<(SendId, Duration)>,
    inbox: Inbox,
    /// The send bucket of the live link (the server's `limits`).
    pacer: Option<Pacer>,
    /// Until when the server refuses sends (`rate_limited`): nothing is transmitted before.
    refused_until: Option<Instant>,
    /// The token the current link authenticates (or authenticated) with.
    token_in_use: Option<String>,
    /// A token the server said has expired: never sent again.
    expired_token: Option<String>,
    /// The token fetch under way for an in-band `refresh`.
    refresh_request: Option<RequestId>,
    reconnects: u64,
    frames_in: u64,
    frames_out: u64,
    last_rtt: Option<Duration>,
    last_error: Option<LinkError>,
}

impl Connection {
    /// A connection in `disconnected { NotStarted }`; call [`connect`](Self::connect) to start.
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        Connection {
            rng: Rng::new(config.seed),
            outbox: Outbox::new(config.outbox_max_messages, config.outbox_max_bytes),
            next_send: config
                .first_send_id
                .clamp(1, crate::protocol::MAX_WIRE_ID + 1),
            config,
            state: ConnectionState::Disconnected {
                reason: DisconnectReason::NotStarted,
            },
            state_since: now,
            last_now: now,
            timers: TimerTable::default(),
            actions: Queue::default(),
            events: Queue::default(),
            link: Link::Idle,
            next_socket: 1,
            next_request: 1,
            retries: 0,
            online: true,
            visible: true,
            stopped: false,
            session: None,
            user: None,
            rooms: RoomSet::default(),
            request_timeouts: Vec::new(),
            inbox: Inbox::default(),
            pacer: None,
            refused_until: None,
            token_in_use: None,
            expired_token: None,
            refresh_request: None,
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
        self.rooms.iter()
    }

    /// What made the link fail last, if it ever failed.
    pub fn last_error(&self) -> Option<&LinkError> {
        self.last_error.as_ref()
    }

    /// The user the last `authenticated` named, once there was one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Where the next session would resume: the last session and the highest contiguous seq
    /// received in it. A driver may persist it (with the client id) so a later life of the
    /// client resumes instead of starting over; see [`resume_from`](Self::resume_from).
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.session.clone().map(|session| ResumePoint {
            session,
            seq: self.inbox.last_seq(),
        })
    }

    /// The id the next send will take.
    pub fn next_send_id(&self) -> SendId {
        SendId(self.next_send)
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

    /// The next thing the driver must do. Call after every input or command until `None`.
    #[must_use = "call after every input or command, until it returns None"]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing the application hears. Call after draining
    /// [`poll_action`](Self::poll_action), until `None`.
    #[must_use = "call after every input or command, until it returns None"]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to feed [`Input::Timeout`] next; never earlier than the last `now` given. Call after
    /// draining the actions and events.
    #[must_use = "feed Input::Timeout at this instant"]
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
            Timer::ConnectTimeout => self.fail(now, Failure::Retryable(LinkError::ConnectTimeout)),
            Timer::AuthTimeout => self.fail(now, Failure::Retryable(LinkError::AuthTimeout)),
            Timer::Backoff => {
                let attempt = self.retries;
                self.start_attempt(now, attempt, Cause::Retry);
            }
            Timer::HeartbeatDeadline => {
                let silent = match self.link {
                    Link::Live { heartbeat, .. } => heartbeat + self.config.heartbeat_grace,
                    _ => self.config.heartbeat_grace,
                };
                let silent_ms = u64::try_from(silent.as_millis()).unwrap_or(u64::MAX);
                self.fail(
                    now,
                    Failure::Retryable(LinkError::HeartbeatTimeout { silent_ms }),
                );
            }
            Timer::AckFlush => self.flush_inbox_ack(),
            Timer::HiddenGrace => self.pause(),
            Timer::OutboxReady => self.pump_outbox(now),
            Timer::TokenRefresh => self.start_refresh(now),
            Timer::Request(id) => {
                let timeout = self.take_request_timeout(id).unwrap_or_default();
                if self.outbox.remove(id).is_some() {
                    self.events.push_back(Event::Ack {
                        id,
                        result: Err(AckError::Timeout {
                            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
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
                let auth = encode::auth(token, self.config.client_id.as_deref(), resume.as_ref());
                self.link = Link::AwaitingAuth { socket };
                self.send_frame(auth);
                self.timers.cancel(Timer::ConnectTimeout);
                self.timers
                    .set(Timer::AuthTimeout, now + self.config.auth_timeout);
                let attempt = self.state.attempt();
                self.set_state(
                    now,
                    ConnectionState::Authenticating { attempt },
                    Cause::SocketOpen,
                );
            }
            Transport::Frame(text) => {
                self.frames_in += 1;
                self.handle_frame(now, &text);
            }
            Transport::Binary => {
                self.frames_in += 1;
                self.note_traffic(now);
                self.events
                    .push_back(Event::Error(ClientError::BinaryFrame));
            }
            Transport::Closed { code, reason } => {
                // The socket is gone: nothing to close.
                self.reset_retries_if_stable(now);
                self.link = Link::Idle;
                let close = CloseCode(code);
                let failure = if close == CloseCode::TOKEN_EXPIRED {
                    self.expired_token = self.token_in_use.take();
                    Failure::Retryable(LinkError::TokenExpired)
                } else if close == CloseCode::AUTH_REJECTED {
                    Failure::Fatal(DisconnectReason::AuthRejected {
                        code: "rejected".into(),
                        message: reason,
                    })
                } else if !close.is_retryable() {
                    Failure::Fatal(DisconnectReason::Refused { code, reason })
                } else {
                    Failure::Retryable(LinkError::Closed { code, reason })
                };
                self.fail(now, failure);
            }
            Transport::Error(message) => {
                self.fail(now, Failure::Retryable(LinkError::Socket(message)));
            }
        }
    }

    /// Anything from the server proves a live link alive.
    fn note_traffic(&mut self, now: Instant) {
        if self.link.is_live() {
            self.arm_heartbeat(now);
        }
    }

    fn handle_env(&mut self, now: Instant, env: Env) {
        match env {
            Env::Online => {
                self.online = true;
                if self.stopped {
                    return;
                }
                self.come_back(now, Cause::Online);
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
                self.last_error = Some(LinkError::Offline);
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
                self.come_back(now, Cause::Visible);
            }
        }
    }
}
