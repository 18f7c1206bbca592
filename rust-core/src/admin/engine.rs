//! Where an admin request is carried out. A fixed pool of [`ADMIN_SLOTS`] request slots, each
//! with a ticket, the validated request, a state and a [`MAX_RESPONSE`]-byte response buffer;
//! no allocation, the memory lives inside the core object.
//!
//! ```text
//! Free --submit--> Queued --sent to the firmware--> Sent --reply--> Ready --fetch--> Free
//!                  (or Ready at once: a bad request, NotPermitted, IO_STATS, STAGE_GET,
//!                   NOT_READY in stages 0 and 1)
//! ```
//!
//! Every submitted request gets a ticket (a `u32`, never 0, increasing, skipping 0 when it
//! wraps), a malformed one too: its error response is ready at once. Firmware-backed commands
//! go through the firmware's control frame one at a time, when the frame is free and the
//! stage has no work of its own for it ([`crate::hardware::Hardware::service`]); their replies
//! come back as [`ControlKind::Admin`](crate::firmware::ControlKind::Admin), never mixed up
//! with the stage's own LIST_VOLUMES and EVENTS_SINCE. `docs/ADMIN-PROTOCOL.md` ("How the
//! driver carries out a request") has the mapping to the firmware and the statuses.

use core::fmt;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use super::decode::{decode_request, AdminError, Body};
use super::encode::{encode_error, encode_list_iter, encode_response};
use super::stats::IoStatsTable;
use super::wire::{self, command, status, GLOBAL_SPARE, NO_VOLUME};
use crate::firmware::wire as fw;
use crate::firmware::wire::{mgmt, mgmt_status, ReplyDescriptor};
use crate::ioreturn::IOReturn;
use crate::stage::Stage;

/// How many admin requests the core holds at once (`DK_ADMIN_SLOTS`).
pub const ADMIN_SLOTS: usize = 4;
/// The largest response (`DK_ADMIN_MAX_RESPONSE`): what fits in an `ExternalMethod`'s inline
/// structure output.
pub const MAX_RESPONSE: usize = 4096;

const _: () = assert!(ADMIN_SLOTS == crate::abi::DK_ADMIN_SLOTS as usize);
const _: () = assert!(MAX_RESPONSE == crate::abi::DK_ADMIN_MAX_RESPONSE as usize);

/// A slot's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    Free,
    /// Waiting for the control frame.
    Queued,
    /// The firmware holds it.
    Sent,
    /// Its response is written.
    Ready,
}

/// A validated firmware-backed request, kept after the caller's buffer is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ControllerShow,
    VolumeList,
    VolumeShow { volume: u16 },
    DriveList,
    DriveShow { drive: u16 },
    EventsSince { sequence: u64, max: u32 },
    VolumeCreate { level: u8, strip_kib: u32, block_size: u32, drives: u64 },
    VolumeDelete { volume: u16 },
    HotspareSet { drive: u16, volume: u16 },
    HotspareClear { drive: u16 },
    RebuildStart { volume: u16, drive: u16 },
}

impl Op {
    /// The firmware-backed operation of a request; `None` for those the core answers itself.
    fn of(body: &Body<'_>) -> Option<Op> {
        Some(match *body {
            Body::ControllerShow => Op::ControllerShow,
            Body::VolumeList => Op::VolumeList,
            Body::VolumeShow(v) => Op::VolumeShow { volume: v.volume.get() },
            Body::DriveList => Op::DriveList,
            Body::DriveShow(d) => Op::DriveShow { drive: d.drive.get() },
            Body::EventsSince(e) => {
                Op::EventsSince { sequence: e.sequence.get(), max: e.max.get() }
            }
            Body::VolumeCreate(c) => Op::VolumeCreate {
                level: c.level,
                strip_kib: c.strip_kib.get(),
                block_size: c.block_size.get(),
                drives: c.drives[..usize::from(c.drive_count).min(c.drives.len())]
                    .iter()
                    .fold(0u64, |m, d| m | 1u64.checked_shl(u32::from(d.get())).unwrap_or(0)),
            },
            Body::VolumeDelete(v) => Op::VolumeDelete { volume: v.volume.get() },
            Body::HotspareSet(h) => {
                Op::HotspareSet { drive: h.drive.get(), volume: h.volume.get() }
            }
            Body::HotspareClear(d) => Op::HotspareClear { drive: d.drive.get() },
            Body::RebuildStart(r) => {
                Op::RebuildStart { volume: r.volume.get(), drive: r.drive.get() }
            }
            Body::IoStats(_) | Body::StageGet => return None,
        })
    }

