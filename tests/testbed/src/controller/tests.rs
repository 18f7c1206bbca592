//! The device driven directly, with no dext: a "host" simulated thread maps an init frame,
//! rings and task frames through the simulated IOMMU, writes registers and rings doorbells,
//! and reads the reply ring the way the core's `ReplyRing` does (phase bit per lap).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use dkraid_core::firmware::wire::{
    direction, doorbell, event, function, fw_state, mgmt, reg, DriveEntry, InitFrame, MgmtFrame,
    ReplyDescriptor, ReplyFlags, RequestDescriptor, RequestFrame, Sge, VolumeEntry, EVENT_SMID,
    INIT_MAGIC, INIT_VERSION,
};
use dkraid_core::Stage;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use super::*;
use crate::sched::{self, Outcome};
use crate::world::{self, World};

const SENSE_AT: usize = 768;
const FRAME: usize = 1024;
/// One reply ring entry.
const ENTRY: usize = size_of::<ReplyDescriptor>();

/// A DMA region the host mapped: its CPU view and device address.
#[derive(Clone, Copy, Debug)]
struct Region {
    cpu: *mut u8,
    iova: u64,
    len: usize,
    command: u64,
}

fn region(len: u64) -> Region {
    with_world(|w| {
        let page = w.memory.page_size;
        let cap = len.div_ceil(page) * page;
        let b = w.memory.create_buffer(3, cap, page).unwrap();
        w.memory.set_length(b, cap).unwrap();
        let command = w.memory.create_command(64);
        let p = w.memory.prepare(command, b, 0, 0).unwrap();
        Region {
            cpu: p.buffer_cpu_address as *mut u8,
            iova: p.mapping.iova,
            len: cap as usize,
            command,
        }
    })
}

impl Region {
    fn write(&self, at: usize, data: &[u8]) {
        assert!(at + data.len() <= self.len);
        // SAFETY: the buffer is live for the whole test and `len` bytes long; in range above.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.cpu.add(at), data.len()) };
    }

    fn read(&self, at: usize, n: usize) -> Vec<u8> {
        assert!(at + n <= self.len);
        let mut out = vec![0u8; n];
        // SAFETY: as in `write`.
        unsafe { std::ptr::copy_nonoverlapping(self.cpu.add(at), out.as_mut_ptr(), n) };
        out
    }

    /// CompleteDMA: the device may no longer reach it.
    fn unmap(&self) {
        with_world(|w| w.memory.complete(self.command)).unwrap();
    }
}

/// The host side of the protocol.
struct Host {
    c: Controller,
    init: Region,
    requests: Region,
    replies: Region,
    frames: Region,
    entries: u32,
    producer: u32,
    consumer: u32,
    phase: u8,
    /// The tag of the next frame written (the core's tags are per controller, never 0).
    next_tag: Cell<u32>,
    /// Accept entries whose check word is wrong (a test that posts garbage on purpose).
    raw: bool,
}

impl Host {
    fn read(&self, offset: u64) -> u32 {
        self.c.mmio_read(offset, 32) as u32
    }

    fn write(&self, offset: u64, value: u32) {
        self.c.mmio_write(offset, 32, u64::from(value));
    }

    /// Poll FW_STATE until its state is `state` (at most 10 virtual ms).
    fn wait_state(&self, state: u32) -> u32 {
        for _ in 0..1000 {
            let v = self.read(reg::FW_STATE);
            if v & fw_state::MASK == state {
                return v;
            }
            sched::sleep_ns(10_000);
        }
        panic!("FW_STATE never became {state:#x}: {:#x}", self.read(reg::FW_STATE));
    }

    /// Map the rings and 16 task frames; nothing handed to the device yet.
    fn new(c: Controller, entries: u32) -> Host {
        Host {
            c,
            init: region(64),
            requests: region(u64::from(entries) * 16),
            replies: region(u64::from(entries) * ENTRY as u64),
            frames: region(16 * FRAME as u64),
            entries,
            producer: 0,
            consumer: 0,
            phase: ReplyFlags::PHASE.bits(),
            next_tag: Cell::new(0x5100),
            raw: false,
        }
    }

    fn init_frame(&self) -> InitFrame {
        InitFrame {
            magic: U32::new(INIT_MAGIC),
            version: U16::new(INIT_VERSION),
            request_entries: U16::new(self.entries as u16),
            reply_entries: U16::new(self.entries as u16),
            reserved: U16::new(0),
            msix_vector: U32::new(0),
            request_ring: U64::new(self.requests.iova),
            reply_ring: U64::new(self.replies.iova),
        }
    }

    fn send_init(&self, frame: &InitFrame, at: u64) {
        self.init.write(0, frame.as_bytes());
        self.write(reg::INIT_FRAME_LO, at as u32);
        self.write(reg::INIT_FRAME_HI, (at >> 32) as u32);
        self.write(reg::DOORBELL, doorbell::INIT);
    }

    /// READY, INIT, OPERATIONAL.
    fn up(c: Controller, entries: u32) -> Host {
        let h = Host::new(c, entries);
        h.wait_state(fw_state::READY);
        h.send_init(&h.init_frame(), h.init.iova);
        h.wait_state(fw_state::OPERATIONAL);
        h
    }

    /// A fresh tag for a frame.
    fn tag(&self) -> u32 {
        let t = self.next_tag.get();
        self.next_tag.set(t + 1);
        t
    }

    fn frame_iova(&self, slot: usize) -> u64 {
        self.frames.iova + (slot * FRAME) as u64
    }

    /// Write a SCSI_IO frame in task frame `slot`; returns its tag.
    fn scsi_frame(
        &self,
        slot: usize,
        target: u16,
        dir: u8,
        cdb: &[u8],
        length: u32,
        sges: &[Sge],
    ) -> u32 {
        let tag = self.tag();
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        let f = RequestFrame {
            function: function::SCSI_IO,
            direction: dir,
            cdb_length: cdb.len() as u8,
            sge_count: sges.len() as u8,
            target: U16::new(target),
            data_length: U32::new(length),
            sense_buffer: U64::new(self.frame_iova(slot) + SENSE_AT as u64),
            sense_length: U16::new(256),
            tag: U32::new(tag),
            cdb: c,
            ..Default::default()
        };
        let at = slot * FRAME;
        self.frames.write(at, f.as_bytes());
        for (i, s) in sges.iter().enumerate() {
            self.frames.write(at + 48 + 16 * i, s.as_bytes());
        }
        self.frames.write(at + SENSE_AT, &[0u8; 256]);
        tag
    }

