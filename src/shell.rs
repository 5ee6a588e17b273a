//! The driver shell: what both drivers (native and browser) need around a [`Connection`], decided
//! once. Pure like the core — no sockets, clocks, tasks or JS.
//!
//! A [`Shell`] wraps the connection and owns the table of pending requests (each keyed by its
//! [`SendId`], holding the driver's resolver `R`: a oneshot sender natively, a promise's
//! callbacks in the browser). Every beat, a driver
//!
//! 1. locks its shell and calls [`Shell::drain`] with `now`, which moves everything the core has
//!    for it into one [`Batch`]: the [`Action`]s to perform, the [`Output`]s to deliver and the
//!    next deadline;
//! 2. unlocks, performs the actions (feeding back what they produce, e.g. a socket that failed
//!    to open), delivers the outputs to the application, and arms its one timer at the deadline;
//! 3. repeats while the batch was not empty.
//!
//! The shell decides what the faces report, so they cannot drift apart:
//! - every state change comes with its [`Cause`] and, while a retry is scheduled, how long until
//!   it runs ([`StateView`]);
//! - a request's outcome goes to its resolver only ([`Output::Settle`]), exactly once — on its
//!   ack, its timeout, `disconnect()` (`AckError::Disconnected`) or the driver's shutdown
//!   ([`Shell::take_pending`]);
//! - a plain send's outcome is an [`Output::Ack`], and a failed one is also an
//!   [`Output::Error`] with [`ClientError::SendFailed`], so a failure is never silent;
//! - a binary frame is an [`Output::Error`] with [`ClientError::BinaryFrame`] (decided by the core).

use std::time::Duration;

use crate::core::{Action, Cause, Connection, ConnectionState, Event, Instant, Payload, SendId};
use crate::error::{AckError, ClientError, SendError};

/// What the application is told, as both faces report it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output<R> {
    /// The state changed.
    State(StateView),
    /// A server event.
    Message {
        /// The event name.
        event: String,
        /// The payload as raw JSON.
        data: Payload,
        /// The per-session seq; `None` for a volatile event.
        seq: Option<u64>,
    },
    /// A request's outcome, for the caller waiting on it.
    Settle {
        /// The request's send id.
        id: SendId,
        /// The driver's resolver given to [`Shell::request`].
        resolver: R,
        /// The ack's data, or why the request failed.
        result: Result<Option<Payload>, AckError>,
    },
    /// A plain send's outcome (ack listeners).
    Ack {
        /// The send.
        id: SendId,
        /// The ack's data, or why the send failed.
        result: Result<Option<Payload>, AckError>,
    },
    /// A problem that did not stop the connection.
    Error(ClientError),
    /// The session was resumed; `missed` events are replayed next.
    Resumed {
        /// How many.
        missed: u64,
    },
    /// The session could not be resumed: events may have been missed, the app should refetch.
    ResumeFailed,
}

/// One state change as every face reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateView {
    /// The state left.
    pub from: ConnectionState,
    /// The state entered.
    pub to: ConnectionState,
    /// Why.
    pub cause: Cause,
    /// How long until the scheduled retry runs (only while `reconnecting` with a timer).
    pub retry_in: Option<Duration>,
}

impl StateView {
    /// The attempt number carried by the new state (see [`ConnectionState::attempt`]).
    pub fn attempt(&self) -> u32 {
        self.to.attempt()
    }
}

/// Everything one [`Shell::drain`] moved out of the core. Keep one per driver and reuse it: its
/// vectors keep their capacity.
#[derive(Debug)]
pub struct Batch<R> {
    /// What the driver must do, in order.
    pub actions: Vec<Action>,
    /// What the application hears, in order (after the actions are performed).
    pub outputs: Vec<Output<R>>,
    /// When to drain again if nothing else happens first.
    pub deadline: Option<Instant>,
}

impl<R> Default for Batch<R> {
    fn default() -> Self {
        Batch {
            actions: Vec::new(),
            outputs: Vec::new(),
            deadline: None,
        }
    }
}

impl<R> Batch<R> {
    /// Whether the drain found nothing to do or deliver.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.outputs.is_empty()
    }
}

/// A [`Connection`] plus the pending-request table; see the [module docs](self).
#[derive(Debug)]
pub struct Shell<R> {
    conn: Connection,
    /// Requests awaiting their outcome. Send ids only grow, so pushing keeps it sorted.
    pending: Vec<(SendId, R)>,
}

impl<R> Shell<R> {
    /// A shell around `conn`.
    pub fn new(conn: Connection) -> Self {
        Shell {
            conn,
            pending: Vec::new(),
        }
    }

    /// The connection, for getters.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for inputs and commands (then drain).
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Sends a request whose outcome goes to `resolver` (through [`Output::Settle`]).
    /// `timeout` `None` uses the config's request timeout. On a synchronous refusal the
    /// resolver comes back with the error, unused.
    pub fn request(
        &mut self,
        now: Instant,
        event: &str,
        data: &Payload,
        timeout: Option<Duration>,
        resolver: R,
    ) -> Result<SendId, (SendError, R)> {
        match self.conn.request(now, event, data, timeout) {
            Ok(id) => {
                self.pending.push((id, resolver));
                Ok(id)
            }
            Err(error) => Err((error, resolver)),
        }
    }

    /// How many requests await their outcome.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Takes every pending request's resolver (the driver is shutting down and fails them).
    pub fn take_pending(&mut self) -> Vec<R> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    /// Moves everything the core has for the driver into `batch` (cleared first): actions,
    /// outputs and the next deadline. `now` is only used to say how long until a retry.
    pub fn drain(&mut self, now: Instant, batch: &mut Batch<R>) {
        batch.actions.clear();
        batch.outputs.clear();
        while let Some(action) = self.conn.poll_action() {
            batch.actions.push(action);
        }
        while let Some(event) = self.conn.poll_event() {
            self.output(now, event, &mut batch.outputs);
        }
        batch.deadline = self.conn.poll_timeout();
    }

    fn output(&mut self, now: Instant, event: Event, out: &mut Vec<Output<R>>) {
        match event {
            Event::StateChanged { from, to, cause } => {
                let retry_in = match &to {
                    ConnectionState::Reconnecting {
                        next_at: Some(at), ..
                    } => Some(at.saturating_duration_since(now)),
                    _ => None,
                };
                out.push(Output::State(StateView {
                    from,
                    to,
                    cause,
                    retry_in,
                }));
            }
            Event::Message { event, data, seq } => out.push(Output::Message { event, data, seq }),
            Event::Ack { id, result } => match self.take_resolver(id) {
                Some(resolver) => out.push(Output::Settle {
                    id,
                    resolver,
                    result,
                }),
                None => {
                    if let Err(error) = &result {
                        out.push(Output::Error(ClientError::SendFailed {
                            id,
                            error: error.clone(),
                        }));
                    }
                    out.push(Output::Ack { id, result });
                }
            },
            Event::Error(error) => out.push(Output::Error(error)),
            Event::Resumed { missed } => out.push(Output::Resumed { missed }),
            Event::ResumeFailed => out.push(Output::ResumeFailed),
        }
    }

    fn take_resolver(&mut self, id: SendId) -> Option<R> {
        let index = self.pending.binary_search_by_key(&id, |(i, _)| *i).ok()?;
        Some(self.pending.remove(index).1)
    }
}
