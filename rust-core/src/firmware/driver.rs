//! The firmware driver: bring the controller up, submit tasks, process replies, time tasks out,
//! abort them, and recover from a reset — every wait bounded, every step non-blocking. The dext
//! calls [`Firmware::step`] from a timer until it reports `Operational`, [`Firmware::submit`]
//! from `UserProcessParallelTask`, [`Firmware::interrupt`] from its interrupt handler and
//! [`Firmware::tick`] from a periodic timer.
//!
//! A timed-out task is not completed at once: the firmware may still own it, and the kernel
//! reuses task IDs, so a late reply could complete the next command with that ID. It is aborted
//! first; it completes (once) when the firmware confirms, and a reset follows if it does not.

use core::fmt;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use super::reply::{Reply, ReplyRing, Tags};
use super::request::{self, RequestError, RequestRing};
use super::wire::{
    doorbell, frame_layout, function, fw_state, reg, InitFrame, MgmtFrame, ReplyDescriptor,
    ReplyFlags, RequestDescriptor, RequestFrame, CONTROL_SMID, INIT_MAGIC, INIT_VERSION,
};
use crate::abi;
use crate::ioreturn::IOReturn;
use crate::limits::MAX_TASK_COUNT;
use crate::platform::{DmaDirection, DmaHandle, DmaSegment, Platform};
use crate::task_pool::{TaskId, TaskPool};

/// BAR 0: the controller's registers.
const BAR: u32 = 0;
/// How long the firmware may take to become READY, then OPERATIONAL.
pub const INIT_TIMEOUT_NS: u64 = 10_000_000_000;
/// How often [`Firmware::step`] wants to be called while waiting.
pub const POLL_INTERVAL_NS: u64 = 1_000_000;
/// A task without a timeout gets this one.
pub const DEFAULT_TASK_TIMEOUT_NS: u64 = 30_000_000_000;
/// How long an abort may take before the controller is reset.
pub const ABORT_TIMEOUT_NS: u64 = 5_000_000_000;
/// How many dropped replies one interrupt pass names in the log; the rest are counted in one
/// summary line.
pub const DROPPED_REPLIES_LOGGED_PER_PASS: u64 = 8;
/// How long a management request (or the stage's own I/O) may take before the controller is
/// reset.
pub const CONTROL_TIMEOUT_NS: u64 = 30_000_000_000;

/// Why the firmware could not be brought up or kept up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareError {
    /// A DMA region for the rings could not be created or mapped in one piece.
    Dma { what: &'static str, status: IOReturn },
    /// The firmware did not reach `state` in time.
    Timeout { waiting_for: &'static str },
    /// The firmware reported FAULT with this code.
    Fault { code: u32 },
    /// The controller can take fewer commands than the rings need.
    Facts { max_commands: u32 },
    /// A call before `start`, or after a failure.
    NotStarted,
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FirmwareError::Dma { what, status } => {
                write!(f, "FirmwareDma: the {what} could not be mapped: {status}")
            }
            FirmwareError::Timeout { waiting_for } => {
                write!(f, "FirmwareTimeout: the controller did not become {waiting_for} in time")
            }
            FirmwareError::Fault { code } => write!(f, "FirmwareFault: fault code {code:#06x}"),
            FirmwareError::Facts { max_commands } => {
                write!(f, "FirmwareFacts: the controller takes only {max_commands} commands")
            }
            FirmwareError::NotStarted => f.write_str("FirmwareNotStarted"),
        }
    }
}

/// What [`Firmware::step`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Call again in this many nanoseconds.
    Pending {
        poll_in_ns: u64,
    },
    Operational,
    Failed(FirmwareError),
}

/// The controller's facts (read at READY).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub max_commands: u32,
    pub max_targets: u32,
    pub max_sge: u32,
    pub max_transfer_kib: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Down,
    WaitReady { deadline_ns: u64 },
    WaitOperational { deadline_ns: u64 },
    Operational,
    Failed(FirmwareError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    handle: DmaHandle,
    cpu: u64,
    iova: u64,
    bytes: u64,
}

impl Region {
    /// The region's memory.
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `cpu` is the platform's mapping of `bytes` bytes, checked when the region was
        // created and valid until it is freed in `release`; `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.cpu as *mut u8, self.bytes as usize) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Regions {
    init: Region,
    requests: Region,
    replies: Region,
    /// The driver's own request frame (management, aborts, the stage 2 read) and its data.
    control: Region,
}

