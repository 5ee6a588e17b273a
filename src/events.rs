//! The typed event catalogue (one type per event name of DESIGN §3) and the listener
//! [`Registry`] both drivers dispatch through.
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

use std::cell::RefCell;
use std::sync::Mutex;

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

// ---- the listener registry ------------------------------------------------------------------

/// Names one registered listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(pub u64);

/// Which events a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Events with this name.
    Named(String),
    /// Every event.
    Any,
}

/// Listeners of type `L` (a Rust closure natively, a JS function in the browser) keyed by topic.
///
/// Dispatch goes through [`dispatch`], which snapshots the matching listeners first: a listener
/// added during dispatch does not hear the current event, and one removed during dispatch (even
/// by itself) is skipped if it has not run yet. No lock is held while a listener runs.
#[derive(Debug)]
pub struct Registry<L> {
    listeners: Vec<(ListenerId, Topic, L)>,
    next_id: u64,
}

impl<L> Default for Registry<L> {
    fn default() -> Self {
        Registry {
            listeners: Vec::new(),
            next_id: 1,
        }
    }
}

impl<L: Clone> Registry<L> {
    /// Adds `listener` for `topic`.
    pub fn add(&mut self, topic: Topic, listener: L) -> ListenerId {
        let id = ListenerId(self.next_id);
        self.next_id += 1;
        self.listeners.push((id, topic, listener));
        id
    }

    /// Removes a listener; returns whether it was registered.
    pub fn remove(&mut self, id: ListenerId) -> bool {
        let before = self.listeners.len();
        self.listeners.retain(|(i, _, _)| *i != id);
        self.listeners.len() != before
    }

    /// Whether `id` is registered.
    pub fn contains(&self, id: ListenerId) -> bool {
        self.listeners.iter().any(|(i, _, _)| *i == id)
    }

    /// How many listeners are registered.
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    /// Whether no listener is registered.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// The listeners that hear `name`, in registration order.
    pub fn snapshot(&self, name: &str) -> Vec<(ListenerId, L)> {
        self.listeners
            .iter()
            .filter(|(_, topic, _)| match topic {
                Topic::Named(n) => n == name,
                Topic::Any => true,
            })
            .map(|(id, _, l)| (*id, l.clone()))
            .collect()
    }
}

/// Shared access to a registry, so [`dispatch`] works with a `Mutex` (native) or a `RefCell`
/// (browser) without holding the borrow while a listener runs.
pub trait SharedRegistry<L> {
    /// Runs `f` with the registry borrowed.
    fn with<T>(&self, f: impl FnOnce(&mut Registry<L>) -> T) -> T;
}

impl<L> SharedRegistry<L> for Mutex<Registry<L>> {
    fn with<T>(&self, f: impl FnOnce(&mut Registry<L>) -> T) -> T {
        // A listener that panicked poisons nothing we rely on: the registry is always consistent.
        let mut guard = self.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl<L> SharedRegistry<L> for RefCell<Registry<L>> {
    fn with<T>(&self, f: impl FnOnce(&mut Registry<L>) -> T) -> T {
        f(&mut self.borrow_mut())
    }
}

/// Calls `call` with every listener of `name`, snapshot first, skipping any removed meanwhile.
pub fn dispatch<L: Clone>(registry: &impl SharedRegistry<L>, name: &str, mut call: impl FnMut(&L)) {
    let snapshot = registry.with(|r| r.snapshot(name));
    for (id, listener) in snapshot {
        if registry.with(|r| r.contains(id)) {
            call(&listener);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::sync::Arc;

    type Listener = Rc<dyn Fn(&str)>;
    type SyncListener = Arc<dyn Fn() + Send + Sync>;

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

    #[test]
    fn listeners_hear_their_topic_and_any() {
        let registry: RefCell<Registry<Listener>> = RefCell::default();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l1 = log.clone();
        registry.borrow_mut().add(
            Topic::Named("a".into()),
            Rc::new(move |e| l1.borrow_mut().push(format!("a:{e}"))),
        );
        let l2 = log.clone();
        registry.borrow_mut().add(
            Topic::Any,
            Rc::new(move |e| l2.borrow_mut().push(format!("any:{e}"))),
        );
        dispatch(&registry, "a", |l| l("a"));
        dispatch(&registry, "b", |l| l("b"));
        assert_eq!(*log.borrow(), ["a:a", "any:a", "any:b"]);
    }

    #[test]
    fn a_listener_added_during_dispatch_misses_the_current_event() {
        let registry: Rc<RefCell<Registry<Listener>>> = Rc::default();
        let calls = Rc::new(RefCell::new(0));
        let (r, c) = (registry.clone(), calls.clone());
        registry.borrow_mut().add(
            Topic::Any,
            Rc::new(move |_| {
                let c2 = c.clone();
                r.borrow_mut()
                    .add(Topic::Any, Rc::new(move |_| *c2.borrow_mut() += 1));
            }),
        );
        dispatch(&*registry, "x", |l| l("x"));
        assert_eq!(*calls.borrow(), 0);
        assert_eq!(registry.borrow().len(), 2);
        dispatch(&*registry, "x", |l| l("x"));
        assert_eq!(*calls.borrow(), 1);
    }

    #[test]
    fn a_listener_may_remove_itself_and_others_during_dispatch() {
        let registry: Arc<Mutex<Registry<SyncListener>>> = Arc::default();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let ids = Arc::new(Mutex::new(Vec::new()));
        for n in 0..3 {
            let (r, h, i) = (registry.clone(), hits.clone(), ids.clone());
            let id = registry.with(|reg| {
                reg.add(
                    Topic::Any,
                    Arc::new(move || {
                        h.lock().unwrap().push(n);
                        // The first listener removes itself and the third.
                        if n == 0 {
                            let all = i.lock().unwrap().clone();
                            r.with(|reg| {
                                reg.remove(all[0]);
                                reg.remove(all[2]);
                            });
                        }
                    }),
                )
            });
            ids.lock().unwrap().push(id);
        }
        dispatch(&*registry, "x", |l| l());
        assert_eq!(*hits.lock().unwrap(), [0, 1]);
        assert_eq!(registry.with(|r| r.len()), 1);
    }
}
