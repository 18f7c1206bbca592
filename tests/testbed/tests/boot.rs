//! Scenario tests: `dkraid-sim` booting the real dext sources and core on the simulated Mac,
//! end to end, as a user runs it. Each broken variant must be diagnosed exactly.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dkraid-sim")).args(args).output().expect("run dkraid-sim")
}

fn boot_json(args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["boot", "--json"];
    all.extend_from_slice(args);
    let out = sim(&all);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    (out.status.code().unwrap_or(-1), json, stdout)
}

fn violations(json: &Value) -> Vec<&Value> {
    json["violations"].as_array().expect("violations is a list").iter().collect()
}

#[test]
fn stage_0_boots_clean() {
    let (code, json, _) = boot_json(&["--stage", "pipeline"]);
    assert_eq!(code, 0, "{json:#}");
    assert!(violations(&json).is_empty(), "{json:#}");
    assert_eq!(json["stage"], "pipeline");
    assert_eq!(json["registered"], true);
    assert_eq!(json["tasks_mapped"], 128);
    assert_eq!(json["targets"], serde_json::json!([]));
    assert_eq!(
        json["queues_registered"],
        serde_json::json!(["AuxiliaryQueue", "Default", "InterruptQueue", "TargetQueue"])
    );
    // The kernel drove the start in DRIVERKIT.md §1's order, on Default.
    let calls: Vec<&str> = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["queue"] == "Default")
        .map(|e| e["call"].as_str().unwrap())
        .filter(|c| !matches!(*c, "UserGetDMASpecification" | "UserMapHBAData"))
        .collect();
    assert_eq!(
        calls,
        [
            "UserInitializeController",
            "UserReportInitiatorIdentifier",
            "UserReportHighestSupportedDeviceID",
            "UserReportMaximumTaskCount",
            "UserMapBundledParallelTaskCommandAndResponseBuffers",
            "UserStartController",
            "UserDoesHBAPerformDeviceManagement",
            "Start",
            "Stop",
        ]
    );
    let maps =
        json["timeline"].as_array().unwrap().iter().filter(|e| e["call"] == "UserMapHBAData");
    assert_eq!(maps.count(), 128, "exactly N UserMapHBAData calls");
    // Target work ran on the private queue.
    assert!(json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["queue"] == "TargetQueue" && e["call"] == "TimerOccurred"));
}

