//! Bring-up stages 2 (`single-io`) and 3 (`full`) end to end: the real dext and core against the
//! simulated RAID controller (`docs/CONTROLLER.md`) and its RAID engine (`docs/RAID.md`).

mod common;

use common::{json_of, logs, sim};
use serde_json::Value;

fn boot_json(args: &[&str]) -> Value {
    let mut all = vec!["boot", "--json"];
    all.extend_from_slice(args);
    let out = sim(&all);
    let report = json_of(&out);
    assert!(
        out.status.success(),
        "boot {args:?} failed: {}",
        serde_json::to_string_pretty(&report["violations"]).unwrap()
    );
    report
}

#[test]
fn stage_2_reads_lba_0_through_the_firmware_after_one_unit_attention() {
    let report = boot_json(&["--stage", "single-io"]);
    assert_eq!(report["violations"], Value::Array(vec![]));
    assert_eq!(report["firmware_state"], "OPERATIONAL");
    let logs = logs(&report);
    let ua = logs.iter().position(|l| l.contains("single-io: UNIT ATTENTION 29/00"));
    let good =
        logs.iter().position(|l| l.contains("single-io: READ(10) of LBA 0 on volume 0: GOOD"));
    assert!(ua.is_some() && good.is_some() && ua < good, "the retry, then GOOD: {logs:#?}");
    assert_eq!(
        logs.iter().filter(|l| l.contains("single-io: READ(10)")).count(),
        1,
        "exactly one result"
    );
    assert_eq!(report["targets"], Value::Array(vec![]), "stage 2 creates no target");
    assert_eq!(report["disks"], Value::Array(vec![]));
}

#[test]
fn an_early_ready_interrupt_is_not_a_failure() {
    // The device signals READY while the kernel is still mapping tasks; the core defers it.
    let report = boot_json(&["--stage", "single-io"]);
    let logs = logs(&report);
    assert!(
        !logs.iter().any(|l| l.contains("failed") || l.contains("CallOutOfOrder")),
        "no failure logged: {logs:#?}"
    );
}

#[test]
fn stage_3_exposes_the_default_raid_5_volume_as_a_disk() {
    let report = boot_json(&["--stage", "full"]);
    assert_eq!(report["violations"], Value::Array(vec![]));
    assert_eq!(report["targets"], serde_json::json!([0]));
    let volumes = report["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0]["level"], "RAID5");
    assert_eq!(volumes[0]["state"], "Optimal");
    let disks = report["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0]["capacity_bytes"], 8u64 << 30, "4 data drives of 2 GiB");
    assert_eq!(disks[0]["block_size"], 512);
    assert_eq!(disks[0]["product"], "Virtual Volume");
    assert_eq!(disks[0]["attached"], true);
}

#[test]
fn stage_3_makes_one_target_per_volume_with_its_geometry() {
    let report = boot_json(&[
        "--stage",
        "full",
        "--drives",
        "4x1GiB,2x2GiB",
        "--volume",
        "raid1:0,1",
        "--volume",
        "raid0:2,3:strip=128k",
        "--volume",
        "raid1:4,5:block=4096",
    ]);
    assert_eq!(report["violations"], Value::Array(vec![]));
    assert_eq!(report["targets"], serde_json::json!([0, 1, 2]));
    let disks = report["disks"].as_array().unwrap();
    let geometry: Vec<(u64, u64, u64)> = disks
        .iter()
        .map(|d| {
            (
                d["target"].as_u64().unwrap(),
                d["capacity_bytes"].as_u64().unwrap(),
                d["block_size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(geometry, [(0, 1 << 30, 512), (1, 2 << 30, 512), (2, 2 << 30, 4096)]);
}

#[test]
fn stage_3_with_no_volumes_has_no_targets() {
    let report = boot_json(&["--stage", "full", "--drives", "3x1GiB"]);
    assert_eq!(report["violations"], Value::Array(vec![]));
    assert_eq!(report["targets"], Value::Array(vec![]));
    assert_eq!(report["firmware_state"], "OPERATIONAL");
}

#[test]
fn queue_depth_8_writes_reuse_task_ids_without_a_slot_error() {
    // The kernel may reuse a task ID as soon as it has the completion, from another queue: the
    // dext frees the slot first. (Freed after, this ran into Completed -> Submitted.)
    let out = sim(&[
        "io", "--stage", "full", "--write", "16MiB", "--block", "4KiB", "--qd", "8", "--json",
    ]);
    let report = json_of(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["violations"], Value::Array(vec![]));
    assert_eq!(report["errors"], 0, "first error: {}", report["first_error"]);
    assert_eq!(report["ios"], 4096);
    assert_eq!(report["bytes"], 16u64 << 20);
}

#[test]
fn a_raid_10_volume_takes_a_read_workload() {
    let out = sim(&[
        "io",
        "--stage",
        "full",
        "--drives",
        "4x1GiB",
        "--volume",
        "raid10:0-3",
        "--read",
        "64MiB",
        "--block",
        "1MiB",
        "--qd",
        "4",
        "--json",
    ]);
    let report = json_of(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["violations"], Value::Array(vec![]));
    assert_eq!(report["errors"], 0, "first error: {}", report["first_error"]);
    assert_eq!(report["ios"], 64);
}

#[test]
fn stages_2_and_3_are_deterministic() {
    for stage in ["single-io", "full"] {
        let a = boot_json(&["--stage", stage, "--seed", "7"]);
        let b = boot_json(&["--stage", stage, "--seed", "7"]);
        assert_eq!(a["interleaving"], b["interleaving"], "stage {stage}");
        assert_eq!(a["timeline"], b["timeline"], "stage {stage}");
    }
}

#[test]
fn every_seed_boots_stage_3_cleanly() {
    for seed in 1..=8 {
        let seed = seed.to_string();
        let report = boot_json(&["--stage", "full", "--seed", &seed]);
        assert_eq!(report["violations"], Value::Array(vec![]), "seed {seed}");
        assert_eq!(report["targets"], serde_json::json!([0]), "seed {seed}");
    }
}

#[test]
fn a_bad_array_spec_is_a_usage_error_naming_the_token() {
    for (args, needle) in [
        (vec!["--volume", "raid7:0-2"], "unknown RAID level \"raid7\""),
        (vec!["--volume", "raid5:0,1"], "RAID 5 needs at least 3 drives"),
        (vec!["--drives", "2x1GiB", "--volume", "raid1:0,4"], "drive 4 does not exist"),
        (vec!["--volume", "raid5:0-4:strip=3000"], "strip"),
    ] {
        let mut all = vec!["boot", "--stage", "full"];
        all.extend_from_slice(&args);
        let out = sim(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = sim(&["boot", "--stage", "fake-block", "--drives", "2x1GiB"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not use"));
}
