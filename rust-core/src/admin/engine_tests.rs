//! The admin engine: every command's firmware mapping and reply translation, the requests
//! answered at once, slots and tickets, and the engine inside the controller sharing the
//! control frame with the stage's own work (the firmware played by `firmware::tests`).

extern crate std;

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use super::engine::{AdminEngine, Context, SlotState, ADMIN_SLOTS, MAX_RESPONSE};
use super::stats::{IoKind, IoStatsTable, Started};
use super::tests::{create, dref, vref};

/// The one client of most tests.
const OWNER: u64 = 0x5EED;
use super::wire::*;
use super::*;
use crate::abi;
use crate::firmware::wire as fw;
use crate::firmware::wire::{mgmt, mgmt_status, ReplyDescriptor};
use crate::stage::Stage;

fn req(sequence: u32, body: &Body<'_>) -> Vec<u8> {
    let mut out = vec![0u8; MAX_REQUEST_BYTES];
    let n = encode_request(&mut out, sequence, body).unwrap();
    out.truncate(n);
    out
}

fn fw_volume(id: u16, drives: u64, strip_bytes: u32) -> fw::VolumeEntry {
    fw::VolumeEntry {
        id: U16::new(id),
        state: volume_state::DEGRADED,
        level: 5,
        block_size: U32::new(4096),
        capacity_blocks: U64::new(1 << 20),
        strip_bytes: U32::new(strip_bytes),
        rebuild_percent: 40,
        reserved: [0; 3],
        drives: U64::new(drives),
    }
}

fn fw_drive(id: u16, volume: u32) -> fw::DriveEntry {
    fw::DriveEntry {
        id: U16::new(id),
        state: drive_state::ONLINE,
        reserved: 0,
        volume: U32::new(volume),
        capacity_bytes: U64::new(1 << 30),
    }
}

fn fw_event(sequence: u64, code: u16, volume: u16) -> fw::EventEntry {
    fw::EventEntry {
        sequence: U64::new(sequence),
        code: U16::new(code),
        volume: U16::new(volume),
        drive: U16::new(3),
        percent: 0,
        reserved: 0,
    }
}

fn bytes_of<T: IntoBytes + zerocopy::Immutable>(items: &[T]) -> Vec<u8> {
    items.iter().flat_map(|i| i.as_bytes().to_vec()).collect()
}

fn ctx(stats: &IoStatsTable, stage: Stage) -> Context<'_> {
    Context { stage, stats }
}

/// The engine alone: submit, send, answer as the firmware, fetch. Returns the opcode and
/// arguments the firmware got and the response.
struct Run {
    opcode: u8,
    args: [u32; 4],
    response: Vec<u8>,
}

fn run(request: &[u8], status: u8, data: &[u8]) -> Run {
    let stats = IoStatsTable::new();
    let mut e = AdminEngine::new();
    let ticket = e.submit(OWNER, request, true, ctx(&stats, Stage::Full)).unwrap();
    assert_eq!(e.state(ticket), SlotState::Queued);
    let (t, opcode, args) = e.next_to_send().expect("a firmware-backed request");
    assert_eq!(t, ticket);
    e.sent(ticket);
    assert_eq!(e.state(ticket), SlotState::Sent);
    assert_eq!(e.next_to_send(), None, "one at a time");
    let reply = ReplyDescriptor::sealed(fw::CONTROL_SMID, status, 0, data.len() as u32, 1);
    e.firmware_done(opcode, &reply, data, Stage::Full);
    assert_eq!(e.next_ready(), Some((ticket, e_bytes(&e, ticket))));
    let mut out = vec![0u8; MAX_RESPONSE];
    let n = e.fetch(OWNER, ticket, &mut out).unwrap();
    out.truncate(n);
    assert_eq!(e.state(ticket), SlotState::Free);
    Run { opcode, args, response: out }
}

fn e_bytes(e: &AdminEngine, ticket: u32) -> u32 {
    let mut probe = vec![0u8; MAX_RESPONSE];
    let mut copy = e.clone();
    copy.fetch(OWNER, ticket, &mut probe).unwrap() as u32
}

fn answer(bytes: &[u8]) -> Response<'_> {
    decode_response(bytes).unwrap()
}

#[test]
fn controller_show_maps_to_controller_info_with_the_stage_and_driver_version() {
    let info = fw::ControllerInfo {
        max_commands: U32::new(256),
        max_targets: U32::new(128),
        drives: U32::new(8),
        volumes: U32::new(2),
        firmware_version: *b"dkraid-sim 1.0\0\0",
        serial: *b"DKSIM00000000001",
    };
    let r = run(&req(9, &Body::ControllerShow), 0, info.as_bytes());
    assert_eq!((r.opcode, r.args), (mgmt::CONTROLLER_INFO, [0; 4]));
    let a = answer(&r.response);
    assert_eq!((a.command, a.sequence, a.status), (command::CONTROLLER_SHOW, 9, status::OK));
    let got = ControllerInfo::read_from_bytes(a.payload).unwrap();
    assert_eq!((got.max_commands.get(), got.drives.get(), got.volumes.get()), (256, 8, 2));
    assert_eq!(got.stage.get(), Stage::Full.number());
    assert_eq!(&got.firmware_version, b"dkraid-sim 1.0\0\0");
    assert_eq!(&got.serial, b"DKSIM00000000001");
    let version = env!("CARGO_PKG_VERSION").as_bytes();
    assert_eq!(&got.driver_version[..version.len()], version);
    // A short reply does not parse: DEVICE_ERROR.
    let r = run(&req(9, &Body::ControllerShow), 0, &info.as_bytes()[..40]);
    assert_eq!(answer(&r.response).status, status::DEVICE_ERROR);
}

