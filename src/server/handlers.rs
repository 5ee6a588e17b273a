//! What each client event does (`join_room`, `message`, `mark_notification_read`, …) and the
//! exactly-once wrapper that turns a `send` into its `ack` (PROTOCOL.md §5).

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::clock::now_rfc3339;
use super::cluster::SendRecord;
use super::dedupe::{Scope, Seen};
use super::hub::Hub;
use super::session::SessionCell;
use crate::protocol::{ErrorBody, ServerFrame};

/// Longest room name accepted.
const MAX_ROOM_NAME: usize = 128;
/// Rooms one session may be in, its own user room included.
const MAX_ROOMS_PER_SESSION: usize = 100;
/// Users listed at most by `get_room_members` (the count is always exact).
pub(crate) const MAX_MEMBERS_LISTED: usize = 1_000;

/// The outcome of one client event: the ack's `data`, or its `error`.
pub(crate) type Outcome = Result<Option<Value>, ErrorBody>;

fn error(code: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

/// A required non-empty string field of the event data.
pub(crate) fn str_field<'a>(data: &'a Value, key: &str) -> Result<&'a str, ErrorBody> {
    match data.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(error(
            "bad_request",
            format!("`{key}` must be a non-empty string"),
        )),
        None => Err(error("bad_request", format!("`{key}` is required"))),
    }
}

/// Who sends, for the duration of one event.
#[derive(Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub(crate) user: &'a str,
    pub(crate) session: &'a Arc<SessionCell>,
    /// Whose send-id memory the send uses.
    pub(crate) scope: &'a Scope,
    pub(crate) now: Instant,
    /// In a cluster: the pair key and id of the send being processed, which a fan-out that
    /// carries it out records in the same Redis step. A handler passes it on only to its last
    /// step that can fail, with the outcome it then answers (see `on_message`): what Redis
    /// records is what a resend is answered.
    pub(crate) send: Option<(&'a str, u64)>,
}

impl Hub {
    /// Handles `send {id, event, data}` (already admitted by the rate limit) exactly once per
    /// id of the caller's pair and returns the encoded `ack`.
    ///
    /// A remembered id gets the ack it got the first time, whatever it was; an id at or below
    /// the pair's floor that is not remembered gets `id_expired`; any other id is processed,
    /// even when lower than ids seen before. The pair stays locked from the check to the
    /// record, so two sockets of one client cannot both process the same id.
    pub(crate) async fn handle_send(
        &self,
        caller: &Caller<'_>,
        id: u64,
        event: &str,
        data: &Value,
    ) -> String {
        if let Some(cluster) = self.cluster() {
            return cluster.handle_send(self, caller, id, event, data).await;
        }
        let user = &caller.session.user;
        let mut pair = self.dedupe.lock_pair(user, caller.scope, caller.now).await;
        let ack = match pair.check(id) {
            Seen::Remembered(Some(ack)) => ack,
            Seen::Remembered(None) => ack_frame(id, Ok(None)),
            Seen::Expired => expired_ack(id),
            Seen::New => {
                let outcome = self.dispatch(caller, event, data).await;
                let ack = ack_frame(id, outcome.clone());
                // A send the broker could not take was not processed: not remembered.
                if !is_unavailable(&outcome) {
                    let plain = matches!(outcome, Ok(None));
                    pair.record(id, (!plain).then(|| ack.clone().into_boxed_str()));
                }
                ack
            }
        };
        self.dedupe.release(pair);
        ack
    }

    /// What a client event does; the same for one node and for a cluster (the broker calls
    /// behind `fanout` and the stores are the seam).
    pub(crate) async fn dispatch(&self, caller: &Caller<'_>, event: &str, data: &Value) -> Outcome {
        match event {
            "join_room" => self.on_join_room(caller, data).await,
            "leave_room" => self.on_leave_room(caller, data).await,
            "message" => self.on_message(caller, data).await,
            "typing_start" => self.on_typing(caller, data, true).await,
            "typing_stop" => self.on_typing(caller, data, false).await,
            "mark_notification_read" => {
                self.on_unread_removed(caller, data, "notification_read")
                    .await
            }
            "delete_notification" => {
                self.on_unread_removed(caller, data, "notification_deleted")
                    .await
            }
            "get_room_members" => self.on_room_members(caller, data),
            "presence" => self.on_presence(caller, data).await,
            "get_unread_count" => {
                let count = self.unread_count(caller.user).await?;
                Ok(Some(json!({ "count": count })))
            }
            _ => Err(error("unknown_event", format!("unknown event `{event}`"))),
        }
    }

    async fn on_join_room(&self, caller: &Caller<'_>, data: &Value) -> Outcome {
        let room = str_field(data, "room")?;
        if !check_room(caller.user, room)? {
            return Ok(None);
        }
        let (joined, live) = {
            let mut session = caller.session.lock();
            if !session.alive || session.rooms.iter().any(|r| &*r.name == room) {
                return Ok(None);
            }
            // The user room counts as one.
            if session.rooms.len() + 1 >= MAX_ROOMS_PER_SESSION {
                return Err(error("too_many_rooms", "this session is in too many rooms"));
            }
            let joined = self.rooms.join(room, caller.session);
            session.rooms.push(joined.clone());
            (joined, session.attached.is_some())
        };
        if live {
            self.socket_joined(&joined, &caller.session.user);
        }
        if let Err(unavailable) = self.joined(caller.session, room).await {
            self.leave_locally(caller.session, room);
            return Err(unavailable);
        }
        self.announce(room, "user_joined", caller.user).await;
        Ok(None)
    }

