//! The core's vocabulary: its clock ([`Instant`]), ids, what drivers feed it ([`Input`],
//! [`Transport`], [`Env`]), what it asks of them ([`Action`]), what the application hears
//! ([`Event`]), payloads ([`Payload`]) and counters ([`Stats`]).

use std::ops::Add;
use std::time::Duration;

use super::state::{Cause, ConnectionState};
use crate::error::{AckError, ClientError};
use crate::protocol::json::{self, JsonError};

/// A point in the driver's monotonic time, in milliseconds since an origin the driver picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// The instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// Names one socket the core asked the driver to open; transport inputs carry it back.
    SocketId
);
id_type!(
    /// Names one token fetch; [`Input::TokenFetched`] carries it back.
    RequestId
);
id_type!(
    /// Names one application send for the client's whole life; acks and failures carry it.
    SendId
);

/// Something that happened to a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// The socket opened.
    Opened,
    /// A text frame arrived.
    Frame(String),
    /// A binary frame arrived. The protocol is text only: the core reports it as
    /// [`ClientError::BinaryFrame`] and carries on (PROTOCOL.md §1), the same on every target.
    Binary,
    /// The socket closed (1006 when it dropped without a close frame).
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The socket failed; the driver treats it as closed.
    Error(String),
}

/// A change in the page or network environment (browser driver; native drivers never send these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// The network came back.
    Online,
    /// The network went away.
    Offline,
    /// The page became visible.
    Visible,
    /// The page was hidden.
    Hidden,
}

/// What the driver feeds the core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The deadline from [`Connection::poll_timeout`](super::Connection::poll_timeout) was reached (or passed).
    Timeout,
    /// Something happened to socket `SocketId`. Inputs for a socket that is no longer current are ignored.
    Transport(SocketId, Transport),
    /// The environment changed.
    Env(Env),
    /// The answer to [`Action::FetchToken`]: a token, or why none could be had.
    TokenFetched(RequestId, Result<String, String>),
}

/// What the core asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open a WebSocket to `url` and report on it as `socket`.
    OpenSocket {
        /// The id transport inputs must carry.
        socket: SocketId,
        /// Where to connect.
        url: String,
    },
    /// Send a text frame on `socket`.
    SendFrame {
        /// The socket.
        socket: SocketId,
        /// The JSON text.
        text: String,
    },
    /// Close `socket`; no further input is expected for it.
    CloseSocket {
        /// The socket.
        socket: SocketId,
        /// The close code to send.
        code: u16,
        /// The close reason to send.
        reason: String,
    },
    /// Get a token from the app's provider and answer with [`Input::TokenFetched`]. Never asked
    /// when the config holds a static token ([`ConnectionConfig::token`](super::ConnectionConfig::token)).
    FetchToken {
        /// The id the answer must carry.
        request: RequestId,
    },
}

/// A JSON payload as text: an event's `data` exactly as the server sent it, or what the app
/// sends. Always one valid JSON value (checked by [`from_json`](Self::from_json)); drivers
/// decode it on demand (the browser with `JSON.parse`, the native client with `serde_json`:
/// `decode::<T>()` / `to_value()`), so the core never parses payloads itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    /// Takes `text` if it is one JSON value (whitespace around it allowed).
    ///
    /// Nesting is counted from the frame the payload travels in (one level deeper), so a
    /// payload taken here never makes a frame the server refuses for depth.
    pub fn from_json(text: impl Into<String>) -> Result<Self, JsonError> {
        let text = text.into();
        json::validate_at(&text, 1)?;
        Ok(Payload(text))
    }

    /// `null`.
    pub fn null() -> Self {
        Payload(String::from("null"))
    }

    /// Wraps text already known to be one JSON value (a validated slice, or encoder output).
    pub(crate) fn from_valid(text: String) -> Self {
        Payload(text)
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// The JSON text, owned.
    pub fn into_json(self) -> String {
        self.0
    }
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The connection state changed.
    StateChanged {
        /// The state left.
        from: ConnectionState,
        /// The state entered.
        to: ConnectionState,
        /// Why: what made it connect, why it is reconnecting, why it stopped.
        cause: Cause,
    },
    /// A server event, delivered once.
    Message {
        /// The event name.
        event: String,
        /// The payload, as raw JSON.
        data: Payload,
        /// The event's per-session sequence number; `None` for a volatile event (live only,
        /// never replayed).
        seq: Option<u64>,
    },
    /// The outcome of a send: the server's ack (with its result data, if any) or why it failed.
    Ack {
        /// The send.
        id: SendId,
        /// `Ok(data)` on `ok: true`, with the ack's `data` as raw JSON (`None` when absent or
        /// `null`).
        result: Result<Option<Payload>, AckError>,
    },
    /// A problem that did not stop the connection.
    Error(ClientError),
    /// The server resumed the session; `missed` events are replayed next.
    Resumed {
        /// How many events the server replays.
        missed: u64,
    },
    /// The session could not be resumed: events may have been missed, so the app should refetch.
    ResumeFailed,
}

/// A snapshot of the connection's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The state's name.
    pub state: &'static str,
    /// How long the connection has been in this state, up to the last `now` it was given.
    pub time_in_state: Duration,
    /// The current attempt number (see [`ConnectionState::attempt`]).
    pub attempt: u32,
    /// How many times a `connected` link was lost.
    pub reconnects: u64,
    /// The last round-trip time the server measured.
    pub last_rtt: Option<Duration>,
    /// Application sends awaiting their ack.
    pub outbox_depth: usize,
    /// Bytes those sends take.
    pub outbox_bytes: usize,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Duplicate events dropped.
    pub duplicates_dropped: u64,
    /// Rooms in the room set.
    pub rooms: usize,
}
