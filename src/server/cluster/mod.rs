//! Cluster mode (`--redis`, issue 11): one node of many sharing sessions, fan-out, dedupe,
//! socket limits, unread counts and presence through one Redis.
//!
//! - **Fan-out**: a durable event is one script run (`scripts`) that gives every member
//!   session, on any node, its next `seq`, appends the event to the session's stream and
//!   publishes one message on the cluster's channel; every node holds **one** subscription and
//!   routes each message to its own sockets (`route`). Volatile events are published only.
//! - **Resume** on any node reads the session's stream (`attach`); the node that resumes a
//!   session owns it from then on and tells the others to let go of it.
//! - **Dedupe** per (user, client) is a claim and a record in Redis with the retention as TTL;
//!   **socket limits** are leases in a sorted set (a crashed node's sockets stop counting when
//!   their lease runs out); **unread counts** and **presence** live there too.
//!
//! Failure behaviour: while Redis is unreachable, connected sockets stay up and volatile
//! events reach this node's members; a durable fan-out fails (`/notify` answers 503
//! `broker_unavailable`; a send is answered `rate_limited` so the client retries it in place);
//! a resume is answered `resumed: false`; new sockets are admitted against this node's limit
//! only. The subscription reconnects by itself (100 ms doubling to 2 s) and then registers
//! this node's sessions, memberships, sockets and presence again, so a Redis that restarted
//! empty is whole again; what it lost is the dedupe memory (at-least-once, PROTOCOL.md §5) and
//! the replay of events published before it restarted.

mod attach;
mod ops;
mod route;
mod scripts;

pub(crate) use ops::SendRecord;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tracing::{info, warn};

use super::clock::now_ms;
use super::config::ServerConfig;
use super::hub::Hub;
use scripts::Scripts;

/// How long one command or connection attempt may take before Redis counts as unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_millis(1_000);
/// The channel every node subscribes to.
const CHANNEL: &str = "sl:bus";
/// Resubscription delays: the first, and the cap.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

/// Why the cluster could not be joined at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot use Redis at {url}: {message}")]
pub struct ClusterError {
    url: String,
    message: String,
}

