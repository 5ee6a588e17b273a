//! The reference server's per-socket frame handler and auth: frames from an authenticated and
//! an unauthenticated socket; no panic, every reply well-formed, no other user's state touched.
//! The check is `sockline::fuzzing::server`, shared with the corpus replay (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockline::fuzzing::server(data));
