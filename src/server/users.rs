//! Per-user state: live socket count, the user's sessions (its `user:{id}` room), the counter its
//! sessions' replay buffers share, and its unread notification ids under one global byte budget.
//!
//! A user costs one map entry: the name (shared with its sessions), two counters, a short list of
//! session handles and the unread list (empty for most users). Unread ids count their length plus
//! [`UNREAD_COST`] against `unread_budget_bytes`; past it, the user whose unread list was added to
//! least recently loses the whole list (counted in `/health`). Every operation is O(1) in the
//! number of users (the lists it walks are bounded per user).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::session::{SessionCell, SessionId};
use super::stats::{Gauge, Stats};

/// Unread ids kept per user (the oldest go first).
pub(crate) const MAX_UNREAD_PER_USER: usize = 1_000;
/// Budget cost of one unread id beyond its bytes.
pub(crate) const UNREAD_COST: usize = 32;

#[derive(Debug)]
struct UserEntry {
    name: Arc<str>,
    live: usize,
    sessions: Vec<Arc<SessionCell>>,
    replay_bytes: Arc<Gauge>,
    unread: VecDeque<Box<str>>,
    unread_bytes: usize,
    /// When the unread list was last added to (a tick of [`Inner::tick`]).
    touched: u64,
}

impl UserEntry {
    fn is_empty(&self) -> bool {
        self.live == 0 && self.sessions.is_empty() && self.unread.is_empty()
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Arc<str>, UserEntry>,
    /// Users in the order their unread lists were added to; stale entries are skipped.
    lru: VecDeque<(Arc<str>, u64)>,
    tick: u64,
}

/// The user already has `max_conns_per_user` live sockets.
#[derive(Debug)]
pub(crate) struct TooManyConnections;

/// What a socket of a user shares with the user's other sockets.
#[derive(Debug, Clone)]
pub(crate) struct UserHandle {
    pub(crate) name: Arc<str>,
    pub(crate) replay_bytes: Arc<Gauge>,
}

/// Every user the server knows.
#[derive(Debug)]
pub(crate) struct Users {
    inner: Mutex<Inner>,
    unread_budget: usize,
    stats: Arc<Stats>,
}

impl Users {
    pub(crate) fn new(unread_budget: usize, stats: Arc<Stats>) -> Self {
        Users {
            inner: Mutex::new(Inner::default()),
            unread_budget,
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn entry<'a>(inner: &'a mut Inner, user: &str) -> &'a mut UserEntry {
        if !inner.map.contains_key(user) {
            let name: Arc<str> = user.into();
            inner.map.insert(
                name.clone(),
                UserEntry {
                    name,
                    live: 0,
                    sessions: Vec::new(),
                    replay_bytes: Arc::new(Gauge::default()),
                    unread: VecDeque::new(),
                    unread_bytes: 0,
                    touched: 0,
                },
            );
        }
        inner
            .map
            .get_mut(user)
            .expect("the entry was inserted just above")
    }

    fn forget_if_empty(inner: &mut Inner, user: &str) {
        if inner.map.get(user).is_some_and(UserEntry::is_empty) {
            inner.map.remove(user);
        }
    }

    /// Counts one more live socket for `user`, unless it already has `max`.
    pub(crate) fn reserve_socket(
        &self,
        user: &str,
        max: usize,
    ) -> Result<UserHandle, TooManyConnections> {
        let mut inner = self.lock();
        let entry = Self::entry(&mut inner, user);
        if entry.live >= max {
            let handle_empty = entry.is_empty();
            if handle_empty {
                inner.map.remove(user);
            }
            return Err(TooManyConnections);
        }
        entry.live += 1;
        if entry.live == 1 {
            self.stats.users.add(1);
        }
        Ok(UserHandle {
            name: entry.name.clone(),
            replay_bytes: entry.replay_bytes.clone(),
        })
    }

    /// One live socket of `user` ended.
    pub(crate) fn release_socket(&self, user: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.map.get_mut(user) {
            entry.live = entry.live.saturating_sub(1);
            if entry.live == 0 {
                self.stats.users.sub(1);
            }
        }
        Self::forget_if_empty(&mut inner, user);
    }

    /// Records a new session of `user` (a member of the user's room from now on).
    pub(crate) fn add_session(&self, session: &Arc<SessionCell>) {
        let mut inner = self.lock();
        let entry = Self::entry(&mut inner, &session.user);
        entry.sessions.push(session.clone());
        if entry.sessions.len() == 1 {
            self.stats.user_rooms.add(1);
        }
    }

    /// Forgets a dropped session.
    pub(crate) fn remove_session(&self, user: &str, id: SessionId) {
        let mut inner = self.lock();
        if let Some(entry) = inner.map.get_mut(user) {
            let before = entry.sessions.len();
            entry.sessions.retain(|s| s.id != id);
            if before > 0 && entry.sessions.is_empty() {
                self.stats.user_rooms.sub(1);
            }
        }
        Self::forget_if_empty(&mut inner, user);
    }

    /// The sessions in `user`'s room.
    pub(crate) fn sessions_of(&self, user: &str) -> Vec<Arc<SessionCell>> {
        self.lock()
            .map
            .get(user)
            .map_or_else(Vec::new, |e| e.sessions.clone())
    }

