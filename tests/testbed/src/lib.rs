//! dkraid's test-bed: a simulated Mac running the real dext sources and core.
//!
//! - [`sched`]: the deterministic scheduler every simulated thread runs on.
//! - [`iig`]: the `.iig` translator (build script and `dkraid-sim lint`).
//! - [`world`]: the simulated Mac's state and call routing by `QUEUENAME`.
//! - [`kernel`]: IOSCSIParallelFamily's side and the DriverKit rules it enforces.
//! - [`runtime`]: the `dksim_*` functions behind the DriverKit shim.
//! - [`memory`]: buffers, IOVAs and the IOMMU.
//! - [`boot`]: booting a dext build and its report; [`variants`]: the broken builds.
//! - [`bundle`]: `Info.plist` and entitlements — `dkraid-sim lint`, and the kernel's matching
//!   of the personality against the simulated PCI device ([`pci`]) at boot.
//! - [`controller`]: the simulated PCI RAID controller (BAR0, firmware, MSI-X).
//! - [`timebase`]: mach ticks vs nanoseconds, and the SDK's timer clocks.
//! - [`verifier`], [`trace`], [`cli_output`]: findings, timeline, printing.
//! - [`raid`]: the simulated RAID controller's firmware RAID engine (drives, volumes, rebuilds).
//! - [`iscsi`]: `dkraid-sim iscsi`, the disks as iSCSI targets (RFC 7143).
//! - [`campaign`]: `dkraid-sim campaign`, many seeds of random arrays, workloads and faults.
//! - [`workload`]: `dkraid-sim io` (with `--verify`); [`faults`]: what it does to the
//!   controller mid-run (drive failures, resets, stalls, dropped and garbage replies, hot plug).
// FFI glue groups a C call with the pointer reads around it; one SAFETY comment covers the
// block (every unsafe block still has one).
#![allow(clippy::multiple_unsafe_ops_per_block)]

// The core's C ABI, linked for the dext builds to call (nothing in Rust names it).
extern crate dkraid;

pub mod boot;
pub mod bundle;
pub mod campaign;
pub mod cli_output;
pub mod controller;
pub mod databuf;
pub mod disk;
pub mod faults;
pub mod iig;
pub mod iscsi;
pub mod kernel;
pub mod locks;
pub mod memory;
pub mod passthrough;
pub mod pci;
pub mod raid;
pub mod runtime;
pub mod sched;
pub mod serve;
/// The socket protocol `dkraid-sim serve` speaks: raidctl's own module (std only), compiled
/// here from its source so the test-bed does not depend on the CLI crate.
#[path = "../../../tools/raidctl/src/sockwire.rs"]
pub mod sockwire;
pub mod tasks;
pub mod timebase;
pub mod trace;
pub mod userclient;
pub mod variants;
pub mod verifier;
pub mod workload;
pub mod world;
