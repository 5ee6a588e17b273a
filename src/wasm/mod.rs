//! The browser face (wasm32 only): the package's wasm core, a [`Shell`](crate::shell::Shell)
//! per client behind a small ABI of numbers and JSON text (`abi`), driven by the TypeScript
//! driver in js/src/core/.
//!
//! The split: every decision is made here, in the core and the shell — what the options mean
//! (`options`; the driver checks their types first), what each page event is to the core, when
//! to open, send on and close a socket, when to fetch a token, when the timer must fire, what
//! is reported and with which error code and words (`out`). The driver only moves bytes and
//! time: it opens the sockets and feeds their events, arms the one `setTimeout`, reports page
//! events, calls `getToken()`, and hands each output to the app's listeners and promises. The
//! wasm imports nothing (no wasm-bindgen, no web-sys): the driver calls it, it never calls out.

mod abi;
mod options;
mod out;

/// The allocator: lol_alloc's free list instead of Rust's default dlmalloc (and of talc: both
/// are several hundred bytes larger gzipped). First fit over an address-ordered list whose
/// neighbours coalesce on free; memory comes from `memory.grow` as the heap needs it. The lock
/// is a spin flag that single-threaded wasm never contends.
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
