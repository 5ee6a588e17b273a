//! The typed event catalogue: one type per event name of PROTOCOL.md §10, with its wire name.
//!
//! Server events implement [`ServerEvent`] and client events [`ClientEvent`]; each knows its wire
//! name. Applications add their own by implementing the same traits:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use sockline::events::ServerEvent;
//!
//! #[derive(Debug, Deserialize)]
//! struct OrderShipped { order_id: String }
//!
//! impl ServerEvent for OrderShipped {
//!     const NAME: &'static str = "order_shipped";
//! }
//!
//! let data = serde_json::json!({"order_id": "o-1"});
//! let event = OrderShipped::from_data(&data).unwrap();
//! assert_eq!(event.order_id, "o-1");
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event the server sends, decodable from the `data` of an `event` frame.
pub trait ServerEvent: DeserializeOwned {
    /// The event name on the wire.
    const NAME: &'static str;

    /// Decodes the payload.
    fn from_data(data: &Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(data)
    }
}

/// An event the client sends.
pub trait ClientEvent: Serialize {
    /// The event name on the wire.
    const NAME: &'static str;
}

macro_rules! event {
    ($trait:ident, $name:literal, $(#[$doc:meta])* $ty:ident { $($(#[$fdoc:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $ty {
            $($(#[$fdoc])* pub $field: $fty,)*
        }

        impl $trait for $ty {
            const NAME: &'static str = $name;
        }
    };
}

// ---- server -> client -----------------------------------------------------------------------

event!(ServerEvent, "new_notification",
/// A notification for the user.
NewNotification {
    /// The notification id.
    id: String,
    /// Its title.
    #[serde(default)] title: String,
    /// Its body text.
    #[serde(default)] body: String,
});
event!(ServerEvent, "unread_count_update",
/// The user's unread notification count changed.
UnreadCountUpdate {
    /// The new count.
    count: u64,
});
event!(ServerEvent, "notification_read",
/// A notification was marked read (on any of the user's sessions).
NotificationRead {
    /// The notification id.
    id: String,
});
event!(ServerEvent, "notification_deleted",
/// A notification was deleted.
NotificationDeleted {
    /// The notification id.
    id: String,
});
event!(ServerEvent, "new_message",
/// A chat message in a room the client joined.
NewMessage {
    /// The chat id (room `chat:{chat_id}`).
    chat_id: String,
    /// The sender's user id.
    from: String,
    /// The text.
    text: String,
    /// The server's message id.
    id: String,
    /// When the server accepted it (RFC 3339).
    #[serde(default)] ts: String,
});
event!(ServerEvent, "message_delivered",
/// A message reached its recipients.
MessageDelivered {
    /// The chat id.
    chat_id: String,
    /// The message id.
    id: String,
});
event!(ServerEvent, "message_status_update",
/// A read or delivered receipt.
MessageStatusUpdate {
    /// The chat id.
    chat_id: String,
    /// The message id.
    id: String,
    /// `delivered` or `read`.
    status: String,
    /// Who read or received it.
    #[serde(default)] user: String,
});
event!(ServerEvent, "typing_update",
/// Someone started or stopped typing in a chat.
TypingUpdate {
    /// The chat id.
    chat_id: String,
    /// Who is typing.
    user: String,
    /// Whether they are typing now.
    typing: bool,
});
event!(ServerEvent, "user_joined",
/// Someone joined a room.
UserJoined {
    /// The room.
    room: String,
    /// Who joined.
    user: String,
});
event!(ServerEvent, "user_left",
/// Someone left a room.
UserLeft {
    /// The room.
    room: String,
    /// Who left.
    user: String,
});
event!(ServerEvent, "conversation_update",
/// A conversation's metadata changed.
ConversationUpdate {
    /// The chat id.
    chat_id: String,
    /// The new title, if it changed.
    #[serde(default)] title: Option<String>,
    /// A preview of the last message, if any.
    #[serde(default)] last_message: Option<String>,
});
event!(ServerEvent, "presence",
/// A user came online or went offline.
Presence {
    /// The user.
    user: String,
    /// Whether they are online.
    online: bool,
});

// ---- client -> server -----------------------------------------------------------------------

event!(ClientEvent, "join_room",
/// Join a room (the core sends this for [`join`](crate::core::Connection::join)).
JoinRoom {
    /// The room, e.g. `chat:7`.
    room: String,
});
event!(ClientEvent, "leave_room",
/// Leave a room.
LeaveRoom {
    /// The room.
    room: String,
});
event!(ClientEvent, "message",
/// Post a chat message.
Message {
    /// The chat id.
    chat_id: String,
    /// The text.
    text: String,
});
event!(ClientEvent, "typing_start",
/// Started typing.
TypingStart {
    /// The chat id.
    chat_id: String,
});
event!(ClientEvent, "typing_stop",
/// Stopped typing.
TypingStop {
    /// The chat id.
    chat_id: String,
});
event!(ClientEvent, "mark_notification_read",
/// Mark a notification read.
MarkNotificationRead {
    /// The notification id.
    id: String,
});
event!(ClientEvent, "delete_notification",
/// Delete a notification.
DeleteNotification {
    /// The notification id.
    id: String,
});
event!(ClientEvent, "get_unread_count",
    /// Ask for the unread count (the ack's data is `{"count": N}`).
    GetUnreadCount {});

/// Every server event name in the catalogue.
pub const SERVER_EVENTS: &[&str] = &[
    NewNotification::NAME,
    UnreadCountUpdate::NAME,
    NotificationRead::NAME,
    NotificationDeleted::NAME,
    NewMessage::NAME,
    MessageDelivered::NAME,
    MessageStatusUpdate::NAME,
    TypingUpdate::NAME,
    UserJoined::NAME,
    UserLeft::NAME,
    ConversationUpdate::NAME,
    Presence::NAME,
];

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn catalogue_events_decode_from_wire_payloads() {
        let n = NewNotification::from_data(&serde_json::json!({"id":"n1","title":"Hi"})).unwrap();
        assert_eq!(n.title, "Hi");
        assert_eq!(n.body, "");
        let t =
            TypingUpdate::from_data(&serde_json::json!({"chat_id":"7","user":"bob","typing":true}))
                .unwrap();
        assert!(t.typing);
        assert!(UnreadCountUpdate::from_data(&serde_json::json!({"count":"x"})).is_err());
        assert_eq!(SERVER_EVENTS.len(), 12);
    }
}
