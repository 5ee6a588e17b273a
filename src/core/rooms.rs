//! The room set: the rooms the application joined, kept sorted, re-joined in that order after
//! every new session.

/// The rooms joined. A sorted vector: apps join a few rooms.
#[derive(Debug, Default, Clone)]
pub(crate) struct RoomSet(Vec<String>);

impl RoomSet {
    /// Adds `room`; whether it was new.
    pub(crate) fn insert(&mut self, room: &str) -> bool {
        match self.0.binary_search_by(|r| r.as_str().cmp(room)) {
            Ok(_) => false,
            Err(index) => {
                self.0.insert(index, room.to_owned());
                true
            }
        }
    }

    /// Removes `room`; whether it was there.
    pub(crate) fn remove(&mut self, room: &str) -> bool {
        match self.0.binary_search_by(|r| r.as_str().cmp(room)) {
            Ok(index) => {
                self.0.remove(index);
                true
            }
            Err(_) => false,
        }
    }

    /// The rooms, sorted.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// How many rooms.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
