//! [`Client`]: the cloneable handle applications hold — commands, listeners, state and stats.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::config::ClientConfig;
use super::driver::{self, Command};
use super::shared::{Listener, NoticeListener, Shared};
use super::types::{Message, Notice, RequestError, StateChange};
use crate::core::{Connection, ConnectionState, Instant, Payload, SendId, Stats};
use crate::error::SendError;
use crate::events::{ClientEvent, ServerEvent};
use crate::listeners::{ListenerId, SharedRegistry, Topic};

/// The native client: a cheap, cloneable handle to one reconnecting connection driven by a
/// tokio task. Dropping the last handle closes the socket with 1000 and ends the task.
///
/// ```no_run
/// use sockline::events::NewNotification;
/// use sockline::native::{Client, ClientConfig};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect(ClientConfig::new("ws://127.0.0.1:8080/ws", "…"));
/// let _guard = client.on::<NewNotification>(|n| println!("{}: {}", n.id, n.title));
/// client.join("chat:7");
/// client.send("message", serde_json::json!({"chat_id": "7", "text": "hi"}))?;
/// let count = client.request("get_unread_count", serde_json::json!({})).await?;
/// println!("unread: {count:?}");
/// client.disconnect().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

const _: () = {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    let _ = assert_traits::<Client>;
};

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts the driver task and connecting. Must be called within a tokio runtime (like
    /// `tokio::spawn`). Rooms from the config are joined on every new session.
    ///
    /// To see every state change from the very first (`connecting`), use [`Client::new`],
    /// subscribe with [`states`](Self::states), then [`start`](Self::start).
    pub fn connect(config: ClientConfig) -> Client {
        let client = Client::new(config);
        client.start();
        client
    }

    /// Starts the driver task without connecting: the client stays `disconnected`
    /// (`not_started`) until [`start`](Self::start). Must be called within a tokio runtime.
    pub fn new(config: ClientConfig) -> Client {
        let mut conn = Connection::new(config.connection, Instant::ZERO);
        for room in &config.rooms {
            conn.join(Instant::ZERO, room);
        }
        let shared = Arc::new(Shared::new(conn));
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(driver::run(shared.clone(), receiver, config.provider));
        Client { shared, commands }
    }

    fn wake(&self) {
        let _ = self.commands.send(Command::Wake);
    }

    /// Runs a command on the core, then wakes the task to carry out what it asked for.
    fn command<T>(&self, f: impl FnOnce(&mut Connection, Instant) -> T) -> T {
        let out = self.shared.with_conn(f);
        self.wake();
        out
    }

    /// Joins `room` now if connected, and after every new session.
    pub fn join(&self, room: &str) {
        self.command(|conn, now| conn.join(now, room));
    }

    /// Leaves `room`.
    pub fn leave(&self, room: &str) {
        self.command(|conn, now| conn.leave(now, room));
    }

    /// Queues `event` with `data`; it goes out when connected and stays queued until acked.
    /// The ack arrives as [`Notice::Ack`].
    pub fn send(&self, event: &str, data: impl Serialize) -> Result<SendId, SendError> {
        let data = to_payload(data)?;
        self.command(|conn, now| conn.send(now, event, &data))
    }

    /// Sends a typed catalogue event.
    pub fn send_event<E: ClientEvent>(&self, event: &E) -> Result<SendId, SendError> {
        self.send(E::NAME, event)
    }

    /// Sends `event` and waits for its ack: `Ok(data)` on `ok: true`, an error on `ok: false`
    /// or when no ack arrives within the request timeout.
    pub async fn request(
        &self,
        event: &str,
        data: impl Serialize,
    ) -> Result<Option<Value>, RequestError> {
        let data = to_payload(data)?;
        let (tx, rx) = oneshot::channel();
        let now = self.shared.now();
        let queued = self.shared.shell().request(now, event, &data, None, tx);
        self.wake();
        queued.map_err(|(error, _)| error)?;
        match rx.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RequestError::Closed),
        }
    }

    /// Calls `listener` with every `E` the server sends, decoded; a payload that does not decode
    /// as `E` is logged and skipped. Dropping the guard unsubscribes.
    #[must_use = "dropping the guard unsubscribes at once"]
    pub fn on<E: ServerEvent + 'static>(
        &self,
        listener: impl Fn(E) + Send + Sync + 'static,
    ) -> ListenerGuard {
        // Decoded straight from the raw JSON text: no intermediate `Value`.
        let listener: Listener = Arc::new(move |m: &Message| match m.data.decode::<E>() {
            Ok(event) => listener(event),
            Err(error) => tracing::warn!(event = E::NAME, %error, "payload did not decode"),
        });
        self.add_listener(Topic::Named(E::NAME.to_owned()), listener)
    }

    fn add_listener(&self, topic: Topic, listener: Listener) -> ListenerGuard {
        let id = self.shared.listeners.with(|r| r.add(topic, listener));
        ListenerGuard {
            shared: self.shared.clone(),
            id,
            notice: false,
            keep: false,
        }
    }

    /// Calls `listener` with the payload of every event named `name`.
    #[must_use = "dropping the guard unsubscribes at once"]
    pub fn on_event(
        &self,
        name: &str,
        listener: impl Fn(&Value) + Send + Sync + 'static,
    ) -> ListenerGuard {
        let listener: Listener = Arc::new(move |m: &Message| listener(&m.data.to_value()));
        self.add_listener(Topic::Named(name.to_owned()), listener)
    }

    /// Calls `listener` with every server event.
    #[must_use = "dropping the guard unsubscribes at once"]
    pub fn on_any(&self, listener: impl Fn(&Message) + Send + Sync + 'static) -> ListenerGuard {
        self.add_listener(Topic::Any, Arc::new(listener))
    }

    /// Calls `listener` with every [`Notice`]: acks, errors, resumes.
    #[must_use = "dropping the guard unsubscribes at once"]
    pub fn on_notice(&self, listener: impl Fn(&Notice) + Send + Sync + 'static) -> ListenerGuard {
        let id = self
            .shared
            .notices
            .with(|r| r.add(Topic::Any, Arc::new(listener) as NoticeListener));
        ListenerGuard {
            shared: self.shared.clone(),
            id,
            notice: true,
            keep: false,
        }
    }

    /// A stream of every state change from now on.
    pub fn states(&self) -> StateStream {
        StateStream {
            rx: self.shared.subscribe_states(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ConnectionState {
        self.shared.shell().conn().state().clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.shell().conn().stats()
    }

    /// Starts connecting (from `disconnected`, whatever the reason, with the backoff reset);
    /// does nothing while connecting, connected or reconnecting.
    pub fn start(&self) {
        self.command(|conn, now| conn.connect(now));
    }

    /// Connects again now with the backoff reset, whatever the state: a live socket is closed
    /// (1000) and replaced, a scheduled retry runs at once, a stopped client starts. Queued
    /// sends and pending requests are kept and go out on the new socket.
    pub fn reconnect(&self) {
        self.command(|conn, now| conn.reconnect(now));
    }

    /// Closes the socket with 1000 and stays `disconnected` until [`reconnect`](Self::reconnect).
    /// Returns once the close has been handed to the socket.
    pub async fn disconnect(&self) {
        self.shared.with_conn(|conn, now| conn.disconnect(now));
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Unsubscribes its listener when dropped.
#[must_use = "dropping the guard unsubscribes at once"]
pub struct ListenerGuard {
    shared: Arc<Shared>,
    id: ListenerId,
    notice: bool,
    keep: bool,
}

impl ListenerGuard {
    /// Keeps the listener for the client's whole life.
    ///
    /// A forgotten listener that holds a clone of its own `Client` keeps that client (and its
    /// task and socket) alive after every other handle is dropped; call
    /// [`Client::disconnect`] explicitly in that case.
    pub fn forget(mut self) {
        self.keep = true;
    }
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if self.notice {
            self.shared.notices.with(|r| r.remove(self.id));
        } else {
            self.shared.listeners.with(|r| r.remove(self.id));
        }
    }
}

/// The stream returned by [`Client::states`].
pub struct StateStream {
    rx: mpsc::UnboundedReceiver<StateChange>,
}

impl Stream for StateStream {
    type Item = StateChange;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StateChange>> {
        self.rx.poll_recv(cx)
    }
}

/// Encodes a send's data (through `Value`, so object keys go out sorted as they always have).
fn to_payload(data: impl Serialize) -> Result<Payload, SendError> {
    let value = serde_json::to_value(data).map_err(|e| SendError::BadPayload(e.to_string()))?;
    // Validated like any payload: a `Value` can nest deeper than the server will parse.
    Payload::from_json(value.to_string()).map_err(|e| SendError::BadPayload(e.reason().to_owned()))
}
