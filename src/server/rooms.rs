//! Chat rooms: who is in each, behind one lock per room, and the map from names to rooms.
//!
//! Lock order (never reversed): a session's lock, then the rooms map, then a room. Delivery takes
//! the map only to find the room and the room only to copy its member list, then delivers to
//! each member under that member's own lock, so no lock is held across a whole fan-out.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::session::{SessionCell, SessionId};
use super::stats::Stats;

/// A room and its members.
#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) name: Box<str>,
    members: Mutex<HashMap<SessionId, Arc<SessionCell>>>,
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Arc<SessionCell>>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The members right now (one allocation per fan-out, none per member).
    pub(crate) fn members(&self) -> Vec<Arc<SessionCell>> {
        self.lock().values().cloned().collect()
    }

    /// The members right now, or `None` when there are more than `max`.
    pub(crate) fn members_up_to(&self, max: usize) -> Option<Vec<Arc<SessionCell>>> {
        let members = self.lock();
        (members.len() <= max).then(|| members.values().cloned().collect())
    }

    /// How many distinct users are in the room, and up to `max` of them.
    pub(crate) fn users(&self, max: usize) -> (usize, Vec<Arc<str>>) {
        let members = self.lock();
        let distinct: HashSet<&Arc<str>> = members.values().map(|s| &s.user).collect();
        let count = distinct.len();
        (count, distinct.into_iter().take(max).cloned().collect())
    }
}

/// Every chat room with at least one member.
#[derive(Debug)]
pub(crate) struct Rooms {
    map: Mutex<HashMap<Box<str>, Arc<Room>>>,
    stats: Arc<Stats>,
}

impl Rooms {
    pub(crate) fn new(stats: Arc<Stats>) -> Self {
        Rooms {
            map: Mutex::new(HashMap::new()),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Arc<Room>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The room called `name`, if it has members.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.lock().get(name).cloned()
    }

    /// Adds `session` to the room `name` (created if needed) and returns the room. The caller
    /// holds the session's lock, so the session cannot be dropped half-way.
    pub(crate) fn join(&self, name: &str, session: &Arc<SessionCell>) -> Arc<Room> {
        let mut map = self.lock();
        let room = match map.get(name) {
            Some(room) => room.clone(),
            None => {
                let room = Arc::new(Room {
                    name: name.into(),
                    members: Mutex::new(HashMap::new()),
                });
                map.insert(name.into(), room.clone());
                self.stats.rooms.add(1);
                room
            }
        };
        room.lock().insert(session.id, session.clone());
        room
    }

    /// Removes `session` from `room`, and the room from the map once it is empty.
    pub(crate) fn leave(&self, room: &Arc<Room>, session: SessionId) {
        let mut map = self.lock();
        let mut members = room.lock();
        members.remove(&session);
        if members.is_empty()
            && map
                .get(&*room.name)
                .is_some_and(|current| Arc::ptr_eq(current, room))
        {
            map.remove(&*room.name);
            self.stats.rooms.sub(1);
        }
    }
}
