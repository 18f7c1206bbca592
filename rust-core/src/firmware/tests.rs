//! The firmware driver against a small firmware played by the test on the fake platform's
//! registers and memory: bring-up, I/O, bogus replies, timeouts with aborts, reset.

extern crate std;

use std::collections::BTreeMap;
use std::vec::Vec;

use zerocopy::{FromBytes, IntoBytes};

use super::driver::{Firmware, FirmwareError, Step, INIT_TIMEOUT_NS};
use super::wire::{
    doorbell, frame_layout, function, fw_state, reg, InitFrame, MgmtFrame, ReplyDescriptor,
    ReplyFlags, RequestDescriptor, RequestFrame, CONTROL_SMID, INIT_MAGIC,
};
use crate::abi;
use crate::limits::{FrameLayout, PageSize};
use crate::platform::fake::FakePlatform;
use crate::task_pool::{SlotState, TaskId, TaskPool};

/// The firmware's side, as the test plays it.
pub(crate) struct Device {
    request_ring: u64,
    reply_ring: u64,
    entries: u16,
    request_consumer: u16,
    reply_producer: u16,
    phase: u8,
    /// The tag of each SMID's newest request, as taken from its frame.
    tags: BTreeMap<u16, u32>,
}

const ENTRY: usize = core::mem::size_of::<ReplyDescriptor>();

fn set(p: &mut FakePlatform, offset: u64, value: u32) {
    p.registers.insert((0, offset), u64::from(value));
}

/// The firmware's state register, as the device sets it.
pub(crate) fn set_state(p: &mut FakePlatform, state: u32) {
    set(p, reg::FW_STATE, state);
}

fn get(p: &FakePlatform, offset: u64) -> u32 {
    p.registers.get(&(0, offset)).copied().unwrap_or(0) as u32
}

impl Device {
    /// Power on: READY with facts.
    pub(crate) fn ready(p: &mut FakePlatform) {
        set(p, reg::FW_STATE, fw_state::READY);
        set(p, reg::MAX_COMMANDS, 256);
        set(p, reg::MAX_TARGETS, 128);
        set(p, reg::MAX_SGE, 32);
        set(p, reg::MAX_TRANSFER_KIB, 8192);
    }

    /// Handle the INIT doorbell.
    pub(crate) fn init(p: &mut FakePlatform) -> Device {
        assert_eq!(get(p, reg::DOORBELL), doorbell::INIT);
        let iova =
            u64::from(get(p, reg::INIT_FRAME_LO)) | (u64::from(get(p, reg::INIT_FRAME_HI)) << 32);
        let init =
            InitFrame::read_from_bytes(p.dma(iova, 32).expect("the init frame is mapped")).unwrap();
        assert_eq!(init.magic.get(), INIT_MAGIC);
        set(p, reg::FW_STATE, fw_state::OPERATIONAL);
        Device {
            request_ring: init.request_ring.get(),
            reply_ring: init.reply_ring.get(),
            entries: init.request_entries.get(),
            request_consumer: 0,
            reply_producer: 0,
            phase: ReplyFlags::PHASE.bits(),
            tags: BTreeMap::new(),
        }
    }

    /// Take every posted request: (descriptor, frame).
    pub(crate) fn take(&mut self, p: &mut FakePlatform) -> Vec<(RequestDescriptor, RequestFrame)> {
        let producer = get(p, reg::REQUEST_PRODUCER) as u16;
        let mut out = Vec::new();
        while self.request_consumer != producer {
            let at = self.request_ring + u64::from(self.request_consumer) * 16;
            let d = RequestDescriptor::read_from_bytes(p.dma(at, 16).unwrap()).unwrap();
            let f = RequestFrame::read_from_bytes(p.dma(d.frame.get(), 48).unwrap()).unwrap();
            let tag = if d.function == function::MANAGEMENT {
                let m = MgmtFrame::read_from_bytes(p.dma(d.frame.get(), 40).unwrap()).unwrap();
                m.tag.get()
            } else {
                f.tag.get()
            };
            self.tags.insert(d.smid.get(), tag);
            out.push((d, f));
            self.request_consumer = (self.request_consumer + 1) % self.entries;
        }
        set(p, reg::REQUEST_CONSUMER, u32::from(self.request_consumer));
        out
    }

    /// A sealed reply echoing the tag of `smid`'s newest request (0 if none was taken).
    pub(crate) fn reply(
        &mut self,
        p: &mut FakePlatform,
        smid: u16,
        status: u8,
        flags: u8,
        transferred: u32,
    ) {
        let tag = self.tags.get(&smid).copied().unwrap_or(0);
        self.reply_tagged(p, smid, status, flags, transferred, tag);
    }

    /// A sealed reply with this tag, at the producer, in this lap's phase.
    pub(crate) fn reply_tagged(
        &mut self,
        p: &mut FakePlatform,
        smid: u16,
        status: u8,
        flags: u8,
        transferred: u32,
        tag: u32,
    ) {
        let r = ReplyDescriptor::sealed(smid, status, flags | self.phase, transferred, tag);
        self.post(p, &r);
    }

