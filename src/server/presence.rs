//! Presence (PROTOCOL.md §10): a user is present in a room while at least one of the user's
//! sessions in it has a live socket. The first such socket joining and the last one leaving
//! are told to the room's other members as the volatile `presence {room, user, online}` (in
//! rooms of at most `announce_max_members`, like joins); `presence {room}` lists who is present.
//! On one node this is the rooms' own count; in a cluster it is shared through Redis.

use std::sync::Arc;

use serde_json::{json, Value};

use super::handlers::{member_room, Caller, Outcome, MAX_MEMBERS_LISTED};
use super::hub::Hub;
use super::rooms::Room;

impl Hub {
    /// One more session of `user` with a live socket in `room`.
    pub(crate) fn socket_joined(&self, room: &Arc<Room>, user: &Arc<str>) {
        if room.online(user) {
            self.presence_changed(&room.name, user, true);
        }
    }

    /// One session of `user` in `room` lost its socket, or left.
    pub(crate) fn socket_left(&self, room: &Arc<Room>, user: &str) {
        if room.offline(user) {
            self.presence_changed(&room.name, user, false);
        }
    }

    /// On one node: tells the room at once. In a cluster: the node's count changed; the
    /// cluster decides whether the user's presence did, and tells every node.
    fn presence_changed(&self, room: &str, user: &str, online: bool) {
        match self.cluster() {
            None => {
                let note = json!({ "room": room, "user": user, "online": online });
                let max = Some(self.announce_max_members);
                self.volatile_up_to(room, "presence", &note, Some(user), max);
            }
            Some(cluster) => cluster.presence_changed(room, user, online),
        }
    }

    /// `presence {room}` → `{room, members, count, truncated}`: the users present in a room
    /// the session is in (up to 1,000 listed; `count` is exact).
    pub(crate) async fn on_presence(&self, caller: &Caller<'_>, data: &Value) -> Outcome {
        let room = member_room(caller, data)?;
        let (count, members): (usize, Vec<String>) = match self.cluster() {
            Some(cluster) => cluster.present(room, MAX_MEMBERS_LISTED).await?,
            None => match self.rooms.get(room) {
                Some(r) => {
                    let (count, users) = r.present_users(MAX_MEMBERS_LISTED);
                    (count, users.iter().map(|u| u.to_string()).collect())
                }
                // The user's own room: the caller is there.
                None => (1, vec![caller.user.to_owned()]),
            },
        };
        Ok(Some(json!({
            "room": room,
            "members": members,
            "count": count,
            "truncated": members.len() < count,
        })))
    }
}
