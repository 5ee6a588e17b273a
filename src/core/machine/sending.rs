//! Queueing and sending for a [`Connection`]: outbox entries (application sends and room
//! joins/leaves, numbered from one per-client counter), the strictly ordered, paced
//! transmission of the queue, and the in-place retry after a `rate_limited` refusal.

use std::time::Duration;

use super::super::outbox::{Entry, EntryKind};
use super::{Connection, Instant, Timer};
use crate::core::{Payload, SendId};
use crate::error::SendError;
use crate::protocol::{json, MAX_WIRE_ID};

/// Room for the frame envelope around an entry's event and data (`{"type":"send","id":…}`).
const SEND_ENVELOPE_BYTES: usize = 64;

impl Connection {
    pub(super) fn enqueue(
        &mut self,
        now: Instant,
        event: &str,
        data: &Payload,
        timeout: Option<Duration>,
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
        if self.next_send > MAX_WIRE_ID {
            return Err(SendError::IdsExhausted);
        }
        let id = SendId(self.next_send);
        let entry = Entry::new(id, EntryKind::App, event_json, data_json);
        self.outbox.push(entry).map_err(|_| SendError::OutboxFull {
            max_messages: self.config.outbox_max_messages,
            max_bytes: self.config.outbox_max_bytes,
        })?;
        self.next_send += 1;
        if let Some(timeout) = timeout {
            self.request_timeouts.push((id, timeout));
            self.timers.set(Timer::Request(id), now + timeout);
        }
        self.pump_outbox(now);
        Ok(id)
    }

    /// Forgets request `id`'s timeout and returns it.
    pub(super) fn take_request_timeout(&mut self, id: SendId) -> Option<Duration> {
        let index = self.request_timeouts.iter().position(|(i, _)| *i == id)?;
        Some(self.request_timeouts.remove(index).1)
    }

    pub(super) fn queue_room(&mut self, now: Instant, room: String, join: bool) {
        if let Some(entry) = self.room_entry(room, join) {
            // Room entries are exempt from the bounds, so this cannot fail.
            let _ = self.outbox.push(entry);
            self.pump_outbox(now);
        }
    }

    /// A `join_room` / `leave_room` entry for `room` under the next send id (`None` once every
    /// id up to 2^53 − 1 is spent: the room set still changes, the server is not told).
    pub(super) fn room_entry(&mut self, room: String, join: bool) -> Option<Entry> {
        if self.next_send > MAX_WIRE_ID {
            return None;
        }
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
        Some(Entry::new(
            id,
            EntryKind::Room { room, join },
            event.into(),
            data,
        ))
    }

    /// Transmits the queue in order, as far as the server's refusal window and the pacing
    /// bucket allow; arms [`Timer::OutboxReady`] for when the next one may go.
    pub(super) fn pump_outbox(&mut self, now: Instant) {
        if !self.link.is_live() {
            return;
        }
        while self.outbox.has_unsent() {
            if let Some(until) = self.refused_until.filter(|until| *until > now) {
                return self.timers.set(Timer::OutboxReady, until);
            }
            if let Some(pacer) = &mut self.pacer {
                if let Err(at) = pacer.take(now) {
                    return self.timers.set(Timer::OutboxReady, at);
                }
            }
            if let Some(frame) = self.outbox.transmit_next() {
                self.send_frame(frame);
            }
        }
    }

    /// The server refused send `id` with `rate_limited`: it and everything behind it wait in
    /// place for `wait`, then go out again in order under the same ids.
    pub(super) fn refuse_for_now(&mut self, now: Instant, id: u64, wait: Duration) {
        if !self.outbox.unsend_from(id) {
            return; // already settled
        }
        let until = now + wait;
        self.refused_until = Some(self.refused_until.map_or(until, |u| u.max(until)));
        self.pump_outbox(now);
    }
}