    /// Write `r` as is at the producer and advance.
    pub(crate) fn post(&mut self, p: &mut FakePlatform, r: &ReplyDescriptor) {
        let at = self.reply_ring + u64::from(self.reply_producer) * ENTRY as u64;
        p.dma(at, ENTRY).unwrap().copy_from_slice(r.as_bytes());
        self.reply_producer += 1;
        if self.reply_producer == self.entries {
            self.reply_producer = 0;
            self.phase ^= ReplyFlags::PHASE.bits();
        }
        set(p, reg::REPLY_PRODUCER, u32::from(self.reply_producer));
        set(p, reg::INTR_STATUS, 1);
    }
}

const TASKS: u32 = 8;

fn setup() -> (FakePlatform, TaskPool, Firmware, Device) {
    let mut p = FakePlatform::with_page_size(4096);
    let mut pool = TaskPool::new();
    pool.set_count(TASKS).unwrap();
    let layout = FrameLayout::for_page_size(PageSize::new(4096).unwrap());
    for _ in 0..TASKS {
        pool.map_next(&mut p, layout).unwrap();
    }
    let mut fw = Firmware::new();
    fw.start(&mut p, TASKS, 0).unwrap();
    assert!(matches!(fw.step(&mut p, 0), Step::Pending { .. }), "still in RESET");
    Device::ready(&mut p);
    assert!(matches!(fw.step(&mut p, 1_000), Step::Pending { .. }), "init frame sent");
    let dev = Device::init(&mut p);
    assert_eq!(fw.step(&mut p, 2_000), Step::Operational);
    (p, pool, fw, dev)
}

/// A READ(10) of one 512-byte block at LBA 0 of target 1 (shared with the admin tests).
pub(crate) fn read_task(id: u64) -> abi::dk_scsi_user_parallel_task {
    let mut t = abi::dk_scsi_user_parallel_task {
        fTargetID: 1,
        fControllerTaskIdentifier: id,
        fCommandSize: 10,
        fTransferDirection: 2,
        fRequestedTransferCount: 512,
        fBufferIOVMAddr: 0xD000_0000,
        fTimeoutInMilliSec: 1_000,
        ..Default::default()
    };
    t.fCommandDescriptorBlock[..10].copy_from_slice(&[0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0]);
    t
}

fn submit(
    p: &mut FakePlatform,
    pool: &mut TaskPool,
    fw: &mut Firmware,
    id: u64,
    now: u64,
) -> TaskId {
    let task = pool.task(id).unwrap();
    pool.submit(task).unwrap();
    fw.submit(p, pool, task, &read_task(id), now).unwrap();
    task
}

fn interrupt(
    p: &mut FakePlatform,
    pool: &mut TaskPool,
    fw: &mut Firmware,
) -> Vec<(u64, abi::dk_scsi_user_parallel_response)> {
    let mut done = Vec::new();
    fw.interrupt(p, pool, |t, r| done.push((t.get(), r)));
    done
}

#[test]
fn bring_up_io_and_sense() {
    let (mut p, mut pool, mut fw, mut dev) = setup();
    assert_eq!(fw.facts().max_commands, 256);
    submit(&mut p, &mut pool, &mut fw, 3, 0);
    submit(&mut p, &mut pool, &mut fw, 5, 0);
    let taken = dev.take(&mut p);
    assert_eq!(taken.len(), 2);
    let (d, f) = taken[0];
    assert_eq!(
        (d.smid.get(), f.function, f.cdb[0], f.data_length.get()),
        (3, function::SCSI_IO, 0x28, 512)
    );
    // Task 5 fails with sense written into its frame's sense buffer.
    let sense_iova = taken[1].1.sense_buffer.get();
    let mut sense = [0u8; 18];
    sense[0] = 0x70;
    sense[2] = 3;
    sense[7] = 10;
    sense[12] = 0x11;
    p.dma(sense_iova, 18).unwrap().copy_from_slice(&sense);
    dev.reply(&mut p, 3, 0, 0, 512);
    dev.reply(&mut p, 5, 2, ReplyFlags::SENSE_VALID.bits(), 0);
    let done = interrupt(&mut p, &mut pool, &mut fw);
    assert_eq!(done.len(), 2);
    let r3 = &done[0].1;
    assert_eq!(
        (done[0].0, r3.version, r3.fServiceResponse, r3.fCompletionStatus, r3.fBytesTransferred),
        (3, 1, 2, 0, 512)
    );
    let r5 = &done[1].1;
    assert_eq!(
        (r5.fCompletionStatus, r5.fSenseLength, r5.fSenseBuffer[2], r5.fSenseBuffer[12]),
        (2, 18, 3, 0x11)
    );
    assert_eq!(get(&p, reg::REPLY_CONSUMER), 2);
    assert_eq!(pool.state(pool.task(3).unwrap()), Ok(SlotState::Completed));
    fw.release(&mut p);
    pool.teardown(&mut p);
    assert_eq!(p.live_buffers(), 0, "rings and frames all released");
}

