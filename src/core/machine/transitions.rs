//! The transitions of [`Connection`] the inputs and commands share: starting an attempt,
//! failing a link (retry, wait for the network, or stop), pausing, and the small steps under
//! them (closing the socket, arming the heartbeat, sending a frame, changing state).

use super::{
    Action, Cause, CloseCode, Connection, ConnectionState, DisconnectReason, Event, Failure,
    Instant, Link, LinkError, RequestId, SocketId, Timer,
};
use crate::protocol::encode;

impl Connection {
    /// Starts over: backoff reset, first attempt now (or wait if offline).
    pub(super) fn restart(&mut self, now: Instant, cause: Cause) {
        self.retries = 0;
        self.timers.cancel(Timer::Backoff);
        // Started (or revived) while the page is hidden: pause as a hidden page would.
        if !self.visible && self.config.pause_when_hidden && self.pause_soon(now) {
            return;
        }
        self.start_attempt(now, 0, cause);
    }

    /// The network or the page (`cause` says which) came back: a scheduled retry runs now
    /// (count kept); a client waiting for the network, one that gave up, or — for the page —
    /// one paused while hidden starts over with the backoff reset.
    pub(super) fn come_back(&mut self, now: Instant, cause: Cause) {
        let from_pause = cause == Cause::Visible;
        match &self.state {
            ConnectionState::Reconnecting {
                next_at: Some(_), ..
            } => self.retry_now(now, cause),
            ConnectionState::Reconnecting { next_at: None, .. }
            | ConnectionState::Disconnected {
                reason: DisconnectReason::RetriesExhausted { .. },
            } => self.restart(now, cause),
            ConnectionState::Disconnected {
                reason: DisconnectReason::Paused,
            } if from_pause => self.restart(now, cause),
            _ => {}
        }
    }

