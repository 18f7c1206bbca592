//! The device's registers and state: what an MMIO access reaches, the doorbells, the FW_STATE
//! machine, posting replies on the reply ring with the lap's phase, faults, and device DMA
//! through the simulated IOMMU.

use std::collections::VecDeque;

use dkraid_core::firmware::wire::{
    doorbell, fw_state, reg, ReplyDescriptor, ReplyFlags, EVENT_SMID,
};
use zerocopy::IntoBytes;

use super::{all_ones, fault_code, interrupts, intr, Controller, Facts, BAR0_SIZE};
use crate::memory::DmaFault;
use crate::sched::{self, ThreadId, WaitFor};
use crate::verifier::Violation;
use crate::world::{self, with_world};

/// Where violations the device finds are documented.
pub const SECTION: &str = "docs/CONTROLLER.md";
/// Device DMA outside a mapping breaks DRIVERKIT.md §2's rule: map all the way through
/// `PrepareForDMA` and hand the device only what is mapped.
pub const SECTION_DMA: &str = "DRIVERKIT.md §2";
/// The size of one reply ring entry.
const ENTRY: u64 = size_of::<ReplyDescriptor>() as u64;

/// The rings the host handed over with INIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rings {
    pub request_ring: u64,
    pub request_entries: u32,
    pub reply_ring: u64,
    pub reply_entries: u32,
    pub vector: u32,
    /// The phase of the current lap of the reply ring (1 on the first, flipped on each wrap).
    pub phase: u8,
}

/// A request descriptor the firmware took off the request ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    pub smid: u16,
    pub function: u8,
    pub frame: u64,
}

/// Counters, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub replies: u64,
    pub events_posted: u64,
    pub replies_dropped: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub interrupts: u64,
    pub resets: u64,
    pub faults: u64,
    /// Doorbells rung in a state that ignores them (INIT outside READY, REQUEST outside
    /// OPERATIONAL) or with an unknown command.
    pub doorbells_ignored: u64,
}

/// The device state behind BAR0.
#[derive(Debug)]
pub struct Device {
    /// The IOC facts registers (read-only).
    pub facts: Facts,
    pub state: u32,
    pub fault_code: u16,
    pub intr_status: u32,
    pub intr_mask: u32,
    pub reply_producer: u32,
    pub reply_consumer: u32,
    pub request_producer: u32,
    pub request_consumer: u32,
    pub init_frame: [u32; 2],
    pub rings: Option<Rings>,
    /// Taken off the ring, not started.
    pub queue: VecDeque<Queued>,
    /// ABORT_TASK requests, handled before the queue.
    pub aborts: VecDeque<Queued>,
    pub in_progress: Option<u16>,
    /// Changes on RESET and FAULT: work begun in an older epoch is dropped without a reply.
    pub epoch: u64,
    pub ready_pending: bool,
    pub init_pending: bool,
    pub doorbell_request: bool,
    pub waiting_for_space: bool,
    /// The firmware thread is to return (the simulation is ending).
    pub halted: bool,
    pub thread: Option<ThreadId>,
    pub stall_ns: u64,
    pub drop_replies: u32,
    /// The newest event sequence notified on the reply ring.
    pub event_baseline: u64,
    pub stats: Stats,
}

impl Device {
    /// Power-on: RESET, READY pending.
    pub fn new(facts: Facts) -> Device {
        Device {
            facts,
            state: fw_state::RESET,
            fault_code: 0,
            intr_status: 0,
            intr_mask: 0,
            reply_producer: 0,
            reply_consumer: 0,
            request_producer: 0,
            request_consumer: 0,
            init_frame: [0; 2],
            rings: None,
            queue: VecDeque::new(),
            aborts: VecDeque::new(),
            in_progress: None,
            epoch: 0,
            ready_pending: true,
            init_pending: false,
            doorbell_request: false,
            waiting_for_space: false,
            halted: false,
            thread: None,
            stall_ns: 0,
            drop_replies: 0,
            event_baseline: 0,
            stats: Stats::default(),
        }
    }

    pub fn fw_state(&self) -> u32 {
        self.state | (u32::from(self.fault_code) << 16)
    }

    pub fn operational(&self) -> bool {
        self.state == fw_state::OPERATIONAL
    }