#[test]
fn volume_list_and_show_translate_the_firmware_entries() {
    let data = bytes_of(&[fw_volume(0, 0b111, 64 * 1024), fw_volume(4, 0xF0, 256 * 1024)]);
    let r = run(&req(1, &Body::VolumeList), 0, &data);
    assert_eq!((r.opcode, r.args), (mgmt::LIST_VOLUMES, [0; 4]));
    let a = answer(&r.response);
    let (total, list) = decode_list::<VolumeEntry>(a.payload).unwrap();
    assert_eq!((total, list.len()), (2, 2));
    let v = list[1];
    assert_eq!((v.id.get(), v.state, v.level, v.block_size.get()), (4, 1, 5, 4096));
    assert_eq!((v.strip_kib.get(), v.drive_count, v.drives.get()), (256, 4, 0xF0));
    assert_eq!((v.capacity_blocks.get(), v.rebuild_percent), (1 << 20, 40));
    assert_eq!((list[0].strip_kib.get(), list[0].drive_count), (64, 3));

    let show = vref(4);
    let r = run(&req(2, &Body::VolumeShow(&show)), 0, &data);
    assert_eq!(r.opcode, mgmt::LIST_VOLUMES);
    let a = answer(&r.response);
    assert_eq!(a.status, status::OK);
    assert_eq!(VolumeEntry::read_from_bytes(a.payload).unwrap(), v);
    let absent = vref(3);
    let r = run(&req(3, &Body::VolumeShow(&absent)), 0, &data);
    assert_eq!((answer(&r.response).status, answer(&r.response).payload.len()), (13, 0));
    // A list that is not a whole number of entries is refused, not read in part.
    let r = run(&req(1, &Body::VolumeList), 0, &data[..40]);
    assert_eq!(answer(&r.response).status, status::DEVICE_ERROR);
}

#[test]
fn a_long_list_is_truncated_to_the_response_and_keeps_its_total() {
    let volumes: Vec<_> = (0..128).map(|i| fw_volume(i, 1 << (i % 64), 65536)).collect();
    let r = run(&req(1, &Body::VolumeList), 0, &bytes_of(&volumes));
    assert_eq!(r.response.len(), MAX_RESPONSE - (MAX_RESPONSE - 36) % 32);
    let (total, list) = decode_list::<VolumeEntry>(answer(&r.response).payload).unwrap();
    assert_eq!((total, list.len()), (128, (MAX_RESPONSE - 36) / 32));
}

#[test]
fn drive_list_and_show_translate_the_firmware_entries() {
    let data = bytes_of(&[fw_drive(0, 0), fw_drive(7, u32::MAX)]);
    let r = run(&req(1, &Body::DriveList), 0, &data);
    assert_eq!((r.opcode, r.args), (mgmt::LIST_DRIVES, [0; 4]));
    let (total, list) = decode_list::<DriveEntry>(answer(&r.response).payload).unwrap();
    assert_eq!(total, 2);
    assert_eq!((list[0].id.get(), list[0].volume.get()), (0, 0));
    assert_eq!(
        (list[1].id.get(), list[1].volume.get(), list[1].capacity_bytes.get()),
        (7, 0xFFFF, 1 << 30)
    );
    let show = dref(7);
    let r = run(&req(2, &Body::DriveShow(&show)), 0, &data);
    assert_eq!(DriveEntry::read_from_bytes(answer(&r.response).payload).unwrap(), list[1]);
    let absent = dref(8);
    let r = run(&req(2, &Body::DriveShow(&absent)), 0, &data);
    assert_eq!(answer(&r.response).status, status::NOT_FOUND);
}

#[test]
fn events_since_clamps_the_sequence_and_honours_max() {
    let events: Vec<_> = (1..=10).map(|s| fw_event(s, event::REBUILD_PROGRESS, 2)).collect();
    let since = EventsSince { sequence: U64::new(4), max: U32::new(3) };
    // The firmware may send older events too: only newer ones count.
    let r = run(&req(1, &Body::EventsSince(&since)), 0, &bytes_of(&events));
    assert_eq!((r.opcode, r.args), (mgmt::EVENTS_SINCE, [4, 0, 0, 0]));
    let (total, list) = decode_list::<EventEntry>(answer(&r.response).payload).unwrap();
    assert_eq!(total, 3);
    assert_eq!(list.iter().map(|e| e.sequence.get()).collect::<Vec<_>>(), [5, 6, 7]);
    assert_eq!((list[0].code.get(), list[0].volume.get(), list[0].drive.get()), (4, 2, 3));
    let huge = EventsSince { sequence: U64::new(1 << 40), max: U32::new(1024) };
    let r = run(&req(1, &Body::EventsSince(&huge)), 0, &[]);
    assert_eq!(r.args[0], u32::MAX);
    assert_eq!(decode_list::<EventEntry>(answer(&r.response).payload).unwrap().0, 0);
}

