//! Fuzz target `reply`: see `src/reply.rs` and docs/FUZZING.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dkraid_fuzz::reply::run(data));