    /// The user's detached sessions beyond the `cap` newest, oldest first (locks each of the
    /// user's few sessions briefly: users, then sessions, is the lock order).
    pub(crate) fn detached_beyond(&self, user: &str, cap: usize) -> Vec<(Arc<SessionCell>, u64)> {
        let inner = self.lock();
        let Some(entry) = inner.map.get(user) else {
            return Vec::new();
        };
        let mut detached: Vec<(Arc<SessionCell>, u64)> = entry
            .sessions
            .iter()
            .filter_map(|s| {
                let generation = s.lock().detached.map(|d| d.generation)?;
                Some((s.clone(), generation))
            })
            .collect();
        detached.sort_by_key(|(_, generation)| *generation);
        let excess = detached.len().saturating_sub(cap);
        detached.truncate(excess);
        detached
    }

    /// Records `id` as unread for `user` (once), then enforces the unread budget.
    pub(crate) fn add_unread(&self, user: &str, id: &str) {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = Self::entry(&mut inner, user);
        if entry.unread.iter().any(|u| &**u == id) {
            return;
        }
        entry.unread.push_back(id.into());
        entry.unread_bytes += id.len() + UNREAD_COST;
        self.stats.unread_bytes.add(id.len() + UNREAD_COST);
        if entry.unread.len() > MAX_UNREAD_PER_USER {
            if let Some(old) = entry.unread.pop_front() {
                entry.unread_bytes -= old.len() + UNREAD_COST;
                self.stats.unread_bytes.sub(old.len() + UNREAD_COST);
            }
        }
        entry.touched = tick;
        let name = entry.name.clone();
        inner.lru.push_back((name, tick));
        self.enforce_unread(&mut inner);
    }

    fn enforce_unread(&self, inner: &mut Inner) {
        while self.stats.unread_bytes.get() > self.unread_budget {
            let Some((name, tick)) = inner.lru.pop_front() else {
                break;
            };
            let Some(entry) = inner.map.get_mut(&name) else {
                continue;
            };
            if entry.touched != tick || entry.unread.is_empty() {
                continue;
            }
            self.stats.unread_bytes.sub(entry.unread_bytes);
            entry.unread = VecDeque::new();
            entry.unread_bytes = 0;
            self.stats.unread_evicted_users.bump();
            Self::forget_if_empty(inner, &name);
        }
        // Stale entries are skipped when popped; drop them in bulk when they pile up.
        if inner.lru.len() > 2 * inner.map.len() + 64 {
            let map = &inner.map;
            inner
                .lru
                .retain(|(name, tick)| map.get(name).is_some_and(|e| e.touched == *tick));
        }
    }

    /// Removes `id` from the user's unread list; returns the new unread count.
    pub(crate) fn remove_unread(&self, user: &str, id: &str) -> usize {
        let mut inner = self.lock();
        let Some(entry) = inner.map.get_mut(user) else {
            return 0;
        };
        if let Some(at) = entry.unread.iter().position(|u| &**u == id) {
            if let Some(old) = entry.unread.remove(at) {
                entry.unread_bytes -= old.len() + UNREAD_COST;
                self.stats.unread_bytes.sub(old.len() + UNREAD_COST);
            }
        }
        let count = entry.unread.len();
        Self::forget_if_empty(&mut inner, user);
        count
    }

    /// The user's unread notification count.
    pub(crate) fn unread_count(&self, user: &str) -> usize {
        self.lock().map.get(user).map_or(0, |e| e.unread.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unread_budget_drops_the_least_recently_notified_user_first() {
        let stats = Arc::new(Stats::default());
        let users = Users::new(3 * (2 + UNREAD_COST), stats.clone());
        users.add_unread("old", "n1");
        users.add_unread("mid", "n1");
        users.add_unread("new", "n1");
        assert_eq!(stats.unread_evicted_users.get(), 0);
        users.add_unread("new", "n2");
        assert_eq!(users.unread_count("old"), 0, "evicted first");
        assert_eq!(users.unread_count("mid"), 1);
        assert_eq!(users.unread_count("new"), 2);
        assert_eq!(stats.unread_evicted_users.get(), 1);
        assert!(stats.unread_bytes.get() <= 3 * (2 + UNREAD_COST));
        assert_eq!(users.remove_unread("new", "n1"), 1);
        assert_eq!(users.remove_unread("new", "n2"), 0);
        assert_eq!(users.remove_unread("mid", "n1"), 0);
        assert_eq!(stats.unread_bytes.get(), 0);
        assert!(
            users.lock().map.is_empty(),
            "nothing kept for users with nothing"
        );
    }

    #[test]
    fn a_user_holds_at_most_max_live_sockets() {
        let stats = Arc::new(Stats::default());
        let users = Users::new(1 << 20, stats.clone());
        for _ in 0..2 {
            users.reserve_socket("u1", 2).unwrap();
        }
        assert!(users.reserve_socket("u1", 2).is_err());
        assert_eq!(stats.users.get(), 1);
        users.release_socket("u1");
        users.release_socket("u1");
        assert_eq!(stats.users.get(), 0);
        assert!(users.lock().map.is_empty());
    }
}
