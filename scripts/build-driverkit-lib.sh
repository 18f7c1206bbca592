#!/usr/bin/env bash
# Build dkraid-ffi (lib `dkraid`) as one universal DriverKit static library and verify it:
#
#   target/driverkit/libdkraid.a           universal (fat): arm64e + x86_64 — what Xcode links
#   target/driverkit/arm64e/libdkraid.a    thin slice, arm64e-apple-driverkit$DRIVERKIT_VERSION
#   target/driverkit/x86_64/libdkraid.a    thin slice, x86_64-apple-driverkit$DRIVERKIT_VERSION
#
# A dext on Apple silicon is arm64e (pointer authentication), and ld64 will not link an arm64
# library into an arm64e binary, so the Apple-silicon slice is built from rustc's
# arm64e-apple-darwin target. rustc has no DriverKit target, so for each architecture this script
#   1. prints rustc's own *-apple-darwin target spec and derives a DriverKit spec from it
#      (target/driverkit/<arch>-apple-driverkit.json; generated, never committed),
#   2. builds the crate with nightly `-Z build-std=core,compiler_builtins` for that spec
#      (no compiler-builtins `mem` feature: memcpy & co stay undefined for DriverKit's libc),
#   3. runs `cargo run -p xtask -- check-driverkit-lib <lib.a> <arch>`, which fails unless every
#      object records PLATFORM_DRIVERKIT and the right CPU in LC_BUILD_VERSION and the only
#      undefined symbols are _memcpy _memmove _memset _memcmp _bzero;
# then `xtask make-universal` writes the fat archive (no lipo needed: the fat header is written
# by xtask) and `xtask check-driverkit-lib target/driverkit/libdkraid.a` checks it again, slice
# by slice: exactly arm64e and x86_64, each passing the checks above.
#
# Needs rustup, cargo, python3 (for the JSON edit). Installs the nightly toolchain and its
# rust-src component when missing. Idempotent; runnable from any directory.
#
# Environment:
#   DRIVERKIT_VERSION     DriverKit deployment target (default 20.4, i.e. macOS 11.3: the first
#                         DriverKit with SCSIControllerDriverKit; lower values are refused)
#   DKRAID_NIGHTLY        nightly toolchain to build with (default: nightly)
#   DKRAID_ARCHS          architectures of the universal library (default: "arm64e x86_64";
#                         a subset builds faster, but only both make a library Xcode can link
#                         for "Any Mac")
#   DKRAID_FFI_MANIFEST   Cargo.toml of the workspace to build (default: the repository's)
#   DKRAID_FFI_PACKAGE    package to build (default: dkraid-ffi)
#   CARGO_TARGET_DIR      honoured as usual (default: target/ of that workspace)
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
run() {
    printf '+ %s\n' "$*"
    "$@"
}
die() {
    printf 'build-driverkit-lib: error: %s\n' "$*" >&2
    exit 1
}

case "${1:-}" in
    -h | --help)
        awk 'NR > 1 && /^set -euo/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    "") ;;
    *) die "unexpected argument '$1' (configure with environment variables; see --help)" ;;
esac

