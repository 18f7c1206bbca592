//! What the firmware's volumes live in: the [`Array`] trait (volumes, drives, the event log and
//! the management operations), the per-volume [`VolumePort`] each volume's SCSI emulator runs
//! over, and [`RamArray`], a stand-in array of sparse RAM volumes (one single-drive volume per
//! drive). The RAID engine (`crate::raid::Raid`) implements [`Array`] at the end of this file.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use dkraid_core::firmware::wire::{event, volume_state, DriveEntry, EventEntry, VolumeEntry};

/// Event codes the device reports beyond the first nine (the engine logs more kinds than
/// hot plug needs; every event keeps its sequence number, so the host sees no gap): the core's
/// `firmware::wire::event`, 10 and up.
pub use dkraid_core::firmware::wire::event as event_ext;

use dkraid_core::scsi::{BackendError, BlockBackend};
use zerocopy::little_endian::{U16, U32, U64};

/// Why a management operation was refused; each maps to a reply status ([`super::mgmt_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MgmtError {
    /// An argument is out of range or inconsistent (a RAID level, a drive set).
    InvalidArgument,
    /// No such volume or drive.
    NotFound,
    /// The object is in a state that forbids it (a drive in use, a rebuild running).
    Busy,
    /// The array cannot do this at all.
    Unsupported,
    /// The array tried and failed (a drive or its backing store failed).
    Failed,
}

impl MgmtError {
    pub const fn status(self) -> u8 {
        match self {
            MgmtError::InvalidArgument => super::mgmt_status::INVALID_ARGUMENT,
            MgmtError::NotFound => super::mgmt_status::NOT_FOUND,
            MgmtError::Busy => super::mgmt_status::BUSY,
            MgmtError::Unsupported => super::mgmt_status::UNSUPPORTED,
            MgmtError::Failed => super::mgmt_status::FAILED,
        }
    }
}

/// The storage behind the controller, as the firmware sees it. Volume IDs are SCSI target IDs.
pub trait Array: fmt::Debug {
    fn volumes(&self) -> Vec<VolumeEntry>;
    fn drives(&self) -> Vec<DriveEntry>;
    /// (block size, capacity in blocks) of a volume.
    fn geometry(&self, volume: u16) -> Option<(u32, u64)>;
    fn read(&mut self, volume: u16, lba: u64, data: &mut [u8]) -> Result<(), BackendError>;
    fn write(&mut self, volume: u16, lba: u64, data: &[u8]) -> Result<(), BackendError>;
    fn flush(&mut self, volume: u16) -> Result<(), BackendError>;
    /// A FUA write: on the drives when this returns. The default writes and flushes the
    /// volume; the RAID engine writes the blocks through and leaves the rest of its cache.
    fn write_fua(&mut self, volume: u16, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        self.write(volume, lba, data)?;
        self.flush(volume)
    }
    fn unmap(&mut self, _volume: u16, _lba: u64, _blocks: u64) -> Option<Result<(), BackendError>> {
        None
    }
    /// The newest event's sequence number (0: none yet).
    fn last_event(&self) -> u64;
    /// Every event with a sequence number greater than `sequence`, oldest first.
    fn events_since(&self, sequence: u64) -> Vec<EventEntry>;
    /// Returns the new volume's ID. `block_size` 0: the array's default (512); `strip_bytes`
    /// 0: its default strip.
    fn create_volume(
        &mut self,
        level: u32,
        block_size: u32,
        strip_bytes: u32,
        drives: u64,
    ) -> Result<u16, MgmtError>;
    fn delete_volume(&mut self, volume: u16) -> Result<(), MgmtError>;
    /// Make `drive` a hot spare (`spare`), global or dedicated to `volume`, or no longer one.
    fn set_hot_spare(
        &mut self,
        drive: u16,
        spare: bool,
        volume: Option<u16>,
    ) -> Result<(), MgmtError>;
    fn start_rebuild(&mut self, volume: u16, drive: u16) -> Result<(), MgmtError>;
    /// Fault injection: the drive dies now.
    fn fail_drive(&mut self, drive: u16) -> Result<(), MgmtError>;
    /// One slice of background work (a rebuild); `Some(ns)` of firmware time if it did any.
    fn background(&mut self) -> Option<u64> {
        None
    }
}