#[test]
fn bogus_and_duplicate_replies_complete_nothing() {
    let (mut p, mut pool, mut fw, mut dev) = setup();
    submit(&mut p, &mut pool, &mut fw, 2, 0);
    dev.take(&mut p);
    dev.reply(&mut p, 7, 0, 0, 512); // never submitted
    dev.reply(&mut p, 0, 0, 0, 512); // SMID 0
    dev.reply(&mut p, 2, 0, 0, 512);
    dev.reply(&mut p, 2, 0, 0, 512); // duplicate
    dev.reply(&mut p, CONTROL_SMID, 0, 0, 0); // no control request in flight
    let done = interrupt(&mut p, &mut pool, &mut fw);
    assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), [2]);
    assert_eq!(fw.dropped_replies, 4);
    // A producer index outside the ring is refused whole.
    set(&mut p, reg::REPLY_PRODUCER, 999);
    assert!(interrupt(&mut p, &mut pool, &mut fw).is_empty());
    fw.release(&mut p);
    pool.teardown(&mut p);
}

#[test]
fn a_reply_with_the_wrong_tag_completes_nothing_and_the_genuine_one_then_does() {
    let (mut p, mut pool, mut fw, mut dev) = setup();
    submit(&mut p, &mut pool, &mut fw, 2, 0);
    submit(&mut p, &mut pool, &mut fw, 5, 0);
    let taken = dev.take(&mut p);
    let (tag2, tag5) = (taken[0].1.tag.get(), taken[1].1.tag.get());
    assert!(tag2 != 0 && tag5 != 0 && tag2 != tag5, "fresh non-zero tags: {tag2} {tag5}");
    // Right SMID, right phase, sealed, but another submission's tag (and no tag at all).
    dev.reply_tagged(&mut p, 2, 0, 0, 512, tag5);
    dev.reply_tagged(&mut p, 2, 0, 0, 512, 0);
    // Right tag, but a torn entry: the check word no longer matches.
    let mut torn = ReplyDescriptor::sealed(5, 0, dev.phase, 512, tag5);
    torn.scsi_status = 2;
    dev.post(&mut p, &torn);
    assert!(interrupt(&mut p, &mut pool, &mut fw).is_empty());
    assert_eq!(fw.dropped_replies, 3);
    assert_eq!(get(&p, reg::REPLY_CONSUMER), 3, "dropped entries are consumed");
    for id in [2, 5] {
        assert_eq!(pool.state(pool.task(id).unwrap()), Ok(SlotState::Submitted));
    }
    dev.reply(&mut p, 5, 0, 0, 4096);
    dev.reply(&mut p, 2, 0, 0, 512);
    let done = interrupt(&mut p, &mut pool, &mut fw);
    assert_eq!(
        done.iter().map(|d| (d.0, d.1.fBytesTransferred)).collect::<Vec<_>>(),
        [(5, 4096), (2, 512)]
    );
    assert_eq!(fw.dropped_replies, 3);
    fw.release(&mut p);
    pool.teardown(&mut p);
}

#[test]
fn a_replayed_genuine_reply_is_dropped_after_completion_and_after_the_id_is_reused() {
    let (mut p, mut pool, mut fw, mut dev) = setup();
    let task = submit(&mut p, &mut pool, &mut fw, 3, 0);
    let old = dev.take(&mut p)[0].1.tag.get();
    dev.reply(&mut p, 3, 0, 0, 512);
    assert_eq!(interrupt(&mut p, &mut pool, &mut fw).len(), 1);
    // The same genuine entry again, while the task is Completed: a duplicate.
    dev.reply(&mut p, 3, 0, 0, 512);
    assert!(interrupt(&mut p, &mut pool, &mut fw).is_empty());
    assert_eq!(fw.dropped_replies, 1);
    // The kernel reuses ID 3: the old reply, replayed, names the right SMID but the old tag.
    pool.release(task).unwrap();
    pool.submit(task).unwrap();
    fw.submit(&mut p, &pool, task, &read_task(3), 0).unwrap();
    let fresh = dev.take(&mut p)[0].1.tag.get();
    assert_ne!(fresh, old);
    dev.reply_tagged(&mut p, 3, 0, 0, 512, old);
    assert!(interrupt(&mut p, &mut pool, &mut fw).is_empty(), "the replay completes nothing");
    assert_eq!(fw.dropped_replies, 2);
    assert_eq!(pool.state(task), Ok(SlotState::Submitted));
    dev.reply(&mut p, 3, 0, 0, 1024);
    let done = interrupt(&mut p, &mut pool, &mut fw);
    assert_eq!((done.len(), done[0].1.fBytesTransferred), (1, 1024));
    fw.release(&mut p);
    pool.teardown(&mut p);
}

mod garbage {
    use proptest::prelude::*;

    use super::*;

