//! The send-id memory of PROTOCOL.md §5: for each (user, client) pair — or (user, session) for a
//! client that sent no `client` id — the acks of the most recent [`WINDOW`] processed ids and a
//! floor (the highest id forgotten), kept for `dedupe_retention` after the pair's last send.
//!
//! Bounds: each user has at most `dedupe_clients_per_user` pairs with a window (past it, the
//! user's least recently used pair is reduced to its floor) and at most [`FLOORS_PER_WINDOW`]
//! times that many pairs in all; every pair together costs at most `dedupe_budget_bytes` (past it,
//! the least recently used windows anywhere are reduced to their floors, then, if floors alone
//! exceed it, the oldest floors are dropped). Reducing a pair keeps a floor at or above every id
//! it processed, so no processed id is ever processed again; only a dropped floor (counted
//! `floors_dropped`) or the retention running out lets an id through twice.
//!
//! Locks: the index (one short-held lock) and one lock per pair, taken in that order or alone.
//! A send holds its pair's lock from the check to the record, so two sockets of one pair cannot
//! both process an id; the index never waits for a pair that is in use (`try_lock`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use tokio::time::Instant;

use super::session::SessionId;
use super::stats::Stats;

/// Processed ids whose acks a pair remembers (PROTOCOL.md §5: *W*).
pub(crate) const WINDOW: usize = 1_024;
/// Pairs a user may keep in all, per pair with a window (the rest are floors only).
pub(crate) const FLOORS_PER_WINDOW: usize = 64;
/// Budget cost of a pair beyond its key (its map slots, queue entries and floor).
pub(crate) const PAIR_COST: usize = 160;
/// Budget cost of one remembered id beyond its ack's bytes.
pub(crate) const ID_COST: usize = 48;

/// Whose send ids a memory holds, within one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// A client id from `auth.client`: shared by every socket and session of the client.
    Client(Arc<str>),
    /// No client id: the session's own.
    Session(SessionId),
}

impl Scope {
    fn len(&self) -> usize {
        match self {
            Scope::Client(id) => id.len(),
            Scope::Session(_) => 16,
        }
    }
}

/// What a pair knows about an incoming id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Never processed: process it, then [`PairMemory::record`] its ack.
    New,
    /// Processed: answer with this ack again (`None`: the plain `ok: true` ack).
    Remembered(Option<String>),
    /// At or below the floor and not remembered: answer `id_expired`, do not process.
    Expired,
}

/// One pair's memory, behind its own lock.
#[derive(Debug, Default)]
pub(crate) struct PairMemory {
    floor: u64,
    /// Processed ids, oldest first (the order they were processed in).
    order: VecDeque<u64>,
    /// Their acks; `None` stands for the plain `{"ok":true}` ack, rebuilt instead of stored.
    acks: HashMap<u64, Option<Box<str>>>,
    /// Budget bytes of `acks` (ids at [`ID_COST`] plus their ack text).
    bytes: usize,
    /// Set when the index dropped the pair: a send that still holds it looks it up again.
    removed: bool,
}

impl PairMemory {
    /// Whether `id` is new, remembered or expired.
    pub(crate) fn check(&self, id: u64) -> Seen {
        match self.acks.get(&id) {
            Some(ack) => Seen::Remembered(ack.as_deref().map(str::to_owned)),
            None if id <= self.floor => Seen::Expired,
            None => Seen::New,
        }
    }

    /// Remembers that `id` was processed and answered with `ack` (`None`: the plain ok ack),
    /// forgetting the oldest processed id past [`WINDOW`]; returns the change in bytes.
    fn record(&mut self, id: u64, ack: Option<Box<str>>) -> isize {
        let before = self.bytes;
        self.bytes += ID_COST + ack.as_deref().map_or(0, str::len);
        self.acks.insert(id, ack);
        self.order.push_back(id);
        while self.order.len() > WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.forget(old);
            }
        }
        self.bytes as isize - before as isize
    }

    fn forget(&mut self, id: u64) {
        if let Some(ack) = self.acks.remove(&id) {
            self.bytes -= ID_COST + ack.as_deref().map_or(0, str::len);
        }
        self.floor = self.floor.max(id);
    }

    /// Forgets every remembered ack, raising the floor over all of them; returns the bytes freed.
    fn reduce(&mut self) -> usize {
        let freed = self.bytes;
        self.floor = self.acks.keys().copied().fold(self.floor, u64::max);
        self.acks = HashMap::new();
        self.order = VecDeque::new();
        self.bytes = 0;
        freed
    }

    /// The floor: the highest id this pair has forgotten (0 at first).
    #[cfg(test)]
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }
}

