//! The native driver: [`Client`] runs the core on tokio over tokio-tungstenite.
//!
//! One task per client owns the socket and the timer; [`Client`] handles are cheap clones that
//! lock the shell briefly for a command and wake the task. Listeners run on the task, never
//! under a lock, so a listener may call back into the client.

mod client;
mod config;
mod driver;
mod link;
mod payload;
mod shared;
mod types;

pub use client::{Client, ListenerGuard, StateStream};
pub use config::{ClientConfig, TokenFuture};
pub use types::{Message, Notice, RequestError, StateChange};