#[test]
fn the_destructive_commands_map_to_their_management_opcodes() {
    let c = create(5, &[1, 2, 40], 64, 4096);
    let created = fw_volume(3, (1 << 1) | (1 << 2) | (1 << 40), 65536);
    let r = run(&req(1, &Body::VolumeCreate(&c)), 0, created.as_bytes());
    assert_eq!(r.opcode, mgmt::CREATE_VOLUME);
    assert_eq!(r.args, [5 | (12 << 8), 65536, 0b110, 1 << 8]);
    let a = answer(&r.response);
    assert_eq!(a.status, status::OK);
    let v = VolumeEntry::read_from_bytes(a.payload).unwrap();
    assert_eq!((v.id.get(), v.drive_count, v.strip_kib.get()), (3, 3, 64));
    let c512 = create(0, &[9], 4, 512);
    let r = run(&req(1, &Body::VolumeCreate(&c512)), 0, created.as_bytes());
    assert_eq!(r.args, [9 << 8, 4096, 1 << 9, 0]);
    // Success without the new volume's entry does not parse.
    let r = run(&req(1, &Body::VolumeCreate(&c)), 0, &[]);
    assert_eq!(answer(&r.response).status, status::DEVICE_ERROR);

    let del = vref(3);
    let r = run(&req(2, &Body::VolumeDelete(&del)), 0, &[]);
    assert_eq!((r.opcode, r.args), (mgmt::DELETE_VOLUME, [3, 0, 0, 0]));
    assert_eq!(answer(&r.response).status, status::OK);
    assert!(answer(&r.response).payload.is_empty());

    let global = HotspareSet { drive: U16::new(6), volume: U16::new(GLOBAL_SPARE) };
    let r = run(&req(3, &Body::HotspareSet(&global)), 0, &[]);
    assert_eq!((r.opcode, r.args), (mgmt::SET_HOT_SPARE, [6, 1, 0xFFFF, 0]));
    let dedicated = HotspareSet { drive: U16::new(6), volume: U16::new(2) };
    let r = run(&req(3, &Body::HotspareSet(&dedicated)), 0, &[]);
    assert_eq!(r.args, [6, 1, 2, 0]);
    let clear = dref(6);
    let r = run(&req(4, &Body::HotspareClear(&clear)), 0, &[]);
    assert_eq!((r.opcode, r.args), (mgmt::SET_HOT_SPARE, [6, 0, 0, 0]));
    let rebuild = RebuildStart { volume: U16::new(2), drive: U16::new(6) };
    let r = run(&req(5, &Body::RebuildStart(&rebuild)), 0, &[]);
    assert_eq!((r.opcode, r.args), (mgmt::START_REBUILD, [2, 6, 0, 0]));
    assert_eq!(answer(&r.response).sequence, 5);
}

#[test]
fn a_spare_dedicated_to_volume_0_goes_to_the_firmware() {
    // Only 0xFFFF means "global": volume 0 is a volume like any other.
    let stats = IoStatsTable::new();
    let mut e = AdminEngine::new();
    let h = HotspareSet { drive: U16::new(6), volume: U16::new(0) };
    let t =
        e.submit(OWNER, &req(1, &Body::HotspareSet(&h)), true, ctx(&stats, Stage::Full)).unwrap();
    assert_eq!(e.state(t), SlotState::Queued);
    assert!(e.next_to_send().is_some());
}

#[test]
fn firmware_statuses_map_to_admin_statuses() {
    let del = vref(3);
    for (fw_status, admin) in [
        (mgmt_status::NOT_FOUND, status::NOT_FOUND),
        (mgmt_status::BUSY, status::REJECTED),
        (mgmt_status::INVALID_ARGUMENT, status::REJECTED),
        (mgmt_status::UNSUPPORTED, status::REJECTED),
        (mgmt_status::INVALID_FUNCTION, status::DEVICE_ERROR),
        (mgmt_status::NO_BUFFER, status::DEVICE_ERROR),
        (mgmt_status::FAILED, status::DEVICE_ERROR),
        (0x77, status::DEVICE_ERROR),
    ] {
        let r = run(&req(7, &Body::VolumeDelete(&del)), fw_status, &[1, 2, 3]);
        let a = answer(&r.response);
        assert_eq!((a.status, a.command, a.sequence), (admin, command::VOLUME_DELETE, 7));
        assert!(a.payload.is_empty());
    }
}

#[test]
fn requests_the_core_answers_itself_are_ready_at_once() {
    let mut stats = IoStatsTable::new();
    let ok = abi::dk_scsi_user_parallel_response {
        fServiceResponse: abi::ServiceResponse::TASK_COMPLETE.0,
        fBytesTransferred: 4096,
        ..Default::default()
    };
    stats.complete(2, Started::new(1_000, IoKind::Read), 1_000 + 3_000, &ok);
    let mut e = AdminEngine::new();
    let t = e.submit(OWNER, &req(1, &Body::StageGet), false, ctx(&stats, Stage::SingleIo)).unwrap();
    let all = vref(ALL_VOLUMES);
    let t2 = e
        .submit(OWNER, &req(2, &Body::IoStats(&all)), false, ctx(&stats, Stage::SingleIo))
        .unwrap();
    assert_eq!(e.next_to_send(), None, "nothing for the firmware");
    assert_eq!(e.next_ready().map(|r| r.0), Some(t));
    assert_eq!(e.next_ready().map(|r| r.0), Some(t2));
    assert_eq!(e.next_ready(), None, "each ticket is reported once");
    let mut out = [0u8; 256];
    let n = e.fetch(OWNER, t, &mut out).unwrap();
    let a = answer(&out[..n]);
    assert_eq!(StageInfo::read_from_bytes(a.payload).unwrap().stage.get(), 2);
    let n = e.fetch(OWNER, t2, &mut out).unwrap();
    let s = IoStats::read_from_bytes(answer(&out[..n]).payload).unwrap();
    assert_eq!((s.reads.get(), s.read_bytes.get(), s.writes.get()), (1, 4096, 0));
    assert_eq!(s.latency_us_log2[2].get(), 1, "3 µs is in [2, 4)");
}

