//! A volume and its I/O paths: reads (with reconstruction from a mirror or from parity), writes
//! (keeping parity consistent, degraded or not) and the rebuild of one row of one member.
//!
//! The I/O code works on an [`Array`]: the volume's geometry and member slots, and the drives.
//! It decides per segment from the drives' states; when a drive stops answering it marks it
//! Offline at once, records an [`Incident`] for the engine (events, spares) and retries the
//! segment without it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::cache::WriteCache;
use super::drive::{Drive, DriveError, DriveId, DriveState, SECTOR_BYTES};
use super::layout::{Layout, Level, Segment};

/// A volume's number (StorCLI's virtual drive, `/c0/vN`). Never reused on a controller.
pub type VolumeId = u32;

/// A volume's state, in StorCLI's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum VolumeState {
    /// Every member present.
    #[serde(rename = "Optimal")]
    Optimal,
    /// Members lost, but every block still has a redundant copy (an n-way RAID 1 with one
    /// member gone).
    #[serde(rename = "Partially Degraded")]
    PartiallyDegraded,
    /// Members lost; some blocks have no redundancy left.
    #[serde(rename = "Degraded")]
    Degraded,
    /// Degraded, with a rebuild in progress.
    #[serde(rename = "Rebuilding")]
    Rebuilding,
    /// More members lost than the level tolerates: every I/O fails.
    #[serde(rename = "Offline")]
    Offline,
}

impl VolumeState {
    pub const fn name(self) -> &'static str {
        match self {
            VolumeState::Optimal => "Optimal",
            VolumeState::PartiallyDegraded => "Partially Degraded",
            VolumeState::Degraded => "Degraded",
            VolumeState::Rebuilding => "Rebuilding",
            VolumeState::Offline => "Offline",
        }
    }

    /// StorCLI's abbreviation.
    pub const fn abbreviation(self) -> &'static str {
        match self {
            VolumeState::Optimal => "Optl",
            VolumeState::PartiallyDegraded => "Pdgd",
            VolumeState::Degraded => "Dgrd",
            VolumeState::Rebuilding => "Rbld",
            VolumeState::Offline => "OfLn",
        }
    }
}

impl fmt::Display for VolumeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rebuild in progress on one member slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebuild {
    /// The drive being rebuilt (now in the slot).
    pub drive: DriveId,
    /// The failed drive it replaces.
    pub replacing: DriveId,
    /// Member blocks rebuilt so far: always a whole number of strips; everything below is
    /// valid on `drive`.
    pub done_blocks: u64,
    /// Progress events sent: 1 after 10 %, …, 9 after 90 %.
    pub reported_deciles: u8,
}

/// One volume: geometry, members, state, rebuilds in progress and its write-back cache.
#[derive(Debug)]
pub struct Volume {
    pub(crate) id: VolumeId,
    pub(crate) layout: Layout,
    pub(crate) members: Vec<DriveId>,
    pub(crate) strip_bytes: u32,
    pub(crate) block_size: u32,
    pub(crate) state: VolumeState,
    pub(crate) rebuilds: BTreeMap<usize, Rebuild>,
    pub(crate) write_back: bool,
    pub(crate) cache: WriteCache,
}

