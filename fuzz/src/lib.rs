//! Shared pieces of dkraid's fuzz targets (`fuzz_targets/*.rs`, docs/FUZZING.md): a reader that
//! turns the fuzzer's bytes into choices, the checking block backend the SCSI target runs the
//! emulator over, and the seed corpus (`examples/gen_corpus.rs` writes it to `corpus/`).

pub mod admin;
pub mod bundle;
pub mod iig;
pub mod input;
pub mod reply;
pub mod scsi;
pub mod seeds;
