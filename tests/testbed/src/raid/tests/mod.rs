//! The engine's behaviour end to end: round trips per level, degraded I/O, rebuilds, events,
//! the cache's guarantee, management errors, file backing, the SCSI emulator on a volume, and
//! property tests against a shadow model.

mod model;
mod scenarios;
mod support;
