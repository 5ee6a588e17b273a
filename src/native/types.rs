//! What the native face hands the application: [`Message`], [`Notice`], [`StateChange`] and
//! [`RequestError`].

use std::time::Duration;

use serde_json::Value;

use crate::core::{Cause, ConnectionState, Payload, SendId};
use crate::error::{AckError, ClientError, SendError};
use crate::shell::StateView;

/// A server event as listeners of every event see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The event name.
    pub event: String,
    /// The payload as raw JSON: `data.decode::<T>()` or `data.to_value()`.
    pub data: Payload,
    /// The per-session sequence number; `None` for a volatile event (typing, presence).
    pub seq: Option<u64>,
}

/// Something the client tells the application besides server events and state changes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Notice {
    /// A plain send was acknowledged (`Ok`, with the ack's data) or failed. (A request's
    /// outcome goes to its caller instead.)
    Ack {
        /// The send.
        id: SendId,
        /// Its outcome.
        result: Result<Option<Value>, AckError>,
    },
    /// A problem that did not stop the connection (a failed plain send is also reported here,
    /// as [`ClientError::SendFailed`]).
    Error(ClientError),
    /// The session was resumed; `missed` events are replayed.
    Resumed {
        /// How many.
        missed: u64,
    },
    /// The session could not be resumed: refetch what you show.
    ResumeFailed,
}

/// One state change, with what a UI needs to show it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// The state left.
    pub from: ConnectionState,
    /// The state entered.
    pub to: ConnectionState,
    /// Why (`cause.code()` is stable, `cause.to_string()` reads well).
    pub cause: Cause,
    /// How long until the next retry, when reconnecting with a timer.
    pub retry_in: Option<Duration>,
}

impl From<StateView> for StateChange {
    fn from(view: StateView) -> Self {
        StateChange {
            from: view.from,
            to: view.to,
            cause: view.cause,
            retry_in: view.retry_in,
        }
    }
}

/// Why a [`Client::request`](super::Client::request) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The send was not taken.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The server rejected it, or its ack did not arrive in time.
    #[error(transparent)]
    Ack(#[from] AckError),
    /// The client was shut down before the ack arrived.
    #[error("the client shut down before the ack arrived")]
    Closed,
}