/// A pair's memory as the index and its senders share it.
#[derive(Debug, Default)]
pub(crate) struct PairCell {
    memory: Mutex<PairMemory>,
}

/// A locked pair, for one send from its check to its record.
pub(crate) struct PairGuard<'a> {
    memory: MutexGuard<'a, PairMemory>,
    stats: &'a Stats,
}

impl PairGuard<'_> {
    /// See [`PairMemory::check`].
    pub(crate) fn check(&self, id: u64) -> Seen {
        self.memory.check(id)
    }

    /// Remembers `id` and its ack (`None`: the plain ok ack).
    pub(crate) fn record(&mut self, id: u64, ack: Option<Box<str>>) {
        let delta = self.memory.record(id, ack);
        if delta >= 0 {
            self.stats.dedupe_bytes.add(delta.unsigned_abs());
        } else {
            self.stats.dedupe_bytes.sub(delta.unsigned_abs());
        }
    }
}

/// The index's view of one pair.
#[derive(Debug)]
struct Slot {
    cell: Arc<PairCell>,
    /// Bumped by every send; a queue entry with another tick is stale.
    tick: u64,
    last_send: Instant,
    /// Whether the pair may hold acks (it is in the window queue, not the floor queue).
    windowed: bool,
}

#[derive(Debug, Default)]
struct UserPairs {
    pairs: HashMap<Scope, Slot>,
    windows: usize,
}

type Key = (Arc<str>, Scope);

#[derive(Debug, Default)]
struct Index {
    users: HashMap<Arc<str>, UserPairs>,
    /// Pairs with a window by last send, oldest first (stale entries are skipped).
    windows: VecDeque<(Key, u64, Instant)>,
    /// Pairs reduced to their floor, in the order they were reduced.
    floors: VecDeque<(Key, u64, Instant)>,
    tick: u64,
    pairs: usize,
}

/// Every pair's memory; see the module docs.
#[derive(Debug)]
pub(crate) struct Dedupe {
    index: Mutex<Index>,
    budget: usize,
    windows_per_user: usize,
    retention: Duration,
    stats: Arc<Stats>,
}

fn lock_memory(cell: &PairCell) -> MutexGuard<'_, PairMemory> {
    cell.memory.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pair's lock if nobody holds it (a poisoned lock is still consistent).
fn try_memory(cell: &PairCell) -> Option<MutexGuard<'_, PairMemory>> {
    match cell.memory.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

fn key_cost(user: &str, scope: &Scope) -> usize {
    PAIR_COST + user.len() + scope.len()
}

