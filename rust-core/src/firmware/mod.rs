//! The firmware interface of the RAID controller: the wire format shared with the device
//! ([`wire`]) and the reply ring's consumer, which trusts nothing the device wrote ([`reply`]).

pub mod reply;
pub mod wire;

pub use reply::{ReplyError, ReplyRing};
