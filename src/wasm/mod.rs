//! The browser face (wasm32 only): a web-sys driver around the core and the `#[wasm_bindgen]`
//! JavaScript API, [`SocklineClient`].
//!
//! The driver runs the core's four beats: wait for one thing (a socket callback, the single
//! `setTimeout`, a page event, a settled `getToken()` promise), feed it with `now` from
//! `performance.now()`, drain actions and events, re-arm the timer if the deadline moved.
//!
//! Page events: `visibilitychange` → `Env(Hidden | Visible)`, `online`/`offline` →
//! `Env(Online | Offline)`, `pagehide`/`pageshow` (back-forward cache) → `Env(Offline | Online)`.
//! All of them, the socket and the timer are released by `free()`.

mod client;
mod driver;
mod js;
mod options;
mod types;

pub use client::SocklineClient;
