//! The seed corpus: real inputs for each target, in each target's input format. Written to
//! `corpus/<target>/` by `cargo run --example gen_corpus` (in `fuzz/`); the files are committed.

use dkraid_core::admin::wire::{
    command, DriveRef, EventsSince, HotspareSet, RebuildStart, VolumeCreate, VolumeRef,
    GLOBAL_SPARE, MAX_VOLUME_DRIVES,
};
use dkraid_core::admin::{encode_list, encode_request, encode_response, Body};
use dkraid_core::firmware::wire::{ReplyFlags, CONTROL_SMID, EVENT_SMID};
use zerocopy::little_endian::{U16, U32, U64};

const PHASE: u8 = ReplyFlags::PHASE.bits();
const SENSE_VALID: u8 = ReplyFlags::SENSE_VALID.bits();
const ABORTED: u8 = ReplyFlags::ABORTED.bits();
const EVENT: u8 = ReplyFlags::EVENT.bits();

/// Every target's name, in the order scripts run them.
pub const TARGETS: &[&str] = &["cdb", "admin", "reply", "iig", "plist"];

/// One SCSI command in the `cdb` target's format (its own length, data-in unless `out`).
fn cmd(out: &mut Vec<u8>, cdb: &[u8], requested: u16, data_out: Option<&[u8]>) {
    let h = 0x1F | if data_out.is_some() { 0x20 } else { 0 };
    out.push(h);
    out.extend_from_slice(&requested.to_le_bytes());
    let buffer = data_out.map_or(requested as usize, <[u8]>::len) as u16;
    out.extend_from_slice(&buffer.to_le_bytes());
    out.extend_from_slice(cdb);
    if let Some(d) = data_out {
        out.extend_from_slice(d);
    }
}

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn rw16(op: u8, flags: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// macOS's disk probe (SCSI.md steps 1–11), then I/O, as the `cdb` target reads it.
pub fn cdb() -> Vec<(&'static str, Vec<u8>)> {
    let mut probe = vec![0x08]; // 512-byte blocks, 64 in memory, UNMAP supported
    cmd(&mut probe, &[0x12, 0, 0, 0, 6, 0], 6, None); // INQUIRY 6
    cmd(&mut probe, &[0x12, 0, 0, 0, 36, 0], 36, None); // INQUIRY 36
    cmd(&mut probe, &[0x12, 1, 0x00, 0, 255, 0], 255, None); // VPD list
    cmd(&mut probe, &[0x12, 1, 0x80, 0, 255, 0], 255, None); // serial
    cmd(&mut probe, &[0x12, 1, 0x83, 0, 255, 0], 255, None); // device identification
    cmd(&mut probe, &[0x12, 1, 0xB0, 0, 64, 0], 64, None); // block limits
    cmd(&mut probe, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], 16, None); // REPORT LUNS
    cmd(&mut probe, &[0, 0, 0, 0, 0, 0], 0, None); // TUR: unit attention
    cmd(&mut probe, &[0, 0, 0, 0, 0, 0], 0, None); // TUR: ready
    cmd(&mut probe, &[0x1A, 0, 0x3F, 0, 255, 0], 255, None); // MODE SENSE(6) all pages
    cmd(&mut probe, &[0x5A, 0, 0x08, 0, 0, 0, 0, 0, 255, 0], 255, None); // MODE SENSE(10)
    cmd(&mut probe, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8, None); // READ CAPACITY(10)
    let mut rc16 = [0u8; 16];
    rc16[0] = 0x9E;
    rc16[1] = 0x10;
    rc16[13] = 32;
    cmd(&mut probe, &rc16, 32, None); // READ CAPACITY(16)

    let mut io = vec![0x08];
    cmd(&mut io, &[0, 0, 0, 0, 0, 0], 0, None);
    let block: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    cmd(&mut io, &rw10(0x2A, 4, 2), 1024, Some(&block)); // WRITE(10)
    cmd(&mut io, &rw10(0x28, 4, 2), 1024, None); // READ(10)
    cmd(&mut io, &rw16(0x8A, 0x08, 10, 1), 512, Some(&block[..512])); // WRITE(16) FUA
    cmd(&mut io, &rw16(0x88, 0, 10, 1), 512, None); // READ(16)
    cmd(&mut io, &[0x08, 0, 0, 4, 1, 0], 512, None); // READ(6)
    let mut verify = rw10(0x2F, 4, 1);
    verify[1] = 0x02; // BYTCHK
    cmd(&mut io, &verify, 512, Some(&block[..512]));
    cmd(&mut io, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0, None); // SYNCHRONIZE CACHE(10)
    let mut unmap = vec![0u8; 24];
    unmap[0..2].copy_from_slice(&22u16.to_be_bytes());
    unmap[2..4].copy_from_slice(&16u16.to_be_bytes());
    unmap[8..16].copy_from_slice(&4u64.to_be_bytes());
    unmap[16..20].copy_from_slice(&2u32.to_be_bytes());
    cmd(&mut io, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], 24, Some(&unmap)); // UNMAP
    cmd(&mut io, &rw16(0x93, 0x08, 20, 8), 512, Some(&[0u8; 512])); // WRITE SAME(16) UNMAP
    cmd(&mut io, &rw10(0x28, 70, 1), 512, None); // past the end: LBA OUT OF RANGE

    let mut modes = vec![0x00];
    cmd(&mut modes, &[0x03, 0, 0, 0, 18, 0], 18, None); // REQUEST SENSE: the unit attention
    let mut caching = vec![0u8; 4 + 20];
    caching[4] = 0x08;
    caching[5] = 18;
    cmd(&mut modes, &[0x15, 0x10, 0, 0, 24, 0], 24, Some(&caching)); // MODE SELECT: WCE off
    cmd(&mut modes, &[0x1A, 0x08, 0x08, 0, 255, 0], 255, None);
    cmd(&mut modes, &[0x1B, 0, 0, 0, 0, 0], 0, None); // STOP
    cmd(&mut modes, &[0, 0, 0, 0, 0, 0], 0, None); // not ready
    cmd(&mut modes, &[0x1B, 0, 0, 0, 1, 0], 0, None); // START
    cmd(&mut modes, &[0x1E, 0, 0, 0, 1, 0], 0, None); // PREVENT
    modes.extend_from_slice(&[17, 1]); // capacity changed
    cmd(&mut modes, &[0, 0, 0, 0, 0, 0], 0, None);

    let mut big = vec![0x07 | 0x10]; // 4 KiB blocks, 2^56 of them, a bad LBA
    big.extend_from_slice(&100u32.to_le_bytes());
    cmd(&mut big, &[0, 0, 0, 0, 0, 0], 0, None);
    cmd(&mut big, &rw16(0x88, 0, 99, 2), 8192, None); // covers the bad LBA
    cmd(&mut big, &rw16(0x8A, 0, 1 << 40, 1), 4096, Some(&[0x5A; 4096]));
    cmd(&mut big, &rw16(0x88, 0, 1 << 40, 1), 4096, None);
    cmd(&mut big, &rc16, 32, None);
    cmd(&mut big, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8, None); // capacity past 32 bits

    vec![("probe", probe), ("io", io), ("modes", modes), ("big", big)]
}

