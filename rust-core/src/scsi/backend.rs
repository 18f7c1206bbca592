//! What a SCSI disk stores its blocks in: the [`BlockBackend`] trait, and the two backends the
//! driver ships — [`FakeBlock`] (bring-up stage 1) and [`Ram`] (tests and the simulated
//! firmware's drives).

/// A backend failure, reported as sense data by the emulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// Unrecovered read error at this LBA (MEDIUM ERROR 11/00, INFORMATION = LBA).
    ReadError { lba: u64 },
    /// Write error at this LBA (MEDIUM ERROR 0C/00).
    WriteError { lba: u64 },
    /// The device failed (HARDWARE ERROR 44/00).
    Internal,
}

/// Block storage behind an emulated disk. `lba` and lengths are in blocks; the emulator checks
/// every range against [`BlockBackend::capacity_blocks`] before calling.
pub trait BlockBackend {
    /// Bytes per logical block (512 or 4096 in practice).
    fn block_size(&self) -> u32;
    fn capacity_blocks(&self) -> u64;
    /// Read `data.len() / block_size` blocks starting at `lba` into `data`.
    fn read(&mut self, lba: u64, data: &mut [u8]) -> Result<(), BackendError>;
    /// Write `data.len() / block_size` blocks starting at `lba`.
    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BackendError>;
    /// Make every acknowledged write durable.
    fn flush(&mut self) -> Result<(), BackendError>;
    /// A forced-unit-access write: `data` is durable when this returns. The default writes and
    /// then flushes everything; a backend with a write-back cache can write these blocks
    /// through instead (superseding cached copies of them) and leave the rest cached.
    fn write_fua(&mut self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        self.write(lba, data)?;
        self.flush()
    }
    /// Thin provisioning: `Some` if UNMAP / WRITE SAME(UNMAP) are supported.
    fn unmap(&mut self, _lba: u64, _blocks: u64) -> Option<Result<(), BackendError>> {
        None
    }
    fn supports_unmap(&self) -> bool {
        false
    }
}

/// Bring-up stage 1's disk: every read fails MEDIUM ERROR 11/00 with INFORMATION = the first
/// LBA (final on macOS and Linux, so the partition scheme fails and the node is left alone);
/// every write succeeds and is discarded; SYNCHRONIZE CACHE succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeBlock {
    block_size: u32,
    capacity_blocks: u64,
}

impl FakeBlock {
    pub const fn new(block_size: u32, capacity_blocks: u64) -> FakeBlock {
        FakeBlock { block_size, capacity_blocks }
    }
}

impl BlockBackend for FakeBlock {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn capacity_blocks(&self) -> u64 {
        self.capacity_blocks
    }

    fn read(&mut self, lba: u64, _data: &mut [u8]) -> Result<(), BackendError> {
        Err(BackendError::ReadError { lba })
    }

    fn write(&mut self, _lba: u64, _data: &[u8]) -> Result<(), BackendError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// A disk in memory the caller provides (no allocation): `storage.len()` must be a multiple of
/// the block size. Supports UNMAP (unmapped blocks read as zeros).
#[derive(Debug)]
pub struct Ram<'a> {
    storage: &'a mut [u8],
    block_size: u32,
}

impl<'a> Ram<'a> {
    /// `None` if the block size is not a power of two in 512..=65536 or the storage is not a
    /// whole number of blocks.
    pub fn new(storage: &'a mut [u8], block_size: u32) -> Option<Ram<'a>> {
        let bs = block_size as usize;
        if !block_size.is_power_of_two()
            || !(512..=65536).contains(&block_size)
            || storage.len() % bs != 0
        {
            return None;
        }
        Some(Ram { storage, block_size })
    }

    fn range(&self, lba: u64, len: usize) -> Result<core::ops::Range<usize>, BackendError> {
        let start = usize::try_from(lba)
            .ok()
            .and_then(|l| l.checked_mul(self.block_size as usize))
            .ok_or(BackendError::Internal)?;
        let end = start.checked_add(len).ok_or(BackendError::Internal)?;
        if end > self.storage.len() {
            return Err(BackendError::Internal);
        }
        Ok(start..end)
    }
}

impl BlockBackend for Ram<'_> {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn capacity_blocks(&self) -> u64 {
        (self.storage.len() / self.block_size as usize) as u64
    }

    fn read(&mut self, lba: u64, data: &mut [u8]) -> Result<(), BackendError> {
        let r = self.range(lba, data.len())?;
        data.copy_from_slice(&self.storage[r]);
        Ok(())
    }

    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        let r = self.range(lba, data.len())?;
        self.storage[r].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }

    fn unmap(&mut self, lba: u64, blocks: u64) -> Option<Result<(), BackendError>> {
        let len =
            usize::try_from(blocks).ok().and_then(|b| b.checked_mul(self.block_size as usize));
        Some(match len.map(|len| self.range(lba, len)) {
            Some(Ok(r)) => {
                self.storage[r].fill(0);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(BackendError::Internal),
        })
    }

    fn supports_unmap(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_block_fails_reads_and_discards_writes() {
        let mut f = FakeBlock::new(512, 1 << 31);
        let mut buf = [0u8; 512];
        assert_eq!(f.read(77, &mut buf), Err(BackendError::ReadError { lba: 77 }));
        assert_eq!(f.write(77, &buf), Ok(()));
        assert_eq!(f.flush(), Ok(()));
        assert!(!f.supports_unmap());
    }

    #[test]
    fn ram_stores_and_unmaps() {
        let mut storage = [0u8; 4096];
        let mut r = Ram::new(&mut storage, 512).unwrap();
        assert_eq!(r.capacity_blocks(), 8);
        r.write(2, &[0xAB; 1024]).unwrap();
        let mut out = [0u8; 512];
        r.read(3, &mut out).unwrap();
        assert_eq!(out, [0xAB; 512]);
        r.unmap(3, 1).unwrap().unwrap();
        r.read(3, &mut out).unwrap();
        assert_eq!(out, [0; 512]);
        assert_eq!(r.read(8, &mut out), Err(BackendError::Internal), "past the end");
        assert!(Ram::new(&mut [0u8; 1000], 512).is_none());
        assert!(Ram::new(&mut [0u8; 1024], 500).is_none());
    }
}
