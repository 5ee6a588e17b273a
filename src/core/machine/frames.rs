//! What each server frame does to a [`Connection`]: `authenticated` (a new or resumed link),
//! `auth_error`, `event` (durable with a contiguous seq, or volatile), `ack` (settled, refused
//! for the moment, or a room refused), `error`, `ping`, `refreshed`.

use std::borrow::Cow;
use std::time::Duration;

use super::super::inbox::Arrival;
use super::super::outbox::EntryKind;
use super::super::pacing::Pacer;
use super::{
    AckError, Cause, ClientError, Connection, ConnectionState, DisconnectReason, Event, Failure,
    Instant, Link, LinkError, Timer,
};
use crate::core::Payload;
use crate::protocol::{encode, ErrorBody, IncomingFrame, SendLimits};

impl Connection {
    pub(super) fn handle_frame(&mut self, now: Instant, text: &str) {
        let frame = match IncomingFrame::decode(text, self.config.max_frame_bytes) {
            Ok(frame) => frame,
            Err(error) => {
                self.events
                    .push_back(Event::Error(ClientError::BadFrame(error)));
                return;
            }
        };
        self.note_traffic(now);
        match frame {
            IncomingFrame::Authenticated {
                user_id,
                session,
                heartbeat_ms,
                resumed,
                missed,
                expires_in_ms,
                limits,
                ..
            } => self.handle_authenticated(
                now,
                Authenticated {
                    user_id: user_id.into_owned(),
                    session: session.into_owned(),
                    heartbeat_ms,
                    resumed,
                    missed,
                    expires_in_ms,
                    limits,
                },
            ),
            IncomingFrame::AuthError { code, message } => {
                self.handle_auth_error(now, code.into_owned(), message.into_owned())
            }
            IncomingFrame::Event {
                seq, event, data, ..
            } => self.handle_event(now, seq, event, data),
            IncomingFrame::Ack {
                id,
                ok,
                data,
                error,
            } => self.handle_ack(
                now,
                id,
                ok,
                data.map(|d| Payload::from_valid(d.to_owned())),
                error,
            ),
            IncomingFrame::Error { code, message } => {
                self.events.push_back(Event::Error(ClientError::Server {
                    code: code.into_owned(),
                    message: message.into_owned(),
                }));
            }
            IncomingFrame::Ping { t, rtt_ms } => {
                if let Some(rtt) = rtt_ms {
                    self.last_rtt = Some(Duration::from_millis(rtt));
                }
                self.send_frame(encode::pong(t));
            }
            IncomingFrame::Refreshed { expires_in_ms } => {
                if !self.link.is_live() {
                    return self.unexpected("refreshed");
                }
                self.schedule_refresh(now, Some(expires_in_ms));
            }
        }
    }

    pub(super) fn unexpected(&mut self, frame: &'static str) {
        self.events
            .push_back(Event::Error(ClientError::UnexpectedFrame { frame }));
    }

    fn handle_auth_error(&mut self, now: Instant, code: String, message: String) {
        let refreshing = self.link.is_live();
        if !refreshing && !matches!(self.link, Link::AwaitingAuth { .. }) {
            return self.unexpected("auth_error");
        }
        let failure = match code.as_str() {
            // The server's own auth deadline: an ordinary retry.
            "timeout" if !refreshing => Failure::Retryable(LinkError::AuthTimeout),
            // A fresh token may fix it; the one that expired is never sent again.
            "expired" => {
                self.expired_token = self.token_in_use.take();
                Failure::Retryable(LinkError::TokenExpired)
            }
            _ => Failure::Fatal(DisconnectReason::AuthRejected { code, message }),
        };
        self.fail(now, failure);
    }