    /// The management opcode and arguments that carry it out.
    pub fn firmware(&self) -> (u8, [u32; 4]) {
        match *self {
            Op::ControllerShow => (mgmt::CONTROLLER_INFO, [0; 4]),
            Op::VolumeList | Op::VolumeShow { .. } => (mgmt::LIST_VOLUMES, [0; 4]),
            Op::DriveList | Op::DriveShow { .. } => (mgmt::LIST_DRIVES, [0; 4]),
            // The firmware's sequence argument is 32 bits: a larger one asks for nothing
            // newer than the largest it can name.
            Op::EventsSince { sequence, .. } => {
                (mgmt::EVENTS_SINCE, [u32::try_from(sequence).unwrap_or(u32::MAX), 0, 0, 0])
            }
            Op::VolumeCreate { level, strip_kib, block_size, drives } => (
                mgmt::CREATE_VOLUME,
                [
                    u32::from(level) | (block_size.trailing_zeros() << 8),
                    strip_kib.saturating_mul(1024),
                    drives as u32,
                    (drives >> 32) as u32,
                ],
            ),
            Op::VolumeDelete { volume } => (mgmt::DELETE_VOLUME, [u32::from(volume), 0, 0, 0]),
            Op::HotspareSet { drive, volume } => {
                let to =
                    if volume == GLOBAL_SPARE { mgmt::GLOBAL_SPARE } else { u32::from(volume) };
                (mgmt::SET_HOT_SPARE, [u32::from(drive), 1, to, 0])
            }
            Op::HotspareClear { drive } => (mgmt::SET_HOT_SPARE, [u32::from(drive), 0, 0, 0]),
            Op::RebuildStart { volume, drive } => {
                (mgmt::START_REBUILD, [u32::from(volume), u32::from(drive), 0, 0])
            }
        }
    }
}

/// Why an admin call was refused (the FFI's `IOReturn`s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCallError {
    /// Every slot is in use.
    NoResources,
    /// No slot holds this ticket.
    NotFound { ticket: u32 },
    /// The ticket's response is not ready yet.
    NotReady { ticket: u32 },
    /// The caller's buffer cannot hold the response (the slot is kept).
    NoSpace { ticket: u32, needed: usize, capacity: usize },
}

impl AdminCallError {
    pub const fn name(&self) -> &'static str {
        match self {
            AdminCallError::NoResources => "AdminSlotsFull",
            AdminCallError::NotFound { .. } => "AdminTicketNotFound",
            AdminCallError::NotReady { .. } => "AdminResponseNotReady",
            AdminCallError::NoSpace { .. } => "AdminResponseTooLarge",
        }
    }

    pub const fn ioreturn(&self) -> IOReturn {
        match self {
            AdminCallError::NoResources => IOReturn::kIOReturnNoResources,
            AdminCallError::NotFound { .. } => IOReturn::kIOReturnNotFound,
            AdminCallError::NotReady { .. } => IOReturn::kIOReturnNotReady,
            AdminCallError::NoSpace { .. } => IOReturn::kIOReturnNoSpace,
        }
    }
}

impl fmt::Display for AdminCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match *self {
            AdminCallError::NoResources => {
                write!(f, "all {ADMIN_SLOTS} admin request slots are in use")
            }
            AdminCallError::NotFound { ticket } => {
                write!(f, "no admin request has ticket {ticket}")
            }
            AdminCallError::NotReady { ticket } => {
                write!(f, "ticket {ticket}'s response is not ready yet")
            }
            AdminCallError::NoSpace { ticket, needed, capacity } => write!(
                f,
                "ticket {ticket}'s response takes {needed} bytes, the buffer holds {capacity}"
            ),
        }
    }
}