/// A node's link to the cluster; see the module docs.
pub(crate) struct Cluster {
    pub(crate) node: String,
    client: redis::Client,
    conn: ConnectionManager,
    scripts: Scripts,
    /// Whether the subscription is live (and so fan-out reaches this node).
    up: AtomicBool,
    last_error: Mutex<Option<String>>,
    resubscribed: AtomicU64,
    hub: Mutex<Weak<Hub>>,
    replay_max: usize,
    replay_age: Duration,
    lease: Duration,
    retention: Duration,
    max_conns_per_user: usize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Cluster {
    /// Connects to Redis at `url` (it must answer now; later outages are survived).
    pub(crate) async fn connect(
        url: &str,
        config: &ServerConfig,
    ) -> Result<Arc<Self>, ClusterError> {
        let fail = |e: redis::RedisError| ClusterError {
            url: url.to_owned(),
            message: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(fail)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(500);
        let conn = client
            .get_connection_manager_with_config(manager)
            .await
            .map_err(fail)?;
        let node = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
        Ok(Arc::new(Cluster {
            node,
            client,
            conn,
            scripts: Scripts::new(),
            up: AtomicBool::new(false),
            last_error: Mutex::new(None),
            resubscribed: AtomicU64::new(0),
            hub: Mutex::new(Weak::new()),
            replay_max: config.replay_max.max(1),
            replay_age: config.replay_age,
            lease: config.cluster_lease.max(Duration::from_millis(300)),
            retention: config.dedupe_retention,
            max_conns_per_user: config.max_conns_per_user,
        }))
    }

    /// Binds the hub and starts the subscription and the lease renewal; returns their tasks.
    pub(crate) fn start(self: &Arc<Self>, hub: &Arc<Hub>) -> Vec<JoinHandle<()>> {
        *self.hub.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(hub);
        let subscriber = tokio::spawn(self.clone().subscribe_loop());
        let renewer = tokio::spawn(self.clone().renew_loop());
        vec![subscriber, renewer]
    }

    fn hub(&self) -> Option<Arc<Hub>> {
        self.hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
    }

    /// A connection for one command (cheap: the manager multiplexes one TCP connection).
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Notes a failed Redis call (what `/health` shows).
    fn failed(&self, e: &redis::RedisError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
    }

    /// `/health`'s `node` member.
    pub(crate) fn health(&self) -> Value {
        let up = self.up.load(Ordering::Relaxed);
        json!({
            "id": self.node,
            "broker": "redis",
            "redis": if up { "up" } else { "down" },
            "redis_error": *self.last_error.lock().unwrap_or_else(PoisonError::into_inner),
            "resubscribed": self.resubscribed.load(Ordering::Relaxed),
        })
    }

    /// Subscribes, registers this node's state, routes messages; on any loss, waits and
    /// does it again.
    async fn subscribe_loop(self: Arc<Self>) {
        let mut delay = RESUBSCRIBE_FIRST;
        loop {
            match self.subscribe_once().await {
                Ok(()) => delay = RESUBSCRIBE_FIRST,
                Err(e) => self.failed(&e),
            }
            if self.up.swap(false, Ordering::Relaxed) {
                warn!(node = %self.node, "lost the Redis subscription; resubscribing");
            }
            if self.hub().is_none() {
                return;
            }
            sleep(delay).await;
            delay = (delay * 2).min(RESUBSCRIBE_MAX);
        }
    }

    async fn subscribe_once(&self) -> redis::RedisResult<()> {
        let mut pubsub = tokio::time::timeout(REDIS_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| timeout_error())??;
        pubsub.subscribe(CHANNEL).await?;
        let Some(hub) = self.hub() else {
            return Ok(());
        };
        self.resync(&hub).await?;
        drop(hub);
        self.up.store(true, Ordering::Relaxed);
        if self.resubscribed.fetch_add(1, Ordering::Relaxed) > 0 {
            info!(node = %self.node, "resubscribed to Redis");
        }
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Some(hub) = self.hub() else {
                return Ok(());
            };
            route::route(&hub, &self.node, message.get_payload_bytes());
        }
        Ok(())
    }

    /// Renews this node's lease and its sockets' and sessions' leases, a third of a lease apart.
    async fn renew_loop(self: Arc<Self>) {
        loop {
            sleep(self.lease / 3).await;
            let Some(hub) = self.hub() else {
                return;
            };
            if let Err(e) = self.renew(&hub).await {
                self.failed(&e);
            }
        }
    }

    async fn renew(&self, hub: &Hub) -> redis::RedisResult<()> {
        let now = now_ms();
        let lease = ms(self.lease);
        let mut pipe = redis::pipe();
        pipe.zadd("sl:nodes", &self.node, now + lease).ignore();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg("sl:nodes")
            .arg("-inf")
            .arg(now)
            .ignore();
        for (user, member) in hub.live_leases() {
            pipe.cmd("ZADD")
                .arg(conns_key(&user))
                .arg("XX")
                .arg(now + lease)
                .arg(member)
                .ignore();
            pipe.pexpire(conns_key(&user), i64::try_from(lease).unwrap_or(i64::MAX))
                .ignore();
        }
        for session in hub.attached_sessions() {
            let key = session_key(&session.id.to_string());
            let ttl = i64::try_from(ms(self.replay_age) + lease).unwrap_or(i64::MAX);
            pipe.pexpire(&key, ttl).ignore();
            pipe.pexpire(format!("{key}:rooms"), ttl).ignore();
        }
        pipe.query_async::<()>(&mut self.conn()).await
    }
}

fn timeout_error() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer in time",
    ))
}

/// `sl:s:{session}`.
pub(crate) fn session_key(session: &str) -> String {
    format!("sl:s:{session}")
}

/// `sl:m:{dest}`: the sessions in a room (`chat:…`) or of a user (`user:…`).
pub(crate) fn members_key(dest: &str) -> String {
    format!("sl:m:{dest}")
}

/// `sl:c:{user}`: a user's live sockets, on every node.
pub(crate) fn conns_key(user: &str) -> String {
    format!("sl:c:{user}")
}
