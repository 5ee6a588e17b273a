//! The JSON scanner: agrees with `serde_json` on accept/reject, raw member slices and scalars.
//! The check is `sockline::fuzzing::json`, shared with the corpus replay (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockline::fuzzing::json(data));