/// What the engine needs from the rest of the core to answer at once.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub stage: Stage,
    pub stats: &'a IoStatsTable,
}

#[derive(Clone, Debug)]
struct Slot {
    ticket: u32,
    /// Whose request it is: an opaque identity of the client connection (the dext passes its
    /// user client's address; never dereferenced). Only the owner fetches the response.
    owner: u64,
    state: SlotState,
    /// Reported by [`AdminEngine::next_ready`].
    reported: bool,
    command: u16,
    sequence: u32,
    op: Option<Op>,
    /// Submission order (the firmware takes the oldest queued request first).
    submitted: u64,
    /// The order responses became ready (reported oldest first).
    readied: u64,
    bytes: u32,
    response: [u8; MAX_RESPONSE],
}

impl Slot {
    const FREE: Slot = Slot {
        ticket: 0,
        owner: 0,
        state: SlotState::Free,
        reported: false,
        command: 0,
        sequence: 0,
        op: None,
        submitted: 0,
        readied: 0,
        bytes: 0,
        response: [0; MAX_RESPONSE],
    };
}

/// The admin request slots.
#[derive(Clone, Debug)]
pub struct AdminEngine {
    slots: [Slot; ADMIN_SLOTS],
    last_ticket: u32,
    /// The ticket of the request the firmware holds; its slot may be gone (cancelled), and the
    /// reply then finishes into nothing.
    in_flight: Option<u32>,
    counter: u64,
}

impl Default for AdminEngine {
    fn default() -> Self {
        Self::new()
    }
}

/// The (command, sequence) to echo in an error response: the request's where it has them.
fn echo(request: &[u8], error: &AdminError) -> (u16, u32) {
    match error {
        AdminError::RequestTooLarge { .. }
        | AdminError::ShortRequest { .. }
        | AdminError::BadMagic { .. }
        | AdminError::UnsupportedVersion { .. } => (0, 0),
        _ => match wire::RequestHeader::read_from_prefix(request) {
            Ok((h, _)) => (h.command.get(), h.sequence.get()),
            Err(_) => (0, 0),
        },
    }
}

/// A NUL-padded 16-byte ASCII field.
fn padded(text: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = text.len().min(16);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

fn volume_entry(v: &fw::VolumeEntry) -> wire::VolumeEntry {
    let drives = v.drives.get();
    wire::VolumeEntry {
        id: v.id,
        state: v.state,
        level: v.level,
        block_size: v.block_size,
        capacity_blocks: v.capacity_blocks,
        strip_kib: U32::new(v.strip_bytes.get() / 1024),
        rebuild_percent: v.rebuild_percent,
        drive_count: drives.count_ones() as u8,
        reserved: U16::new(0),
        drives: U64::new(drives),
    }
}

fn drive_entry(d: &fw::DriveEntry) -> wire::DriveEntry {
    wire::DriveEntry {
        id: d.id,
        state: d.state,
        reserved: 0,
        volume: U16::new(u16::try_from(d.volume.get()).unwrap_or(NO_VOLUME)),
        reserved2: U16::new(0),
        capacity_bytes: d.capacity_bytes,
        // The firmware's drive list does not count media errors.
        media_errors: U32::new(0),
        reserved3: U32::new(0),
    }
}

fn event_entry(e: &fw::EventEntry) -> wire::EventEntry {
    wire::EventEntry {
        sequence: e.sequence,
        code: e.code,
        volume: e.volume,
        drive: e.drive,
        percent: e.percent,
        reserved: 0,
    }
}

/// The firmware entries in a reply's data, or `None` if it is not a whole number of them.
fn firmware_entries<T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
    data: &[u8],
) -> Option<impl Iterator<Item = T> + Clone + '_> {
    let size = core::mem::size_of::<T>();
    if data.len() % size != 0 {
        return None;
    }
    Some(data.chunks_exact(size).filter_map(|c| T::read_from_bytes(c).ok()))
}

