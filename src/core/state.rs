//! The connection's public state ([`ConnectionState`]) and why it is disconnected ([`DisconnectReason`]).

use super::Instant;

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

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::NotStarted => f.write_str("not started"),
            DisconnectReason::Requested => f.write_str("disconnect() was called"),
            DisconnectReason::AuthRejected { code, message } => {
                write!(f, "authentication rejected ({code}): {message}")
            }
            DisconnectReason::Refused { code, reason } => {
                write!(f, "server refused the connection (close {code}): {reason}")
            }
            DisconnectReason::RetriesExhausted {
                retries,
                last_error,
            } => write!(
                f,
                "gave up after {retries} retries; last error: {last_error}"
            ),
            DisconnectReason::Paused => f.write_str("paused while the page is hidden"),
        }
    }
}
