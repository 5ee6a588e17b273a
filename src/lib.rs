//! sockline: a reconnecting real-time WebSocket client SDK.
//!
//! One deterministic, sans-IO state machine ([`core::Connection`]) decides everything: when to
//! connect, authenticate, retry, pause, resend and resume. Drivers only move bytes and time.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod config;
pub mod core;
pub mod error;
pub mod events;
pub mod json;
pub mod protocol;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub mod server;
#[cfg(all(feature = "testing", not(target_arch = "wasm32")))]
pub mod testing;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use config::ConnectionConfig;
pub use error::{AckError, ClientError, SendError};
