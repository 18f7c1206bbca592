//! The firmware: one simulated thread, "firmware", that brings the device to READY, takes the
//! init frame, consumes the request ring, executes requests one at a time against the array,
//! and posts replies and event notifications. It idles (`block_idle`) until a doorbell; its
//! work takes virtual time by sleeping, so host threads run meanwhile; and every borrow of the
//! device is dropped before it sleeps, blocks or idles.

use dkraid_core::firmware::wire::{
    direction, function, fw_state, mgmt, ControllerInfo, InitFrame, MgmtFrame, ReplyDescriptor,
    ReplyFlags, RequestDescriptor, RequestFrame, Sge, EVENT_SMID, INIT_MAGIC, INIT_VERSION,
};
use dkraid_core::scsi::emulator::status;
use dkraid_core::scsi::{Asc, Completion, Data, Sense, SenseKey};
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, IntoBytes};

use super::device::{dma_read, dma_write, report, timeline, Queued, Rings, SECTION};
use super::{fault_code, intr, mgmt_status, Controller, MgmtError};
use crate::sched;
use crate::world::with_world;

/// What the firmware does next.
enum Job {
    Halt,
    Idle,
    Ready { epoch: u64 },
    Init { epoch: u64 },
    Fetch { epoch: u64 },
    Abort { q: Queued, epoch: u64 },
    Events { epoch: u64 },
    Request { q: Queued, epoch: u64, stall: u64 },
    Background(u64),
}

/// The firmware thread's body: idle when there is nothing to do; returns once halted.
pub(super) fn run(c: Controller) {
    let timing = c.config().timing;
    loop {
        match next_job(&c) {
            Job::Halt => return,
            Job::Idle => sched::block_idle("firmware: waiting for a doorbell"),
            Job::Ready { epoch } => {
                sched::sleep_ns(timing.ready_ns);
                become_ready(&c, epoch);
            }
            Job::Init { epoch } => {
                sched::sleep_ns(timing.init_ns);
                init(&c, epoch);
            }
            Job::Fetch { epoch } => fetch(&c, epoch),
            Job::Abort { q, epoch } => {
                sched::sleep_ns(timing.abort_ns);
                if live(&c, epoch) {
                    abort(&c, q, epoch);
                }
            }
            Job::Events { epoch } => post_events(&c, epoch),
            Job::Request { q, epoch, stall } => {
                if stall > 0 {
                    sched::sleep_ns(stall);
                }
                // A reset (or fault) during the stall dropped this request: the device touches
                // none of its memory any more (the host may already have unmapped it).
                if live(&c, epoch) {
                    match q.function {
                        function::SCSI_IO => scsi_io(&c, q, epoch),
                        function::MANAGEMENT => management(&c, q, epoch),
                        other => bad_function(&c, q, epoch, other),
                    }
                }
                let mut d = c.dev();
                if d.epoch == epoch {
                    d.in_progress = None;
                }
            }
            Job::Background(ns) => sched::sleep_ns(ns),
        }
    }
}

fn next_job(c: &Controller) -> Job {
    let last_event = c.array().borrow().last_event();
    {
        let mut d = c.dev();
        let epoch = d.epoch;
        if d.halted {
            return Job::Halt;
        }
        if d.ready_pending {
            return Job::Ready { epoch };
        }
        if d.init_pending {
            return Job::Init { epoch };
        }
        if d.operational() {
            if d.doorbell_request {
                return Job::Fetch { epoch };
            }
            if let Some(q) = d.aborts.pop_front() {
                return Job::Abort { q, epoch };
            }
            if last_event > d.event_baseline {
                return Job::Events { epoch };
            }
            if let Some(q) = d.queue.pop_front() {
                d.in_progress = Some(q.smid);
                let stall = std::mem::take(&mut d.stall_ns);
                return Job::Request { q, epoch, stall };
            }
        }
    }
    let array = c.array();
    let background = array.borrow_mut().background();
    match background {
        Some(ns) => Job::Background(ns),
        None => Job::Idle,
    }
}

