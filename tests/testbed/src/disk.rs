//! The macOS side of a disk (SCSI.md "What macOS sends to a new target"): the kernel's initial
//! probe of a new target (steps 1–5, inside `CreateTargetForID`), then the disk driver's start
//! (steps 6–9) and the block-storage client (steps 10–11) on a thread of their own. A probe the
//! driver answers wrongly is a violation naming the step.

use serde::Serialize;

use crate::sched;
use crate::tasks::{self, Direction, Outcome, Request};
use crate::world::{violation, with_world};

const SECTION: &str = "SCSI.md, What macOS sends to a new target";

/// How long the disk driver waits for a unit that says it is becoming ready.
const READY_TIMEOUT_NS: u64 = 45_000_000_000;

/// The disk as macOS sees it once probed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiskReport {
    pub target: u64,
    pub lun: u64,
    pub vendor: String,
    pub product: String,
    pub revision: String,
    pub serial: String,
    pub capacity_bytes: u64,
    pub block_size: u32,
    pub write_cache: bool,
    /// What the block-storage client found reading the partition map.
    pub partition_scheme: String,
    /// The disk is attached (started) and takes raw I/O.
    pub attached: bool,
}

fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_string()
}

// The probe's commands are retried, as macOS does, when the device was busy or the transport
// lost them (a controller reset during the probe); what the device answers is the probe's.
fn data_in(target: u64, lun: u64, cdb: &[u8], length: u64) -> Outcome {
    let req = Request { target, lun, cdb, direction: Direction::In, length, data_out: &[] };
    tasks::run_retrying(&req, tasks::transport_transient).0
}

fn no_data(target: u64, lun: u64, cdb: &[u8]) -> Outcome {
    let req = Request { target, lun, cdb, direction: Direction::None, length: 0, data_out: &[] };
    tasks::run_retrying(&req, tasks::transport_transient).0
}

fn probe_violation(rule: &'static str, step: u32, values: String, message: String) {
    violation(rule, SECTION, format!("step={step} {values}"), message);
}

/// Steps 1–5, inside the kernel's CreateTargetForID. `false` if no device answers.
pub fn probe_target(target: u64) -> bool {
    // 1. TEST UNIT READY: any TASK_COMPLETE means present.
    let tur = no_data(target, 0, &[0x00, 0, 0, 0, 0, 0]);
    if tur.service_response != Some(2) {
        return false;
    }
    // 2. INQUIRY 6, then ADDITIONAL LENGTH + 5; the field must not change.
    let short = data_in(target, 0, &[0x12, 0, 0, 0, 6, 0], 6);
    if !short.good() || short.bytes != 6 || short.data.len() < 6 {
        probe_violation(
            "ProbeShortInquiry",
            2,
            format!("allocation=6 transferred={}", short.bytes),
            "INQUIRY with allocation length 6 must transfer exactly 6 bytes".into(),
        );
        return false;
    }
    let additional = short.data[4];
    let full_len = u64::from(additional) + 5;
    let full = data_in(target, 0, &[0x12, 0, 0, 0, full_len as u8, 0], full_len);
    if !full.good() || full.bytes != full_len {
        probe_violation(
            "ProbeShortInquiry",
            2,
            format!("allocation={full_len} transferred={}", full.bytes),
            format!("INQUIRY with allocation length {full_len} (ADDITIONAL LENGTH + 5) must transfer exactly that"),
        );
        return false;
    }
    if full.data.get(4) != Some(&additional) {
        probe_violation(
            "ProbeInquiryLengthChanged",
            2,
            format!(
                "with_6={additional} with_{full_len}={}",
                full.data.get(4).copied().unwrap_or(0)
            ),
            "ADDITIONAL LENGTH must not depend on the allocation length: truncate the data, \
             never the field"
                .into(),
        );
        return false;
    }
    let version = full.data.get(2).copied().unwrap_or(0);
    // 3. VPD 00h (header, then the list); then 80h and 83h if listed.
    let pages = vpd(target, 0x00, 3).unwrap_or_default();
    if pages.contains(&0x80) {
        let _ = vpd(target, 0x80, 3);
    }
    if pages.contains(&0x83) {
        if let Some(p) = vpd(target, 0x83, 3) {
            check_designators(&p);
        }
    }
    // 4. REPORT LUNS only if VERSION >= 3; only peripheral-addressed entries count.
    let mut luns = vec![0u64];
    if version >= 3 {
        let mut cdb = [0u8; 12];
        cdb[0] = 0xA0;
        cdb[9] = 16;
        let head = data_in(target, 0, &cdb, 16);
        if head.good() && head.data.len() >= 4 {
            let list = u32::from_be_bytes([head.data[0], head.data[1], head.data[2], head.data[3]]);
            let total = (u64::from(list) + 8).min(4096);
            cdb[6..10].copy_from_slice(&(total as u32).to_be_bytes());
            let all = data_in(target, 0, &cdb, total);
            if all.good() {
                luns = all
                    .data
                    .get(8..)
                    .unwrap_or_default()
                    .chunks_exact(8)
                    .filter(|e| e[0] >> 6 == 0)
                    .map(|e| u64::from(e[1]))
                    .collect();
            }
        }
    }
    // 5. Per LUN: TEST UNIT READY, INQUIRY 36 (exactly 36 bytes), up to 8 tries.
    for &lun in &luns {
        let _ = no_data(target, lun, &[0x00, 0, 0, 0, 0, 0]);
        let mut ok = false;
        for _ in 0..8 {
            let inq = data_in(target, lun, &[0x12, 0, 0, 0, 36, 0], 36);
            if inq.good() && inq.bytes == 36 {
                ok = true;
                break;
            }
        }
        if !ok {
            probe_violation(
                "ProbeShortInquiry",
                5,
                format!("lun={lun} allocation=36"),
                "the 36-byte INQUIRY of a LUN must transfer exactly 36 bytes".into(),
            );
        }
    }
    // The disk driver starts on its own thread once the target exists.
    for lun in luns {
        sched::spawn("IOSCSIBlockCommandsDevice", move || {
            crate::world::traced("IOSCSIBlockCommandsDevice::start", || disk_driver(target, lun))
        });
    }
    true
}

