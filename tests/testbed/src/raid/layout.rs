//! Where a volume's blocks live on its member drives: pure arithmetic per RAID level.
//!
//! Everything here counts in the volume's blocks. A *strip* is `strip_blocks` consecutive
//! blocks on one member; a *row* is the strips at the same offset on every member (member block
//! `row * strip_blocks` onwards). The volume's address space is cut into strips laid across the
//! members row by row:
//!
//! - RAID 0: strip `k` is on slot `k % n`, row `k / n`.
//! - RAID 1: every slot holds every block at the same offset (an n-way mirror).
//! - RAID 10: slots `(0,1), (2,3), …` are mirror pairs; strip `k` is on pair `k % (n/2)`, row
//!   `k / (n/2)` (RAID 0 over RAID 1 pairs).
//! - RAID 5, left-symmetric (Linux md's default): row `r` holds its parity on slot
//!   `n - 1 - r % n`, and its `n - 1` data strips on the slots after the parity slot, wrapping
//!   around. With 5 drives (`docs/RAID.md` has the picture):
//!
//! ```text
//! row   slot0 slot1 slot2 slot3 slot4
//!  0      D0    D1    D2    D3    P
//!  1      D5    D6    D7    P     D4
//!  2      D10   D11   P     D8    D9
//!  3      D15   P     D12   D13   D14
//!  4      P     D16   D17   D18   D19
//! ```

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// A RAID level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Level {
    #[serde(rename = "RAID0")]
    Raid0,
    #[serde(rename = "RAID1")]
    Raid1,
    #[serde(rename = "RAID5")]
    Raid5,
    #[serde(rename = "RAID10")]
    Raid10,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Raid0, Level::Raid1, Level::Raid5, Level::Raid10];

    /// 0, 1, 5 or 10.
    pub const fn number(self) -> u32 {
        match self {
            Level::Raid0 => 0,
            Level::Raid1 => 1,
            Level::Raid5 => 5,
            Level::Raid10 => 10,
        }
    }

    /// The fewest member drives the level takes.
    pub const fn min_drives(self) -> usize {
        match self {
            Level::Raid0 => 1,
            Level::Raid1 => 2,
            Level::Raid5 => 3,
            Level::Raid10 => 4,
        }
    }

    /// Whether the level keeps a redundant copy of every block.
    pub const fn redundant(self) -> bool {
        !matches!(self, Level::Raid0)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RAID {}", self.number())
    }
}

/// A volume's geometry: the level, how many member slots, the strip and the blocks used on each
/// member (a whole number of strips).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub level: Level,
    pub slots: usize,
    pub strip_blocks: u64,
    pub member_blocks: u64,
}

/// A piece of a volume range that lies in one strip of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First volume block of the piece.
    pub lba: u64,
    pub blocks: u64,
    pub row: u64,
    /// Which data strip of the row (0 for RAID 1).
    pub index: usize,
    /// Offset of the piece inside its strip, in blocks.
    pub offset: u64,
}

impl Layout {
    /// `member_blocks` must be a whole number of strips; the slot count must suit the level
    /// (the engine checks both before building a layout).
    pub fn new(level: Level, slots: usize, strip_blocks: u64, member_blocks: u64) -> Layout {
        debug_assert!(strip_blocks > 0 && member_blocks % strip_blocks == 0);
        debug_assert!(slots >= level.min_drives());
        debug_assert!(level != Level::Raid10 || slots % 2 == 0);
        Layout { level, slots, strip_blocks, member_blocks }
    }

    /// Rows on each member.
    pub fn rows(&self) -> u64 {
        self.member_blocks / self.strip_blocks
    }

    /// Data strips in a row: n (RAID 0), 1 (RAID 1), n - 1 (RAID 5), n / 2 (RAID 10).
    pub fn data_strips(&self) -> usize {
        match self.level {
            Level::Raid0 => self.slots,
            Level::Raid1 => 1,
            Level::Raid5 => self.slots - 1,
            Level::Raid10 => self.slots / 2,
        }
    }

    /// The volume's size in blocks: data strips × member blocks.
    pub fn capacity_blocks(&self) -> u64 {
        self.data_strips() as u64 * self.member_blocks
    }

    /// The RAID 5 parity slot of a row (left-symmetric rotation).
    pub fn parity_slot(&self, row: u64) -> Option<usize> {
        match self.level {
            Level::Raid5 => {
                let n = self.slots as u64;
                Some((n - 1 - row % n) as usize)
            }
            _ => None,
        }
    }