// ------------------------------------------------------------------------- bring-up --

fn become_ready(c: &Controller, epoch: u64) {
    let raise = {
        let mut d = c.dev();
        if d.epoch != epoch || !d.ready_pending {
            return;
        }
        d.ready_pending = false;
        d.state = fw_state::READY;
        d.signal(intr::STATE)
    };
    timeline("FW_STATE", "READY".into());
    c.apply(false, raise);
}

fn bad_init(c: &Controller, code: u16, values: String, why: &str) {
    report(
        "BadInitFrame",
        SECTION,
        Some("doorbell INIT".into()),
        values,
        format!("the init frame was refused: {why}; the firmware faults (code {code:#06x})"),
    );
    c.fault(code);
}

fn init(c: &Controller, epoch: u64) {
    let iova = {
        let mut d = c.dev();
        if d.epoch != epoch || !d.init_pending {
            return;
        }
        d.init_pending = false;
        u64::from(d.init_frame[0]) | (u64::from(d.init_frame[1]) << 32)
    };
    let bytes = match dma_read(iova, size_of::<InitFrame>()) {
        Ok(b) => b,
        Err(f) => {
            report(
                "DmaOutsideMapping",
                super::device::SECTION_DMA,
                Some("doorbell INIT".into()),
                format!("iova={:#x} length={}", f.iova, f.len),
                format!(
                    "INIT_FRAME names IOVA {iova:#x}, which is not mapped: the firmware cannot \
                     read the init frame and faults (code {:#06x})",
                    fault_code::INIT_FRAME_UNREADABLE
                ),
            );
            c.fault(fault_code::INIT_FRAME_UNREADABLE);
            return;
        }
    };
    let Ok(f) = InitFrame::read_from_bytes(&bytes) else { return };
    let facts = c.config().facts;
    let (requests, replies) =
        (u32::from(f.request_entries.get()), u32::from(f.reply_entries.get()));
    let (request_ring, reply_ring) = (f.request_ring.get(), f.reply_ring.get());
    if f.magic.get() != INIT_MAGIC {
        let values = format!("magic={:#010x} expected={INIT_MAGIC:#010x}", f.magic.get());
        return bad_init(c, fault_code::BAD_INIT_MAGIC, values, "wrong magic");
    }
    if f.version.get() != INIT_VERSION {
        let values = format!("version={} expected={INIT_VERSION}", f.version.get());
        return bad_init(c, fault_code::BAD_INIT_VERSION, values, "unsupported version");
    }
    let range = 2..=facts.max_commands;
    if !range.contains(&requests) || !range.contains(&replies) {
        let values = format!(
            "request_entries={requests} reply_entries={replies} MAX_COMMANDS={}",
            facts.max_commands
        );
        return bad_init(
            c,
            fault_code::BAD_RING_ENTRIES,
            values,
            "ring sizes must be 2..=MAX_COMMANDS",
        );
    }
    if f.msix_vector.get() >= c.msix_vectors() {
        let values = format!("msix_vector={} vectors={}", f.msix_vector.get(), c.msix_vectors());
        return bad_init(c, fault_code::BAD_MSIX_VECTOR, values, "no such MSI-X vector");
    }
    let mapped = |iova: u64, bytes: u64| {
        iova != 0 && with_world(|w| w.memory.translate(iova, bytes).is_ok())
    };
    let reply_bytes = u64::from(replies) * size_of::<ReplyDescriptor>() as u64;
    if !mapped(request_ring, u64::from(requests) * 16) || !mapped(reply_ring, reply_bytes) {
        let values = format!(
            "request_ring={request_ring:#x}+{} reply_ring={reply_ring:#x}+{reply_bytes}",
            u64::from(requests) * 16,
        );
        return bad_init(c, fault_code::RING_NOT_MAPPED, values, "a ring is not mapped in full");
    }
    let last_event = c.array().borrow().last_event();
    let raise = {
        let mut d = c.dev();
        if d.epoch != epoch {
            return;
        }
        d.rings = Some(Rings {
            request_ring,
            request_entries: requests,
            reply_ring,
            reply_entries: replies,
            vector: f.msix_vector.get(),
            phase: ReplyFlags::PHASE.bits(),
        });
        d.reply_producer = 0;
        d.reply_consumer = 0;
        d.request_producer = 0;
        d.request_consumer = 0;
        d.state = fw_state::OPERATIONAL;
        // Events before INIT are in the log (EVENTS_SINCE); only newer ones are notified.
        d.event_baseline = last_event;
        d.signal(intr::STATE)
    };
    timeline(
        "FW_STATE",
        format!("OPERATIONAL requests={requests} replies={replies} vector={}", f.msix_vector.get()),
    );
    c.apply(false, raise);
}