/// What the control frame is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// `tag`: the aborted submission's tag. The abort's reply may arrive after the task's own
    /// ABORTED reply completed it and the kernel reused the ID: only that submission is
    /// completed by it, never the next one.
    Abort {
        task: TaskId,
        tag: u32,
    },
    /// The stage's own management request (LIST_VOLUMES, EVENTS_SINCE for hot plug).
    Management {
        opcode: u8,
    },
    /// A management request carried out for the admin engine ([`crate::admin::engine`]): its
    /// reply goes to the admin request that sent it, never to the stage's work.
    Admin {
        opcode: u8,
    },
    Io,
}

/// A finished control request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlDone {
    pub kind: ControlKind,
    pub reply: ReplyDescriptor,
}

/// Offsets in the control region: its frame, then a data buffer.
const CONTROL_DATA: usize = 1024;

/// The firmware driver's state. Fixed size; no allocation after `start`.
#[derive(Debug)]
pub struct Firmware {
    phase: Phase,
    entries: u16,
    requests: RequestRing,
    replies: ReplyRing,
    regions: Option<Regions>,
    facts: Facts,
    /// Per task: when it times out (0: not outstanding in the firmware).
    deadlines: [u64; MAX_TASK_COUNT as usize],
    /// Per task: an abort was requested (and when it gives up).
    aborting: [u64; MAX_TASK_COUNT as usize],
    /// Per task and for the control request: the tag its reply must echo (0: none in flight).
    tags: Tags,
    control: Option<ControlKind>,
    /// When the control request (management or I/O, not an abort: aborts have their own)
    /// gives up; set by the first [`Firmware::tick`] that sees it, 0 when none is in flight.
    control_deadline: u64,
    /// The request ring looked full with nothing outstanding: impossible on healthy firmware
    /// (it consumed nothing, or its consumer index went back after a self-reset). The next
    /// [`Firmware::tick`] resets the controller.
    ring_stuck: bool,
    /// The newest event sequence the firmware announced.
    pub last_event: u32,
    /// Replies dropped because they were bogus, stale or duplicates.
    pub dropped_replies: u64,
    /// When [`Firmware::tick`] next reads FW_STATE (the health check).
    next_state_check: u64,
}

impl Default for Firmware {
    fn default() -> Self {
        Self::new()
    }
}

fn region<P: Platform>(
    platform: &mut P,
    bytes: u64,
    what: &'static str,
) -> Result<Region, FirmwareError> {
    let buffer = platform
        .dma_buffer_create(bytes, 4096, DmaDirection::InOut)
        .map_err(|status| FirmwareError::Dma { what, status })?;
    let mut segments = [DmaSegment::default(); 2];
    let mapped = platform.dma_buffer_prepare(buffer.handle, &mut segments);
    let ok = match mapped {
        Ok(1) => segments[0].length == bytes && segments[0].address != 0 && buffer.cpu_address != 0,
        _ => false,
    };
    if !ok {
        platform.dma_buffer_free(buffer.handle);
        let status = mapped.err().unwrap_or(IOReturn::kIOReturnDMAError);
        return Err(FirmwareError::Dma { what, status });
    }
    let mut r =
        Region { handle: buffer.handle, cpu: buffer.cpu_address, iova: segments[0].address, bytes };
    r.bytes_mut().fill(0);
    Ok(r)
}

impl Firmware {
    pub const fn new() -> Firmware {
        Firmware {
            phase: Phase::Down,
            entries: 0,
            requests: match RequestRing::new(2) {
                Some(r) => r,
                None => panic!("2 entries make a ring"),
            },
            replies: match ReplyRing::new(2) {
                Some(r) => r,
                None => panic!("2 entries make a ring"),
            },
            regions: None,
            facts: Facts { max_commands: 0, max_targets: 0, max_sge: 0, max_transfer_kib: 0 },
            deadlines: [0; MAX_TASK_COUNT as usize],
            aborting: [0; MAX_TASK_COUNT as usize],
            tags: Tags::new(),
            control: None,
            control_deadline: 0,
            ring_stuck: false,
            last_event: 0,
            dropped_replies: 0,
            next_state_check: 0,
        }
    }

    pub fn facts(&self) -> Facts {
        self.facts
    }

    pub fn is_operational(&self) -> bool {
        self.phase == Phase::Operational
    }

