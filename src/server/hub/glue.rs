//! What a cluster node needs from its hub: its sessions by id, adopting a session another node
//! held, letting one go, and the lists it registers again after Redis came back.

use super::*;

impl Hub {
    /// The session `id`, if this node has it.
    pub(crate) fn local_session(&self, id: SessionId) -> Option<Arc<SessionCell>> {
        lock(&self.sessions).get(&id).cloned()
    }

    /// Attaches `conn` to session `id` of `user` resumed from the cluster: taken over if this
    /// node has it, else created here with its `rooms`, numbering after `last_seq`.
    pub(crate) fn adopt(
        &self,
        id: SessionId,
        user: &str,
        rooms: &[String],
        last_seq: u64,
        conn: &Arc<ConnCell>,
        now: Instant,
    ) -> Option<Result<Attached, TooManyConnections>> {
        if let Some(session) = self.local_session(id) {
            if &*session.user != user {
                return None;
            }
            session.lock().continue_after(last_seq);
            return self.take_over(session, conn, user, now, Vec::new());
        }
        let handle = match self.users.reserve_socket(user, self.max_conns_per_user) {
            Ok(handle) => handle,
            Err(too_many) => return Some(Err(too_many)),
        };
        let replay = ReplayBuffer::new(handle.replay_bytes.clone(), self.stats.clone());
        let session = Arc::new(SessionCell::new(id, handle.name.clone(), replay));
        let joined: Vec<_> = {
            let mut state = session.lock();
            state.continue_after(last_seq);
            state.attached = Some(conn.clone());
            for room in rooms.iter().filter(|r| r.starts_with("chat:")) {
                let joined = self.rooms.join(room, &session);
                state.rooms.push(joined);
            }
            state.rooms.clone()
        };
        lock(&self.sessions).insert(id, session.clone());
        self.users.add_session(&session);
        self.stats.sessions.add(1);
        self.stats.sockets.add(1);
        for room in &joined {
            self.socket_joined(room, &session.user);
        }
        Some(Ok(Attached {
            scope: Scope::Session(id),
            session,
            conn: conn.clone(),
            user: handle,
            resumed: true,
            replay: Vec::new(),
            replayed_through: 0,
        }))
    }

    /// Another node resumed `session`: close its socket here (1000) and forget it here.
    pub(crate) fn let_go(&self, session: &Arc<SessionCell>) {
        let conn = session.lock().attached.clone();
        if let Some(conn) = conn {
            conn.kill(SUPERSEDED);
            self.release(&conn, &session.user);
        }
        self.drop_session(session);
    }

    /// Every session here: the session, its latest `seq` and its chat rooms.
    pub(crate) fn local_sessions(&self) -> Vec<(Arc<SessionCell>, u64, Vec<String>)> {
        let sessions: Vec<_> = lock(&self.sessions).values().cloned().collect();
        sessions
            .into_iter()
            .filter_map(|session| {
                let state = session.lock();
                let rooms = state.rooms.iter().map(|r| r.name.to_string()).collect();
                let entry = (session.clone(), state.last_seq(), rooms);
                state.alive.then_some(entry)
            })
            .collect()
    }

    /// The sessions here with a live socket.
    pub(crate) fn attached_sessions(&self) -> Vec<Arc<SessionCell>> {
        let sessions: Vec<_> = lock(&self.sessions).values().cloned().collect();
        sessions
            .into_iter()
            .filter(|s| s.lock().attached.is_some())
            .collect()
    }

    /// `(user, lease)` of every live socket here that holds a cluster lease.
    pub(crate) fn live_leases(&self) -> Vec<(Arc<str>, String)> {
        self.attached_sessions()
            .into_iter()
            .filter_map(|s| {
                let conn = s.lock().attached.clone()?;
                let lease = conn.lease()?.to_owned();
                Some((s.user.clone(), lease))
            })
            .collect()
    }

    /// `(room, user)` for every user present in a room on this node.
    pub(crate) fn present_here(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for session in self.attached_sessions() {
            let rooms: Vec<String> = session
                .lock()
                .rooms
                .iter()
                .map(|r| r.name.to_string())
                .collect();
            out.extend(rooms.into_iter().map(|r| (r, session.user.to_string())));
        }
        out.sort();
        out.dedup();
        out
    }
}
