//! Fuzz target `plist`: see `src/bundle.rs` and docs/FUZZING.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dkraid_fuzz::bundle::run(data));
