//! The simulated RAID controller's firmware RAID engine (`docs/RAID.md`): physical drives in
//! sparse memory or sparse files, RAID 0, 1, 5 and 10 volumes with a configurable strip,
//! degraded reads rebuilt from a mirror or from parity, rebuilds onto hot spares, a write-back
//! cache with flush, fault injection, an event log, and the management API the admin protocol
//! exposes. Deterministic and synchronous: no threads, no clock — the firmware's scheduler
//! advances rebuilds with [`Raid::rebuild_step`].
//!
//! - [`layout`]: where each block lives, per level (pure arithmetic).
//! - [`drive`]: drives, their states, backing stores and injected faults.
//! - [`volume`]: volumes and their I/O paths (degraded reads and writes, rebuild of a row).
//! - [`cache`]: the write-back cache.
//! - [`engine`]: [`Raid`], the management API, rebuilds and the I/O entry points.
//! - [`events`]: the numbered event log.
//! - [`backend`]: [`VolumeBackend`], a volume as the core's SCSI emulator's `BlockBackend`.
//! - [`spec`]: `--drives 6x2GiB --volume raid5:0-4 --spare 5`, and the default array.

pub mod backend;
pub mod cache;
pub mod drive;
pub mod engine;
pub mod error;
pub mod events;
pub mod layout;
pub mod spec;
pub mod volume;

#[cfg(test)]
mod tests;

pub use backend::VolumeBackend;
pub use drive::{DriveId, DriveState};
pub use engine::{
    Backing, ConsistencyReport, ControllerInfo, DriveInfo, Raid, RaidConfig, RebuildStatus,
    VolumeInfo, VolumeRequest,
};
pub use error::{ErrorClass, RaidError};
pub use events::{Event, EventKind, FailReason};
pub use layout::{Layout, Level};
pub use spec::{ArraySpec, SpecError};
pub use volume::{VolumeId, VolumeState};
