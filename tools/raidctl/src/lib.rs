//! `raidctl`, dkraid's RAID admin CLI (StorCLI vocabulary), as a library.
//!
//! - [`sockwire`]: the test-bed's socket protocol, which `dkraid-sim serve` speaks as well.
//! - [`transport`]: the [`transport::Transport`] trait (the user client's calls) and the
//!   socket transport; `iokit` (macOS only) is the real one.
//! - [`client`]: the admin round trip (SUBMIT → completion → FETCH → decode) and the commands.
//! - [`machmsg`]: IOKit's async completion message, parsed.
//! - [`cli`]: the StorCLI-style command line.
//! - [`render`]: tables and JSON.
//! - [`run`]: carrying out a command, and the diagnosis of a volume that cannot be created.
//! - [`error`]: errors with exit codes.

pub mod cli;
pub mod client;
pub mod error;
#[cfg(target_os = "macos")]
pub mod iokit;
pub mod machmsg;
pub mod render;
pub mod run;
pub mod sockwire;
pub mod transport;

pub use client::Client;
pub use error::{Error, ErrorKind, ADMIN_ENTITLEMENT};