    /// The page is hidden: pause now (no grace) or arm the grace timer. Whether it paused now.
    pub(super) fn pause_soon(&mut self, now: Instant) -> bool {
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
    fn retry_now(&mut self, now: Instant, cause: Cause) {
        self.timers.cancel(Timer::Backoff);
        let attempt = self.retries;
        self.start_attempt(now, attempt, cause);
    }

    /// Starts attempt `attempt`: the static token opens a socket at once, a provider is asked
    /// for one first.
    pub(super) fn start_attempt(&mut self, now: Instant, attempt: u32, cause: Cause) {
        self.drop_link("restarting");
        if !self.online {
            return self.wait_for_network(now);
        }
        let token = self.config.token.as_ref().map(|t| t.expose().to_owned());
        if let (Some(token), Some(expired)) = (&token, &self.expired_token) {
            if token == expired {
                // `open_socket_with` refuses it: stop before changing state.
                return self.open_socket_with(now, token.clone());
            }
        }
        self.timers
            .set(Timer::ConnectTimeout, now + self.config.connect_timeout);
        self.set_state(now, ConnectionState::Connecting { attempt }, cause);
        match token {
            Some(token) => self.open_socket_with(now, token),
            None => {
                let request = RequestId(self.next_request);
                self.next_request += 1;
                self.link = Link::AwaitingToken { request };
                self.actions.push_back(Action::FetchToken { request });
            }
        }
    }

    /// Asks the driver for a socket that will authenticate with `token`.
    pub(super) fn open_socket(&mut self, token: String) {
        let socket = SocketId(self.next_socket);
        self.next_socket += 1;
        self.link = Link::AwaitingOpen { socket, token };
        self.actions.push_back(Action::OpenSocket {
            socket,
            url: self.config.url.clone(),
        });
    }

    /// Offline: wait in `reconnecting` with no timer and no retry spent until `Env(Online)`.
    pub(super) fn wait_for_network(&mut self, now: Instant) {
        self.set_state(
            now,
            ConnectionState::Reconnecting {
                attempt: self.retries,
                next_at: None,
            },
            Cause::Lost(LinkError::Offline),
        );
    }

    /// The link failed: close what is open, then retry later, wait for the network, or stop.
    pub(super) fn fail(&mut self, now: Instant, failure: Failure) {
        let was_connected = self.state.is_connected();
        self.reset_retries_if_stable(now);
        let error = match failure {
            Failure::Retryable(error) => error,
            Failure::Fatal(reason) => {
                self.drop_link(&reason.message());
                if was_connected {
                    self.reconnects += 1;
                }
                let cause = Cause::Stopped(reason.clone());
                return self.set_state(now, ConnectionState::Disconnected { reason }, cause);
            }
        };
        self.drop_link(&error.message());
        self.last_error = Some(error.clone());
        if was_connected {
            self.reconnects += 1;
        }
        if !self.online {
            return self.wait_for_network(now);
        }
        if self
            .config
            .backoff
            .max_retries
            .is_some_and(|max| self.retries >= max)
        {
            let reason = DisconnectReason::RetriesExhausted {
                retries: self.retries,
                last_error: error.message(),
            };
            let cause = Cause::Stopped(reason.clone());
            return self.set_state(now, ConnectionState::Disconnected { reason }, cause);
        }
        self.retries = self.retries.saturating_add(1);
        let delay = if error.retries_at_once() {
            std::time::Duration::ZERO
        } else {
            self.config.backoff.delay(self.retries, &mut self.rng)
        };
        let next_at = now + delay;
        self.timers.set(Timer::Backoff, next_at);
        self.set_state(
            now,
            ConnectionState::Reconnecting {
                attempt: self.retries,
                next_at: Some(next_at),
            },
            Cause::Lost(error),
        );
    }

    /// A live link that lasted `stable_after` resets the retry count: only a server that drops
    /// connections at once exhausts the retries.
    pub(super) fn reset_retries_if_stable(&mut self, now: Instant) {
        if let Link::Live { since, .. } = self.link {
            if now.saturating_duration_since(since) >= self.config.stable_after {
                self.retries = 0;
            }
        }
    }

    /// Hidden for long enough: close and wait for visible.
    pub(super) fn pause(&mut self) {
        let now = self.last_now;
        self.drop_link("paused while hidden");
        self.timers.cancel(Timer::Backoff);
        self.set_state(
            now,
            ConnectionState::Disconnected {
                reason: DisconnectReason::Paused,
            },
            Cause::Stopped(DisconnectReason::Paused),
        );
    }

    /// Closes the current socket (if any), forgets the link and its timers.
    pub(super) fn drop_link(&mut self, reason: &str) {
        if let Some(socket) = self.link.socket() {
            self.actions.push_back(Action::CloseSocket {
                socket,
                code: CloseCode::NORMAL.0,
                reason: reason.to_owned(),
            });
        }
        self.link = Link::Idle;
        self.refresh_request = None;
        for timer in [
            Timer::ConnectTimeout,
            Timer::AuthTimeout,
            Timer::HeartbeatDeadline,
            Timer::AckFlush,
            Timer::OutboxReady,
            Timer::TokenRefresh,
        ] {
            self.timers.cancel(timer);
        }
    }

    pub(super) fn arm_heartbeat(&mut self, now: Instant) {
        if let Link::Live { heartbeat, .. } = self.link {
            self.timers.set(
                Timer::HeartbeatDeadline,
                now + heartbeat + self.config.heartbeat_grace,
            );
        }
    }

    pub(super) fn flush_inbox_ack(&mut self) {
        self.timers.cancel(Timer::AckFlush);
        if self.link.is_live() {
            if let Some(seq) = self.inbox.take_ack() {
                self.send_frame(encode::ack(seq));
            }
        }
    }

    pub(super) fn send_frame(&mut self, text: String) {
        if let Some(socket) = self.link.socket() {
            self.frames_out += 1;
            self.actions.push_back(Action::SendFrame { socket, text });
        }
    }

    pub(super) fn set_state(&mut self, now: Instant, to: ConnectionState, cause: Cause) {
        if to == self.state {
            return;
        }
        if let ConnectionState::Disconnected { .. } = to {
            // Down for good (or paused already): a pending pause must not rewrite the reason.
            self.timers.cancel(Timer::HiddenGrace);
        }
        let from = std::mem::replace(&mut self.state, to.clone());
        self.state_since = now;
        self.events
            .push_back(Event::StateChanged { from, to, cause });
    }
}