#[test]
fn stages_0_and_1_answer_firmware_backed_commands_not_ready() {
    let stats = IoStatsTable::new();
    for stage in [Stage::Pipeline, Stage::FakeBlock] {
        let mut e = AdminEngine::new();
        let t = e.submit(OWNER, &req(3, &Body::VolumeList), true, ctx(&stats, stage)).unwrap();
        assert_eq!(e.state(t), SlotState::Ready);
        let mut out = [0u8; 64];
        let n = e.fetch(OWNER, t, &mut out).unwrap();
        let a = answer(&out[..n]);
        assert_eq!((a.status, a.command, a.sequence), (status::NOT_READY, command::VOLUME_LIST, 3));
    }
}

#[test]
fn malformed_and_unpermitted_requests_get_a_ticket_and_their_named_error() {
    let stats = IoStatsTable::new();
    let mut e = AdminEngine::new();
    let mut out = [0u8; 64];
    let mut bad = req(5, &Body::VolumeList);
    bad[0] ^= 1;
    let t = e.submit(OWNER, &bad, true, ctx(&stats, Stage::Full)).unwrap();
    assert_ne!(t, 0);
    let n = e.fetch(OWNER, t, &mut out).unwrap();
    let a = answer(&out[..n]);
    assert_eq!((a.status, a.command, a.sequence), (status::BAD_MAGIC, 0, 0));
    // A field out of range echoes the request's command and sequence.
    let c = create(5, &[1, 2, 3], 48, 512);
    let t =
        e.submit(OWNER, &req(6, &Body::VolumeCreate(&c)), true, ctx(&stats, Stage::Full)).unwrap();
    let n = e.fetch(OWNER, t, &mut out).unwrap();
    let a = answer(&out[..n]);
    assert_eq!((a.status, a.command, a.sequence), (status::FIELD_OUT_OF_RANGE, 0x10, 6));
    // Destructive without the entitlement.
    let del = vref(1);
    let t = e
        .submit(OWNER, &req(7, &Body::VolumeDelete(&del)), false, ctx(&stats, Stage::Full))
        .unwrap();
    let n = e.fetch(OWNER, t, &mut out).unwrap();
    assert_eq!(answer(&out[..n]).status, status::NOT_PERMITTED);
    // Read-only commands need no entitlement.
    let t = e.submit(OWNER, &req(8, &Body::VolumeList), false, ctx(&stats, Stage::Full)).unwrap();
    assert_eq!(e.state(t), SlotState::Queued);
    // Too long, and empty.
    let t = e.submit(OWNER, &[0u8; MAX_REQUEST_BYTES + 1], true, ctx(&stats, Stage::Full)).unwrap();
    let n = e.fetch(OWNER, t, &mut out).unwrap();
    assert_eq!(answer(&out[..n]).status, status::REQUEST_TOO_LARGE);
    let t = e.submit(OWNER, &[], true, ctx(&stats, Stage::Full)).unwrap();
    let n = e.fetch(OWNER, t, &mut out).unwrap();
    assert_eq!(answer(&out[..n]).status, status::SHORT_REQUEST);
}

#[test]
fn a_ticket_is_fetched_only_by_its_owner_and_goes_when_its_owner_closes() {
    let stats = IoStatsTable::new();
    let mut e = AdminEngine::new();
    let other = OWNER + 1;
    let mine = e.submit(OWNER, &req(1, &Body::StageGet), true, ctx(&stats, Stage::Full)).unwrap();
    let theirs = e.submit(other, &req(2, &Body::StageGet), true, ctx(&stats, Stage::Full)).unwrap();
    let queued =
        e.submit(OWNER, &req(3, &Body::VolumeList), true, ctx(&stats, Stage::Full)).unwrap();
    let mut out = [0u8; MAX_RESPONSE];
    assert_eq!(e.fetch(other, mine, &mut out), Err(AdminCallError::NotFound { ticket: mine }));
    assert_eq!(e.state(mine), SlotState::Ready, "another owner's fetch leaves it");
    // The owner goes away with one answer unfetched and one request queued: both slots free.
    assert_eq!(e.close(OWNER), 2);
    assert_eq!((e.state(mine), e.state(queued)), (SlotState::Free, SlotState::Free));
    assert_eq!(e.close(OWNER), 0);
    assert!(e.fetch(other, theirs, &mut out).is_ok(), "the other owner's ticket stays");
}

