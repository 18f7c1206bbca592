//! The engine's errors: each names the drive or volume and says why.

use std::fmt;

use super::drive::{DriveId, DriveState};
use super::layout::Level;
use super::volume::VolumeId;

/// A byte count the way people write it: `64 KiB`, `2 GiB`, `3000 bytes`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

fn list(drives: &[DriveId]) -> String {
    match drives {
        [] => "none".into(),
        [one] => format!("drive {one}"),
        _ => {
            let names: Vec<String> = drives.iter().map(u32::to_string).collect();
            format!("drives {}", names.join(", "))
        }
    }
}

/// The broad kind of an error, for protocols that only carry a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// An argument is wrong in itself (a level, a drive list, a strip, a range).
    InvalidArgument,
    /// No such drive or volume.
    NotFound,
    /// The object's state forbids it now (in use, failed, offline).
    Busy,
    /// The I/O failed on the media.
    Media,
    /// The drive or its backing file failed.
    Device,
}

/// What went wrong, with the drive or volume concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaidError {
    NoSuchDrive {
        drive: DriveId,
    },
    NoSuchVolume {
        volume: VolumeId,
    },
    DriveInVolume {
        drive: DriveId,
        volume: VolumeId,
    },
    DriveIsHotSpare {
        drive: DriveId,
    },
    /// The drive is not in the state the operation needs.
    DriveNotAvailable {
        drive: DriveId,
        state: DriveState,
        need: &'static str,
    },
    DuplicateDrive {
        drive: DriveId,
    },
    TooFewDrives {
        level: Level,
        need: usize,
        got: usize,
    },
    OddDriveCount {
        got: usize,
    },
    BadDriveCapacity {
        drive: DriveId,
        capacity: u64,
    },
    StripNotPowerOfTwo {
        strip: u64,
    },
    StripOutOfRange {
        strip: u64,
        min: u64,
        max: u64,
    },
    BadBlockSize {
        block_size: u32,
    },
    DriveTooSmall {
        drive: DriveId,
        capacity: u64,
        need: u64,
    },
    /// A volume I/O or operation on a volume that lost too many members.
    VolumeOffline {
        volume: VolumeId,
        failed: Vec<DriveId>,
    },
    OutOfRange {
        volume: VolumeId,
        lba: u64,
        blocks: u64,
        capacity: u64,
    },
    Unaligned {
        volume: VolumeId,
        bytes: usize,
        block_size: u32,
    },
    /// No copy of this block could be read.
    ReadError {
        volume: VolumeId,
        lba: u64,
    },
    /// This block could not be written consistently (old data unreadable everywhere).
    WriteError {
        volume: VolumeId,
        lba: u64,
    },
    NotAFailedMember {
        drive: DriveId,
    },
    NothingToRebuild {
        volume: VolumeId,
    },
    NoRedundancy {
        volume: VolumeId,
        level: Level,
    },
    NoHotSpare {
        volume: VolumeId,
        need: u64,
    },
    /// A drive or its backing file failed outside volume I/O.
    DriveIo {
        drive: DriveId,
        reason: String,
    },
}

