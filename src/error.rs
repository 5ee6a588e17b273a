//! Errors, grouped by who is to blame: [`SendError`] (the caller's send could not be taken),
//! [`AckError`] (the server refused a send, or its ack never came), [`ClientError`] (the server
//! misbehaved or reported a problem; the connection carries on).

use crate::protocol::DecodeError;

/// A send rejected synchronously; nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The outbox is at its bound; this send was not queued (nothing else was dropped).
    #[error("outbox full ({max_messages} messages / {max_bytes} bytes); send not queued")]
    OutboxFull {
        /// The configured message bound.
        max_messages: usize,
        /// The configured byte bound.
        max_bytes: usize,
    },
    /// The encoded frame would exceed the frame size limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A request after `disconnect()`: no ack can arrive until `connect()`.
    #[error("the client is disconnected; call connect() first")]
    Disconnected,
    /// The event name is empty.
    #[error("event name must not be empty")]
    EmptyEventName,
    /// The payload could not be encoded as JSON.
    #[error("payload is not valid JSON: {0}")]
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
            SendError::BadPayload(_) => "bad_payload",
        }
    }
}

/// Why an accepted send did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The server answered `ok: false`.
    #[error("server rejected the send ({code}): {message}")]
    Rejected {
        /// The server's code, e.g. `forbidden`, `rate_limited`, `unknown_event`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The application called `disconnect()` while the request waited; it was removed from
    /// the outbox.
    #[error("disconnect() was called before the ack arrived")]
    Disconnected,
    /// No ack arrived within the request's timeout; the send was removed from the outbox.
    #[error("no ack within {timeout_ms} ms")]
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
        }
    }
}

/// A problem reported to the application while the connection carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server sent a binary frame; the protocol is text only, so it was skipped.
    #[error("server sent a binary frame; sockline frames are text")]
    BinaryFrame,
    /// A plain send (not a request) failed: the server refused it. (A request's failure goes
    /// to its caller instead.)
    #[error("send {id} failed: {error}")]
    SendFailed {
        /// The send.
        id: crate::core::SendId,
        /// Why it failed.
        error: AckError,
    },
    /// The server sent a frame that could not be decoded; it was skipped.
    #[error("server sent an unreadable frame: {0}")]
    BadFrame(DecodeError),
    /// The server sent a frame that makes no sense at this point; it was skipped.
    #[error("server sent an unexpected `{frame}` frame")]
    UnexpectedFrame {
        /// The frame's `type`.
        frame: &'static str,
    },
    /// The server reported an error frame (e.g. `rate_limited`, `invalid_frame`).
    #[error("server error ({code}): {message}")]
    Server {
        /// The server's code.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server refused a `join_room` / `leave_room`; a refused join is removed from the room set.
    #[error("room `{room}` refused ({code}): {message}")]
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
            ClientError::SendFailed { error, .. } => error.code(),
            ClientError::BadFrame(_) => "bad_frame",
            ClientError::UnexpectedFrame { .. } => "unexpected_frame",
            ClientError::Server { code, .. } | ClientError::Room { code, .. } => code,
        }
    }
}
