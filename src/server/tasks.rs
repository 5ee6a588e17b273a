//! The tasks of a server (one per HTTP connection, one per WebSocket), so shutdown can wait for
//! them and a crash simulation can abort them. A set spawns on the runtime it was made for, from
//! whichever thread asks (the accept thread hands connections to the main runtime through it).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::session::ConnId;

/// Every running connection task, by id.
#[derive(Debug)]
pub(crate) struct Tasks {
    map: Mutex<HashMap<ConnId, AbortHandle>>,
    emptied: Notify,
    /// Where [`Tasks::spawn`] runs them.
    runtime: Handle,
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

/// `task`, then `guard` dropped — also when the task is aborted (dropped unfinished).
///
/// A combinator, not an `async` block around `task.await`: the block would hold the future twice
/// (captured, then moved to be awaited), doubling every socket task's size for its whole life.
fn guarded<G: Send + 'static>(
    task: impl Future<Output = ()> + Send + 'static,
    guard: G,
) -> impl Future<Output = ()> + Send + 'static {
    task.map(move |()| drop(guard))
}

impl Tasks {
    /// An empty set whose tasks run on `runtime`.
    pub(crate) fn new(runtime: Handle) -> Tasks {
        Tasks {
            map: Mutex::default(),
            emptied: Notify::new(),
            runtime,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, AbortHandle>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spawns `task` under `id` on this set's runtime. The map stays locked until the task is
    /// recorded, so a task that ends at once still leaves no stale entry behind.
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
        let handle = self.runtime.spawn(guarded(task, deregister));
        map.insert(id, handle.abort_handle());
    }

    /// Tasks alive on this set's runtime: this set's and every other.
    pub(crate) fn alive_on_runtime(&self) -> usize {
        self.runtime.metrics().num_alive_tasks()
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A future that keeps 4 KiB across an await, as a socket's loop keeps its state.
    async fn big() {
        let state = [7u8; 4096];
        tokio::task::yield_now().await;
        std::hint::black_box(&state);
    }

    #[test]
    fn a_guarded_task_holds_its_future_once() {
        let task = big();
        let alone = std::mem::size_of_val(&task);
        let wrapped = guarded(task, Flag(Arc::default()));
        assert!(
            std::mem::size_of_val(&wrapped) < alone + 64,
            "{} B wrapped for a {alone} B future",
            std::mem::size_of_val(&wrapped)
        );
    }

    #[tokio::test]
    async fn the_guard_drops_when_the_task_ends_and_when_it_is_aborted() {
        let ended = Arc::new(AtomicBool::new(false));
        tokio::spawn(guarded(big(), Flag(ended.clone())))
            .await
            .expect("the task");
        assert!(ended.load(Ordering::SeqCst));

        let aborted = Arc::new(AtomicBool::new(false));
        let handle = tokio::spawn(guarded(std::future::pending(), Flag(aborted.clone())));
        tokio::task::yield_now().await;
        assert!(!aborted.load(Ordering::SeqCst));
        handle.abort();
        assert!(handle.await.is_err());
        assert!(aborted.load(Ordering::SeqCst));
    }
}