impl fmt::Display for RaidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaidError::NoSuchDrive { drive } => write!(f, "drive {drive} does not exist"),
            RaidError::NoSuchVolume { volume } => write!(f, "volume {volume} does not exist"),
            RaidError::DriveInVolume { drive, volume } => {
                write!(f, "drive {drive} is already in volume {volume}")
            }
            RaidError::DriveIsHotSpare { drive } => write!(f, "drive {drive} is a hot spare"),
            RaidError::DriveNotAvailable { drive, state, need } => {
                write!(f, "drive {drive} is {state}, not {need}")
            }
            RaidError::DuplicateDrive { drive } => write!(f, "drive {drive} is listed twice"),
            RaidError::TooFewDrives { level, need, got } => {
                write!(f, "{level} needs at least {need} drives, got {got}")
            }
            RaidError::OddDriveCount { got } => {
                write!(f, "RAID 10 needs an even number of drives, got {got}")
            }
            RaidError::BadDriveCapacity { drive, capacity } => write!(
                f,
                "drive {drive}: capacity {capacity} bytes is not a positive multiple of 512"
            ),
            RaidError::StripNotPowerOfTwo { strip } => {
                write!(f, "strip size {strip} is not a power of two")
            }
            RaidError::StripOutOfRange { strip, min, max } => write!(
                f,
                "strip size {} is outside {} ..= {}",
                human_bytes(*strip),
                human_bytes(*min),
                human_bytes(*max)
            ),
            RaidError::BadBlockSize { block_size } => {
                write!(f, "block size {block_size} is not 512 or 4096")
            }
            RaidError::DriveTooSmall { drive, capacity, need } => write!(
                f,
                "drive {drive} has {} but needs at least {}",
                human_bytes(*capacity),
                human_bytes(*need)
            ),
            RaidError::VolumeOffline { volume, failed } => {
                write!(f, "volume {volume} is offline (failed: {})", list(failed))
            }
            RaidError::OutOfRange { volume, lba, blocks, capacity } => write!(
                f,
                "volume {volume}: {blocks} blocks at LBA {lba} go past its {capacity} blocks"
            ),
            RaidError::Unaligned { volume, bytes, block_size } => write!(
                f,
                "volume {volume}: {bytes} bytes is not a whole number of {block_size}-byte blocks"
            ),
            RaidError::ReadError { volume, lba } => {
                write!(f, "volume {volume}: unrecoverable read error at LBA {lba}")
            }
            RaidError::WriteError { volume, lba } => {
                write!(f, "volume {volume}: write error at LBA {lba} (old data unreadable)")
            }
            RaidError::NotAFailedMember { drive } => {
                write!(f, "drive {drive} is not a failed member of any volume")
            }
            RaidError::NothingToRebuild { volume } => {
                write!(f, "volume {volume} has no failed member to rebuild")
            }
            RaidError::NoRedundancy { volume, level } => {
                write!(f, "volume {volume} is {level}: there is nothing to rebuild from")
            }
            RaidError::NoHotSpare { volume, need } => write!(
                f,
                "volume {volume} needs a hot spare of at least {} and there is none",
                human_bytes(*need)
            ),
            RaidError::DriveIo { drive, reason } => write!(f, "drive {drive}: {reason}"),
        }
    }
}

impl RaidError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RaidError::NoSuchDrive { .. } | RaidError::NoSuchVolume { .. } => ErrorClass::NotFound,
            RaidError::DuplicateDrive { .. }
            | RaidError::TooFewDrives { .. }
            | RaidError::OddDriveCount { .. }
            | RaidError::BadDriveCapacity { .. }
            | RaidError::StripNotPowerOfTwo { .. }
            | RaidError::StripOutOfRange { .. }
            | RaidError::BadBlockSize { .. }
            | RaidError::DriveTooSmall { .. }
            | RaidError::OutOfRange { .. }
            | RaidError::Unaligned { .. }
            | RaidError::NoRedundancy { .. } => ErrorClass::InvalidArgument,
            RaidError::DriveInVolume { .. }
            | RaidError::DriveIsHotSpare { .. }
            | RaidError::DriveNotAvailable { .. }
            | RaidError::VolumeOffline { .. }
            | RaidError::NotAFailedMember { .. }
            | RaidError::NothingToRebuild { .. }
            | RaidError::NoHotSpare { .. } => ErrorClass::Busy,
            RaidError::ReadError { .. } | RaidError::WriteError { .. } => ErrorClass::Media,
            RaidError::DriveIo { .. } => ErrorClass::Device,
        }
    }
}

impl std::error::Error for RaidError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(64 << 10), "64 KiB");
        assert_eq!(human_bytes(2 << 30), "2 GiB");
        assert_eq!(human_bytes(3000), "3000 bytes");
        assert_eq!(human_bytes(1536), "1536 bytes");
    }

    #[test]
    fn offline_lists_the_failed_drives() {
        let e = RaidError::VolumeOffline { volume: 0, failed: vec![1, 3] };
        assert_eq!(e.to_string(), "volume 0 is offline (failed: drives 1, 3)");
    }
}