    /// Sealed forgeries: (which SMID, a tag never issued, where in the ring, which phase).
    fn forgeries() -> impl Strategy<Value = Vec<(usize, u32, usize, u8)>> {
        proptest::collection::vec((0usize..=TASKS as usize, any::<u32>(), 0usize..10, 0u8..2), 0..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Random bytes (and sealed forgeries with wrong tags) all over the reply ring, with
        /// random producer values, while tasks are outstanding: nothing completes. Then the
        /// genuine replies complete every task exactly once with its own status, and a replay
        /// of them completes nothing.
        #[test]
        fn random_reply_rings_complete_nothing_and_genuine_replies_complete_each_task_once(
            outstanding in proptest::collection::btree_set(1u64..=u64::from(TASKS), 1..=TASKS as usize),
            rounds in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 16 * 10), any::<u32>(), forgeries()),
                1..6,
            ),
        ) {
            let (mut p, mut pool, mut fw, mut dev) = setup();
            let outstanding: Vec<u64> = outstanding.into_iter().collect();
            for &id in &outstanding {
                submit(&mut p, &mut pool, &mut fw, id, 0);
            }
            dev.take(&mut p);
            prop_assert_eq!(usize::from(dev.entries), 10);
            // The host's reply position as the device can tell it: the consumer register, and
            // the phase, which flips whenever the consumer wraps (a drain is under one lap).
            let (mut consumer, mut phase) = (0u32, ReplyFlags::PHASE.bits());
            let mut completed = Vec::new();
            for (bytes, producer, forged) in rounds {
                p.dma(dev.reply_ring, bytes.len()).unwrap().copy_from_slice(&bytes);
                for (which, tag, at, lap) in forged {
                    let smid = match outstanding.get(which) {
                        Some(&id) => id as u16,
                        None => CONTROL_SMID,
                    };
                    // Issued tags are small: with the top bit set this one never was.
                    let r = ReplyDescriptor::sealed(smid, 0, lap, 512, tag | 0x8000_0000);
                    let iova = dev.reply_ring + (at * ENTRY) as u64;
                    p.dma(iova, ENTRY).unwrap().copy_from_slice(r.as_bytes());
                }
                set(&mut p, reg::REPLY_PRODUCER, producer % 14); // sometimes out of range
                set(&mut p, reg::INTR_STATUS, 1);
                completed.extend(interrupt(&mut p, &mut pool, &mut fw).into_iter().map(|d| d.0));
                let now = get(&p, reg::REPLY_CONSUMER);
                if now < consumer {
                    phase ^= ReplyFlags::PHASE.bits();
                }
                consumer = now;
            }
            prop_assert!(completed.is_empty(), "garbage completed {:?}", completed);
            for &id in &outstanding {
                prop_assert_eq!(pool.state(pool.task(id).unwrap()), Ok(SlotState::Submitted));
            }
            // The genuine firmware picks up where the host is.
            dev.reply_producer = consumer as u16;
            dev.phase = phase;
            for &id in &outstanding {
                dev.reply(&mut p, id as u16, (id * 3) as u8, 0, id as u32 * 100);
            }
            let mut done = interrupt(&mut p, &mut pool, &mut fw);
            done.sort_by_key(|d| d.0);
            prop_assert_eq!(
                done.iter()
                    .map(|(id, r)| (*id, r.fCompletionStatus, r.fBytesTransferred))
                    .collect::<Vec<_>>(),
                outstanding.iter().map(|&id| (id, (id * 3) as u32, id * 100)).collect::<Vec<_>>()
            );
            // The same genuine replies again: all duplicates.
            for &id in &outstanding {
                dev.reply(&mut p, id as u16, (id * 3) as u8, 0, id as u32 * 100);
            }
            prop_assert!(interrupt(&mut p, &mut pool, &mut fw).is_empty());
            fw.release(&mut p);
            pool.teardown(&mut p);
        }
    }
}

#[test]
fn a_timed_out_task_is_aborted_then_completed_once() {
    let (mut p, mut pool, mut fw, mut dev) = setup();
    submit(&mut p, &mut pool, &mut fw, 4, 0);
    dev.take(&mut p);
    assert!(!fw.tick(&mut p, &pool, 500_000_000), "not yet");
    assert!(!fw.tick(&mut p, &pool, 1_000_000_001), "timed out: abort, no reset");
    let taken = dev.take(&mut p);
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].0.smid.get(), taken[0].1.function, taken[0].1.abort_smid.get()),
        (CONTROL_SMID, function::ABORT_TASK, 4)
    );
    assert!(taken[0].1.tag.get() != 0, "the abort carries its own tag");
    assert_eq!(
        pool.state(pool.task(4).unwrap()),
        Ok(SlotState::Submitted),
        "not completed before the abort is confirmed"
    );
    dev.reply(&mut p, CONTROL_SMID, 0, 0, 0);
    let done = interrupt(&mut p, &mut pool, &mut fw);
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].0, done[0].1.fServiceResponse, done[0].1.fCompletionStatus), (4, 1, 0x01));
    // The firmware's late reply for the aborted task is dropped.
    dev.reply(&mut p, 4, 0, 0, 512);
    assert!(interrupt(&mut p, &mut pool, &mut fw).is_empty());
    fw.release(&mut p);
    pool.teardown(&mut p);
}