    async fn on_leave_room(&self, caller: &Caller<'_>, data: &Value) -> Outcome {
        let room = str_field(data, "room")?;
        if !check_room(caller.user, room)? {
            return Err(error(
                "forbidden",
                "a session cannot leave its own user room",
            ));
        }
        if self.leave_locally(caller.session, room) {
            self.left(caller.session, room).await?;
            self.announce(room, "user_left", caller.user).await;
        }
        Ok(None)
    }

    async fn on_message(&self, caller: &Caller<'_>, data: &Value) -> Outcome {
        let chat_id = str_field(data, "chat_id")?;
        let text = match data.get("text") {
            Some(Value::String(s)) => s,
            _ => return Err(error("bad_request", "`text` must be a string")),
        };
        let id = self.next_message_id();
        let message = json!({
            "chat_id": chat_id,
            "from": caller.user,
            "text": text,
            "id": id,
            "ts": now_rfc3339(),
        });
        if !self.event_fits("new_message", &message) {
            return Err(error(
                "too_large",
                "the message would not fit in a frame; send a shorter text",
            ));
        }
        let room = format!("chat:{chat_id}");
        // The fan-out is the last step that can fail: it records this outcome with itself.
        let outcome: Outcome = Ok(Some(json!({ "id": id })));
        let send = caller
            .send
            .map(|(key, send_id)| SendRecord::new(key, send_id, &outcome));
        self.notify_room(&room, "new_message", &message, caller.now, send.as_ref())
            .await?;
        outcome
    }

    async fn on_typing(&self, caller: &Caller<'_>, data: &Value, typing: bool) -> Outcome {
        let chat_id = str_field(data, "chat_id")?;
        let update = json!({ "chat_id": chat_id, "user": caller.user, "typing": typing });
        let room = format!("chat:{chat_id}");
        // Volatile: where the broker is down, the members on this node still get it.
        self.fanout_volatile(&room, "typing_update", &update, Some(caller.user), None)
            .await;
        Ok(None)
    }

    /// `get_room_members {room}`: who is in a room the session is in (the snapshot a client
    /// takes after joining or resuming, since membership events are volatile): the exact number
    /// of distinct users and up to 1,000 of them.
    fn on_room_members(&self, caller: &Caller<'_>, data: &Value) -> Outcome {
        let room = member_room(caller, data)?;
        let (count, users) = match self.rooms.get(room) {
            Some(room) => room.users(MAX_MEMBERS_LISTED),
            None => (1, vec![caller.session.user.clone()]),
        };
        let truncated = users.len() < count;
        Ok(Some(json!({
            "room": room,
            "count": count,
            "users": users.iter().map(|u| &**u).collect::<Vec<&str>>(),
            "truncated": truncated,
        })))
    }

    async fn on_unread_removed(&self, caller: &Caller<'_>, data: &Value, event: &str) -> Outcome {
        let id = str_field(data, "id")?;
        let count = self.remove_unread(caller.user, id).await?;
        let user_room = format!("user:{}", caller.user);
        self.fanout(&user_room, event, &json!({ "id": id }), caller.now)
            .await?;
        let update = json!({ "count": count });
        self.fanout(&user_room, "unread_count_update", &update, caller.now)
            .await?;
        Ok(None)
    }
}

/// The `room` of a request about a room the caller's session is in (or its own user room).
pub(crate) fn member_room<'a>(caller: &Caller<'_>, data: &'a Value) -> Result<&'a str, ErrorBody> {
    let room = str_field(data, "room")?;
    let member = !check_room(caller.user, room)?
        || caller.session.lock().rooms.iter().any(|r| &*r.name == room);
    if member {
        Ok(room)
    } else {
        Err(error("forbidden", "join the room first"))
    }
}

/// The ack for an id at or below the pair's floor.
pub(crate) fn expired_ack(id: u64) -> String {
    ack_frame(
        id,
        Err(error(
            "id_expired",
            "not processed: this id is older than the ids the server remembers",
        )),
    )
}

/// Whether an outcome is the broker's refusal (not processed: retry the same id).
pub(crate) fn is_unavailable(outcome: &Outcome) -> bool {
    outcome
        .as_ref()
        .is_err_and(|e| e.code == "rate_limited" && e.retry_after_ms.is_some())
}

/// Checks that `user` may be in `room`: `Ok(true)` for a chat room, `Ok(false)` for the user's own room.
pub(crate) fn check_room(user: &str, room: &str) -> Result<bool, ErrorBody> {
    if room.len() > MAX_ROOM_NAME {
        return Err(error("bad_room", "room name too long"));
    }
    if room.strip_prefix("chat:").is_some_and(|id| !id.is_empty()) {
        return Ok(true);
    }
    if let Some(id) = room.strip_prefix("user:").filter(|id| !id.is_empty()) {
        return if id == user {
            Ok(false)
        } else {
            Err(error("forbidden", "a user room is open to its user only"))
        };
    }
    Err(error("bad_room", "rooms are `chat:{id}` or `user:{id}`"))
}

/// Encodes the `ack` for `id`.
pub(crate) fn ack_frame(id: u64, outcome: Outcome) -> String {
    let (ok, data, error) = match outcome {
        Ok(data) => (true, data, None),
        Err(e) => (false, None, Some(e)),
    };
    ServerFrame::Ack {
        id,
        ok,
        data,
        error,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_rules() {
        assert_eq!(check_room("u1", "chat:7"), Ok(true));
        assert_eq!(check_room("u1", "user:u1"), Ok(false));
        assert_eq!(check_room("u1", "user:u2").unwrap_err().code, "forbidden");
        for bad in ["chat:", "user:", "lobby", ""] {
            assert_eq!(check_room("u1", bad).unwrap_err().code, "bad_room", "{bad}");
        }
    }
}
