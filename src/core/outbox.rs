//! The outbox: the bounded queue of client sends, their per-session wire ids, acks and resend.
//!
//! Every send stays here from `send()` until the server acks it (or its request times out), so a
//! send is always acked, still queued, or reported failed — never silently gone. Each entry
//! carries the application's [`SendId`] (stable for the client's life) and, once transmitted in
//! the current session, a wire id. Wire ids increase within a session in transmission order,
//! which is what lets the server drop a resent frame it already processed. A new (not resumed)
//! session renumbers everything from 1.

use std::collections::VecDeque;

use super::SendId;

/// What an entry is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// An application send: its ack becomes an `Event::Ack`.
    App,
    /// A `join_room` / `leave_room` the core sends on the app's behalf; not counted against the
    /// bounds and superseded by the room set when a session starts over.
    Room {
        /// The room joined or left.
        room: String,
        /// `true` for `join_room`, `false` for `leave_room`.
        join: bool,
    },
}

/// One queued send.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The application-facing id.
    pub id: SendId,
    /// What the entry is for.
    pub kind: EntryKind,
    /// The event name, already JSON-encoded (a quoted string).
    event_json: String,
    /// The payload, already JSON-encoded.
    data_json: String,
    /// The wire id in the current session, once transmitted.
    wire_id: Option<u64>,
}

impl Entry {
    /// A new entry that has not been transmitted yet.
    pub fn new(id: SendId, kind: EntryKind, event_json: String, data_json: String) -> Self {
        Entry {
            id,
            kind,
            event_json,
            data_json,
            wire_id: None,
        }
    }

    /// The size this entry counts against the byte bound.
    pub fn bytes(&self) -> usize {
        self.event_json.len() + self.data_json.len()
    }

    fn frame(&self, wire_id: u64) -> String {
        crate::protocol::encode::send(wire_id, &self.event_json, &self.data_json)
    }
}

/// Why the outbox refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The bounded send queue.
#[derive(Debug, Clone)]
pub struct Outbox {
    entries: VecDeque<Entry>,
    app_count: usize,
    app_bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    next_wire_id: u64,
}

impl Outbox {
    /// An empty outbox holding at most `max_messages` application sends and `max_bytes` bytes.
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Outbox {
            entries: VecDeque::new(),
            app_count: 0,
            app_bytes: 0,
            max_messages,
            max_bytes,
            next_wire_id: 1,
        }
    }

    /// Queues `entry` at the back. Application entries that would exceed a bound are refused;
    /// room entries are always taken.
    pub fn push(&mut self, entry: Entry) -> Result<(), Full> {
        if entry.kind == EntryKind::App {
            if self.app_count + 1 > self.max_messages
                || self.app_bytes + entry.bytes() > self.max_bytes
            {
                return Err(Full);
            }
            self.app_count += 1;
            self.app_bytes += entry.bytes();
        }
        self.entries.push_back(entry);
        Ok(())
    }

    /// Assigns a wire id to the last entry and returns its frame (for a send made while live).
    pub fn transmit_last(&mut self) -> Option<String> {
        let wire_id = self.next_wire_id;
        let entry = self.entries.back_mut()?;
        self.next_wire_id += 1;
        entry.wire_id = Some(wire_id);
        Some(entry.frame(wire_id))
    }

    /// Every entry's frame, in order, assigning wire ids to entries that have none yet in this
    /// session (for the flush after `authenticated`).
    pub fn transmit_all(&mut self) -> Vec<String> {
        let mut frames = Vec::with_capacity(self.entries.len());
        for entry in &mut self.entries {
            let wire_id = match entry.wire_id {
                Some(id) => id,
                None => {
                    let id = self.next_wire_id;
                    self.next_wire_id += 1;
                    entry.wire_id = Some(id);
                    id
                }
            };
            frames.push(entry.frame(wire_id));
        }
        frames
    }

    /// The frames of the entries not yet transmitted in this session, in order, with new wire
    /// ids (for sends put back after the server refused them with `rate_limited`).
    pub fn transmit_unsent(&mut self) -> Vec<String> {
        let mut frames = Vec::new();
        for entry in &mut self.entries {
            if entry.wire_id.is_none() {
                let id = self.next_wire_id;
                self.next_wire_id += 1;
                entry.wire_id = Some(id);
                frames.push(entry.frame(id));
            }
        }
        frames
    }

    /// Puts an entry the server refused for the moment back at the end of the queue, with no
    /// wire id: the refused id is spent, so it goes out again under a new one.
    pub fn requeue(&mut self, mut entry: Entry) {
        entry.wire_id = None;
        if entry.kind == EntryKind::App {
            self.app_count += 1;
            self.app_bytes += entry.bytes();
        }
        self.entries.push_back(entry);
    }

    /// Starts a new server session: forgets every wire id and drops the room entries (the
    /// connection re-joins its room set instead). `rejoin` entries go first, then the rest in
    /// their original order.
    pub fn start_session(&mut self, rejoin: Vec<Entry>) {
        self.next_wire_id = 1;
        self.entries.retain(|e| e.kind == EntryKind::App);
        for entry in &mut self.entries {
            entry.wire_id = None;
        }
        for entry in rejoin.into_iter().rev() {
            self.entries.push_front(entry);
        }
    }

    /// Removes and returns the entry the server acked with `wire_id`.
    pub fn take_acked(&mut self, wire_id: u64) -> Option<Entry> {
        let index = self
            .entries
            .iter()
            .position(|e| e.wire_id == Some(wire_id))?;
        self.remove_at(index)
    }

    /// Removes and returns the entry with application id `id` (a request that timed out).
    pub fn remove(&mut self, id: SendId) -> Option<Entry> {
        let index = self.entries.iter().position(|e| e.id == id)?;
        self.remove_at(index)
    }

    fn remove_at(&mut self, index: usize) -> Option<Entry> {
        let entry = self.entries.remove(index)?;
        if entry.kind == EntryKind::App {
            self.app_count -= 1;
            self.app_bytes -= entry.bytes();
        }
        Some(entry)
    }

    /// Whether an entry with application id `id` is queued.
    pub fn contains(&self, id: SendId) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// How many application sends are queued (sent or not, awaiting their ack).
    pub fn len(&self) -> usize {
        self.app_count
    }

    /// The bytes the queued application sends count against the bound.
    pub fn bytes(&self) -> usize {
        self.app_bytes
    }
}