#[test]
fn a_firmware_that_resets_itself_is_found_by_the_health_check_not_the_timeouts() {
    let (mut p, mut pool, mut fw, mut dev) = setup();
    submit(&mut p, &mut pool, &mut fw, 4, 0);
    dev.take(&mut p);
    assert!(!fw.tick(&mut p, &pool, 10_000), "healthy: nothing to do");
    // The device drops everything and goes back to READY on its own.
    set(&mut p, reg::FW_STATE, fw_state::READY);
    assert!(!fw.tick(&mut p, &pool, 20_000), "FW_STATE is read at most every 100 ms");
    let due = 10_000 + super::driver::STATE_CHECK_NS;
    assert!(fw.tick(&mut p, &pool, due), "found within 100 ms, long before the 1 s timeout");
    fw.reset(&mut p, &mut pool, due, |_, _| {});
    assert_eq!(pool.state(pool.task(4).unwrap()), Ok(SlotState::Completed), "completed once");
    fw.release(&mut p);
    pool.teardown(&mut p);
}

#[test]
fn a_management_request_that_never_returns_asks_for_a_reset() {
    let (mut p, mut pool, mut fw, mut dev) = setup();
    fw.management(&mut p, crate::firmware::wire::mgmt::LIST_VOLUMES, [0; 4]).unwrap();
    assert_eq!(dev.take(&mut p).len(), 1);
    assert!(fw.control_busy());
    let timeout = super::driver::CONTROL_TIMEOUT_NS;
    assert!(!fw.tick(&mut p, &pool, 1_000), "the deadline starts");
    assert!(!fw.tick(&mut p, &pool, 1_000 + timeout - 1), "not yet");
    assert!(fw.tick(&mut p, &pool, 1_000 + timeout), "the firmware never answered: reset");
    fw.reset(&mut p, &mut pool, 1_000 + timeout, |_, _| {});
    assert!(!fw.control_busy(), "the control frame is free again");
    fw.release(&mut p);
    pool.teardown(&mut p);
}

#[test]
fn an_abort_that_never_returns_asks_for_a_reset_which_completes_everything_once() {
    let (mut p, mut pool, mut fw, mut dev) = setup();
    for id in [1, 2, 3] {
        submit(&mut p, &mut pool, &mut fw, id, 0);
    }
    dev.take(&mut p);
    dev.reply(&mut p, 2, 0, 0, 512);
    assert_eq!(interrupt(&mut p, &mut pool, &mut fw).len(), 1);
    assert!(!fw.tick(&mut p, &pool, 2_000_000_000));
    assert!(fw.tick(&mut p, &pool, 8_000_000_000), "the abort timed out: reset");
    let mut done = Vec::new();
    fw.reset(&mut p, &mut pool, 8_000_000_000, |t, r| done.push((t.get(), r.fCompletionStatus)));
    done.sort_unstable();
    assert_eq!(done, [(1, 0x08), (3, 0x08)], "BUSY, retryable, exactly once each");
    assert_eq!(get(&p, reg::DOORBELL), doorbell::RESET);
    // Bring-up again from READY.
    set(&mut p, reg::FW_STATE, fw_state::READY);
    assert!(matches!(fw.step(&mut p, 8_000_001_000), Step::Pending { .. }));
    let _dev = Device::init(&mut p);
    assert_eq!(fw.step(&mut p, 8_000_002_000), Step::Operational);
    fw.release(&mut p);
    pool.teardown(&mut p);
}

#[test]
fn bring_up_failures_are_named_and_bounded() {
    let mut p = FakePlatform::with_page_size(4096);
    let mut fw = Firmware::new();
    fw.start(&mut p, 4, 0).unwrap();
    assert!(matches!(fw.step(&mut p, INIT_TIMEOUT_NS - 1), Step::Pending { .. }));
    assert_eq!(
        fw.step(&mut p, INIT_TIMEOUT_NS),
        Step::Failed(FirmwareError::Timeout { waiting_for: "READY" })
    );
    fw.release(&mut p);
    let mut fw = Firmware::new();
    fw.start(&mut p, 4, 0).unwrap();
    set(&mut p, reg::FW_STATE, fw_state::FAULT | (0x1234 << 16));
    let step = fw.step(&mut p, 1);
    assert_eq!(step, Step::Failed(FirmwareError::Fault { code: 0x1234 }));
    assert_eq!(
        std::format!("{}", FirmwareError::Fault { code: 0x1234 }),
        "FirmwareFault: fault code 0x1234"
    );
    fw.release(&mut p);
    assert_eq!(p.live_buffers(), 0);
    let _ = frame_layout::SENSE;
}

pub(crate) mod stages {
    use super::*;
    use crate::controller::{Controller, TaskDisposition};
    use crate::firmware::wire::{mgmt, MgmtFrame, Sge, VolumeEntry};
    use zerocopy::little_endian::{U16, U32, U64};