// --------------------------------------------------------------------- request ring --

/// Take every descriptor up to REQUEST_PRODUCER off the ring.
fn fetch(c: &Controller, epoch: u64) {
    let (rings, producer, mut consumer) = {
        let mut d = c.dev();
        if d.epoch != epoch {
            return;
        }
        d.doorbell_request = false;
        let Some(r) = d.rings else { return };
        (r, d.request_producer, d.request_consumer)
    };
    if producer >= rings.request_entries {
        report(
            "RequestProducerOutOfRange",
            SECTION,
            Some("doorbell REQUEST".into()),
            format!("REQUEST_PRODUCER={producer} entries={}", rings.request_entries),
            format!(
                "the host rang the doorbell with REQUEST_PRODUCER {producer} for a request ring of \
                 {} entries; the firmware faults (code {:#06x})",
                rings.request_entries,
                fault_code::REQUEST_PRODUCER_OUT_OF_RANGE
            ),
        );
        c.fault(fault_code::REQUEST_PRODUCER_OUT_OF_RANGE);
        return;
    }
    while consumer != producer {
        let at = rings.request_ring + u64::from(consumer) * 16;
        let bytes = match dma_read(at, size_of::<RequestDescriptor>()) {
            Ok(b) => b,
            Err(f) => return c.dma_fault(&format!("reading request descriptor {consumer}"), f),
        };
        let Ok(desc) = RequestDescriptor::read_from_bytes(&bytes) else { return };
        consumer = (consumer + 1) % rings.request_entries;
        let mut d = c.dev();
        if d.epoch != epoch {
            return;
        }
        d.request_consumer = consumer;
        d.stats.requests += 1;
        let q = Queued { smid: desc.smid.get(), function: desc.function, frame: desc.frame.get() };
        if q.function == function::ABORT_TASK {
            d.aborts.push_back(q);
        } else {
            d.queue.push_back(q);
        }
    }
}

/// A reply echoing the request's `tag`, sealed (`post_reply` reseals it with the lap's phase).
fn reply(smid: u16, scsi_status: u8, flags: u8, transferred: u32, tag: u32) -> ReplyDescriptor {
    ReplyDescriptor::sealed(smid, scsi_status, flags, transferred, tag)
}

/// The tag of the request `q`, read from its frame: a `MgmtFrame`'s for MANAGEMENT, a
/// `RequestFrame`'s otherwise (also for a function the firmware does not have). 0 if the
/// frame cannot be read.
fn request_tag(q: &Queued) -> u32 {
    if q.function == function::MANAGEMENT {
        dma_read(q.frame, size_of::<MgmtFrame>())
            .ok()
            .and_then(|b| MgmtFrame::read_from_bytes(&b).ok())
            .map_or(0, |m| m.tag.get())
    } else {
        dma_read(q.frame, size_of::<RequestFrame>())
            .ok()
            .and_then(|b| RequestFrame::read_from_bytes(&b).ok())
            .map_or(0, |f| f.tag.get())
    }
}

fn live(c: &Controller, epoch: u64) -> bool {
    let d = c.dev();
    d.epoch == epoch && d.operational()
}

