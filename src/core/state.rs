//! The connection's public state ([`ConnectionState`]), why it is disconnected
//! ([`DisconnectReason`]), why it changed ([`Cause`]) and what broke a link ([`LinkError`]).

use super::Instant;
use crate::message::Message;

/// Where a [`Connection`](super::Connection) is in its life.
///
/// ```text
///                    connect() / visible / online
///   ┌──────────────┐ ─────────────────────────────▶ ┌────────────┐
///   │ disconnected │                                 │ connecting │◀──────────────┐
///   └──────────────┘ ◀──┐                            └────────────┘               │
///          ▲            │ auth rejected,                   │ socket open,         │ backoff
///          │            │ non-retryable close,             ▼ `auth` sent          │ fired,
///          │            │ retries exhausted      ┌────────────────┐               │ online,
///          │            ├─────────────────────── │ authenticating │               │ visible
///          │            │                        └────────────────┘               │
///          │            │                                  │ `authenticated`      │
///          │ disconnect()                                  ▼                      │
///          │ / hidden   │                          ┌───────────┐  close, error,  ┌──────────────┐
///          └────────────┴───────────────────────── │ connected │ ──────────────▶ │ reconnecting │
///                                                  └───────────┘  heartbeat,     └──────────────┘
///                                                                 offline
/// ```
///
/// `connecting` and `authenticating` also fall to `reconnecting` on any retryable failure
/// (close, error, connect timeout, auth timeout, failed token fetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected and not trying to be, for the given reason.
    Disconnected {
        /// Why the connection is down.
        reason: DisconnectReason,
    },
    /// Fetching a token and opening the socket. `attempt` is 0 for a fresh start, n for retry n.
    Connecting {
        /// 0 for a fresh start, n for the n-th retry.
        attempt: u32,
    },
    /// The socket is open and `auth` was sent; waiting for `authenticated`.
    Authenticating {
        /// 0 for a fresh start, n for the n-th retry.
        attempt: u32,
    },
    /// Authenticated: events flow both ways.
    Connected {
        /// The server's session id.
        session: String,
    },
    /// Lost the connection; waiting to retry. `next_at` is `None` while waiting for the network
    /// to come back online (no retry is spent while offline).
    Reconnecting {
        /// The number of the retry that will run next (1-based).
        attempt: u32,
        /// When the retry runs; `None` while offline.
        next_at: Option<Instant>,
    },
}

impl ConnectionState {
    /// The lower-case name used on every face: `disconnected`, `connecting`, `authenticating`,
    /// `connected` or `reconnecting`.
    pub fn name(&self) -> &'static str {
        match self {
            ConnectionState::Disconnected { .. } => "disconnected",
            ConnectionState::Connecting { .. } => "connecting",
            ConnectionState::Authenticating { .. } => "authenticating",
            ConnectionState::Connected { .. } => "connected",
            ConnectionState::Reconnecting { .. } => "reconnecting",
        }
    }

    /// Whether the state is `connected`.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected { .. })
    }

    /// The attempt number carried by `connecting`, `authenticating` and `reconnecting`; 0 otherwise.
    pub fn attempt(&self) -> u32 {
        match self {
            ConnectionState::Connecting { attempt }
            | ConnectionState::Authenticating { attempt }
            | ConnectionState::Reconnecting { attempt, .. } => *attempt,
            _ => 0,
        }
    }
}

/// Why a connection is `disconnected`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// `connect()` has not been called yet.
    NotStarted,
    /// The application called `disconnect()`. Nothing but another `connect()` revives it.
    Requested,
    /// The server rejected the token (`auth_error`, or close 4001). Not retried.
    AuthRejected {
        /// The server's code, e.g. `invalid_token` or `expired`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server closed with a code that must not be retried (4003, 4008, 1008, 1009).
    Refused {
        /// The close code.
        code: u16,
        /// The close reason the server gave.
        reason: String,
    },
    /// Every retry failed.
    RetriesExhausted {
        /// How many retries were made.
        retries: u32,
        /// What made the last one fail.
        last_error: String,
    },
    /// The page was hidden and `pause_when_hidden` is on; visible again reconnects.
    Paused,
}

impl DisconnectReason {
    /// A short machine-readable name: `not_started`, `requested`, `auth_rejected`, `refused`,
    /// `retries_exhausted` or `paused`.
    pub fn code(&self) -> &'static str {
        match self {
            DisconnectReason::NotStarted => "not_started",
            DisconnectReason::Requested => "requested",
            DisconnectReason::AuthRejected { .. } => "auth_rejected",
            DisconnectReason::Refused { .. } => "refused",
            DisconnectReason::RetriesExhausted { .. } => "retries_exhausted",
            DisconnectReason::Paused => "paused",
        }
    }
}