impl Volume {
    pub fn id(&self) -> VolumeId {
        self.id
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn level(&self) -> Level {
        self.layout.level
    }

    pub fn members(&self) -> &[DriveId] {
        &self.members
    }

    pub fn state(&self) -> VolumeState {
        self.state
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    pub fn capacity_blocks(&self) -> u64 {
        self.layout.capacity_blocks()
    }

    /// Bytes used on each member.
    pub fn member_bytes(&self) -> u64 {
        self.layout.member_blocks * u64::from(self.block_size)
    }

    pub fn slot_of(&self, drive: DriveId) -> Option<usize> {
        self.members.iter().position(|&d| d == drive)
    }

    /// The redundancy left, counting a member being rebuilt as lost.
    pub(crate) fn health(&self, drives: &[Drive]) -> VolumeState {
        let lost = |slot: usize| drives[self.members[slot] as usize].state() != DriveState::Online;
        let n = self.members.len();
        let count = (0..n).filter(|&s| lost(s)).count();
        match self.layout.level {
            Level::Raid0 if count > 0 => VolumeState::Offline,
            Level::Raid1 if count == n => VolumeState::Offline,
            Level::Raid1 if count > 0 && n - count == 1 => VolumeState::Degraded,
            Level::Raid1 if count > 0 => VolumeState::PartiallyDegraded,
            Level::Raid5 if count > 1 => VolumeState::Offline,
            Level::Raid5 if count == 1 => VolumeState::Degraded,
            Level::Raid10 if (0..n / 2).any(|p| lost(2 * p) && lost(2 * p + 1)) => {
                VolumeState::Offline
            }
            Level::Raid10 if count > 0 => VolumeState::Degraded,
            _ => VolumeState::Optimal,
        }
    }

    /// The state to show: Offline, else Rebuilding while a rebuild runs, else the health.
    pub(crate) fn compute_state(&self, drives: &[Drive]) -> VolumeState {
        match self.health(drives) {
            VolumeState::Offline => VolumeState::Offline,
            _ if !self.rebuilds.is_empty() => VolumeState::Rebuilding,
            h => h,
        }
    }
}

/// Something the engine must hear about after an I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Incident {
    /// The drive stopped answering; it is already marked Offline.
    Died(DriveId),
    /// A bad range was rebuilt from redundancy and rewritten.
    Corrected { drive: DriveId, offset: u64 },
    /// A rebuild could not reconstruct these bytes of the drive; they now read as media errors.
    Punctured { drive: DriveId, offset: u64, bytes: u64 },
}

/// Why a volume I/O failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Too many members lost.
    Offline,
    /// This volume block could not be read from any copy.
    Unreadable(u64),
    /// This volume block could not be written consistently (its old data was unreadable).
    Unwritable(u64),
}

/// Why a row could not be rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RebuildFault {
    /// No source left for it.
    SourcesLost,
    /// The drive being rebuilt stopped answering.
    TargetDied,
}

/// How reading one slot went.
enum SlotRead {
    Ok,
    /// An unreadable sector at this member byte offset.
    Media(u64),
    /// The drive died (now marked Offline): start the segment again.
    Died,
}

/// What went wrong inside one attempt at a segment.
enum Trouble {
    Offline,
    /// Unreadable sectors where no redundancy could cover them.
    Media,
    /// A drive died: try again with what is left.
    Retry,
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    debug_assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (a, b) in (&mut d).zip(&mut s) {
        let x = u64::from_ne_bytes(a.try_into().unwrap_or([0; 8]))
            ^ u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
        a.copy_from_slice(&x.to_ne_bytes());
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a ^= b;
    }
}

/// A volume's I/O against the drives.
pub(crate) struct Array<'a> {
    vol: &'a Volume,
    drives: &'a mut [Drive],
    pub incidents: Vec<Incident>,
}

