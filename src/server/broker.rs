//! The seam between what the hub does and where its shared state lives: [`Backend`] is either
//! this process's memory (one node, the default) or Redis (`--redis`, a cluster). The handlers
//! call only the methods here for anything another node must see — durable and volatile
//! fan-out, room membership, unread counts, presence — so their logic is written once.
//!
//! Failure rule (PROTOCOL.md §5): when the broker cannot be reached, a durable fan-out fails and
//! the send that caused it is answered `rate_limited` with a `retry_after_ms` (not processed,
//! not remembered: the client retries the same id); volatile events still reach the members on
//! this node.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::clock::now_rfc3339;
use super::cluster::{Cluster, SendRecord};
use super::frames;
use super::hub::Hub;
use super::session::SessionCell;
use crate::protocol::ErrorBody;

/// How long a client is told to wait before resending a send the broker could not take.
pub(crate) const BROKER_RETRY_MS: u64 = 1_000;

/// Where the hub's shared state lives.
#[derive(Debug)]
pub(crate) enum Backend {
    /// One process: everything in this hub.
    Memory,
    /// A node of a cluster sharing state through Redis.
    Redis(Arc<Cluster>),
}

/// The broker could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

impl From<Unavailable> for ErrorBody {
    fn from(_: Unavailable) -> Self {
        ErrorBody {
            code: "rate_limited".to_owned(),
            message: "not known to be processed: the cluster's broker did not answer; send \
                      this id again after retry_after_ms"
                .to_owned(),
            retry_after_ms: Some(BROKER_RETRY_MS),
        }
    }
}

impl Hub {
    /// The cluster this node belongs to, if any.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        match &self.backend {
            Backend::Memory => None,
            Backend::Redis(cluster) => Some(cluster),
        }
    }

    /// A durable event to every session in `dest` (`chat:{id}` or `user:{id}`), on every node;
    /// returns how many live sockets (one node) or sessions (a cluster) it was delivered to.
    pub(crate) async fn fanout(
        &self,
        dest: &str,
        event: &str,
        data: &Value,
        now: Instant,
    ) -> Result<usize, ErrorBody> {
        Ok(self.notify_room(dest, event, data, now, None).await?)
    }

    /// A volatile event to the members of the chat room `room` attached now, on every node,
    /// skipping `except_user`; only while the room has at most `max_members` sessions when
    /// given. Without the broker it still reaches this node's members.
    pub(crate) async fn fanout_volatile(
        &self,
        room: &str,
        event: &str,
        data: &Value,
        except_user: Option<&str>,
        max_members: Option<usize>,
    ) {
        if let Some(cluster) = self.cluster() {
            let tail = frames::tail(event, data, &now_rfc3339());
            if cluster
                .publish_volatile(room, &tail, except_user, max_members)
                .await
                .is_ok()
            {
                return;
            }
        }
        self.volatile_up_to(room, event, data, except_user, max_members);
    }

    /// Announces `user_joined` / `user_left` (volatile) in a room of at most
    /// `announce_max_members` sessions.
    pub(crate) async fn announce(&self, room: &str, event: &str, user: &str) {
        let note = json!({ "room": room, "user": user });
        let max = Some(self.announce_max_members);
        self.fanout_volatile(room, event, &note, Some(user), max)
            .await;
    }

    /// Records that `session` joined `room` where every node sees it.
    pub(crate) async fn joined(
        &self,
        session: &Arc<SessionCell>,
        room: &str,
    ) -> Result<(), ErrorBody> {
        match self.cluster() {
            None => Ok(()),
            Some(cluster) => Ok(cluster.joined(session, room).await?),
        }
    }

    /// Records that `session` left `room` where every node sees it.
    pub(crate) async fn left(
        &self,
        session: &Arc<SessionCell>,
        room: &str,
    ) -> Result<(), ErrorBody> {
        match self.cluster() {
            None => Ok(()),
            Some(cluster) => Ok(cluster.left(session, room).await?),
        }
    }

    /// Takes `session` out of `room` on this node; `false` if it was not in it.
    pub(crate) fn leave_locally(&self, session: &Arc<SessionCell>, room: &str) -> bool {
        let (left, live) = {
            let mut state = session.lock();
            let at = state.rooms.iter().position(|r| &*r.name == room);
            (
                at.map(|at| state.rooms.swap_remove(at)),
                state.attached.is_some(),
            )
        };
        match left {
            Some(left) => {
                if live {
                    self.socket_left(&left, &session.user);
                }
                self.rooms.leave(&left, session.id);
                true
            }
            None => false,
        }
    }

    /// The user's unread notification count.
    pub(crate) async fn unread_count(&self, user: &str) -> Result<usize, ErrorBody> {
        match self.cluster() {
            None => Ok(self.users.unread_count(user)),
            Some(cluster) => Ok(cluster.unread_count(user).await?),
        }
    }

    /// Removes `id` from the user's unread list; returns the new count.
    pub(crate) async fn remove_unread(&self, user: &str, id: &str) -> Result<usize, ErrorBody> {
        match self.cluster() {
            None => Ok(self.users.remove_unread(user, id)),
            Some(cluster) => Ok(cluster.unread_remove(user, id).await?),
        }
    }

    /// `/notify` to a user: a `new_notification`'s id becomes unread, then the event goes out.
    pub(crate) async fn notify(
        &self,
        user: &str,
        event: &str,
        data: &Value,
        now: Instant,
    ) -> Result<usize, Unavailable> {
        let Some(cluster) = self.cluster() else {
            return Ok(self.notify_user(user, event, data, now));
        };
        if event == "new_notification" {
            if let Some(id) = data.get("id").and_then(Value::as_str) {
                cluster.unread_add(user, id).await?;
            }
        }
        let tail = frames::tail(event, data, &now_rfc3339());
        cluster.fanout(&format!("user:{user}"), &tail, None).await
    }

    /// `/notify` to a room (and [`Hub::fanout`]'s delivery, with the broker's error as is); in
    /// a cluster, `send` is the send this fan-out carries out, recorded with it.
    pub(crate) async fn notify_room(
        &self,
        room: &str,
        event: &str,
        data: &Value,
        now: Instant,
        send: Option<&SendRecord<'_>>,
    ) -> Result<usize, Unavailable> {
        match self.cluster() {
            None => Ok(self.deliver_room(room, event, data, None, now)),
            Some(cluster) => {
                let tail = frames::tail(event, data, &now_rfc3339());
                cluster.fanout(room, &tail, send).await
            }
        }
    }
}