    /// Allocate the rings (`tasks` + 1 entries each, room for the control request) and begin
    /// waiting for READY. Called once, from `UserStartController`'s asynchronous work.
    pub fn start<P: Platform>(
        &mut self,
        platform: &mut P,
        tasks: u32,
        now_ns: u64,
    ) -> Result<(), FirmwareError> {
        if self.regions.is_none() {
            let entries = (tasks + 2).min(u32::from(u16::MAX)) as u16;
            let init = region(platform, 4096, "init frame")?;
            let requests =
                region(platform, u64::from(entries) * 16, "request ring").inspect_err(|_| {
                    platform.dma_buffer_free(init.handle);
                })?;
            let reply_bytes = u64::from(entries) * size_of::<ReplyDescriptor>() as u64;
            let replies = region(platform, reply_bytes, "reply ring").inspect_err(|_| {
                platform.dma_buffer_free(init.handle);
                platform.dma_buffer_free(requests.handle);
            })?;
            let control = region(platform, 8192, "control frame").inspect_err(|_| {
                platform.dma_buffer_free(init.handle);
                platform.dma_buffer_free(requests.handle);
                platform.dma_buffer_free(replies.handle);
            })?;
            self.regions = Some(Regions { init, requests, replies, control });
            self.entries = entries;
        }
        self.requests = RequestRing::new(self.entries).ok_or(FirmwareError::NotStarted)?;
        self.replies = ReplyRing::new(self.entries).ok_or(FirmwareError::NotStarted)?;
        self.phase = Phase::WaitReady { deadline_ns: now_ns + INIT_TIMEOUT_NS };
        Ok(())
    }

    /// One bounded step of the bring-up handshake: read the state register once and act.
    pub fn step<P: Platform>(&mut self, platform: &mut P, now_ns: u64) -> Step {
        let pending = Step::Pending { poll_in_ns: POLL_INTERVAL_NS };
        let state = platform.mmio_read32(BAR, reg::FW_STATE);
        if state & fw_state::MASK == fw_state::FAULT && !matches!(self.phase, Phase::Down) {
            let e = FirmwareError::Fault { code: state >> 16 };
            self.phase = Phase::Failed(e);
            return Step::Failed(e);
        }
        match self.phase {
            Phase::Down => Step::Failed(FirmwareError::NotStarted),
            Phase::Failed(e) => Step::Failed(e),
            Phase::Operational => Step::Operational,
            Phase::WaitReady { deadline_ns } => {
                if state & fw_state::MASK != fw_state::READY {
                    return self.timeout_or(pending, now_ns, deadline_ns, "READY");
                }
                self.facts = Facts {
                    max_commands: platform.mmio_read32(BAR, reg::MAX_COMMANDS),
                    max_targets: platform.mmio_read32(BAR, reg::MAX_TARGETS),
                    max_sge: platform.mmio_read32(BAR, reg::MAX_SGE),
                    max_transfer_kib: platform.mmio_read32(BAR, reg::MAX_TRANSFER_KIB),
                };
                if self.facts.max_commands < u32::from(self.entries) {
                    let e = FirmwareError::Facts { max_commands: self.facts.max_commands };
                    self.phase = Phase::Failed(e);
                    return Step::Failed(e);
                }
                let Some(regions) = self.regions.as_mut() else {
                    return Step::Failed(FirmwareError::NotStarted);
                };
                let init = InitFrame {
                    magic: U32::new(INIT_MAGIC),
                    version: U16::new(INIT_VERSION),
                    request_entries: U16::new(self.entries),
                    reply_entries: U16::new(self.entries),
                    reserved: U16::new(0),
                    msix_vector: U32::new(0),
                    request_ring: U64::new(regions.requests.iova),
                    reply_ring: U64::new(regions.replies.iova),
                };
                let iova = regions.init.iova;
                regions.init.bytes_mut()[..32].copy_from_slice(init.as_bytes());
                platform.mmio_write32(BAR, reg::INIT_FRAME_LO, iova as u32);
                platform.mmio_write32(BAR, reg::INIT_FRAME_HI, (iova >> 32) as u32);
                platform.mmio_write32(BAR, reg::INTR_MASK, 0);
                platform.mmio_write32(BAR, reg::DOORBELL, doorbell::INIT);
                self.phase = Phase::WaitOperational { deadline_ns: now_ns + INIT_TIMEOUT_NS };
                pending
            }
            Phase::WaitOperational { deadline_ns } => {
                if state & fw_state::MASK == fw_state::OPERATIONAL {
                    self.phase = Phase::Operational;
                    log::info!("dkraid: firmware operational: {:?}", self.facts);
                    Step::Operational
                } else {
                    self.timeout_or(pending, now_ns, deadline_ns, "OPERATIONAL")
                }
            }
        }
    }