impl DisconnectReason {
    /// What [`Display`](std::fmt::Display) writes, e.g. `gave up after 5 retries; last error: …`.
    pub fn message(&self) -> String {
        match self {
            DisconnectReason::NotStarted => String::from("not started"),
            DisconnectReason::Requested => String::from("disconnect() was called"),
            DisconnectReason::AuthRejected { code, message } => {
                Message::new("authentication rejected (")
                    .s(code)
                    .s("): ")
                    .s(message)
                    .done()
            }
            DisconnectReason::Refused { code, reason } => {
                Message::new("server refused the connection (close ")
                    .n(u64::from(*code))
                    .s("): ")
                    .s(reason)
                    .done()
            }
            DisconnectReason::RetriesExhausted {
                retries,
                last_error,
            } => Message::new("gave up after ")
                .n(u64::from(*retries))
                .s(" retries; last error: ")
                .s(last_error)
                .done(),
            DisconnectReason::Paused => String::from("paused while the page is hidden"),
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// Why the state changed: carried by every [`Event::StateChanged`](super::Event::StateChanged),
/// so every face can say why it is connecting, reconnecting or stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// `connect()` was called.
    Connect,
    /// `reconnect()` was called: a new link now, with the backoff reset.
    Reconnect,
    /// The backoff delay ran out: the next retry starts.
    Retry,
    /// The network came back.
    Online,
    /// The page became visible again.
    Visible,
    /// The socket opened and `auth` was sent.
    SocketOpen,
    /// The server accepted the token.
    Authenticated,
    /// The link was lost (or could not be made) and will be retried: `reconnecting` says why.
    Lost(LinkError),
    /// The connection stopped: the same reason `disconnected` carries.
    Stopped(DisconnectReason),
}

impl Cause {
    /// A short machine-readable name: `connect`, `reconnect`, `retry`, `online`, `visible`, `socket_open`,
    /// `authenticated`, a [`LinkError::code`] or a [`DisconnectReason::code`].
    pub fn code(&self) -> &'static str {
        match self {
            Cause::Connect => "connect",
            Cause::Reconnect => "reconnect",
            Cause::Retry => "retry",
            Cause::Online => "online",
            Cause::Visible => "visible",
            Cause::SocketOpen => "socket_open",
            Cause::Authenticated => "authenticated",
            Cause::Lost(error) => error.code(),
            Cause::Stopped(reason) => reason.code(),
        }
    }
}

impl Cause {
    /// What [`Display`](std::fmt::Display) writes: why, in words (`connect() was called`, the
    /// link error's or the disconnect reason's message).
    pub fn message(&self) -> String {
        String::from(match self {
            Cause::Connect => "connect() was called",
            Cause::Reconnect => "reconnect() was called",
            Cause::Retry => "the retry delay ran out",
            Cause::Online => "the network came back",
            Cause::Visible => "the page became visible",
            Cause::SocketOpen => "the socket opened",
            Cause::Authenticated => "the server accepted the token",
            Cause::Lost(error) => return error.message(),
            Cause::Stopped(reason) => return reason.message(),
        })
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// What broke a link (or kept one from being made); every one of these is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkError {
    /// The socket closed with a retryable code (1006 when it dropped without a close frame).
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The socket failed (the driver's description).
    Socket(String),
    /// Token fetch plus socket open took longer than the connect timeout.
    ConnectTimeout,
    /// `authenticated` did not arrive in time (or the server reported an auth timeout).
    AuthTimeout,
    /// Nothing arrived for the server's heartbeat plus the grace.
    HeartbeatTimeout {
        /// How long the link was silent, in milliseconds.
        silent_ms: u64,
    },
    /// The token provider failed.
    TokenFetch(String),
    /// The network went away (the client waits for it without spending retries).
    Offline,
    /// The token expired (close 4002, or `auth_error {expired}`): retried at once with a
    /// fresh token.
    TokenExpired,
    /// Events were lost in transit (a `seq` skipped ahead): reconnected at once to resume from
    /// the last contiguous one.
    SeqGap {
        /// The seq that should have come next.
        expected: u64,
        /// The seq that came.
        got: u64,
    },
}

impl LinkError {
    /// A short machine-readable name: `socket_closed`, `socket_error`, `connect_timeout`,
    /// `auth_timeout`, `heartbeat_timeout`, `token_fetch_failed`, `offline`, `token_expired` or
    /// `seq_gap`.
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::Closed { .. } => "socket_closed",
            LinkError::Socket(_) => "socket_error",
            LinkError::ConnectTimeout => "connect_timeout",
            LinkError::AuthTimeout => "auth_timeout",
            LinkError::HeartbeatTimeout { .. } => "heartbeat_timeout",
            LinkError::TokenFetch(_) => "token_fetch_failed",
            LinkError::Offline => "offline",
            LinkError::TokenExpired => "token_expired",
            LinkError::SeqGap { .. } => "seq_gap",
        }
    }

    /// Whether the retry runs at once (still counted) instead of after the backoff delay: the
    /// cause is known and a new link fixes it.
    pub(crate) fn retries_at_once(&self) -> bool {
        matches!(self, LinkError::TokenExpired | LinkError::SeqGap { .. })
    }
}

impl LinkError {
    /// What [`Display`](std::fmt::Display) writes, e.g. `socket closed (1006): connection dropped`.
    pub fn message(&self) -> String {
        match self {
            LinkError::Closed { code, reason } => Message::new("socket closed (")
                .n(u64::from(*code))
                .s("): ")
                .s(reason)
                .done(),
            LinkError::Socket(message) => Message::new("socket error: ").s(message).done(),
            LinkError::ConnectTimeout => String::from("connect timed out"),
            LinkError::AuthTimeout => String::from("auth timed out"),
            LinkError::HeartbeatTimeout { silent_ms } => {
                Message::new("heartbeat timeout: no frame for ")
                    .n(*silent_ms)
                    .s(" ms")
                    .done()
            }
            LinkError::TokenFetch(message) => {
                Message::new("token fetch failed: ").s(message).done()
            }
            LinkError::Offline => String::from("offline"),
            LinkError::TokenExpired => String::from("the token expired"),
            LinkError::SeqGap { expected, got } => seq_gap(*expected, *got),
        }
    }
}

/// `events lost in transit: expected seq N, got M` (a link error and a client error alike).
pub(crate) fn seq_gap(expected: u64, got: u64) -> String {
    Message::new("events lost in transit: expected seq ")
        .n(expected)
        .s(", got ")
        .n(got)
        .done()
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}
