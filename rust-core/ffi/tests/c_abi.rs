//! Compiles `tests/c/abi_test.c` with `cc`, links it against the host build of this crate's
//! static library (`libdkraid.a`, built by cargo alongside this test) and runs it: the C ABI
//! driven from C exactly as the dext drives it, including its error paths.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the host static library exactly as a consumer would (`cargo build -p dkraid-ffi`,
/// default features) into a target directory of its own, so the test neither races the outer
/// cargo for its lock nor picks up a stale archive, and return its path.
fn static_library(workspace: &Path) -> PathBuf {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-abi-host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "dkraid-ffi", "--lib"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(workspace)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building dkraid-ffi's static library failed");
    let lib = target_dir.join("debug/libdkraid.a");
    assert!(lib.exists(), "{} is missing", lib.display());
    lib
}

#[test]
fn c_program_drives_the_abi_like_the_dext() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let library = static_library(&manifest.join("../.."));
    let include = manifest.join("../include");
    let source = manifest.join("tests/c/abi_test.c");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_abi");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join("abi_test");

    let target = current_target();
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .target(&target)
        .host(&target)
        .opt_level(0)
        .out_dir(&out_dir)
        .std("c11")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .get_compiler();
    let mut cmd = compiler.to_command();
    cmd.arg("-I")
        .arg(&include)
        .arg("-g")
        .arg(&source)
        .arg(&library)
        // What Rust's std needs from the system on Linux (`--print native-static-libs`).
        .args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"])
        .arg("-o")
        .arg(&exe);
    let status = cmd.status().expect("run the C compiler");
    assert!(
        status.success(),
        "compiling {} failed (see the compiler's output above)",
        source.display()
    );

    let output = Command::new(&exe).output().expect("run the C test program");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(output.status.success(), "the C ABI test failed:\n{stdout}{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.ends_with("passed, 0 failed"), "unexpected summary {summary:?}");
    let passed: u32 = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed > 100, "only {passed} checks ran");
}

fn current_target() -> String {
    let arch = std::env::consts::ARCH;
    match std::env::consts::OS {
        "linux" => format!("{arch}-unknown-linux-gnu"),
        "macos" => format!("{arch}-apple-darwin"),
        other => panic!("no C toolchain mapping for {other}"),
    }
}