    fn timeout_or(
        &mut self,
        pending: Step,
        now_ns: u64,
        deadline_ns: u64,
        waiting_for: &'static str,
    ) -> Step {
        if now_ns >= deadline_ns {
            let e = FirmwareError::Timeout { waiting_for };
            self.phase = Phase::Failed(e);
            Step::Failed(e)
        } else {
            pending
        }
    }

    /// Put one descriptor on the request ring and ring the doorbell.
    fn post<P: Platform>(
        &mut self,
        platform: &mut P,
        descriptor: &RequestDescriptor,
    ) -> Result<(), RequestError> {
        let consumer = platform.mmio_read32(BAR, reg::REQUEST_CONSUMER);
        self.requests.set_consumer(consumer);
        let index = self.requests.push()?;
        let Some(regions) = self.regions.as_mut() else {
            return Err(RequestError::RingFull);
        };
        let at = usize::from(index) * 16;
        regions.requests.bytes_mut()[at..at + 16].copy_from_slice(descriptor.as_bytes());
        platform.mmio_write32(BAR, reg::REQUEST_PRODUCER, u32::from(self.requests.producer()));
        platform.mmio_write32(BAR, reg::DOORBELL, doorbell::REQUEST);
        Ok(())
    }

    /// Send an outstanding task to the firmware. `Err(RingFull)`: answer TASK SET FULL.
    pub fn submit<P: Platform>(
        &mut self,
        platform: &mut P,
        pool: &TaskPool,
        id: TaskId,
        task: &abi::dk_scsi_user_parallel_task,
        now_ns: u64,
    ) -> Result<(), RequestError> {
        if self.phase != Phase::Operational {
            return Err(RequestError::RingFull);
        }
        let frame = pool.frame(id).map_err(|_| RequestError::FrameTooSmall { bytes: 0 })?;
        let mut view = Region {
            handle: frame.handle,
            cpu: frame.cpu_address,
            iova: frame.iova,
            bytes: frame.bytes,
        };
        let smid = id.get32() as u16;
        let tag = self.tags.issue(smid);
        let posted = request::build(id, tag, task, &frame, view.bytes_mut())
            .and_then(|descriptor| self.post(platform, &descriptor));
        if let Err(e) = posted {
            self.tags.clear(smid);
            // Every descriptor on the ring is a request the firmware has not answered: a task
            // it holds or the control request. A ring fuller than that means the firmware's
            // consumer index went back (a self-reset): nothing posted would ever be taken.
            let held = self.deadlines.iter().filter(|d| **d != 0).count()
                + usize::from(self.control.is_some());
            let queued = usize::from(self.requests.queued());
            if e == RequestError::RingFull && queued > held && !self.ring_stuck {
                log::error!(
                    "dkraid: the request ring is full ({queued} entries queued) with {held} \
                     request(s) outstanding: the firmware lost its rings; resetting the controller"
                );
                self.ring_stuck = true;
            }
            return Err(e);
        }
        let timeout = match task.fTimeoutInMilliSec {
            0 => DEFAULT_TASK_TIMEOUT_NS,
            ms => u64::from(ms) * 1_000_000,
        };
        let slot = (id.get() - 1) as usize;
        self.deadlines[slot] = now_ns + timeout;
        self.aborting[slot] = 0;
        Ok(())
    }

