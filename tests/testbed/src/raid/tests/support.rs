//! Test fixtures: a small array with a shadow copy of what the volume should hold, and a tiny
//! deterministic PRNG.

use crate::raid::{Level, Raid, RaidConfig, VolumeRequest};

/// The strip the fixtures use: 4 KiB (8 blocks of 512, or 1 of 4096).
pub const STRIP: u64 = 4096;

/// Each drive: 32 strips and a little more (the volume rounds the rest off).
pub const DRIVE: u64 = 32 * STRIP + 1024;

/// Every level with the drive counts worth telling apart.
pub const SHAPES: [(Level, usize); 8] = [
    (Level::Raid0, 3),
    (Level::Raid1, 2),
    (Level::Raid1, 3),
    (Level::Raid5, 3),
    (Level::Raid5, 4),
    (Level::Raid5, 5),
    (Level::Raid10, 4),
    (Level::Raid10, 6),
];

/// xorshift64*: deterministic, no dependencies.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0 | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 0 ..= n - 1.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let tag = self.next();
        (0..n as u64).map(|i| (tag.wrapping_add(i.wrapping_mul(0x9E37_79B9)) >> 24) as u8).collect()
    }
}

/// An array with volume 0 and the bytes it should hold.
#[derive(Debug)]
pub struct Tb {
    pub raid: Raid,
    pub shadow: Vec<u8>,
    pub block_size: usize,
    /// An Unconfigured Good drive left over for tests that add a spare later.
    pub extra: u32,
}

impl Tb {
    /// `n` members, then `spares` hot spares, then one extra Unconfigured Good drive.
    pub fn new(level: Level, n: usize, spares: usize, block_size: u32, write_back: bool) -> Tb {
        let raid = Raid::new(&RaidConfig::new(vec![DRIVE; n + spares + 1])).unwrap();
        let req = VolumeRequest::new(level, (0..n as u32).collect())
            .strip(STRIP)
            .block_size(block_size)
            .write_back(write_back);
        let mut t = Tb::with_raid(raid, req);
        for s in 0..spares {
            t.raid.set_hot_spare((n + s) as u32).unwrap();
        }
        t.extra = (n + spares) as u32;
        t
    }

    /// Volume 0 made from `req` on `raid`.
    pub fn with_raid(mut raid: Raid, req: VolumeRequest) -> Tb {
        let v = raid.create_volume(&req).unwrap();
        assert_eq!(v, 0);
        let info = raid.volume(0).unwrap();
        let extra = raid.drives().len() as u32 - 1;
        Tb {
            raid,
            shadow: vec![0; info.capacity_bytes as usize],
            block_size: info.block_size as usize,
            extra,
        }
    }

    pub fn capacity_blocks(&self) -> u64 {
        (self.shadow.len() / self.block_size) as u64
    }

    /// Write through the engine and into the shadow.
    pub fn write(&mut self, lba: u64, data: &[u8]) {
        self.raid.write(0, lba, data).unwrap();
        let at = lba as usize * self.block_size;
        self.shadow[at..at + data.len()].copy_from_slice(data);
    }

    /// A write at a random LBA, 1 block to about three strips long.
    pub fn random_write(&mut self, rng: &mut Rng) {
        let cap = self.capacity_blocks();
        let max = (3 * STRIP / self.block_size as u64 + 2).min(cap);
        let blocks = 1 + rng.below(max);
        let lba = rng.below(cap - blocks + 1);
        let data = rng.bytes(blocks as usize * self.block_size);
        self.write(lba, &data);
    }

    /// Write the whole volume with random data.
    pub fn fill(&mut self, rng: &mut Rng) {
        let data = rng.bytes(self.shadow.len());
        self.write(0, &data);
    }

    pub fn check_range(&mut self, lba: u64, blocks: u64, what: &str) {
        let mut buf = vec![0u8; blocks as usize * self.block_size];
        if let Err(e) = self.raid.read(0, lba, &mut buf) {
            panic!("{what}: read of {blocks} blocks at {lba}: {e}");
        }
        let at = lba as usize * self.block_size;
        if buf != self.shadow[at..at + buf.len()] {
            let first = buf.iter().zip(&self.shadow[at..]).position(|(a, b)| a != b).unwrap_or(0);
            panic!(
                "{what}: read of {blocks} blocks at {lba} differs from LBA {}",
                lba + (first / self.block_size) as u64
            );
        }
    }

    pub fn random_read_check(&mut self, rng: &mut Rng, what: &str) {
        let cap = self.capacity_blocks();
        let max = (4 * STRIP / self.block_size as u64 + 3).min(cap);
        let blocks = 1 + rng.below(max);
        let lba = rng.below(cap - blocks + 1);
        self.check_range(lba, blocks, what);
    }

    /// Read the whole volume, in one go and block by block, and compare.
    pub fn check_all(&mut self, what: &str) {
        self.check_range(0, self.capacity_blocks(), what);
        for lba in (0..self.capacity_blocks()).step_by(3) {
            self.check_range(lba, 1, what);
        }
    }
}

/// Parity and mirrors agree on every row the drives can tell.
pub fn assert_consistent(raid: &Raid, what: &str) {
    let r = raid.consistency_check(0).unwrap();
    assert!(r.inconsistent_rows.is_empty(), "{what}: inconsistent rows {:?}", r.inconsistent_rows);
}
