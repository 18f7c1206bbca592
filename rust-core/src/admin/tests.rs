//! The admin protocol: every named error, a round trip of every command, list truncation,
//! and properties over arbitrary and mutated requests.

extern crate std;

use std::format;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use super::wire::*;
use super::*;

fn request(command: u16, sequence: u32, payload: &[u8]) -> Vec<u8> {
    let header = RequestHeader {
        magic: U32::new(MAGIC),
        version: U16::new(VERSION),
        command: U16::new(command),
        payload_bytes: U32::new(payload.len() as u32),
        sequence: U32::new(sequence),
    };
    let mut v = header.as_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Shared with `engine_tests.rs`.
pub(super) fn create(level: u8, drives: &[u16], strip_kib: u32, block_size: u32) -> VolumeCreate {
    let mut c = VolumeCreate {
        level,
        drive_count: drives.len() as u8,
        reserved: U16::new(0),
        strip_kib: U32::new(strip_kib),
        block_size: U32::new(block_size),
        drives: [U16::new(0); MAX_VOLUME_DRIVES],
    };
    for (slot, &d) in c.drives.iter_mut().zip(drives) {
        *slot = U16::new(d);
    }
    c
}

/// Shared with `engine_tests.rs`.
pub(super) fn vref(volume: u16) -> VolumeRef {
    VolumeRef { volume: U16::new(volume), reserved: U16::new(0) }
}

/// Shared with `engine_tests.rs`.
pub(super) fn dref(drive: u16) -> DriveRef {
    DriveRef { drive: U16::new(drive), reserved: U16::new(0) }
}

/// One valid request of every command.
fn valid_requests() -> Vec<Vec<u8>> {
    vec![
        request(command::CONTROLLER_SHOW, 1, &[]),
        request(command::VOLUME_LIST, 2, &[]),
        request(command::VOLUME_SHOW, 3, vref(5).as_bytes()),
        request(command::DRIVE_LIST, 4, &[]),
        request(command::DRIVE_SHOW, 5, dref(63).as_bytes()),
        request(
            command::EVENTS_SINCE,
            6,
            EventsSince { sequence: U64::new(41), max: U32::new(64) }.as_bytes(),
        ),
        request(command::IO_STATS, 7, vref(ALL_VOLUMES).as_bytes()),
        request(command::STAGE_GET, 8, &[]),
        request(command::VOLUME_CREATE, 9, create(5, &[0, 1, 2, 3, 4], 64, 512).as_bytes()),
        request(command::VOLUME_DELETE, 10, vref(1).as_bytes()),
        request(
            command::HOTSPARE_SET,
            11,
            HotspareSet { drive: U16::new(5), volume: U16::new(GLOBAL_SPARE) }.as_bytes(),
        ),
        request(command::HOTSPARE_CLEAR, 12, dref(5).as_bytes()),
        request(
            command::REBUILD_START,
            13,
            RebuildStart { volume: U16::new(1), drive: U16::new(5) }.as_bytes(),
        ),
    ]
}

fn reencode(req: &Request<'_>) -> Vec<u8> {
    let mut out = vec![0u8; MAX_REQUEST_BYTES];
    let n = encode_request(&mut out, req.sequence, &req.body).expect("re-encodes");
    out.truncate(n);
    out
}

fn err(input: &[u8]) -> AdminError {
    decode_request(input).expect_err("must be refused")
}

#[test]
fn every_command_round_trips() {
    let all = valid_requests();
    assert_eq!(all.len(), command::ALL.len());
    for (bytes, &cmd) in all.iter().zip(command::ALL.iter()) {
        let req = decode_request(bytes).unwrap_or_else(|e| panic!("{}: {e}", cmd));
        assert_eq!(req.body.command(), cmd);
        assert_eq!(req.body.is_destructive(), cmd >= 0x10);
        assert_eq!(is_destructive(cmd), cmd >= 0x10);
        assert_eq!(&reencode(&req), bytes);
        assert!(command::name(cmd).is_some());
    }
}

#[test]
fn decoded_payloads_carry_the_fields() {
    let bytes =
        request(command::VOLUME_CREATE, 77, create(10, &[3, 9, 4, 8], 256, 4096).as_bytes());
    let req = decode_request(&bytes).unwrap();
    assert_eq!(req.sequence, 77);
    let Body::VolumeCreate(c) = req.body else { panic!("{:?}", req.body) };
    assert_eq!((c.level, c.drive_count, c.strip_kib.get(), c.block_size.get()), (10, 4, 256, 4096));
    assert_eq!(c.drives[..4].iter().map(|d| d.get()).collect::<Vec<_>>(), [3, 9, 4, 8]);
}

#[test]
fn short_request() {
    for n in 0..REQUEST_HEADER_BYTES {
        let e = err(&valid_requests()[0][..n]);
        assert_eq!(e, AdminError::ShortRequest { got: n, needed: 16 });
        assert_eq!(e.status(), status::SHORT_REQUEST);
    }
    assert_eq!(err(&[]).to_string(), "ShortRequest: 0 bytes, the header alone takes 16");
}

#[test]
fn request_too_large() {
    let mut bytes = request(command::CONTROLLER_SHOW, 0, &[]);
    bytes.resize(MAX_REQUEST_BYTES + 1, 0);
    let e = err(&bytes);
    assert_eq!(e, AdminError::RequestTooLarge { got: 4097, max: 4096 });
    assert_eq!(e.status(), status::REQUEST_TOO_LARGE);
}

#[test]
fn bad_magic() {
    let mut bytes = request(command::CONTROLLER_SHOW, 0, &[]);
    bytes[0] = 0x45;
    let e = err(&bytes);
    assert_eq!(e.status(), status::BAD_MAGIC);
    assert_eq!(e.to_string(), "BadMagic: got 0x44414B45, expected 0x44414B44");
    // On the wire the magic spells "DKAD".
    assert_eq!(&request(command::CONTROLLER_SHOW, 0, &[])[..4], b"DKAD");
}

#[test]
fn unsupported_version() {
    let mut bytes = request(command::CONTROLLER_SHOW, 0, &[]);
    bytes[4] = 2;
    let e = err(&bytes);
    assert_eq!(e, AdminError::UnsupportedVersion { got: 2 });
    assert_eq!(e.status(), status::UNSUPPORTED_VERSION);
    assert!(e.to_string().starts_with("UnsupportedVersion: got version 2"));
}

#[test]
fn unknown_command() {
    for cmd in [0u16, 0x09, 0x0F, 0x15, 0xFFFF] {
        let e = err(&request(cmd, 0, &[]));
        assert_eq!(e, AdminError::UnknownCommand { got: cmd });
        assert_eq!(e.status(), status::UNKNOWN_COMMAND);
    }
    assert_eq!(err(&request(0x42, 0, &[])).to_string(), "UnknownCommand: command 0x0042");
}

#[test]
fn payload_size_mismatch() {
    // Declared more than present.
    let mut bytes = request(command::VOLUME_SHOW, 0, vref(1).as_bytes());
    bytes[8] = 8;
    assert_eq!(err(&bytes), AdminError::PayloadSizeMismatch { declared: 8, present: 4 });
    // Trailing bytes after the declared payload.
    let mut bytes = request(command::CONTROLLER_SHOW, 0, &[]);
    bytes.push(0);
    let e = err(&bytes);
    assert_eq!(e, AdminError::PayloadSizeMismatch { declared: 0, present: 1 });
    assert_eq!(e.status(), status::PAYLOAD_SIZE_MISMATCH);
    // A huge declared size is never used to index.
    let mut bytes = request(command::VOLUME_CREATE, 0, &[]);
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(err(&bytes), AdminError::PayloadSizeMismatch { declared: u32::MAX, present: 0 });
}

#[test]
fn wrong_payload_size() {
    let e = err(&request(command::VOLUME_CREATE, 0, &[0; 12]));
    assert_eq!(
        e,
        AdminError::WrongPayloadSize { command: command::VOLUME_CREATE, expected: 76, got: 12 }
    );
    assert_eq!(e.status(), status::WRONG_PAYLOAD_SIZE);
    assert_eq!(e.to_string(), "WrongPayloadSize: VOLUME_CREATE takes a 76-byte payload, got 12");
    assert!(matches!(
        err(&request(command::CONTROLLER_SHOW, 0, &[0; 4])),
        AdminError::WrongPayloadSize { .. }
    ));
    assert!(matches!(
        err(&request(command::EVENTS_SINCE, 0, &[0; 16])),
        AdminError::WrongPayloadSize { .. }
    ));
}

fn create_err(c: VolumeCreate) -> AdminError {
    err(&request(command::VOLUME_CREATE, 0, c.as_bytes()))
}

#[test]
fn field_out_of_range() {
    let range = |field, value| AdminError::FieldOutOfRange { field, value };
    for level in [2u8, 3, 4, 6, 50, 255] {
        assert_eq!(
            create_err(create(level, &[0, 1, 2, 3], 64, 512)),
            range("level", u64::from(level))
        );
    }
    assert_eq!(create_err(create(0, &[], 64, 512)), range("drive_count", 0));
    let mut c = create(0, &[0], 64, 512);
    c.drive_count = 33;
    assert_eq!(create_err(c), range("drive_count", 33));
    for strip in [0u32, 2, 3, 48, 2048, 4096, u32::MAX] {
        assert_eq!(
            create_err(create(1, &[0, 1], strip, 512)),
            range("strip_kib", u64::from(strip))
        );
    }
    for block in [0u32, 520, 1024, 8192] {
        assert_eq!(
            create_err(create(1, &[0, 1], 64, block)),
            range("block_size", u64::from(block))
        );
    }
    assert_eq!(create_err(create(1, &[0, 64], 64, 512)), range("drives[]", 64));
    let mut c = create(1, &[0, 1], 64, 512);
    c.drives[2] = U16::new(7);
    assert_eq!(create_err(c), range("drives[] past drive_count", 7));
    let mut c = create(1, &[0, 1], 64, 512);
    c.reserved = U16::new(1);
    assert_eq!(create_err(c), range("reserved", 1));

    let e = err(&request(command::VOLUME_SHOW, 0, vref(128).as_bytes()));
    assert_eq!(e, range("volume", 128));
    assert_eq!(e.status(), status::FIELD_OUT_OF_RANGE);
    assert_eq!(e.to_string(), "FieldOutOfRange: volume = 128");
    // ALL_VOLUMES only for IO_STATS.
    assert_eq!(
        err(&request(command::VOLUME_DELETE, 0, vref(ALL_VOLUMES).as_bytes())),
        range("volume", 0xFFFF)
    );
    let bad_reserved = VolumeRef { volume: U16::new(1), reserved: U16::new(9) };
    assert_eq!(
        err(&request(command::VOLUME_SHOW, 0, bad_reserved.as_bytes())),
        range("reserved", 9)
    );
    assert_eq!(err(&request(command::DRIVE_SHOW, 0, dref(64).as_bytes())), range("drive", 64));
    assert_eq!(
        err(&request(command::HOTSPARE_CLEAR, 0, dref(1000).as_bytes())),
        range("drive", 1000)
    );
    for max in [0u32, MAX_EVENTS_PER_REQUEST + 1] {
        let p = EventsSince { sequence: U64::new(0), max: U32::new(max) };
        assert_eq!(
            err(&request(command::EVENTS_SINCE, 0, p.as_bytes())),
            range("max", u64::from(max))
        );
    }
    let p = HotspareSet { drive: U16::new(1), volume: U16::new(200) };
    assert_eq!(err(&request(command::HOTSPARE_SET, 0, p.as_bytes())), range("volume", 200));
    let p = RebuildStart { volume: U16::new(1), drive: U16::new(99) };
    assert_eq!(err(&request(command::REBUILD_START, 0, p.as_bytes())), range("drive", 99));
}

#[test]
fn duplicate_drive() {
    let e = create_err(create(5, &[0, 1, 2, 1], 64, 512));
    assert_eq!(e, AdminError::DuplicateDrive { drive: 1 });
    assert_eq!(e.status(), status::DUPLICATE_DRIVE);
    assert_eq!(e.to_string(), "DuplicateDrive: drive 1 is listed twice");
}

#[test]
fn drive_count_for_level() {
    for (level, drives, minimum) in [(1u8, &[0u16][..], 2u8), (5, &[0, 1], 3), (10, &[0, 1, 2], 4)]
    {
        let e = create_err(create(level, drives, 64, 512));
        assert_eq!(e, AdminError::DriveCountForLevel { level, count: drives.len() as u8, minimum });
        assert_eq!(e.status(), status::DRIVE_COUNT_FOR_LEVEL);
    }
    let e = create_err(create(10, &[0, 1, 2, 3, 4], 64, 512));
    assert_eq!(e, AdminError::DriveCountForLevel { level: 10, count: 5, minimum: 4 });
    assert_eq!(e.to_string(), "DriveCountForLevel: RAID 10 takes an even number of drives, got 5");
    assert_eq!(
        create_err(create(5, &[0, 1], 64, 512)).to_string(),
        "DriveCountForLevel: RAID 5 takes at least 3 drives, got 2"
    );
    // Every level at its minimum, and 32 drives, are fine.
    for (level, n) in [(0u8, 1usize), (1, 2), (5, 3), (10, 4), (0, 32), (10, 32)] {
        let drives: Vec<u16> = (0..n as u16).collect();
        let bytes = request(command::VOLUME_CREATE, 0, create(level, &drives, 4, 4096).as_bytes());
        decode_request(&bytes).unwrap_or_else(|e| panic!("RAID {level} × {n}: {e}"));
    }
}

#[test]
fn output_too_small() {
    let mut out = [0u8; 24];
    let e = encode_response(&mut out, command::STAGE_GET, 1, status::OK, &[0; 8]).unwrap_err();
    assert_eq!(e, AdminError::OutputTooSmall { needed: 28, available: 24 });
    assert_eq!(e.status(), status::OUTPUT_TOO_SMALL);
    assert_eq!(e.to_string(), "OutputTooSmall: the response takes 28 bytes, the buffer holds 24");
    let e = encode_list::<EventEntry>(&mut out, command::EVENTS_SINCE, 1, &[]).unwrap_err();
    assert_eq!(e, AdminError::OutputTooSmall { needed: 36, available: 24 });
    let e = encode_request(&mut out, 1, &Body::VolumeCreate(&create(0, &[0], 4, 512))).unwrap_err();
    assert_eq!(e, AdminError::OutputTooSmall { needed: 92, available: 24 });
}

#[test]
fn every_error_has_a_distinct_named_status() {
    let errors = [
        AdminError::ShortRequest { got: 0, needed: 16 },
        AdminError::RequestTooLarge { got: 5000, max: 4096 },
        AdminError::BadMagic { got: 0 },
        AdminError::UnsupportedVersion { got: 0 },
        AdminError::UnknownCommand { got: 0 },
        AdminError::PayloadSizeMismatch { declared: 1, present: 0 },
        AdminError::WrongPayloadSize { command: 1, expected: 0, got: 1 },
        AdminError::FieldOutOfRange { field: "x", value: 1 },
        AdminError::DuplicateDrive { drive: 1 },
        AdminError::DriveCountForLevel { level: 5, count: 2, minimum: 3 },
        AdminError::OutputTooSmall { needed: 1, available: 0 },
        AdminError::NotPermitted { command: command::VOLUME_DELETE },
        AdminError::BadResponse { what: "x" },
    ];
    let mut statuses: Vec<u32> = errors.iter().map(AdminError::status).collect();
    for e in &errors {
        assert_ne!(e.status(), status::OK);
        assert_eq!(Some(e.name()), status::name(e.status()));
        assert!(e.to_string().starts_with(&format!("{}: ", e.name())), "{e}");
    }
    statuses.sort_unstable();
    statuses.dedup();
    assert_eq!(statuses.len(), errors.len());
    assert_eq!(
        errors[11].to_string(),
        "NotPermitted: VOLUME_DELETE changes the configuration and the client lacks the admin entitlement"
    );
}

#[test]
fn responses_round_trip() {
    let mut out = [0u8; 512];
    let info =
        ControllerInfo { max_commands: U32::new(128), stage: U32::new(3), ..Default::default() };
    let n = encode_response(&mut out, command::CONTROLLER_SHOW, 9, status::OK, info.as_bytes())
        .unwrap();
    assert_eq!(n, RESPONSE_HEADER_BYTES + 72);
    let r = decode_response(&out[..n]).unwrap();
    assert_eq!((r.command, r.sequence, r.status), (command::CONTROLLER_SHOW, 9, status::OK));
    assert_eq!(ControllerInfo::read_from_bytes(r.payload).unwrap(), info);

    let stats = IoStats { reads: U64::new(3), errors: U64::new(1), ..Default::default() };
    let n = encode_response(&mut out, command::IO_STATS, 2, status::OK, stats.as_bytes()).unwrap();
    assert_eq!(
        IoStats::read_from_bytes(decode_response(&out[..n]).unwrap().payload).unwrap(),
        stats
    );

    let n =
        encode_error(&mut out, command::VOLUME_CREATE, 4, &AdminError::DuplicateDrive { drive: 2 })
            .unwrap();
    let r = decode_response(&out[..n]).unwrap();
    assert_eq!((r.status, r.payload.len()), (status::DUPLICATE_DRIVE, 0));

    assert!(matches!(decode_response(&out[..n - 1]), Err(AdminError::ShortRequest { .. })));
    let mut bad = out;
    bad[RESPONSE_HEADER_BYTES - 8] = 1; // payload_bytes
    assert!(matches!(decode_response(&bad[..n]), Err(AdminError::PayloadSizeMismatch { .. })));
}

#[test]
fn list_truncated_to_the_buffer_keeps_the_total() {
    let events: Vec<EventEntry> = (1..=10u64)
        .map(|s| EventEntry {
            sequence: U64::new(s),
            code: U16::new(event::REBUILD_PROGRESS),
            percent: s as u8 * 10,
            ..Default::default()
        })
        .collect();
    // Room for everything.
    let mut out = vec![0u8; 36 + 16 * 10];
    let n = encode_list(&mut out, command::EVENTS_SINCE, 5, &events).unwrap();
    assert_eq!(n, out.len());
    let r = decode_response(&out[..n]).unwrap();
    let (total, got) = decode_list::<EventEntry>(r.payload).unwrap();
    assert_eq!((total, got), (10, &events[..]));
    // Room for 3 and a half.
    let mut out = vec![0u8; 36 + 16 * 3 + 8];
    let n = encode_list(&mut out, command::EVENTS_SINCE, 5, &events).unwrap();
    assert_eq!(n, 36 + 48);
    let (total, got) =
        decode_list::<EventEntry>(decode_response(&out[..n]).unwrap().payload).unwrap();
    assert_eq!((total, got), (10, &events[..3]));
    // Room for none.
    let mut out = vec![0u8; 36];
    let n = encode_list(&mut out, command::EVENTS_SINCE, 5, &events).unwrap();
    let (total, got) =
        decode_list::<EventEntry>(decode_response(&out[..n]).unwrap().payload).unwrap();
    assert_eq!((total, got.len()), (10, 0));
    // The wrong entry type is caught by its size.
    assert!(matches!(
        decode_list::<VolumeEntry>(decode_response(&out[..n]).unwrap().payload),
        Err(AdminError::BadResponse { .. })
    ));
    // Volumes and drives too.
    let volumes =
        [VolumeEntry { id: U16::new(1), level: 5, drives: U64::new(0x1F), ..Default::default() }];
    let mut out = vec![0u8; 256];
    let n = encode_list(&mut out, command::VOLUME_LIST, 1, &volumes).unwrap();
    assert_eq!(
        decode_list::<VolumeEntry>(decode_response(&out[..n]).unwrap().payload).unwrap(),
        (1, &volumes[..])
    );
    let drives =
        [DriveEntry { id: U16::new(3), volume: U16::new(NO_VOLUME), ..Default::default() }; 2];
    let n = encode_list(&mut out, command::DRIVE_LIST, 1, &drives).unwrap();
    assert_eq!(
        decode_list::<DriveEntry>(decode_response(&out[..n]).unwrap().payload).unwrap(),
        (2, &drives[..])
    );
}

/// The offsets `docs/ADMIN-PROTOCOL.md` gives.
#[test]
fn documented_offsets() {
    use core::mem::offset_of;
    assert_eq!(offset_of!(RequestHeader, payload_bytes), 8);
    assert_eq!(offset_of!(RequestHeader, sequence), 12);
    assert_eq!(offset_of!(ResponseHeader, status), 8);
    assert_eq!(offset_of!(ResponseHeader, payload_bytes), 12);
    assert_eq!(offset_of!(ResponseHeader, sequence), 16);
    assert_eq!(offset_of!(EventsSince, max), 8);
    assert_eq!(offset_of!(VolumeCreate, strip_kib), 4);
    assert_eq!(offset_of!(VolumeCreate, block_size), 8);
    assert_eq!(offset_of!(VolumeCreate, drives), 12);
    assert_eq!(offset_of!(ControllerInfo, stage), 16);
    assert_eq!(offset_of!(ControllerInfo, firmware_version), 24);
    assert_eq!(offset_of!(ControllerInfo, serial), 40);
    assert_eq!(offset_of!(ControllerInfo, driver_version), 56);
    assert_eq!(offset_of!(VolumeEntry, capacity_blocks), 8);
    assert_eq!(offset_of!(VolumeEntry, strip_kib), 16);
    assert_eq!(offset_of!(VolumeEntry, rebuild_percent), 20);
    assert_eq!(offset_of!(VolumeEntry, drive_count), 21);
    assert_eq!(offset_of!(VolumeEntry, drives), 24);
    assert_eq!(offset_of!(DriveEntry, volume), 4);
    assert_eq!(offset_of!(DriveEntry, capacity_bytes), 8);
    assert_eq!(offset_of!(DriveEntry, media_errors), 16);
    assert_eq!(offset_of!(EventEntry, code), 8);
    assert_eq!(offset_of!(EventEntry, percent), 14);
    assert_eq!(offset_of!(IoStats, errors), 32);
    assert_eq!(offset_of!(IoStats, latency_us_log2), 40);
    assert_eq!(offset_of!(ListHeader, entry_bytes), 8);
}

#[test]
fn latency_buckets() {
    assert_eq!(latency_bucket(0), 0);
    assert_eq!(latency_bucket(1), 1);
    assert_eq!(latency_bucket(2), 2);
    assert_eq!(latency_bucket(3), 2);
    assert_eq!(latency_bucket(1 << 14), 15);
    assert_eq!(latency_bucket(u64::MAX), 15);
}

/// Whatever the bytes, decoding never panics, and either refuses them by name or the request
/// re-encodes to exactly those bytes.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode_request(bytes) {
        Ok(req) => prop_assert_eq!(&reencode(&req)[..], bytes),
        Err(e) => {
            prop_assert_ne!(e.status(), status::OK);
            prop_assert!(status::name(e.status()).is_some());
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Xor(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
    SetU16(usize, u16),
    SetU32(usize, u32),
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    if len == 0 && !matches!(m, Mutation::Append(_)) {
        return;
    }
    match m {
        Mutation::Set(i, v) => bytes[i % len] = *v,
        Mutation::Xor(i, v) => bytes[i % len] ^= *v,
        Mutation::Truncate(n) => bytes.truncate(n % (len + 1)),
        Mutation::Append(extra) => bytes.extend_from_slice(extra),
        Mutation::SetU16(i, v) if len >= 2 => {
            let i = i % (len - 1);
            bytes[i..i + 2].copy_from_slice(&v.to_le_bytes());
        }
        Mutation::SetU32(i, v) if len >= 4 => {
            let i = i % (len - 3);
            bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => {}
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        (any::<usize>(), 1..=255u8).prop_map(|(i, v)| Mutation::Xor(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
        (any::<usize>(), prop_oneof![0..70u16, any::<u16>()])
            .prop_map(|(i, v)| Mutation::SetU16(i, v)),
        (any::<usize>(), prop_oneof![0..5000u32, any::<u32>()])
            .prop_map(|(i, v)| Mutation::SetU32(i, v)),
    ]
}

/// A valid VOLUME_CREATE with arbitrary (valid) fields.
fn valid_create() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(0u8), Just(1), Just(5), Just(10)],
        Just((0..=MAX_DRIVE_ID).collect::<Vec<u16>>()).prop_shuffle(),
        1usize..=32,
        2u32..=10,
        prop_oneof![Just(512u32), Just(4096)],
        any::<u32>(),
    )
        .prop_map(|(level, ids, n, strip_log2, block, seq)| {
            let min = usize::from(level_minimum_drives(level).unwrap());
            let mut n = n.max(min);
            if level == 10 && n % 2 == 1 {
                n -= 1;
            }
            request(
                command::VOLUME_CREATE,
                seq,
                create(level, &ids[..n], 1 << strip_log2, block).as_bytes(),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        cmd in prop_oneof![0u16..0x18, any::<u16>()],
        payload in proptest::collection::vec(any::<u8>(), 0..100),
        seq in any::<u32>(),
    ) {
        check(&request(cmd, seq, &payload))?;
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        which in 0usize..13,
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = valid_requests()[which].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes)?;
    }

    #[test]
    fn valid_creates_decode_and_mutations_never_panic(
        bytes in valid_create(),
        mutations in proptest::collection::vec(mutation(), 0..3),
    ) {
        let req = decode_request(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&reencode(&req), &bytes);
        let mut bytes = bytes;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes)?;
    }
}