/// The shared handle every [`VolumePort`] and the firmware hold.
pub type SharedArray = Rc<RefCell<dyn Array>>;

/// One volume as a [`BlockBackend`]: what that volume's SCSI emulator runs over. The geometry is
/// fixed for the life of a volume ID (a re-created volume gets a new port and emulator).
#[derive(Debug)]
pub struct VolumePort {
    array: SharedArray,
    volume: u16,
    block_size: u32,
    blocks: u64,
}

impl VolumePort {
    pub fn new(array: SharedArray, volume: u16) -> Option<VolumePort> {
        let (block_size, blocks) = array.borrow().geometry(volume)?;
        Some(VolumePort { array, volume, block_size, blocks })
    }
}

impl BlockBackend for VolumePort {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn capacity_blocks(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, lba: u64, data: &mut [u8]) -> Result<(), BackendError> {
        self.array.borrow_mut().read(self.volume, lba, data)
    }

    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        self.array.borrow_mut().write(self.volume, lba, data)
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        self.array.borrow_mut().flush(self.volume)
    }

    fn write_fua(&mut self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        self.array.borrow_mut().write_fua(self.volume, lba, data)
    }

    fn unmap(&mut self, lba: u64, blocks: u64) -> Option<Result<(), BackendError>> {
        self.array.borrow_mut().unmap(self.volume, lba, blocks)
    }

    fn supports_unmap(&self) -> bool {
        false
    }
}

// ------------------------------------------------------------------------- RAM array --

/// One volume of the stand-in array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    pub id: u16,
    pub block_size: u32,
    pub blocks: u64,
}

impl VolumeSpec {
    /// The default volume: ID 0, 1 GiB of 512-byte blocks.
    pub const DEFAULT: VolumeSpec = VolumeSpec { id: 0, block_size: 512, blocks: 1 << 21 };
}

/// Sparse storage: 64 KiB chunks, allocated on first write; unwritten blocks read as zeros.
const CHUNK: u64 = 64 * 1024;

#[derive(Default)]
struct Sparse {
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl fmt::Debug for Sparse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sparse({} chunks)", self.chunks.len())
    }
}