    /// The slot holding data strip `index` of `row` (the first copy for the mirrored levels).
    pub fn data_slot(&self, row: u64, index: usize) -> usize {
        match self.level {
            Level::Raid0 => index,
            Level::Raid1 => 0,
            Level::Raid10 => 2 * index,
            Level::Raid5 => {
                let parity = self.parity_slot(row).unwrap_or(0);
                (parity + 1 + index) % self.slots
            }
        }
    }

    /// The slots that hold a copy of data strip `index` of `row`.
    pub fn copies(&self, row: u64, index: usize) -> Range<usize> {
        match self.level {
            Level::Raid1 => 0..self.slots,
            Level::Raid10 => 2 * index..2 * index + 2,
            Level::Raid0 | Level::Raid5 => {
                let slot = self.data_slot(row, index);
                slot..slot + 1
            }
        }
    }

    /// The slots whose contents rebuild `slot`, `slot` included: its mirror group (RAID 1: all;
    /// RAID 10: its pair) or the whole row (RAID 5). RAID 0 has nothing to rebuild from.
    pub fn group(&self, slot: usize) -> Range<usize> {
        match self.level {
            Level::Raid0 => slot..slot + 1,
            Level::Raid1 | Level::Raid5 => 0..self.slots,
            Level::Raid10 => slot / 2 * 2..slot / 2 * 2 + 2,
        }
    }

    /// The first block of `row` on a member.
    pub fn row_start(&self, row: u64) -> u64 {
        row * self.strip_blocks
    }

    /// The member block where a segment starts.
    pub fn member_lba(&self, segment: &Segment) -> u64 {
        self.row_start(segment.row) + segment.offset
    }

    /// Where volume block `lba` lives: the slot of its (first) copy and the member block.
    pub fn map(&self, lba: u64) -> (usize, u64) {
        let s = self.segment_at(lba, 1);
        (self.data_slot(s.row, s.index), self.member_lba(&s))
    }

    /// The segment starting at `lba`, at most `blocks` long, cut at the end of its strip.
    fn segment_at(&self, lba: u64, blocks: u64) -> Segment {
        let strip = lba / self.strip_blocks;
        let offset = lba % self.strip_blocks;
        let per_row = self.data_strips() as u64;
        Segment {
            lba,
            blocks: blocks.min(self.strip_blocks - offset),
            row: strip / per_row,
            index: (strip % per_row) as usize,
            offset,
        }
    }

    /// The range `lba .. lba + blocks` cut at strip boundaries, in order.
    pub fn segments(&self, lba: u64, blocks: u64) -> Segments {
        Segments { layout: *self, next: lba, end: lba + blocks }
    }
}

/// Iterator over a range's [`Segment`]s.
#[derive(Clone, Debug)]
pub struct Segments {
    layout: Layout,
    next: u64,
    end: u64,
}

impl Iterator for Segments {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        if self.next >= self.end {
            return None;
        }
        let s = self.layout.segment_at(self.next, self.end - self.next);
        self.next += s.blocks;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn layout(level: Level, slots: usize) -> Layout {
        // 4-block strips, 8 rows per member.
        Layout::new(level, slots, 4, 32)
    }

    #[test]
    fn capacity_per_level() {
        assert_eq!(layout(Level::Raid0, 3).capacity_blocks(), 3 * 32);
        assert_eq!(layout(Level::Raid1, 2).capacity_blocks(), 32);
        assert_eq!(layout(Level::Raid1, 3).capacity_blocks(), 32);
        assert_eq!(layout(Level::Raid5, 3).capacity_blocks(), 2 * 32);
        assert_eq!(layout(Level::Raid5, 5).capacity_blocks(), 4 * 32);
        assert_eq!(layout(Level::Raid10, 4).capacity_blocks(), 2 * 32);
        assert_eq!(layout(Level::Raid10, 6).capacity_blocks(), 3 * 32);
    }

    #[test]
    fn raid0_strips_go_round_the_slots() {
        let l = layout(Level::Raid0, 3);
        // Block 3 is the last of strip 0, block 4 the first of strip 1 (next slot).
        assert_eq!(l.map(0), (0, 0));
        assert_eq!(l.map(3), (0, 3));
        assert_eq!(l.map(4), (1, 0));
        assert_eq!(l.map(8), (2, 0));
        assert_eq!(l.map(11), (2, 3));
        // Strip 3 starts row 1 on slot 0.
        assert_eq!(l.map(12), (0, 4));
        assert_eq!(l.map(95), (2, 31));
    }

