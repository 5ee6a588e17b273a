//! The browser face (wasm32 only): a web-sys driver around the core and the `#[wasm_bindgen]`
//! JavaScript API, [`SocklineClient`].
//!
//! The driver runs the shell's beats: wait for one thing (a socket callback, the single
//! `setTimeout`, a page event, a settled `getToken()` promise), feed it with `now` from
//! `performance.now()`, drain the shell, perform the actions, deliver the outputs, re-arm the
//! timer if the deadline moved. `socket` (RAII `WebSocket`), `page` (RAII page listeners),
//! `pump` (the loop), `deliver` (outputs to JS), `client` (the JS API), `options`, `types`
//! (the TypeScript section) and `js` (small helpers) each own one part.
//!
//! Page events: `visibilitychange` → `Env(Hidden | Visible)`, `online`/`offline` →
//! `Env(Online | Offline)`, `pagehide`/`pageshow` (back-forward cache) → `Env(Offline | Online)`.
//! All of them, the socket and the timer are released by `free()`.

mod client;
mod deliver;
mod js;
mod options;
mod page;
mod pump;
mod shared;
mod socket;
mod types;

pub use client::SocklineClient;

/// The allocator: talc instead of Rust's default dlmalloc. Safe to construct: its `const fn`
/// refuses to compile for anything but single-threaded wasm (no `atomics`), which is what this
/// package is; memory comes from `memory.grow` as the heap needs it.
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
