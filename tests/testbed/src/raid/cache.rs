//! A volume's write-back cache: dirty blocks the controller acknowledged but has not yet
//! written to the drives. Kept in 64 KiB lines with a dirty bit per block; reads see it; a
//! flush writes every dirty run through the RAID layer and empties it. It is volatile: a power
//! loss ([`super::Raid::power_loss`]) drops it.

use std::collections::BTreeMap;

/// Bytes per cache line.
pub const LINE_BYTES: u64 = 64 * 1024;

/// A flush writes at most this much per RAID write.
pub const MAX_RUN_BYTES: u64 = 1 << 20;

#[derive(Debug)]
struct Line {
    data: Box<[u8]>,
    /// One bit per block of the line.
    dirty: Vec<u64>,
    dirty_blocks: u64,
}

impl Line {
    fn is_dirty(&self, i: u64) -> bool {
        self.dirty[(i / 64) as usize] & (1 << (i % 64)) != 0
    }
}

/// A piece of a range: either all cached (dirty) blocks, or all blocks only on the drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub lba: u64,
    pub blocks: u64,
    pub cached: bool,
}

/// The dirty blocks of one volume.
#[derive(Debug)]
pub struct WriteCache {
    block_size: u64,
    line_blocks: u64,
    lines: BTreeMap<u64, Line>,
    dirty_blocks: u64,
}

impl WriteCache {
    pub fn new(block_size: u32) -> WriteCache {
        let block_size = u64::from(block_size);
        WriteCache {
            block_size,
            line_blocks: LINE_BYTES / block_size,
            lines: BTreeMap::new(),
            dirty_blocks: 0,
        }
    }

    pub fn dirty_bytes(&self) -> u64 {
        self.dirty_blocks * self.block_size
    }

    /// Memory held by the cache's lines.
    pub fn footprint_bytes(&self) -> u64 {
        self.lines.len() as u64 * LINE_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.dirty_blocks == 0
    }

    fn is_dirty(&self, lba: u64) -> bool {
        self.lines
            .get(&(lba / self.line_blocks))
            .is_some_and(|l| l.is_dirty(lba % self.line_blocks))
    }

    /// Keep `data` (whole blocks) as dirty from `lba` on.
    pub fn write(&mut self, lba: u64, data: &[u8]) {
        let bs = self.block_size as usize;
        for (i, block) in data.chunks_exact(bs).enumerate() {
            let at = lba + i as u64;
            let (key, slot) = (at / self.line_blocks, at % self.line_blocks);
            let line_blocks = self.line_blocks;
            let line = self.lines.entry(key).or_insert_with(|| Line {
                data: vec![0u8; LINE_BYTES as usize].into_boxed_slice(),
                dirty: vec![0; line_blocks.div_ceil(64) as usize],
                dirty_blocks: 0,
            });
            let s = slot as usize * bs;
            line.data[s..s + bs].copy_from_slice(block);
            if !line.is_dirty(slot) {
                line.dirty[(slot / 64) as usize] |= 1 << (slot % 64);
                line.dirty_blocks += 1;
                self.dirty_blocks += 1;
            }
        }
    }

    /// `lba .. lba + blocks` cut into runs of cached and uncached blocks.
    pub fn runs(&self, lba: u64, blocks: u64) -> Vec<Run> {
        if self.is_empty() {
            return vec![Run { lba, blocks, cached: false }];
        }
        let mut runs: Vec<Run> = Vec::new();
        for at in lba..lba + blocks {
            let cached = self.is_dirty(at);
            match runs.last_mut() {
                Some(r) if r.cached == cached => r.blocks += 1,
                _ => runs.push(Run { lba: at, blocks: 1, cached }),
            }
        }
        runs
    }

    /// Copy cached blocks `lba ..` into `out` (every block must be dirty).
    pub fn copy_out(&self, lba: u64, out: &mut [u8]) {
        let bs = self.block_size as usize;
        for (i, block) in out.chunks_exact_mut(bs).enumerate() {
            let at = lba + i as u64;
            let line = &self.lines[&(at / self.line_blocks)];
            let s = (at % self.line_blocks) as usize * bs;
            block.copy_from_slice(&line.data[s..s + bs]);
        }
    }