#[test]
fn slots_full_fetch_too_small_and_cancel() {
    let stats = IoStatsTable::new();
    let mut e = AdminEngine::new();
    let mut tickets = Vec::new();
    for i in 0..ADMIN_SLOTS {
        tickets.push(
            e.submit(OWNER, &req(i as u32, &Body::VolumeList), true, ctx(&stats, Stage::Full))
                .unwrap(),
        );
    }
    assert!(tickets.windows(2).all(|w| w[1] > w[0]), "increasing: {tickets:?}");
    assert_eq!(
        e.submit(OWNER, &req(9, &Body::StageGet), true, ctx(&stats, Stage::Full)),
        Err(AdminCallError::NoResources)
    );
    assert_eq!(AdminCallError::NoResources.ioreturn(), crate::IOReturn::kIOReturnNoResources);
    let mut out = [0u8; MAX_RESPONSE];
    assert_eq!(
        e.fetch(OWNER, tickets[0], &mut out),
        Err(AdminCallError::NotReady { ticket: tickets[0] })
    );
    assert_eq!(e.fetch(OWNER, 12345, &mut out), Err(AdminCallError::NotFound { ticket: 12345 }));
    // The oldest goes first; cancel it while the firmware holds it.
    let (first, opcode, _) = e.next_to_send().unwrap();
    assert_eq!(first, tickets[0]);
    e.sent(first);
    e.cancel(first).unwrap();
    assert_eq!(e.cancel(first), Err(AdminCallError::NotFound { ticket: first }));
    assert_eq!(e.next_to_send(), None, "the cancelled request still holds the firmware");
    let t = e.submit(OWNER, &req(10, &Body::StageGet), true, ctx(&stats, Stage::Full)).unwrap();
    assert!(!tickets.contains(&t));
    // Its reply finishes into nothing: no slot becomes ready from it.
    let data = bytes_of(&[fw_volume(0, 1, 65536)]);
    let reply = ReplyDescriptor::sealed(fw::CONTROL_SMID, 0, 0, data.len() as u32, 1);
    e.firmware_done(opcode, &reply, &data, Stage::Full);
    assert_eq!(e.next_ready().map(|r| r.0), Some(t));
    assert_eq!(e.next_ready(), None);
    assert_eq!(e.count_in(SlotState::Queued), ADMIN_SLOTS - 1);
    // The stage answer is 24 bytes: a smaller buffer keeps the slot.
    let mut small = [0u8; 23];
    assert_eq!(
        e.fetch(OWNER, t, &mut small),
        Err(AdminCallError::NoSpace { ticket: t, needed: 24, capacity: 23 })
    );
    assert_eq!(e.state(t), SlotState::Ready);
    assert_eq!(e.fetch(OWNER, t, &mut out), Ok(24));
    assert_eq!(e.state(t), SlotState::Free);
}

#[test]
fn tickets_wrap_past_zero() {
    let stats = IoStatsTable::new();
    let mut e = AdminEngine::new();
    let mut out = [0u8; 64];
    let mut last = 0;
    for _ in 0..3 {
        last = e.submit(OWNER, &req(1, &Body::StageGet), true, ctx(&stats, Stage::Full)).unwrap();
        e.fetch(OWNER, last, &mut out).unwrap();
    }
    assert_eq!(last, 3);
    // Reaching the wrap through submits would take 2^32 of them: start near it instead.
    let mut e = AdminEngine::with_last_ticket(u32::MAX - 1);
    let a = e.submit(OWNER, &req(1, &Body::StageGet), true, ctx(&stats, Stage::Full)).unwrap();
    let b = e.submit(OWNER, &req(1, &Body::StageGet), true, ctx(&stats, Stage::Full)).unwrap();
    assert_eq!((a, b), (u32::MAX, 1), "0 is skipped");
}

#[test]
fn a_reset_makes_the_sent_request_busy_and_a_failed_firmware_fails_them_all() {
    let stats = IoStatsTable::new();
    let mut e = AdminEngine::new();
    let a = e.submit(OWNER, &req(1, &Body::VolumeList), true, ctx(&stats, Stage::Full)).unwrap();
    let b = e.submit(OWNER, &req(2, &Body::DriveList), true, ctx(&stats, Stage::Full)).unwrap();
    e.sent(a);
    e.firmware_lost(status::BUSY);
    let mut out = [0u8; 64];
    let n = e.fetch(OWNER, a, &mut out).unwrap();
    assert_eq!(answer(&out[..n]).status, status::BUSY);
    assert_eq!(e.state(b), SlotState::Queued, "a queued request waits for the firmware");
    e.firmware_failed();
    let n = e.fetch(OWNER, b, &mut out).unwrap();
    assert_eq!(answer(&out[..n]).status, status::DEVICE_ERROR);
    // A reply flagged ABORTED (flushed) is BUSY too.
    let t = e.submit(OWNER, &req(3, &Body::DriveList), true, ctx(&stats, Stage::Full)).unwrap();
    let (_, opcode, _) = e.next_to_send().unwrap();
    e.sent(t);
    let reply = ReplyDescriptor::sealed(fw::CONTROL_SMID, 0, fw::ReplyFlags::ABORTED.bits(), 0, 1);
    e.firmware_done(opcode, &reply, &[], Stage::Full);
    let n = e.fetch(OWNER, t, &mut out).unwrap();
    assert_eq!(answer(&out[..n]).status, status::BUSY);
}

