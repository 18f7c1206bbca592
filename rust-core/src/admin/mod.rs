//! The admin protocol between the RAID admin app (`raidctl`) and the driver: a versioned
//! request/response format carried in a DriverKit user client's `ExternalMethod` structure
//! input and output (and, in the test-bed, over a Unix socket). `no_std`, no allocation:
//! requests are validated in place ([`decode_request`]) and responses written into the
//! caller's buffer ([`encode_response`], [`encode_list`]). `docs/ADMIN-PROTOCOL.md` is the
//! specification.
//!
//! - [`wire`]: headers, command numbers, status codes, payloads.
//! - [`decode`]: [`decode_request`] and every named [`AdminError`]; the app's
//!   [`decode_response`] and [`decode_list`].
//! - [`encode`]: responses, list responses truncated to fit, and requests.
//! - [`engine`]: where a request is carried out: slots, tickets, the firmware's management
//!   requests and their replies.
//! - [`stats`]: the I/O statistics `IO_STATS` reports.
//! - [`authorise`]: who may run the destructive commands (the entitlement and the team).

pub mod authorise;
pub mod decode;
pub mod encode;
pub mod engine;
pub mod stats;
pub mod wire;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;

pub use authorise::{authorise, Authorisation};
pub use decode::{
    decode_list, decode_request, decode_response, level_minimum_drives, AdminError, Body, Request,
    Response,
};
pub use encode::{encode_error, encode_list, encode_list_iter, encode_request, encode_response};
pub use engine::{AdminCallError, AdminEngine, ADMIN_SLOTS, MAX_RESPONSE};
pub use stats::IoStatsTable;
pub use wire::{command, is_destructive, status};