    fn sense(&self, slot: usize) -> Vec<u8> {
        self.frames.read(slot * FRAME + SENSE_AT, 18)
    }

    /// Put a descriptor on the ring and ring the doorbell.
    fn submit(&mut self, smid: u16, function: u8, frame: u64) {
        let d = RequestDescriptor {
            smid: U16::new(smid),
            function,
            reserved: 0,
            frame_length: U32::new(64),
            frame: U64::new(frame),
        };
        self.requests.write(self.producer as usize * 16, d.as_bytes());
        self.producer = (self.producer + 1) % self.entries;
        self.write(reg::REQUEST_PRODUCER, self.producer);
        self.write(reg::DOORBELL, doorbell::REQUEST);
    }

    /// Consume what the device posted, checking each entry's phase and check word, and that
    /// events carry tag 0.
    fn drain(&mut self) -> Vec<ReplyDescriptor> {
        let producer = self.read(reg::REPLY_PRODUCER);
        let mut out = Vec::new();
        while self.consumer != producer {
            let bytes = self.replies.read(self.consumer as usize * ENTRY, ENTRY);
            let r = ReplyDescriptor::read_from_bytes(&bytes).unwrap();
            assert_eq!(
                r.flags & ReplyFlags::PHASE.bits(),
                self.phase,
                "entry {} phase",
                self.consumer
            );
            assert!(self.raw || r.is_sealed(), "entry {} is not sealed: {r:?}", self.consumer);
            if r.smid.get() == EVENT_SMID && !self.raw {
                assert_eq!(r.tag.get(), 0, "an event answers no request");
            }
            out.push(r);
            self.consumer += 1;
            if self.consumer == self.entries {
                self.consumer = 0;
                self.phase ^= ReplyFlags::PHASE.bits();
            }
        }
        self.write(reg::REPLY_CONSUMER, self.consumer);
        out
    }

    /// Wait for `n` replies (at most 50 virtual ms).
    fn replies(&mut self, n: usize) -> Vec<ReplyDescriptor> {
        let mut out = Vec::new();
        for _ in 0..5000 {
            out.extend(self.drain());
            if out.len() >= n {
                assert_eq!(out.len(), n, "more replies than expected: {out:?}");
                return out;
            }
            sched::sleep_ns(10_000);
        }
        panic!("only {} of {n} replies arrived: {out:?}", out.len());
    }

    /// Collect replies (sleeping 1 ms between looks, at most `limit_ms`) until `done` says so.
    fn replies_until(
        &mut self,
        limit_ms: u64,
        mut done: impl FnMut(&[ReplyDescriptor]) -> bool,
    ) -> Vec<ReplyDescriptor> {
        let mut out = Vec::new();
        for _ in 0..limit_ms {
            out.extend(self.drain());
            if done(&out) {
                return out;
            }
            sched::sleep_ns(1_000_000);
        }
        panic!("gave up after {limit_ms} ms with {} replies: {out:?}", out.len());
    }

    /// One SCSI command in slot 0 and its reply.
    fn command(
        &mut self,
        smid: u16,
        target: u16,
        dir: u8,
        cdb: &[u8],
        sges: &[Sge],
    ) -> ReplyDescriptor {
        let length = sges.iter().map(|s| s.length.get()).sum();
        let tag = self.scsi_frame(0, target, dir, cdb, length, sges);
        self.submit(smid, function::SCSI_IO, self.frame_iova(0));
        let r = self.replies(1)[0];
        assert_eq!((r.smid.get(), r.tag.get()), (smid, tag), "the reply echoes the frame's tag");
        r
    }

    /// The first command to a new volume reports POWER ON OR RESET: take it.
    fn clear_unit_attention(&mut self, target: u16) {
        let r = self.command(99, target, direction::NONE, &[0; 6], &[]);
        assert_eq!(r.scsi_status, 0x02);
        assert_eq!(&self.sense(0)[12..14], &[0x29, 0x00]);
        let r = self.command(99, target, direction::NONE, &[0; 6], &[]);
        assert_eq!(r.scsi_status, 0x00, "TEST UNIT READY after the unit attention");
    }

    fn mgmt(
        &mut self,
        smid: u16,
        opcode: u8,
        args: [u32; 4],
        buffer: Option<(u64, u32)>,
    ) -> ReplyDescriptor {
        self.mgmt_then(smid, opcode, args, buffer, 1)[0]
    }

    /// A management request whose reply is followed by `n - 1` event notifications.
    fn mgmt_then(
        &mut self,
        smid: u16,
        opcode: u8,
        args: [u32; 4],
        buffer: Option<(u64, u32)>,
        n: usize,
    ) -> Vec<ReplyDescriptor> {
        let (at, len) = buffer.unwrap_or((0, 0));
        let tag = self.tag();
        let m = MgmtFrame {
            function: function::MANAGEMENT,
            opcode,
            reserved: [0; 2],
            buffer_length: U32::new(len),
            buffer: U64::new(at),
            args: args.map(U32::new),
            tag: U32::new(tag),
            reserved2: [0; 4],
        };
        self.frames.write(FRAME, m.as_bytes());
        self.submit(smid, function::MANAGEMENT, self.frame_iova(1));
        let out = self.replies(n);
        let mine: Vec<u32> =
            out.iter().filter(|r| r.smid.get() == smid).map(|r| r.tag.get()).collect();
        assert_eq!(mine, [tag], "one reply, echoing the frame's tag");
        out
    }
}

fn sge(address: u64, length: u32) -> Sge {
    Sge { address: U64::new(address), length: U32::new(length), flags: U32::new(0) }
}

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// Run `body` on a "host" thread beside a freshly installed controller; returns the world.
fn simulate(config: ControllerConfig, body: impl FnOnce(Controller) + 'static) -> World {
    World::install(World::new(Stage::Full, 16384));
    let mut s = Scheduler::new(7);
    let c = install(&mut s, config);
    let done = Rc::new(Cell::new(false));
    let finished = done.clone();
    s.spawn("host", move || {
        body(c);
        finished.set(true);
    });
    let outcome = s.run();
    assert!(done.get(), "the host did not finish: {outcome}");
    assert!(matches!(outcome, Outcome::Finished), "{outcome}");
    drop(s);
    World::take().expect("the world outlives the run")
}

fn rules(w: &World) -> Vec<&'static str> {
    w.violations.iter().map(|v| v.rule).collect()
}

/// One 1 GiB RAM volume, target 0.
fn ram() -> ControllerConfig {
    ControllerConfig::with_array(ArraySpec::ram())
}

