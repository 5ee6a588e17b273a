//! A server without a listener, for the `server` fuzz check (`crate::fuzzing`, feature
//! `fuzzing`): the same hub, gate, router, upgrade and socket tasks as [`start`](super::start),
//! but each client is an in-memory duplex pipe, so a paused tokio clock drives every timeout and
//! one input runs the same way every time. Also the probes the check reads a user's state with.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::DuplexStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::WebSocketStream;
use tower::ServiceExt;

pub(crate) use super::auth::verify;
use super::broker::Backend;
use super::gate::Gate;
use super::hub::Hub;
use super::session::ConnId;
use super::stats::Stats;
use super::tasks::Tasks;
use super::{http, AppState, Mode, ServerConfig, Shared};

/// Bytes each direction of a client's pipe holds before a writer waits (allocated up front).
const PIPE_BYTES: usize = 16 * 1024;

/// A client's end of its socket.
pub(crate) type Client = WebSocketStream<DuplexStream>;

/// A user's session as the hub holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionView {
    pub(crate) id: String,
    pub(crate) rooms: Vec<String>,
    pub(crate) attached: bool,
    pub(crate) last_seq: u64,
}

/// The server; call everything inside a tokio runtime (the check uses a paused current-thread
/// one).
pub(crate) struct Harness {
    state: AppState,
    gate: Arc<Gate>,
    router: Router,
    tasks: Arc<Tasks>,
    _mode: watch::Sender<Mode>,
    next_port: u16,
}

impl Harness {
    /// A server with `config` (its `addr` is not used: nothing listens).
    pub(crate) fn new(config: ServerConfig) -> Harness {
        let config = Arc::new(config);
        let stats = Arc::new(Stats::default());
        let hub = Arc::new(Hub::new(&config, stats.clone(), Backend::Memory));
        let gate = Arc::new(Gate::new(
            config.max_connections,
            config.max_unauthed_per_ip,
            stats,
        ));
        let (mode, mode_rx) = watch::channel(Mode::Running);
        let tasks = Arc::new(Tasks::new(tokio::runtime::Handle::current()));
        let state: AppState = Arc::new(Shared {
            hub,
            config,
            mode: mode_rx,
            tasks: tasks.clone(),
            next_conn: AtomicU64::new(1),
            started: Instant::now(),
        });
        Harness {
            router: http::router(state.clone()),
            state,
            gate,
            tasks,
            _mode: mode,
            next_port: 40_000,
        }
    }

    /// A WebSocket to `GET /ws`, after the handshake (admitted by the gate like a TCP peer, then
    /// served as HTTP/1.1 until it upgrades, as the listener does).
    pub(crate) async fn connect(&mut self) -> Result<Client, String> {
        self.next_port = self.next_port.wrapping_add(1);
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, self.next_port));
        let ticket = self
            .gate
            .admit(peer)
            .map_err(|refusal| format!("refused: {refusal:?}"))?;
        let (client, server) = tokio::io::duplex(PIPE_BYTES);
        let router = self.router.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ticket.clone());
            router.clone().oneshot(request)
        });
        let id = ConnId(u64::from(self.next_port) << 32);
        self.tasks.spawn(id, async move {
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(server), service)
                .with_upgrades();
            let _ = conn.await;
        });
        let (ws, _) = tokio_tungstenite::client_async("ws://fuzz.invalid/ws", client)
            .await
            .map_err(|e: tungstenite::Error| format!("handshake: {e}"))?;
        Ok(ws)
    }

    /// `POST /notify` to a user, without the HTTP.
    pub(crate) fn notify_user(&self, user: &str, event: &str, data: &Value) -> usize {
        self.state
            .hub
            .notify_user(user, event, data, Instant::now())
    }

    /// `POST /notify` to a room, without the HTTP.
    pub(crate) fn notify_room(&self, room: &str, event: &str, data: &Value) -> usize {
        self.state
            .hub
            .deliver_room(room, event, data, None, Instant::now())
    }

    /// The user's unread notification count.
    pub(crate) fn unread_count(&self, user: &str) -> usize {
        self.state.hub.users.unread_count(user)
    }

    /// The user's sessions, sorted by id.
    pub(crate) fn sessions(&self, user: &str) -> Vec<SessionView> {
        let mut views: Vec<SessionView> = self
            .state
            .hub
            .users
            .sessions_of(user)
            .iter()
            .map(|cell| {
                let state = cell.lock();
                let mut rooms: Vec<String> =
                    state.rooms.iter().map(|r| r.name.to_string()).collect();
                rooms.sort();
                SessionView {
                    id: cell.id.to_string(),
                    rooms,
                    attached: state.attached.is_some(),
                    last_seq: state.last_seq(),
                }
            })
            .collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }

    /// Ends every socket and HTTP task.
    pub(crate) fn stop(&self) {
        self.tasks.abort_all();
    }
}