#[test]
fn stage_0_boots_clean_with_4k_pages() {
    let (code, json, _) = boot_json(&["--page-size", "4k"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["page_size"], 4096);
    assert_eq!(json["tasks_mapped"], 128);
}

#[test]
fn the_human_report_has_a_timeline_and_a_summary() {
    let out = sim(&["boot", "--stage", "pipeline"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "virtual time",
        "UserInitializeController",
        "kIOReturnSuccess (0x00000000)",
        "seed               1",
        "stage              pipeline",
        "tasks mapped       128",
        "queues registered  AuxiliaryQueue, Default, InterruptQueue, TargetQueue",
        "targets            none",
        "violations         0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn one_seed_one_run_and_other_seeds_interleave_differently() {
    let (_, a, a_text) = boot_json(&["--seed", "7"]);
    let (_, _, b_text) = boot_json(&["--seed", "7"]);
    assert_eq!(a_text, b_text, "two runs with one seed must print byte-identical JSON");
    let fingerprints: std::collections::BTreeSet<String> = (1..=4)
        .map(|seed| boot_json(&["--seed", &seed.to_string()]).1["interleaving"].to_string())
        .collect();
    assert!(fingerprints.len() > 1, "seeds 1..=4 all interleaved the same way: {fingerprints:?}");
    assert_eq!(a["seed"], 7);
}

#[test]
fn stage_0_boots_in_under_five_seconds() {
    let start = Instant::now();
    let (code, _, _) = boot_json(&[]);
    assert_eq!(code, 0);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
}

#[test]
fn trace_out_writes_chrome_trace_events() {
    let path = std::env::temp_dir().join(format!("dkraid-trace-{}.json", std::process::id()));
    let out = sim(&["boot", "--trace-out", path.to_str().unwrap()]);
    assert!(out.status.success());
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e["ph"] == "X" && e["name"] == "UserInitializeController"));
    let tracks: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert!(tracks.contains(&"Default") && tracks.contains(&"TargetQueue"), "{tracks:?}");
    std::fs::remove_file(path).ok();
}

/// Each variant: exit 1 and exactly this diagnosis (rule, queue, call, values, text).
struct Expect {
    variant: &'static str,
    rule: &'static str,
    queue: &'static str,
    call: &'static str,
    values: &'static str,
    message: &'static str,
}

const EXPECTED: &[Expect] = &[
    Expect {
        variant: "queue-not-created",
        rule: "NullDispatchQueue",
        queue: "Default",
        call: "Start",
        values: "name=\"TargetQueue\" queue=NULL",
        message: "was passed a NULL queue",
    },
    Expect {
        variant: "undeclared-queue",
        rule: "UndeclaredQueueName",
        queue: "Default",
        call: "Start",
        values: "name=\"IOQueue\" result=kIOReturnBadArgument (0xe00002c2)",
        message: "no method of DkRaidController or its superclasses is declared QUEUENAME(IOQueue)",
    },
    Expect {
        variant: "blocking-init",
        rule: "RegistryBusyTimeout",
        queue: "Default",
        call: "UserInitializeController",
        values: "timeout=60s Default is in Start > UserInitializeController",
        message: "registry stayed busy for 60 s",
    },
    Expect {
        variant: "create-on-default",
        rule: "Deadlock",
        queue: "Default",
        call: "UserCreateTargetForID",
        values: "also blocked: kernel waits in Start for Default",
        message: "Default waits in UserCreateTargetForID for AuxiliaryQueue; AuxiliaryQueue waits \
                  in UserInitializeTargetForID for Default",
    },
    Expect {
        variant: "reentrant-create",
        rule: "ReentrantTargetCreate",
        queue: "Default",
        call: "UserInitializeTargetForID",
        values: "target=1 in_flight=0 from TargetQueue result=kIOReturnNotReady (0xe00002d8)",
        message: "fails with kIOReturnNotReady (0xe00002d8)",
    },
    Expect {
        variant: "zero-task-id",
        rule: "ZeroTaskId",
        queue: "Default",
        call: "Start",
        values: "call=1 uniqueTaskID=0",
        message: "returned task ID 0",
    },
    Expect {
        variant: "duplicate-task-id",
        rule: "DuplicateTaskId",
        queue: "Default",
        call: "Start",
        values: "call=3 uniqueTaskID=1",
        message: "returned task ID 1 a second time",
    },
    Expect {
        variant: "bad-response-version",
        rule: "BadResponseVersion",
        queue: "Default",
        call: "UserProcessParallelTask",
        values: "task=1 version=2",
        message: "silently drops the rest, so the I/O never completes",
    },
    Expect {
        variant: "missing-constraint",
        rule: "MissingHbaConstraint",
        queue: "Default",
        call: "Start",
        values: "missing=[kIOMinimumHBADataAlignmentMaskKey]",
        message: "kernel panic",
    },
    Expect {
        variant: "deref-iova",
        rule: "CpuDereferencedIova",
        queue: "Default",
        call: "UserMapHBAData",
        values: "address=0x",
        message: "a device address (IOVA) from PrepareForDMA",
    },
    Expect {
        variant: "fixed-4k-pages",
        rule: "SubPageDmaFrame",
        queue: "Default",
        call: "UserMapHBAData",
        values: "capacity=4096 alignment=4096 IOVMPageSize=16384",
        message: "Size and align per-task memory with IOVMPageSize",
    },
    Expect {
        variant: "ticks-as-nanoseconds",
        rule: "MachTicksWithoutTimebase",
        queue: "InterruptQueue",
        call: "TimerOccurred",
        values: "clock=kIOTimerClockMachAbsoluteTime deadline=",
        message: "the dext never called mach_timebase_info: on this Mac a tick is 125/3 ns",
    },
    Expect {
        variant: "seed-device-management",
        rule: "UserQueryFailed",
        queue: "Default",
        call: "Start",
        values: "result=IOReturn(0x00000001) (0x00000001) written=false",
        message: "goes on with its default (false: the kernel itself creates and probes",
    },
    Expect {
        variant: "short-inquiry",
        rule: "ProbeShortInquiry",
        queue: "AuxiliaryQueue",
        call: "UserCreateTargetForID",
        values: "step=2 allocation=6 transferred=5",
        message: "INQUIRY with allocation length 6 must transfer exactly 6 bytes",
    },
    Expect {
        variant: "inquiry-length-changes",
        rule: "ProbeInquiryLengthChanged",
        queue: "AuxiliaryQueue",
        call: "UserCreateTargetForID",
        values: "step=2 with_6=31 with_36=91",
        message: "truncate the data, never the field",
    },
    Expect {
        variant: "short-mode-sense",
        rule: "ProbeModeSenseUnderrun",
        queue: "IOSCSIBlockCommandsDevice",
        call: "IOSCSIBlockCommandsDevice::start",
        values: "step=7 requested=32 transferred=30",
        message: "the transferred count must equal the requested count",
    },
    Expect {
        variant: "never-ready",
        rule: "ProbeNeverReady",
        queue: "IOSCSIBlockCommandsDevice",
        call: "IOSCSIBlockCommandsDevice::start",
        values: "step=6",
        message: "never became ready",
    },
    Expect {
        variant: "check-condition-without-sense",
        rule: "CheckConditionWithoutSense",
        queue: "Default",
        call: "UserProcessParallelTask",
        values: "task=1 sense_length=0 response_code=0x00",
        message: "reported UserDoesHBAPerformAutoSense = true",
    },
    Expect {
        variant: "late-slot-free",
        rule: "TaskIdReusedTooSoon",
        queue: "AuxiliaryQueue",
        call: "UserCreateTargetForID",
        values: "task=1",
        message: "free the task's state before completing it",
    },
];

/// Variants whose fault is a race the scheduler exposes only in some interleavings: the seed
/// that shows it. `late-slot-free` needs the kernel to reuse task 1 between the completion and
/// the slot's release; since a service pass takes the core lock to arm the target timer, seed 1
/// no longer interleaves so (seeds 2, 5, 6, 8-11 of the first 12 do).
const SEEDS: &[(&str, &str)] = &[("late-slot-free", "2")];

fn check_variant(e: &Expect) {
    let stage = dkraid_testbed::variants::find(e.variant).expect("a listed variant").stage;
    let seed = SEEDS.iter().find(|(v, _)| *v == e.variant).map_or("1", |(_, s)| *s);
    let (code, json, _) = boot_json(&["--variant", e.variant, "--stage", stage, "--seed", seed]);
    assert_eq!(code, 1, "{}: a broken variant must fail the boot: {json:#}", e.variant);
    assert_eq!(json["variant"], e.variant);
    let found = violations(&json);
    let v = found
        .iter()
        .find(|v| v["rule"] == e.rule)
        .unwrap_or_else(|| panic!("{}: no {} in {found:#?}", e.variant, e.rule));
    assert_eq!(v["queue"], e.queue, "{}: {v:#}", e.variant);
    assert_eq!(v["call"], e.call, "{}: {v:#}", e.variant);
    assert!(v["values"].as_str().unwrap().starts_with(e.values), "{}: {v:#}", e.variant);
    assert!(v["message"].as_str().unwrap().contains(e.message), "{}: {v:#}", e.variant);
    let section = v["section"].as_str().unwrap();
    assert!(
        section.starts_with("DRIVERKIT.md §")
            || section.starts_with("docs/DRIVERKIT-RULES.md §")
            || section.starts_with("SCSI.md"),
        "{v:#}"
    );
}

#[test]
fn every_variant_is_listed_and_tested() {
    let out = sim(&["variants"]);
    let text = String::from_utf8(out.stdout).unwrap();
    // Variants that need more than a boot (a scenario in brackets) are tested where that
    // scenario runs (tests/admin.rs).
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| !l.ends_with(']'))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let tested: Vec<&str> = EXPECTED.iter().map(|e| e.variant).collect();
    assert_eq!(listed, tested);
    for e in EXPECTED {
        assert!(text.contains(&format!("(caught as {})", e.rule)), "{text}");
    }
}

