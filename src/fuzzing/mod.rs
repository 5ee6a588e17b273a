//! The checks the fuzz targets (`fuzz/`, cargo-fuzz) and the corpus replay
//! (`tests/fuzz_corpus.rs`, stable) share: each takes any bytes and panics only when a property
//! of the code under test is broken. Hidden, behind the non-default `fuzzing` feature: it reaches
//! the crate-private JSON scanner without making it public, and it is not API.
//!
//! - [`frame()`]: the client's frame decoder against the serde [`ServerFrame`](crate::protocol::ServerFrame).
//! - [`json()`]: the JSON scanner against `serde_json`.
//! - [`core()`]: the core driven by a script decoded from the bytes ([`script`]).
//! - [`server()`]: the reference server's frame handler and auth, driven by a script of frames
//!   on an authenticated and an unauthenticated socket ([`server_script`]), watched for panics,
//!   malformed replies and any effect on another user.

mod connection;
mod cursor;
mod frame;
mod json;
pub mod script;
mod server;
pub mod server_script;

pub use self::connection::core;
pub use self::frame::frame;
pub use self::json::json;
pub use self::server::server;

/// A check: runs one input, panics when a property is broken.
pub type Check = fn(&[u8]);

/// Every check by its fuzz target's name (`fuzz/fuzz_targets/<name>.rs`, `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("frame", frame),
    ("json", json),
    ("core", core),
    ("server", server),
];

/// The bytes as text, the way a WebSocket text frame reaches the code: invalid UTF-8 never
/// does (the transport closes with 1007), so it is replaced rather than skipped, which keeps
/// every input useful to the fuzzer.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// `serde_json` refuses numbers beyond `f64` ("number out of range"); the scanner checks number
/// syntax only (PROTOCOL.md leaves payload numbers to the application).
fn out_of_range(error: &str) -> bool {
    error.contains("number out of range")
}
