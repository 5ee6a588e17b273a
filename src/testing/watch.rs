//! Waiting on a native [`Client`] in tests: [`StateWatch`] records its state changes,
//! [`EventLog`] the events it received; both wait with a deadline instead of sleeping.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::Notify;
use tokio::time::timeout;

use crate::native::{Client, ListenerGuard, Message, StateChange, StateStream};

/// Something a test waited for did not happen in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{wanted} did not happen within {within:?}; saw: {saw}")]
pub struct WaitTimeout {
    /// What was waited for.
    pub wanted: String,
    /// How long.
    pub within: Duration,
    /// What happened instead.
    pub saw: String,
}

/// Records every state change of a client from the moment it is created, and waits for states.
///
/// Create it *before* causing the change (a cut, a restart): nothing that happens after
/// [`new`](Self::new) is missed, however fast the client moves on. The watch holds a handle to
/// the client; drop it too when a test checks what dropping the client does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use sockline::native::{Client, ClientConfig};
/// use sockline::testing::{StateWatch, TestServer};
///
/// let server = TestServer::start().await?;
/// let client = Client::new(ClientConfig::new(server.ws_url(), server.token("alice")));
/// let mut watch = StateWatch::new(&client);
/// client.start();
/// watch.wait_for("connected", Duration::from_secs(5)).await?;
/// assert_eq!(watch.names(), ["connecting", "authenticating", "connected"]);
/// # Ok(()) }
/// ```
pub struct StateWatch {
    client: Client,
    states: StateStream,
    seen: Vec<StateChange>,
    /// How much of `seen` earlier waits consumed.
    waited: usize,
}

impl std::fmt::Debug for StateWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWatch")
            .field("seen", &self.names())
            .finish_non_exhaustive()
    }
}

impl StateWatch {
    /// Starts recording `client`'s state changes.
    pub fn new(client: &Client) -> StateWatch {
        StateWatch {
            client: client.clone(),
            states: client.states(),
            seen: Vec::new(),
            waited: 0,
        }
    }

    /// Every change recorded so far, oldest first (changes are recorded while waiting).
    pub fn seen(&self) -> &[StateChange] {
        &self.seen
    }

    /// The names of the states entered so far, oldest first.
    pub fn names(&self) -> Vec<&'static str> {
        self.seen.iter().map(|change| change.to.name()).collect()
    }

    /// Waits until the client has entered `state` since the previous `wait_for` returned (or
    /// since [`new`](Self::new)), or is in it now. So after a cut, `wait_for("reconnecting")`
    /// then `wait_for("connected")` passes however quickly the client came back. Fails after
    /// `within` (or if the client task is gone), listing what it saw.
    pub async fn wait_for(&mut self, state: &str, within: Duration) -> Result<(), WaitTimeout> {
        let from = self.waited;
        while let Some(Some(change)) = self.states.next().now_or_never() {
            self.seen.push(change);
        }
        let entered = |seen: &[StateChange]| seen.iter().any(|c| c.to.name() == state);
        let found = entered(&self.seen[from..]) || self.client.state().name() == state || {
            let waited = timeout(within, async {
                while let Some(change) = self.states.next().await {
                    let done = change.to.name() == state;
                    self.seen.push(change);
                    if done {
                        return true;
                    }
                }
                false
            })
            .await;
            waited == Ok(true)
        };
        self.waited = self.seen.len();
        if found {
            return Ok(());
        }
        Err(WaitTimeout {
            wanted: format!("state `{state}`"),
            within,
            saw: format!(
                "{:?} (now {})",
                &self.names()[from..],
                self.client.state().name()
            ),
        })
    }
}

/// Records every server event a client receives, in order, from the moment it is created.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use serde_json::json;
/// use sockline::native::{Client, ClientConfig};
/// use sockline::testing::{EventLog, StateWatch, TestServer};
///
/// let server = TestServer::start().await?;
/// let client = Client::new(ClientConfig::new(server.ws_url(), server.token("alice")));
/// let log = EventLog::new(&client);
/// let mut watch = StateWatch::new(&client);
/// client.start();
/// watch.wait_for("connected", Duration::from_secs(5)).await?;
///
/// server.notify_user("alice", "new_notification", json!({"id": "n1"})).await?;
/// log.wait_for_len(1, Duration::from_secs(5)).await?;
/// assert_eq!(log.messages()[0].event, "new_notification");
/// assert_eq!(log.messages()[0].data.to_value()["id"], "n1");
/// # Ok(()) }
/// ```
pub struct EventLog {
    shared: Arc<LogShared>,
    _listener: ListenerGuard,
}

#[derive(Debug, Default)]
struct LogShared {
    messages: Mutex<Vec<Message>>,
    grew: Notify,
}

impl LogShared {
    fn messages(&self) -> MutexGuard<'_, Vec<Message>> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Starts recording; recording stops when the log is dropped.
    pub fn new(client: &Client) -> EventLog {
        let shared = Arc::new(LogShared::default());
        let sink = shared.clone();
        let listener = client.on_any(move |message| {
            sink.messages().push(message.clone());
            sink.grew.notify_waiters();
        });
        EventLog {
            shared,
            _listener: listener,
        }
    }

    /// A copy of every event so far, in the order received.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages().clone()
    }

    /// How many events so far.
    pub fn len(&self) -> usize {
        self.shared.messages().len()
    }

    /// Whether none arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least `count` events arrived; fails after `within`.
    pub async fn wait_for_len(&self, count: usize, within: Duration) -> Result<(), WaitTimeout> {
        let reached = timeout(within, async {
            loop {
                let grew = self.shared.grew.notified();
                tokio::pin!(grew);
                // Registered before the check, so a push in between still wakes us.
                grew.as_mut().enable();
                if self.len() >= count {
                    return;
                }
                grew.await;
            }
        })
        .await;
        reached.map_err(|_| WaitTimeout {
            wanted: format!("{count} events"),
            within,
            saw: format!("{} events", self.len()),
        })
    }
}