    fn read32(&self, offset: u64) -> u32 {
        match offset {
            reg::FW_STATE => self.fw_state(),
            reg::INTR_STATUS => self.intr_status,
            reg::INTR_MASK => self.intr_mask,
            reg::REPLY_PRODUCER => self.reply_producer,
            reg::REPLY_CONSUMER => self.reply_consumer,
            reg::REQUEST_PRODUCER => self.request_producer,
            reg::REQUEST_CONSUMER => self.request_consumer,
            reg::INIT_FRAME_LO => self.init_frame[0],
            reg::INIT_FRAME_HI => self.init_frame[1],
            reg::MAX_COMMANDS => self.facts.max_commands,
            reg::MAX_TARGETS => self.facts.max_targets,
            reg::MAX_SGE => self.facts.max_sge,
            reg::MAX_TRANSFER_KIB => self.facts.max_transfer_kib,
            _ => 0,
        }
    }

    /// The vector for a state-change or reply interrupt, if `bit` is not masked.
    fn vector_for(&self, bit: u32) -> Option<u32> {
        if self.intr_mask & bit != 0 {
            return None;
        }
        Some(self.rings.map_or(0, |r| r.vector))
    }

    /// Set an INTR_STATUS bit; the vector to raise unless it is masked.
    pub fn signal(&mut self, bit: u32) -> Option<u32> {
        self.intr_status |= bit;
        let v = self.vector_for(bit);
        if v.is_some() {
            self.stats.interrupts += 1;
        }
        v
    }

    /// Drop every queued and in-flight request (they get no reply) and start a new epoch.
    fn flush(&mut self) {
        self.epoch += 1;
        self.queue.clear();
        self.aborts.clear();
        self.in_progress = None;
        self.doorbell_request = false;
        self.init_pending = false;
    }
}

/// What a register write asks of the world once the device is released.
#[derive(Default)]
struct After {
    wake: bool,
    raise: Option<u32>,
    violation: Option<(&'static str, u16, String, String)>,
}

impl Controller {
    // ---------------------------------------------------------------------------- MMIO --

    /// A BAR0 read of `width` bits (8, 16, 32 or 64) at `offset`. Registers are 32-bit; a
    /// 64-bit read is two of them, low first.
    pub fn mmio_read(&self, offset: u64, width: u32) -> u64 {
        if offset.checked_add(u64::from(width / 8)).is_none_or(|end| end > BAR0_SIZE) {
            return all_ones(width);
        }
        let d = self.dev();
        match width {
            64 => u64::from(d.read32(offset)) | (u64::from(d.read32(offset + 4)) << 32),
            32 => u64::from(d.read32(offset)),
            8 | 16 => {
                let word = d.read32(offset & !3);
                (u64::from(word) >> ((offset & 3) * 8)) & all_ones(width)
            }
            _ => all_ones(width),
        }
    }

    /// A BAR0 write. 32-bit writes reach the registers; a 64-bit write is two, low first;
    /// narrower writes are ignored.
    pub fn mmio_write(&self, offset: u64, width: u32, value: u64) {
        if offset.checked_add(u64::from(width / 8)).is_none_or(|end| end > BAR0_SIZE) {
            return;
        }
        match width {
            64 => {
                self.write32(offset, value as u32);
                self.write32(offset + 4, (value >> 32) as u32);
            }
            32 => self.write32(offset, value as u32),
            _ => {}
        }
    }

