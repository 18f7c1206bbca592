//! The firmware interface of the RAID controller: the wire format shared with the device
//! ([`wire`]), building requests in each task's DMA frame with ring back-pressure
//! ([`request`]), and the reply ring's consumer, which trusts nothing the device wrote
//! ([`reply`]).

pub mod reply;
pub mod request;
pub mod wire;

pub use reply::{Reply, ReplyError, ReplyRing};
pub use request::{RequestError, RequestRing};
