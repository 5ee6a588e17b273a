//! The listener registry both drivers dispatch through: listeners of any type (a Rust closure
//! natively, a JS function in the browser) keyed by topic, dispatched from a snapshot with no
//! lock held while a listener runs.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// Names one registered listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ListenerId(pub u64);

/// Which events a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topic {
    /// Events with this name.
    Named(String),
    /// Every event.
    Any,
}

impl Topic {
    fn hears(&self, name: &str) -> bool {
        match self {
            Topic::Named(n) => n == name,
            Topic::Any => true,
        }
    }
}

/// The registered listeners, in registration order.
type Entries<L> = Vec<(ListenerId, Topic, L)>;

/// Listeners of type `L` (a Rust closure natively, a JS function in the browser) keyed by topic.
///
/// Dispatch goes through [`dispatch`], which snapshots the listeners first: a listener added
/// during dispatch does not hear the current event, and one removed during dispatch (even by
/// itself) is skipped if it has not run yet. No lock is held while a listener runs.
///
/// The list is shared with the dispatches in progress and copied only when it changes while
/// one holds it, so an event costs no allocation and no copy of the listeners.
#[derive(Debug)]
pub(crate) struct Registry<L> {
    listeners: Arc<Entries<L>>,
    next_id: u64,
}

impl<L> Default for Registry<L> {
    fn default() -> Self {
        Registry {
            listeners: Arc::default(),
            next_id: 1,
        }
    }
}

impl<L: Clone> Registry<L> {
    /// Adds `listener` for `topic`.
    pub(crate) fn add(&mut self, topic: Topic, listener: L) -> ListenerId {
        let id = ListenerId(self.next_id);
        self.next_id += 1;
        Arc::make_mut(&mut self.listeners).push((id, topic, listener));
        id
    }

    /// Removes a listener; returns whether it was registered.
    pub(crate) fn remove(&mut self, id: ListenerId) -> bool {
        if !self.contains(id) {
            return false;
        }
        Arc::make_mut(&mut self.listeners).retain(|(i, _, _)| *i != id);
        true
    }

    /// Whether `id` is registered.
    pub(crate) fn contains(&self, id: ListenerId) -> bool {
        self.listeners.iter().any(|(i, _, _)| *i == id)
    }

    /// How many listeners are registered (the browser's leak checks read it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.listeners.len()
    }

    /// Every listener as of now (shared, not copied).
    fn snapshot(&self) -> Arc<Entries<L>> {
        Arc::clone(&self.listeners)
    }

    /// Whether `id`, a listener of `snapshot`, is still registered (at once when nothing
    /// changed since the snapshot was taken).
    fn still_has(&self, snapshot: &Arc<Entries<L>>, id: ListenerId) -> bool {
        Arc::ptr_eq(&self.listeners, snapshot) || self.contains(id)
    }
}

/// Shared access to a registry, so [`dispatch`] works with a `Mutex` (native) or a `RefCell`
/// (browser) without holding the borrow while a listener runs.
pub(crate) trait SharedRegistry<L> {
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
        // Never borrowed while a listener runs, so this always succeeds; were it ever busy, an
        // empty registry answers (nothing heard) instead of a panic.
        match self.try_borrow_mut() {
            Ok(mut registry) => f(&mut registry),
            Err(_) => f(&mut Registry::default()),
        }
    }
}

/// Calls `call` with every listener of `name`, snapshot first, skipping any removed meanwhile.
pub(crate) fn dispatch<L: Clone>(
    registry: &impl SharedRegistry<L>,
    name: &str,
    mut call: impl FnMut(&L),
) {
    let snapshot = registry.with(|r| r.snapshot());
    for (id, _, listener) in snapshot.iter().filter(|(_, topic, _)| topic.hears(name)) {
        if registry.with(|r| r.still_has(&snapshot, *id)) {
            call(listener);
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
    fn a_snapshot_shares_the_list_until_it_changes() {
        let mut registry: Registry<Listener> = Registry::default();
        let first = registry.add(Topic::Any, Rc::new(|_| {}));
        let snapshot = registry.snapshot();
        // Taking a snapshot copies nothing: dispatch allocates nothing per event.
        assert!(Arc::ptr_eq(&snapshot, &registry.listeners));
        let second = registry.add(Topic::Any, Rc::new(|_| {}));
        // A change while a snapshot is held leaves the snapshot as it was.
        assert_eq!(snapshot.len(), 1);
        assert!(registry.still_has(&snapshot, first));
        assert!(registry.remove(first));
        assert!(!registry.still_has(&snapshot, first));
        assert!(!registry.remove(first));
        assert_eq!(registry.len(), 1);
        assert!(registry.contains(second));
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
