//! The outbox: the bounded queue of client sends, in order, from `send()` until their ack.
//!
//! Every send stays here until the server acks it (or its request times out), so a send is
//! always acked, still queued, or reported failed — never silently gone. An entry's wire id is
//! its [`SendId`]: per client, increasing, never reused and never renumbered, so after any
//! reconnect — resumed or not — the same send goes out under the same id and the server's
//! (user, client) dedupe processes it once (PROTOCOL.md §5).
//!
//! Entries go out strictly in order: the connection always transmits the first entry not yet
//! sent on this link. A send the server refused with `rate_limited` goes back to "not sent" in
//! place, and so does everything queued behind it, so nothing overtakes it.

use super::SendId;

/// What an entry is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
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
pub(crate) struct Entry {
    /// The id, on the wire and for the application.
    pub(crate) id: SendId,
    /// What the entry is for.
    pub(crate) kind: EntryKind,
    /// The event name, already JSON-encoded (a quoted string).
    event_json: String,
    /// The payload, already JSON-encoded.
    data_json: String,
    /// Transmitted on the current link (and not refused since).
    sent: bool,
    /// For a send restored from an earlier life: the user it was made for (`None`: whoever
    /// authenticates). It goes out only in a session of that user.
    owner: Option<String>,
}

impl Entry {
    /// A new entry that has not been transmitted yet.
    pub(crate) fn new(id: SendId, kind: EntryKind, event_json: String, data_json: String) -> Self {
        Entry {
            id,
            kind,
            event_json,
            data_json,
            sent: false,
            owner: None,
        }
    }

    /// An entry restored from an earlier life of the client, for `owner`.
    pub(crate) fn restored(
        id: SendId,
        event_json: String,
        data_json: String,
        owner: Option<String>,
    ) -> Self {
        Entry {
            owner,
            ..Entry::new(id, EntryKind::App, event_json, data_json)
        }
    }

    /// The size this entry counts against the byte bound.
    fn bytes(&self) -> usize {
        self.event_json.len() + self.data_json.len()
    }

    fn frame(&self) -> String {
        crate::protocol::encode::send(self.id.0, &self.event_json, &self.data_json)
    }
}

/// Why the outbox refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// The bounded send queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    entries: Vec<Entry>,
    app_count: usize,
    app_bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl Outbox {
    /// An empty outbox holding at most `max_messages` application sends and `max_bytes` bytes.
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Outbox {
            entries: Vec::new(),
            app_count: 0,
            app_bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Queues `entry` at the back. Application entries that would exceed a bound are refused;
    /// room entries are always taken.
    pub(crate) fn push(&mut self, entry: Entry) -> Result<(), Full> {
        if entry.kind == EntryKind::App {
            if self.app_count + 1 > self.max_messages
                || self.app_bytes + entry.bytes() > self.max_bytes
            {
                return Err(Full);
            }
            self.app_count += 1;
            self.app_bytes += entry.bytes();
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Queues a restored entry in id order (older ids first), or refuses it when its id is
    /// already queued or a bound would be exceeded.
    pub(crate) fn insert_restored(&mut self, entry: Entry) -> Result<(), Full> {
        if self.contains(entry.id)
            || self.app_count + 1 > self.max_messages
            || self.app_bytes + entry.bytes() > self.max_bytes
        {
            return Err(Full);
        }
        self.app_count += 1;
        self.app_bytes += entry.bytes();
        let at = self
            .entries
            .iter()
            .position(|e| e.id > entry.id)
            .unwrap_or(self.entries.len());
        self.entries.insert(at, entry);
        Ok(())
    }

    /// A session of `user` began: restored entries made for another user are removed and
    /// returned (they must never go out in this user's name); the rest lose their owner.
    pub(crate) fn claim_for(&mut self, user: &str) -> Vec<Entry> {
        let mut foreign = Vec::new();
        let mut index = 0;
        while index < self.entries.len() {
            match self.entries[index].owner.as_deref() {
                Some(owner) if owner != user => {
                    if let Some(entry) = self.remove_at(index) {
                        foreign.push(entry);
                    }
                }
                _ => {
                    self.entries[index].owner = None;
                    index += 1;
                }
            }
        }
        foreign
    }

    /// Whether an entry waits to be transmitted on the current link.
    pub(crate) fn has_unsent(&self) -> bool {
        self.entries.iter().any(|e| !e.sent)
    }

    /// Marks the first entry not yet sent as sent and returns its frame.
    pub(crate) fn transmit_next(&mut self) -> Option<String> {
        let entry = self.entries.iter_mut().find(|e| !e.sent)?;
        entry.sent = true;
        Some(entry.frame())
    }

    /// A new link: everything goes out again, in order, under the same ids. A new (not
    /// resumed) session also drops the room entries (the connection re-joins its room set
    /// instead) and puts `rejoin` first.
    pub(crate) fn start_link(&mut self, rejoin: Option<Vec<Entry>>) {
        if let Some(rejoin) = rejoin {
            let queued = std::mem::replace(&mut self.entries, rejoin);
            self.entries
                .extend(queued.into_iter().filter(|e| e.kind == EntryKind::App));
        }
        for entry in &mut self.entries {
            entry.sent = false;
        }
    }

    /// The server refused send `id` for the moment (`rate_limited`): it and everything queued
    /// behind it go back to "not sent", in place. Whether `id` was queued.
    pub(crate) fn unsend_from(&mut self, id: u64) -> bool {
        let Some(index) = self.entries.iter().position(|e| e.id.0 == id) else {
            return false;
        };
        for entry in self.entries.iter_mut().skip(index) {
            entry.sent = false;
        }
        true
    }

    /// Removes and returns the entry the server acked.
    pub(crate) fn take_acked(&mut self, id: u64) -> Option<Entry> {
        let index = self.entries.iter().position(|e| e.id.0 == id)?;
        self.remove_at(index)
    }

    /// Removes and returns the entry with id `id` (a request that timed out).
    pub(crate) fn remove(&mut self, id: SendId) -> Option<Entry> {
        let index = self.entries.iter().position(|e| e.id == id)?;
        self.remove_at(index)
    }

    fn remove_at(&mut self, index: usize) -> Option<Entry> {
        if index >= self.entries.len() {
            return None;
        }
        let entry = self.entries.remove(index);
        if entry.kind == EntryKind::App {
            self.app_count -= 1;
            self.app_bytes -= entry.bytes();
        }
        Some(entry)
    }

    /// Whether an entry with id `id` is queued.
    pub(crate) fn contains(&self, id: SendId) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// How many application sends are queued (sent or not, awaiting their ack).
    pub(crate) fn len(&self) -> usize {
        self.app_count
    }

    /// The bytes the queued application sends count against the bound.
    pub(crate) fn bytes(&self) -> usize {
        self.app_bytes
    }
}
