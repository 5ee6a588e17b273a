//! The commands of [`Connection`]: `connect`, `disconnect`, `send`, `request`, `join`, `leave`.

use std::time::Duration;

use super::{
    AckError, Cause, Connection, ConnectionState, DisconnectReason, Event, Instant, Payload, SendId,
};
use crate::error::SendError;

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

    /// Connects again now with the backoff reset, whatever the state: a live (or opening) link
    /// is closed with 1000 and replaced, a scheduled retry runs at once, a client that stopped
    /// (gave up, was refused, or `disconnect()`ed) starts again. Queued sends and requests in
    /// flight are kept and go out on the new link under their ids (nothing is failed).
    /// `connect()` differs only in doing nothing unless `disconnected`.
    pub fn reconnect(&mut self, now: Instant) {
        let now = self.advance(now);
        self.stopped = false;
        if self.state.is_connected() {
            self.reconnects += 1;
        }
        self.restart(now, Cause::Reconnect);
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
        let now = self.advance(now);
        self.enqueue(now, event, data, None)
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
        self.enqueue(now, event, data, Some(timeout))
    }

    /// Adds `room` to the room set and joins it (now if connected, else on the next session).
    pub fn join(&mut self, now: Instant, room: &str) {
        let now = self.advance(now);
        if self.rooms.insert(room) {
            self.queue_room(now, room.to_owned(), true);
        }
    }

    /// Removes `room` from the room set and leaves it.
    pub fn leave(&mut self, now: Instant, room: &str) {
        let now = self.advance(now);
        if self.rooms.remove(room) {
            self.queue_room(now, room.to_owned(), false);
        }
    }

    /// Restores a send an earlier life of this client made (same client id) and had not seen
    /// acked — kept by the driver in durable storage — under its original `id`, so the server's
    /// (user, client) dedupe processes it once. It is queued in id order, before newer sends.
    /// With `owner`, it goes out only in a session of that user; a session of another user
    /// removes it and reports `Ack { Err(OtherUser) }`. New sends continue above `id`.
    ///
    /// `Err` when the id is out of range or already queued, or the outbox is full.
    pub fn restore_send(
        &mut self,
        now: Instant,
        id: SendId,
        event: &str,
        data: &Payload,
        owner: Option<&str>,
    ) -> Result<(), SendError> {
        let now = self.advance(now);
        if event.is_empty() {
            return Err(SendError::EmptyEventName);
        }
        if !crate::protocol::is_wire_id(id.0) || self.outbox.contains(id) {
            return Err(SendError::InvalidId);
        }
        let mut event_json = String::new();
        crate::protocol::json::write_string(&mut event_json, event);
        let entry = super::super::outbox::Entry::restored(
            id,
            event_json,
            String::from(data.json()),
            owner.map(str::to_owned),
        );
        self.outbox
            .insert_restored(entry)
            .map_err(|_| SendError::OutboxFull {
                max_messages: self.config.outbox_max_messages,
                max_bytes: self.config.outbox_max_bytes,
            })?;
        self.next_send = self.next_send.max(id.0 + 1);
        self.pump_outbox(now);
        Ok(())
    }

    /// Makes the next `auth` ask to resume `point` (a session an earlier life of this client,
    /// or another tab of the same client, had): events after `point.seq` are replayed if the
    /// server still has them, else the app hears `ResumeFailed`. Ignored once a session exists.
    pub fn resume_from(&mut self, point: crate::protocol::ResumePoint) {
        if self.session.is_some() || point.seq > crate::protocol::MAX_WIRE_ID {
            return;
        }
        self.session = Some(point.session);
        self.inbox.resume_at(point.seq);
    }
}