    pub(crate) fn controller(stage: u32) -> Controller<FakePlatform> {
        let cfg = abi::dk_core_config {
            abi_version: abi::DK_ABI_VERSION,
            stage,
            page_size: 4096,
            max_task_count: 4,
            ..Default::default()
        };
        let mut c = Controller::new(FakePlatform::with_page_size(4096), &cfg).unwrap();
        c.start().unwrap();
        c.initialize_controller().unwrap();
        c.report_initiator_identifier().unwrap();
        c.report_highest_supported_device_id().unwrap();
        c.report_maximum_task_count().unwrap();
        for _ in 0..4 {
            c.map_hba_data().unwrap();
        }
        c.start_controller().unwrap();
        c.does_hba_perform_device_management().unwrap();
        c
    }

    pub(crate) fn service(
        c: &mut Controller<FakePlatform>,
        now: u64,
    ) -> (Vec<abi::dk_scsi_user_parallel_response>, u64) {
        let mut out = [abi::dk_scsi_user_parallel_response::default(); 8];
        let (n, poll) = c.service(now, &mut out).unwrap();
        (out[..n].to_vec(), poll)
    }

    /// Up to OPERATIONAL; the device's side.
    pub(crate) fn bring_up(c: &mut Controller<FakePlatform>) -> Device {
        assert!(service(c, 0).1 > 0, "waiting for READY, polling");
        Device::ready(c.platform_mut());
        service(c, 1_000);
        let dev = Device::init(c.platform_mut());
        let (_, poll) = service(c, 2_000);
        assert!(poll > 0);
        assert!(c.hardware().unwrap().is_operational());
        dev
    }

    #[test]
    fn stage_2_reads_lba_0_of_volume_0_once() {
        let mut c = controller(abi::DK_STAGE_SINGLE_IO);
        let mut dev = bring_up(&mut c);
        let p = c.platform_mut();
        let taken = dev.take(p);
        assert_eq!(taken.len(), 1, "exactly one firmware read");
        let (d, f) = taken[0];
        assert_eq!(
            (d.smid.get(), f.cdb[0], f.target.get(), f.data_length.get()),
            (CONTROL_SMID, 0x28, 0, 512)
        );
        let sge = Sge::read_from_bytes(p.dma(d.frame.get() + 48, 16).unwrap()).unwrap();
        p.dma(sge.address.get(), 8).unwrap().copy_from_slice(b"DKRAID\0\x01");
        dev.reply(p, CONTROL_SMID, 0, 0, 512);
        let (_, poll) = service(&mut c, 3_000);
        assert_eq!(poll, 0, "idle: no timer, only interrupts");
        let r = c.hardware().unwrap().single_io.unwrap();
        assert_eq!((r.status, r.bytes, &r.first_bytes), (0, 512, b"DKRAID\0\x01"));
        assert_eq!(c.next_target_work().kind, abi::DK_TARGET_WORK_NONE, "no targets in stage 2");
        assert!(dev.take(c.platform_mut()).is_empty(), "and no second read");
        c.teardown();
        assert_eq!(c.platform().live_buffers(), 0);
    }

    #[test]
    fn an_interrupt_before_start_controller_is_deferred_and_after_stop_refused() {
        let cfg = abi::dk_core_config {
            abi_version: abi::DK_ABI_VERSION,
            stage: abi::DK_STAGE_FULL,
            page_size: 4096,
            max_task_count: 4,
            ..Default::default()
        };
        let mut c = Controller::new(FakePlatform::with_page_size(4096), &cfg).unwrap();
        c.start().unwrap();
        c.initialize_controller().unwrap();
        c.report_initiator_identifier().unwrap();
        c.report_highest_supported_device_id().unwrap();
        c.report_maximum_task_count().unwrap();
        c.map_hba_data().unwrap();
        // READY raised while the kernel maps tasks: nothing happens, nothing fails, and no
        // register is touched (each fake MMIO access costs 1 µs of the platform's clock).
        let before = crate::platform::Platform::monotonic_time_ns(c.platform_mut());
        assert_eq!(service(&mut c, 0), (Vec::new(), 0));
        let after = crate::platform::Platform::monotonic_time_ns(c.platform_mut());
        assert_eq!(before, after, "the hardware is not touched yet");
        for _ in 0..3 {
            c.map_hba_data().unwrap();
        }
        c.start_controller().unwrap();
        c.does_hba_perform_device_management().unwrap();
        assert!(service(&mut c, 1_000).1 > 0, "started: the bring-up polls");
        c.stop_controller().unwrap();
        let mut out = [abi::dk_scsi_user_parallel_response::default(); 8];
        assert!(c.service(2_000, &mut out).is_err(), "after UserStopController: out of order");
        c.teardown();
    }

