//! dkraid's build tooling. `cargo run -p xtask -- <command>`:
//!   gen-abi [--out FILE]    regenerate the core's ABI module from rust-core/include/dkraid.h

mod abi;

use std::path::PathBuf;
use std::process::ExitCode;

fn workspace_root() -> PathBuf {
    // tools/xtask -> the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen-abi") => abi::main(&workspace_root(), &args[1..]),
        _ => Err("usage: xtask <gen-abi> ...".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
