//! The browser face (wasm32 only): the package's wasm core, a [`Shell`](crate::shell::Shell)
//! per client behind a small ABI of numbers and JSON text (`abi`), driven by the TypeScript
//! driver in js/src/core/.
//!
//! The split: every decision is made here, in the core and the shell — what the options mean
//! and whether they are valid (`options`), what each page event is to the core, when to open,
//! send on and close a socket, when to fetch a token, when the timer must fire, what is
//! reported and with which error code and words (`out`). The driver only moves bytes and time:
//! it opens the sockets and feeds their events, arms the one `setTimeout`, reports page events,
//! calls `getToken()`, and hands each output to the app's listeners and promises. The wasm
//! imports nothing (no wasm-bindgen, no web-sys): the driver calls it, it never calls out.

mod abi;
mod options;
mod out;

/// The allocator: talc instead of Rust's default dlmalloc. Safe to construct: its `const fn`
/// refuses to compile for anything but single-threaded wasm (no `atomics`), which is what this
/// package is; memory comes from `memory.grow` as the heap needs it.
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