    /// An `event` frame; its name and payload are copied out of the frame only when delivered.
    fn handle_event(&mut self, now: Instant, seq: Option<u64>, event: Cow<'_, str>, data: &str) {
        if !self.link.is_live() {
            return self.unexpected("event");
        }
        let message = |seq| Event::Message {
            event: event.into_owned(),
            data: Payload::from_valid(data.to_owned()),
            seq,
        };
        let Some(seq) = seq else {
            // Volatile: live only, never acknowledged or replayed.
            self.events.push_back(message(None));
            return;
        };
        match self.inbox.accept(seq) {
            Arrival::Deliver => {
                self.events.push_back(message(Some(seq)));
                if self.inbox.unacked() >= self.config.ack_batch {
                    self.flush_inbox_ack();
                } else if !self.timers.is_set(Timer::AckFlush) {
                    self.timers
                        .set(Timer::AckFlush, now + self.config.ack_delay);
                }
            }
            Arrival::Duplicate => {}
            Arrival::Gap { expected } => {
                // Never skip ahead: resume from the contiguous point so the server replays
                // what was lost, in order (or says it cannot: `resume_failed`).
                self.flush_inbox_ack();
                let got = seq;
                self.events
                    .push_back(Event::Error(ClientError::SeqGap { expected, got }));
                self.fail(now, Failure::Retryable(LinkError::SeqGap { expected, got }));
            }
        }
    }

    fn handle_authenticated(&mut self, now: Instant, hello: Authenticated) {
        let Link::AwaitingAuth { socket } = self.link else {
            return self.unexpected("authenticated");
        };
        let asked_to_resume = self.session.is_some();
        self.link = Link::Live {
            socket,
            heartbeat: Duration::from_millis(hello.heartbeat_ms.max(1)),
            since: now,
        };
        self.timers.cancel(Timer::AuthTimeout);
        self.arm_heartbeat(now);
        self.expired_token = None;
        self.schedule_refresh(now, hello.expires_in_ms);
        self.pacer = Pacer::new(hello.limits, now);
        self.refused_until = None;
        let resumed = hello.resumed && asked_to_resume;
        if resumed {
            // The resume point told the server what we have: nothing new to ack yet.
            self.inbox.take_ack();
            self.outbox.start_link(None);
        } else {
            self.inbox.reset();
            let rooms: Vec<String> = self.rooms.iter().map(str::to_owned).collect();
            let rejoin = rooms
                .into_iter()
                .filter_map(|room| self.room_entry(room, true))
                .collect();
            self.outbox.start_link(Some(rejoin));
        }
        // Sends restored for another user never go out in this one's name.
        for entry in self.outbox.claim_for(&hello.user_id) {
            self.events.push_back(Event::Ack {
                id: entry.id,
                result: Err(AckError::OtherUser),
            });
        }
        self.user = Some(hello.user_id);
        self.session = Some(hello.session.clone());
        self.set_state(
            now,
            ConnectionState::Connected {
                session: hello.session,
            },
            Cause::Authenticated,
        );
        if resumed {
            self.events.push_back(Event::Resumed {
                missed: hello.missed,
            });
        } else if asked_to_resume {
            self.events.push_back(Event::ResumeFailed);
        }
        self.pump_outbox(now);
    }

    fn handle_ack(
        &mut self,
        now: Instant,
        id: u64,
        ok: bool,
        data: Option<Payload>,
        error: Option<ErrorBody>,
    ) {
        if !self.link.is_live() {
            // Before `authenticated` the server knows no user, so no ack can be its answer.
            return self.unexpected("ack");
        }
        let error = error.unwrap_or_else(|| ErrorBody::new("rejected", ""));
        if !ok && error.code == "rate_limited" {
            // Not processed: it and everything behind it go out again, in place, same ids.
            let wait = error
                .retry_after_ms
                .map_or(self.config.rate_limit_retry, Duration::from_millis);
            return self.refuse_for_now(now, id, wait);
        }
        let Some(entry) = self.outbox.take_acked(id) else {
            return; // a repeated ack for a send already settled
        };
        match entry.kind {
            EntryKind::App => {
                self.timers.cancel(Timer::Request(entry.id));
                self.take_request_timeout(entry.id);
                let result = if ok {
                    Ok(data)
                } else {
                    Err(AckError::Rejected {
                        code: error.code,
                        message: error.message,
                    })
                };
                self.events.push_back(Event::Ack {
                    id: entry.id,
                    result,
                });
            }
            EntryKind::Room { room, join } => {
                if !ok {
                    if join {
                        self.rooms.remove(&room);
                    }
                    self.events.push_back(Event::Error(ClientError::Room {
                        room,
                        code: error.code,
                        message: error.message,
                    }));
                }
            }
        }
    }
}

/// What `authenticated` says.
struct Authenticated {
    user_id: String,
    session: String,
    heartbeat_ms: u64,
    resumed: bool,
    missed: u64,
    expires_in_ms: Option<u64>,
    limits: Option<SendLimits>,
}