// ---------------------------------------------------------------------------- SCSI_IO --

/// Why a SCSI_IO frame is malformed, if it is.
fn check_frame(f: &RequestFrame, sges: &[Sge], max_sge: u32, max_bytes: u64) -> Option<String> {
    let length = u64::from(f.data_length.get());
    let sgl: u64 = sges.iter().map(|s| u64::from(s.length.get())).sum();
    if f.function != function::SCSI_IO {
        Some(format!("frame function {:#04x} under a SCSI_IO descriptor", f.function))
    } else if f.cdb_length == 0 || f.cdb_length > 16 {
        Some(format!("cdb_length {}", f.cdb_length))
    } else if f.direction > direction::FROM_DEVICE {
        Some(format!("direction {}", f.direction))
    } else if u32::from(f.sge_count) > max_sge {
        Some(format!("sge_count {} > MAX_SGE {max_sge}", f.sge_count))
    } else if length > max_bytes {
        Some(format!("data_length {length} > MAX_TRANSFER {max_bytes}"))
    } else if f.direction == direction::NONE && length != 0 {
        Some(format!("data_length {length} with direction NONE"))
    } else if f.direction != direction::NONE && sgl < length {
        Some(format!("the SGL covers {sgl} bytes of data_length {length}"))
    } else {
        None
    }
}

/// Device reads of `length` bytes through the SGL, in order.
fn gather(sges: &[Sge], length: usize) -> Result<Vec<u8>, crate::memory::DmaFault> {
    let mut out = Vec::with_capacity(length);
    for s in sges {
        if out.len() >= length {
            break;
        }
        let n = (s.length.get() as usize).min(length - out.len());
        out.extend_from_slice(&dma_read(s.address.get(), n)?);
    }
    Ok(out)
}

/// Device writes of `data` through the SGL, in order.
fn scatter(sges: &[Sge], data: &[u8]) -> Result<(), crate::memory::DmaFault> {
    let mut done = 0;
    for s in sges {
        if done >= data.len() {
            break;
        }
        let n = (s.length.get() as usize).min(data.len() - done);
        dma_write(s.address.get(), &data[done..done + n])?;
        done += n;
    }
    Ok(())
}