    fn write32(&self, offset: u64, value: u32) {
        let mut after = After::default();
        {
            let mut d = self.dev();
            match offset {
                reg::DOORBELL => self.doorbell(&mut d, value, &mut after),
                reg::INTR_STATUS => d.intr_status &= !value,
                reg::INTR_MASK => {
                    let unmasked = d.intr_mask & !value;
                    d.intr_mask = value;
                    // MSI-X pending bit: what was held back by the mask is sent on unmask.
                    let held = d.intr_status & unmasked;
                    if held != 0 {
                        after.raise = d.signal(held);
                    }
                }
                reg::REPLY_CONSUMER => {
                    d.reply_consumer = value;
                    match d.rings {
                        Some(r) if d.operational() && value >= r.reply_entries => {
                            after.violation = Some((
                                "ReplyConsumerOutOfRange",
                                fault_code::REPLY_CONSUMER_OUT_OF_RANGE,
                                format!("REPLY_CONSUMER={value} entries={}", r.reply_entries),
                                format!(
                                    "the host wrote REPLY_CONSUMER {value} for a reply ring of \
                                     {} entries; the firmware faults",
                                    r.reply_entries
                                ),
                            ));
                        }
                        _ => {
                            after.wake = std::mem::take(&mut d.waiting_for_space);
                        }
                    }
                }
                reg::REQUEST_PRODUCER => d.request_producer = value,
                reg::INIT_FRAME_LO => d.init_frame[0] = value,
                reg::INIT_FRAME_HI => d.init_frame[1] = value,
                // Read-only and unknown registers ignore writes.
                _ => {}
            }
        }
        if let Some((rule, code, values, message)) = after.violation {
            report(rule, SECTION, None, values, message);
            self.fault(code);
        }
        self.apply(after.wake, after.raise);
    }

    fn doorbell(&self, d: &mut Device, value: u32, after: &mut After) {
        match value {
            doorbell::INIT if d.state == fw_state::READY && !d.init_pending => {
                d.init_pending = true;
                after.wake = true;
            }
            doorbell::REQUEST if d.operational() => {
                d.doorbell_request = true;
                after.wake = true;
            }
            doorbell::RESET => {
                // Everything queued or in flight is dropped without a reply: the host
                // completes those tasks itself.
                d.flush();
                d.state = fw_state::RESET;
                d.fault_code = 0;
                d.rings = None;
                d.intr_status = 0;
                d.intr_mask = 0;
                d.reply_producer = 0;
                d.reply_consumer = 0;
                d.request_producer = 0;
                d.request_consumer = 0;
                d.init_frame = [0; 2];
                d.ready_pending = true;
                d.waiting_for_space = false;
                d.stats.resets += 1;
                self.engine().reset();
                after.wake = true;
            }
            _ => d.stats.doorbells_ignored += 1,
        }
    }

    /// Wake the firmware and raise a vector, with no device borrow held.
    pub(crate) fn apply(&self, wake: bool, raise: Option<u32>) {
        if wake {
            let thread = self.dev().thread;
            if let Some(t) = thread {
                sched::wake(t);
            }
        }
        if let Some(v) = raise {
            interrupts::raise(v);
        }
    }

    // ------------------------------------------------------------------- state changes --

    /// FAULT with `code`: drop all work, signal a state change.
    pub(crate) fn fault(&self, code: u16) {
        let raise = {
            let mut d = self.dev();
            d.flush();
            d.state = fw_state::FAULT;
            d.fault_code = code;
            d.stats.faults += 1;
            let raise = d.signal(intr::STATE);
            d.rings = None;
            raise
        };
        timeline("FW_STATE", format!("FAULT code={code:#06x}"));
        self.apply(false, raise);
    }

    /// The ring of the current lap wrapped: flip the phase.
    fn advance_producer(d: &mut Device) {
        if let Some(r) = d.rings.as_mut() {
            d.reply_producer = (d.reply_producer + 1) % r.reply_entries;
            if d.reply_producer == 0 {
                r.phase ^= ReplyFlags::PHASE.bits();
            }
        }
    }

    /// Post a reply for work begun in `epoch`, with the current lap's phase. Waits (blocked,
    /// on the firmware thread) while the ring is full. False if it was not posted: the epoch
    /// ended (RESET or FAULT), fault injection dropped it, or the write faulted.
    pub(crate) fn post_reply(&self, epoch: u64, mut desc: ReplyDescriptor) -> bool {
        loop {
            let slot = {
                let mut d = self.dev();
                let Some(r) = d.rings else { return false };
                if d.epoch != epoch || !d.operational() || d.halted {
                    return false;
                }
                if desc.smid.get() != EVENT_SMID && d.drop_replies > 0 {
                    d.drop_replies -= 1;
                    d.stats.replies_dropped += 1;
                    return false;
                }
                let next = (d.reply_producer + 1) % r.reply_entries;
                if next == d.reply_consumer {
                    d.waiting_for_space = true;
                    None
                } else {
                    Some((r.reply_ring + u64::from(d.reply_producer) * ENTRY, r.phase))
                }
            };
            let Some((iova, phase)) = slot else {
                sched::block(
                    "firmware: reply ring full",
                    WaitFor::Other(
                        "the host to advance REPLY_CONSUMER (the reply ring is full)".into(),
                    ),
                );
                continue;
            };
            desc.flags = (desc.flags & !ReplyFlags::PHASE.bits()) | phase;
            // The phase is covered by the check word: seal again.
            desc.seal();
            if let Err(f) = dma_write(iova, desc.as_bytes()) {
                self.dma_fault(&format!("posting the reply for SMID {}", desc.smid.get()), f);
                return false;
            }
            let raise = {
                let mut d = self.dev();
                Self::advance_producer(&mut d);
                if desc.smid.get() == EVENT_SMID {
                    d.stats.events_posted += 1;
                } else {
                    d.stats.replies += 1;
                }
                d.signal(intr::REPLY)
            };
            self.apply(false, raise);
            return true;
        }
    }

