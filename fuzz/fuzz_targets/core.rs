//! The core fed a script of commands, socket events and (fuzzed) frames: its invariants hold.
//! The check is `sockline::fuzzing::core`, shared with the corpus replay (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockline::fuzzing::core(data));