macro_rules! variant_tests {
    ($($name:ident => $index:expr,)*) => {
        $(
            #[test]
            fn $name() {
                check_variant(&EXPECTED[$index]);
            }
        )*
    };
}

variant_tests! {
    variant_queue_not_created => 0,
    variant_undeclared_queue => 1,
    variant_blocking_init => 2,
    variant_create_on_default => 3,
    variant_reentrant_create => 4,
    variant_zero_task_id => 5,
    variant_duplicate_task_id => 6,
    variant_bad_response_version => 7,
    variant_missing_constraint => 8,
    variant_deref_iova => 9,
    variant_fixed_4k_pages => 10,
    variant_ticks_as_nanoseconds => 11,
    variant_seed_device_management => 12,
    variant_short_inquiry => 13,
    variant_inquiry_length_changes => 14,
    variant_short_mode_sense => 15,
    variant_never_ready => 16,
    variant_check_condition_without_sense => 17,
    variant_late_slot_free => 18,
}

#[test]
fn the_bad_response_version_hang_is_also_reported_as_a_stuck_create() {
    let (_, json, _) = boot_json(&["--variant", "bad-response-version"]);
    let deadlock = violations(&json).into_iter().find(|v| v["rule"] == "Deadlock").unwrap();
    assert_eq!(
        deadlock["message"],
        "no simulated thread can run: TargetQueue waits in UserCreateTargetForID for \
         AuxiliaryQueue; AuxiliaryQueue waits in UserProcessParallelTask for the completion of \
         task 1 (target 0)"
    );
}

#[test]
fn bad_arguments_are_named() {
    let out = sim(&["boot", "--variant", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no variant \"nope\"; valid variants are queue-not-created"), "{err}");
    let out = sim(&["boot", "--stage", "stage1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("valid stages are pipeline, fake-block, single-io, full"), "{err}");
    let out = sim(&["boot", "--stage", "pipeline", "--volume", "raid1:0,1"]);
    assert_eq!(out.status.code(), Some(2), "an array for a stage without the controller");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("which stage pipeline (from --stage) does not use"), "{err}");
}
