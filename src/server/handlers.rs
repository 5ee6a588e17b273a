//! What each client event does (`join_room`, `message`, `mark_notification_read`, …) and the
//! exactly-once wrapper that turns a `send` into its `ack`.

use serde_json::{json, Value};
use tokio::time::Instant;

use super::clock::now_rfc3339;
use super::hub::HubState;
use super::session::{ConnId, SendCheck, SessionId};
use crate::protocol::{ErrorBody, ServerFrame};

/// Longest room name accepted.
const MAX_ROOM_NAME: usize = 128;
/// Rooms one session may be in, its own user room included.
const MAX_ROOMS_PER_SESSION: usize = 100;

/// The outcome of one client event: the ack's `data`, or its `error`.
type Outcome = Result<Option<Value>, ErrorBody>;

fn error(code: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

/// A required non-empty string field of the event data.
fn str_field<'a>(data: &'a Value, key: &str) -> Result<&'a str, ErrorBody> {
    match data.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(error(
            "bad_request",
            format!("`{key}` must be a non-empty string"),
        )),
        None => Err(error("bad_request", format!("`{key}` is required"))),
    }
}

/// Who the session is, for the duration of one event.
struct Caller<'a> {
    user: &'a str,
    session: &'a SessionId,
    now: Instant,
}

impl HubState {
    /// Handles `send {id, event, data}` exactly once per id and returns the encoded `ack` and
    /// whether the send was refused by the rate limit; `None` if the socket is no longer
    /// attached to a session.
    ///
    /// A repeated id gets the ack it got the first time, whatever it was — a rate-limited send
    /// included, so a later resend of it can never be answered `ok` without being processed.
    pub(crate) fn handle_send(
        &mut self,
        conn: ConnId,
        id: u64,
        event: &str,
        data: &Value,
        now: Instant,
        within_rate: bool,
    ) -> Option<(String, bool)> {
        let (user, session) = self.conn_session(conn)?;
        match self.session_mut(&session)?.sends.check(id) {
            SendCheck::Repeated(Some(ack)) => return Some((ack, false)),
            SendCheck::Repeated(None) => return Some((ack_frame(id, Ok(None)), false)),
            SendCheck::New => {}
        }
        let outcome = if within_rate {
            let caller = Caller {
                user: &user,
                session: &session,
                now,
            };
            self.dispatch(&caller, event, data)
        } else {
            Err(error("rate_limited", "not processed: too many sends"))
        };
        let ack = ack_frame(id, outcome);
        self.session_mut(&session)?.sends.record(id, ack.clone());
        Some((ack, !within_rate))
    }

    fn dispatch(&mut self, caller: &Caller<'_>, event: &str, data: &Value) -> Outcome {
        match event {
            "join_room" => self.on_join_room(caller, data),
            "leave_room" => self.on_leave_room(caller, data),
            "message" => self.on_message(caller, data),
            "typing_start" => self.on_typing(caller, data, true),
            "typing_stop" => self.on_typing(caller, data, false),
            "mark_notification_read" => self.on_unread_removed(caller, data, "notification_read"),
            "delete_notification" => self.on_unread_removed(caller, data, "notification_deleted"),
            "get_unread_count" => Ok(Some(json!({ "count": self.unread_count(caller.user) }))),
            _ => Err(error("unknown_event", format!("unknown event `{event}`"))),
        }
    }

    fn on_join_room(&mut self, caller: &Caller<'_>, data: &Value) -> Outcome {
        let room = str_field(data, "room")?;
        let is_chat = check_room(caller.user, room)?;
        if self.room_count(caller.session) >= MAX_ROOMS_PER_SESSION {
            return Err(error("too_many_rooms", "this session is in too many rooms"));
        }
        if self.join(caller.session, room) && is_chat {
            let note = json!({ "room": room, "user": caller.user });
            self.deliver_room(room, "user_joined", &note, Some(caller.user), caller.now);
        }
        Ok(None)
    }

    fn on_leave_room(&mut self, caller: &Caller<'_>, data: &Value) -> Outcome {
        let room = str_field(data, "room")?;
        if !check_room(caller.user, room)? {
            return Err(error(
                "forbidden",
                "a session cannot leave its own user room",
            ));
        }
        if self.leave(caller.session, room) {
            let note = json!({ "room": room, "user": caller.user });
            self.deliver_room(room, "user_left", &note, Some(caller.user), caller.now);
        }
        Ok(None)
    }

    fn on_message(&mut self, caller: &Caller<'_>, data: &Value) -> Outcome {
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
        self.deliver_room(
            &format!("chat:{chat_id}"),
            "new_message",
            &message,
            None,
            caller.now,
        );
        Ok(Some(json!({ "id": id })))
    }

    fn on_typing(&mut self, caller: &Caller<'_>, data: &Value, typing: bool) -> Outcome {
        let chat_id = str_field(data, "chat_id")?;
        let update = json!({ "chat_id": chat_id, "user": caller.user, "typing": typing });
        let room = format!("chat:{chat_id}");
        self.deliver_room(
            &room,
            "typing_update",
            &update,
            Some(caller.user),
            caller.now,
        );
        Ok(None)
    }

    fn on_unread_removed(&mut self, caller: &Caller<'_>, data: &Value, event: &str) -> Outcome {
        let id = str_field(data, "id")?;
        let count = self.remove_unread(caller.user, id);
        let room = format!("user:{}", caller.user);
        self.deliver_room(&room, event, &json!({ "id": id }), None, caller.now);
        let update = json!({ "count": count });
        self.deliver_room(&room, "unread_count_update", &update, None, caller.now);
        Ok(None)
    }
}

/// Checks that `user` may be in `room`: `Ok(true)` for a chat room, `Ok(false)` for the user's own room.
fn check_room(user: &str, room: &str) -> Result<bool, ErrorBody> {
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