fn scsi_io(c: &Controller, q: Queued, epoch: u64) {
    let call = format!("SCSI_IO smid={}", q.smid);
    let bytes = match dma_read(q.frame, size_of::<RequestFrame>()) {
        Ok(b) => b,
        Err(f) => return c.dma_fault(&format!("reading the request frame of {call}"), f),
    };
    let Ok(f) = RequestFrame::read_from_bytes(&bytes) else { return };
    let facts = c.config().facts;
    let timing = c.config().timing;
    let sge_count = usize::from(f.sge_count).min(facts.max_sge as usize);
    let sges: Vec<Sge> = match dma_read(q.frame + bytes.len() as u64, sge_count * 16) {
        Ok(b) => b.chunks_exact(16).filter_map(|s| Sge::read_from_bytes(s).ok()).collect(),
        Err(f) => return c.dma_fault(&format!("reading the SGL of {call}"), f),
    };
    let max_bytes = u64::from(facts.max_transfer_kib) * 1024;
    if let Some(problem) = check_frame(&f, &sges, facts.max_sge, max_bytes) {
        report(
            "BadRequestFrame",
            SECTION,
            Some(call.clone()),
            format!("smid={} {problem}", q.smid),
            format!(
                "the request frame of SMID {} is malformed ({problem}); the firmware answers \
                 CHECK CONDITION, ILLEGAL REQUEST 24/00",
                q.smid
            ),
        );
        sched::sleep_ns(timing.io_base_ns);
        if live(c, epoch) {
            let sense = Sense::new(SenseKey::IllegalRequest, Asc::INVALID_FIELD_IN_CDB);
            finish_scsi(c, q, epoch, &f, status::CHECK_CONDITION, Some(sense), 0);
        }
        return;
    }
    let length = f.data_length.get() as usize;
    let out = if f.direction == direction::TO_DEVICE {
        match gather(&sges, length) {
            Ok(d) => d,
            Err(e) => return c.dma_fault(&format!("reading the data-out of {call}"), e),
        }
    } else {
        Vec::new()
    };
    sched::sleep_ns(timing.io_ns(length as u64));
    if !live(c, epoch) {
        // Reset or fault meanwhile: dropped without a reply.
        return;
    }
    let mut scratch =
        if f.direction == direction::FROM_DEVICE { vec![0u8; length] } else { Vec::new() };
    let completion = {
        let mut engine = c.engine();
        let data = match f.direction {
            direction::FROM_DEVICE => Data::In(&mut scratch),
            direction::TO_DEVICE => Data::Out(&out),
            _ => Data::None,
        };
        let cdb = &f.cdb[..usize::from(f.cdb_length)];
        match engine.emulators.get_mut(&f.target.get()) {
            Some(e) => e.execute(cdb, u64::from(f.lun.get()), u64::from(f.data_length.get()), data),
            // No volume with this target ID: the logical unit is not there.
            None => Completion {
                status: status::CHECK_CONDITION,
                sense: Some(Sense::new(SenseKey::IllegalRequest, Asc::LUN_NOT_SUPPORTED)),
                bytes: 0,
            },
        }
    };
    let moved = completion.bytes.min(length as u64) as usize;
    if f.direction == direction::FROM_DEVICE && moved > 0 {
        if let Err(e) = scatter(&sges, &scratch[..moved]) {
            return c.dma_fault(&format!("writing the data-in of {call}"), e);
        }
    }
    {
        let mut d = c.dev();
        match f.direction {
            direction::FROM_DEVICE => d.stats.bytes_in += moved as u64,
            direction::TO_DEVICE => d.stats.bytes_out += moved as u64,
            _ => {}
        }
    }
    finish_scsi(c, q, epoch, &f, completion.status, completion.sense, moved as u32);
}

/// Sense (for CHECK CONDITION) into the frame's sense buffer, then the reply.
fn finish_scsi(
    c: &Controller,
    q: Queued,
    epoch: u64,
    f: &RequestFrame,
    scsi_status: u8,
    sense: Option<Sense>,
    transferred: u32,
) {
    let mut flags = 0;
    if let (status::CHECK_CONDITION, Some(sense)) = (scsi_status, sense) {
        let fixed = sense.to_fixed();
        let n = fixed.len().min(usize::from(f.sense_length.get()));
        if f.sense_buffer.get() != 0 && n > 0 {
            if let Err(e) = dma_write(f.sense_buffer.get(), &fixed[..n]) {
                return c
                    .dma_fault(&format!("writing the sense data of SCSI_IO smid={}", q.smid), e);
            }
            flags |= ReplyFlags::SENSE_VALID.bits();
        }
    }
    c.post_reply(epoch, reply(q.smid, scsi_status, flags, transferred, f.tag.get()));
}

fn bad_function(c: &Controller, q: Queued, epoch: u64, function: u8) {
    report(
        "BadRequestFunction",
        SECTION,
        Some(format!("request smid={}", q.smid)),
        format!("smid={} function={function:#04x}", q.smid),
        format!(
            "request descriptor for SMID {} names function {function:#04x}, which the firmware \
             does not have; it answers status {:#04x}",
            q.smid,
            mgmt_status::INVALID_FUNCTION
        ),
    );
    let tag = request_tag(&q);
    c.post_reply(epoch, reply(q.smid, mgmt_status::INVALID_FUNCTION, 0, 0, tag));
}

// ----------------------------------------------------------------------- ABORT_TASK --