impl Sparse {
    fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
        // (chunk, offset in chunk, offset in buffer, length)
        let mut done = 0usize;
        std::iter::from_fn(move || {
            if done >= len {
                return None;
            }
            let at = offset + done as u64;
            let chunk = at / CHUNK;
            let within = (at % CHUNK) as usize;
            let n = (CHUNK as usize - within).min(len - done);
            let piece = (chunk, within, done, n);
            done += n;
            Some(piece)
        })
    }

    fn read(&self, offset: u64, out: &mut [u8]) {
        for (chunk, within, at, n) in Self::pieces(offset, out.len()) {
            match self.chunks.get(&chunk) {
                Some(c) => out[at..at + n].copy_from_slice(&c[within..within + n]),
                None => out[at..at + n].fill(0),
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (chunk, within, at, n) in Self::pieces(offset, data.len()) {
            let c = self
                .chunks
                .entry(chunk)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            c[within..within + n].copy_from_slice(&data[at..at + n]);
        }
    }

    fn zero(&mut self, offset: u64, len: u64) {
        let Ok(len) = usize::try_from(len) else { return };
        for (chunk, within, _, n) in Self::pieces(offset, len) {
            if n == CHUNK as usize {
                self.chunks.remove(&chunk);
            } else if let Some(c) = self.chunks.get_mut(&chunk) {
                c[within..within + n].fill(0);
            }
        }
    }
}

/// Drive states as [`DriveEntry::state`] reports them.
pub mod drive_state {
    pub const ONLINE: u8 = 0;
    pub const OFFLINE: u8 = 1;
    pub const UNCONFIGURED_GOOD: u8 = 2;
    pub const HOT_SPARE: u8 = 5;
}

#[derive(Debug)]
struct RamVolume {
    spec: VolumeSpec,
    drive: u16,
    data: Sparse,
}

#[derive(Clone, Copy, Debug)]
struct RamDrive {
    state: u8,
    capacity_bytes: u64,
    volume: Option<u16>,
}

/// The stand-in array: drive *i* holds volume *i* alone (a one-drive RAID 0). A failed drive
/// takes its volume OFFLINE (I/O fails HARDWARE ERROR 44/00); a deleted volume leaves its drive
/// unconfigured, and CREATE_VOLUME (level 0, exactly one unconfigured drive) makes a new one.
/// Rebuilds are not supported.
#[derive(Debug)]
pub struct RamArray {
    volumes: BTreeMap<u16, RamVolume>,
    drives: Vec<RamDrive>,
    events: Vec<EventEntry>,
}

impl RamArray {
    pub fn new(specs: &[VolumeSpec]) -> RamArray {
        let mut a = RamArray { volumes: BTreeMap::new(), drives: Vec::new(), events: Vec::new() };
        for spec in specs {
            if a.volumes.contains_key(&spec.id) || spec.block_size == 0 {
                continue;
            }
            let drive = a.drives.len() as u16;
            a.drives.push(RamDrive {
                state: drive_state::ONLINE,
                capacity_bytes: spec.blocks * u64::from(spec.block_size),
                volume: Some(spec.id),
            });
            a.volumes.insert(spec.id, RamVolume { spec: *spec, drive, data: Sparse::default() });
        }
        a
    }

    fn post(&mut self, code: u16, volume: u16, drive: u16) {
        let sequence = self.events.len() as u64 + 1;
        self.events.push(EventEntry {
            sequence: U64::new(sequence),
            code: U16::new(code),
            volume: U16::new(volume),
            drive: U16::new(drive),
            percent: 0,
            reserved: 0,
        });
    }

    fn volume(&mut self, id: u16) -> Result<&mut RamVolume, BackendError> {
        let v = self.volumes.get_mut(&id).ok_or(BackendError::Internal)?;
        Ok(v)
    }

    fn online(&self, v: &RamVolume) -> bool {
        self.drives.get(usize::from(v.drive)).is_some_and(|d| d.state == drive_state::ONLINE)
    }

    fn offset(v: &RamVolume, lba: u64, len: usize) -> Result<u64, BackendError> {
        let bs = u64::from(v.spec.block_size);
        let end = lba.checked_add(len as u64 / bs).ok_or(BackendError::Internal)?;
        if end > v.spec.blocks {
            return Err(BackendError::Internal);
        }
        Ok(lba * bs)
    }
}

impl Array for RamArray {
    fn volumes(&self) -> Vec<VolumeEntry> {
        self.volumes
            .values()
            .map(|v| VolumeEntry {
                id: U16::new(v.spec.id),
                state: if self.online(v) { volume_state::OPTIMAL } else { volume_state::OFFLINE },
                level: 0,
                block_size: U32::new(v.spec.block_size),
                capacity_blocks: U64::new(v.spec.blocks),
                strip_bytes: U32::new(0),
                rebuild_percent: 0,
                reserved: [0; 3],
                drives: U64::new(1 << (v.drive % 64)),
            })
            .collect()
    }

    fn drives(&self) -> Vec<DriveEntry> {
        self.drives
            .iter()
            .enumerate()
            .map(|(i, d)| DriveEntry {
                id: U16::new(i as u16),
                state: d.state,
                reserved: 0,
                volume: U32::new(d.volume.map_or(u32::MAX, u32::from)),
                capacity_bytes: U64::new(d.capacity_bytes),
            })
            .collect()
    }

    fn geometry(&self, volume: u16) -> Option<(u32, u64)> {
        self.volumes.get(&volume).map(|v| (v.spec.block_size, v.spec.blocks))
    }

    fn read(&mut self, volume: u16, lba: u64, data: &mut [u8]) -> Result<(), BackendError> {
        let online = self.volumes.get(&volume).is_some_and(|v| self.online(v));
        let v = self.volume(volume)?;
        if !online {
            return Err(BackendError::Internal);
        }
        let at = Self::offset(v, lba, data.len())?;
        v.data.read(at, data);
        Ok(())
    }

    fn write(&mut self, volume: u16, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        let online = self.volumes.get(&volume).is_some_and(|v| self.online(v));
        let v = self.volume(volume)?;
        if !online {
            return Err(BackendError::Internal);
        }
        let at = Self::offset(v, lba, data.len())?;
        v.data.write(at, data);
        Ok(())
    }

    fn flush(&mut self, volume: u16) -> Result<(), BackendError> {
        self.volume(volume).map(|_| ())
    }

    fn unmap(&mut self, volume: u16, lba: u64, blocks: u64) -> Option<Result<(), BackendError>> {
        let v = match self.volume(volume) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let bs = u64::from(v.spec.block_size);
        v.data.zero(lba * bs, blocks * bs);
        Some(Ok(()))
    }

    fn last_event(&self) -> u64 {
        self.events.len() as u64
    }

    fn events_since(&self, sequence: u64) -> Vec<EventEntry> {
        self.events.iter().filter(|e| e.sequence.get() > sequence).copied().collect()
    }

    fn create_volume(
        &mut self,
        level: u32,
        block_size: u32,
        _strip_bytes: u32,
        drives: u64,
    ) -> Result<u16, MgmtError> {
        let block_size = match block_size {
            0 => 512,
            512 | 4096 => block_size,
            _ => return Err(MgmtError::InvalidArgument),
        };
        if level != 0 || drives.count_ones() != 1 {
            return Err(MgmtError::InvalidArgument);
        }
        let drive = drives.trailing_zeros() as u16;
        let d = self.drives.get(usize::from(drive)).ok_or(MgmtError::NotFound)?;
        if d.state != drive_state::UNCONFIGURED_GOOD {
            return Err(MgmtError::Busy);
        }
        let id = (0..u16::MAX).find(|i| !self.volumes.contains_key(i)).ok_or(MgmtError::Busy)?;
        let bs = u64::from(block_size);
        let spec = VolumeSpec { id, block_size, blocks: d.capacity_bytes / bs };
        self.drives[usize::from(drive)].state = drive_state::ONLINE;
        self.drives[usize::from(drive)].volume = Some(id);
        self.volumes.insert(id, RamVolume { spec, drive, data: Sparse::default() });
        self.post(event::VOLUME_CREATED, id, drive);
        Ok(id)
    }

    fn delete_volume(&mut self, volume: u16) -> Result<(), MgmtError> {
        let v = self.volumes.remove(&volume).ok_or(MgmtError::NotFound)?;
        if let Some(d) = self.drives.get_mut(usize::from(v.drive)) {
            d.volume = None;
            if d.state == drive_state::ONLINE {
                d.state = drive_state::UNCONFIGURED_GOOD;
            }
        }
        self.post(event::VOLUME_DELETED, volume, v.drive);
        Ok(())
    }

    /// Its volumes are single drives without redundancy: nothing a dedicated spare could
    /// rebuild, so it has none.
    fn set_hot_spare(
        &mut self,
        drive: u16,
        spare: bool,
        volume: Option<u16>,
    ) -> Result<(), MgmtError> {
        let d = self.drives.get_mut(usize::from(drive)).ok_or(MgmtError::NotFound)?;
        if volume.is_some() {
            return Err(MgmtError::Unsupported);
        }
        match (d.state, spare) {
            (drive_state::UNCONFIGURED_GOOD, true) => d.state = drive_state::HOT_SPARE,
            (drive_state::HOT_SPARE, false) => d.state = drive_state::UNCONFIGURED_GOOD,
            (drive_state::HOT_SPARE, true) | (drive_state::UNCONFIGURED_GOOD, false) => {}
            _ => return Err(MgmtError::Busy),
        }
        Ok(())
    }

    fn start_rebuild(&mut self, _volume: u16, _drive: u16) -> Result<(), MgmtError> {
        Err(MgmtError::Unsupported)
    }

    fn fail_drive(&mut self, drive: u16) -> Result<(), MgmtError> {
        let d = self.drives.get_mut(usize::from(drive)).ok_or(MgmtError::NotFound)?;
        if d.state == drive_state::OFFLINE {
            return Ok(());
        }
        d.state = drive_state::OFFLINE;
        let volume = d.volume;
        self.post(event::DRIVE_FAILED, volume.unwrap_or(u16::MAX), drive);
        if let Some(v) = volume {
            self.post(event::VOLUME_OFFLINE, v, drive);
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------ RAID engine --

/// How much a rebuild advances per firmware slice, and what the slice costs.
pub const REBUILD_SLICE_BYTES: u64 = 1 << 20;
/// 1 MiB per 2 ms: 500 MB/s of rebuild while the firmware has nothing else to do.
pub const REBUILD_SLICE_NS: u64 = 2_000_000;

fn id16(id: u32) -> u16 {
    u16::try_from(id).unwrap_or(u16::MAX)
}

fn raid_error(e: &crate::raid::RaidError) -> MgmtError {
    use crate::raid::ErrorClass;
    match e.class() {
        ErrorClass::InvalidArgument => MgmtError::InvalidArgument,
        ErrorClass::NotFound => MgmtError::NotFound,
        ErrorClass::Busy => MgmtError::Busy,
        ErrorClass::Media | ErrorClass::Device => MgmtError::Failed,
    }
}

fn io_error(e: crate::raid::RaidError) -> BackendError {
    use crate::raid::RaidError;
    match e {
        RaidError::ReadError { lba, .. } => BackendError::ReadError { lba },
        RaidError::WriteError { lba, .. } => BackendError::WriteError { lba },
        _ => BackendError::Internal,
    }
}

fn wire_volume_state(s: crate::raid::VolumeState) -> u8 {
    use crate::raid::VolumeState;
    match s {
        VolumeState::Optimal => volume_state::OPTIMAL,
        VolumeState::Degraded => volume_state::DEGRADED,
        VolumeState::PartiallyDegraded => volume_state::PARTIALLY_DEGRADED,
        VolumeState::Offline => volume_state::OFFLINE,
        VolumeState::Rebuilding => volume_state::REBUILDING,
    }
}

fn wire_drive_state(s: crate::raid::DriveState) -> u8 {
    use crate::raid::DriveState;
    match s {
        DriveState::Online => 0,
        DriveState::Offline => 1,
        DriveState::UnconfiguredGood => 2,
        DriveState::UnconfiguredBad => 3,
        DriveState::Rebuild => 4,
        DriveState::HotSpare => 5,
        DriveState::Missing => 6,
    }
}

/// (code, volume, drive, percent) of an engine event.
fn wire_event(kind: &crate::raid::EventKind) -> (u16, Option<u32>, Option<u32>, u8) {
    use crate::raid::EventKind as K;
    match *kind {
        K::VolumeCreated { volume, .. } => (event::VOLUME_CREATED, Some(volume), None, 0),
        K::VolumeDeleted { volume } => (event::VOLUME_DELETED, Some(volume), None, 0),
        K::HotSpareAdded { drive } => (event_ext::HOT_SPARE_ADDED, None, Some(drive), 0),
        K::HotSpareRemoved { drive } => (event_ext::HOT_SPARE_REMOVED, None, Some(drive), 0),
        K::DriveFailed { drive, volume, .. } => (event::DRIVE_FAILED, volume, Some(drive), 0),
        K::VolumeDegraded { volume, .. } => (event::VOLUME_DEGRADED, Some(volume), None, 0),
        K::VolumeOffline { volume } => (event::VOLUME_OFFLINE, Some(volume), None, 0),
        K::VolumeOptimal { volume } => (event_ext::VOLUME_OPTIMAL, Some(volume), None, 100),
        K::RebuildStarted { volume, drive, .. } => {
            (event::REBUILD_STARTED, Some(volume), Some(drive), 0)
        }
        K::RebuildProgress { volume, drive, percent } => {
            (event::REBUILD_PROGRESS, Some(volume), Some(drive), percent)
        }
        K::RebuildFinished { volume, drive } => {
            (event::REBUILD_FINISHED, Some(volume), Some(drive), 100)
        }
        K::RebuildAborted { volume, drive, .. } => {
            (event_ext::REBUILD_ABORTED, Some(volume), Some(drive), 0)
        }
        K::SpareActive { volume, drive } => (event::SPARE_ACTIVE, Some(volume), Some(drive), 0),
        K::MediaErrorCorrected { drive, .. } => {
            (event_ext::MEDIA_ERROR_CORRECTED, None, Some(drive), 0)
        }
        K::MediaErrorUnrecovered { volume, .. } => {
            (event_ext::MEDIA_ERROR_UNRECOVERED, Some(volume), None, 0)
        }
        K::RebuildPuncture { volume, drive, .. } => {
            (event_ext::REBUILD_PUNCTURE, Some(volume), Some(drive), 0)
        }
    }
}

/// The RAID engine behind the firmware: volumes, drives and the log as the wire reports them;
/// management and fault injection delegated; rebuilds advanced in background slices.
impl Array for crate::raid::Raid {
    fn volumes(&self) -> Vec<VolumeEntry> {
        crate::raid::Raid::volumes(self)
            .into_iter()
            .map(|v| VolumeEntry {
                id: U16::new(id16(v.id)),
                state: wire_volume_state(v.state),
                level: v.level.number() as u8,
                block_size: U32::new(v.block_size),
                capacity_blocks: U64::new(v.capacity_blocks),
                strip_bytes: U32::new(u32::try_from(v.strip_bytes).unwrap_or(u32::MAX)),
                rebuild_percent: v.rebuilds.iter().map(|r| r.percent).min().unwrap_or(0),
                reserved: [0; 3],
                drives: U64::new(
                    v.drives.iter().filter(|&&d| d < 64).fold(0u64, |m, &d| m | (1 << d)),
                ),
            })
            .collect()
    }

    fn drives(&self) -> Vec<DriveEntry> {
        crate::raid::Raid::drives(self)
            .into_iter()
            .map(|d| DriveEntry {
                id: U16::new(id16(d.id)),
                state: wire_drive_state(d.state),
                reserved: 0,
                volume: U32::new(d.volume.unwrap_or(u32::MAX)),
                capacity_bytes: U64::new(d.capacity_bytes),
            })
            .collect()
    }

    fn geometry(&self, volume: u16) -> Option<(u32, u64)> {
        let v = crate::raid::Raid::volume(self, u32::from(volume)).ok()?;
        Some((v.block_size, v.capacity_blocks))
    }

    fn read(&mut self, volume: u16, lba: u64, data: &mut [u8]) -> Result<(), BackendError> {
        crate::raid::Raid::read(self, u32::from(volume), lba, data).map_err(io_error)
    }

    fn write(&mut self, volume: u16, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        crate::raid::Raid::write(self, u32::from(volume), lba, data).map_err(io_error)
    }

    fn flush(&mut self, volume: u16) -> Result<(), BackendError> {
        crate::raid::Raid::flush(self, u32::from(volume)).map_err(io_error)
    }

    fn write_fua(&mut self, volume: u16, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        crate::raid::Raid::write_through(self, u32::from(volume), lba, data).map_err(io_error)
    }

    fn last_event(&self) -> u64 {
        self.last_event_seq()
    }

    fn events_since(&self, sequence: u64) -> Vec<EventEntry> {
        crate::raid::Raid::events_since(self, sequence)
            .iter()
            .map(|e| {
                let (code, volume, drive, percent) = wire_event(&e.kind);
                EventEntry {
                    sequence: U64::new(e.seq),
                    code: U16::new(code),
                    volume: U16::new(volume.map_or(u16::MAX, id16)),
                    drive: U16::new(drive.map_or(u16::MAX, id16)),
                    percent,
                    reserved: 0,
                }
            })
            .collect()
    }

    fn create_volume(
        &mut self,
        level: u32,
        block_size: u32,
        strip_bytes: u32,
        drives: u64,
    ) -> Result<u16, MgmtError> {
        use crate::raid::{Level, VolumeRequest};
        let level = Level::ALL
            .into_iter()
            .find(|l| l.number() == level)
            .ok_or(MgmtError::InvalidArgument)?;
        let members: Vec<u32> = (0..64).filter(|d| drives & (1 << d) != 0).collect();
        let mut req = VolumeRequest::new(level, members);
        if strip_bytes != 0 {
            req = req.strip(u64::from(strip_bytes));
        }
        if block_size != 0 {
            req = req.block_size(block_size);
        }
        let id = crate::raid::Raid::create_volume(self, &req).map_err(|e| raid_error(&e))?;
        u16::try_from(id).map_err(|_| MgmtError::Failed)
    }

    fn delete_volume(&mut self, volume: u16) -> Result<(), MgmtError> {
        crate::raid::Raid::delete_volume(self, u32::from(volume)).map_err(|e| raid_error(&e))
    }

    fn set_hot_spare(
        &mut self,
        drive: u16,
        spare: bool,
        volume: Option<u16>,
    ) -> Result<(), MgmtError> {
        let r = if spare {
            match volume {
                None => crate::raid::Raid::set_hot_spare(self, u32::from(drive)),
                Some(v) => self.set_dedicated_spare(u32::from(drive), u32::from(v)),
            }
        } else {
            self.clear_hot_spare(u32::from(drive))
        };
        r.map_err(|e| raid_error(&e))
    }

    /// `drive` 0xFFFF: onto hot spares; otherwise onto that drive.
    fn start_rebuild(&mut self, volume: u16, drive: u16) -> Result<(), MgmtError> {
        let r = if drive == u16::MAX {
            crate::raid::Raid::start_rebuild(self, u32::from(volume)).map(|_| ())
        } else {
            self.rebuild_onto(u32::from(volume), u32::from(drive))
        };
        r.map_err(|e| raid_error(&e))
    }

    fn fail_drive(&mut self, drive: u16) -> Result<(), MgmtError> {
        crate::raid::Raid::fail_drive(self, u32::from(drive)).map_err(|e| raid_error(&e))
    }

    fn background(&mut self) -> Option<u64> {
        if self.rebuilds().is_empty() {
            return None;
        }
        self.rebuild_step(REBUILD_SLICE_BYTES);
        Some(REBUILD_SLICE_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_storage_reads_zeros_and_keeps_writes_across_chunks() {
        let mut s = Sparse::default();
        let mut out = vec![0xAAu8; 1000];
        s.read(CHUNK - 500, &mut out);
        assert!(out.iter().all(|b| *b == 0));
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        s.write(CHUNK - 500, &data);
        assert_eq!(s.chunks.len(), 2);
        s.read(CHUNK - 500, &mut out);
        assert_eq!(out, data);
        s.zero(CHUNK - 500, 1000);
        s.read(CHUNK - 500, &mut out);
        assert!(out.iter().all(|b| *b == 0));
    }

    /// The firmware's volume path (an emulator over a `VolumePort` over the RAID engine): a FUA
    /// write and WRITE AND VERIFY reach the drives without flushing the rest of the cache, and
    /// REPORT SUPPORTED OPERATION CODES answers as the core decides.
    #[test]
    fn volume_port_writes_fua_through_the_raid_cache() {
        use dkraid_core::scsi::{Data, Emulator, Identity, Limits};
        let raid = Rc::new(RefCell::new(crate::raid::Raid::default()));
        let shared: SharedArray = raid.clone();
        let port = VolumePort::new(shared, 0).unwrap();
        let mut e = Emulator::new(port, Identity::dkraid(b"v", 0), Limits::default());
        e.execute(&[0u8; 6], 0, 0, Data::None);
        let dirty = || raid.borrow().volume(0).unwrap().dirty_bytes;
        let w10 = |op: u8, flags: u8, lba: u8| [op, flags, 0, 0, 0, lba, 0, 0, 1, 0];
        assert_eq!(e.execute(&w10(0x2A, 0, 1), 0, 512, Data::Out(&[1; 512])).status, 0);
        assert_eq!(dirty(), 512);
        assert_eq!(e.execute(&w10(0x2A, 0x08, 2), 0, 512, Data::Out(&[2; 512])).status, 0);
        assert_eq!(e.execute(&w10(0x2E, 0x02, 3), 0, 512, Data::Out(&[3; 512])).status, 0);
        assert_eq!(dirty(), 512, "FUA and WRITE AND VERIFY went through");
        assert_eq!(raid.borrow_mut().power_loss(), 512);
        let mut out = [0u8; 1024];
        let read = [0x28, 0, 0, 0, 0, 2, 0, 0, 2, 0];
        assert_eq!(e.execute(&read, 0, 1024, Data::In(&mut out)).status, 0);
        assert_eq!((out[0], out[512]), (2, 3));
        let mut rsoc = [0u8; 12];
        rsoc[0] = 0xA3;
        rsoc[1] = 0x0C;
        rsoc[2] = 0x01;
        rsoc[3] = 0x89;
        rsoc[9] = 64;
        let mut d = [0u8; 64];
        let c = e.execute(&rsoc, 0, 64, Data::In(&mut d));
        assert_eq!((c.status, c.bytes, d[1], d[4]), (0, 20, 0x03, 0x89), "COMPARE AND WRITE");
    }

    #[test]
    fn ram_array_volumes_drives_and_events() {
        let mut a = RamArray::new(&[
            VolumeSpec::DEFAULT,
            VolumeSpec { id: 3, block_size: 4096, blocks: 256 },
        ]);
        assert_eq!(a.volumes().iter().map(|v| v.id.get()).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(a.geometry(3), Some((4096, 256)));
        a.write(3, 255, &[7u8; 4096]).unwrap();
        assert_eq!(a.write(3, 256, &[7u8; 4096]), Err(BackendError::Internal));
        a.fail_drive(1).unwrap();
        assert_eq!(a.read(3, 0, &mut [0u8; 4096]), Err(BackendError::Internal));
        let codes: Vec<u16> = a.events_since(0).iter().map(|e| e.code.get()).collect();
        assert_eq!(codes, [event::DRIVE_FAILED, event::VOLUME_OFFLINE]);
        assert_eq!(a.volumes()[1].state, volume_state::OFFLINE);
        a.delete_volume(0).unwrap();
        assert_eq!(a.create_volume(1, 0, 0, 1), Err(MgmtError::InvalidArgument));
        assert_eq!(a.create_volume(0, 1024, 0, 1), Err(MgmtError::InvalidArgument));
        assert_eq!(a.create_volume(0, 4096, 0, 1), Ok(0));
        assert_eq!(a.geometry(0).map(|g| g.0), Some(4096));
        assert_eq!(a.last_event(), 4);
        assert_eq!(a.start_rebuild(0, 0), Err(MgmtError::Unsupported));
    }
}