    /// Answers stage 2's read with CHECK CONDITION, UNIT ATTENTION 29/00 (power on or reset).
    fn unit_attention(dev: &mut Device, p: &mut FakePlatform) {
        let taken = dev.take(p);
        assert_eq!(taken.len(), 1, "one read in flight at a time");
        let (d, f) = taken[0];
        assert_eq!((d.smid.get(), f.cdb[0]), (CONTROL_SMID, 0x28));
        let mut sense = [0u8; 18];
        sense[0] = 0x70;
        sense[2] = 0x06;
        sense[7] = 10;
        sense[12] = 0x29;
        p.dma(f.sense_buffer.get(), 18).unwrap().copy_from_slice(&sense);
        dev.reply(p, CONTROL_SMID, 0x02, ReplyFlags::SENSE_VALID.bits(), 0);
    }

    #[test]
    fn stage_2_retries_a_unit_attention() {
        let mut c = controller(abi::DK_STAGE_SINGLE_IO);
        let mut dev = bring_up(&mut c);
        unit_attention(&mut dev, c.platform_mut());
        let (_, poll) = service(&mut c, 3_000);
        assert!(poll > 0, "the read is sent again");
        assert!(c.hardware().unwrap().single_io.is_none(), "not a result yet");
        service(&mut c, 4_000);
        let p = c.platform_mut();
        let taken = dev.take(p);
        assert_eq!(taken.len(), 1, "the retry");
        let (d, _) = taken[0];
        let sge = Sge::read_from_bytes(p.dma(d.frame.get() + 48, 16).unwrap()).unwrap();
        p.dma(sge.address.get(), 8).unwrap().copy_from_slice(b"RETRIED!");
        dev.reply(p, CONTROL_SMID, 0, 0, 512);
        service(&mut c, 5_000);
        let r = c.hardware().unwrap().single_io.unwrap();
        assert_eq!((r.status, r.bytes, &r.first_bytes), (0, 512, b"RETRIED!"));
        c.teardown();
    }

    #[test]
    fn stage_2_gives_up_after_bounded_unit_attentions() {
        let mut c = controller(abi::DK_STAGE_SINGLE_IO);
        let mut dev = bring_up(&mut c);
        let mut now = 3_000;
        for _ in 0..crate::hardware::SINGLE_IO_ATTEMPTS {
            unit_attention(&mut dev, c.platform_mut());
            service(&mut c, now);
            service(&mut c, now + 500);
            now += 1_000;
        }
        let r = c.hardware().unwrap().single_io.expect("a result: the failure");
        assert_eq!(r.status, 0x02, "reported as the CHECK CONDITION it is");
        assert!(dev.take(c.platform_mut()).is_empty(), "no read after the last attempt");
        c.teardown();
    }

    /// The device answers stage 3's LIST_VOLUMES with these volumes (1 Mi blocks of 512).
    pub(crate) fn answer_list_volumes(
        c: &mut Controller<FakePlatform>,
        dev: &mut Device,
        ids: &[u16],
    ) {
        let p = c.platform_mut();
        let (d, _) = dev.take(p)[0];
        let m = MgmtFrame::read_from_bytes(p.dma(d.frame.get(), 40).unwrap()).unwrap();
        assert_eq!(m.opcode, mgmt::LIST_VOLUMES);
        let mut list = Vec::new();
        for &id in ids {
            let v = VolumeEntry {
                id: U16::new(id),
                capacity_blocks: U64::new(1 << 20),
                block_size: U32::new(512),
                ..Default::default()
            };
            list.extend_from_slice(v.as_bytes());
        }
        p.dma(m.buffer.get(), list.len()).unwrap().copy_from_slice(&list);
        dev.reply(p, CONTROL_SMID, 0, 0, list.len() as u32);
        service(c, 3_000);
    }

    /// Stage 3 with volumes 0 and 2 exposed as targets.
    fn full_with_targets() -> (Controller<FakePlatform>, Device) {
        let mut c = controller(abi::DK_STAGE_FULL);
        let mut dev = bring_up(&mut c);
        answer_list_volumes(&mut c, &mut dev, &[0, 2]);
        for _ in 0..2 {
            let w = c.next_target_work();
            c.target_work_done(w.kind, w.target_id, crate::IOReturn::kIOReturnSuccess).unwrap();
        }
        (c, dev)
    }

    fn tagged_read(id: u64, target: u64, tag: u64) -> abi::dk_scsi_user_parallel_task {
        let mut t = read_task(id);
        t.fTargetID = target;
        t.fTaskTagIdentifier = tag;
        t.fTimeoutInMilliSec = 30_000;
        t
    }