fn abort(c: &Controller, q: Queued, epoch: u64) {
    let bytes = match dma_read(q.frame, size_of::<RequestFrame>()) {
        Ok(b) => b,
        Err(f) => {
            return c.dma_fault(&format!("reading the frame of ABORT_TASK smid={}", q.smid), f)
        }
    };
    let Ok(f) = RequestFrame::read_from_bytes(&bytes) else { return };
    let target = f.abort_smid.get();
    let found = {
        let mut d = c.dev();
        if d.epoch != epoch {
            return;
        }
        let at = d.queue.iter().position(|x| x.smid == target);
        at.and_then(|i| d.queue.remove(i))
    };
    let tag = f.tag.get();
    if let Some(aborted) = found {
        // The aborted request's reply echoes its own tag; the abort's reply, the abort's.
        let aborted_reply = reply(target, 0, ReplyFlags::ABORTED.bits(), 0, request_tag(&aborted));
        if c.post_reply(epoch, aborted_reply) {
            c.post_reply(epoch, reply(q.smid, mgmt_status::SUCCESS, 0, 0, tag));
        }
    } else {
        c.post_reply(epoch, reply(q.smid, mgmt_status::NOT_FOUND, 0, 0, tag));
    }
}

// ----------------------------------------------------------------------- MANAGEMENT --

fn management(c: &Controller, q: Queued, epoch: u64) {
    let bytes = match dma_read(q.frame, size_of::<MgmtFrame>()) {
        Ok(b) => b,
        Err(f) => {
            return c.dma_fault(&format!("reading the frame of MANAGEMENT smid={}", q.smid), f)
        }
    };
    let Ok(m) = MgmtFrame::read_from_bytes(&bytes) else { return };
    let call = format!("MANAGEMENT opcode={:#04x} smid={}", m.opcode, q.smid);
    sched::sleep_ns(c.config().timing.mgmt_ns);
    if !live(c, epoch) {
        return;
    }
    let (status, data) = if m.function == function::MANAGEMENT {
        execute(c, &m)
    } else {
        report(
            "BadRequestFrame",
            SECTION,
            Some(call.clone()),
            format!("smid={} frame function={:#04x}", q.smid, m.function),
            format!(
                "the frame of MANAGEMENT SMID {} says function {:#04x}; the firmware answers \
                 status {:#04x}",
                q.smid,
                m.function,
                mgmt_status::INVALID_ARGUMENT
            ),
        );
        (mgmt_status::INVALID_ARGUMENT, Vec::new())
    };
    c.engine().sync();
    let n = data.len().min(m.buffer_length.get() as usize);
    if n > 0 {
        if let Err(e) = dma_write(m.buffer.get(), &data[..n]) {
            return c.dma_fault(&format!("writing the buffer of {call}"), e);
        }
    }
    c.post_reply(epoch, reply(q.smid, status, 0, n as u32, m.tag.get()));
}

fn entries<T: IntoBytes + zerocopy::Immutable>(items: &[T], room: usize) -> Vec<u8> {
    let fit = room / size_of::<T>();
    items.iter().take(fit).flat_map(|e| e.as_bytes().to_vec()).collect()
}