    /// The interrupt handler's work: acknowledge, walk the reply ring, and hand each completed
    /// task's response to `completed`. Returns a finished control request, if any.
    pub fn interrupt<P: Platform>(
        &mut self,
        platform: &mut P,
        pool: &mut TaskPool,
        mut completed: impl FnMut(TaskId, abi::dk_scsi_user_parallel_response),
    ) -> Option<ControlDone> {
        let status = platform.mmio_read32(BAR, reg::INTR_STATUS);
        platform.mmio_write32(BAR, reg::INTR_STATUS, status);
        if self.phase != Phase::Operational {
            return None;
        }
        let producer = platform.mmio_read32(BAR, reg::REPLY_PRODUCER);
        let mut replies = self.regions.map(|r| r.replies)?;
        let ring = replies.bytes_mut();
        let mut control_done = None;
        let control = self.control;
        let mut dropped = 0;
        let mut events = self.last_event;
        // At most every task once per drain.
        let mut finished: [Option<(TaskId, ReplyDescriptor)>; MAX_TASK_COUNT as usize] =
            [None; MAX_TASK_COUNT as usize];
        let mut count = 0;
        const ENTRY: usize = core::mem::size_of::<ReplyDescriptor>();
        let consumer = self.replies.drain(
            producer,
            |i| {
                let at = usize::from(i) * ENTRY;
                ReplyDescriptor::read_from_bytes(&ring[at..at + ENTRY]).unwrap_or_default()
            },
            pool,
            &mut self.tags,
            |r| match r {
                Reply::Task(t, d) if count < finished.len() => {
                    finished[count] = Some((t, d));
                    count += 1;
                }
                Reply::Task(..) => {}
                Reply::Event(seq) => events = events.max(seq),
                Reply::Control(d) => match control {
                    Some(kind) => control_done = Some(ControlDone { kind, reply: d }),
                    None => dropped += 1,
                },
                Reply::Dropped(e) => {
                    // Named one by one, up to a bound per pass: a ring of garbage (or a
                    // device replaying its old ring after a reset) must not flood the log.
                    if dropped < DROPPED_REPLIES_LOGGED_PER_PASS {
                        log::warn!("dkraid: reply dropped: {e}");
                    }
                    dropped += 1;
                }
            },
        );
        if dropped > DROPPED_REPLIES_LOGGED_PER_PASS {
            log::warn!(
                "dkraid: {} more replies dropped in this pass ({dropped} in all, {} since start)",
                dropped - DROPPED_REPLIES_LOGGED_PER_PASS,
                self.dropped_replies + dropped
            );
        }
        platform.mmio_write32(BAR, reg::REPLY_CONSUMER, u32::from(consumer));
        self.dropped_replies += dropped;
        self.last_event = events;
        for (task, reply) in finished.iter().take(count).flatten() {
            completed(*task, self.response(pool, *task, reply));
        }
        if let Some(done) = control_done {
            self.control = None;
            self.control_deadline = 0;
            if let ControlKind::Abort { task, tag } = done.kind {
                self.aborted(pool, task, tag, &mut completed);
            }
        }
        control_done
    }

    /// The kernel's response for a task's reply, with its sense data from the task's frame.
    fn response(
        &mut self,
        pool: &TaskPool,
        task: TaskId,
        reply: &ReplyDescriptor,
    ) -> abi::dk_scsi_user_parallel_response {
        let slot = (task.get() - 1) as usize;
        self.deadlines[slot] = 0;
        self.aborting[slot] = 0;
        let mut r = abi::dk_scsi_user_parallel_response {
            version: u64::from(abi::DK_SCSI_USER_PARALLEL_RESPONSE_VERSION),
            fControllerTaskIdentifier: task.get(),
            fServiceResponse: abi::ServiceResponse::TASK_COMPLETE.0,
            fCompletionStatus: u32::from(reply.scsi_status),
            fBytesTransferred: u64::from(reply.transferred.get()),
            ..Default::default()
        };
        if reply.reply_flags().contains(ReplyFlags::ABORTED) {
            r.fServiceResponse = abi::ServiceResponse::SERVICE_DELIVERY_OR_TARGET_FAILURE.0;
            r.fCompletionStatus = TASK_TIMEOUT;
            r.fBytesTransferred = 0;
        } else if reply.reply_flags().contains(ReplyFlags::SENSE_VALID) {
            if let Ok(frame) = pool.frame(task) {
                let mut view = Region {
                    handle: frame.handle,
                    cpu: frame.cpu_address,
                    iova: frame.iova,
                    bytes: frame.bytes,
                };
                let mem = view.bytes_mut();
                let sense = &mem[frame_layout::SENSE..frame_layout::SENSE + 18];
                // Fixed format: 8 + ADDITIONAL LENGTH, at most what the area holds.
                let len = (8 + usize::from(sense[7]))
                    .min(frame_layout::SENSE_BYTES)
                    .min(r.fSenseBuffer.len());
                r.fSenseBuffer[..len]
                    .copy_from_slice(&mem[frame_layout::SENSE..frame_layout::SENSE + len]);
                r.fSenseLength = len as u8;
            }
        }
        r
    }