#[test]
fn latency_buckets_and_what_counts() {
    let mut s = IoStatsTable::new();
    let good = |bytes| abi::dk_scsi_user_parallel_response {
        fServiceResponse: abi::ServiceResponse::TASK_COMPLETE.0,
        fBytesTransferred: bytes,
        ..Default::default()
    };
    let check = abi::dk_scsi_user_parallel_response {
        fServiceResponse: abi::ServiceResponse::TASK_COMPLETE.0,
        fCompletionStatus: abi::TaskStatus::CHECK_CONDITION.0,
        ..Default::default()
    };
    let t0 = 1_000_000;
    s.complete(1, Started::new(t0, IoKind::Read), t0 + 500, &good(512)); // < 1 µs
    s.complete(1, Started::new(t0, IoKind::Read), t0 + 1_000, &good(512)); // 1 µs
    s.complete(1, Started::new(t0, IoKind::Write), t0 + 1_000_000, &good(8192)); // 1000 µs
    s.complete(1, Started::new(t0, IoKind::Write), t0 + 60_000_000_000, &check); // a minute
    s.complete(1, Started::new(t0, IoKind::Other), t0 + 5_000, &good(36)); // not counted
    s.complete(1, Started::new(t0, IoKind::Other), t0 + 5_000, &check); // an error only
    s.complete(127, Started::new(t0, IoKind::Read), t0 + 2_000, &good(4096));
    s.complete(999, Started::new(t0, IoKind::Read), t0 + 2_000, &good(4096)); // total only
    let v = s.get(1);
    assert_eq!((v.reads, v.writes, v.read_bytes, v.write_bytes, v.errors), (2, 2, 1024, 8192, 2));
    let mut expected = [0u64; LATENCY_BUCKETS];
    expected[0] = 1;
    expected[1] = 1;
    expected[latency_bucket(1000)] = 1;
    expected[15] = 1;
    assert_eq!(latency_bucket(1000), 10);
    assert_eq!(v.latency_us_log2, expected);
    assert_eq!(s.get(127).reads, 1);
    let all = s.get(ALL_VOLUMES);
    assert_eq!((all.reads, all.writes, all.errors, all.read_bytes), (4, 2, 2, 1024 + 8192));
    assert_eq!(all.latency_us_log2.iter().sum::<u64>(), 6);
    assert_eq!(s.get(5), super::stats::Counters::ZERO);
    assert_eq!(IoKind::of_cdb(0x88), IoKind::Read);
    assert_eq!(IoKind::of_cdb(0xAA), IoKind::Write);
    assert_eq!(IoKind::of_cdb(0x12), IoKind::Other);
    let st = Started::new(0x1234_5677, IoKind::Write);
    assert_eq!((st.at_ns(), st.kind()), (0x1234_5674, IoKind::Write));
}

proptest! {
    /// Whatever the firmware writes, the engine answers (OK or an error) and never panics.
    #[test]
    fn any_firmware_reply_is_answered_without_panicking(
        which in 0usize..11,
        status in any::<u8>(),
        flags in any::<u8>(),
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        transferred in any::<u32>(),
    ) {
        let c = create(1, &[1, 2], 64, 512);
        let v = vref(1);
        let d = dref(1);
        let ev = EventsSince { sequence: U64::new(3), max: U32::new(100) };
        let hs = HotspareSet { drive: U16::new(1), volume: U16::new(GLOBAL_SPARE) };
        let rb = RebuildStart { volume: U16::new(1), drive: U16::new(2) };
        let bodies = [
            Body::ControllerShow, Body::VolumeList, Body::VolumeShow(&v), Body::DriveList,
            Body::DriveShow(&d), Body::EventsSince(&ev), Body::VolumeCreate(&c),
            Body::VolumeDelete(&v), Body::HotspareSet(&hs), Body::HotspareClear(&d),
            Body::RebuildStart(&rb),
        ];
        let stats = IoStatsTable::new();
        let mut e = AdminEngine::new();
        let t = e.submit(OWNER, &req(1, &bodies[which]), true, ctx(&stats, Stage::Full)).unwrap();
        let (_, opcode, _) = e.next_to_send().unwrap();
        e.sent(t);
        let reply = ReplyDescriptor::sealed(fw::CONTROL_SMID, status, flags, transferred, 1);
        e.firmware_done(opcode, &reply, &data, Stage::Full);
        let mut out = vec![0u8; MAX_RESPONSE];
        let n = e.fetch(OWNER, t, &mut out).unwrap();
        let a = decode_response(&out[..n]).unwrap();
        prop_assert_eq!(a.command, bodies[which].command());
        prop_assert!(status::name(a.status).is_some());
    }
}

/// The engine inside the controller: the control frame shared with the stage's work.
mod in_the_controller {
    use super::*;
    use crate::controller::Controller;
    use crate::firmware::tests::stages::{answer_list_volumes, bring_up, controller, service};
    use crate::firmware::tests::Device;
    use crate::firmware::wire::{MgmtFrame, CONTROL_SMID};
    use crate::platform::fake::FakePlatform;

    /// The requests the device took: (opcode, args) of each management frame.
    fn taken(c: &mut Controller<FakePlatform>, dev: &mut Device) -> Vec<(u8, [u32; 4], u64)> {
        let p = c.platform_mut();
        dev.take(p)
            .into_iter()
            .map(|(d, _)| {
                let m = MgmtFrame::read_from_bytes(p.dma(d.frame.get(), 40).unwrap()).unwrap();
                (m.opcode, m.args.map(|a| a.get()), m.buffer.get())
            })
            .collect()
    }