    #[test]
    fn task_management_aborts_exactly_the_named_tasks() {
        let (mut c, mut dev) = full_with_targets();
        let mut r = abi::dk_scsi_user_parallel_response::default();
        for (id, target, tag) in [(1, 0, 11), (2, 0, 12), (3, 2, 13)] {
            let t = tagged_read(id, target, tag);
            assert_eq!(c.process_parallel_task(&t, None, &mut r), Ok(TaskDisposition::InProcess));
        }
        assert_eq!(dev.take(c.platform_mut()).len(), 3);
        // ABORT TASK names target 0's tag 12: task 2, and only it.
        let abort = c.task_management(abi::DK_TMF_ABORT_TASK, 0, 0, 12).unwrap();
        assert_eq!(abort, (abi::ServiceResponse::FUNCTION_COMPLETE, 1));
        service(&mut c, 4_000);
        let taken = dev.take(c.platform_mut());
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].0.smid.get(), taken[0].1.function, taken[0].1.abort_smid.get()),
            (CONTROL_SMID, function::ABORT_TASK, 2)
        );
        // The firmware aborts it: task 2's own reply, flagged ABORTED, completes it retryably.
        dev.reply(c.platform_mut(), 2, 0, ReplyFlags::ABORTED.bits(), 0);
        let (done, _) = service(&mut c, 5_000);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].fControllerTaskIdentifier, 2);
        assert_eq!(
            done[0].fServiceResponse,
            abi::ServiceResponse::SERVICE_DELIVERY_OR_TARGET_FAILURE.0
        );
        c.task_delivered(2).unwrap();
        // The kernel reuses ID 2 at once; the abort's own reply comes after. It must not
        // complete the new command (which the firmware is about to DMA for).
        let t = tagged_read(2, 0, 14);
        assert_eq!(c.process_parallel_task(&t, None, &mut r), Ok(TaskDisposition::InProcess));
        assert_eq!(dev.take(c.platform_mut()).len(), 1);
        dev.reply(c.platform_mut(), CONTROL_SMID, 0, 0, 0);
        let (done, _) = service(&mut c, 6_000);
        assert!(done.is_empty(), "the reused ID is not completed by the late abort reply");
        dev.reply(c.platform_mut(), 2, 0, 0, 512);
        let (done, _) = service(&mut c, 7_000);
        assert_eq!((done.len(), done[0].fCompletionStatus, done[0].fBytesTransferred), (1, 0, 512));
        c.task_delivered(2).unwrap();
        // TARGET RESET of target 2 aborts task 3; target 0's task 1 is untouched.
        let reset = c.task_management(abi::DK_TMF_TARGET_RESET, 2, 0, 0).unwrap();
        assert_eq!(reset, (abi::ServiceResponse::FUNCTION_COMPLETE, 1));
        service(&mut c, 8_000);
        let taken = dev.take(c.platform_mut());
        assert_eq!(taken[0].1.abort_smid.get(), 3);
        // Nothing matches: still FUNCTION_COMPLETE (SAM-2); CLEAR ACA is rejected.
        let none = c.task_management(abi::DK_TMF_ABORT_TASK, 0, 0, 99).unwrap();
        assert_eq!(none, (abi::ServiceResponse::FUNCTION_COMPLETE, 0));
        let aca = c.task_management(abi::DK_TMF_CLEAR_ACA, 0, 0, 0).unwrap();
        assert_eq!(aca.0, abi::ServiceResponse::FUNCTION_REJECTED);
        assert_eq!(
            c.task_management(77, 0, 0, 0).unwrap().0,
            abi::ServiceResponse::FUNCTION_REJECTED
        );
        c.teardown();
    }

    #[test]
    fn stage_3_exposes_the_listed_volumes_and_runs_io() {
        let mut c = controller(abi::DK_STAGE_FULL);
        let mut dev = bring_up(&mut c);
        answer_list_volumes(&mut c, &mut dev, &[0, 2]);
        let w = c.next_target_work();
        assert_eq!((w.kind, w.target_id), (abi::DK_TARGET_WORK_CREATE, 0));
        c.target_work_done(w.kind, 0, crate::IOReturn::kIOReturnSuccess).unwrap();
        let w = c.next_target_work();
        assert_eq!((w.kind, w.target_id), (abi::DK_TARGET_WORK_CREATE, 2));
        c.target_work_done(w.kind, 2, crate::IOReturn::kIOReturnSuccess).unwrap();
        // A READ to volume 2 goes to the firmware and completes from the interrupt path.
        let mut task = read_task(3);
        task.fTargetID = 2;
        let mut r = abi::dk_scsi_user_parallel_response::default();
        assert_eq!(c.process_parallel_task(&task, None, &mut r), Ok(TaskDisposition::InProcess));
        let p = c.platform_mut();
        let taken = dev.take(p);
        assert_eq!((taken[0].0.smid.get(), taken[0].1.target.get()), (3, 2));
        dev.reply(p, 3, 0, 0, 512);
        let (done, _) = service(&mut c, 4_000);
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].fControllerTaskIdentifier, done[0].fTargetID, done[0].fBytesTransferred),
            (3, 2, 512)
        );
        c.task_delivered(3).unwrap();
        // Absent volumes are not present; a busy firmware is retried.
        let mut absent = read_task(4);
        absent.fTargetID = 1;
        assert_eq!(
            c.process_parallel_task(&absent, None, &mut r),
            Ok(TaskDisposition::CompletedNow)
        );
        assert_eq!(r.fCompletionStatus, abi::TaskStatus::DEVICE_NOT_PRESENT.0);
        c.teardown();
        assert_eq!(c.platform().live_buffers(), 0);
    }
}