    /// The firmware confirmed an abort: if the task is still outstanding it completes now, as a
    /// timeout the kernel retries.
    fn aborted(
        &mut self,
        pool: &mut TaskPool,
        task: TaskId,
        tag: u32,
        completed: &mut impl FnMut(TaskId, abi::dk_scsi_user_parallel_response),
    ) {
        // Only the submission that was aborted: if its own reply already completed it (the tag
        // is forgotten) and the ID now carries a new command, that command is left alone.
        if tag == 0 || self.tags.expected(task.get32() as u16) != tag {
            return;
        }
        if pool.complete(task).is_ok() {
            let r = timeout_response(task);
            let slot = (task.get() - 1) as usize;
            self.deadlines[slot] = 0;
            self.aborting[slot] = 0;
            // The firmware's late reply for it, if any, is foreign from now on.
            self.tags.clear(task.get32() as u16);
            completed(task, r);
        }
    }

    /// Make a submitted task's deadline due now, so the next [`Firmware::tick`] aborts it
    /// (task management). False if the firmware does not hold it; true if it already is being
    /// aborted.
    pub fn expire(&mut self, task: TaskId) -> bool {
        let slot = (task.get() - 1) as usize;
        match self.deadlines.get_mut(slot) {
            Some(d) if *d != 0 => {
                if self.aborting[slot] == 0 {
                    *d = EXPIRED_BY_REQUEST;
                }
                true
            }
            _ => false,
        }
    }

    /// Timers: abort tasks past their deadline (one abort in flight at a time); reset the
    /// controller if an abort itself times out. Returns true if a reset is needed.
    pub fn tick<P: Platform>(&mut self, platform: &mut P, pool: &TaskPool, now_ns: u64) -> bool {
        if self.phase != Phase::Operational {
            return false;
        }
        if self.ring_stuck {
            return true;
        }
        // The health check: a firmware that reset or faulted on its own has dropped whatever it
        // held; finding out now beats waiting for every task's timeout.
        if now_ns >= self.next_state_check {
            self.next_state_check = now_ns + STATE_CHECK_NS;
            let state = platform.mmio_read32(BAR, reg::FW_STATE);
            if state & fw_state::MASK != fw_state::OPERATIONAL {
                log::error!(
                    "dkraid: the firmware left OPERATIONAL on its own (FW_STATE {state:#010x}); \
                     resetting the controller"
                );
                return true;
            }
        }
        // A management request or the stage's own I/O that the firmware never answers would
        // hold the control frame (hot plug, admin requests, aborts) forever.
        match self.control {
            Some(ControlKind::Abort { .. }) | None => {}
            Some(_) if self.control_deadline == 0 => {
                self.control_deadline = now_ns.saturating_add(CONTROL_TIMEOUT_NS);
            }
            Some(kind) if self.control_deadline <= now_ns => {
                log::error!(
                    "dkraid: the firmware did not answer {kind:?} within {} s; resetting the \
                     controller",
                    CONTROL_TIMEOUT_NS / 1_000_000_000
                );
                return true;
            }
            Some(_) => {}
        }
        let mut reset = false;
        for slot in 0..MAX_TASK_COUNT as usize {
            let deadline = self.deadlines[slot];
            if deadline == 0 || deadline > now_ns {
                continue;
            }
            let abort_deadline = self.aborting[slot];
            if abort_deadline != 0 {
                if abort_deadline <= now_ns {
                    reset = true;
                }
                continue;
            }
            let Some(task) = TaskId::new(slot as u64 + 1) else { continue };
            if self.control.is_none() && self.send_abort(platform, pool, task).is_ok() {
                self.aborting[slot] = now_ns + ABORT_TIMEOUT_NS;
                if deadline == EXPIRED_BY_REQUEST {
                    log::warn!("dkraid: {task}: aborting it (task management)");
                } else {
                    log::warn!("dkraid: {task} timed out; aborting it");
                }
            }
        }
        reset
    }

    fn send_abort<P: Platform>(
        &mut self,
        platform: &mut P,
        _pool: &TaskPool,
        task: TaskId,
    ) -> Result<(), RequestError> {
        let Some(mut control) = self.regions.map(|r| r.control) else {
            return Err(RequestError::RingFull);
        };
        let aborted_tag = self.tags.expected(task.get32() as u16);
        let frame = RequestFrame {
            function: function::ABORT_TASK,
            abort_smid: U16::new(task.get32() as u16),
            tag: U32::new(self.tags.issue(CONTROL_SMID)),
            ..Default::default()
        };
        control.bytes_mut()[..48].copy_from_slice(frame.as_bytes());
        let d = RequestDescriptor {
            smid: U16::new(CONTROL_SMID),
            function: function::ABORT_TASK,
            reserved: 0,
            frame_length: U32::new(48),
            frame: U64::new(control.iova),
        };
        self.post(platform, &d).inspect_err(|_| self.tags.clear(CONTROL_SMID))?;
        self.control = Some(ControlKind::Abort { task, tag: aborted_tag });
        Ok(())
    }

