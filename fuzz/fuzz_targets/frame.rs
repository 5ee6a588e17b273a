//! The client's frame decoder: any bytes → `IncomingFrame` or an error, agreeing with the serde
//! `ServerFrame`; a valid frame re-encodes to the same frame.
//! The check is `sockline::fuzzing::frame`, shared with the corpus replay (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockline::fuzzing::frame(data));
