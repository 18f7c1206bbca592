//! SCSI target emulation (SCSI.md): CDB decoding ([`cdb`]), fixed-format sense ([`sense`]), the
//! SPC/SBC device ([`emulator`]) and the storage behind it ([`backend`]).

pub mod backend;
pub mod cdb;
pub mod emulator;
pub mod sense;

pub use backend::{BackendError, BlockBackend, FakeBlock, Ram};
pub use emulator::{Completion, Data, Emulator, Identity, Limits};
pub use sense::{Asc, FieldPointer, Sense, SenseKey};

#[cfg(test)]
mod tests;
