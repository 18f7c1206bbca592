//! The firmware's RAID engine: drives, volumes, the write-back cache, rebuilds and the event
//! log, behind the management API the admin protocol will expose. Synchronous and
//! deterministic: nothing happens between calls, and a rebuild advances only in
//! [`Raid::rebuild_step`].

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use super::cache::{WriteCache, LINE_BYTES};
use super::drive::{Drive, DriveId, DriveState, DriveStats};
use super::error::RaidError;
use super::events::{Event, EventKind, EventLog, FailReason};
use super::layout::{Layout, Level};
use super::volume::{Array, Fault, Incident, Rebuild, RebuildFault, Volume, VolumeId, VolumeState};

/// Smallest strip (never below the volume's block size).
pub const MIN_STRIP_BYTES: u64 = 512;
/// Largest strip.
pub const MAX_STRIP_BYTES: u64 = 1 << 20;
pub const DEFAULT_STRIP_BYTES: u64 = 64 << 10;
/// The write-back cache's budget per volume.
pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

/// Where drives keep their bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Backing {
    /// Sparse memory (only what is written costs memory).
    #[default]
    Memory,
    /// One sparse file per drive in this directory, `drive-NN.img`, created empty.
    Files(PathBuf),
}

/// The drives a controller starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaidConfig {
    /// One capacity in bytes per drive; drive ids are the indices.
    pub drives: Vec<u64>,
    pub backing: Backing,
    /// Each volume's write-back cache holds at most this much.
    pub cache_bytes: u64,
}

impl RaidConfig {
    pub fn new(drives: Vec<u64>) -> RaidConfig {
        RaidConfig { drives, backing: Backing::Memory, cache_bytes: DEFAULT_CACHE_BYTES }
    }
}

/// What `create_volume` is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VolumeRequest {
    pub level: Level,
    pub drives: Vec<DriveId>,
    pub strip_bytes: u64,
    /// 512 or 4096.
    pub block_size: u32,
    /// Write-back (true, the default) or write-through.
    pub write_back: bool,
}

impl VolumeRequest {
    /// A 64 KiB strip, 512-byte blocks, write-back.
    pub fn new(level: Level, drives: Vec<DriveId>) -> VolumeRequest {
        VolumeRequest {
            level,
            drives,
            strip_bytes: DEFAULT_STRIP_BYTES,
            block_size: 512,
            write_back: true,
        }
    }

    pub fn strip(mut self, bytes: u64) -> VolumeRequest {
        self.strip_bytes = bytes;
        self
    }

    pub fn block_size(mut self, bytes: u32) -> VolumeRequest {
        self.block_size = bytes;
        self
    }

    pub fn write_back(mut self, on: bool) -> VolumeRequest {
        self.write_back = on;
        self
    }
}

/// `show` for the controller (`/c0`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControllerInfo {
    pub model: &'static str,
    pub firmware: &'static str,
    pub drives: usize,
    pub volumes: usize,
    pub hot_spares: usize,
    pub levels: Vec<Level>,
    pub min_strip_bytes: u64,
    pub max_strip_bytes: u64,
    pub cache_bytes_per_volume: u64,
    pub dirty_bytes: u64,
    pub rebuilds: usize,
    pub last_event: u64,
}

/// `show` for a drive (`/c0/e252/sN`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DriveInfo {
    pub id: DriveId,
    pub state: DriveState,
    pub capacity_bytes: u64,
    /// Backing storage in use.
    pub allocated_bytes: u64,
    /// `memory` or `file`.
    pub backing: &'static str,
    pub path: Option<String>,
    pub volume: Option<VolumeId>,
    pub media_errors: usize,
    pub stats: DriveStats,
}

/// `show rebuild`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RebuildStatus {
    pub volume: VolumeId,
    pub drive: DriveId,
    pub replacing: DriveId,
    pub done_bytes: u64,
    pub total_bytes: u64,
    pub percent: u8,
    pub finished: bool,
}

/// `show` for a volume (`/c0/vN`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VolumeInfo {
    pub id: VolumeId,
    pub level: Level,
    pub state: VolumeState,
    /// Member drives in slot order.
    pub drives: Vec<DriveId>,
    pub strip_bytes: u64,
    pub block_size: u32,
    pub capacity_blocks: u64,
    pub capacity_bytes: u64,
    /// Bytes used on each member.
    pub member_bytes: u64,
    /// `WB` (write-back) or `WT` (write-through).
    pub write_cache: &'static str,
    pub dirty_bytes: u64,
    pub rebuilds: Vec<RebuildStatus>,
}

/// The outcome of a consistency check (`start cc`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConsistencyReport {
    /// Rows checked on every member.
    pub rows_checked: u64,
    /// Rows where some member is missing or not yet rebuilt (the rest of the row is checked).
    pub rows_skipped: u64,
    /// Rows whose parity or mirror copies disagree.
    pub inconsistent_rows: Vec<u64>,
}

/// The controller's RAID engine.
#[derive(Debug)]
pub struct Raid {
    drives: Vec<Drive>,
    volumes: BTreeMap<VolumeId, Volume>,
    next_volume: VolumeId,
    events: EventLog,
    cache_bytes: u64,
    /// Hot spares dedicated to one volume (the others are global): such a spare rebuilds only
    /// that volume.
    dedicated: BTreeMap<DriveId, VolumeId>,
}