/// A VPD page: the 4-byte header, then the whole page. The page body, or `None`.
fn vpd(target: u64, page: u8, step: u32) -> Option<Vec<u8>> {
    let head = data_in(target, 0, &[0x12, 1, page, 0, 4, 0], 4);
    if !head.good() || head.data.len() < 4 {
        return None;
    }
    let len = u64::from(u16::from_be_bytes([head.data[2], head.data[3]])) + 4;
    let full = data_in(target, 0, &[0x12, 1, page, (len >> 8) as u8, len as u8, 0], len);
    if !full.good() || full.bytes != len {
        probe_violation(
            "ProbeShortVpd",
            step,
            format!("page={page:#04x} allocation={len} transferred={}", full.bytes),
            "a VPD page must transfer the length its header announced".into(),
        );
        return None;
    }
    full.data.get(4..).map(<[u8]>::to_vec)
}

/// VPD 83h: NAA designators are 8 (NAA 5/3) or 16 (NAA 6) bytes long.
fn check_designators(body: &[u8]) {
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = body[at + 1] & 0x0F;
        let len = usize::from(body[at + 3]);
        if kind == 3 {
            let naa = body.get(at + 4).map_or(0, |b| b >> 4);
            let want = match naa {
                5 | 3 => 8,
                6 => 16,
                _ => len,
            };
            if len != want {
                probe_violation(
                    "ProbeBadNaaDesignator",
                    3,
                    format!("naa={naa} length={len}"),
                    format!("an NAA {naa} designator is {want} bytes long, not {len}"),
                );
            }
        }
        at += 4 + len;
    }
}

