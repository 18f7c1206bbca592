//! dkraid-core: every decision of the dkraid DriverKit SCSI/RAID driver, as a `no_std`,
//! allocation-free library. The dext's C++ owns the DriverKit objects and calls in through
//! `dkraid-ffi`; the test-bed calls the same code against a simulated Mac.
//!
//! Where things are:
//! - [`ioreturn`]: `IOReturn` values by name.
//! - [`abi`]: the C ABI structs, generated from `include/dkraid.h`.
//! - [`platform`]: the HAL the core calls (DMA buffers, MMIO, time) and its fake for tests.
//! - [`limits`]: every size the driver works with.
//! - [`stage`]: bring-up stages.
//! - [`lifecycle`]: the controller call order the kernel drives, enforced.
//! - [`task_pool`]: task IDs and per-task DMA frames (`UserMapHBAData`), slot states.
//! - [`firmware`]: the RAID controller's wire format and the reply ring, validated.
//! - [`scsi`]: the SCSI target emulator (CDB decode, sense, SPC/SBC) and its backends.
//! - [`targets`]: pending target operations, one at a time, and the targets that exist.
//! - [`hardware`]: stages 2 and 3 — bring-up, the stage's own work, replies, timeouts, reset.
//! - [`controller`]: the core object that ties them together; what the FFI drives.
//! - [`admin`]: the admin protocol (the RAID admin app ↔ the driver's user client), validated.
#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod admin;
pub mod controller;
pub mod firmware;
pub mod hardware;
pub mod ioreturn;
pub mod lifecycle;
pub mod limits;
pub mod platform;
pub mod scsi;
pub mod stage;
pub mod targets;
pub mod task_pool;

pub use controller::{Controller, ControllerError};
pub use ioreturn::IOReturn;
pub use platform::Platform;
pub use stage::Stage;