fn two_volumes() -> ControllerConfig {
    ControllerConfig::with_array(ArraySpec::Ram(vec![
        VolumeSpec::DEFAULT,
        VolumeSpec { id: 5, block_size: 4096, blocks: 1024 },
    ]))
}

// ------------------------------------------------------------------------------ tests --

#[test]
fn reset_ready_operational_with_facts_and_state_interrupt_bits() {
    let w = simulate(ram(), |c| {
        let h = Host::new(c, 8);
        assert_eq!(h.read(reg::FW_STATE), fw_state::RESET);
        let t0 = sched::now_ns();
        h.wait_state(fw_state::READY);
        assert!(sched::now_ns() - t0 >= 200_000, "READY comes after the power-on delay");
        assert_eq!(h.read(reg::MAX_COMMANDS), 1024);
        assert_eq!(h.read(reg::MAX_TARGETS), 128);
        assert_eq!(h.read(reg::MAX_SGE), 32);
        assert_eq!(h.read(reg::MAX_TRANSFER_KIB), 8192);
        assert_eq!(h.read(reg::INTR_STATUS), intr::STATE);
        h.write(reg::INTR_STATUS, intr::STATE);
        assert_eq!(h.read(reg::INTR_STATUS), 0, "write 1 to clear");
        assert_eq!(h.read(0x800), 0, "an unknown offset reads 0");
        h.write(reg::FW_STATE, 0xFFFF_FFFF);
        assert_eq!(h.read(reg::FW_STATE), fw_state::READY, "FW_STATE is read-only");
        assert_eq!(h.c.mmio_read(BAR0_SIZE, 32), 0xFFFF_FFFF, "past the BAR: nothing answers");
        h.send_init(&h.init_frame(), h.init.iova);
        h.wait_state(fw_state::OPERATIONAL);
        assert_eq!(h.read(reg::INTR_STATUS), intr::STATE);
        assert_eq!(
            h.c.mmio_read(reg::INIT_FRAME_LO, 64),
            h.init.iova,
            "64-bit read: two registers"
        );
    });
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    let states: Vec<&str> = w.events.iter().map(|e| e.result.as_str()).collect();
    assert_eq!(states[0], "READY");
    assert!(states[1].starts_with("OPERATIONAL requests=8 replies=8"), "{states:?}");
}

#[test]
fn a_bad_init_frame_faults_with_its_code_and_reset_recovers() {
    let w = simulate(ram(), |c| {
        let h = Host::new(c, 8);
        h.wait_state(fw_state::READY);
        let mut bad = h.init_frame();
        bad.magic = U32::new(0x1234_5678);
        h.send_init(&bad, h.init.iova);
        let v = h.wait_state(fw_state::FAULT);
        assert_eq!(v >> 16, u32::from(fault_code::BAD_INIT_MAGIC));
        // Only RESET leaves FAULT.
        h.write(reg::DOORBELL, doorbell::INIT);
        sched::sleep_ns(100_000);
        assert_eq!(h.read(reg::FW_STATE) & fw_state::MASK, fw_state::FAULT);
        h.write(reg::DOORBELL, doorbell::RESET);
        assert_eq!(h.read(reg::FW_STATE), fw_state::RESET);
        h.wait_state(fw_state::READY);
        let mut bad = h.init_frame();
        bad.reply_entries = U16::new(1);
        h.send_init(&bad, h.init.iova);
        assert_eq!(h.wait_state(fw_state::FAULT) >> 16, u32::from(fault_code::BAD_RING_ENTRIES));
        h.write(reg::DOORBELL, doorbell::RESET);
        h.wait_state(fw_state::READY);
        // An init frame nobody mapped.
        h.send_init(&h.init_frame(), 0x1000);
        assert_eq!(
            h.wait_state(fw_state::FAULT) >> 16,
            u32::from(fault_code::INIT_FRAME_UNREADABLE)
        );
        h.write(reg::DOORBELL, doorbell::RESET);
        h.wait_state(fw_state::READY);
        h.send_init(&h.init_frame(), h.init.iova);
        h.wait_state(fw_state::OPERATIONAL);
    });
    assert_eq!(rules(&w), ["BadInitFrame", "BadInitFrame", "DmaOutsideMapping"]);
    assert!(w.violations[0].values.contains("magic=0x12345678"), "{}", w.violations[0]);
    assert!(w.violations[2].values.contains("iova=0x1000"), "{}", w.violations[2]);
}

