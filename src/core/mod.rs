//! The sans-IO core: [`Connection`], the deterministic state machine every driver runs.
//!
//! The core never opens a socket, never reads a clock, never draws OS randomness and never
//! spawns anything. Every input carries its own `now` (an [`Instant`]: milliseconds since an
//! origin the driver picks); jitter comes from a PRNG seeded through the config. So the same
//! inputs always give the same outputs, on any target.
//!
//! # The drain rule
//!
//! After every input ([`Connection::handle_input`]) or command ([`Connection::connect`],
//! [`Connection::disconnect`], [`Connection::send`], [`Connection::join`], …):
//! 1. drain [`Connection::poll_action`] until `None` and perform each action in order;
//! 2. drain [`Connection::poll_event`] until `None` and hand each event to the application;
//! 3. ask [`Connection::poll_timeout`] and feed [`Input::Timeout`] at that instant (or later:
//!    a late timer is fine, expiry is checked against the `now` it brings).
//!
//! # Panics
//!
//! Never on input: bad frames, stale sockets and out-of-order calls become events or are ignored.
//!
//! # Example: a complete loop against a scripted server
//!
//! ```
//! use sockline::core::{Action, Connection, ConnectionConfig, Event, Input, Instant, StaticToken, Transport};
//!
//! let mut config = ConnectionConfig::new("ws://127.0.0.1:8080/ws");
//! config.token = Some(StaticToken::new("token")); // or None: answer Action::FetchToken
//! let mut conn = Connection::new(config, Instant::ZERO);
//! let now = Instant::ZERO;
//! conn.connect(now);
//! let mut log = Vec::new();
//! // A scripted "server": answer every action at once.
//! let mut socket = None;
//! for _ in 0..3 {
//!     while let Some(action) = conn.poll_action() {
//!         match action {
//!             Action::FetchToken { request } => {
//!                 conn.handle_input(now, Input::TokenFetched(request, Ok("token".into())))
//!             }
//!             Action::OpenSocket { socket: id, .. } => {
//!                 socket = Some(id);
//!                 conn.handle_input(now, Input::Transport(id, Transport::Opened))
//!             }
//!             Action::SendFrame { text, .. } => log.push(text),
//!             _ => {} // CloseSocket: nothing is open in this script
//!         }
//!     }
//! }
//! let frame = r#"{"type":"authenticated","user_id":"u1","session":"s1","heartbeat_ms":30000,"resumed":false}"#;
//! conn.handle_input(now, Input::Transport(socket.unwrap(), Transport::Frame(frame.into())));
//! assert!(conn.state().is_connected());
//! assert_eq!(log, [r#"{"type":"auth","v":1,"token":"token"}"#]);
//! while let Some(event) = conn.poll_event() {
//!     if let Event::StateChanged { to, cause, .. } = event {
//!         println!("now {} ({})", to.name(), cause.code());
//!     }
//! }
//! // The next deadline: the heartbeat (30 s + 10 s grace).
//! assert_eq!(conn.poll_timeout(), Some(Instant::from_millis(40_000)));
//! ```
#![forbid(unsafe_code)]

mod backoff;
mod config;
mod inbox;
mod io;
mod link;
mod machine;
mod outbox;
mod pacing;
mod queue;
mod rooms;
mod state;
mod timers;

pub use backoff::Backoff;
pub use config::{ConnectionConfig, StaticToken};
pub use io::{
    Action, Env, Event, Input, Instant, Payload, RequestId, SendId, SocketId, Stats, Transport,
};
pub use machine::Connection;
pub(crate) use state::seq_gap;
pub use state::{Cause, ConnectionState, DisconnectReason, LinkError};
