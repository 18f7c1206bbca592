//! A volume as the core's SCSI emulator sees it: [`VolumeBackend`] implements
//! `dkraid_core::scsi::BlockBackend` over a shared engine. Each call borrows the engine for
//! its own duration only, so any number of volumes (and the management API) share it on one
//! OS thread.

use std::cell::RefCell;
use std::rc::Rc;

use dkraid_core::scsi::{BackendError, BlockBackend};

use super::engine::Raid;
use super::error::RaidError;
use super::volume::VolumeId;

/// One volume of a shared [`Raid`], as block storage.
#[derive(Debug)]
pub struct VolumeBackend {
    raid: Rc<RefCell<Raid>>,
    volume: VolumeId,
    block_size: u32,
    capacity_blocks: u64,
    last_error: Option<RaidError>,
}

impl VolumeBackend {
    pub fn new(raid: Rc<RefCell<Raid>>, volume: VolumeId) -> Result<VolumeBackend, RaidError> {
        let info = raid.borrow().volume(volume)?;
        Ok(VolumeBackend {
            raid,
            volume,
            block_size: info.block_size,
            capacity_blocks: info.capacity_blocks,
            last_error: None,
        })
    }

    pub fn volume(&self) -> VolumeId {
        self.volume
    }

    /// The engine's own account of the last failure (the SCSI status only says which kind).
    pub fn take_last_error(&mut self) -> Option<RaidError> {
        self.last_error.take()
    }

    fn map(&mut self, r: Result<(), RaidError>) -> Result<(), BackendError> {
        r.map_err(|e| {
            let mapped = match e {
                RaidError::ReadError { lba, .. } => BackendError::ReadError { lba },
                RaidError::WriteError { lba, .. } => BackendError::WriteError { lba },
                _ => BackendError::Internal,
            };
            self.last_error = Some(e);
            mapped
        })
    }
}

/// Failures map to MEDIUM ERROR with the LBA for unreadable / unwritable blocks, and to
/// HARDWARE ERROR (`Internal`) for an offline or deleted volume.
impl BlockBackend for VolumeBackend {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn capacity_blocks(&self) -> u64 {
        self.capacity_blocks
    }

    fn read(&mut self, lba: u64, data: &mut [u8]) -> Result<(), BackendError> {
        let r = self.raid.borrow_mut().read(self.volume, lba, data);
        self.map(r)
    }

    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        let r = self.raid.borrow_mut().write(self.volume, lba, data);
        self.map(r)
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        let r = self.raid.borrow_mut().flush(self.volume);
        self.map(r)
    }

    /// FUA: through to the drives, the rest of the cache left as it is.
    fn write_fua(&mut self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        let r = self.raid.borrow_mut().write_through(self.volume, lba, data);
        self.map(r)
    }
}
