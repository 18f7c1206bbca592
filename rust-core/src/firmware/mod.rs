//! The firmware interface of the RAID controller: the wire format shared with the device
//! ([`wire`]), building requests in each task's DMA frame with ring back-pressure
//! ([`request`]), and the reply ring's consumer, which trusts nothing the device wrote
//! ([`reply`]), and the driver that runs them: bring-up, submission, interrupts, timeouts,
//! aborts and reset recovery ([`driver`]).

#[cfg(test)]
pub(crate) mod tests;

pub mod driver;
pub mod reply;
pub mod request;
pub mod wire;

pub use driver::{ControlDone, ControlKind, Facts, Firmware, FirmwareError, Step};
pub use reply::{Reply, ReplyError, ReplyRing};
pub use request::{RequestError, RequestRing};
