#!/usr/bin/env bash
# libiscsi's conformance suite (iscsi-test-cu, Debian package libiscsi-bin) against the
# driver's disks exported by `dkraid-sim iscsi` on loopback:
#   full-512      stage full, the default RAID 5 (512-byte blocks): the SCSI and iSCSI families
#   full-4096     stage full, a RAID 5 of 4096-byte blocks: the SCSI family
#   full-faulted  stage full, drive 2 fails half-way through the SCSI family's data (the
#                 hot spare takes over and rebuilds while the suite runs)
#   fake-block    stage fake-block: the SCSI family, its reads failing MEDIUM ERROR by design
# Each run's per-test results (passed / skipped / FAILED, see tests/iscsi/classify.awk: the
# tool itself counts a skip as a pass and exits 0 on failures) must equal
# tests/iscsi/expected-RUN.txt. Usage: scripts/iscsi-conformance.sh [--update] [RUN...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

update=0
runs=()
for a in "$@"; do
    case "$a" in
        --update) update=1 ;;
        full-512 | full-4096 | full-faulted | fake-block) runs+=("$a") ;;
        *) echo "iscsi-conformance: unknown argument $a (runs: full-512 full-4096 full-faulted fake-block; --update)" >&2; exit 2 ;;
    esac
done
[ ${#runs[@]} -gt 0 ] || runs=(full-512 full-4096 full-faulted fake-block)

command -v iscsi-test-cu >/dev/null || {
    echo "iscsi-conformance: iscsi-test-cu not found (apt-get install libiscsi-bin)" >&2
    exit 2
}
cargo build --release -q -p dkraid-testbed --bin dkraid-sim
sim=target/release/dkraid-sim
out=target/iscsi-conformance
mkdir -p "$out"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

boot_args() {
    case "$1" in
        full-512) echo "--stage full" ;;
        full-4096) echo "--stage full --drives 6x2GiB --volume raid5:0-4:block=4096 --spare 5" ;;
        full-faulted) echo "--stage full --fail-drive 2:50 --fault-span 256MiB" ;;
        fake-block) echo "--stage fake-block" ;;
    esac
}

families() {
    case "$1" in
        full-512) echo "SCSI iSCSI" ;;
        *) echo "SCSI" ;;
    esac
}

# One run: boot, wait for the listener, run the families, stop the target (SIGINT: it prints
# its report), classify.
one() {
    local run=$1 port=""
    # Port 0: the system picks a free one (a fixed port collides with any other run on the
    # machine); the target prints the one it got.
    # shellcheck disable=SC2046
    "$sim" iscsi --listen "127.0.0.1:0" $(boot_args "$run") >"$out/$run.report" 2>"$out/$run.sim.err" &
    local sim_pid=$!
    for _ in $(seq 1 200); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$out/$run.sim.err" 2>/dev/null | head -n1)
        [ -n "$port" ] && break
        kill -0 "$sim_pid" 2>/dev/null || { echo "$run: dkraid-sim exited:" >&2; cat "$out/$run.sim.err" >&2; return 1; }
        sleep 0.1
    done
    [ -n "$port" ] || { echo "$run: dkraid-sim never said where it listens" >&2; return 1; }
    local url="iscsi://127.0.0.1:$port/iqn.2025-01.org.dkraid:sim.t0/0"
    : >"$out/$run.results"
    for f in $(families "$run"); do
        # -d: the destructive (write) tests too; the default verbose output is what we parse.
        iscsi-test-cu -d --test="$f" "$url" >"$out/$run.$f.log" 2>&1 || true
        awk -v family="$f" -f tests/iscsi/classify.awk "$out/$run.$f.log" >>"$out/$run.results"
    done
    kill -INT "$sim_pid"
    wait "$sim_pid" || echo "$run: dkraid-sim exited $? (report in $out/$run.report)" >>"$out/$run.results"
}

for run in "${runs[@]}"; do
    one "$run" &
    pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
pids=()

for run in "${runs[@]}"; do
    expected=tests/iscsi/expected-$run.txt
    got=$out/$run.results
    summary=$(awk '{n[$2]++} END {printf "%d passed, %d skipped, %d FAILED", n["passed"], n["skipped"], n["FAILED"]}' "$got")
    echo "$run: $summary ($(grep -c . "$got") tests; logs in $out/$run.*)"
    if [ "$update" = 1 ]; then
        cp "$got" "$expected"
    elif ! diff -u "$expected" "$got"; then
        echo "iscsi-conformance: $run differs from $expected (re-run with --update if the change is intended)" >&2
        status=1
    fi
done
exit $status
