//! The messages on the cluster's channel and how a node routes each to its own sockets.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::server::frames;
use crate::server::hub::Hub;
use crate::server::outbox::Outgoing;
use crate::server::session::{SessionCell, SessionId};

/// One message on `sl:bus`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k")]
pub(crate) enum BusMessage {
    /// A durable event, already given each session's `seq` and stored in its stream (written
    /// by the fan-out script).
    #[serde(rename = "d")]
    Durable {
        tail: String,
        /// `(session, seq)` pairs.
        to: Vec<(String, u64)>,
    },
    /// A volatile event for the members of `dest` attached now.
    #[serde(rename = "v")]
    Volatile {
        dest: String,
        tail: String,
        except: Option<String>,
    },
    /// `node` resumed `session`: any other node lets go of it.
    #[serde(rename = "t")]
    Takeover { session: String, node: String },
}

impl BusMessage {
    pub(crate) fn encode(&self) -> String {
        // Plain strings and numbers only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Routes one message from the channel to this node's sockets.
pub(crate) fn route(hub: &Hub, node: &str, payload: &[u8]) {
    let message = match serde_json::from_slice::<BusMessage>(payload) {
        Ok(message) => message,
        Err(e) => {
            debug!(error = %e, "ignoring a bus message this node cannot read");
            return;
        }
    };
    match message {
        BusMessage::Durable { tail, to } => {
            let tail = Bytes::from(tail);
            for (session, seq) in to {
                if let Some(session) =
                    SessionId::parse(&session).and_then(|id| hub.local_session(id))
                {
                    session.deliver_at(seq, &tail);
                }
            }
        }
        BusMessage::Volatile { dest, tail, except } => {
            let members: Vec<Arc<SessionCell>> = match dest.strip_prefix("user:") {
                Some(user) => hub.users.sessions_of(user),
                None => hub.rooms.get(&dest).map_or_else(Vec::new, |r| r.members()),
            };
            let frame = Outgoing::Frame(frames::volatile_frame(tail.as_bytes()));
            for member in members {
                if except.as_deref() != Some(&*member.user) {
                    member.deliver_volatile(&frame);
                }
            }
        }
        BusMessage::Takeover {
            session,
            node: from,
        } => {
            if from != node {
                if let Some(session) =
                    SessionId::parse(&session).and_then(|id| hub.local_session(id))
                {
                    hub.let_go(&session);
                }
            }
        }
    }
}
