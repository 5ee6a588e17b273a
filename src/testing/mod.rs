//! The test kit (feature `testing`): what sockline's own tests use to check behaviour under
//! faults, for your tests of your app.
//!
//! - [`TestServer`]: the reference server in your test's tokio runtime on a random loopback
//!   port, with tokens for any user, `/notify` to push events, and stop / crash / restart on the
//!   same port.
//! - [`FaultProxy`]: a TCP proxy to put between a client and the server, whose faults switch on
//!   and off while the test runs: [`cut`](FaultProxy::cut) every link (RST),
//!   [`refuse`](FaultProxy::refuse) new connections, [`blackhole`](FaultProxy::blackhole)
//!   (sockets open, nothing forwarded), add [`latency`](FaultProxy::latency),
//!   [`slice`](FaultProxy::slice) frames into small writes, cap the
//!   [`bandwidth`](FaultProxy::bandwidth). Its docs say what each fault looks like to a client.
//! - [`ServerApi`]: `/notify` and `/health` of a server in another process.
//! - [`StateWatch`] and [`EventLog`]: wait for a client's state or for its events with a
//!   deadline, instead of sleeping.
//!
//! Everything listens on `127.0.0.1` only and needs a tokio runtime (`#[tokio::test]`).
//!
//! # Example: the app shows `reconnecting` and loses nothing when the link drops
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use sockline::native::{Client, ClientConfig};
//! use sockline::testing::{EventLog, FaultProxy, StateWatch, TestServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // (in your crate: #[tokio::test] async fn survives_a_dropped_link() { … })
//! let server = TestServer::start().await?;
//! let proxy = FaultProxy::start(server.addr()).await?;
//! let client = Client::new(ClientConfig::new(proxy.ws_url(), server.token("alice")));
//! let events = EventLog::new(&client);
//! let mut states = StateWatch::new(&client);
//! client.start();
//! states.wait_for("connected", Duration::from_secs(5)).await?;
//!
//! // The link drops, and stays down while the backend keeps notifying.
//! proxy.refuse(true);
//! proxy.cut();
//! states.wait_for("reconnecting", Duration::from_secs(5)).await?;
//! for i in 0..5 {
//!     server.notify_user("alice", "new_notification", json!({ "id": i })).await?;
//! }
//!
//! // The network comes back: the client resumes its session and gets all five, once each.
//! proxy.refuse(false);
//! states.wait_for("connected", Duration::from_secs(10)).await?;
//! events.wait_for_len(5, Duration::from_secs(5)).await?;
//! let ids: Vec<_> = events.messages().iter().map(|m| m.data.to_value()["id"].clone()).collect();
//! assert_eq!(ids, [0, 1, 2, 3, 4]);
//! assert_eq!(client.stats().reconnects, 1);
//! # Ok(()) }
//! ```

mod api;
mod http;
mod link;
mod proxy;
mod server;
mod watch;

pub use api::ServerApi;
pub use http::HttpError;
pub use proxy::{FaultProxy, Faults, ProxyStats};
pub use server::TestServer;
pub use watch::{EventLog, StateWatch, WaitTimeout};
