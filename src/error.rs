//! Errors, grouped by who is to blame: [`SendError`] (the caller's send could not be taken),
//! [`AckError`] (the server refused a send, or its ack never came), [`ClientError`] (the server
//! misbehaved or reported a problem; the connection carries on).

use crate::message::Message;
use crate::protocol::DecodeError;

/// A send rejected synchronously; nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The outbox is at its bound; this send was not queued (nothing else was dropped).
    OutboxFull {
        /// The configured message bound.
        max_messages: usize,
        /// The configured byte bound.
        max_bytes: usize,
    },
    /// The encoded frame would exceed the frame size limit.
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A request after `disconnect()`: no ack can arrive until `connect()`.
    Disconnected,
    /// The event name is empty.
    EmptyEventName,
    /// A restored send's id is outside 1 ..= 2^53 − 1, or already queued.
    InvalidId,
    /// Every send id up to 2^53 − 1 is spent (PROTOCOL.md §1): no new send can be numbered.
    IdsExhausted,
    /// The payload could not be encoded as JSON.
    BadPayload(String),
}

impl SendError {
    /// A stable machine-readable code: `outbox_full`, `too_large`, `empty_event_name`, `bad_payload`.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::OutboxFull { .. } => "outbox_full",
            SendError::TooLarge { .. } => "too_large",
            SendError::Disconnected => "disconnected",
            SendError::EmptyEventName => "empty_event_name",
            SendError::IdsExhausted => "ids_exhausted",
            SendError::InvalidId => "invalid_id",
            SendError::BadPayload(_) => "bad_payload",
        }
    }
}

impl SendError {
    /// What [`Display`](std::fmt::Display) writes, e.g. `outbox full (1000 messages / 1048576
    /// bytes); send not queued`.
    pub fn message(&self) -> String {
        match self {
            SendError::OutboxFull {
                max_messages,
                max_bytes,
            } => Message::new("outbox full (")
                .n(*max_messages as u64)
                .s(" messages / ")
                .n(*max_bytes as u64)
                .s(" bytes); send not queued")
                .done(),
            SendError::TooLarge { size, limit } => too_large(*size, *limit),
            SendError::Disconnected => {
                String::from("the client is disconnected; call connect() first")
            }
            SendError::EmptyEventName => String::from("event name must not be empty"),
            SendError::IdsExhausted => String::from("send ids exhausted"),
            SendError::InvalidId => String::from("send id out of range or already queued"),
            SendError::BadPayload(why) => Message::new("payload is not valid JSON: ").s(why).done(),
        }
    }
}

/// `frame of N bytes exceeds the limit of M bytes` (a send and a decoded frame alike).
pub(crate) fn too_large(size: usize, limit: usize) -> String {
    Message::new("frame of ")
        .n(size as u64)
        .s(" bytes exceeds the limit of ")
        .n(limit as u64)
        .s(" bytes")
        .done()
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// Why an accepted send did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The server answered `ok: false`.
    Rejected {
        /// The server's code, e.g. `forbidden`, `rate_limited`, `unknown_event`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The application called `disconnect()` while the request waited; it was removed from
    /// the outbox.
    Disconnected,
    /// A send restored from an earlier life was made for another user than the one who
    /// authenticated now; it was removed without being sent.
    OtherUser,
    /// No ack arrived within the request's timeout; the send was removed from the outbox.
    Timeout {
        /// The timeout that ran out, in milliseconds.
        timeout_ms: u64,
    },
}

impl AckError {
    /// A stable machine-readable code: the server's code for `Rejected`, `timeout` otherwise.
    pub fn code(&self) -> &str {
        match self {
            AckError::Rejected { code, .. } => code,
            AckError::Timeout { .. } => "timeout",
            AckError::Disconnected => "disconnected",
            AckError::OtherUser => "other_user",
        }
    }
}

impl AckError {
    /// What [`Display`](std::fmt::Display) writes, e.g. `no ack within 10000 ms`.
    pub fn message(&self) -> String {
        match self {
            AckError::Rejected { code, message } => Message::new("server rejected the send (")
                .s(code)
                .s("): ")
                .s(message)
                .done(),
            AckError::Disconnected => {
                String::from("disconnect() was called before the ack arrived")
            }
            AckError::OtherUser => String::from("not sent: it was queued for another user"),
            AckError::Timeout { timeout_ms } => Message::new("no ack within ")
                .n(*timeout_ms)
                .s(" ms")
                .done(),
        }
    }
}

impl std::fmt::Display for AckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// A problem reported to the application while the connection carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server sent a binary frame; the protocol is text only, so it was skipped.
    BinaryFrame,
    /// A plain send (not a request) failed: the server refused it. (A request's failure goes
    /// to its caller instead.)
    SendFailed {
        /// The send.
        id: crate::core::SendId,
        /// Why it failed.
        error: AckError,
    },
    /// The server sent a frame that could not be decoded; it was skipped.
    BadFrame(DecodeError),
    /// The server sent a frame that makes no sense at this point; it was skipped.
    UnexpectedFrame {
        /// The frame's `type`.
        frame: &'static str,
    },
    /// A durable event skipped ahead of the next seq: events were lost in transit. The client
    /// reconnects at once to resume from the last contiguous one (`resume_failed` follows if
    /// the server cannot replay them).
    SeqGap {
        /// The seq that should have come.
        expected: u64,
        /// The seq that came.
        got: u64,
    },
    /// The server reported an error frame (e.g. `rate_limited`, `invalid_frame`).
    Server {
        /// The server's code.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server refused a `join_room` / `leave_room`; a refused join is removed from the room set.
    Room {
        /// The room.
        room: String,
        /// The server's code, e.g. `forbidden`.
        code: String,
        /// The server's explanation.
        message: String,
    },
}

impl ClientError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            ClientError::BinaryFrame => "binary_frame",
            ClientError::SeqGap { .. } => "seq_gap",
            ClientError::SendFailed { error, .. } => error.code(),
            ClientError::BadFrame(_) => "bad_frame",
            ClientError::UnexpectedFrame { .. } => "unexpected_frame",
            ClientError::Server { code, .. } | ClientError::Room { code, .. } => code,
        }
    }
}

impl ClientError {
    /// What [`Display`](std::fmt::Display) writes, e.g. `server error (invalid_frame): …`.
    pub fn message(&self) -> String {
        match self {
            ClientError::BinaryFrame => {
                String::from("server sent a binary frame; sockline frames are text")
            }
            ClientError::SendFailed { id, error } => Message::new("send ")
                .n(id.0)
                .s(" failed: ")
                .s(&error.message())
                .done(),
            ClientError::BadFrame(error) => Message::new("server sent an unreadable frame: ")
                .s(&error.message())
                .done(),
            ClientError::UnexpectedFrame { frame } => Message::new("server sent an unexpected `")
                .s(frame)
                .s("` frame")
                .done(),
            ClientError::SeqGap { expected, got } => crate::core::seq_gap(*expected, *got),
            ClientError::Server { code, message } => Message::new("server error (")
                .s(code)
                .s("): ")
                .s(message)
                .done(),
            ClientError::Room {
                room,
                code,
                message,
            } => Message::new("room `")
                .s(room)
                .s("` refused (")
                .s(code)
                .s("): ")
                .s(message)
                .done(),
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}
