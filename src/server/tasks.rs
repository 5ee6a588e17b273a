//! The tasks of a server (one per HTTP connection, one per WebSocket), so shutdown can wait for
//! them and a crash simulation can abort them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::session::ConnId;

/// Every running connection task, by id.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    map: Mutex<HashMap<ConnId, AbortHandle>>,
    emptied: Notify,
}

/// Takes a task out of the map when it ends, whether it finished or was aborted.
struct Deregister {
    tasks: Arc<Tasks>,
    id: ConnId,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let mut map = self.tasks.lock();
        map.remove(&self.id);
        if map.is_empty() {
            self.tasks.emptied.notify_waiters();
        }
    }
}

impl Tasks {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, AbortHandle>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spawns `task` under `id`. The map stays locked until the task is recorded, so a task that
    /// ends at once still leaves no stale entry behind.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        id: ConnId,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let deregister = Deregister {
            tasks: self.clone(),
            id,
        };
        let mut map = self.lock();
        let handle = tokio::spawn(async move {
            let _deregister = deregister;
            task.await;
        });
        map.insert(id, handle.abort_handle());
    }

    /// Aborts every task.
    pub(crate) fn abort_all(&self) {
        for task in self.lock().values() {
            task.abort();
        }
    }

    /// Resolves once no task is left.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            emptied.await;
        }
    }
}