impl<'a> Array<'a> {
    pub fn new(vol: &'a Volume, drives: &'a mut [Drive]) -> Array<'a> {
        Array { vol, drives, incidents: Vec::new() }
    }

    fn bs(&self) -> u64 {
        u64::from(self.vol.block_size)
    }

    fn drive(&mut self, slot: usize) -> &mut Drive {
        &mut self.drives[self.vol.members[slot] as usize]
    }

    /// Whether `slot` holds valid data up to member block `end`: Online, or being rebuilt and
    /// already rebuilt that far.
    fn usable(&self, slot: usize, end: u64) -> bool {
        match self.drives[self.vol.members[slot] as usize].state() {
            DriveState::Online => true,
            DriveState::Rebuild => {
                self.vol.rebuilds.get(&slot).is_some_and(|r| end <= r.done_blocks)
            }
            _ => false,
        }
    }

    fn died(&mut self, slot: usize) {
        let d = self.drive(slot);
        d.set_state(DriveState::Offline);
        let id = d.id();
        self.incidents.push(Incident::Died(id));
    }

    fn read_slot(&mut self, slot: usize, member_lba: u64, buf: &mut [u8]) -> SlotRead {
        let offset = member_lba * self.bs();
        match self.drive(slot).read(offset, buf) {
            Ok(()) => SlotRead::Ok,
            Err(DriveError::Media { offset }) => SlotRead::Media(offset),
            Err(DriveError::Dead | DriveError::Io(_)) => {
                self.died(slot);
                SlotRead::Died
            }
        }
    }

    /// Write one slot; false if the drive died.
    fn write_slot(&mut self, slot: usize, member_lba: u64, data: &[u8]) -> bool {
        let offset = member_lba * self.bs();
        match self.drive(slot).write(offset, data) {
            Ok(()) => true,
            Err(_) => {
                self.died(slot);
                false
            }
        }
    }

    /// Rewrite a range that failed to read with the data rebuilt for it.
    fn correct(&mut self, slot: usize, member_lba: u64, data: &[u8], bad_offset: u64) {
        if self.write_slot(slot, member_lba, data) {
            let drive = self.vol.members[slot];
            self.incidents.push(Incident::Corrected { drive, offset: bad_offset });
        }
    }

    // ---- reads ------------------------------------------------------------------------------

    /// Read `buf.len()` bytes of blocks from `lba` (range already checked).
    pub fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let bs = self.bs();
        let blocks = buf.len() as u64 / bs;
        for seg in self.vol.layout.segments(lba, blocks) {
            let at = ((seg.lba - lba) * bs) as usize;
            let out = &mut buf[at..at + (seg.blocks * bs) as usize];
            self.read_segment(&seg, out)?;
        }
        Ok(())
    }

    fn read_segment(&mut self, seg: &Segment, out: &mut [u8]) -> Result<(), Fault> {
        match self.read_range(seg, out) {
            Ok(()) => Ok(()),
            Err(Trouble::Offline) => Err(Fault::Offline),
            Err(_) => {
                // Unreadable somewhere: block by block, to save what can be saved and name the
                // first block that cannot be.
                let bs = self.bs() as usize;
                for i in 0..seg.blocks {
                    let one =
                        Segment { lba: seg.lba + i, blocks: 1, offset: seg.offset + i, ..*seg };
                    let block = &mut out[i as usize * bs..(i as usize + 1) * bs];
                    match self.read_range(&one, block) {
                        Ok(()) => {}
                        Err(Trouble::Offline) => return Err(Fault::Offline),
                        Err(_) => return Err(Fault::Unreadable(one.lba)),
                    }
                }
                Ok(())
            }
        }
    }

    /// One segment, retrying while drives die under it.
    fn read_range(&mut self, seg: &Segment, out: &mut [u8]) -> Result<(), Trouble> {
        loop {
            let attempt = match self.vol.layout.level {
                Level::Raid5 => self.read_parity(seg, out),
                _ => self.read_copies(seg, out),
            };
            match attempt {
                Err(Trouble::Retry) => continue,
                other => return other,
            }
        }
    }

    /// RAID 0, 1, 10: the first copy that reads; a copy with bad sectors is rewritten from it.
    fn read_copies(&mut self, seg: &Segment, out: &mut [u8]) -> Result<(), Trouble> {
        let m = self.vol.layout.member_lba(seg);
        let end = m + seg.blocks;
        let mut bad: Vec<(usize, u64)> = Vec::new();
        let mut any = false;
        for slot in self.vol.layout.copies(seg.row, seg.index) {
            if !self.usable(slot, end) {
                continue;
            }
            any = true;
            match self.read_slot(slot, m, out) {
                SlotRead::Ok => {
                    for (b, offset) in bad {
                        self.correct(b, m, out, offset);
                    }
                    return Ok(());
                }
                SlotRead::Media(offset) => bad.push((slot, offset)),
                SlotRead::Died => return Err(Trouble::Retry),
            }
        }
        if any {
            Err(Trouble::Media)
        } else {
            Err(Trouble::Offline)
        }
    }

    /// RAID 5: the data strip, or the XOR of every other strip of the row.
    fn read_parity(&mut self, seg: &Segment, out: &mut [u8]) -> Result<(), Trouble> {
        let n = self.vol.members.len();
        let m = self.vol.layout.member_lba(seg);
        let end = m + seg.blocks;
        let ds = self.vol.layout.data_slot(seg.row, seg.index);
        if (0..n).filter(|&s| !self.usable(s, end)).count() > 1 {
            return Err(Trouble::Offline);
        }
        let mut bad_offset = None;
        if self.usable(ds, end) {
            match self.read_slot(ds, m, out) {
                SlotRead::Ok => return Ok(()),
                SlotRead::Media(offset) => bad_offset = Some(offset),
                SlotRead::Died => return Err(Trouble::Retry),
            }
        }
        out.fill(0);
        let mut tmp = vec![0u8; out.len()];
        for slot in (0..n).filter(|&s| s != ds) {
            if !self.usable(slot, end) {
                return Err(Trouble::Media);
            }
            match self.read_slot(slot, m, &mut tmp) {
                SlotRead::Ok => xor_into(out, &tmp),
                SlotRead::Media(_) => return Err(Trouble::Media),
                SlotRead::Died => return Err(Trouble::Retry),
            }
        }
        if let Some(offset) = bad_offset {
            self.correct(ds, m, out, offset);
        }
        Ok(())
    }

    // ---- writes -----------------------------------------------------------------------------

    /// Write `data` (whole blocks) from `lba` (range already checked).
    pub fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), Fault> {
        let bs = self.bs();
        let blocks = data.len() as u64 / bs;
        let piece = |seg: &Segment| {
            let at = ((seg.lba - lba) * bs) as usize;
            &data[at..at + (seg.blocks * bs) as usize]
        };
        if self.vol.layout.level != Level::Raid5 {
            for seg in self.vol.layout.segments(lba, blocks) {
                self.write_copies(&seg, piece(&seg))?;
            }
            return Ok(());
        }
        let mut row: Vec<(Segment, &[u8])> = Vec::new();
        for seg in self.vol.layout.segments(lba, blocks) {
            if row.first().is_some_and(|(s, _)| s.row != seg.row) {
                self.write_row(&row)?;
                row.clear();
            }
            row.push((seg, piece(&seg)));
        }
        if !row.is_empty() {
            self.write_row(&row)?;
        }
        Ok(())
    }

    /// RAID 0, 1, 10: every copy that holds valid data. A copy being rebuilt beyond this point
    /// is left to the rebuild.
    fn write_copies(&mut self, seg: &Segment, data: &[u8]) -> Result<(), Fault> {
        let m = self.vol.layout.member_lba(seg);
        let end = m + seg.blocks;
        let mut written = false;
        for slot in self.vol.layout.copies(seg.row, seg.index) {
            if self.usable(slot, end) && self.write_slot(slot, m, data) {
                written = true;
            }
        }
        if written {
            Ok(())
        } else {
            Err(Fault::Offline)
        }
    }

    /// RAID 5, the segments of one row: reconstruct-write over the span they cover. The old
    /// contents of the data strips not wholly overwritten are read (a strip that cannot be read
    /// is rebuilt from parity and the others), the new data laid over them, and parity written
    /// as the XOR of the row's new data. A member that is missing gets nothing; parity covers
    /// it.
    fn write_row(&mut self, segs: &[(Segment, &[u8])]) -> Result<(), Fault> {
        let layout = self.vol.layout;
        let n = self.vol.members.len();
        let k = n - 1;
        let row = segs[0].0.row;
        let lo = segs.iter().map(|(s, _)| s.offset).min().unwrap_or(0);
        let hi = segs.iter().map(|(s, _)| s.offset + s.blocks).max().unwrap_or(0);
        let m = layout.row_start(row) + lo;
        let end = layout.row_start(row) + hi;
        let bs = self.bs() as usize;
        let len = (hi - lo) as usize * bs;
        let ps = layout.parity_slot(row).unwrap_or(0);
        let first_lba = segs[0].0.lba;
        let whole = |j: usize| {
            segs.iter().any(|(s, _)| s.index == j && s.offset == lo && s.offset + s.blocks == hi)
        };

        // Old contents are needed of every strip not wholly overwritten — and of all of them
        // when one must be rebuilt from parity (a member is missing, or a sector unreadable).
        // Decided again on every attempt: a drive may have died during the last one.
        let mut read_all = false;
        'attempt: loop {
            if (0..n).filter(|&s| !self.usable(s, end)).count() > 1 {
                return Err(Fault::Offline);
            }
            read_all |= (0..k).any(|j| !whole(j) && !self.usable(layout.data_slot(row, j), end));
            if !self.usable(ps, end) {
                // No parity to keep: the data strips are all present.
                for (seg, data) in segs {
                    let slot = layout.data_slot(row, seg.index);
                    self.write_slot(slot, layout.member_lba(seg), data);
                }
                break 'attempt;
            }
            let mut strips: Vec<Vec<u8>> = vec![vec![0u8; len]; k];
            let mut lost: Option<usize> = None;
            let mut media: Option<(usize, u64)> = None;
            for (j, strip) in strips.iter_mut().enumerate() {
                if !read_all && whole(j) {
                    continue;
                }
                let slot = layout.data_slot(row, j);
                if !self.usable(slot, end) {
                    lost = Some(j);
                    continue;
                }
                match self.read_slot(slot, m, strip) {
                    SlotRead::Ok => {}
                    SlotRead::Media(offset) => {
                        if !read_all {
                            read_all = true;
                            continue 'attempt;
                        }
                        if lost.is_some() {
                            return Err(Fault::Unwritable(first_lba));
                        }
                        lost = Some(j);
                        media = Some((j, offset));
                    }
                    SlotRead::Died => continue 'attempt,
                }
            }
            if let Some(j) = lost {
                // Only ever set with `read_all`: every other strip's old contents are here.
                let mut old = vec![0u8; len];
                match self.read_slot(ps, m, &mut old) {
                    SlotRead::Ok => {}
                    SlotRead::Media(_) => return Err(Fault::Unwritable(first_lba)),
                    SlotRead::Died => continue 'attempt,
                }
                for (i, s) in strips.iter().enumerate() {
                    if i != j {
                        xor_into(&mut old, s);
                    }
                }
                strips[j] = old;
            }
            for (seg, data) in segs {
                let at = (seg.offset - lo) as usize * bs;
                strips[seg.index][at..at + data.len()].copy_from_slice(data);
            }
            let mut parity = vec![0u8; len];
            for s in &strips {
                xor_into(&mut parity, s);
            }
            for (seg, data) in segs {
                if media.is_some_and(|(j, _)| j == seg.index) {
                    continue;
                }
                let slot = layout.data_slot(row, seg.index);
                if self.usable(slot, end) {
                    self.write_slot(slot, layout.member_lba(seg), data);
                }
            }
            if let Some((j, offset)) = media {
                // The whole span of the unreadable strip, rewritten: its bad sectors are gone.
                let slot = layout.data_slot(row, j);
                self.correct(slot, m, &strips[j], offset);
            }
            self.write_slot(ps, m, &parity);
            break 'attempt;
        }
        if (0..n).filter(|&s| !self.usable(s, end)).count() > 1 {
            return Err(Fault::Offline);
        }
        Ok(())
    }

    // ---- rebuild ----------------------------------------------------------------------------

    /// Rebuild `row` of `slot` from the other members: a copy (RAID 1, 10) or the XOR of the
    /// rest of the row (RAID 5 — data or parity alike). Blocks no source can give are marked
    /// unreadable on the target (a puncture) and the rebuild goes on.
    pub fn rebuild_row(&mut self, slot: usize, row: u64) -> Result<(), RebuildFault> {
        let layout = self.vol.layout;
        let m = layout.row_start(row);
        let blocks = layout.strip_blocks;
        let bs = self.bs();
        let bytes = blocks * bs;
        loop {
            let sources: Vec<usize> =
                layout.group(slot).filter(|&s| s != slot && self.usable(s, m + blocks)).collect();
            let need_all = layout.level == Level::Raid5;
            let group_size = layout.group(slot).len() - 1;
            if sources.is_empty() || (need_all && sources.len() < group_size) {
                return Err(RebuildFault::SourcesLost);
            }
            // Holes everywhere that matters: the target must read zeros there too. Nothing is
            // read or written, but the drives involved are still asked whether they answer, as
            // the real reads and writes would.
            let authoritative = if need_all { &sources[..] } else { &sources[..1] };
            if authoritative.iter().all(|&s| !self.drive(s).has_data(m * bs, bytes)) {
                if let Some(&dead) = authoritative.iter().find(|&&s| !self.drive(s).responds()) {
                    self.died(dead);
                    continue;
                }
                if self.drive(slot).zero(m * bs, bytes).is_err() {
                    self.died(slot);
                    return Err(RebuildFault::TargetDied);
                }
                return Ok(());
            }
            let mut buf = vec![0u8; bytes as usize];
            match self.reconstruct(&sources, m, &mut buf) {
                Ok(()) => {}
                Err(Trouble::Retry) => continue,
                Err(Trouble::Offline) => return Err(RebuildFault::SourcesLost),
                Err(Trouble::Media) => {
                    return self.rebuild_blocks(slot, row);
                }
            }
            if !self.write_slot(slot, m, &buf) {
                return Err(RebuildFault::TargetDied);
            }
            return Ok(());
        }
    }

    /// The contents of a slot at member blocks `m ..` rebuilt from `sources` (the rest of its
    /// group).
    fn reconstruct(&mut self, sources: &[usize], m: u64, out: &mut [u8]) -> Result<(), Trouble> {
        if self.vol.layout.level == Level::Raid5 {
            out.fill(0);
            let mut tmp = vec![0u8; out.len()];
            for &s in sources {
                match self.read_slot(s, m, &mut tmp) {
                    SlotRead::Ok => xor_into(out, &tmp),
                    SlotRead::Media(_) => return Err(Trouble::Media),
                    SlotRead::Died => return Err(Trouble::Retry),
                }
            }
            return Ok(());
        }
        for &s in sources {
            match self.read_slot(s, m, out) {
                SlotRead::Ok => return Ok(()),
                SlotRead::Media(_) => {}
                SlotRead::Died => return Err(Trouble::Retry),
            }
        }
        Err(Trouble::Media)
    }

    /// A row with unreadable sectors in its sources, block by block.
    fn rebuild_blocks(&mut self, slot: usize, row: u64) -> Result<(), RebuildFault> {
        let layout = self.vol.layout;
        let bs = self.bs();
        let mut buf = vec![0u8; bs as usize];
        for i in 0..layout.strip_blocks {
            let m = layout.row_start(row) + i;
            loop {
                let sources: Vec<usize> =
                    layout.group(slot).filter(|&s| s != slot && self.usable(s, m + 1)).collect();
                let group_size = layout.group(slot).len() - 1;
                if sources.is_empty()
                    || (layout.level == Level::Raid5 && sources.len() < group_size)
                {
                    return Err(RebuildFault::SourcesLost);
                }
                match self.reconstruct(&sources, m, &mut buf) {
                    Ok(()) => {
                        if !self.write_slot(slot, m, &buf) {
                            return Err(RebuildFault::TargetDied);
                        }
                    }
                    Err(Trouble::Retry) => continue,
                    Err(Trouble::Offline) => return Err(RebuildFault::SourcesLost),
                    Err(Trouble::Media) => {
                        let offset = m * bs;
                        let drive = self.drive(slot);
                        for sector in 0..bs / SECTOR_BYTES {
                            drive.inject_media_error(offset + sector * SECTOR_BYTES);
                        }
                        let id = drive.id();
                        self.incidents.push(Incident::Punctured { drive: id, offset, bytes: bs });
                    }
                }
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_handles_odd_lengths() {
        let mut a: Vec<u8> = (0..21).collect();
        let b: Vec<u8> = (100..121).collect();
        let want: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
        xor_into(&mut a, &b);
        assert_eq!(a, want);
    }
}