/// The admin status for a firmware management status other than success.
pub const fn admin_status(firmware: u8) -> u32 {
    match firmware {
        mgmt_status::NOT_FOUND => status::NOT_FOUND,
        // The firmware refused: bad arguments, a drive in use, a rebuild running, something
        // the array cannot do.
        mgmt_status::INVALID_ARGUMENT | mgmt_status::BUSY | mgmt_status::UNSUPPORTED => {
            status::REJECTED
        }
        // A driver and firmware that disagree (an opcode it does not know, no buffer) or a
        // firmware that failed.
        _ => status::DEVICE_ERROR,
    }
}

impl AdminEngine {
    pub const fn new() -> AdminEngine {
        AdminEngine {
            slots: [Slot::FREE, Slot::FREE, Slot::FREE, Slot::FREE],
            last_ticket: 0,
            in_flight: None,
            counter: 0,
        }
    }

    /// An engine whose next ticket follows `last` (tests of the wrap).
    #[cfg(test)]
    pub(crate) fn with_last_ticket(last: u32) -> AdminEngine {
        AdminEngine { last_ticket: last, ..AdminEngine::new() }
    }

    fn slot_of(&self, ticket: u32) -> Option<usize> {
        if ticket == 0 {
            return None;
        }
        self.slots.iter().position(|s| s.state != SlotState::Free && s.ticket == ticket)
    }

    fn new_ticket(&mut self) -> u32 {
        loop {
            self.last_ticket = self.last_ticket.wrapping_add(1);
            let t = self.last_ticket;
            if t != 0 && self.slot_of(t).is_none() && self.in_flight != Some(t) {
                return t;
            }
        }
    }

