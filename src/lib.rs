//! sockline: a reconnecting real-time WebSocket client SDK.
#![warn(missing_docs)]

pub mod protocol;

#[cfg(feature = "server")]
pub mod server;
