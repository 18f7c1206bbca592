//! Stage 3 under fire: `dkraid-sim io --verify` (write a checksummed pattern, read it back,
//! report every mismatch by LBA) while the simulated controller fails a drive, resets itself,
//! stalls, drops replies, writes garbage into the reply ring, or gains and loses a volume.
//! Every run must end with zero mismatches, zero errors and no DriverKit violation.

mod common;

use common::{disks, json_of, logs, sim};
use serde_json::Value;

/// `io --stage full --verify SIZE --json` plus `extra`; asserts the run was clean.
fn verify(size: &str, extra: &[&str]) -> Value {
    let mut args = vec!["io", "--stage", "full", "--verify", size, "--json"];
    args.extend_from_slice(extra);
    let out = sim(&args);
    let r = json_of(&out);
    assert!(out.status.success(), "{args:?}: {r:#}");
    assert_eq!(r["violations"], Value::Array(vec![]), "{args:?}");
    assert_eq!(r["errors"], 0, "{args:?}: first error {}", r["first_error"]);
    assert_eq!(r["mismatches"], 0, "{args:?}: {:#}", r["mismatch_list"]);
    r
}

fn fault_results(r: &Value) -> Vec<String> {
    r["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}: {}", f["fault"].as_str().unwrap(), f["result"].as_str().unwrap()))
        .collect()
}

#[test]
fn verify_reads_back_exactly_what_it_wrote() {
    let r = verify("16MiB", &["--block", "64KiB", "--qd", "8"]);
    assert_eq!(r["mode"], "verify");
    assert_eq!(r["verified_blocks"], (16u64 << 20) / 512, "every block checked");
    assert_eq!(r["ios"], 2 * 256, "written, then read");
    assert_eq!(r["retries"], 0);
}

#[test]
fn verify_survives_a_drive_failure_and_the_rebuild_onto_the_spare() {
    // Write-through, so every acknowledged block is on the drives, not only in the cache.
    let r = verify(
        "16MiB",
        &[
            "--volume",
            "raid5:0-4:cache=wt",
            "--spare",
            "5",
            "--block",
            "64KiB",
            "--qd",
            "8",
            "--fail-drive",
            "2:30",
        ],
    );
    assert_eq!(fault_results(&r), ["fail drive 2: failed"]);
    let v = &r["volumes"][0];
    assert_eq!((v["state"].as_str(), v["dirty_bytes"].as_u64()), (Some("Optimal"), Some(0)));
    assert_eq!(v["drives"], serde_json::json!([0, 1, 5, 3, 4]), "the spare took drive 2's slot");
}

#[test]
fn verify_reads_a_degraded_raid_5_through_parity() {
    let r = verify(
        "16MiB",
        &[
            "--volume",
            "raid5:0-4:cache=wt",
            "--block",
            "64KiB",
            "--qd",
            "8",
            "--fail-drive",
            "1:10",
        ],
    );
    assert_eq!(r["volumes"][0]["state"], "Degraded", "no spare: it stays degraded");
}

#[test]
fn verify_survives_a_controller_reset() {
    let r = verify("8MiB", &["--block", "64KiB", "--qd", "8", "--reset-at", "40"]);
    assert_eq!(fault_results(&r), ["controller reset: RESET rung by the device itself"]);
    assert!(r["retries"].as_u64().unwrap() > 0, "the dropped I/Os were retried");
}

#[test]
fn verify_survives_a_firmware_stall_longer_than_the_task_timeout() {
    // 40 s of silence against the kernel's 30 s task timeout: aborts, then a reset.
    let r = verify("4MiB", &["--block", "64KiB", "--qd", "4", "--stall-firmware", "40000:50"]);
    assert_eq!(fault_results(&r), ["firmware stall 40000 ms: stalled"]);
    assert!(r["retries"].as_u64().unwrap() > 0, "the timed-out I/Os were retried");
}

