//! [`Shared`]: what the client handles and the driver task share — the shell (behind a mutex,
//! locked only for a call), the clock origin, the listener registries and state subscribers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::types::{Message, Notice, StateChange};
use crate::core::{Connection, Input, Instant};
use crate::error::AckError;
use crate::listeners::{dispatch, Registry};
use crate::shell::Shell;

pub(crate) type Listener = Arc<dyn Fn(&Message) + Send + Sync>;
pub(crate) type NoticeListener = Arc<dyn Fn(&Notice) + Send + Sync>;
/// Where a request's outcome goes.
pub(crate) type AckSender = oneshot::Sender<Result<Option<Value>, AckError>>;

/// State shared by the handles and the driver task.
pub(crate) struct Shared {
    shell: Mutex<Shell<AckSender>>,
    origin: tokio::time::Instant,
    pub(crate) listeners: Mutex<Registry<Listener>>,
    pub(crate) notices: Mutex<Registry<NoticeListener>>,
    state_subscribers: Mutex<Vec<mpsc::UnboundedSender<StateChange>>>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking listener never runs under these locks, so a poisoned one is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(conn: Connection) -> Self {
        Shared {
            shell: Mutex::new(Shell::new(conn)),
            origin: tokio::time::Instant::now(),
            listeners: Mutex::default(),
            notices: Mutex::default(),
            state_subscribers: Mutex::default(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deadline(&self, at: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_millis(at.as_millis())
    }

    /// The locked shell (held only for a call, never across an await or a listener).
    pub(crate) fn shell(&self) -> MutexGuard<'_, Shell<AckSender>> {
        lock(&self.shell)
    }

    /// Runs `f` on the locked connection with the current time.
    pub(crate) fn with_conn<T>(&self, f: impl FnOnce(&mut Connection, Instant) -> T) -> T {
        let now = self.now();
        f(self.shell().conn_mut(), now)
    }

    /// Feeds one input with the current time.
    pub(crate) fn feed(&self, input: Input) {
        self.with_conn(|conn, now| conn.handle_input(now, input));
    }

    pub(crate) fn subscribe_states(&self) -> mpsc::UnboundedReceiver<StateChange> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.state_subscribers).push(tx);
        rx
    }

    pub(crate) fn publish_state(&self, change: StateChange) {
        lock(&self.state_subscribers).retain(|tx| tx.send(change.clone()).is_ok());
    }

    /// Calls every listener of `message.event`; a panicking listener is logged and skipped.
    pub(crate) fn dispatch_message(&self, message: &Message) {
        dispatch(&self.listeners, &message.event, |listener| {
            if catch_unwind(AssertUnwindSafe(|| listener(message))).is_err() {
                tracing::error!(event = %message.event, "a sockline listener panicked");
            }
        });
    }

    pub(crate) fn dispatch_notice(&self, notice: &Notice) {
        dispatch(&self.notices, "", |listener| {
            if catch_unwind(AssertUnwindSafe(|| listener(notice))).is_err() {
                tracing::error!("a sockline notice listener panicked");
            }
        });
    }
}
