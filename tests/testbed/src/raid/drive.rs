//! Physical drives: a byte-addressed store (sparse memory or a sparse file), a StorCLI state,
//! and the faults a test can inject (a dead drive, unreadable sectors).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A drive's number on the controller (StorCLI's slot, `/c0/e252/sN`).
pub type DriveId = u32;

/// The unit of media errors: a 512-byte sector.
pub const SECTOR_BYTES: u64 = 512;

/// The unit of sparse allocation, in memory and in the written-chunk map of a file.
pub const CHUNK_BYTES: u64 = 64 * 1024;

/// A drive's state, in StorCLI's vocabulary (`docs/RAID.md`, "States").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum DriveState {
    /// A member of a volume, holding valid data.
    #[serde(rename = "Online")]
    Online,
    /// A member that failed (StorCLI `Offln`): every I/O to it errors.
    #[serde(rename = "Offline")]
    Offline,
    /// Not in any volume, usable.
    #[serde(rename = "Unconfigured Good")]
    UnconfiguredGood,
    /// Not in any volume, failed (a replaced member, a spare that died).
    #[serde(rename = "Unconfigured Bad")]
    UnconfiguredBad,
    /// A global hot spare, taken automatically when a member fails.
    #[serde(rename = "Hot Spare")]
    HotSpare,
    /// A member being rebuilt.
    #[serde(rename = "Rebuild")]
    Rebuild,
    /// Pulled from its slot.
    #[serde(rename = "Missing")]
    Missing,
}

impl DriveState {
    /// StorCLI's abbreviation (`Onln`, `UGood`, `GHS`, …).
    pub const fn abbreviation(self) -> &'static str {
        match self {
            DriveState::Online => "Onln",
            DriveState::Offline => "Offln",
            DriveState::UnconfiguredGood => "UGood",
            DriveState::UnconfiguredBad => "UBad",
            DriveState::HotSpare => "GHS",
            DriveState::Rebuild => "Rbld",
            DriveState::Missing => "Msng",
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            DriveState::Online => "Online",
            DriveState::Offline => "Offline",
            DriveState::UnconfiguredGood => "Unconfigured Good",
            DriveState::UnconfiguredBad => "Unconfigured Bad",
            DriveState::HotSpare => "Hot Spare",
            DriveState::Rebuild => "Rebuild",
            DriveState::Missing => "Missing",
        }
    }

    /// Whether the drive answers I/O at all.
    pub const fn responsive(self) -> bool {
        !matches!(self, DriveState::Offline | DriveState::UnconfiguredBad | DriveState::Missing)
    }
}

impl fmt::Display for DriveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a drive I/O failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveError {
    /// The drive does not answer: failed, pulled, or killed by fault injection.
    Dead,
    /// An unreadable sector; `offset` is its first byte.
    Media { offset: u64 },
    /// The backing file failed (the controller treats it as a dead drive).
    Io(String),
}

impl fmt::Display for DriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriveError::Dead => f.write_str("the drive does not respond"),
            DriveError::Media { offset } => write!(f, "unreadable sector at byte {offset}"),
            DriveError::Io(e) => write!(f, "backing file error: {e}"),
        }
    }
}

/// Where a drive's bytes are kept.
#[derive(Debug)]
enum Store {
    Memory(MemoryStore),
    File(FileStore),
}

/// The pieces of `offset .. offset + len` in each chunk: (chunk, offset in chunk, range in the
/// caller's buffer).
fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, std::ops::Range<usize>)> {
    let end = offset + len as u64;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let chunk = at / CHUNK_BYTES;
        let in_chunk = at % CHUNK_BYTES;
        let n = (CHUNK_BYTES - in_chunk).min(end - at);
        let start = (at - offset) as usize;
        at += n;
        Some((chunk, in_chunk as usize, start..start + n as usize))
    })
}

