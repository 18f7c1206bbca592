#!/usr/bin/env bash
# Regenerate the core's ABI module from rust-core/include/dkraid.h with bindgen and fail on
# any difference from the committed rust-core/src/abi/generated.rs. Also compiles the header
# as C11 and C++17 with every warning on, so its static_asserts are checked by both compilers.
# Needs libclang (Debian: libclang-dev); .ci/run installs it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "check-abi: compiling rust-core/include/dkraid.h as C11 and C++17"
printf '#include "dkraid.h"\n' >"$tmp/header.c"
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I rust-core/include "$tmp/header.c"
c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -x c++ -I rust-core/include \
    "$tmp/header.c"

echo "check-abi: regenerating the bindings with bindgen"
cargo run --quiet --locked -p xtask -- gen-abi --out "$tmp/generated.rs"

if ! diff -u rust-core/src/abi/generated.rs "$tmp/generated.rs"; then
    echo "check-abi: FAILED: rust-core/src/abi/generated.rs is out of date with dkraid.h." >&2
    echo "check-abi: run 'cargo run -p xtask -- gen-abi' and commit the result." >&2
    exit 1
fi
echo "check-abi: ok, rust-core/src/abi/generated.rs matches rust-core/include/dkraid.h"