#[test]
fn write_then_read_through_sges_with_the_phase_flipping_each_lap() {
    let w = simulate(two_volumes(), |c| {
        let mut h = Host::up(c, 4);
        h.clear_unit_attention(5);
        let data = region(64 * 1024);
        let pattern: Vec<u8> = (0..32 * 1024u32).map(|i| (i * 7 + i / 4096) as u8).collect();
        // 20 commands through a 4-entry ring: five laps.
        for round in 0..10u32 {
            data.write(0, &pattern);
            // WRITE(10) of 8 blocks (32 KiB) from two SGEs of uneven size.
            let sges = [sge(data.iova, 12 * 1024), sge(data.iova + 12 * 1024, 20 * 1024)];
            let r = h.command(1, 5, direction::TO_DEVICE, &rw10(0x2A, round * 8, 8), &sges);
            assert_eq!((r.smid.get(), r.scsi_status, r.transferred.get()), (1, 0, 32 * 1024));
            // READ(10) back into the upper half through three SGEs.
            let up = data.iova + 32 * 1024;
            let sges = [sge(up, 4096), sge(up + 4096, 8192), sge(up + 12288, 20 * 1024)];
            let r = h.command(2, 5, direction::FROM_DEVICE, &rw10(0x28, round * 8, 8), &sges);
            assert_eq!((r.smid.get(), r.scsi_status, r.transferred.get()), (2, 0, 32 * 1024));
            assert_eq!(r.flags & ReplyFlags::SENSE_VALID.bits(), 0);
            assert_eq!(data.read(32 * 1024, 32 * 1024), pattern, "round {round}");
        }
        assert_eq!(h.phase, 0, "22 replies through 4 entries: five wraps, so lap 6 has phase 0");
        let stats = h.c.stats();
        assert_eq!((stats.bytes_in, stats.bytes_out), (10 * 32 * 1024, 10 * 32 * 1024));
    });
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn check_condition_writes_fixed_sense_and_absent_volumes_are_not_supported_luns() {
    simulate(two_volumes(), |c| {
        let mut h = Host::up(c, 8);
        h.clear_unit_attention(0);
        let data = region(4096);
        // LBA past the end of the 1 GiB volume.
        let r = h.command(
            3,
            0,
            direction::FROM_DEVICE,
            &rw10(0x28, 1 << 21, 1),
            &[sge(data.iova, 512)],
        );
        assert_eq!((r.scsi_status, r.transferred.get()), (0x02, 0));
        assert_ne!(r.flags & ReplyFlags::SENSE_VALID.bits(), 0);
        let s = h.sense(0);
        assert_eq!((s[0] & 0x7F, s[2] & 0xF, s[12], s[13]), (0x70, 0x5, 0x21, 0x00));
        // Target 9 has no volume.
        let r = h.command(4, 9, direction::NONE, &[0; 6], &[]);
        assert_eq!(r.scsi_status, 0x02);
        assert_ne!(r.flags & ReplyFlags::SENSE_VALID.bits(), 0);
        let s = h.sense(0);
        assert_eq!((s[2] & 0xF, s[12], s[13]), (0x5, 0x25, 0x00));
    });
}

#[test]
fn dma_outside_any_mapping_is_a_violation_and_a_fault_without_a_reply() {
    let w = simulate(ram(), |c| {
        let mut h = Host::up(c, 8);
        h.clear_unit_attention(0);
        h.write(reg::INTR_STATUS, intr::REPLY | intr::STATE);
        let data = region(4096);
        data.unmap();
        h.scsi_frame(0, 0, direction::FROM_DEVICE, &rw10(0x28, 0, 1), 512, &[sge(data.iova, 512)]);
        h.submit(7, function::SCSI_IO, h.frame_iova(0));
        let v = h.wait_state(fw_state::FAULT);
        assert_eq!(v >> 16, u32::from(fault_code::DMA_FAULT));
        assert_eq!(h.read(reg::INTR_STATUS) & intr::STATE, intr::STATE);
        assert!(h.drain().is_empty(), "a faulted request gets no reply");
    });
    assert_eq!(rules(&w), ["DmaOutsideMapping"]);
    let v = &w.violations[0];
    assert_eq!((v.queue.as_str(), v.section), ("firmware", "DRIVERKIT.md §2"));
    assert!(v.values.contains("length=512"), "{v}");
    assert!(v.call.contains("data-in of SCSI_IO smid=7"), "{v}");
}

#[test]
fn reset_drops_queued_and_in_flight_work_without_replies() {
    let w = simulate(ram(), |c| {
        let mut h = Host::up(c.clone(), 8);
        h.clear_unit_attention(0);
        c.stall(1_000_000);
        for slot in 0..3u16 {
            h.scsi_frame(usize::from(slot), 0, direction::NONE, &[0; 6], 0, &[]);
            h.submit(10 + slot, function::SCSI_IO, h.frame_iova(usize::from(slot)));
        }
        sched::sleep_ns(100_000);
        assert_eq!(h.read(reg::REQUEST_CONSUMER), 5, "all three taken off the ring");
        h.write(reg::DOORBELL, doorbell::RESET);
        h.wait_state(fw_state::READY);
        sched::sleep_ns(2_000_000);
        assert_eq!(h.read(reg::REPLY_PRODUCER), 0);
        let ring = h.replies.read(0, 8 * ENTRY);
        assert_eq!(
            ring[2 * ENTRY..],
            [0u8; 6 * ENTRY][..],
            "nothing written after the two TEST UNIT READYs"
        );
        // Start over: a fresh handshake, and the volume reports the reset.
        let mut h = Host::up(c, 8);
        let r = h.command(20, 0, direction::NONE, &[0; 6], &[]);
        assert_eq!((r.smid.get(), r.scsi_status), (20, 0x02));
        assert_eq!(&h.sense(0)[12..14], &[0x29, 0x00], "POWER ON OR RESET after the reset");
        assert_eq!(h.c.stats().resets, 1);
    });
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn management_lists_volumes_and_drives_and_maps_errors_to_statuses() {
    simulate(two_volumes(), |c| {
        let mut h = Host::up(c, 8);
        let buf = region(4096);
        let r = h.mgmt(0xFFFE, mgmt::LIST_VOLUMES, [0; 4], Some((buf.iova, 4096)));
        assert_eq!((r.smid.get(), r.scsi_status, r.transferred.get()), (0xFFFE, 0, 64));
        let v: Vec<VolumeEntry> = buf
            .read(0, 64)
            .chunks_exact(32)
            .map(|e| VolumeEntry::read_from_bytes(e).unwrap())
            .collect();
        assert_eq!(
            (v[0].id.get(), v[0].block_size.get(), v[0].capacity_blocks.get()),
            (0, 512, 1 << 21)
        );
        assert_eq!(
            (v[1].id.get(), v[1].block_size.get(), v[1].capacity_blocks.get()),
            (5, 4096, 1024)
        );
        // A buffer for one entry gets one.
        let r = h.mgmt(0xFFFE, mgmt::LIST_VOLUMES, [0; 4], Some((buf.iova, 40)));
        assert_eq!(r.transferred.get(), 32);
        let r = h.mgmt(0xFFFE, mgmt::LIST_DRIVES, [0; 4], Some((buf.iova, 4096)));
        assert_eq!(r.transferred.get(), 32);
        let r = h.mgmt(0xFFFE, mgmt::CONTROLLER_INFO, [0; 4], Some((buf.iova, 4096)));
        assert_eq!(r.transferred.get(), 48);
        let info =
            dkraid_core::firmware::wire::ControllerInfo::read_from_bytes(&buf.read(0, 48)).unwrap();
        assert_eq!((info.volumes.get(), info.drives.get(), info.max_commands.get()), (2, 2, 1024));
        let r = h.mgmt(0xFFFE, mgmt::LIST_VOLUMES, [0; 4], None);
        assert_eq!((r.scsi_status, r.transferred.get()), (mgmt_status::NO_BUFFER, 0));
        let r = h.mgmt(0xFFFE, mgmt::DELETE_VOLUME, [9, 0, 0, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::NOT_FOUND);
        let r = h.mgmt(0xFFFE, mgmt::START_REBUILD, [0, 0, 0, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::UNSUPPORTED);
        let r = h.mgmt(0xFFFE, 0x7F, [0; 4], None);
        assert_eq!(r.scsi_status, mgmt_status::INVALID_FUNCTION);
        // Delete volume 5 (its reply, then the VOLUME_DELETED notification), and create a
        // volume on its drive: it gets the lowest free ID, 1.
        let r = h.mgmt_then(0xFFFE, mgmt::DELETE_VOLUME, [5, 0, 0, 0], None, 2);
        assert_eq!(r[0].scsi_status, mgmt_status::SUCCESS);
        assert_eq!(
            (r[1].smid.get(), r[1].flags & ReplyFlags::EVENT.bits()),
            (EVENT_SMID, ReplyFlags::EVENT.bits())
        );
        let r =
            h.mgmt_then(0xFFFE, mgmt::CREATE_VOLUME, [0, 65536, 0b10, 0], Some((buf.iova, 32)), 2);
        assert_eq!((r[0].scsi_status, r[0].transferred.get()), (0, 32));
        assert_eq!((r[1].smid.get(), r[1].transferred.get()), (EVENT_SMID, 2), "event 2");
        let v = VolumeEntry::read_from_bytes(&buf.read(0, 32)).unwrap();
        assert_eq!(v.id.get(), 1);
        // The new volume answers as a new device.
        let r = h.command(5, 1, direction::NONE, &[0; 6], &[]);
        assert_eq!(r.scsi_status, 0x02);
        assert_eq!(&h.sense(0)[12..14], &[0x29, 0x00]);
        let r = h.command(6, 5, direction::NONE, &[0; 6], &[]);
        assert_eq!(&h.sense(0)[12..14], &[0x25, 0x00], "volume 5 is gone: {r:?}");
    });
}

#[test]
fn events_are_posted_with_the_event_smid_and_fetched_with_events_since() {
    simulate(ram(), |c| {
        let mut h = Host::up(c.clone(), 8);
        c.fail_drive(0).unwrap();
        let r = h.replies(2);
        for (i, e) in r.iter().enumerate() {
            assert_eq!(e.smid.get(), EVENT_SMID);
            assert_eq!(e.flags & !ReplyFlags::PHASE.bits(), ReplyFlags::EVENT.bits());
            assert_eq!(e.transferred.get(), i as u32 + 1, "the event's sequence number");
        }
        let buf = region(4096);
        let r = h.mgmt(0xFFFE, mgmt::EVENTS_SINCE, [0; 4], Some((buf.iova, 4096)));
        assert_eq!(r.transferred.get(), 32);
        let e = dkraid_core::firmware::wire::EventEntry::read_from_bytes(&buf.read(0, 16)).unwrap();
        assert_eq!((e.sequence.get(), e.code.get(), e.drive.get()), (1, event::DRIVE_FAILED, 0));
        let r = h.mgmt(0xFFFE, mgmt::EVENTS_SINCE, [1, 0, 0, 0], Some((buf.iova, 4096)));
        assert_eq!(r.transferred.get(), 16);
        // The volume is offline: HARDWARE ERROR 44/00.
        h.command(1, 0, direction::NONE, &[0; 6], &[]);
        let r = h.command(1, 0, direction::FROM_DEVICE, &rw10(0x28, 0, 1), &[sge(buf.iova, 512)]);
        assert_eq!(r.scsi_status, 0x02);
        assert_eq!((h.sense(0)[2] & 0xF, h.sense(0)[12]), (0x4, 0x44));
    });
}

#[test]
fn abort_task_drops_a_queued_request_and_coalesces_into_one_interrupt() {
    let deliveries = Rc::new(RefCell::new(Vec::new()));
    let seen = deliveries.clone();
    simulate(ram(), move |c| {
        let queue = world::create_queue("InterruptQueue");
        let src = interrupts::create(queue, 0).unwrap();
        interrupts::set_rust_handler(
            src,
            Rc::new(move |count, time| seen.borrow_mut().push((count, time))),
        )
        .unwrap();
        interrupts::enable(src, true).unwrap();
        let mut h = Host::up(c.clone(), 8);
        h.clear_unit_attention(0);
        sched::sleep_ns(1_000_000);
        deliveries.borrow_mut().clear();
        // Two TEST UNIT READYs stall behind a slow first request; abort the second.
        c.stall(500_000);
        let mut tags = Vec::new();
        for slot in 0..2u16 {
            tags.push(h.scsi_frame(usize::from(slot), 0, direction::NONE, &[0; 6], 0, &[]));
            h.submit(slot + 1, function::SCSI_IO, h.frame_iova(usize::from(slot)));
        }
        let abort = RequestFrame {
            function: function::ABORT_TASK,
            abort_smid: U16::new(2),
            tag: U32::new(h.tag()),
            ..Default::default()
        };
        h.frames.write(2 * FRAME, abort.as_bytes());
        h.submit(0xFFFE, function::ABORT_TASK, h.frame_iova(2));
        let r = h.replies(3);
        let got: Vec<(u16, u8, u8, u32)> = r
            .iter()
            .map(|r| {
                (r.smid.get(), r.scsi_status, r.flags & !ReplyFlags::PHASE.bits(), r.tag.get())
            })
            .collect();
        assert_eq!(
            got,
            [
                (2, 0, ReplyFlags::ABORTED.bits(), tags[1]),
                (0xFFFE, 0, 0, abort.tag.get()),
                (1, 0, 0, tags[0])
            ],
            "the aborted request's reply echoes its own tag, the abort's reply the abort's"
        );
        // An abort of a request that is not queued.
        h.frames.write(2 * FRAME, abort.as_bytes());
        h.submit(0xFFFE, function::ABORT_TASK, h.frame_iova(2));
        let r = h.replies(1)[0];
        assert_eq!((r.smid.get(), r.scsi_status), (0xFFFE, mgmt_status::NOT_FOUND));
        sched::sleep_ns(100_000);
        // The aborted reply and the abort's reply were posted back to back: one delivery.
        let d = deliveries.borrow();
        assert_eq!(d.iter().map(|(count, _)| *count).collect::<Vec<_>>(), [2, 1, 1]);
        // READY, OPERATIONAL, two unit-attention replies, then these four.
        assert_eq!(with_world(|w| w.interrupts.raised(0)), 8);
    });
}

#[test]
fn interrupt_sources_coalesce_latch_while_disabled_and_never_fire_after_cancel() {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let seen = calls.clone();
    simulate(ram(), move |_c| {
        let queue = world::create_queue("InterruptQueue");
        let other = interrupts::create(queue, 0).unwrap();
        assert!(interrupts::create(queue, 1).is_err(), "the device has one vector");
        assert!(interrupts::create(999, 0).is_err(), "no such queue");
        let src = interrupts::create(queue, 0).unwrap();
        interrupts::set_rust_handler(
            src,
            Rc::new(move |count, time| seen.borrow_mut().push((count, time))),
        )
        .unwrap();
        // Raised while disabled: latched.
        interrupts::raise(0);
        sched::sleep_ns(1000);
        assert!(calls.borrow().is_empty());
        interrupts::enable(src, true).unwrap();
        sched::sleep_ns(1000);
        assert_eq!(calls.borrow().len(), 1);
        // Two raises before the handler runs: one call, count 2, the first raise's time.
        let t = sched::now_ns();
        interrupts::raise(0);
        interrupts::raise(0);
        sched::sleep_ns(1000);
        assert_eq!(calls.borrow()[1], (2, t));
        interrupts::cancel(src);
        interrupts::cancel(src);
        interrupts::raise(0);
        sched::sleep_ns(1000);
        assert_eq!(calls.borrow().len(), 2, "a cancelled source never fires");
        assert!(interrupts::enable(src, true).is_err());
        let info = with_world(|w| w.interrupts.source(other)).unwrap();
        assert_eq!((info.has_handler, info.delivered), (false, 0), "no handler: nothing posted");
    });
}

#[test]
fn masked_interrupts_are_sent_on_unmask() {
    let calls = Rc::new(Cell::new(0u64));
    let seen = calls.clone();
    simulate(ram(), move |c| {
        let queue = world::create_queue("InterruptQueue");
        let src = interrupts::create(queue, 0).unwrap();
        interrupts::set_rust_handler(src, Rc::new(move |count, _| seen.set(seen.get() + count)))
            .unwrap();
        interrupts::enable(src, true).unwrap();
        let mut h = Host::up(c, 8);
        sched::sleep_ns(100_000);
        let before = calls.get();
        h.write(reg::INTR_MASK, intr::REPLY | intr::STATE);
        h.scsi_frame(0, 0, direction::NONE, &[0; 6], 0, &[]);
        h.submit(1, function::SCSI_IO, h.frame_iova(0));
        sched::sleep_ns(1_000_000);
        assert_eq!(calls.get(), before, "masked");
        assert_eq!(h.read(reg::INTR_STATUS) & intr::REPLY, intr::REPLY);
        h.write(reg::INTR_MASK, 0);
        sched::sleep_ns(1000);
        assert_eq!(calls.get(), before + 1, "the held-back interrupt on unmask");
        assert_eq!(h.replies(1).len(), 1);
    });
}

#[test]
fn fault_injection_drops_replies_and_posts_bogus_ones() {
    simulate(ram(), |c| {
        let mut h = Host::up(c.clone(), 8);
        h.clear_unit_attention(0);
        c.drop_next_replies(1);
        let data = region(4096);
        data.write(0, &[0xA5; 512]);
        h.scsi_frame(0, 0, direction::TO_DEVICE, &rw10(0x2A, 7, 1), 512, &[sge(data.iova, 512)]);
        h.submit(1, function::SCSI_IO, h.frame_iova(0));
        sched::sleep_ns(1_000_000);
        assert!(h.drain().is_empty(), "processed, never answered");
        assert_eq!(c.stats().replies_dropped, 1);
        // ... but processed: the data is on the volume.
        let r = h.command(
            2,
            0,
            direction::FROM_DEVICE,
            &rw10(0x28, 7, 1),
            &[sge(data.iova + 1024, 512)],
        );
        assert_eq!(r.scsi_status, 0);
        assert_eq!(data.read(1024, 512), [0xA5; 512]);
        // Posted exactly as given: not sealed, not stamped, garbage stays garbage.
        let bogus = ReplyDescriptor {
            smid: U16::new(77),
            scsi_status: 0,
            flags: h.phase,
            transferred: U32::new(5),
            tag: U32::new(0xDEAD),
            check: U32::new(0x1234_5678),
        };
        h.raw = true;
        assert!(c.post_bogus_reply(bogus));
        let got = h.replies(1);
        assert_eq!(got, [bogus]);
        assert!(!got[0].is_sealed());
        // And a sealed one stays sealed.
        let sealed = ReplyDescriptor::sealed(78, 0, h.phase, 5, 0xBEEF);
        assert!(c.post_bogus_reply(sealed));
        assert_eq!(h.replies(1), [sealed]);
    });
}

#[test]
fn a_full_reply_ring_holds_the_firmware_until_the_host_consumes() {
    simulate(ram(), |c| {
        let mut h = Host::up(c, 2);
        // A ring of 2 holds one reply. Two TEST UNIT READYs (UNIT ATTENTION, then GOOD).
        h.scsi_frame(0, 0, direction::NONE, &[0; 6], 0, &[]);
        h.submit(1, function::SCSI_IO, h.frame_iova(0));
        sched::sleep_ns(200_000);
        h.scsi_frame(1, 0, direction::NONE, &[0; 6], 0, &[]);
        h.submit(2, function::SCSI_IO, h.frame_iova(1));
        sched::sleep_ns(1_000_000);
        assert_eq!(h.read(reg::REPLY_PRODUCER), 1, "the second reply waits for room");
        let first = h.drain();
        assert_eq!(first.len(), 1);
        let second = h.replies(1);
        assert_eq!(second[0].smid.get(), 2);
    });
}

#[test]
fn out_of_range_request_producer_and_bad_frames_are_named() {
    let w = simulate(ram(), |c| {
        let mut h = Host::up(c, 8);
        // sge_count over MAX_SGE: CHECK CONDITION 24/00, the firmware carries on.
        let sges = vec![sge(h.frames.iova, 16); 33];
        h.scsi_frame(0, 0, direction::FROM_DEVICE, &rw10(0x28, 0, 1), 512, &sges[..33]);
        h.submit(1, function::SCSI_IO, h.frame_iova(0));
        let r = h.replies(1)[0];
        assert_eq!(r.scsi_status, 0x02);
        assert_eq!(&h.sense(0)[12..14], &[0x24, 0x00]);
        h.submit(2, 0x55, h.frame_iova(0));
        assert_eq!(h.replies(1)[0].scsi_status, mgmt_status::INVALID_FUNCTION);
        h.write(reg::REQUEST_PRODUCER, 8);
        h.write(reg::DOORBELL, doorbell::REQUEST);
        let v = h.wait_state(fw_state::FAULT);
        assert_eq!(v >> 16, u32::from(fault_code::REQUEST_PRODUCER_OUT_OF_RANGE));
    });
    assert_eq!(rules(&w), ["BadRequestFrame", "BadRequestFunction", "RequestProducerOutOfRange"]);
    assert!(w.violations[0].values.contains("sge_count 33 > MAX_SGE 32"), "{}", w.violations[0]);
}

#[test]
fn bar_accesses_reach_the_device_in_stages_with_hardware_and_cost_time() {
    // Stage full: memory index 0 is the device.
    simulate(ram(), |_c| {
        let t = sched::now_ns();
        let v = crate::runtime::dksim_pci_read(1, 0, reg::MAX_SGE, 32);
        assert_eq!(v, 32);
        assert_eq!(sched::now_ns() - t, MMIO_ACCESS_NS);
        assert_eq!(crate::runtime::dksim_pci_read(1, 1, 0, 32), 0xFFFF_FFFF, "no BAR 1");
        crate::runtime::dksim_pci_write(1, 0, reg::INTR_MASK, 32, 3);
        assert_eq!(crate::runtime::dksim_pci_read(1, 0, reg::INTR_MASK, 32), 3);
    });
    // Stage fake-block touches no hardware.
    World::install(World::new(Stage::FakeBlock, 16384));
    assert_eq!(crate::runtime::dksim_pci_read(1, 0, reg::FW_STATE, 32), 0xFFFF_FFFF);
    let w = World::take().unwrap();
    assert_eq!(rules(&w), ["HardwareTouchedInPipelineStage"]);
    assert!(w.violations[0].message.contains("stage 1 (fake-block)"), "{}", w.violations[0]);
}

// ------------------------------------------------------------------ the RAID engine --

fn small_raid5() -> ControllerConfig {
    let spec = crate::raid::ArraySpec::parse(Some("6x64MiB"), &["raid5:0-4"], &["5"]).unwrap();
    ControllerConfig::with_array(ArraySpec::Raid { spec, backing: crate::raid::Backing::Memory })
}

#[test]
fn the_default_array_is_the_raid_engines_raid5_with_a_spare() {
    let w = simulate(ControllerConfig::default(), |c| {
        let mut h = Host::up(c, 8);
        let buf = region(4096);
        let r = h.mgmt(0xFFFE, mgmt::LIST_VOLUMES, [0; 4], Some((buf.iova, 4096)));
        assert_eq!(r.transferred.get(), 32);
        let v = VolumeEntry::read_from_bytes(&buf.read(0, 32)).unwrap();
        assert_eq!((v.id.get(), v.level, v.state), (0, 5, 0));
        assert_eq!((v.block_size.get(), v.capacity_blocks.get()), (512, (8u64 << 30) / 512));
        assert_eq!((v.strip_bytes.get(), v.drives.get()), (65536, 0b11111));
        let r = h.mgmt(0xFFFE, mgmt::LIST_DRIVES, [0; 4], Some((buf.iova, 4096)));
        assert_eq!(r.transferred.get(), 6 * 16);
        let states: Vec<u8> = buf.read(0, 96).chunks_exact(16).map(|d| d[2]).collect();
        assert_eq!(states, [0, 0, 0, 0, 0, 5], "five members online, drive 5 a hot spare");
        // SCSI through the engine: a strip-crossing write and read.
        h.clear_unit_attention(0);
        let data = region(256 * 1024);
        let pattern: Vec<u8> = (0..128 * 1024u32).map(|i| (i % 251) as u8).collect();
        data.write(0, &pattern);
        let r = h.command(
            1,
            0,
            direction::TO_DEVICE,
            &rw10(0x2A, 100, 256),
            &[sge(data.iova, 128 * 1024)],
        );
        assert_eq!((r.scsi_status, r.transferred.get()), (0, 128 * 1024));
        let up = data.iova + 128 * 1024;
        let r =
            h.command(2, 0, direction::FROM_DEVICE, &rw10(0x28, 100, 256), &[sge(up, 128 * 1024)]);
        assert_eq!((r.scsi_status, r.transferred.get()), (0, 128 * 1024));
        assert_eq!(data.read(128 * 1024, 128 * 1024), pattern);
    });
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn a_failed_member_rebuilds_onto_the_spare_in_the_background_with_every_event_notified() {
    simulate(small_raid5(), |c| {
        let mut h = Host::up(c.clone(), 8);
        h.clear_unit_attention(0);
        let data = region(64 * 1024);
        let pattern: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 13 % 256) as u8).collect();
        data.write(0, &pattern);
        let r = h.command(
            1,
            0,
            direction::TO_DEVICE,
            &rw10(0x2A, 2048, 128),
            &[sge(data.iova, 64 * 1024)],
        );
        assert_eq!(r.scsi_status, 0);
        let start = sched::now_ns();
        c.fail_drive(2).unwrap();
        let raid = c.raid().expect("the array is the RAID engine");
        let mut saw_rebuilding = false;
        let events = h.replies_until(2000, |r| {
            if raid.borrow().volume(0).unwrap().state == crate::raid::VolumeState::Rebuilding {
                saw_rebuilding = true;
            }
            r.len() >= 15
        });
        let elapsed = sched::now_ns() - start;
        assert!(saw_rebuilding);
        assert!(events
            .iter()
            .all(|e| e.smid.get() == EVENT_SMID && e.flags & ReplyFlags::EVENT.bits() != 0));
        let seqs: Vec<u32> = events.iter().map(|e| e.transferred.get()).collect();
        assert_eq!(
            seqs,
            (3..=17).collect::<Vec<u32>>(),
            "created and spare-added came before INIT"
        );
        let buf = region(4096);
        let r = h.mgmt(0xFFFE, mgmt::EVENTS_SINCE, [2, 0, 0, 0], Some((buf.iova, 4096)));
        assert_eq!(r.transferred.get(), 15 * 16);
        let codes: Vec<u16> = buf
            .read(0, 15 * 16)
            .chunks_exact(16)
            .map(|e| {
                dkraid_core::firmware::wire::EventEntry::read_from_bytes(e).unwrap().code.get()
            })
            .collect();
        let mut expected =
            vec![event::DRIVE_FAILED, event::VOLUME_DEGRADED, event::REBUILD_STARTED];
        expected.extend([event::REBUILD_PROGRESS; 9]);
        expected.extend([event::REBUILD_FINISHED, event::SPARE_ACTIVE, event_ext::VOLUME_OPTIMAL]);
        assert_eq!(codes, expected);
        // 64 MiB per member at 1 MiB per 2 ms.
        assert!((128_000_000..200_000_000).contains(&elapsed), "rebuild took {elapsed} ns");
        let r = h.mgmt(0xFFFE, mgmt::LIST_VOLUMES, [0; 4], Some((buf.iova, 32)));
        assert_eq!(r.transferred.get(), 32);
        let v = VolumeEntry::read_from_bytes(&buf.read(0, 32)).unwrap();
        assert_eq!((v.state, v.drives.get()), (0, 0b111011), "drive 5 replaced drive 2");
        data.write(0, &[0; 4096]);
        let sges = [sge(data.iova, 64 * 1024)];
        let r = h.command(2, 0, direction::FROM_DEVICE, &rw10(0x28, 2048, 128), &sges);
        assert_eq!(r.scsi_status, 0);
        assert_eq!(data.read(0, 64 * 1024), pattern, "the data survived the failure");
    });
}

#[test]
fn management_errors_from_the_engine_map_to_statuses() {
    simulate(small_raid5(), |c| {
        let mut h = Host::up(c, 8);
        // RAID 5 over drives already in volume 0: busy.
        let r = h.mgmt(0xFFFE, mgmt::CREATE_VOLUME, [5, 0, 0b111, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::BUSY);
        let r = h.mgmt(0xFFFE, mgmt::CREATE_VOLUME, [6, 0, 0b111, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::INVALID_ARGUMENT, "RAID 6 does not exist");
        let r = h.mgmt(0xFFFE, mgmt::START_REBUILD, [0, 0xFFFF, 0, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::BUSY, "nothing to rebuild");
        let r = h.mgmt(0xFFFE, mgmt::SET_HOT_SPARE, [9, 1, 0, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::NOT_FOUND);
        // Delete the volume and make a RAID 1 of drives 0 and 1: reply, then the events.
        let r = h.mgmt_then(0xFFFE, mgmt::DELETE_VOLUME, [0, 0, 0, 0], None, 2);
        assert_eq!(r[0].scsi_status, mgmt_status::SUCCESS);
        let buf = region(4096);
        let r = h.mgmt_then(0xFFFE, mgmt::CREATE_VOLUME, [1, 0, 0b11, 0], Some((buf.iova, 32)), 2);
        assert_eq!((r[0].scsi_status, r[0].transferred.get()), (mgmt_status::SUCCESS, 32));
        let v = VolumeEntry::read_from_bytes(&buf.read(0, 32)).unwrap();
        assert_eq!(
            (v.id.get(), v.level, v.drives.get()),
            (1, 1, 0b11),
            "volume IDs are not reused"
        );
        let r = h.command(1, 1, direction::NONE, &[0; 6], &[]);
        assert_eq!(&h.sense(0)[12..14], &[0x29, 0x00], "a new volume reports POWER ON: {r:?}");
        let r = h.command(1, 0, direction::NONE, &[0; 6], &[]);
        assert_eq!(&h.sense(0)[12..14], &[0x25, 0x00], "volume 0 is gone: {r:?}");
        // The block size rides in args[0] bits 8..16: log2 9 or 12, or 0 for the default.
        let r = h.mgmt(0xFFFE, mgmt::CREATE_VOLUME, [1 | (10 << 8), 0, 0b1100, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::INVALID_ARGUMENT, "1024-byte blocks");
        let r = h.mgmt(0xFFFE, mgmt::CREATE_VOLUME, [1 | (1 << 16), 0, 0b1100, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::INVALID_ARGUMENT, "bits past the block size");
        let args = [1 | (12 << 8), 0, 0b1100, 0];
        let r = h.mgmt_then(0xFFFE, mgmt::CREATE_VOLUME, args, Some((buf.iova, 32)), 2);
        assert_eq!(r[0].scsi_status, mgmt_status::SUCCESS);
        let v = VolumeEntry::read_from_bytes(&buf.read(0, 32)).unwrap();
        assert_eq!((v.id.get(), v.block_size.get(), v.drives.get()), (2, 4096, 0b1100));
        // SET_HOT_SPARE args[2]: the volume a spare is dedicated to (0xFFFF: global).
        let r = h.mgmt(0xFFFE, mgmt::SET_HOT_SPARE, [4, 1, 77, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::NOT_FOUND, "no volume 77");
        let r = h.mgmt_then(0xFFFE, mgmt::SET_HOT_SPARE, [4, 1, 2, 0], None, 2);
        assert_eq!(r[0].scsi_status, mgmt_status::SUCCESS);
        let r = h.mgmt(0xFFFE, mgmt::LIST_DRIVES, [0; 4], Some((buf.iova, 4096)));
        assert_eq!(r.transferred.get(), 6 * 16);
        let d = DriveEntry::read_from_bytes(&buf.read(4 * 16, 16)).unwrap();
        assert_eq!((d.state, d.volume.get()), (5, 2), "drive 4: a spare dedicated to volume 2");
        let d = DriveEntry::read_from_bytes(&buf.read(5 * 16, 16)).unwrap();
        assert_eq!((d.state, d.volume.get()), (5, u32::MAX), "drive 5: a global spare");
        let r = h.mgmt_then(0xFFFE, mgmt::SET_HOT_SPARE, [4, 0, 0, 0], None, 2);
        assert_eq!(r[0].scsi_status, mgmt_status::SUCCESS, "cleared");
        // Only 0xFFFF means global: 0 names volume 0, deleted above.
        let r = h.mgmt(0xFFFE, mgmt::SET_HOT_SPARE, [4, 1, 0, 0], None);
        assert_eq!(r.scsi_status, mgmt_status::NOT_FOUND, "volume 0, not a global spare");
    });
}

#[test]
fn halt_ends_the_firmware_thread_and_frees_its_handle() {
    let weak = Rc::new(RefCell::new(None));
    let keep = weak.clone();
    let w = simulate(small_raid5(), move |c| {
        let mut h = Host::up(c.clone(), 8);
        h.clear_unit_attention(0);
        *keep.borrow_mut() = c.raid().map(|r| Rc::downgrade(&r));
        // A rebuild in progress would keep the firmware sleeping: halt ends it anyway.
        c.fail_drive(1).unwrap();
        sched::sleep_ns(10_000_000);
        c.halt();
    });
    let c = w.controller.clone().unwrap();
    assert_eq!(c.fw_state(), fw_state::OPERATIONAL, "the registers still answer");
    let raid = c.raid().unwrap();
    assert_eq!(raid.borrow().rebuilds().len(), 1, "the firmware stopped mid-rebuild");
    drop((w, c, raid));
    let weak = weak.borrow_mut().take().unwrap();
    assert!(weak.upgrade().is_none(), "nothing else holds the engine");
}
