//! One socket's outgoing queue ([`ConnCell`]): what the hub hands a live socket, bounded in frames
//! and bytes, and the kill order that tells the socket task to close.
//!
//! The hub pushes without waiting; the socket task takes everything queued in one batch when woken.
//! A queue that would pass [`QUEUE_FRAMES`] or [`QUEUE_BYTES`] means the peer is not reading: the
//! socket is told to close with 1013 (`socket queue full`) and refuses further frames, while its
//! session keeps buffering for resume.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use crate::protocol::CloseCode;

/// Frames a socket's queue holds before the socket is judged too slow and closed.
pub(crate) const QUEUE_FRAMES: usize = 256;
/// Bytes (each frame at its full size, even where shared) a socket's queue holds at most.
pub(crate) const QUEUE_BYTES: usize = 256 * 1024;

/// Why a socket is being closed by someone other than its own task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kill {
    pub(crate) code: CloseCode,
    pub(crate) reason: &'static str,
}

/// Closes a socket that does not read its events fast enough.
pub(crate) const TOO_SLOW: Kill = Kill {
    code: CloseCode::TRY_AGAIN_LATER,
    reason: "socket queue full",
};

/// Closes a socket whose token expired (its `exp` passed without a `refresh`, or `/dev/expire`).
pub(crate) const TOKEN_EXPIRED: Kill = Kill {
    code: CloseCode::TOKEN_EXPIRED,
    reason: "token expired",
};

/// A frame waiting for its socket.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A stored event: `{"type":"event","seq":N` then the shared tail (see `frames`).
    Event { seq: u64, tail: Bytes },
    /// A complete frame shared by every receiver (a volatile event: no `seq`, never stored).
    Frame(Utf8Bytes),
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Event { tail, .. } => tail.len() + 32,
            Outgoing::Frame(frame) => frame.len(),
        }
    }
}

/// What [`ConnCell::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// The socket is closing (killed now or before); the frame was not queued.
    Refused,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    bytes: usize,
    kill: Option<Kill>,
}

/// A live socket as the hub sees it.
#[derive(Debug)]
pub(crate) struct ConnCell {
    queue: Mutex<Queue>,
    wake: Notify,
    /// Set once the socket stopped counting as one of its user's live sockets.
    released: AtomicBool,
}

impl ConnCell {
    pub(crate) fn new() -> Self {
        ConnCell {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            released: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame. A full queue kills the socket with [`TOO_SLOW`] instead.
    pub(crate) fn push(&self, item: Outgoing) -> Pushed {
        let mut queue = self.lock();
        if queue.kill.is_some() {
            return Pushed::Refused;
        }
        let len = item.len();
        if queue.items.len() >= QUEUE_FRAMES || queue.bytes + len > QUEUE_BYTES {
            queue.kill = Some(TOO_SLOW);
            queue.items.clear();
            queue.bytes = 0;
            drop(queue);
            self.wake.notify_one();
            return Pushed::Refused;
        }
        let was_empty = queue.items.is_empty();
        queue.bytes += len;
        queue.items.push_back(item);
        drop(queue);
        if was_empty {
            self.wake.notify_one();
        }
        Pushed::Queued
    }

    /// Tells the socket to close (the first kill wins); queued frames are dropped.
    pub(crate) fn kill(&self, kill: Kill) {
        let mut queue = self.lock();
        if queue.kill.is_none() {
            queue.kill = Some(kill);
            queue.items.clear();
            queue.bytes = 0;
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// Resolves when something was queued or the socket was killed since the last [`take`](Self::take).
    pub(crate) fn woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// Moves everything queued into `into` (which keeps its capacity), or returns the kill order.
    pub(crate) fn take(&self, into: &mut VecDeque<Outgoing>) -> Result<(), Kill> {
        let mut queue = self.lock();
        if let Some(kill) = queue.kill {
            return Err(kill);
        }
        std::mem::swap(&mut queue.items, into);
        queue.bytes = 0;
        Ok(())
    }

    /// The kill order, if the socket was told to close.
    pub(crate) fn kill_order(&self) -> Option<Kill> {
        self.lock().kill
    }

    /// Wakes the socket task again (it consumed a wake-up meant for its main loop).
    pub(crate) fn rewake(&self) {
        self.wake.notify_one();
    }

    /// Marks the socket as no longer counted; `true` the first time only.
    pub(crate) fn release(&self) -> bool {
        !self.released.swap(true, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_kills_the_socket_with_1013_and_refuses_more() {
        let cell = ConnCell::new();
        let frame = Outgoing::Event {
            seq: 1,
            tail: Bytes::from_static(b"}"),
        };
        for _ in 0..QUEUE_FRAMES {
            assert_eq!(cell.push(frame.clone()), Pushed::Queued);
        }
        assert_eq!(cell.push(frame.clone()), Pushed::Refused);
        let mut batch = VecDeque::new();
        assert_eq!(cell.take(&mut batch), Err(TOO_SLOW));
        assert_eq!(cell.push(frame), Pushed::Refused);
        let big = ConnCell::new();
        let tail = Bytes::from(vec![b'x'; QUEUE_BYTES]);
        assert_eq!(big.push(Outgoing::Event { seq: 1, tail }), Pushed::Refused);
    }

    #[test]
    fn take_hands_over_the_batch_and_release_counts_once() {
        let cell = ConnCell::new();
        for seq in [1, 2] {
            cell.push(Outgoing::Event {
                seq,
                tail: Bytes::from_static(b"}"),
            });
        }
        let mut batch = VecDeque::new();
        assert_eq!(cell.take(&mut batch), Ok(()));
        assert_eq!(batch.len(), 2);
        assert!(cell.release());
        assert!(!cell.release());
    }
}
