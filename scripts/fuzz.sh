#!/usr/bin/env bash
# Runs dkraid's cargo-fuzz (libFuzzer) targets — fuzz/, docs/FUZZING.md — for SECONDS each
# (default 20) and prints the executions of each. Exit status 1 if any target crashed (the
# input is saved in fuzz/artifacts/<target>/ and the log's tail is printed).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: cdb admin reply iig plist (default all)
#   FUZZ_FLAGS="-jobs=2 -workers=2" scripts/fuzz.sh 3600 cdb   extra libFuzzer flags
#
# Needs nightly and cargo-fuzz; installs them when missing. New corpus entries go to
# fuzz/target/corpus/<target>/ (not in git); the committed seeds are fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
export CARGO_TERM_COLOR=never

seconds=${1:-20}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "scripts/fuzz.sh: SECONDS must be a positive whole number, got '$seconds'" >&2
    exit 2
fi
all=(cdb admin reply iig plist)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    if [[ ! " ${all[*]} " == *" $t "* ]]; then
        echo "scripts/fuzz.sh: no target '$t' (targets: ${all[*]})" >&2
        exit 2
    fi
done

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked
fi

# Every target in one build (they share the crate and its dependencies).
cargo +nightly fuzz build

total=0
failed=()
printf '%-6s %14s %8s %10s\n' target executions seconds exec/s
for t in "${targets[@]}"; do
    work=target/corpus/$t
    log=target/fuzz-$t.log
    mkdir -p "$work"
    # -timeout: one input taking 10 s is a hang, reported like a crash.
    # shellcheck disable=SC2086
    if cargo +nightly fuzz run "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 ${FUZZ_FLAGS:-} \
        >"$log" 2>&1; then
        runs=$(grep -h 'stat::number_of_executed_units:' "$log" | awk '{s += $2} END {print s + 0}')
        secs=$(grep -h 'stat::peak_rss_mb:' "$log" >/dev/null && grep -ho 'Done [0-9]* runs in [0-9]*' "$log" | awk '{s = $5} END {print s + 0}')
        [ "${secs:-0}" -gt 0 ] || secs=$seconds
        printf '%-6s %14d %8d %10d\n' "$t" "$runs" "$secs" $((runs / secs))
        total=$((total + runs))
    else
        printf '%-6s %14s\n' "$t" CRASHED
        tail -n 60 "$log"
        failed+=("$t")
    fi
done
printf '%-6s %14d\n' total "$total"
if [ ${#failed[@]} -gt 0 ]; then
    echo "scripts/fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/target/fuzz-<target>.log)" >&2
    exit 1
fi