fn request(sequence: u32, body: Body<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let n = encode_request(&mut out, sequence, &body).expect("a seed request encodes");
    out.truncate(n);
    out
}

/// Requests raidctl sends, and responses it reads.
pub fn admin() -> Vec<(&'static str, Vec<u8>)> {
    let v = |volume: u16| VolumeRef { volume: U16::new(volume), reserved: U16::new(0) };
    let d = DriveRef { drive: U16::new(7), reserved: U16::new(0) };
    let mut drives = [U16::new(0); MAX_VOLUME_DRIVES];
    for (k, slot) in drives.iter_mut().take(3).enumerate() {
        *slot = U16::new(2 + k as u16);
    }
    let create = VolumeCreate {
        level: 5,
        drive_count: 3,
        reserved: U16::new(0),
        strip_kib: U32::new(64),
        block_size: U32::new(512),
        drives,
    };
    let events = EventsSince { sequence: U64::new(41), max: U32::new(64) };
    let spare = HotspareSet { drive: U16::new(7), volume: U16::new(GLOBAL_SPARE) };
    let rebuild = RebuildStart { volume: U16::new(1), drive: U16::new(5) };
    let mut list = vec![0u8; 256];
    let entries = [dkraid_core::admin::wire::DriveEntry::default(); 2];
    let n = encode_list(&mut list, command::DRIVE_LIST, 9, &entries).expect("fits");
    list.truncate(n);
    let mut ok = vec![0u8; 64];
    let n = encode_response(&mut ok, command::STAGE_GET, 3, 0, &[3, 0, 0, 0, 0, 0, 0, 0])
        .expect("fits");
    ok.truncate(n);
    vec![
        ("controller_show", request(1, Body::ControllerShow)),
        ("volume_list", request(2, Body::VolumeList)),
        ("volume_show", request(3, Body::VolumeShow(&v(0)))),
        ("drive_show", request(4, Body::DriveShow(&d))),
        ("events_since", request(5, Body::EventsSince(&events))),
        ("io_stats_all", request(6, Body::IoStats(&v(0xFFFF)))),
        ("volume_create", request(7, Body::VolumeCreate(&create))),
        ("volume_delete", request(8, Body::VolumeDelete(&v(1)))),
        ("hotspare_set", request(9, Body::HotspareSet(&spare))),
        ("hotspare_clear", request(10, Body::HotspareClear(&d))),
        ("rebuild_start", request(11, Body::RebuildStart(&rebuild))),
        ("response_drive_list", list),
        ("response_stage", ok),
    ]
}