/// Run one management opcode: (status, data for the buffer).
fn execute(c: &Controller, m: &MgmtFrame) -> (u8, Vec<u8>) {
    let array = c.array();
    let room = if m.buffer.get() == 0 { 0 } else { m.buffer_length.get() as usize };
    let args = m.args.map(|a| a.get());
    let needs_buffer = matches!(
        m.opcode,
        mgmt::CONTROLLER_INFO | mgmt::LIST_VOLUMES | mgmt::LIST_DRIVES | mgmt::EVENTS_SINCE
    );
    if needs_buffer && room == 0 {
        return (mgmt_status::NO_BUFFER, Vec::new());
    }
    let status = |r: Result<(), MgmtError>| match r {
        Ok(()) => (mgmt_status::SUCCESS, Vec::new()),
        Err(e) => (e.status(), Vec::new()),
    };
    let id = |a: u32| u16::try_from(a).map_err(|_| MgmtError::NotFound);
    match m.opcode {
        mgmt::CONTROLLER_INFO => {
            let a = array.borrow();
            let facts = c.config().facts;
            let info = ControllerInfo {
                max_commands: U32::new(facts.max_commands),
                max_targets: U32::new(facts.max_targets),
                drives: U32::new(a.drives().len() as u32),
                volumes: U32::new(a.volumes().len() as u32),
                firmware_version: *b"dkraid-sim 1.0\0\0",
                serial: *b"DKSIM00000000001",
            };
            let bytes = info.as_bytes();
            (mgmt_status::SUCCESS, bytes[..bytes.len().min(room)].to_vec())
        }
        mgmt::LIST_VOLUMES => (mgmt_status::SUCCESS, entries(&array.borrow().volumes(), room)),
        mgmt::LIST_DRIVES => (mgmt_status::SUCCESS, entries(&array.borrow().drives(), room)),
        mgmt::EVENTS_SINCE => {
            (mgmt_status::SUCCESS, entries(&array.borrow().events_since(u64::from(args[0])), room))
        }
        mgmt::CREATE_VOLUME => {
            let drives = u64::from(args[2]) | (u64::from(args[3]) << 32);
            // args[0]: the level in bits 0..8, log2 of the block size in bits 8..16 (0: the
            // array's default), nothing above.
            let block_size = match (args[0] >> 8) & 0xFF {
                0 => 0,
                9 => 512,
                12 => 4096,
                _ => return (mgmt_status::INVALID_ARGUMENT, Vec::new()),
            };
            if args[0] >> 16 != 0 {
                return (mgmt_status::INVALID_ARGUMENT, Vec::new());
            }
            let level = args[0] & 0xFF;
            let created = array.borrow_mut().create_volume(level, block_size, args[1], drives);
            match created {
                Ok(v) => {
                    let entry = array.borrow().volumes().into_iter().find(|e| e.id.get() == v);
                    (mgmt_status::SUCCESS, entries(&Vec::from_iter(entry), room))
                }
                Err(e) => (e.status(), Vec::new()),
            }
        }
        mgmt::DELETE_VOLUME => {
            status(id(args[0]).and_then(|v| array.borrow_mut().delete_volume(v)))
        }
        // args[2]: the volume a new spare is dedicated to; 0xFFFF (or 0, what older drivers
        // send) makes a global one.
        mgmt::SET_HOT_SPARE => {
            let dedicated = match args[2] {
                mgmt::GLOBAL_SPARE => Ok(None),
                v => id(v).map(Some),
            };
            status(id(args[0]).and_then(|d| {
                let to = if args[1] != 0 { dedicated? } else { None };
                array.borrow_mut().set_hot_spare(d, args[1] != 0, to)
            }))
        }
        mgmt::START_REBUILD => status(
            id(args[0])
                .and_then(|v| Ok((v, id(args[1])?)))
                .and_then(|(v, d)| array.borrow_mut().start_rebuild(v, d)),
        ),
        _ => (mgmt_status::INVALID_FUNCTION, Vec::new()),
    }
}

// --------------------------------------------------------------------------- events --

/// Post a notification for each event newer than the baseline.
fn post_events(c: &Controller, epoch: u64) {
    let baseline = c.dev().event_baseline;
    let events = c.array().borrow().events_since(baseline);
    for e in events {
        let sequence = e.sequence.get();
        let flags = ReplyFlags::EVENT.bits();
        // Events answer no request: tag 0.
        if !c.post_reply(epoch, reply(EVENT_SMID, 0, flags, sequence as u32, 0)) {
            return;
        }
        let mut d = c.dev();
        if d.epoch == epoch {
            d.event_baseline = d.event_baseline.max(sequence);
        }
    }
    // A log that reports a newer last_event than its entries would spin: trust the entries.
    let last = c.array().borrow().last_event();
    let mut d = c.dev();
    if d.epoch == epoch {
        d.event_baseline = d.event_baseline.max(last);
    }
}