fn chunks_in(offset: u64, len: u64) -> std::ops::RangeInclusive<u64> {
    offset / CHUNK_BYTES..=(offset + len.max(1) - 1) / CHUNK_BYTES
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Sparse memory: 64 KiB chunks allocated on first non-zero write; a hole reads as zeros.
#[derive(Debug, Default)]
struct MemoryStore {
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl MemoryStore {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        for (chunk, at, range) in pieces(offset, buf.len()) {
            let out = &mut buf[range];
            match self.chunks.get(&chunk) {
                Some(c) => out.copy_from_slice(&c[at..at + out.len()]),
                None => out.fill(0),
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (chunk, at, range) in pieces(offset, data.len()) {
            let piece = &data[range];
            if !self.chunks.contains_key(&chunk) && all_zero(piece) {
                continue;
            }
            let c = self
                .chunks
                .entry(chunk)
                .or_insert_with(|| vec![0u8; CHUNK_BYTES as usize].into_boxed_slice());
            c[at..at + piece.len()].copy_from_slice(piece);
        }
    }

    fn zero(&mut self, offset: u64, len: u64) {
        let touched: Vec<u64> =
            self.chunks.range(chunks_in(offset, len)).map(|(&k, _)| k).collect();
        for chunk in touched {
            let start = (chunk * CHUNK_BYTES).max(offset);
            let end = ((chunk + 1) * CHUNK_BYTES).min(offset + len);
            if end - start == CHUNK_BYTES {
                self.chunks.remove(&chunk);
            } else if let Some(c) = self.chunks.get_mut(&chunk) {
                let at = (start - chunk * CHUNK_BYTES) as usize;
                c[at..at + (end - start) as usize].fill(0);
            }
        }
    }

    fn has_data(&self, offset: u64, len: u64) -> bool {
        self.chunks.range(chunks_in(offset, len)).next().is_some()
    }

    fn allocated_bytes(&self) -> u64 {
        self.chunks.len() as u64 * CHUNK_BYTES
    }
}

/// A sparse file of the drive's size, created empty; the chunks written so far are remembered
/// so holes are known without asking the file system.
#[derive(Debug)]
struct FileStore {
    file: File,
    path: PathBuf,
    written: BTreeSet<u64>,
}

impl FileStore {
    fn create(path: &Path, capacity: u64) -> io::Result<FileStore> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        file.set_len(capacity)?;
        Ok(FileStore { file, path: path.to_path_buf(), written: BTreeSet::new() })
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        for (chunk, _, range) in pieces(offset, data.len()) {
            let piece = &data[range.clone()];
            if !self.written.contains(&chunk) && all_zero(piece) {
                continue;
            }
            self.file.write_all_at(piece, offset + range.start as u64)?;
            self.written.insert(chunk);
        }
        Ok(())
    }

    fn zero(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let touched: Vec<u64> = self.written.range(chunks_in(offset, len)).copied().collect();
        for chunk in touched {
            let start = (chunk * CHUNK_BYTES).max(offset);
            let end = ((chunk + 1) * CHUNK_BYTES).min(offset + len);
            self.file.write_all_at(&vec![0u8; (end - start) as usize], start)?;
            if end - start == CHUNK_BYTES {
                self.written.remove(&chunk);
            }
        }
        Ok(())
    }

    fn has_data(&self, offset: u64, len: u64) -> bool {
        self.written.range(chunks_in(offset, len)).next().is_some()
    }

    fn allocated_bytes(&self) -> u64 {
        self.written.len() as u64 * CHUNK_BYTES
    }
}

/// Counters of the bytes a drive moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DriveStats {
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// One physical drive.
#[derive(Debug)]
pub struct Drive {
    id: DriveId,
    capacity: u64,
    state: DriveState,
    store: Store,
    /// Fault injection: the drive stopped answering; the controller finds out at the next I/O.
    dead: bool,
    /// Fault injection: unreadable sectors (a write over one reallocates it).
    media_errors: BTreeSet<u64>,
    stats: DriveStats,
}

impl Drive {
    /// A drive in sparse memory, Unconfigured Good.
    pub fn in_memory(id: DriveId, capacity: u64) -> Drive {
        Drive::with_store(id, capacity, Store::Memory(MemoryStore::default()))
    }

    /// A drive in a new sparse file `path` of `capacity` bytes (an existing file is emptied).
    pub fn in_file(id: DriveId, capacity: u64, path: &Path) -> io::Result<Drive> {
        Ok(Drive::with_store(id, capacity, Store::File(FileStore::create(path, capacity)?)))
    }

    fn with_store(id: DriveId, capacity: u64, store: Store) -> Drive {
        Drive {
            id,
            capacity,
            state: DriveState::UnconfiguredGood,
            store,
            dead: false,
            media_errors: BTreeSet::new(),
            stats: DriveStats::default(),
        }
    }

    pub fn id(&self) -> DriveId {
        self.id
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn state(&self) -> DriveState {
        self.state
    }

    pub(crate) fn set_state(&mut self, state: DriveState) {
        self.state = state;
    }

    /// The backing file, if the drive is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.store {
            Store::Memory(_) => None,
            Store::File(f) => Some(&f.path),
        }
    }

    /// Bytes of backing storage in use (whole chunks).
    pub fn allocated_bytes(&self) -> u64 {
        match &self.store {
            Store::Memory(m) => m.allocated_bytes(),
            Store::File(f) => f.allocated_bytes(),
        }
    }

    pub fn stats(&self) -> DriveStats {
        self.stats
    }

    /// Whether fault injection killed the drive.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Whether an I/O to it would get an answer.
    pub fn responds(&self) -> bool {
        !self.dead && self.state.responsive()
    }

    /// Fault injection: the drive stops answering (nothing changes until an I/O notices).
    pub(crate) fn kill(&mut self) {
        self.dead = true;
    }

    /// Undo fault injection (the drive was replaced by a good one in the same slot).
    pub(crate) fn repair(&mut self) {
        self.dead = false;
        self.media_errors.clear();
    }

    /// Fault injection: the sector holding byte `offset` becomes unreadable.
    pub fn inject_media_error(&mut self, offset: u64) {
        self.media_errors.insert(offset / SECTOR_BYTES);
    }

    pub fn media_errors(&self) -> usize {
        self.media_errors.len()
    }

    fn check(&self, offset: u64, len: usize) -> Result<(), DriveError> {
        if !self.responds() {
            return Err(DriveError::Dead);
        }
        if offset.checked_add(len as u64).is_none_or(|end| end > self.capacity) {
            return Err(DriveError::Io(format!(
                "{len} bytes at {offset} are beyond the drive's {} bytes",
                self.capacity
            )));
        }
        Ok(())
    }

    fn sectors(offset: u64, len: u64) -> std::ops::Range<u64> {
        offset / SECTOR_BYTES..(offset + len).div_ceil(SECTOR_BYTES)
    }

    /// Read `buf.len()` bytes at `offset`.
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DriveError> {
        self.check(offset, buf.len())?;
        if let Some(&bad) = self.media_errors.range(Drive::sectors(offset, buf.len() as u64)).next()
        {
            return Err(DriveError::Media { offset: bad * SECTOR_BYTES });
        }
        self.stats.reads += 1;
        self.stats.read_bytes += buf.len() as u64;
        match &self.store {
            Store::Memory(m) => {
                m.read(offset, buf);
                Ok(())
            }
            Store::File(f) => f.read(offset, buf).map_err(|e| DriveError::Io(e.to_string())),
        }
    }

    /// Write `data` at `offset`; the sectors written are readable again.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DriveError> {
        self.check(offset, data.len())?;
        let bad: Vec<u64> =
            self.media_errors.range(Drive::sectors(offset, data.len() as u64)).copied().collect();
        for s in bad {
            self.media_errors.remove(&s);
        }
        self.stats.writes += 1;
        self.stats.written_bytes += data.len() as u64;
        match &mut self.store {
            Store::Memory(m) => {
                m.write(offset, data);
                Ok(())
            }
            Store::File(f) => f.write(offset, data).map_err(|e| DriveError::Io(e.to_string())),
        }
    }

    /// Make `offset .. offset + len` read as zeros, releasing whole chunks.
    pub fn zero(&mut self, offset: u64, len: u64) -> Result<(), DriveError> {
        self.check(offset, len as usize)?;
        let bad: Vec<u64> = self.media_errors.range(Drive::sectors(offset, len)).copied().collect();
        for s in bad {
            self.media_errors.remove(&s);
        }
        match &mut self.store {
            Store::Memory(m) => {
                m.zero(offset, len);
                Ok(())
            }
            Store::File(f) => f.zero(offset, len).map_err(|e| DriveError::Io(e.to_string())),
        }
    }

    /// The bytes on the medium, whatever the drive's state or faults (a forensic read: no
    /// statistics, no errors beyond the backing file's own).
    pub fn peek(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match &self.store {
            Store::Memory(m) => {
                m.read(offset, buf);
                Ok(())
            }
            Store::File(f) => f.read(offset, buf),
        }
    }

    /// Whether anything was ever written in `offset .. offset + len` (false: it reads zeros).
    pub fn has_data(&self, offset: u64, len: u64) -> bool {
        match &self.store {
            Store::Memory(m) => m.has_data(offset, len),
            Store::File(f) => f.has_data(offset, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn unwritten_memory_reads_zeros_and_costs_nothing() {
        let mut d = Drive::in_memory(0, 2 << 30);
        let mut buf = vec![0xAAu8; 4096];
        d.read(1 << 30, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(d.allocated_bytes(), 0);
        // Zeros into a hole allocate nothing either.
        d.write(0, &[0u8; 8192]).unwrap();
        assert_eq!(d.allocated_bytes(), 0);
        assert!(!d.has_data(0, 2 << 30));
    }

    #[test]
    fn writes_across_a_chunk_boundary_round_trip() {
        let mut d = Drive::in_memory(0, 4 * MIB);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let at = CHUNK_BYTES - 3000;
        d.write(at, &data).unwrap();
        assert_eq!(d.allocated_bytes(), 2 * CHUNK_BYTES);
        let mut back = vec![0u8; data.len()];
        d.read(at, &mut back).unwrap();
        assert_eq!(back, data);
        assert!(d.has_data(CHUNK_BYTES, 1));
        assert!(!d.has_data(2 * CHUNK_BYTES, MIB));
        // Zeroing releases the chunk it covers and clears the rest.
        d.zero(0, CHUNK_BYTES + 100).unwrap();
        assert_eq!(d.allocated_bytes(), CHUNK_BYTES);
        d.read(at, &mut back).unwrap();
        assert!(back[..3100].iter().all(|&b| b == 0));
        assert_eq!(back[3100..], data[3100..]);
    }

    #[test]
    fn media_error_fails_reads_until_rewritten() {
        let mut d = Drive::in_memory(0, MIB);
        d.inject_media_error(5000);
        let mut buf = vec![0u8; 4096];
        d.read(0, &mut buf).unwrap();
        assert_eq!(d.read(4096, &mut buf), Err(DriveError::Media { offset: 4608 }));
        d.write(4608, &[7u8; 512]).unwrap();
        assert_eq!(d.media_errors(), 0);
        d.read(4096, &mut buf).unwrap();
        assert_eq!(buf[512..1024], [7u8; 512]);
    }

    #[test]
    fn dead_and_failed_drives_refuse_io() {
        let mut d = Drive::in_memory(0, MIB);
        d.kill();
        assert_eq!(d.read(0, &mut [0u8; 512]), Err(DriveError::Dead));
        assert_eq!(d.write(0, &[0u8; 512]), Err(DriveError::Dead));
        d.repair();
        d.set_state(DriveState::Offline);
        assert_eq!(d.read(0, &mut [0u8; 512]), Err(DriveError::Dead));
        d.set_state(DriveState::Online);
        assert!(matches!(d.read(MIB - 256, &mut [0u8; 512]), Err(DriveError::Io(_))));
    }

    #[test]
    fn sparse_file_backing() {
        let dir = std::env::temp_dir().join(format!("dkraid-drive-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d0.img");
        let mut d = Drive::in_file(0, 2 << 30, &path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 << 30);
        let data = vec![0x5Au8; 8192];
        d.write((1 << 30) + 512, &data).unwrap();
        let mut back = vec![0u8; 8192 + 1024];
        d.read(1 << 30, &mut back).unwrap();
        assert_eq!(back[..512], [0u8; 512]);
        assert_eq!(back[512..8704], data[..]);
        assert!(d.has_data(1 << 30, 1));
        assert_eq!(d.allocated_bytes(), CHUNK_BYTES);
        d.zero(0, 2 << 30).unwrap();
        assert!(!d.has_data(0, 2 << 30));
        d.read(1 << 30, &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 0));
        drop(d);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