/// Steps 6–11 for one LUN: ready, cache, capacity, geometry, then the partition map.
fn disk_driver(target: u64, lun: u64) {
    let mut report = DiskReport { target, lun, ..DiskReport::default() };
    let inq = data_in(target, lun, &[0x12, 0, 0, 0, 96, 0], 96);
    if inq.good() && inq.data.len() >= 36 {
        if inq.data[0] & 0x1F != 0 {
            return; // not a disk
        }
        report.vendor = ascii(&inq.data[8..16]);
        report.product = ascii(&inq.data[16..32]);
        report.revision = ascii(&inq.data[32..36]);
    }
    let version = inq.data.get(2).copied().unwrap_or(0);
    if let Some(serial) = vpd(target, 0x80, 6) {
        report.serial = ascii(&serial);
    }
    // 6. TEST UNIT READY until ready; START STOP UNIT for 04/00, 04/02, 04/03.
    let start = sched::now_ns();
    loop {
        let tur = no_data(target, lun, &[0x00, 0, 0, 0, 0, 0]);
        if tur.good() {
            break;
        }
        match tur.sense_code() {
            Some((0x6, _, _)) => continue,
            Some((0x2, 0x04, 0x00 | 0x02 | 0x03)) => {
                let _ = no_data(target, lun, &[0x1B, 0, 0, 0, 0x01, 0]);
            }
            _ => sched::sleep_ns(1_000_000_000),
        }
        if sched::now_ns() - start > READY_TIMEOUT_NS {
            probe_violation(
                "ProbeNeverReady",
                6,
                format!("last_sense={:?}", tur.sense_code()),
                "the unit never became ready: NOT READY 04/01 forever makes macOS give up after \
                 about 45 s, permanently"
                    .into(),
            );
            with_world(|w| w.disks.push(report));
            return;
        }
    }
    // 7. MODE SENSE(6) caching page: header, then the page; the count must be exact.
    report.write_cache = caching(target, lun);
    let _ = data_in(target, lun, &[0x1A, 0, 0x3F, 0, 4, 0], 4);
    // 8. READ CAPACITY(10); (16) only if it says FFFFFFFFh and VERSION >= 5.
    let rc10 = data_in(target, lun, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    if rc10.good() && rc10.data.len() == 8 {
        let last = u32::from_be_bytes([rc10.data[0], rc10.data[1], rc10.data[2], rc10.data[3]]);
        report.block_size =
            u32::from_be_bytes([rc10.data[4], rc10.data[5], rc10.data[6], rc10.data[7]]);
        report.capacity_bytes = (u64::from(last) + 1) * u64::from(report.block_size);
        if last == u32::MAX && version >= 5 {
            let mut cdb = [0u8; 16];
            cdb[0] = 0x9E;
            cdb[1] = 0x10;
            cdb[13] = 32;
            let rc16 = data_in(target, lun, &cdb, 32);
            if rc16.good() && rc16.data.len() >= 12 {
                let last = u64::from_be_bytes(rc16.data[0..8].try_into().unwrap_or_default());
                report.block_size =
                    u32::from_be_bytes([rc16.data[8], rc16.data[9], rc16.data[10], rc16.data[11]]);
                report.capacity_bytes = (last + 1) * u64::from(report.block_size);
            }
        }
    } else {
        probe_violation(
            "ProbeReadCapacity",
            8,
            format!("transferred={}", rc10.bytes),
            "READ CAPACITY(10) must transfer its 8 bytes".into(),
        );
    }
    // 9. Geometry pages (fixed disks), DBD=1 then 0; unsupported is fine, an underrun is not.
    for page in [0x03u8, 0x04] {
        for dbd in [0x08u8, 0x00] {
            let r = data_in(target, lun, &[0x5A, dbd, page, 0, 0, 0, 0, 0, 255, 0], 255);
            if r.good() && r.bytes < 8 {
                probe_violation(
                    "ProbeModeSenseUnderrun",
                    9,
                    format!("page={page:#04x} transferred={}", r.bytes),
                    "a MODE SENSE(10) answer shorter than its header".into(),
                );
            }
        }
    }
    report.attached = report.block_size != 0;
    // 10–11. The block-storage client reads the partition map.
    if report.attached {
        report.partition_scheme = partition_map(target, lun, report.block_size);
    }
    // A target destroyed while it was being probed (hot unplug) leaves no attached disk.
    with_world(|w| {
        report.attached &= w.family.targets.contains(&target);
        w.disks.push(report)
    });
}

/// MODE SENSE(6) page 08h: the header alone, then exactly the length it announced; WCE=0 gets a
/// MODE SELECT to turn the cache on. The write-cache state.
fn caching(target: u64, lun: u64) -> bool {
    let head = data_in(target, lun, &[0x1A, 0, 0x08, 0, 4, 0], 4);
    if !head.good() || head.data.len() < 4 {
        return false;
    }
    let want = u64::from(head.data[0]) + 1;
    let full = data_in(target, lun, &[0x1A, 0, 0x08, 0, want as u8, 0], want);
    if !full.good() || full.bytes != want {
        probe_violation(
            "ProbeModeSenseUnderrun",
            7,
            format!("requested={want} transferred={}", full.bytes),
            "MODE SENSE(6): the transferred count must equal the requested count".into(),
        );
        return false;
    }
    let bdl = usize::from(full.data[3]);
    let Some(page) = full.data.get(4 + bdl..4 + bdl + 20) else {
        return false;
    };
    if page[2] & 0x04 != 0 {
        return true;
    }
    // Turn the write cache on.
    let mut list = vec![0u8; 4];
    list.extend_from_slice(page);
    list[4] &= 0x3F;
    list[6] |= 0x04;
    let len = list.len() as u64;
    let sel = tasks::run(&Request {
        target,
        lun,
        cdb: &[0x15, 0x10, 0, 0, len as u8, 0],
        direction: Direction::Out,
        length: len,
        data_out: &list,
    });
    sel.good()
}

/// READ(10) of LBA 0 and 1 (MBR and GPT header), as the partition schemes do.
fn partition_map(target: u64, lun: u64, block_size: u32) -> String {
    let mut cdb = [0x28u8, 0, 0, 0, 0, 0, 0, 0, 2, 0];
    cdb[2..6].copy_from_slice(&0u32.to_be_bytes());
    let r = data_in(target, lun, &cdb, 2 * u64::from(block_size));
    match (r.good(), r.sense_code()) {
        (true, _) if r.data.get(510..512) == Some(&[0x55, 0xAA]) => "MBR or GPT".into(),
        (true, _) => "none (no signature)".into(),
        (false, Some((k, asc, ascq))) => {
            let info = if r.sense.len() >= 7 && r.sense[0] & 0x80 != 0 {
                format!(
                    " at LBA {}",
                    u32::from_be_bytes([r.sense[3], r.sense[4], r.sense[5], r.sense[6]])
                )
            } else {
                String::new()
            };
            format!(
                "failed: sense {k:X}/{asc:02X}/{ascq:02X}{info}; the node is left alone (raw I/O only)"
            )
        }
        (false, None) => "failed: no sense".into(),
    }
}
