//! dkraid's build tooling. `cargo run -p xtask -- <command>`:
//!   gen-abi [--out FILE]    regenerate the core's ABI module from rust-core/include/dkraid.h
//!   check-driverkit-lib <lib.a> [arm64e|x86_64]...
//!                           verify a DriverKit static library (scripts/build-driverkit-lib.sh):
//!                           a universal one (default slices arm64e x86_64) or a thin one
//!   make-universal <out.a> <thin.a>...
//!                           write the universal (fat) library of thin ones, like lipo -create

mod abi;
mod driverkit;
mod fat;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: xtask <gen-abi [--out FILE] | check-driverkit-lib <lib.a> \
                     [arm64e|x86_64]... | make-universal <out.a> <thin.a>...>";

fn workspace_root() -> PathBuf {
    // tools/xtask -> the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen-abi") => match abi::main(&workspace_root(), &args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("xtask: {message}");
                ExitCode::FAILURE
            }
        },
        Some("check-driverkit-lib") => driverkit::main(&args[1..]),
        Some("make-universal") => driverkit::make_universal_main(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
