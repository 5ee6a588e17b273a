//! The server's counters: lock-free numbers every part bumps and `/health` reads without
//! taking any lock, plus the process figures (`rss_bytes`, `tasks`) read on demand.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde_json::{json, Value};

/// A monotonic event counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level that goes up and down (open connections, bytes in use).
#[derive(Debug, Default)]
pub(crate) struct Gauge(AtomicUsize);

impl Gauge {
    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Everything `/health` counts. Refusals and closes are totals since start.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Open TCP connections (HTTP and WebSocket).
    pub(crate) tcp_open: Gauge,
    /// Open connections that have not authenticated a WebSocket yet.
    pub(crate) unauthenticated: Gauge,
    /// Authenticated live sockets.
    pub(crate) sockets: Gauge,
    /// Users with at least one live socket.
    pub(crate) users: Gauge,
    /// Sessions kept (with or without a socket).
    pub(crate) sessions: Gauge,
    /// Sessions without a socket.
    pub(crate) detached: Gauge,
    /// Chat rooms with members (user rooms are counted through `user_rooms`).
    pub(crate) rooms: Gauge,
    /// Users with at least one session (each has its `user:{id}` room).
    pub(crate) user_rooms: Gauge,
    pub(crate) refused_max_connections: Counter,
    pub(crate) refused_per_ip: Counter,
    pub(crate) header_timeouts: Counter,
    pub(crate) upgrade_timeouts: Counter,
    pub(crate) auth_timeouts: Counter,
    pub(crate) closed_slow: Counter,
    pub(crate) closed_frame_budget: Counter,
    pub(crate) closed_invalid_utf8: Counter,
    pub(crate) closed_too_big: Counter,
    pub(crate) closed_too_many_per_user: Counter,
    /// Bytes of replay memory in use (event bodies once, plus a cost per buffered entry).
    pub(crate) replay_bytes: Gauge,
    /// Events buffered for resume, over all sessions.
    pub(crate) replay_entries: Gauge,
    /// Event bodies evicted from every replay buffer because the global budget was full.
    pub(crate) replay_evicted_budget: Counter,
    /// Events a session dropped because its user's replay cap was full.
    pub(crate) replay_evicted_user: Counter,
    /// Detached sessions dropped to respect the per-user or the global session cap.
    pub(crate) sessions_evicted: Counter,
    /// Bytes of unread-notification ids kept.
    pub(crate) unread_bytes: Gauge,
    /// Users whose unread list was dropped to respect the unread budget.
    pub(crate) unread_evicted_users: Counter,
    /// (user, client) pairs whose send ids are remembered (windows and floors).
    pub(crate) dedupe_pairs: Gauge,
    /// Bytes of send-id memory in use (pairs, remembered ids and their acks).
    pub(crate) dedupe_bytes: Gauge,
    /// Pairs whose remembered acks were dropped early (budget or per-user cap), keeping the floor.
    pub(crate) dedupe_evicted: Counter,
    /// Pairs dropped entirely, floor included, before their retention ran out (budget or
    /// per-user cap): the only way a processed id can be processed again.
    pub(crate) dedupe_floors_dropped: Counter,
    /// Sends refused with `rate_limited`.
    pub(crate) rate_limited: Counter,
    /// Sockets closed with 4002 because their token expired.
    pub(crate) closed_token_expired: Counter,
}

impl Stats {
    /// The `/health` body (without `status` and `uptime_s`, which the route adds); `tasks` is the
    /// number of tasks alive on the server's main runtime.
    pub(crate) fn snapshot(
        &self,
        replay_budget: usize,
        unread_budget: usize,
        dedupe_budget: usize,
        tasks: usize,
    ) -> Value {
        json!({
            "connections": self.sockets.get(),
            "users": self.users.get(),
            "rooms": self.rooms.get() + self.user_rooms.get(),
            "sessions": self.sessions.get(),
            "detached_sessions": self.detached.get(),
            "tcp_connections": self.tcp_open.get(),
            "unauthenticated": self.unauthenticated.get(),
            "rss_bytes": rss_bytes(),
            "tasks": tasks,
            "replay": {
                "bytes": self.replay_bytes.get(),
                "budget_bytes": replay_budget,
                "events": self.replay_entries.get(),
                "evicted_budget": self.replay_evicted_budget.get(),
                "evicted_user_cap": self.replay_evicted_user.get(),
            },
            "unread": {
                "bytes": self.unread_bytes.get(),
                "budget_bytes": unread_budget,
                "evicted_users": self.unread_evicted_users.get(),
            },
            "dedupe": {
                "pairs": self.dedupe_pairs.get(),
                "bytes": self.dedupe_bytes.get(),
                "budget_bytes": dedupe_budget,
                "evicted": self.dedupe_evicted.get(),
                "floors_dropped": self.dedupe_floors_dropped.get(),
            },
            "rate_limited": self.rate_limited.get(),
            "sessions_evicted": self.sessions_evicted.get(),
            "refused": {
                "max_connections": self.refused_max_connections.get(),
                "unauthed_per_ip": self.refused_per_ip.get(),
                "too_many_per_user": self.closed_too_many_per_user.get(),
            },
            "timeouts": {
                "header": self.header_timeouts.get(),
                "upgrade": self.upgrade_timeouts.get(),
                "auth": self.auth_timeouts.get(),
            },
            "closed": {
                "slow_consumer": self.closed_slow.get(),
                "frame_budget": self.closed_frame_budget.get(),
                "invalid_utf8": self.closed_invalid_utf8.get(),
                "too_big": self.closed_too_big.get(),
                "token_expired": self.closed_token_expired.get(),
            },
        })
    }
}

/// The process's resident set size from `/proc/self/status` (`VmRSS`), 0 where unavailable.
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib * 1024)
}
