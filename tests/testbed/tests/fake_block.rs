//! Bring-up stage 1 end to end: the macOS probe sequence, the fake block device's behaviour, the
//! `scsi` pass-through for each command of SCSI.md's set, and the `io` workload.

mod common;

use common::{json_of, sim};
use serde_json::Value;

/// The commands the kernel sent, in order, with how each ended.
fn probe_sequence(report: &Value) -> Vec<String> {
    report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["call"] == "UserProcessParallelTask")
        .map(|e| e["result"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_macos_probe_sequence_is_exact() {
    let out = sim(&["boot", "--stage", "fake-block", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report = json_of(&out);
    assert_eq!(
        probe_sequence(&report),
        [
            // 1. TEST UNIT READY: the power-on unit attention is a TASK_COMPLETE: present.
            "TEST UNIT READY: status 0x02, sense 6/29/00",
            // 2. INQUIRY 6, then ADDITIONAL LENGTH + 5.
            "INQUIRY: GOOD, 6 bytes",
            "INQUIRY: GOOD, 96 bytes",
            // 3. VPD 00h header then list, 80h and 83h each header then page.
            "INQUIRY VPD: GOOD, 4 bytes",
            "INQUIRY VPD: GOOD, 9 bytes",
            "INQUIRY VPD: GOOD, 4 bytes",
            "INQUIRY VPD: GOOD, 20 bytes",
            "INQUIRY VPD: GOOD, 4 bytes",
            "INQUIRY VPD: GOOD, 52 bytes",
            // 4. REPORT LUNS (VERSION >= 3), header then list.
            "REPORT LUNS: GOOD, 16 bytes",
            "REPORT LUNS: GOOD, 16 bytes",
            // 5. Per LUN: TEST UNIT READY, INQUIRY 36.
            "TEST UNIT READY: GOOD, 0 bytes",
            "INQUIRY: GOOD, 36 bytes",
            // The disk driver: identity, serial.
            "INQUIRY: GOOD, 96 bytes",
            "INQUIRY VPD: GOOD, 4 bytes",
            "INQUIRY VPD: GOOD, 20 bytes",
            // 6. Ready.
            "TEST UNIT READY: GOOD, 0 bytes",
            // 7. Caching page: header, then exactly the announced length; the 3Fh probe.
            "MODE SENSE(6): GOOD, 4 bytes",
            "MODE SENSE(6): GOOD, 32 bytes",
            "MODE SENSE(6): GOOD, 4 bytes",
            // 8. READ CAPACITY(10) only: 1 TiB of 512-byte blocks fits 32 bits.
            "READ CAPACITY(10): GOOD, 8 bytes",
            // 9. Geometry pages 03h/04h, DBD=1 then 0: not supported, refused by name.
            "MODE SENSE(10): status 0x02, sense 5/24/00",
            "MODE SENSE(10): status 0x02, sense 5/24/00",
            "MODE SENSE(10): status 0x02, sense 5/24/00",
            "MODE SENSE(10): status 0x02, sense 5/24/00",
            // 10. The partition map: the fake device fails every read.
            "READ(10): status 0x02, sense 3/11/00",
        ]
    );
    let disk = &report["disks"][0];
    assert_eq!(disk["vendor"], "DKRAID");
    assert_eq!(disk["product"], "Fake Block");
    assert_eq!(disk["capacity_bytes"], 1u64 << 40);
    assert_eq!(disk["block_size"], 512);
    assert_eq!(disk["write_cache"], true);
    assert_eq!(disk["attached"], true);
    assert!(disk["partition_scheme"]
        .as_str()
        .unwrap()
        .starts_with("failed: sense 3/11/00 at LBA 0"));
    assert_eq!(report["targets"], serde_json::json!([0]));
    assert!(report["violations"].as_array().unwrap().is_empty(), "{report:#}");
}

#[test]
fn read_capacity_16_only_when_required() {
    // A 4 TiB disk: READ CAPACITY(10) says FFFFFFFFh, VERSION is 6, so (16) follows.
    let plist = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Info.plist"))
        .unwrap()
        .replace("<integer>1099511627776</integer>", "<integer>4398046511104</integer>");
    let path = std::env::temp_dir().join(format!("dkraid-4tib-{}.plist", std::process::id()));
    std::fs::write(&path, plist).unwrap();
    let out =
        sim(&["boot", "--stage", "fake-block", "--json", "--personality", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    let report = json_of(&out);
    let seq = probe_sequence(&report);
    let rc10 = seq.iter().position(|c| c.starts_with("READ CAPACITY(10)")).unwrap();
    assert_eq!(seq[rc10 + 1], "READ CAPACITY(16): GOOD, 32 bytes");
    assert_eq!(report["disks"][0]["capacity_bytes"], 4u64 << 40);
}

#[test]
fn stage_1_disk_geometry_comes_from_the_personality() {
    let out = sim(&["boot", "--stage", "fake-block"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("disk               target 0 LUN 0: DKRAID Fake Block rev 0001"),
        "{text}"
    );
    assert!(
        text.contains("1099511627776 bytes (1024.00 GiB), 512-byte blocks, write cache enabled"),
        "{text}"
    );
    assert!(text.contains("partition scheme: failed: sense 3/11/00 at LBA 0"), "{text}");
}

fn scsi(cdb: &str, extra: &[&str]) -> Value {
    let mut args = vec!["scsi", "--stage", "fake-block", "--json", "--cdb", cdb];
    args.extend_from_slice(extra);
    let out = sim(&args);
    assert!(out.status.success(), "{cdb}: {}", String::from_utf8_lossy(&out.stderr));
    json_of(&out)
}

/// (status name, bytes, sense key/ASC/ASCQ) for one command.
fn check(what: &str, v: &Value, status: &str, bytes: u64, sense: Option<(u64, u64, u64)>) {
    assert_eq!(v["status"], status, "{what}: {v}");
    assert_eq!(v["bytes_transferred"], bytes, "{what}: {v}");
    match sense {
        Some((k, asc, ascq)) => {
            assert_eq!(
                (v["sense_key"].as_u64(), v["asc"].as_u64(), v["ascq"].as_u64()),
                (Some(k), Some(asc), Some(ascq)),
                "{what}: {v}"
            );
            assert_eq!(
                v["sense"].as_str().unwrap().len(),
                36,
                "{what}: 18 bytes of fixed-format sense"
            );
        }
        None => assert!(v.get("sense_key").is_none(), "{what}: {v}"),
    }
}

#[test]
fn pass_through_every_command() {
    let a = |n: &str| ["--alloc".to_string(), n.to_string()];
    type Sense = Option<(u64, u64, u64)>;
    type Case = (&'static str, &'static str, Vec<String>, &'static str, u64, Sense);
    let cases: Vec<Case> = vec![
        ("TEST UNIT READY", "00 00 00 00 00 00", vec![], "GOOD", 0, None),
        ("REQUEST SENSE", "03 00 00 00 12 00", a("18").to_vec(), "GOOD", 18, None),
        ("INQUIRY", "12 00 00 00 60 00", a("96").to_vec(), "GOOD", 96, None),
        ("INQUIRY VPD 00", "12 01 00 00 ff 00", a("255").to_vec(), "GOOD", 9, None),
        ("INQUIRY VPD 80", "12 01 80 00 ff 00", a("255").to_vec(), "GOOD", 20, None),
        ("INQUIRY VPD 83", "12 01 83 00 ff 00", a("255").to_vec(), "GOOD", 52, None),
        ("INQUIRY VPD B0", "12 01 b0 00 ff 00", a("255").to_vec(), "GOOD", 64, None),
        ("INQUIRY VPD B1", "12 01 b1 00 ff 00", a("255").to_vec(), "GOOD", 64, None),
        (
            "INQUIRY VPD B2 (no unmap)",
            "12 01 b2 00 ff 00",
            a("255").to_vec(),
            "CHECK CONDITION",
            0,
            Some((5, 0x24, 0)),
        ),
        ("READ CAPACITY(10)", "25 00 00 00 00 00 00 00 00 00", a("8").to_vec(), "GOOD", 8, None),
        (
            "READ CAPACITY(16)",
            "9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00",
            a("32").to_vec(),
            "GOOD",
            32,
            None,
        ),
        ("MODE SENSE(6) 08", "1a 00 08 00 ff 00", a("255").to_vec(), "GOOD", 32, None),
        ("MODE SENSE(6) 3F", "1a 00 3f 00 ff 00", a("255").to_vec(), "GOOD", 44, None),
        ("MODE SENSE(10) 0A", "5a 00 0a 00 00 00 00 00 ff 00", a("255").to_vec(), "GOOD", 28, None),
        ("MODE SENSE(6) changeable", "1a 08 48 00 ff 00", a("255").to_vec(), "GOOD", 24, None),
        (
            "READ(6)",
            "08 00 00 01 01 00",
            a("512").to_vec(),
            "CHECK CONDITION",
            0,
            Some((3, 0x11, 0)),
        ),
        (
            "READ(10)",
            "28 00 00 00 00 01 00 00 01 00",
            a("512").to_vec(),
            "CHECK CONDITION",
            0,
            Some((3, 0x11, 0)),
        ),
        (
            "READ(12)",
            "a8 00 00 00 00 01 00 00 00 01 00 00",
            a("512").to_vec(),
            "CHECK CONDITION",
            0,
            Some((3, 0x11, 0)),
        ),
        (
            "READ(16)",
            "88 00 00 00 00 00 00 00 00 01 00 00 00 01 00 00",
            a("512").to_vec(),
            "CHECK CONDITION",
            0,
            Some((3, 0x11, 0)),
        ),
        (
            "VERIFY(10)",
            "2f 00 00 00 00 01 00 00 01 00",
            vec![],
            "CHECK CONDITION",
            0,
            Some((3, 0x11, 0)),
        ),
        (
            "VERIFY(16)",
            "8f 00 00 00 00 00 00 00 00 01 00 00 00 01 00 00",
            vec![],
            "CHECK CONDITION",
            0,
            Some((3, 0x11, 0)),
        ),
        ("SYNCHRONIZE CACHE(10)", "35 00 00 00 00 00 00 00 00 00", vec![], "GOOD", 0, None),
        (
            "SYNCHRONIZE CACHE(16)",
            "91 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            vec![],
            "GOOD",
            0,
            None,
        ),
        ("START STOP UNIT", "1b 00 00 00 01 00", vec![], "GOOD", 0, None),
        ("PREVENT ALLOW MEDIUM REMOVAL", "1e 00 00 00 00 00", vec![], "GOOD", 0, None),
        ("REPORT LUNS", "a0 00 00 00 00 00 00 00 00 10 00 00", a("16").to_vec(), "GOOD", 16, None),
        (
            "UNMAP (not thin)",
            "42 00 00 00 00 00 00 00 18 00",
            vec![],
            "CHECK CONDITION",
            0,
            Some((5, 0x20, 0)),
        ),
        (
            // WRITE SAME is supported (fully provisioned); its UNMAP bit is not: byte 1 bit 3.
            "WRITE SAME(16) UNMAP (not thin)",
            "93 08 00 00 00 00 00 00 00 01 00 00 00 01 00 00",
            vec![],
            "CHECK CONDITION",
            0,
            Some((5, 0x24, 0)),
        ),
        (
            "WRITE SAME(16) NDOB (zeros; discarded)",
            "93 01 00 00 00 00 00 00 00 01 00 00 00 08 00 00",
            vec![],
            "GOOD",
            0,
            None,
        ),
        (
            "REPORT SUPPORTED OPERATION CODES, one command: WRITE(10)",
            "a3 0c 01 2a 00 00 00 00 00 20 00 00",
            a("32").to_vec(),
            "GOOD",
            14,
            None,
        ),
        ("PRE-FETCH(10)", "34 02 00 00 00 00 00 00 08 00", vec![], "GOOD", 0, None),
        (
            "VERIFY(12): the medium cannot be read",
            "af 00 00 00 00 07 00 00 00 01 00 00",
            vec![],
            "CHECK CONDITION",
            0,
            Some((3, 0x11, 0)),
        ),
        (
            "invalid opcode",
            "c1 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            vec![],
            "CHECK CONDITION",
            0,
            Some((5, 0x20, 0)),
        ),
        (
            "LBA out of range",
            "28 00 ff ff ff f0 00 00 01 00",
            a("512").to_vec(),
            "CHECK CONDITION",
            0,
            Some((5, 0x21, 0)),
        ),
    ];
    for (what, cdb, extra, status, bytes, sense) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        check(what, &scsi(cdb, &extra), status, bytes, sense);
    }
}

#[test]
fn fake_block_writes_succeed_and_reads_carry_the_lba() {
    let block = std::env::temp_dir().join(format!("dkraid-block-{}", std::process::id()));
    std::fs::write(&block, vec![0xA5u8; 4096]).unwrap();
    for cdb in [
        "0a 00 00 08 08 00",
        "2a 00 00 00 00 08 00 00 08 00",
        "aa 00 00 00 00 08 00 00 00 08 00 00",
        "8a 00 00 00 00 00 00 00 00 08 00 00 00 08 00 00",
    ] {
        let v = scsi(cdb, &["--data-out", block.to_str().unwrap()]);
        check(cdb, &v, "GOOD", 4096, None);
    }
    // MODE SELECT(6): turn the write cache off (a header and the caching page).
    let mut list = vec![0u8; 4];
    list.extend_from_slice(&[0x08, 0x12]);
    list.extend_from_slice(&[0u8; 18]);
    std::fs::write(&block, &list).unwrap();
    let v = scsi("15 10 00 00 18 00", &["--data-out", block.to_str().unwrap()]);
    check("MODE SELECT(6)", &v, "GOOD", 24, None);
    std::fs::remove_file(&block).ok();
    // INFORMATION = the first LBA of the failed read.
    let v = scsi("28 00 00 00 12 34 00 00 01 00", &["--alloc", "512"]);
    assert_eq!(&v["sense"].as_str().unwrap()[..14], "f0000300001234", "{v}");
}

#[test]
fn a_malformed_cdb_is_a_clear_error() {
    for (cdb, message) in
        [("12 00 0", "odd number of hex digits"), ("xyz", "non-hex"), ("1200", "6 to 16 bytes")]
    {
        let out = sim(&["scsi", "--stage", "fake-block", "--cdb", cdb]);
        assert_eq!(out.status.code(), Some(2), "{cdb}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(message), "{cdb}: {err}");
    }
}

#[test]
fn io_writes_a_gibibyte_through_the_whole_stack() {
    let out = sim(&[
        "io",
        "--stage",
        "fake-block",
        "--write",
        "1GiB",
        "--block",
        "1MiB",
        "--qd",
        "32",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["ios"], 1024);
    assert_eq!(v["bytes"], 1u64 << 30);
    assert_eq!(v["errors"], 0);
    assert!(v["latency_p50_ns"].as_u64().unwrap() > 0, "virtual latency is measured");
    assert!(v["violations"].as_array().unwrap().is_empty());
}

#[test]
fn io_reads_fail_as_designed() {
    let out =
        sim(&["io", "--stage", "fake-block", "--read", "8MiB", "--block", "1MiB", "--qd", "2"]);
    assert_eq!(out.status.code(), Some(1), "failed I/Os fail the command, designed or not");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("errors                 8"), "{text}");
    assert!(text.contains("MEDIUM ERROR 3/11/00"), "{text}");
}

#[test]
fn io_without_a_disk_says_so() {
    let out = sim(&["io", "--stage", "pipeline", "--write", "1MiB"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("no disk to run I/O on"));
    let out = sim(&["io", "--stage", "fake-block", "--write", "1MiB", "--block", "1000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("not a whole number of 512-byte blocks"));
}