    /// Fault injection: write `desc` unchanged (not sealed, not stamped with the phase) at the
    /// producer and advance.
    pub(crate) fn post_raw(&self, desc: ReplyDescriptor) -> bool {
        let Some(iova) = ({
            let d = self.dev();
            d.rings.map(|r| r.reply_ring + u64::from(d.reply_producer) * ENTRY)
        }) else {
            return false;
        };
        if let Err(f) = dma_write(iova, desc.as_bytes()) {
            self.dma_fault("posting an injected reply", f);
            return false;
        }
        let raise = {
            let mut d = self.dev();
            Self::advance_producer(&mut d);
            d.signal(intr::REPLY)
        };
        self.apply(false, raise);
        true
    }

    /// A device DMA hit no live mapping: the violation, then FAULT.
    pub(crate) fn dma_fault(&self, what: &str, f: DmaFault) {
        report(
            "DmaOutsideMapping",
            SECTION_DMA,
            Some(what.to_string()),
            format!("iova={:#x} length={}", f.iova, f.len),
            format!(
                "the controller's DMA of {} bytes at IOVA {:#x} ({what}) hit no live IOMMU \
                 mapping; the firmware faults (code {:#06x}). Hand the device only addresses \
                 from PrepareForDMA that are still prepared, and lengths inside them.",
                f.len,
                f.iova,
                fault_code::DMA_FAULT
            ),
        );
        self.fault(fault_code::DMA_FAULT);
    }
}

// ------------------------------------------------------------------------ device DMA --

/// Device read of `len` bytes at `iova` through the IOMMU.
pub fn dma_read(iova: u64, len: usize) -> Result<Vec<u8>, DmaFault> {
    if len == 0 {
        return Ok(Vec::new());
    }
    with_world(|w| {
        let p = w.memory.translate(iova, len as u64)?;
        let mut out = vec![0u8; len];
        // SAFETY: `translate` checked that [iova, iova + len) lies inside one live mapping of a
        // live buffer, so `p` is valid for `len` bytes; the world borrow keeps the buffer alive
        // for the copy, and no other code runs meanwhile (one simulated thread at a time).
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), len) };
        Ok(out)
    })
}

/// Device write of `data` at `iova` through the IOMMU.
pub fn dma_write(iova: u64, data: &[u8]) -> Result<(), DmaFault> {
    if data.is_empty() {
        return Ok(());
    }
    with_world(|w| {
        let p = w.memory.translate(iova, data.len() as u64)?;
        // SAFETY: as in `dma_read`: `p` is valid for `data.len()` bytes of a live buffer, which
        // `data` (a Rust allocation) does not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    })
}

/// Record a violation the device found. `call` names what the firmware was doing; by default
/// it is the current thread's call.
pub(crate) fn report(
    rule: &'static str,
    section: &'static str,
    call: Option<String>,
    values: String,
    message: String,
) {
    let queue = world::current_queue_name();
    with_world(|w| {
        let call = call.unwrap_or_else(|| world::current_call(w));
        w.violations.push(Violation { rule, queue, call, values, section, message });
    });
}

/// A device event on the timeline (queue "firmware" when on the firmware thread).
pub(crate) fn timeline(call: &str, result: String) {
    if sched::in_simulation() {
        let now = sched::now_ns();
        world::record_event(now, world::current_queue_name(), call.to_string(), result);
    }
}