/// Reply rings as the firmware writes them (the `reply` target's format).
pub fn reply() -> Vec<(&'static str, Vec<u8>)> {
    // A reply built by the harness: kind (0x80 built, bits 0-1 the tag choice, 0x40 torn),
    // SMID choice, flags, status, transferred, then the operands the choices take.
    let built = |out: &mut Vec<u8>, kind: u8, smid: u8, flags: u8, status: u8, n: u32| {
        out.extend_from_slice(&[0x80 | kind, smid, flags, status]);
        out.extend_from_slice(&n.to_le_bytes());
        match kind & 3 {
            1 => out.push(4),
            3 => out.extend_from_slice(&0xC0FF_EE00u32.to_le_bytes()),
            _ => {}
        }
        if kind & 0x40 != 0 {
            out.push(0x10);
        }
    };
    // Header: ring entries - 2, tasks - 1, the submitted mask (u16), control in flight. An
    // op 2 writes (count - 1) + 1 entries from a first index; op 0 drains to a producer.
    // 8 entries, 4 tasks, tasks 1-3 submitted, the control request in flight.
    let mut good = vec![6, 3, 0b0111, 0, 1];
    good.extend_from_slice(&[2, 0, 4]);
    built(&mut good, 0, 2, PHASE, 0, 4096);
    built(&mut good, 0, 1, PHASE | SENSE_VALID, 2, 0);
    built(&mut good, 0, (CONTROL_SMID & 0xFF) as u8, PHASE, 0, 0);
    built(&mut good, 2, (EVENT_SMID & 0xFF) as u8, PHASE | EVENT, 0, 42);
    built(&mut good, 0, 3, PHASE | ABORTED, 0, 0);
    good.extend_from_slice(&[0, 5]); // drain to 5

    // 8 entries, 16 tasks all submitted: every way a reply is wrong.
    let mut bad = vec![6, 15, 0xFF, 0xFF, 0];
    bad.extend_from_slice(&[2, 0, 6]);
    built(&mut bad, 1, 4, PHASE, 0, 512); // foreign tag
    built(&mut bad, 0, 0, PHASE, 0, 0); // SMID 0
    built(&mut bad, 0, 17, PHASE, 0, 0); // past the tasks
    built(&mut bad, 0, 5, 0, 0, 0); // stale phase
    bad.push(0x00); // raw garbage
    bad.extend_from_slice(&[0xDE; 16]);
    built(&mut bad, 0x40, 6, PHASE, 0, 512); // torn after sealing
    built(&mut bad, 3, 7, PHASE, 0, 512); // any tag
    bad.extend_from_slice(&[0, 7, 0, 0xFF]); // drain to 7, then a producer past the ring
    bad.extend_from_slice(&1000u32.to_le_bytes());

    // 2 entries, 2 tasks, task 1 submitted: a genuine reply and its replay, lap after lap.
    let mut laps = vec![0, 1, 0b1, 0, 0];
    for lap in 0..3u8 {
        let phase = if lap % 2 == 0 { PHASE } else { 0 };
        laps.extend_from_slice(&[2, 0, 1]);
        built(&mut laps, 0, 1, phase, 0, 512);
        built(&mut laps, 0, 1, phase, 0, 512);
        laps.extend_from_slice(&[0, 1, 0, 0, 1, 1, 0]); // drain 1, drain 0, resubmit task 1
    }
    laps.push(3); // reset
    vec![("good", good), ("bad", bad), ("laps", laps)]
}

/// The shipped `.iig` files.
pub fn iig() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("DkRaidController", include_bytes!("../../iig/DkRaidController.iig").to_vec()),
        ("DkRaidUserClient", include_bytes!("../../iig/DkRaidUserClient.iig").to_vec()),
    ]
}

/// The shipped bundle: Info.plist and the entitlements.
pub fn plist() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("Info.plist", include_bytes!("../../Info.plist").to_vec()),
        (
            "DkRaidDriver.entitlements",
            include_bytes!("../../entitlements/DkRaidDriver.entitlements").to_vec(),
        ),
        (
            "DkRaidAdmin.entitlements",
            include_bytes!("../../entitlements/DkRaidAdmin.entitlements").to_vec(),
        ),
        ("match_strings", b"0x10f01af4&0xffffffff 0x10f11af4 10f21af4&0xfffeffff".to_vec()),
    ]
}

/// Every target's seeds.
pub fn all() -> Vec<(&'static str, Vec<(&'static str, Vec<u8>)>)> {
    vec![("cdb", cdb()), ("admin", admin()), ("reply", reply()), ("iig", iig()), ("plist", plist())]
}

/// Runs one input through a target's harness (what the fuzz target does).
pub fn run(target: &str, data: &[u8]) {
    match target {
        "cdb" => crate::scsi::run(data),
        "admin" => crate::admin::run(data),
        "reply" => crate::reply::run(data),
        "iig" => crate::iig::run(data),
        "plist" => crate::bundle::run(data),
        other => panic!("no target {other}"),
    }
}