    fn tick(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A slot's state by ticket (tests, logs).
    pub fn state(&self, ticket: u32) -> SlotState {
        self.slot_of(ticket).map_or(SlotState::Free, |i| self.slots[i].state)
    }

    /// How many slots are in this state.
    pub fn count_in(&self, state: SlotState) -> usize {
        self.slots.iter().filter(|s| s.state == state).count()
    }

    /// Whether a request waits for the control frame.
    pub fn has_queued(&self) -> bool {
        self.count_in(SlotState::Queued) > 0
    }

    /// Take one request of `owner` (`request` is exactly the bytes the client sent). Every
    /// request gets a ticket; only a full pool is refused.
    pub fn submit(
        &mut self,
        owner: u64,
        request: &[u8],
        entitled: bool,
        ctx: Context<'_>,
    ) -> Result<u32, AdminCallError> {
        let Some(i) = self.slots.iter().position(|s| s.state == SlotState::Free) else {
            return Err(AdminCallError::NoResources);
        };
        let ticket = self.new_ticket();
        let submitted = self.tick();
        let slot = &mut self.slots[i];
        *slot = Slot { ticket, owner, submitted, state: SlotState::Queued, ..Slot::FREE };
        let parsed = decode_request(request).and_then(|r| {
            if r.body.is_destructive() && !entitled {
                Err(AdminError::NotPermitted { command: r.body.command() })
            } else {
                Ok(r)
            }
        });
        let r = match parsed {
            Ok(r) => r,
            Err(e) => {
                let (cmd, seq) = echo(request, &e);
                log::warn!("dkraid: admin request, ticket {ticket}: {e}");
                slot.command = cmd;
                slot.sequence = seq;
                let n = encode_error(&mut slot.response, cmd, seq, &e);
                self.finish(i, n);
                return Ok(ticket);
            }
        };
        slot.command = r.body.command();
        slot.sequence = r.sequence;
        let (cmd, seq) = (slot.command, slot.sequence);
        match (r.body, Op::of(&r.body)) {
            (Body::StageGet, _) => {
                let info = wire::StageInfo { stage: U32::new(ctx.stage.number()) };
                let n = encode_response(&mut slot.response, cmd, seq, status::OK, info.as_bytes());
                self.finish(i, n);
            }
            (Body::IoStats(v), _) => {
                let stats = ctx.stats.get(v.volume.get()).to_wire();
                let n = encode_response(&mut slot.response, cmd, seq, status::OK, stats.as_bytes());
                self.finish(i, n);
            }
            (_, Some(_)) if matches!(ctx.stage, Stage::Pipeline | Stage::FakeBlock) => {
                self.answer(i, status::NOT_READY);
            }
            (_, Some(op)) => slot.op = Some(op),
            // Every command is either answered by the core or firmware-backed.
            (_, None) => self.answer(i, status::DEVICE_ERROR),
        }
        Ok(ticket)
    }

    /// Slot `i`'s response is the encoder's result (a response that cannot be written is the
    /// driver's failure).
    fn finish(&mut self, i: usize, written: Result<usize, AdminError>) {
        match written {
            Ok(n) => {
                let readied = self.tick();
                let slot = &mut self.slots[i];
                slot.bytes = n as u32;
                slot.state = SlotState::Ready;
                slot.readied = readied;
            }
            Err(e) => {
                log::error!("dkraid: admin ticket {}: {e}", self.slots[i].ticket);
                self.answer(i, status::DEVICE_ERROR);
            }
        }
    }

    /// Slot `i` is answered with `status` and no payload.
    fn answer(&mut self, i: usize, code: u32) {
        let slot = &mut self.slots[i];
        let n = encode_response(&mut slot.response, slot.command, slot.sequence, code, &[])
            .unwrap_or(0);
        let readied = self.tick();
        let slot = &mut self.slots[i];
        slot.bytes = n as u32;
        slot.state = SlotState::Ready;
        slot.readied = readied;
    }

    /// The oldest queued request's ticket and its firmware opcode and arguments, if no admin
    /// request is with the firmware already.
    pub fn next_to_send(&self) -> Option<(u32, u8, [u32; 4])> {
        if self.in_flight.is_some() {
            return None;
        }
        let slot = self
            .slots
            .iter()
            .filter(|s| s.state == SlotState::Queued)
            .min_by_key(|s| s.submitted)?;
        let (opcode, args) = slot.op?.firmware();
        Some((slot.ticket, opcode, args))
    }

    /// The firmware took `ticket`'s request.
    pub fn sent(&mut self, ticket: u32) {
        if let Some(i) = self.slot_of(ticket) {
            self.slots[i].state = SlotState::Sent;
            self.in_flight = Some(ticket);
        }
    }

    /// Whether an admin request is with the firmware.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The firmware lost the request it held (a controller reset: [`status::BUSY`]; a failed
    /// firmware: [`status::DEVICE_ERROR`]).
    pub fn firmware_lost(&mut self, code: u32) {
        let Some(ticket) = self.in_flight.take() else { return };
        if let Some(i) = self.slot_of(ticket) {
            if self.slots[i].state == SlotState::Sent {
                log::warn!(
                    "dkraid: admin ticket {ticket}: the firmware lost it -> {}",
                    status::name(code).unwrap_or("?")
                );
                self.answer(i, code);
            }
        }
    }

    /// The firmware is gone for good: every request waiting for it, or with it, fails.
    pub fn firmware_failed(&mut self) {
        self.abandon(status::DEVICE_ERROR);
    }

    /// The controller stopped (`UserStopController`): nothing will carry the waiting requests
    /// out, so they are answered NOT_READY (no controller to ask).
    pub fn controller_stopped(&mut self) {
        self.abandon(status::NOT_READY);
    }

    fn abandon(&mut self, code: u32) {
        self.firmware_lost(code);
        for i in 0..ADMIN_SLOTS {
            if self.slots[i].state == SlotState::Queued {
                self.answer(i, code);
            }
        }
    }

    /// The firmware answered the admin request it held: `reply` its descriptor, `data` the
    /// bytes it wrote (at most `transferred`), `stage` for CONTROLLER_SHOW. Nothing the
    /// firmware wrote is trusted; a reply that does not parse is a DEVICE_ERROR, logged.
    pub fn firmware_done(
        &mut self,
        opcode: u8,
        reply: &ReplyDescriptor,
        data: &[u8],
        stage: Stage,
    ) {
        let Some(ticket) = self.in_flight.take() else {
            log::warn!("dkraid: an admin management reply (opcode {opcode:#04x}) with none sent");
            return;
        };
        let Some(i) = self.slot_of(ticket) else {
            log::debug!("dkraid: admin ticket {ticket} was cancelled; its reply is dropped");
            return;
        };
        let Some(op) = self.slots[i].op.filter(|_| self.slots[i].state == SlotState::Sent) else {
            return;
        };
        let name = command::name(self.slots[i].command).unwrap_or("?");
        if op.firmware().0 != opcode {
            log::error!(
                "dkraid: admin {name}, ticket {ticket}: BadFirmwareReply: a reply for opcode \
                 {opcode:#04x}, {:#04x} was sent",
                op.firmware().0
            );
            return self.answer(i, status::DEVICE_ERROR);
        }
        if reply.reply_flags().contains(fw::ReplyFlags::ABORTED) {
            log::warn!("dkraid: admin {name}, ticket {ticket}: flushed by the firmware -> Busy");
            return self.answer(i, status::BUSY);
        }
        if reply.scsi_status != mgmt_status::SUCCESS {
            let code = admin_status(reply.scsi_status);
            log::warn!(
                "dkraid: admin {name}, ticket {ticket}: the firmware answered {} ({:#04x}) -> {}",
                mgmt_status::name(reply.scsi_status).unwrap_or("an unknown status"),
                reply.scsi_status,
                status::name(code).unwrap_or("?")
            );
            return self.answer(i, code);
        }
        let n = (reply.transferred.get() as usize).min(data.len());
        match self.translate(i, op, &data[..n], stage) {
            Ok(written) => self.finish(i, written),
            Err(what) => {
                log::error!("dkraid: admin {name}, ticket {ticket}: BadFirmwareReply: {what}");
                self.answer(i, status::DEVICE_ERROR);
            }
        }
    }

    /// Write slot `i`'s OK response (or NOT_FOUND for a SHOW of nothing) from the firmware's
    /// data. `Err`: what about the data does not parse.
    fn translate(
        &mut self,
        i: usize,
        op: Op,
        data: &[u8],
        stage: Stage,
    ) -> Result<Result<usize, AdminError>, &'static str> {
        let slot = &mut self.slots[i];
        let (cmd, seq, out) = (slot.command, slot.sequence, &mut slot.response[..]);
        let ok =
            |out: &mut [u8], payload: &[u8]| encode_response(out, cmd, seq, status::OK, payload);
        let not_found = |out: &mut [u8]| encode_response(out, cmd, seq, status::NOT_FOUND, &[]);
        const WHOLE: &str = "the data is not a whole number of entries";
        Ok(match op {
            Op::ControllerShow => {
                let (info, _) = fw::ControllerInfo::read_from_prefix(data)
                    .map_err(|_| "CONTROLLER_INFO returned fewer bytes than its structure")?;
                let out_info = wire::ControllerInfo {
                    max_commands: info.max_commands,
                    max_targets: info.max_targets,
                    drives: info.drives,
                    volumes: info.volumes,
                    stage: U32::new(stage.number()),
                    reserved: U32::new(0),
                    firmware_version: info.firmware_version,
                    serial: info.serial,
                    driver_version: padded(env!("CARGO_PKG_VERSION")),
                };
                ok(out, out_info.as_bytes())
            }
            Op::VolumeList => {
                let list = firmware_entries::<fw::VolumeEntry>(data).ok_or(WHOLE)?;
                let total = list.clone().count();
                encode_list_iter(out, cmd, seq, total, list.map(|v| volume_entry(&v)))
            }
            Op::VolumeShow { volume } => {
                let mut list = firmware_entries::<fw::VolumeEntry>(data).ok_or(WHOLE)?;
                match list.find(|v| v.id.get() == volume) {
                    Some(v) => ok(out, volume_entry(&v).as_bytes()),
                    None => not_found(out),
                }
            }
            Op::DriveList => {
                let list = firmware_entries::<fw::DriveEntry>(data).ok_or(WHOLE)?;
                let total = list.clone().count();
                encode_list_iter(out, cmd, seq, total, list.map(|d| drive_entry(&d)))
            }
            Op::DriveShow { drive } => {
                let mut list = firmware_entries::<fw::DriveEntry>(data).ok_or(WHOLE)?;
                match list.find(|d| d.id.get() == drive) {
                    Some(d) => ok(out, drive_entry(&d).as_bytes()),
                    None => not_found(out),
                }
            }
            Op::EventsSince { sequence, max } => {
                let list = firmware_entries::<fw::EventEntry>(data).ok_or(WHOLE)?;
                let newer = list.filter(move |e| e.sequence.get() > sequence);
                let total = newer.clone().count().min(max as usize);
                encode_list_iter(out, cmd, seq, total, newer.map(|e| event_entry(&e)))
            }
            Op::VolumeCreate { .. } => {
                let (v, _) = fw::VolumeEntry::read_from_prefix(data)
                    .map_err(|_| "CREATE_VOLUME returned no volume entry")?;
                ok(out, volume_entry(&v).as_bytes())
            }
            Op::VolumeDelete { .. }
            | Op::HotspareSet { .. }
            | Op::HotspareClear { .. }
            | Op::RebuildStart { .. } => ok(out, &[]),
        })
    }