fn fault_error(volume: VolumeId, fault: Fault, failed: Vec<DriveId>) -> RaidError {
    match fault {
        Fault::Offline => RaidError::VolumeOffline { volume, failed },
        Fault::Unreadable(lba) => RaidError::ReadError { volume, lba },
        Fault::Unwritable(lba) => RaidError::WriteError { volume, lba },
    }
}

impl Raid {
    /// A controller with these drives, all Unconfigured Good, no volumes.
    pub fn new(config: &RaidConfig) -> Result<Raid, RaidError> {
        let mut drives = Vec::with_capacity(config.drives.len());
        if let Backing::Files(dir) = &config.backing {
            fs::create_dir_all(dir).map_err(|e| RaidError::DriveIo {
                drive: 0,
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        for (i, &capacity) in config.drives.iter().enumerate() {
            let id = i as DriveId;
            if capacity == 0 || capacity % 512 != 0 {
                return Err(RaidError::BadDriveCapacity { drive: id, capacity });
            }
            drives.push(match &config.backing {
                Backing::Memory => Drive::in_memory(id, capacity),
                Backing::Files(dir) => {
                    let path = dir.join(format!("drive-{id:02}.img"));
                    Drive::in_file(id, capacity, &path).map_err(|e| RaidError::DriveIo {
                        drive: id,
                        reason: format!("cannot create {}: {e}", path.display()),
                    })?
                }
            });
        }
        Ok(Raid {
            drives,
            volumes: BTreeMap::new(),
            next_volume: 0,
            events: EventLog::default(),
            cache_bytes: config.cache_bytes,
            dedicated: BTreeMap::new(),
        })
    }

    // ---- looking -----------------------------------------------------------------------------

    pub fn controller_info(&self) -> ControllerInfo {
        ControllerInfo {
            model: "dkraid simulated RAID controller",
            firmware: env!("CARGO_PKG_VERSION"),
            drives: self.drives.len(),
            volumes: self.volumes.len(),
            hot_spares: self.drives.iter().filter(|d| d.state() == DriveState::HotSpare).count(),
            levels: Level::ALL.to_vec(),
            min_strip_bytes: MIN_STRIP_BYTES,
            max_strip_bytes: MAX_STRIP_BYTES,
            cache_bytes_per_volume: self.cache_bytes,
            dirty_bytes: self.volumes.values().map(|v| v.cache.dirty_bytes()).sum(),
            rebuilds: self.volumes.values().map(|v| v.rebuilds.len()).sum(),
            last_event: self.events.last_seq(),
        }
    }

    fn member_of(&self, drive: DriveId) -> Option<(VolumeId, usize)> {
        self.volumes.values().find_map(|v| v.slot_of(drive).map(|s| (v.id, s)))
    }

    fn get_drive(&self, drive: DriveId) -> Result<&Drive, RaidError> {
        self.drives.get(drive as usize).ok_or(RaidError::NoSuchDrive { drive })
    }

    fn get_volume(&self, volume: VolumeId) -> Result<&Volume, RaidError> {
        self.volumes.get(&volume).ok_or(RaidError::NoSuchVolume { volume })
    }

    pub fn drive(&self, drive: DriveId) -> Result<DriveInfo, RaidError> {
        let d = self.get_drive(drive)?;
        Ok(DriveInfo {
            id: drive,
            state: d.state(),
            capacity_bytes: d.capacity(),
            allocated_bytes: d.allocated_bytes(),
            backing: if d.path().is_some() { "file" } else { "memory" },
            path: d.path().map(|p| p.display().to_string()),
            volume: self
                .member_of(drive)
                .map(|(v, _)| v)
                .or_else(|| self.dedicated.get(&drive).copied()),
            media_errors: d.media_errors(),
            stats: d.stats(),
        })
    }

    pub fn drives(&self) -> Vec<DriveInfo> {
        (0..self.drives.len() as DriveId).filter_map(|d| self.drive(d).ok()).collect()
    }

    fn rebuild_status(vol: &Volume, r: &Rebuild) -> RebuildStatus {
        let total = vol.layout.member_blocks;
        let bs = u64::from(vol.block_size);
        RebuildStatus {
            volume: vol.id,
            drive: r.drive,
            replacing: r.replacing,
            done_bytes: r.done_blocks * bs,
            total_bytes: total * bs,
            percent: (r.done_blocks * 100 / total) as u8,
            finished: r.done_blocks == total,
        }
    }

    pub fn volume(&self, volume: VolumeId) -> Result<VolumeInfo, RaidError> {
        let v = self.get_volume(volume)?;
        Ok(VolumeInfo {
            id: v.id,
            level: v.level(),
            state: v.state,
            drives: v.members.clone(),
            strip_bytes: u64::from(v.strip_bytes),
            block_size: v.block_size,
            capacity_blocks: v.capacity_blocks(),
            capacity_bytes: v.capacity_blocks() * u64::from(v.block_size),
            member_bytes: v.member_bytes(),
            write_cache: if v.write_back { "WB" } else { "WT" },
            dirty_bytes: v.cache.dirty_bytes(),
            rebuilds: v.rebuilds.values().map(|r| Raid::rebuild_status(v, r)).collect(),
        })
    }

    pub fn volumes(&self) -> Vec<VolumeInfo> {
        self.volumes.keys().filter_map(|&v| self.volume(v).ok()).collect()
    }

    /// A volume's geometry (for tools that map LBAs to drives).
    pub fn layout(&self, volume: VolumeId) -> Result<Layout, RaidError> {
        Ok(self.get_volume(volume)?.layout)
    }

    /// Every rebuild in progress.
    pub fn rebuilds(&self) -> Vec<RebuildStatus> {
        self.volumes
            .values()
            .flat_map(|v| v.rebuilds.values().map(|r| Raid::rebuild_status(v, r)))
            .collect()
    }

    /// Events numbered after `seq` (0: all retained), oldest first.
    pub fn events_since(&self, seq: u64) -> Vec<Event> {
        self.events.since(seq)
    }

    pub fn last_event_seq(&self) -> u64 {
        self.events.last_seq()
    }

    /// The bytes on a drive's medium, whatever its state (a forensic read for tests and tools).
    pub fn peek(&self, drive: DriveId, offset: u64, buf: &mut [u8]) -> Result<(), RaidError> {
        self.get_drive(drive)?
            .peek(offset, buf)
            .map_err(|e| RaidError::DriveIo { drive, reason: e.to_string() })
    }

    // ---- configuring ------------------------------------------------------------------------

    /// Refuse a drive that is not Unconfigured Good, saying what it is instead.
    fn require_unconfigured(&self, drive: DriveId, need: &'static str) -> Result<(), RaidError> {
        let d = self.get_drive(drive)?;
        if let Some((volume, _)) = self.member_of(drive) {
            return Err(RaidError::DriveInVolume { drive, volume });
        }
        match d.state() {
            DriveState::UnconfiguredGood => Ok(()),
            DriveState::HotSpare => Err(RaidError::DriveIsHotSpare { drive }),
            state => Err(RaidError::DriveNotAvailable { drive, state, need }),
        }
    }

    /// Create a volume over Unconfigured Good drives. Each member's used range is zeroed first
    /// (a new volume reads zeros and its parity is consistent from the start).
    pub fn create_volume(&mut self, req: &VolumeRequest) -> Result<VolumeId, RaidError> {
        if req.block_size != 512 && req.block_size != 4096 {
            return Err(RaidError::BadBlockSize { block_size: req.block_size });
        }
        let strip = req.strip_bytes;
        if !strip.is_power_of_two() {
            return Err(RaidError::StripNotPowerOfTwo { strip });
        }
        let min = MIN_STRIP_BYTES.max(u64::from(req.block_size));
        if !(min..=MAX_STRIP_BYTES).contains(&strip) {
            return Err(RaidError::StripOutOfRange { strip, min, max: MAX_STRIP_BYTES });
        }
        let n = req.drives.len();
        if n < req.level.min_drives() {
            return Err(RaidError::TooFewDrives {
                level: req.level,
                need: req.level.min_drives(),
                got: n,
            });
        }
        if req.level == Level::Raid10 && n % 2 != 0 {
            return Err(RaidError::OddDriveCount { got: n });
        }
        for (i, &d) in req.drives.iter().enumerate() {
            if req.drives[..i].contains(&d) {
                return Err(RaidError::DuplicateDrive { drive: d });
            }
            self.require_unconfigured(d, "Unconfigured Good")?;
        }
        let smallest = req
            .drives
            .iter()
            .map(|&d| &self.drives[d as usize])
            .min_by_key(|d| d.capacity())
            .map(|d| (d.id(), d.capacity()))
            .unwrap_or((0, 0));
        let member_bytes = smallest.1 / strip * strip;
        if member_bytes == 0 {
            return Err(RaidError::DriveTooSmall {
                drive: smallest.0,
                capacity: smallest.1,
                need: strip,
            });
        }
        for &d in &req.drives {
            self.drives[d as usize]
                .zero(0, member_bytes)
                .map_err(|e| RaidError::DriveIo { drive: d, reason: e.to_string() })?;
        }
        for &d in &req.drives {
            self.drives[d as usize].set_state(DriveState::Online);
        }
        let bs = u64::from(req.block_size);
        let layout = Layout::new(req.level, n, strip / bs, member_bytes / bs);
        let id = self.next_volume;
        self.next_volume += 1;
        self.volumes.insert(
            id,
            Volume {
                id,
                layout,
                members: req.drives.clone(),
                strip_bytes: strip as u32,
                block_size: req.block_size,
                state: VolumeState::Optimal,
                rebuilds: BTreeMap::new(),
                write_back: req.write_back,
                cache: WriteCache::new(req.block_size),
            },
        );
        self.events.push(EventKind::VolumeCreated {
            volume: id,
            level: req.level,
            drives: req.drives.clone(),
            capacity_bytes: layout.capacity_blocks() * bs,
        });
        Ok(id)
    }

    /// Delete a volume: its data and cache are gone, its members Unconfigured again (a failed
    /// one Unconfigured Bad).
    pub fn delete_volume(&mut self, volume: VolumeId) -> Result<(), RaidError> {
        let vol = self.volumes.remove(&volume).ok_or(RaidError::NoSuchVolume { volume })?;
        for &d in &vol.members {
            let drive = &mut self.drives[d as usize];
            let state = match drive.state() {
                DriveState::Offline => DriveState::UnconfiguredBad,
                DriveState::Missing => DriveState::Missing,
                _ => DriveState::UnconfiguredGood,
            };
            drive.set_state(state);
        }
        // Its dedicated spares stay hot spares, global ones now.
        self.dedicated.retain(|_, v| *v != volume);
        self.events.push(EventKind::VolumeDeleted { volume });
        Ok(())
    }

    /// Make an Unconfigured Good drive a global hot spare; a degraded volume it fits starts
    /// rebuilding onto it at once.
    pub fn set_hot_spare(&mut self, drive: DriveId) -> Result<(), RaidError> {
        self.require_unconfigured(drive, "Unconfigured Good")?;
        self.dedicated.remove(&drive);
        self.drives[drive as usize].set_state(DriveState::HotSpare);
        self.events.push(EventKind::HotSpareAdded { drive });
        let ids: Vec<VolumeId> = self.volumes.keys().copied().collect();
        for v in ids {
            self.assign_spares(v);
        }
        Ok(())
    }

    /// Make an Unconfigured Good drive a hot spare dedicated to `volume`: it rebuilds that
    /// volume only (at once, if it is degraded and the spare fits), never another. When the
    /// volume is deleted the spare becomes a global one.
    pub fn set_dedicated_spare(
        &mut self,
        drive: DriveId,
        volume: VolumeId,
    ) -> Result<(), RaidError> {
        self.get_volume(volume)?;
        self.require_unconfigured(drive, "Unconfigured Good")?;
        self.drives[drive as usize].set_state(DriveState::HotSpare);
        self.dedicated.insert(drive, volume);
        self.events.push(EventKind::HotSpareAdded { drive });
        self.assign_spares(volume);
        Ok(())
    }

    /// The volume a hot spare is dedicated to (`None`: a global spare, or not a spare).
    pub fn dedicated_to(&self, drive: DriveId) -> Option<VolumeId> {
        self.dedicated.get(&drive).copied()
    }

    pub fn clear_hot_spare(&mut self, drive: DriveId) -> Result<(), RaidError> {
        let state = self.get_drive(drive)?.state();
        if state != DriveState::HotSpare {
            return Err(RaidError::DriveNotAvailable { drive, state, need: "a hot spare" });
        }
        self.dedicated.remove(&drive);
        self.drives[drive as usize].set_state(DriveState::UnconfiguredGood);
        self.events.push(EventKind::HotSpareRemoved { drive });
        Ok(())
    }

    /// Write-back or write-through; going write-through flushes first.
    pub fn set_write_cache(&mut self, volume: VolumeId, write_back: bool) -> Result<(), RaidError> {
        self.get_volume(volume)?;
        if !write_back {
            self.flush(volume)?;
        }
        if let Some(v) = self.volumes.get_mut(&volume) {
            v.write_back = write_back;
        }
        Ok(())
    }

    // ---- faults -----------------------------------------------------------------------------

    fn require_working(&self, drive: DriveId) -> Result<(), RaidError> {
        let state = self.get_drive(drive)?.state();
        if !state.responsive() {
            return Err(RaidError::DriveNotAvailable { drive, state, need: "a working drive" });
        }
        Ok(())
    }

    /// Fail a drive now (`set offline`): its volume degrades (or goes offline) and a hot spare,
    /// if one fits, starts rebuilding in its place.
    pub fn fail_drive(&mut self, drive: DriveId) -> Result<(), RaidError> {
        self.require_working(drive)?;
        self.drive_failed(drive, FailReason::SetOffline);
        Ok(())
    }

    /// Pull a drive from its slot: as [`Raid::fail_drive`], the drive Missing.
    pub fn pull_drive(&mut self, drive: DriveId) -> Result<(), RaidError> {
        self.require_working(drive)?;
        self.drive_failed(drive, FailReason::Removed);
        Ok(())
    }

    /// Fault injection: the drive stops answering. Nothing changes until an I/O (or a rebuild)
    /// touches it; then it fails with an I/O error, as a real controller finds out.
    pub fn kill_drive(&mut self, drive: DriveId) -> Result<(), RaidError> {
        self.get_drive(drive)?;
        self.drives[drive as usize].kill();
        Ok(())
    }

    /// Fault injection: the sector holding byte `offset` of the drive becomes unreadable until
    /// written.
    pub fn inject_media_error(&mut self, drive: DriveId, offset: u64) -> Result<(), RaidError> {
        let capacity = self.get_drive(drive)?.capacity();
        if offset >= capacity {
            return Err(RaidError::DriveIo {
                drive,
                reason: format!("byte {offset} is past its {capacity} bytes"),
            });
        }
        self.drives[drive as usize].inject_media_error(offset);
        Ok(())
    }

    /// `set good`: an Unconfigured Bad (or pulled, replaced) drive is repaired and usable
    /// again, Unconfigured Good, its faults cleared.
    pub fn make_good(&mut self, drive: DriveId) -> Result<(), RaidError> {
        let state = self.get_drive(drive)?.state();
        if let Some((volume, _)) = self.member_of(drive) {
            return Err(RaidError::DriveInVolume { drive, volume });
        }
        if !matches!(state, DriveState::UnconfiguredBad | DriveState::Missing) {
            return Err(RaidError::DriveNotAvailable { drive, state, need: "Unconfigured Bad" });
        }
        let d = &mut self.drives[drive as usize];
        d.repair();
        d.set_state(DriveState::UnconfiguredGood);
        Ok(())
    }

    /// A drive failed (already marked by I/O, or now): events, the volume's new state, spares.
    fn drive_failed(&mut self, drive: DriveId, reason: FailReason) {
        let member = self.member_of(drive);
        let state = match (reason, member) {
            (FailReason::Removed, _) => DriveState::Missing,
            (_, Some(_)) => DriveState::Offline,
            (_, None) => DriveState::UnconfiguredBad,
        };
        self.drives[drive as usize].set_state(state);
        self.events.push(EventKind::DriveFailed { drive, volume: member.map(|m| m.0), reason });
        let Some((volume, slot)) = member else { return };
        if let Some(vol) = self.volumes.get_mut(&volume) {
            if let Some(r) = vol.rebuilds.remove(&slot) {
                self.events.push(EventKind::RebuildAborted {
                    volume,
                    drive: r.drive,
                    reason: format!("drive {drive} failed"),
                });
            }
        }
        self.member_lost(volume);
    }

    fn member_lost(&mut self, volume: VolumeId) {
        let Some(vol) = self.volumes.get_mut(&volume) else { return };
        if vol.state == VolumeState::Offline {
            return;
        }
        let health = vol.health(&self.drives);
        if health == VolumeState::Offline {
            vol.state = VolumeState::Offline;
            self.events.push(EventKind::VolumeOffline { volume });
            for r in std::mem::take(&mut vol.rebuilds).into_values() {
                self.events.push(EventKind::RebuildAborted {
                    volume,
                    drive: r.drive,
                    reason: "the volume is offline".into(),
                });
            }
            return;
        }
        vol.state = vol.compute_state(&self.drives);
        self.events.push(EventKind::VolumeDegraded { volume, state: health });
        self.assign_spares(volume);
    }

    /// Put fitting hot spares (lowest number first) in the failed slots of a volume.
    fn assign_spares(&mut self, volume: VolumeId) {
        loop {
            let Some(vol) = self.volumes.get(&volume) else { return };
            if vol.state == VolumeState::Offline || !vol.level().redundant() {
                return;
            }
            let failed = (0..vol.members.len()).find(|&s| {
                !vol.rebuilds.contains_key(&s)
                    && matches!(
                        self.drives[vol.members[s] as usize].state(),
                        DriveState::Offline | DriveState::Missing
                    )
            });
            let Some(slot) = failed else { return };
            let need = vol.member_bytes();
            // A spare dedicated to this volume first, then a global one; never a spare
            // dedicated to another volume.
            let spare = self
                .drives
                .iter()
                .filter(|d| d.state() == DriveState::HotSpare && d.capacity() >= need)
                .filter_map(|d| match self.dedicated.get(&d.id()) {
                    None => Some((1, d.id())),
                    Some(&v) if v == volume => Some((0, d.id())),
                    Some(_) => None,
                })
                .min()
                .map(|(_, id)| id);
            let Some(spare) = spare else { return };
            self.begin_rebuild(volume, slot, spare);
        }
    }

    fn begin_rebuild(&mut self, volume: VolumeId, slot: usize, drive: DriveId) {
        let Some(vol) = self.volumes.get_mut(&volume) else { return };
        let replacing = vol.members[slot];
        let old = &mut self.drives[replacing as usize];
        if old.state() == DriveState::Offline {
            old.set_state(DriveState::UnconfiguredBad);
        }
        vol.members[slot] = drive;
        self.dedicated.remove(&drive);
        self.drives[drive as usize].set_state(DriveState::Rebuild);
        vol.rebuilds
            .insert(slot, Rebuild { drive, replacing, done_blocks: 0, reported_deciles: 0 });
        vol.state = vol.compute_state(&self.drives);
        self.events.push(EventKind::RebuildStarted { volume, drive, replacing });
    }

    /// Rebuild every failed member of a volume onto hot spares now.
    pub fn start_rebuild(&mut self, volume: VolumeId) -> Result<Vec<RebuildStatus>, RaidError> {
        let vol = self.get_volume(volume)?;
        if vol.state == VolumeState::Offline {
            return Err(RaidError::VolumeOffline { volume, failed: self.failed_members(volume) });
        }
        if !vol.level().redundant() {
            return Err(RaidError::NoRedundancy { volume, level: vol.level() });
        }
        let failed = self.failed_members(volume);
        if failed.is_empty() {
            return Err(RaidError::NothingToRebuild { volume });
        }
        let need = vol.member_bytes();
        self.assign_spares(volume);
        if self.failed_members(volume).len() == failed.len() {
            return Err(RaidError::NoHotSpare { volume, need });
        }
        Ok(self.rebuilds().into_iter().filter(|r| r.volume == volume).collect())
    }

    /// Replace a failed member with a given drive (Unconfigured Good or a hot spare) and start
    /// rebuilding onto it.
    pub fn replace_drive(&mut self, failed: DriveId, with: DriveId) -> Result<(), RaidError> {
        let state = self.get_drive(failed)?.state();
        self.get_drive(with)?;
        let member = self.member_of(failed);
        let (volume, slot) = match member {
            Some(m) if matches!(state, DriveState::Offline | DriveState::Missing) => m,
            _ => return Err(RaidError::NotAFailedMember { drive: failed }),
        };
        let vol = self.get_volume(volume)?;
        if vol.state == VolumeState::Offline {
            return Err(RaidError::VolumeOffline { volume, failed: self.failed_members(volume) });
        }
        let need = vol.member_bytes();
        if self.get_drive(with)?.state() != DriveState::HotSpare {
            self.require_unconfigured(with, "Unconfigured Good or a hot spare")?;
        }
        let capacity = self.get_drive(with)?.capacity();
        if capacity < need {
            return Err(RaidError::DriveTooSmall { drive: with, capacity, need });
        }
        self.begin_rebuild(volume, slot, with);
        Ok(())
    }

    /// Rebuild a volume's first failed member onto `drive` (Unconfigured Good or a hot spare).
    pub fn rebuild_onto(&mut self, volume: VolumeId, drive: DriveId) -> Result<(), RaidError> {
        let vol = self.get_volume(volume)?;
        if !vol.level().redundant() {
            return Err(RaidError::NoRedundancy { volume, level: vol.level() });
        }
        let failed = self.failed_members(volume);
        let Some(&first) = failed.first() else {
            return Err(RaidError::NothingToRebuild { volume });
        };
        self.replace_drive(first, drive)
    }

    fn failed_members(&self, volume: VolumeId) -> Vec<DriveId> {
        let Some(vol) = self.volumes.get(&volume) else { return Vec::new() };
        vol.members
            .iter()
            .copied()
            .filter(|&d| {
                matches!(self.drives[d as usize].state(), DriveState::Offline | DriveState::Missing)
            })
            .collect()
    }

    // ---- rebuild ----------------------------------------------------------------------------

    /// Advance every rebuild by up to `max_bytes` of its drive (at least one strip), in volume
    /// and slot order. Returns each one's status (`finished` for those that completed now).
    pub fn rebuild_step(&mut self, max_bytes: u64) -> Vec<RebuildStatus> {
        let work: Vec<(VolumeId, usize)> = self
            .volumes
            .iter()
            .flat_map(|(&v, vol)| vol.rebuilds.keys().map(move |&s| (v, s)))
            .collect();
        let mut statuses = Vec::new();
        for (volume, slot) in work {
            let mut moved = 0u64;
            while let Some((vol, r)) =
                self.volumes.get(&volume).and_then(|v| v.rebuilds.get(&slot).map(|r| (v, r)))
            {
                if moved > 0 && moved >= max_bytes {
                    statuses.push(Raid::rebuild_status(vol, r));
                    break;
                }
                let row = r.done_blocks / vol.layout.strip_blocks;
                let mut array = Array::new(vol, &mut self.drives);
                let result = array.rebuild_row(slot, row);
                let incidents = std::mem::take(&mut array.incidents);
                self.after_io(volume, incidents);
                match result {
                    Ok(()) => {
                        moved += u64::from(self.volumes[&volume].strip_bytes);
                        if let Some(done) = self.advance_rebuild(volume, slot) {
                            statuses.push(done);
                            break;
                        }
                    }
                    Err(RebuildFault::TargetDied) => break,
                    Err(RebuildFault::SourcesLost) => {
                        // Sources died mid-row: the volume went offline and the rebuild with it.
                        if let Some(vol) = self.volumes.get_mut(&volume) {
                            if let Some(r) = vol.rebuilds.remove(&slot) {
                                self.events.push(EventKind::RebuildAborted {
                                    volume,
                                    drive: r.drive,
                                    reason: "no source left to rebuild from".into(),
                                });
                            }
                        }
                        break;
                    }
                }
            }
        }
        statuses
    }

    /// One more strip done: progress events, and the end of the rebuild when it is complete.
    fn advance_rebuild(&mut self, volume: VolumeId, slot: usize) -> Option<RebuildStatus> {
        let vol = self.volumes.get_mut(&volume)?;
        let total = vol.layout.member_blocks;
        let strip = vol.layout.strip_blocks;
        let r = vol.rebuilds.get_mut(&slot)?;
        r.done_blocks += strip;
        while r.reported_deciles < 9
            && r.done_blocks * 10 >= (u64::from(r.reported_deciles) + 1) * total
        {
            r.reported_deciles += 1;
            self.events.push(EventKind::RebuildProgress {
                volume,
                drive: r.drive,
                percent: r.reported_deciles * 10,
            });
        }
        if r.done_blocks < total {
            return None;
        }
        let r = vol.rebuilds.remove(&slot)?;
        let status = RebuildStatus {
            volume,
            drive: r.drive,
            replacing: r.replacing,
            done_bytes: total * u64::from(vol.block_size),
            total_bytes: total * u64::from(vol.block_size),
            percent: 100,
            finished: true,
        };
        self.drives[r.drive as usize].set_state(DriveState::Online);
        vol.state = vol.compute_state(&self.drives);
        self.events.push(EventKind::RebuildFinished { volume, drive: r.drive });
        self.events.push(EventKind::SpareActive { volume, drive: r.drive });
        if vol.health(&self.drives) == VolumeState::Optimal {
            self.events.push(EventKind::VolumeOptimal { volume });
        }
        Some(status)
    }

    /// Run every rebuild (and those that start meanwhile) to its end.
    pub fn finish_rebuilds(&mut self) {
        while !self.rebuilds().is_empty() {
            self.rebuild_step(u64::MAX);
        }
    }

    // ---- I/O --------------------------------------------------------------------------------

    fn check_io(vol: &Volume, lba: u64, bytes: usize) -> Result<u64, RaidError> {
        let bs = vol.block_size as usize;
        if bytes % bs != 0 {
            return Err(RaidError::Unaligned { volume: vol.id, bytes, block_size: vol.block_size });
        }
        let blocks = (bytes / bs) as u64;
        let capacity = vol.capacity_blocks();
        if lba.checked_add(blocks).is_none_or(|end| end > capacity) {
            return Err(RaidError::OutOfRange { volume: vol.id, lba, blocks, capacity });
        }
        if vol.state == VolumeState::Offline {
            return Err(RaidError::VolumeOffline { volume: vol.id, failed: Vec::new() });
        }
        Ok(blocks)
    }

    fn with_failed(&self, e: RaidError) -> RaidError {
        match e {
            RaidError::VolumeOffline { volume, .. } => {
                RaidError::VolumeOffline { volume, failed: self.failed_members(volume) }
            }
            e => e,
        }
    }

    /// After an I/O: the drives that died fail (events, spares); corrections are logged.
    fn after_io(&mut self, volume: VolumeId, incidents: Vec<Incident>) {
        for incident in incidents {
            match incident {
                Incident::Died(drive) => self.drive_failed(drive, FailReason::IoError),
                Incident::Corrected { drive, offset } => {
                    self.events.push(EventKind::MediaErrorCorrected { drive, offset });
                }
                Incident::Punctured { drive, offset, bytes } => {
                    self.events.push(EventKind::RebuildPuncture { volume, drive, offset, bytes });
                }
            }
        }
    }

    fn fault(&mut self, volume: VolumeId, fault: Fault) -> RaidError {
        if let Fault::Unreadable(lba) = fault {
            self.events.push(EventKind::MediaErrorUnrecovered { volume, lba });
        }
        fault_error(volume, fault, self.failed_members(volume))
    }

    /// Read whole blocks from `lba`: dirty cached blocks from the cache, the rest from the
    /// drives (reconstructed if need be).
    pub fn read(&mut self, volume: VolumeId, lba: u64, buf: &mut [u8]) -> Result<(), RaidError> {
        let vol = self.volumes.get(&volume).ok_or(RaidError::NoSuchVolume { volume })?;
        let blocks = Raid::check_io(vol, lba, buf.len()).map_err(|e| self.with_failed(e))?;
        let bs = vol.block_size as usize;
        let mut array = Array::new(vol, &mut self.drives);
        let mut result = Ok(());
        for run in vol.cache.runs(lba, blocks) {
            let at = (run.lba - lba) as usize * bs;
            let out = &mut buf[at..at + run.blocks as usize * bs];
            if run.cached {
                vol.cache.copy_out(run.lba, out);
            } else if let Err(f) = array.read(run.lba, out) {
                result = Err(f);
                break;
            }
        }
        let incidents = std::mem::take(&mut array.incidents);
        self.after_io(volume, incidents);
        result.map_err(|f| self.fault(volume, f))
    }

    /// Write whole blocks at `lba`. Write-back: into the cache (flushed first when full);
    /// write-through, or a write larger than the cache: to the drives before returning.
    pub fn write(&mut self, volume: VolumeId, lba: u64, data: &[u8]) -> Result<(), RaidError> {
        let budget = self.cache_bytes;
        let vol = self.volumes.get(&volume).ok_or(RaidError::NoSuchVolume { volume })?;
        Raid::check_io(vol, lba, data.len()).map_err(|e| self.with_failed(e))?;
        if vol.write_back && (data.len() as u64) < budget {
            if vol.cache.footprint_bytes() + data.len() as u64 + 2 * LINE_BYTES > budget {
                self.flush(volume)?;
            }
            if let Some(vol) = self.volumes.get_mut(&volume) {
                vol.cache.write(lba, data);
            }
            return Ok(());
        }
        self.write_through(volume, lba, data)
    }

    /// Write whole blocks at `lba` to the drives before returning, whatever the cache mode (a
    /// FUA write). Older dirty cached copies of these blocks are superseded; the volume's other
    /// dirty blocks stay in the cache.
    pub fn write_through(
        &mut self,
        volume: VolumeId,
        lba: u64,
        data: &[u8],
    ) -> Result<(), RaidError> {
        let vol = self.volumes.get(&volume).ok_or(RaidError::NoSuchVolume { volume })?;
        let blocks = Raid::check_io(vol, lba, data.len()).map_err(|e| self.with_failed(e))?;
        let mut array = Array::new(vol, &mut self.drives);
        let result = array.write(lba, data);
        let incidents = std::mem::take(&mut array.incidents);
        self.after_io(volume, incidents);
        match result {
            Ok(()) => {
                // Older dirty copies of these blocks are superseded.
                if let Some(vol) = self.volumes.get_mut(&volume) {
                    vol.cache.clean(lba, blocks);
                }
                Ok(())
            }
            Err(f) => Err(self.fault(volume, f)),
        }
    }

    /// Write every dirty cached block of the volume to the drives. When this returns Ok, every
    /// write acknowledged before it is on the drives.
    pub fn flush(&mut self, volume: VolumeId) -> Result<(), RaidError> {
        let vol = self.volumes.get_mut(&volume).ok_or(RaidError::NoSuchVolume { volume })?;
        if vol.cache.is_empty() {
            return Ok(());
        }
        if vol.state == VolumeState::Offline {
            return Err(RaidError::VolumeOffline { volume, failed: self.failed_members(volume) });
        }
        let mut cache = std::mem::replace(&mut vol.cache, WriteCache::new(vol.block_size));
        let vol = &*vol;
        let bs = vol.block_size as usize;
        let mut array = Array::new(vol, &mut self.drives);
        let mut result = Ok(());
        for (lba, blocks) in cache.dirty_runs() {
            let mut data = vec![0u8; blocks as usize * bs];
            cache.copy_out(lba, &mut data);
            match array.write(lba, &data) {
                Ok(()) => cache.clean(lba, blocks),
                Err(f) => {
                    result = Err(f);
                    break;
                }
            }
        }
        let incidents = std::mem::take(&mut array.incidents);
        if let Some(vol) = self.volumes.get_mut(&volume) {
            vol.cache = cache;
        }
        self.after_io(volume, incidents);
        result.map_err(|f| self.fault(volume, f))
    }

    /// Flush every volume; the first error, after trying them all.
    pub fn flush_all(&mut self) -> Result<(), RaidError> {
        let ids: Vec<VolumeId> = self.volumes.keys().copied().collect();
        let mut first = Ok(());
        for v in ids {
            if let Err(e) = self.flush(v) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Power loss: the volatile write-back caches are lost. Returns the bytes dropped.
    pub fn power_loss(&mut self) -> u64 {
        let mut lost = 0;
        for vol in self.volumes.values_mut() {
            lost += vol.cache.dirty_bytes();
            vol.cache.discard();
        }
        lost
    }

    /// `start cc`: check, from the drives, that every row's parity (RAID 5) or mirror copies
    /// (RAID 1, 10) agree. Rows where a member is missing are skipped; rows that are holes on
    /// every member are consistent without reading.
    pub fn consistency_check(&self, volume: VolumeId) -> Result<ConsistencyReport, RaidError> {
        let vol = self.get_volume(volume)?;
        let layout = vol.layout;
        let bs = u64::from(vol.block_size);
        let bytes = layout.strip_blocks * bs;
        let mut report = ConsistencyReport::default();
        let groups: Vec<std::ops::Range<usize>> = match layout.level {
            Level::Raid0 => Vec::new(),
            Level::Raid1 | Level::Raid5 => std::iter::once(0..layout.slots).collect(),
            Level::Raid10 => (0..layout.slots / 2).map(|p| 2 * p..2 * p + 2).collect(),
        };
        let peek = |slot: usize, offset: u64, buf: &mut [u8]| {
            self.drives[vol.members[slot] as usize]
                .peek(offset, buf)
                .map_err(|e| RaidError::DriveIo { drive: vol.members[slot], reason: e.to_string() })
        };
        let valid = |slot: usize, row: u64| {
            let d = &self.drives[vol.members[slot] as usize];
            match d.state() {
                DriveState::Online => true,
                DriveState::Rebuild => vol
                    .rebuilds
                    .get(&slot)
                    .is_some_and(|r| layout.row_start(row + 1) <= r.done_blocks),
                _ => false,
            }
        };
        let mut a = vec![0u8; bytes as usize];
        let mut b = vec![0u8; bytes as usize];
        for row in 0..layout.rows() {
            let offset = layout.row_start(row) * bs;
            let mut bad = false;
            let mut skipped = false;
            for g in &groups {
                if !g.clone().all(|s| valid(s, row)) {
                    skipped = true;
                    continue;
                }
                if g.clone().all(|s| !self.drives[vol.members[s] as usize].has_data(offset, bytes))
                {
                    continue;
                }
                peek(g.start, offset, &mut a)?;
                for s in g.clone().skip(1) {
                    peek(s, offset, &mut b)?;
                    if layout.level == Level::Raid5 {
                        a.iter_mut().zip(&b).for_each(|(x, y)| *x ^= y);
                    } else if a != b {
                        bad = true;
                    }
                }
                if layout.level == Level::Raid5 && a.iter().any(|&x| x != 0) {
                    bad = true;
                }
            }
            if bad {
                report.inconsistent_rows.push(row);
            }
            if skipped {
                report.rows_skipped += 1;
            } else {
                report.rows_checked += 1;
            }
        }
        Ok(report)
    }
}