    fn fetch(c: &mut Controller<FakePlatform>, ticket: u32) -> Vec<u8> {
        let mut out = vec![0u8; MAX_RESPONSE];
        let n = c.admin_fetch(OWNER, ticket, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn admin_waits_for_the_stages_list_volumes_and_its_replies_stay_apart() {
        let mut c = controller(abi::DK_STAGE_FULL);
        // Submitted before the firmware is up: it waits.
        let t = c.admin_submit(OWNER, &req(1, &Body::VolumeList), false).unwrap();
        let events = EventsSince { sequence: U64::new(0), max: U32::new(16) };
        let te = c.admin_submit(OWNER, &req(2, &Body::EventsSince(&events)), false).unwrap();
        let mut dev = bring_up(&mut c);
        assert_eq!(c.admin().state(t), SlotState::Queued);
        // The stage's LIST_VOLUMES went first and alone.
        let (d, _) = dev.take(c.platform_mut())[0];
        let m =
            MgmtFrame::read_from_bytes(c.platform_mut().dma(d.frame.get(), 40).unwrap()).unwrap();
        assert_eq!(m.opcode, mgmt::LIST_VOLUMES);
        for now in [2_500, 2_600] {
            let (_, poll) = service(&mut c, now);
            assert!(poll > 0, "admin work is queued: poll");
            assert!(dev.take(c.platform_mut()).is_empty(), "admin never takes the frame");
        }
        // The stage's reply creates targets (and does not answer the admin request); in the
        // same pass the admin request gets the frame.
        let p = c.platform_mut();
        let list = bytes_of(&[fw_volume(0, 1, 65536)]);
        p.dma(m.buffer.get(), list.len()).unwrap().copy_from_slice(&list);
        dev.reply(p, CONTROL_SMID, 0, 0, list.len() as u32);
        service(&mut c, 3_000);
        let w = c.next_target_work();
        assert_eq!((w.kind, w.target_id), (abi::DK_TARGET_WORK_CREATE, 0));
        c.target_work_done(w.kind, 0, crate::IOReturn::kIOReturnSuccess).unwrap();
        assert_eq!(c.admin().state(t), SlotState::Sent);
        let sent = taken(&mut c, &mut dev);
        assert_eq!(sent.iter().map(|s| s.0).collect::<Vec<_>>(), [mgmt::LIST_VOLUMES]);
        // The admin's LIST_VOLUMES reply names volume 5: no target work comes of it.
        let list = bytes_of(&[fw_volume(0, 1, 65536), fw_volume(5, 2, 65536)]);
        let p = c.platform_mut();
        p.dma(sent[0].2, list.len()).unwrap().copy_from_slice(&list);
        dev.reply(p, CONTROL_SMID, 0, 0, list.len() as u32);
        service(&mut c, 4_000);
        let w = c.next_target_work();
        assert_eq!(w.kind, abi::DK_TARGET_WORK_NONE, "the admin's list is not the stage's");
        assert_eq!(c.admin_next_ready(), Some((t, (20 + 16 + 64) as u32)));
        let r = fetch(&mut c, t);
        assert_eq!(decode_list::<VolumeEntry>(answer(&r).payload).unwrap().0, 2);
        // The admin's EVENTS_SINCE went next; a VOLUME_CREATED in its reply is no hot plug.
        let sent = taken(&mut c, &mut dev);
        assert_eq!(sent[0].0, mgmt::EVENTS_SINCE);
        let ev = bytes_of(&[fw_event(1, event::VOLUME_CREATED, 9)]);
        let p = c.platform_mut();
        p.dma(sent[0].2, ev.len()).unwrap().copy_from_slice(&ev);
        dev.reply(p, CONTROL_SMID, 0, 0, ev.len() as u32);
        let (_, poll) = service(&mut c, 5_000);
        assert_eq!(poll, 0, "idle again");
        assert_eq!(c.next_target_work().kind, abi::DK_TARGET_WORK_NONE);
        let r = fetch(&mut c, te);
        let (_, list) = decode_list::<EventEntry>(answer(&r).payload).unwrap();
        assert_eq!((list.len(), list[0].volume.get()), (1, 9));
        c.teardown();
        assert_eq!(c.platform().live_buffers(), 0);
    }

    #[test]
    fn events_the_firmware_announces_but_never_delivers_do_not_starve_admin_requests() {
        let mut c = controller(abi::DK_STAGE_FULL);
        let mut dev = bring_up(&mut c);
        answer_list_volumes(&mut c, &mut dev, &[0]);
        // Event 3 is announced; EVENTS_SINCE answers with nothing newer.
        let p = c.platform_mut();
        dev.reply_tagged(p, fw::EVENT_SMID, 0, fw::ReplyFlags::EVENT.bits(), 3, 0);
        service(&mut c, 3_000);
        let sent = taken(&mut c, &mut dev);
        assert_eq!((sent[0].0, sent[0].1[0]), (mgmt::EVENTS_SINCE, 0));
        let t = c.admin_submit(OWNER, &req(1, &Body::ControllerShow), false).unwrap();
        dev.reply(c.platform_mut(), CONTROL_SMID, 0, 0, 0);
        service(&mut c, 4_000);
        // The stage gives those events up instead of asking again: the admin request goes.
        let sent = taken(&mut c, &mut dev);
        assert_eq!(sent.iter().map(|s| s.0).collect::<Vec<_>>(), [mgmt::CONTROLLER_INFO]);
        assert_eq!(c.admin().state(t), SlotState::Sent);
        c.teardown();
    }

    #[test]
    fn a_reset_while_sent_answers_busy_and_a_dead_firmware_device_error() {
        let mut c = controller(abi::DK_STAGE_FULL);
        let mut dev = bring_up(&mut c);
        answer_list_volumes(&mut c, &mut dev, &[0]);
        let t = c.admin_submit(OWNER, &req(1, &Body::DriveList), false).unwrap();
        service(&mut c, 3_500);
        assert_eq!(taken(&mut c, &mut dev)[0].0, mgmt::LIST_DRIVES);
        let queued = c.admin_submit(OWNER, &req(2, &Body::ControllerShow), false).unwrap();
        // The firmware falls back to READY on its own: the health check resets it.
        crate::firmware::tests::set_state(c.platform_mut(), fw::fw_state::READY);
        service(&mut c, 200_000_000);
        assert_eq!(c.admin_next_ready().map(|r| r.0), Some(t));
        assert_eq!(answer(&fetch(&mut c, t)).status, status::BUSY);
        assert_eq!(c.admin().state(queued), SlotState::Queued);
        // It never comes back: every bring-up attempt times out (retried with back-off), then
        // the controller is dead and the queued request fails.
        crate::firmware::tests::set_state(c.platform_mut(), fw::fw_state::RESET);
        let mut now = 200_000_000 + 20_000_000_000;
        service(&mut c, now);
        while c.hardware().unwrap().failed().is_none() && now < 400_000_000_000 {
            assert_eq!(c.admin().state(queued), SlotState::Queued, "kept while retrying");
            now += 1_000_000_000;
            service(&mut c, now);
        }
        assert!(c.hardware().unwrap().failed().is_some());
        assert_eq!(answer(&fetch(&mut c, queued)).status, status::DEVICE_ERROR);
        // And later requests fail at once (on the next service pass).
        let late = c.admin_submit(OWNER, &req(3, &Body::VolumeList), false).unwrap();
        service(&mut c, now + 1_000_000_000);
        assert_eq!(answer(&fetch(&mut c, late)).status, status::DEVICE_ERROR);
        assert_eq!(c.admin_event_sequence(), 0);
        c.teardown();
    }

    #[test]
    fn stop_answers_the_waiting_requests_not_ready() {
        let mut c = controller(abi::DK_STAGE_FULL);
        let mut dev = bring_up(&mut c);
        answer_list_volumes(&mut c, &mut dev, &[0]);
        let sent = c.admin_submit(OWNER, &req(1, &Body::DriveList), false).unwrap();
        service(&mut c, 3_500);
        let queued = c.admin_submit(OWNER, &req(2, &Body::VolumeList), false).unwrap();
        assert_eq!(c.admin().state(sent), SlotState::Sent);
        c.stop_controller().unwrap();
        assert_eq!(answer(&fetch(&mut c, sent)).status, status::NOT_READY);
        assert_eq!(answer(&fetch(&mut c, queued)).status, status::NOT_READY);
        c.teardown();
    }

    #[test]
    fn io_stats_count_stage_1_and_stage_3_completions() {
        // Stage 1: the emulated disk.
        let mut c = controller(abi::DK_STAGE_FAKE_BLOCK);
        let w = c.next_target_work();
        c.target_work_done(w.kind, 0, crate::IOReturn::kIOReturnSuccess).unwrap();
        let mut r = abi::dk_scsi_user_parallel_response::default();
        let mut write = abi::dk_scsi_user_parallel_task {
            fControllerTaskIdentifier: 1,
            fCommandSize: 10,
            fTransferDirection: 1,
            fRequestedTransferCount: 512,
            ..Default::default()
        };
        write.fCommandDescriptorBlock[..10].copy_from_slice(&[0x2A, 0, 0, 0, 0, 1, 0, 0, 1, 0]);
        let mut block = [0u8; 512];
        c.process_parallel_task(&write, Some(&mut block), &mut r).unwrap();
        c.task_delivered(1).unwrap();
        let v0 = vref(0);
        let t = c.admin_submit(OWNER, &req(1, &Body::IoStats(&v0)), false).unwrap();
        let s = IoStats::read_from_bytes(answer(&fetch(&mut c, t)).payload).unwrap();
        // The power-on UNIT ATTENTION fails the first command.
        assert_eq!((s.writes.get(), s.errors.get()), (1, 1));
        c.process_parallel_task(&write, Some(&mut block), &mut r).unwrap();
        assert_eq!(c.io_stats().get(0).write_bytes, 512);
        assert_eq!(c.io_stats().get(0).latency_us_log2.iter().sum::<u64>(), 2);
        c.teardown();

        // Stage 3: a firmware completion, 3 ms after submission.
        let mut c = controller(abi::DK_STAGE_FULL);
        let mut dev = bring_up(&mut c);
        answer_list_volumes(&mut c, &mut dev, &[2]);
        let w = c.next_target_work();
        c.target_work_done(w.kind, 2, crate::IOReturn::kIOReturnSuccess).unwrap();
        let mut read = crate::firmware::tests::read_task(3);
        read.fTargetID = 2;
        c.process_parallel_task(&read, None, &mut r).unwrap();
        let submitted = crate::platform::Platform::monotonic_time_ns(c.platform_mut());
        let p = c.platform_mut();
        dev.take(p);
        dev.reply(p, 3, 0, 0, 512);
        let (done, _) = service(&mut c, submitted + 3_000_000);
        assert_eq!(done.len(), 1);
        let s = c.io_stats().get(2);
        assert_eq!((s.reads, s.read_bytes, s.errors), (1, 512, 0));
        assert_eq!(s.latency_us_log2[latency_bucket(3_000)], 1);
        assert_eq!(c.io_stats().get(ALL_VOLUMES).reads, 1);
        c.teardown();
    }
}
