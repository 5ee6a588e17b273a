//! sockline: a reconnecting real-time WebSocket client SDK.
//!
//! One deterministic, sans-IO state machine ([`core::Connection`]) decides everything: when to
//! connect, authenticate, retry, pause, resend and resume. A pure [`shell::Shell`] around it
//! decides what the faces report. Drivers only move bytes and time. The wire protocol is
//! PROTOCOL.md at the repository root ([`protocol`] follows it).
//!
//! # What is public, and why
//!
//! - [`core`]: the state machine and its vocabulary (`Connection`, `ConnectionConfig`, `Input`,
//!   `Transport`, `Env`, `Action`, `Event`, `ConnectionState`, `Cause`, `Payload`, `Stats`,
//!   `Backoff`) — everything a driver feeds it or reads from it. Its queues, timer table, PRNG
//!   and phase data are private.
//! - [`shell`]: the driver-agnostic layer both drivers run (`Shell`, `Batch`, `Output`,
//!   `StateView`), public so another driver (a worker, an embedded runtime) is cheap to write.
//! - [`protocol`]: the wire vocabulary (`CloseCode` and its retry policy, `ResumePoint`,
//!   `ErrorBody`, limits), the serde frames (`ClientFrame`, `ServerFrame`: for servers, proxies
//!   and test peers) and the client's codec (`IncomingFrame`, `encode`: the reference decoder
//!   the serde frames are tested against). The JSON scanner under it is private.
//! - [`events`]: the typed event catalogue (`ServerEvent` / `ClientEvent` and one type per
//!   event), which applications extend with their own types.
//! - [`error`]: `SendError`, `AckError`, `ClientError`, grouped by who is to blame.
//! - `native` (not on wasm32): `Client` and `ClientConfig`; `wasm` (wasm32): the package's
//!   wasm core, driven by its TypeScript driver (js/src/core/); `server` (feature `server`):
//!   the reference server.
//!
//! The listener registry and the drivers' bookkeeping are `pub(crate)`.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod core;
pub mod error;
pub mod events;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod listeners;
pub(crate) mod message;
pub mod protocol;
pub mod shell;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub mod server;
#[cfg(all(feature = "testing", not(target_arch = "wasm32")))]
pub mod testing;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub use crate::core::ConnectionConfig;
pub use error::{AckError, ClientError, SendError};