/// When the first "task N timed out" line came, relative to the stall's start.
fn timeout_after_stall_ns(r: &Value) -> u64 {
    let stall_at = r["faults"][0]["virtual_ns"].as_u64().unwrap();
    let timed_out = r["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["message"].as_str().unwrap_or("").contains("timed out"))
        .unwrap_or_else(|| panic!("no task timed out during a 40 s stall: {:#}", r["logs"]));
    timed_out["time_ns"].as_u64().unwrap() - stall_at
}

#[test]
fn the_30_s_task_timeout_fires_after_30_s_on_apple_silicon_and_intel_ticks() {
    // mach_absolute_time counts 24 MHz ticks on Apple silicon (125/3 ns): a driver that takes
    // them for nanoseconds times out 41.7x late, after the 40 s stall is long over.
    for timebase in ["apple-silicon", "intel"] {
        let r = verify(
            "4MiB",
            &[
                "--block",
                "64KiB",
                "--qd",
                "4",
                "--stall-firmware",
                "40000:50",
                "--timebase",
                timebase,
            ],
        );
        let after = timeout_after_stall_ns(&r);
        assert!(
            (30_000_000_000..30_500_000_000).contains(&after),
            "{timebase}: the task timed out {after} ns after the stall began, not 30 s"
        );
        assert_eq!(r["timebase"].as_str().unwrap().split(' ').next(), Some(timebase));
    }
}

#[test]
fn verify_survives_dropped_replies() {
    let r = verify("4MiB", &["--block", "64KiB", "--qd", "4", "--drop-replies", "3"]);
    assert!(r["retries"].as_u64().unwrap() > 0);
}

#[test]
fn garbage_in_the_reply_ring_completes_no_task_wrongly_or_twice() {
    let r = verify("8MiB", &["--block", "16KiB", "--qd", "16", "--garbage-replies", "512:50"]);
    assert_eq!(fault_results(&r), ["512 garbage replies: 512 posted"]);
    // Each bad entry is named as it is dropped (the ring holds fewer than 512 entries, so
    // some garbage overwrote genuine replies too: those tasks time out and are retried).
    let logs = logs(&r);
    assert!(logs.iter().any(|l| l.contains("reply dropped: CorruptReply")), "{logs:#?}");
    assert!(!logs.iter().any(|l| l.contains("InvalidSlotTransition")), "{logs:#?}");
    // ... up to 8 per interrupt pass; the rest are summed up, so 512 bad entries do not make
    // 512 log lines.
    let named = logs.iter().filter(|l| l.contains("reply dropped:")).count();
    assert!(named < 256, "{named} dropped replies named one by one");
    assert!(logs.iter().any(|l| l.contains("more replies dropped in this pass")), "{logs:#?}");
}

#[test]
fn a_volume_created_and_deleted_at_runtime_comes_and_goes_as_a_target() {
    let out = sim(&[
        "io",
        "--stage",
        "full",
        "--drives",
        "8x1GiB",
        "--volume",
        "raid5:0-4",
        "--spare",
        "5",
        "--verify",
        "8MiB",
        "--block",
        "64KiB",
        "--qd",
        "4",
        "--create-volume",
        "raid1:6,7@20",
        "--delete-volume",
        "1:70",
        "--json",
    ]);
    let r = json_of(&out);
    assert!(out.status.success(), "{r:#}");
    assert_eq!(r["violations"], Value::Array(vec![]));
    assert_eq!((r["errors"].as_u64(), r["mismatches"].as_u64()), (Some(0), Some(0)));
    assert_eq!(
        fault_results(&r),
        [
            "create Raid1 volume on drives [6, 7]: volume 1 created",
            "delete volume 1: volume 1 deleted"
        ]
    );
    // Target 1 came (probed by the disk stack as a disk) and went (its disk detached).
    assert_eq!(r["targets"], serde_json::json!([0]), "only the RAID 5 is left");
    assert_eq!(disks(&r), [(0, true), (1, false)]);
    let logs = logs(&r);
    assert!(logs.iter().any(|l| l == "dkraid: initialize target 1"), "{logs:#?}");
    assert!(
        !logs.iter().any(|l| l.contains("failed")),
        "the event log's history (volume 0 created) is not target work: {logs:#?}"
    );
}

#[test]
fn verify_catches_writes_the_controller_lost() {
    // Not a driver fault: the controller drops its write-back cache unflushed. The verify
    // workload exists to see this, block by block.
    let out = sim(&[
        "io",
        "--stage",
        "full",
        "--verify",
        "4MiB",
        "--block",
        "64KiB",
        "--qd",
        "4",
        "--lose-cache",
        "40",
        "--json",
    ]);
    let r = json_of(&out);
    let mismatches = r["mismatches"].as_u64().unwrap();
    assert!(mismatches > 0, "{r:#}");
    assert_eq!(r["errors"], 0, "the reads themselves succeed");
    let list = r["mismatch_list"].as_array().unwrap();
    assert_eq!(list.len() as u64, mismatches);
    assert!(list.iter().all(|m| m["found"] == "zeroes"), "{list:#?}");
    assert_eq!(out.status.code(), Some(1), "mismatches fail the command");
}

#[test]
fn fault_flags_are_checked() {
    for (args, needle) in [
        (vec!["--fail-drive", "2"], "DRIVE:PERCENT"),
        (vec!["--reset-at", "150"], "not a percentage"),
        (vec!["--create-volume", "raid1:6,7"], "SPEC@PERCENT"),
    ] {
        let mut all = vec!["io", "--stage", "full", "--verify", "1MiB"];
        all.extend_from_slice(&args);
        let out = sim(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = sim(&["io", "--stage", "fake-block", "--verify", "1MiB", "--reset-at", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use --stage full"));
}

#[test]
fn the_kernel_aborting_a_task_through_the_dext_loses_nothing() {
    // UserAbortTaskRequest for the newest outstanding task while the firmware is held up, so
    // the task is still queued in the firmware and really aborted; the host retries it.
    let r = verify(
        "8MiB",
        &["--block", "64KiB", "--qd", "8", "--stall-firmware", "20:30", "--abort-task", "30"],
    );
    let results = fault_results(&r);
    assert!(results[1].starts_with("ABORT TASK: tag "), "{results:?}");
    assert!(results[1].ends_with(": FUNCTION_COMPLETE"), "{results:?}");
    let logs = logs(&r);
    assert!(
        logs.iter().any(|l| l.contains("task management ABORT TASK on target 0")
            && l.ends_with("1 task(s) aborting")),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|l| l.ends_with("aborting it (task management)")), "{logs:#?}");
    assert_eq!(r["retries"], 1, "the aborted task, retried once");
}

#[test]
fn a_target_reset_aborts_every_outstanding_task_of_the_target() {
    let r = verify(
        "8MiB",
        &["--block", "64KiB", "--qd", "8", "--stall-firmware", "20:60", "--target-reset", "0:60"],
    );
    assert_eq!(fault_results(&r)[1], "TARGET RESET of target 0: FUNCTION_COMPLETE");
    let logs = logs(&r);
    let line = logs.iter().find(|l| l.contains("task management TARGET RESET")).unwrap();
    assert!(line.ends_with("7 task(s) aborting"), "all but the I/O that triggered it: {line}");
    assert!(r["retries"].as_u64().unwrap() > 0, "an aborted task was retried");
}

#[test]
fn a_reset_during_a_firmware_stall_leaves_no_dma_behind() {
    // Dropped replies time out at 30 s while the firmware sleeps 35 s holding a request; the
    // driver's reset completes that request, the host unmaps its buffer, and the device must
    // not DMA for it when it wakes (it did: DmaOutsideMapping).
    let r = verify(
        "8MiB",
        &["--block", "16KiB", "--qd", "32", "--drop-replies", "5", "--stall-firmware", "35000:40"],
    );
    assert!(r["retries"].as_u64().unwrap() > 0);
}

#[test]
fn hot_plug_survives_a_controller_reset_during_the_new_disks_probe() {
    // Volume 1 appears, the controller resets while macOS probes it (its commands are retried),
    // then it is deleted: no probe violation, and no disk left attached for a gone target.
    let r = verify(
        "8MiB",
        &[
            "--drives",
            "8x1GiB",
            "--volume",
            "raid5:0-4",
            "--spare",
            "5",
            "--block",
            "16KiB",
            "--qd",
            "16",
            "--create-volume",
            "raid1:6,7@10",
            "--reset-at",
            "30",
            "--delete-volume",
            "1:50",
            "--fail-drive",
            "3:70",
        ],
    );
    assert_eq!(r["targets"], serde_json::json!([0]));
    assert_eq!(disks(&r), [(0, true), (1, false)]);
}

// Issue 18's reproducers: found by a random fault campaign, each failed before its fix.

#[test]
fn a_self_reset_that_leaves_the_request_ring_looking_full_is_detected_and_recovered() {
    // REQUEST_CONSUMER went back to 0 with the host's producer at ring_size-1: every I/O got
    // TASK SET FULL, nothing was outstanding to arm a timer, and 532 I/Os failed after 17.7 h.
    let r = verify("8MiB", &["--block", "16KiB", "--qd", "1", "--reset-at", "48"]);
    assert!(logs(&r).iter().any(|l| l.contains("the request ring is full")), "{:#}", r["logs"]);
    assert!(r["virtual_ns"].as_u64().unwrap() < 10_000_000_000, "recovered at once");
}

#[test]
fn a_bring_up_slower_than_one_init_timeout_is_retried_with_back_off() {
    // A 40 s stall outlives one 10 s INIT_TIMEOUT after the reset: the bring-up is retried
    // (1 s, 2 s, 4 s ...) instead of the controller failing for good.
    let cases: [&[&str]; 3] = [
        &[
            "--seed",
            "2398",
            "--drives",
            "8x1GiB",
            "--volume",
            "raid0:0-3:strip=128k",
            "--block",
            "1MiB",
            "--qd",
            "8",
            "--stall-firmware",
            "40000:14",
            "--target-reset",
            "0:34",
        ],
        &[
            "--seed",
            "9",
            "--drives",
            "8x1GiB",
            "--volume",
            "raid5:0-4:block=4096:strip=16k",
            "--spare",
            "5",
            "--block",
            "64KiB",
            "--qd",
            "2",
            "--reset-at",
            "44",
            "--fail-drive",
            "4:60",
            "--stall-firmware",
            "40000:43",
        ],
        &[
            "--seed",
            "2171",
            "--drives",
            "8x1GiB",
            "--volume",
            "raid1:0,1",
            "--spare",
            "7",
            "--block",
            "1MiB",
            "--qd",
            "16",
            "--abort-task",
            "25",
            "--stall-firmware",
            "40000:15",
        ],
    ];
    for (i, extra) in cases.iter().enumerate() {
        let size = if i == 2 { "8MiB" } else { "4MiB" };
        let r = verify(size, extra);
        let lines = logs(&r);
        assert!(lines.iter().any(|l| l.contains("bring-up attempt 1 of 8 failed")), "{extra:?}");
        assert!(!lines.iter().any(|l| l.contains("the controller is dead")), "{extra:?}");
    }
}

#[test]
fn a_controller_that_never_comes_back_is_declared_dead_and_fails_io_hard_and_fast() {
    // 15 minutes of silence: every bring-up attempt fails, then the controller is dead and
    // I/O gets HARDWARE ERROR 44/00 at once instead of BUSY for the host's 120 s retry window.
    let out = sim(&[
        "io",
        "--stage",
        "full",
        "--verify",
        "4MiB",
        "--block",
        "64KiB",
        "--qd",
        "4",
        "--stall-firmware",
        "900000:50",
        "--json",
    ]);
    let r = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "I/O failed");
    assert_eq!(r["violations"], Value::Array(vec![]), "{:#}", r["violations"]);
    let lines = r["logs"].as_array().unwrap();
    let dead = lines
        .iter()
        .find(|l| l["message"].as_str().unwrap().contains("the controller is dead"))
        .unwrap_or_else(|| panic!("never declared dead: {:#}", r["logs"]));
    assert!(dead["message"].as_str().unwrap().contains("bring-up failed 8 time(s)"), "{dead}");
    let dead_at = dead["time_ns"].as_u64().unwrap();
    // Every attempt was made: about 4.5 minutes of retries after the 30 s timeout and reset.
    assert!((150_000_000_000..300_000_000_000).contains(&dead_at), "dead at {dead_at} ns");
    // After that, what is left fails at once: no I/O waits out a retry window.
    assert!(r["virtual_ns"].as_u64().unwrap() < dead_at + 5_000_000_000, "{r:#}");
    assert!(r["errors"].as_u64().unwrap() > 0);
}
