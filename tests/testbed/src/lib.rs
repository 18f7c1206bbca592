//! dkraid's test-bed: a simulated Mac running the real dext sources and core.
pub mod sched;
