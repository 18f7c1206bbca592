//! Fuzz target `iig`: see `src/iig.rs` and docs/FUZZING.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dkraid_fuzz::iig::run(data));