    /// The next ticket whose response is ready and was not reported yet (oldest first), and
    /// its response's size. Each ticket is reported once.
    pub fn next_ready(&mut self) -> Option<(u32, u32)> {
        let slot = self
            .slots
            .iter_mut()
            .filter(|s| s.state == SlotState::Ready && !s.reported)
            .min_by_key(|s| s.readied)?;
        slot.reported = true;
        Some((slot.ticket, slot.bytes))
    }

    /// Copy a ready response of `owner` into `out` and free its slot; returns its size.
    /// Another owner's ticket is [`AdminCallError::NotFound`]: tickets are counted, not secret.
    pub fn fetch(
        &mut self,
        owner: u64,
        ticket: u32,
        out: &mut [u8],
    ) -> Result<usize, AdminCallError> {
        let i = self
            .slot_of(ticket)
            .filter(|&i| self.slots[i].owner == owner)
            .ok_or(AdminCallError::NotFound { ticket })?;
        let slot = &mut self.slots[i];
        if slot.state != SlotState::Ready {
            return Err(AdminCallError::NotReady { ticket });
        }
        let n = slot.bytes as usize;
        if out.len() < n {
            return Err(AdminCallError::NoSpace { ticket, needed: n, capacity: out.len() });
        }
        out[..n].copy_from_slice(&slot.response[..n]);
        slot.state = SlotState::Free;
        slot.ticket = 0;
        Ok(n)
    }

    /// Forget a ticket: its slot is free at once; a request the firmware holds finishes into
    /// nothing.
    pub fn cancel(&mut self, ticket: u32) -> Result<(), AdminCallError> {
        let i = self.slot_of(ticket).ok_or(AdminCallError::NotFound { ticket })?;
        let slot = &mut self.slots[i];
        slot.state = SlotState::Free;
        slot.ticket = 0;
        Ok(())
    }

    /// `owner` went away: forget every ticket of it — queued, with the firmware, or answered
    /// but never fetched. Returns how many.
    pub fn close(&mut self, owner: u64) -> usize {
        let mut n = 0;
        for slot in self.slots.iter_mut() {
            if slot.state != SlotState::Free && slot.owner == owner {
                slot.state = SlotState::Free;
                slot.ticket = 0;
                n += 1;
            }
        }
        n
    }
}