    #[test]
    fn raid1_is_the_identity_on_every_slot() {
        let l = layout(Level::Raid1, 3);
        for lba in 0..32 {
            let s = l.segments(lba, 1).next().unwrap();
            assert_eq!(l.member_lba(&s), lba);
            assert_eq!(l.copies(s.row, s.index), 0..3);
        }
    }

    #[test]
    fn raid10_stripes_over_pairs() {
        let l = layout(Level::Raid10, 6);
        assert_eq!(l.map(0), (0, 0));
        assert_eq!(l.map(4), (2, 0));
        assert_eq!(l.map(8), (4, 0));
        assert_eq!(l.map(12), (0, 4));
        let s = l.segments(9, 1).next().unwrap();
        assert_eq!(l.copies(s.row, s.index), 4..6);
        assert_eq!(l.group(5), 4..6);
        assert_eq!(l.group(2), 2..4);
    }

    /// The docs' picture for five drives, two full rotations.
    #[test]
    fn raid5_parity_rotates_left_symmetric() {
        let l = layout(Level::Raid5, 5);
        let picture: [[&str; 5]; 5] = [
            ["D0", "D1", "D2", "D3", "P"],
            ["D5", "D6", "D7", "P", "D4"],
            ["D10", "D11", "P", "D8", "D9"],
            ["D15", "P", "D12", "D13", "D14"],
            ["P", "D16", "D17", "D18", "D19"],
        ];
        for row in 0..8u64 {
            let mut drawn = vec![String::new(); 5];
            drawn[l.parity_slot(row).unwrap()] = "P".into();
            for index in 0..4 {
                let strip = row * 4 + index as u64;
                drawn[l.data_slot(row, index)] = format!("D{strip}");
            }
            if row < 5 {
                assert_eq!(drawn, picture[row as usize].map(String::from), "row {row}");
            }
            assert_eq!(l.parity_slot(row), l.parity_slot(row + 5));
        }
    }

    /// Every data block has its own place, never on its row's parity slot.
    #[test]
    fn raid5_mapping_is_a_bijection_that_avoids_parity() {
        for n in 3..=6 {
            let l = layout(Level::Raid5, n);
            let mut seen = BTreeSet::new();
            for lba in 0..l.capacity_blocks() {
                let (slot, member) = l.map(lba);
                let row = member / l.strip_blocks;
                assert_ne!(Some(slot), l.parity_slot(row), "n={n} lba={lba}");
                assert!(member < l.member_blocks);
                assert!(seen.insert((slot, member)), "n={n} lba={lba} mapped twice");
            }
            assert_eq!(seen.len() as u64, (n as u64 - 1) * l.member_blocks);
        }
    }

    #[test]
    fn raid5_strip_boundaries() {
        let l = layout(Level::Raid5, 3);
        // Row 0: parity on slot 2, D0 on slot 0, D1 on slot 1.
        assert_eq!(l.map(3), (0, 3));
        assert_eq!(l.map(4), (1, 0));
        assert_eq!(l.map(7), (1, 3));
        // Row 1: parity on slot 1, D2 on slot 2, D3 on slot 0.
        assert_eq!(l.map(8), (2, 4));
        assert_eq!(l.map(12), (0, 4));
        // Row 2: parity on slot 0, D4 on slot 1, D5 on slot 2.
        assert_eq!(l.map(16), (1, 8));
        assert_eq!(l.map(20), (2, 8));
        assert_eq!(l.parity_slot(3), Some(2));
    }

    #[test]
    fn segments_cut_at_strip_boundaries() {
        let l = layout(Level::Raid5, 4);
        let segs: Vec<_> = l.segments(2, 9).collect();
        assert_eq!(
            segs,
            vec![
                Segment { lba: 2, blocks: 2, row: 0, index: 0, offset: 2 },
                Segment { lba: 4, blocks: 4, row: 0, index: 1, offset: 0 },
                Segment { lba: 8, blocks: 3, row: 0, index: 2, offset: 0 },
            ]
        );
        let segs: Vec<_> = l.segments(11, 2).collect();
        assert_eq!(segs[1], Segment { lba: 12, blocks: 1, row: 1, index: 0, offset: 0 });
        assert_eq!(l.segments(5, 0).count(), 0);
    }

    #[test]
    fn group_and_copies() {
        let l = layout(Level::Raid5, 4);
        assert_eq!(l.group(1), 0..4);
        assert_eq!(l.copies(0, 0), 0..1);
        let l = layout(Level::Raid0, 2);
        assert_eq!(l.group(1), 1..2);
        assert_eq!(l.copies(0, 1), 1..2);
    }
}