    /// The dirty blocks as maximal runs in LBA order, none longer than [`MAX_RUN_BYTES`].
    pub fn dirty_runs(&self) -> Vec<(u64, u64)> {
        let max_blocks = MAX_RUN_BYTES / self.block_size;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (&key, line) in &self.lines {
            for slot in 0..self.line_blocks {
                if !line.is_dirty(slot) {
                    continue;
                }
                let at = key * self.line_blocks + slot;
                match runs.last_mut() {
                    Some((start, n)) if *start + *n == at && *n < max_blocks => *n += 1,
                    _ => runs.push((at, 1)),
                }
            }
        }
        runs
    }

    /// Forget `lba .. lba + blocks` (written to the drives, or overwritten there).
    pub fn clean(&mut self, lba: u64, blocks: u64) {
        if self.is_empty() {
            return;
        }
        for at in lba..lba + blocks {
            let key = at / self.line_blocks;
            let slot = at % self.line_blocks;
            let Some(line) = self.lines.get_mut(&key) else { continue };
            if line.is_dirty(slot) {
                line.dirty[(slot / 64) as usize] &= !(1 << (slot % 64));
                line.dirty_blocks -= 1;
                self.dirty_blocks -= 1;
                if line.dirty_blocks == 0 {
                    self.lines.remove(&key);
                }
            }
        }
    }

    /// Drop everything (a power loss, or the volume was deleted).
    pub fn discard(&mut self) {
        self.lines.clear();
        self.dirty_blocks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_cached_and_uncached() {
        let mut c = WriteCache::new(512);
        assert_eq!(c.runs(0, 10), vec![Run { lba: 0, blocks: 10, cached: false }]);
        c.write(3, &[1u8; 1024]);
        c.write(200, &[2u8; 512]);
        assert_eq!(c.dirty_bytes(), 1536);
        assert_eq!(
            c.runs(0, 10),
            vec![
                Run { lba: 0, blocks: 3, cached: false },
                Run { lba: 3, blocks: 2, cached: true },
                Run { lba: 5, blocks: 5, cached: false },
            ]
        );
        let mut out = [0u8; 1024];
        c.copy_out(3, &mut out);
        assert_eq!(out, [1u8; 1024]);
        assert_eq!(c.dirty_runs(), vec![(3, 2), (200, 1)]);
    }

    #[test]
    fn runs_span_lines_and_cleaning_frees_lines() {
        let mut c = WriteCache::new(4096);
        // Lines hold 16 blocks of 4 KiB: blocks 14..18 straddle two lines.
        c.write(14, &[9u8; 4 * 4096]);
        assert_eq!(c.footprint_bytes(), 2 * LINE_BYTES);
        assert_eq!(c.dirty_runs(), vec![(14, 4)]);
        c.clean(14, 2);
        assert_eq!(c.footprint_bytes(), LINE_BYTES);
        c.clean(0, 100);
        assert!(c.is_empty());
        assert_eq!(c.footprint_bytes(), 0);
    }

    #[test]
    fn rewriting_a_dirty_block_counts_once() {
        let mut c = WriteCache::new(512);
        c.write(0, &[1u8; 512]);
        c.write(0, &[2u8; 512]);
        assert_eq!(c.dirty_bytes(), 512);
        let mut out = [0u8; 512];
        c.copy_out(0, &mut out);
        assert_eq!(out, [2u8; 512]);
        c.discard();
        assert!(c.is_empty());
    }

    #[test]
    fn dirty_runs_are_capped() {
        let mut c = WriteCache::new(512);
        c.write(0, &vec![1u8; (MAX_RUN_BYTES + 1024) as usize]);
        let runs = c.dirty_runs();
        assert_eq!(runs, vec![(0, MAX_RUN_BYTES / 512), (MAX_RUN_BYTES / 512, 2)]);
    }
}
