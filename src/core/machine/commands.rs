//! The commands of [`Connection`]: `connect`, `disconnect`, `send`, `request`, `join`, `leave`,
//! and the outbox entries they queue.

use std::time::Duration;

use super::super::outbox::{Entry, EntryKind};
use super::{AckError, Timer};
use super::{
    Cause, Connection, ConnectionState, DisconnectReason, Event, Instant, Payload, SendId,
};
use crate::error::SendError;
use crate::protocol::json;

/// Room for the frame envelope around an entry's event and data (`{"type":"send","id":…}`).
const SEND_ENVELOPE_BYTES: usize = 64;

impl Connection {
    /// Starts connecting (from `disconnected`, whatever the reason) with the backoff reset.
    /// Does nothing while already connecting, connected or reconnecting.
    pub fn connect(&mut self, now: Instant) {
        let now = self.advance(now);
        if let ConnectionState::Disconnected { .. } = self.state {
            self.stopped = false;
            self.restart(now, Cause::Connect);
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
        if self.link.is_live() {
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
        let stopped = ConnectionState::Disconnected {
            reason: DisconnectReason::Requested,
        };
        if self.state != stopped {
            self.set_state(now, stopped, Cause::Stopped(DisconnectReason::Requested));
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

    /// Like [`send`](Self::send), but gives up after `timeout` (the config's
    /// [`request_timeout`](super::ConnectionConfig::request_timeout) when `None`): if no ack
    /// arrived by then the send is removed from the outbox and reported as
    /// `Ack { result: Err(Timeout) }`.
    pub fn request(
        &mut self,
        now: Instant,
        event: &str,
        data: &Payload,
        timeout: Option<Duration>,
    ) -> Result<SendId, SendError> {
        let now = self.advance(now);
        if self.stopped {
            // No ack can come until `connect()`: refuse rather than leave the caller waiting.
            return Err(SendError::Disconnected);
        }
        let timeout = timeout.unwrap_or(self.config.request_timeout);
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
        if self.rooms.insert(room) {
            self.queue_room(room.to_owned(), true);
        }
    }

    /// Removes `room` from the room set and leaves it.
    pub fn leave(&mut self, now: Instant, room: &str) {
        self.advance(now);
        if self.rooms.remove(room) {
            self.queue_room(room.to_owned(), false);
        }
    }

    /// Forgets request `id`'s timeout and returns it.
    pub(super) fn take_request_timeout(&mut self, id: SendId) -> Option<Duration> {
        let index = self.request_timeouts.iter().position(|(i, _)| *i == id)?;
        Some(self.request_timeouts.remove(index).1)
    }

    fn queue_room(&mut self, room: String, join: bool) {
        let entry = self.room_entry(room, join);
        // Room entries are exempt from the bounds, so this cannot fail.
        let _ = self.outbox.push(entry);
        self.transmit_last_if_live();
    }

    /// A `join_room` / `leave_room` entry for `room`, under the next send id.
    pub(super) fn room_entry(&mut self, room: String, join: bool) -> Entry {
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
        if self.link.is_live() {
            if let Some(frame) = self.outbox.transmit_last() {
                self.send_frame(frame);
            }
        }
    }
}