    /// Issue a management request through the control frame; its data comes back in
    /// [`Firmware::control_data`] once [`Firmware::interrupt`] reports it done.
    pub fn management<P: Platform>(
        &mut self,
        platform: &mut P,
        opcode: u8,
        args: [u32; 4],
    ) -> Result<(), RequestError> {
        self.send_management(platform, ControlKind::Management { opcode }, opcode, args)
    }

    /// As [`Firmware::management`], for the admin engine: the reply is reported as
    /// [`ControlKind::Admin`].
    pub fn admin_management<P: Platform>(
        &mut self,
        platform: &mut P,
        opcode: u8,
        args: [u32; 4],
    ) -> Result<(), RequestError> {
        self.send_management(platform, ControlKind::Admin { opcode }, opcode, args)
    }

    /// Whether the control frame is in use (a management request, an abort, stage 2's read).
    /// A service pass is needed now (the ring is stuck: [`Firmware::tick`] resets).
    pub fn needs_service(&self) -> bool {
        self.ring_stuck
    }

    pub fn control_busy(&self) -> bool {
        self.control.is_some()
    }

    fn send_management<P: Platform>(
        &mut self,
        platform: &mut P,
        kind: ControlKind,
        opcode: u8,
        args: [u32; 4],
    ) -> Result<(), RequestError> {
        if self.phase != Phase::Operational || self.control.is_some() {
            return Err(RequestError::RingFull);
        }
        let Some(mut control) = self.regions.map(|r| r.control) else {
            return Err(RequestError::RingFull);
        };
        let frame = MgmtFrame {
            function: function::MANAGEMENT,
            opcode,
            reserved: [0; 2],
            buffer_length: U32::new((control.bytes as usize - CONTROL_DATA) as u32),
            buffer: U64::new(control.iova + CONTROL_DATA as u64),
            args: args.map(U32::new),
            tag: U32::new(self.tags.issue(CONTROL_SMID)),
            reserved2: [0; 4],
        };
        const MGMT: usize = size_of::<MgmtFrame>();
        control.bytes_mut()[..MGMT].copy_from_slice(frame.as_bytes());
        let d = RequestDescriptor {
            smid: U16::new(CONTROL_SMID),
            function: function::MANAGEMENT,
            reserved: 0,
            frame_length: U32::new(MGMT as u32),
            frame: U64::new(control.iova),
        };
        self.post(platform, &d).inspect_err(|_| self.tags.clear(CONTROL_SMID))?;
        self.control = Some(kind);
        Ok(())
    }

    /// A driver-internal SCSI command (the stage 2 read) through the control frame, data-in
    /// into the control data buffer.
    pub fn control_io<P: Platform>(
        &mut self,
        platform: &mut P,
        target: u16,
        cdb: &[u8],
        length: u32,
    ) -> Result<(), RequestError> {
        if self.phase != Phase::Operational || self.control.is_some() {
            return Err(RequestError::RingFull);
        }
        let Some(mut control) = self.regions.map(|r| r.control) else {
            return Err(RequestError::RingFull);
        };
        let room = (control.bytes as usize - CONTROL_DATA) as u32;
        if cdb.is_empty() || cdb.len() > 16 || length > room {
            return Err(RequestError::BadCdbLength { length: cdb.len() as u8 });
        }
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        let frame = RequestFrame {
            function: function::SCSI_IO,
            direction: super::wire::direction::FROM_DEVICE,
            cdb_length: cdb.len() as u8,
            sge_count: 1,
            target: U16::new(target),
            data_length: U32::new(length),
            sense_buffer: U64::new(control.iova + frame_layout::SENSE as u64),
            sense_length: U16::new(frame_layout::SENSE_BYTES as u16),
            tag: U32::new(self.tags.issue(CONTROL_SMID)),
            cdb: c,
            ..Default::default()
        };
        let sge = super::wire::Sge {
            address: U64::new(control.iova + CONTROL_DATA as u64),
            length: U32::new(length),
            flags: U32::new(0),
        };
        let mem = control.bytes_mut();
        mem[..48].copy_from_slice(frame.as_bytes());
        mem[48..64].copy_from_slice(sge.as_bytes());
        let d = RequestDescriptor {
            smid: U16::new(CONTROL_SMID),
            function: function::SCSI_IO,
            reserved: 0,
            frame_length: U32::new(64),
            frame: U64::new(control.iova),
        };
        self.post(platform, &d).inspect_err(|_| self.tags.clear(CONTROL_SMID))?;
        self.control = Some(ControlKind::Io);
        Ok(())
    }