impl Dedupe {
    pub(crate) fn new(
        budget: usize,
        windows_per_user: usize,
        retention: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        Dedupe {
            index: Mutex::new(Index::default()),
            budget,
            windows_per_user: windows_per_user.max(1),
            retention,
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the pair `(user, scope)` locked (created if new), marking a send at `now`,
    /// then enforces the bounds.
    pub(crate) fn with_pair<T>(
        &self,
        user: &Arc<str>,
        scope: &Scope,
        now: Instant,
        f: impl FnOnce(&mut PairGuard<'_>) -> T,
    ) -> T {
        let mut f = Some(f);
        loop {
            let cell = self.touch(user, scope, now);
            let memory = lock_memory(&cell);
            if memory.removed {
                // Dropped between the lookup and the lock: look it up again.
                continue;
            }
            let mut guard = PairGuard {
                memory,
                stats: &self.stats,
            };
            let f = f.take().expect("taken once: the loop returns right after");
            let out = f(&mut guard);
            drop(guard);
            self.enforce();
            return out;
        }
    }

    /// Finds or creates the pair and marks a send now.
    fn touch(&self, user: &Arc<str>, scope: &Scope, now: Instant) -> Arc<PairCell> {
        let mut index = self.lock();
        index.tick += 1;
        let tick = index.tick;
        let index = &mut *index;
        let entry = index.users.entry(user.clone()).or_default();
        let (cell, was_windowed, created) = match entry.pairs.get_mut(scope) {
            Some(slot) => {
                let was = slot.windowed;
                slot.tick = tick;
                slot.last_send = now;
                slot.windowed = true;
                (slot.cell.clone(), was, false)
            }
            None => {
                let cell = Arc::new(PairCell::default());
                entry.pairs.insert(
                    scope.clone(),
                    Slot {
                        cell: cell.clone(),
                        tick,
                        last_send: now,
                        windowed: true,
                    },
                );
                (cell, false, true)
            }
        };
        if !was_windowed {
            entry.windows += 1;
        }
        if created {
            index.pairs += 1;
            self.stats.dedupe_pairs.add(1);
            self.stats.dedupe_bytes.add(key_cost(user, scope));
        }
        index
            .windows
            .push_back(((user.clone(), scope.clone()), tick, now));
        if entry.windows > self.windows_per_user {
            self.reduce_users_oldest(entry, scope, &mut index.floors, user);
        }
        if created && entry.pairs.len() > self.windows_per_user * FLOORS_PER_WINDOW {
            if let Some(victim) = oldest_floor(entry) {
                if self.remove(index, user, &victim) {
                    self.stats.dedupe_floors_dropped.bump();
                }
            }
        }
        compact(index);
        cell
    }

    /// Reduces `user`'s least recently used window other than `keep` to its floor.
    fn reduce_users_oldest(
        &self,
        entry: &mut UserPairs,
        keep: &Scope,
        floors: &mut VecDeque<(Key, u64, Instant)>,
        user: &Arc<str>,
    ) {
        let victim = entry
            .pairs
            .iter()
            .filter(|(scope, slot)| slot.windowed && *scope != keep)
            .min_by_key(|(_, slot)| slot.tick)
            .map(|(scope, _)| scope.clone());
        let Some(victim) = victim else { return };
        if let Some(slot) = entry.pairs.get_mut(&victim) {
            if let Some(mut memory) = try_memory(&slot.cell) {
                self.stats.dedupe_bytes.sub(memory.reduce());
                slot.windowed = false;
                entry.windows -= 1;
                floors.push_back(((user.clone(), victim), slot.tick, slot.last_send));
                self.stats.dedupe_evicted.bump();
            }
        }
    }

    /// Removes a pair entirely (its floor too); `false` if it is in use or gone.
    fn remove(&self, index: &mut Index, user: &Arc<str>, scope: &Scope) -> bool {
        let Some(entry) = index.users.get_mut(user) else {
            return false;
        };
        let Some(slot) = entry.pairs.get(scope) else {
            return false;
        };
        let Some(mut memory) = try_memory(&slot.cell) else {
            return false;
        };
        memory.removed = true;
        self.stats
            .dedupe_bytes
            .sub(memory.reduce() + key_cost(user, scope));
        drop(memory);
        if let Some(slot) = entry.pairs.remove(scope) {
            if slot.windowed {
                entry.windows -= 1;
            }
        }
        if entry.pairs.is_empty() {
            index.users.remove(user);
        }
        index.pairs -= 1;
        self.stats.dedupe_pairs.sub(1);
        true
    }

    /// Forgets a session's own pair (the session is gone: nobody can send in it any more).
    pub(crate) fn forget_session(&self, user: &Arc<str>, session: SessionId) {
        let mut index = self.lock();
        let scope = Scope::Session(session);
        // In use right now: the sender holds it; the retention sweep takes it later.
        self.remove(&mut index, user, &scope);
    }

    /// Enforces the byte budget: oldest windows reduced first, then oldest floors dropped.
    /// Pairs in use right now are passed over (they were just sent to).
    fn enforce(&self) {
        if self.stats.dedupe_bytes.get() <= self.budget {
            return;
        }
        let mut guard = self.lock();
        let index = &mut *guard;
        let mut busy = Vec::new();
        while self.stats.dedupe_bytes.get() > self.budget {
            if let Some((key, tick, at)) = index.windows.pop_front() {
                let (user, scope) = &key;
                let Some(entry) = index.users.get_mut(user) else {
                    continue;
                };
                let Some(slot) = entry.pairs.get_mut(scope) else {
                    continue;
                };
                if slot.tick != tick || !slot.windowed {
                    continue;
                }
                match try_memory(&slot.cell) {
                    Some(mut memory) => {
                        self.stats.dedupe_bytes.sub(memory.reduce());
                        drop(memory);
                        slot.windowed = false;
                        entry.windows -= 1;
                        index.floors.push_back((key, tick, at));
                        self.stats.dedupe_evicted.bump();
                    }
                    None => busy.push((key, tick, at)),
                }
                continue;
            }
            let Some(((user, scope), tick, _)) = index.floors.pop_front() else {
                break;
            };
            if is_current_floor(index, &user, &scope, tick) && self.remove(index, &user, &scope) {
                self.stats.dedupe_floors_dropped.bump();
            }
        }
        index.windows.extend(busy);
    }

    /// Drops pairs whose last send is older than the retention.
    pub(crate) fn expire(&self, now: Instant) {
        let mut guard = self.lock();
        let index = &mut *guard;
        let retention = self.retention;
        let old = |at: &Instant| now.saturating_duration_since(*at) >= retention;
        let mut busy = Vec::new();
        while index.windows.front().is_some_and(|(_, _, at)| old(at)) {
            let Some(((user, scope), tick, at)) = index.windows.pop_front() else {
                break;
            };
            let current = index
                .users
                .get(&user)
                .and_then(|e| e.pairs.get(&scope))
                .is_some_and(|slot| slot.tick == tick && slot.windowed);
            if current && !self.remove(index, &user, &scope) {
                busy.push(((user, scope), tick, at));
            }
        }
        index.windows.extend(busy);
        while index.floors.front().is_some_and(|(_, _, at)| old(at)) {
            let Some(((user, scope), tick, _)) = index.floors.pop_front() else {
                break;
            };
            // A floor is never locked by a sender (a send makes it a window again first).
            if is_current_floor(index, &user, &scope, tick) {
                self.remove(index, &user, &scope);
            }
        }
    }

    /// How many pairs are kept (windows and floors).
    #[cfg(test)]
    pub(crate) fn pairs(&self) -> usize {
        self.lock().pairs
    }
}

fn is_current_floor(index: &Index, user: &Arc<str>, scope: &Scope, tick: u64) -> bool {
    index
        .users
        .get(user)
        .and_then(|e| e.pairs.get(scope))
        .is_some_and(|slot| slot.tick == tick && !slot.windowed)
}

/// The user's floor-only pair with the oldest last send.
fn oldest_floor(entry: &UserPairs) -> Option<Scope> {
    entry
        .pairs
        .iter()
        .filter(|(_, slot)| !slot.windowed)
        .min_by_key(|(_, slot)| slot.tick)
        .map(|(scope, _)| scope.clone())
}

/// Drops stale queue entries in bulk once they pile up (each send adds one).
fn compact(index: &mut Index) {
    if index.windows.len() <= 2 * index.pairs + 64 && index.floors.len() <= 2 * index.pairs + 64 {
        return;
    }
    let users = &index.users;
    let current = |((user, scope), tick, _): &(Key, u64, Instant), windowed: bool| {
        users
            .get(user)
            .and_then(|e| e.pairs.get(scope))
            .is_some_and(|slot| slot.tick == *tick && slot.windowed == windowed)
    };
    index.windows.retain(|entry| current(entry, true));
    index.floors.retain(|entry| current(entry, false));
}

#[cfg(test)]
mod tests;
