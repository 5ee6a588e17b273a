//! The current link's phase ([`Link`]): what it waits for, holding only the data that exists in
//! that phase; and why a link failed ([`Failure`]).

use std::time::Duration;

use super::{DisconnectReason, Instant, LinkError, RequestId, SocketId};

/// What the current link is waiting for (private phase data behind the public state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Link {
    /// No socket and nothing in flight.
    Idle,
    /// `FetchToken` is out.
    AwaitingToken { request: RequestId },
    /// `OpenSocket` is out; `auth` goes first once it opens.
    AwaitingOpen { socket: SocketId, token: String },
    /// `auth` is sent.
    AwaitingAuth { socket: SocketId },
    /// Authenticated: `heartbeat` is the server's ping interval, `since` when it went live.
    Live {
        socket: SocketId,
        heartbeat: Duration,
        since: Instant,
    },
}

impl Link {
    /// The socket of this link, if one was asked for.
    pub(crate) fn socket(&self) -> Option<SocketId> {
        match self {
            Link::AwaitingOpen { socket, .. }
            | Link::AwaitingAuth { socket }
            | Link::Live { socket, .. } => Some(*socket),
            Link::Idle | Link::AwaitingToken { .. } => None,
        }
    }

    /// Whether the link is authenticated.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self, Link::Live { .. })
    }
}

/// Why the link failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt.
    Retryable(LinkError),
    /// Final: the connection stops with this reason.
    Fatal(DisconnectReason),
}