    /// The control request's data buffer (valid after it completed).
    pub fn control_data(&mut self) -> &[u8] {
        match self.regions.as_mut() {
            Some(r) => {
                let mem = r.control.bytes_mut();
                &mem[CONTROL_DATA..]
            }
            None => &[],
        }
    }

    /// The control request's sense data (valid after it completed with `SENSE_VALID`); all
    /// zero when no region is set up.
    pub fn control_sense(&mut self) -> [u8; 18] {
        let mut sense = [0u8; 18];
        if let Some(r) = self.regions.as_mut() {
            let mem = r.control.bytes_mut();
            sense.copy_from_slice(&mem[frame_layout::SENSE..frame_layout::SENSE + 18]);
        }
        sense
    }

    /// Controller reset: ring RESET, complete every task the firmware owned with a retryable
    /// status (exactly once), and start the bring-up over.
    pub fn reset<P: Platform>(
        &mut self,
        platform: &mut P,
        pool: &mut TaskPool,
        now_ns: u64,
        mut completed: impl FnMut(TaskId, abi::dk_scsi_user_parallel_response),
    ) {
        platform.mmio_write32(BAR, reg::DOORBELL, doorbell::RESET);
        for slot in 0..MAX_TASK_COUNT as usize {
            if self.deadlines[slot] == 0 {
                continue;
            }
            self.deadlines[slot] = 0;
            self.aborting[slot] = 0;
            if let Some(task) = TaskId::new(slot as u64 + 1) {
                if pool.complete(task).is_ok() {
                    completed(task, reset_response(task));
                }
            }
        }
        self.control = None;
        self.control_deadline = 0;
        self.ring_stuck = false;
        self.tags.clear_all();
        if let Some(mut r) = self.regions {
            r.requests.bytes_mut().fill(0);
            r.replies.bytes_mut().fill(0);
        }
        self.requests.reset();
        self.replies.reset();
        self.phase = Phase::WaitReady { deadline_ns: now_ns + INIT_TIMEOUT_NS };
        log::warn!("dkraid: controller reset; bringing the firmware up again");
    }

    /// Release the rings. Safe in any state, any number of times.
    pub fn release<P: Platform>(&mut self, platform: &mut P) {
        if let Some(r) = self.regions.take() {
            for region in [r.init, r.requests, r.replies, r.control] {
                platform.dma_buffer_free(region.handle);
            }
        }
        self.phase = Phase::Down;
    }
}

/// How often, at most, [`Firmware::tick`] reads FW_STATE.
pub const STATE_CHECK_NS: u64 = 100_000_000;

/// A deadline made due by task management (real deadlines are far above it).
const EXPIRED_BY_REQUEST: u64 = 1;

/// kSCSITaskStatus_TaskTimeoutOccurred: the kernel retries.
const TASK_TIMEOUT: u32 = 0x01;

fn timeout_response(task: TaskId) -> abi::dk_scsi_user_parallel_response {
    abi::dk_scsi_user_parallel_response {
        version: u64::from(abi::DK_SCSI_USER_PARALLEL_RESPONSE_VERSION),
        fControllerTaskIdentifier: task.get(),
        fServiceResponse: abi::ServiceResponse::SERVICE_DELIVERY_OR_TARGET_FAILURE.0,
        fCompletionStatus: TASK_TIMEOUT,
        ..Default::default()
    }
}

/// After a reset: BUSY, which the kernel retries.
fn reset_response(task: TaskId) -> abi::dk_scsi_user_parallel_response {
    abi::dk_scsi_user_parallel_response {
        version: u64::from(abi::DK_SCSI_USER_PARALLEL_RESPONSE_VERSION),
        fControllerTaskIdentifier: task.get(),
        fServiceResponse: abi::ServiceResponse::TASK_COMPLETE.0,
        fCompletionStatus: abi::TaskStatus::BUSY.0,
        ..Default::default()
    }
}