# Relative paths in the environment mean relative to where we were started, not the repository.
if [[ -n ${DKRAID_FFI_MANIFEST:-} && $DKRAID_FFI_MANIFEST != /* ]]; then
    DKRAID_FFI_MANIFEST=$PWD/$DKRAID_FFI_MANIFEST
fi
if [[ -n ${CARGO_TARGET_DIR:-} && $CARGO_TARGET_DIR != /* ]]; then
    export CARGO_TARGET_DIR=$PWD/$CARGO_TARGET_DIR
fi

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null) || repo_root=$(cd -- "$script_dir/.." && pwd)
cd "$repo_root"

DRIVERKIT_VERSION=${DRIVERKIT_VERSION:-20.4}
NIGHTLY=${DKRAID_NIGHTLY:-nightly}
ARCHS=${DKRAID_ARCHS:-arm64e x86_64}
MANIFEST=${DKRAID_FFI_MANIFEST:-$repo_root/Cargo.toml}
PACKAGE=${DKRAID_FFI_PACKAGE:-dkraid-ffi}

[[ $DRIVERKIT_VERSION =~ ^([0-9]+)\.([0-9]+)(\.[0-9]+)?$ ]] ||
    die "DRIVERKIT_VERSION must look like 20.4 or 21.4.1, not '$DRIVERKIT_VERSION'"
if ((BASH_REMATCH[1] < 20 || (BASH_REMATCH[1] == 20 && BASH_REMATCH[2] < 4))); then
    die "DRIVERKIT_VERSION $DRIVERKIT_VERSION is below 20.4, the first DriverKit with SCSIControllerDriverKit"
fi
[[ -n ${ARCHS// /} ]] || die "DKRAID_ARCHS is empty (default: \"arm64e x86_64\")"
seen_archs=" "
for arch in $ARCHS; do
    case $arch in
        arm64e | x86_64) ;;
        arm64) die "architecture 'arm64': an Apple-silicon dext is arm64e and cannot link an arm64 library; use arm64e" ;;
        *) die "unsupported architecture '$arch' in DKRAID_ARCHS (arm64e or x86_64)" ;;
    esac
    [[ $seen_archs != *" $arch "* ]] || die "architecture '$arch' is listed twice in DKRAID_ARCHS"
    seen_archs+="$arch "
done
for tool in rustup cargo python3; do
    command -v "$tool" >/dev/null || die "$tool is required but not on PATH"
done
[[ -f $MANIFEST ]] || die "no manifest at $MANIFEST"

started=$SECONDS

# --- toolchain -----------------------------------------------------------------------------
if rustup which --toolchain "$NIGHTLY" rustc >/dev/null 2>&1; then
    say "toolchain $NIGHTLY is installed"
else
    say "toolchain $NIGHTLY is missing; installing it"
    run rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src
fi
if ! rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -qx 'rust-src'; then
    say "component rust-src is missing from $NIGHTLY; adding it (-Z build-std needs it)"
    run rustup component add rust-src --toolchain "$NIGHTLY"
fi
say "using $(rustc "+$NIGHTLY" --version) / $(cargo "+$NIGHTLY" --version)"

# `.json` target specs are gated behind -Z json-target-spec on recent nightlies.
cargo_unstable=(-Z "build-std=core,compiler_builtins")
if cargo "+$NIGHTLY" -Z help 2>/dev/null | grep -q -- 'json-target-spec'; then
    cargo_unstable+=(-Z json-target-spec)
fi

# --- where things go -------------------------------------------------------------------------
# cargo metadata knows the real target directory (CARGO_TARGET_DIR, build.target-dir) and the
# name of the package's static library.
meta=$(
    cargo "+$NIGHTLY" metadata --format-version 1 --no-deps --manifest-path "$MANIFEST" |
        python3 -c '
import json, sys
package = sys.argv[1]
meta = json.load(sys.stdin)
for pkg in meta["packages"]:
    if pkg["name"] == package:
        libs = [t for t in pkg["targets"] if "staticlib" in t["crate_types"]]
        if not libs:
            sys.exit(f"package {package} has no staticlib target")
        print(meta["target_directory"])
        print(libs[0]["name"].replace("-", "_"))
        break
else:
    sys.exit(f"no package {package} in this workspace")
' "$PACKAGE"
) || die "could not read the cargo metadata of $PACKAGE"
target_dir=${meta%$'\n'*}
lib_name=${meta##*$'\n'}
[[ -n ${lib_name:-} ]] || die "could not find the static library of $PACKAGE"
out_root=$target_dir/driverkit
mkdir -p "$out_root"

# Paths relative to the repository when they are inside it, for shorter messages.
show() { printf '%s' "${1#"$repo_root"/}"; }

# --- target spec -------------------------------------------------------------------------------
# write_spec <arch> <darwin target> <llvm target> <output>: rustc's darwin spec, turned DriverKit.
write_spec() {
    local arch=$1 base=$2 llvm_target=$3 out=$4
    local printed
    printed=$(rustc "+$NIGHTLY" -Z unstable-options --print target-spec-json --target "$base")
    printf '%s' "$printed" | python3 -c '
import json, sys

arch, base, llvm_target, version, out = sys.argv[1:6]
spec = json.load(sys.stdin)

def fail(message):
    sys.exit(f"error: the {base} spec printed by rustc: {message}; review build-driverkit-lib.sh")

# Make sure we are editing what we think we are editing.
rust_arch = {"arm64e": "aarch64", "x86_64": "x86_64"}[arch]
for key, want in [("arch", rust_arch), ("os", "macos"), ("vendor", "apple"),
                  ("binary-format", "mach-o")]:
    if spec.get(key) != want:
        fail(f"{key} is {spec.get(key)!r}, expected {want!r}")
like_darwin = [key for key in ("is-like-darwin", "is-like-osx") if key in spec]
if not like_darwin:
    fail("it has neither is-like-darwin nor is-like-osx")

changes = []
def put(key, value, why):
    old = spec.get(key, "<unset>")
    if old != value:
        spec[key] = value
        changes.append(f"{key}: {json.dumps(old)} -> {json.dumps(value)}  ({why})")

put("os", "driverkit", "cfg(target_os = \"driverkit\"), no_std in the ffi crate")
put("llvm-target", llvm_target, "LLVM writes LC_BUILD_VERSION platform DRIVERKIT, minos " + version)
put("vendor", "unknown", "rustc requires is-like-darwin exactly when vendor is apple")
for key in like_darwin:
    put(key, False, "rustc has no DriverKit deployment-target logic; it would ICE")
put("panic-strategy", "abort", "no unwinding in a dext; no personality routine")
put("stack-probes", {"kind": "inline"}, "never call ___chkstk_darwin / __rust_probestack")
put("has-thread-local", False, "no TLV (__tlv_bootstrap) in the dext; rustc Mach-O TLS handling is keyed on is-like-darwin")
metadata = dict(spec.get("metadata") or {})
metadata.update({"description": f"{arch} Apple DriverKit {version}+ (generated from {base} by dkraid)",
                 "std": False, "host_tools": False})
metadata.pop("tier", None)
put("metadata", metadata, "describe what this is")

# Keys that only matter when rustc links a final Darwin binary: this target only ever makes
# static libraries (Xcode links the dext), and the darwin linker flavor is rejected once
# is-like-darwin is off ("linker_flavor must be darwin if and only if is_like_darwin").
LINK_ONLY = {"linker", "linker-flavor", "lld-flavor", "linker-is-gnu", "link-env",
             "link-env-remove", "crt-objects-fallback", "link-self-contained", "link-script"}
for key in sorted(spec):
    if key in LINK_ONLY or "link-args" in key or "link-objects" in key:
        changes.append(f"{key}: removed  (linker-only: {json.dumps(spec.pop(key))})")

with open(out, "w") as f:
    json.dump(spec, f, indent=2, sort_keys=True)
    f.write("\n")
for change in changes:
    print(f"    {change}")
' "$arch" "$base" "$llvm_target" "$DRIVERKIT_VERSION" "$out.new"
    if cmp -s "$out.new" "$out"; then
        rm -f "$out.new"
        say "$(show "$out") is up to date"
    else
        mv -f "$out.new" "$out"
        say "wrote $(show "$out")"
    fi
}

# --- build and check ---------------------------------------------------------------------------
say "DriverKit $DRIVERKIT_VERSION static libraries of $PACKAGE (lib$lib_name.a) for: $ARCHS"
xtask() { cargo run -q --manifest-path "$repo_root/Cargo.toml" -p xtask -- "$@"; }
built=()
failed=()
for arch in $ARCHS; do
    case $arch in
        arm64e) base=arm64e-apple-darwin llvm_arch=arm64e ;;
        x86_64) base=x86_64-apple-darwin llvm_arch=x86_64 ;;
        *) die "unsupported architecture '$arch' (arm64e or x86_64)" ;;
    esac
    spec_name=$arch-apple-driverkit
    spec=$out_root/$spec_name.json
    lib_out=$out_root/$arch/lib$lib_name.a
    arch_started=$SECONDS

    say "[$arch] target spec from $base"
    write_spec "$arch" "$base" "$llvm_arch-apple-driverkit$DRIVERKIT_VERSION" "$spec"

    say "[$arch] building $PACKAGE"
    run cargo "+$NIGHTLY" build --manifest-path "$MANIFEST" -p "$PACKAGE" --release \
        --target "$spec" "${cargo_unstable[@]}"
    # cargo names the output directory after the spec file's stem.
    lib_built=$target_dir/$spec_name/release/lib$lib_name.a
    [[ -f $lib_built ]] || die "cargo reported success but $lib_built does not exist"
    mkdir -p "$(dirname -- "$lib_out")"
    run cp -f "$lib_built" "$lib_out"

    say "[$arch] checking $(show "$lib_out")"
    if xtask check-driverkit-lib "$lib_out" "$arch"; then
        built+=("$lib_out")
    else
        failed+=("$arch")
    fi
    say "[$arch] done in $((SECONDS - arch_started))s"
done

if ((${#failed[@]})); then
    die "DriverKit check failed for: ${failed[*]} (see the report above)"
fi

# --- the universal library -------------------------------------------------------------------
universal=$out_root/lib$lib_name.a
say "universal library $(show "$universal")"
run xtask make-universal "$universal.new" "${built[@]}" || die "could not write the universal library"
mv -f "$universal.new" "$universal"
# shellcheck disable=SC2086 # $ARCHS is a word list
xtask check-driverkit-lib "$universal" $ARCHS || die "the universal library failed its check (see the report above)"

shown=()
for lib in "${built[@]}"; do shown+=("$(show "$lib")"); done
echo "OK: DriverKit $DRIVERKIT_VERSION universal library ($ARCHS) built and verified in $((SECONDS - started))s: $(show "$universal") (slices: ${shown[*]})"
