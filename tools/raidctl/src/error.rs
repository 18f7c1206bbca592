//! Errors a person can act on, each with its own exit code (`docs/RAIDCTL.md`).

use std::fmt;

use dkraid_core::admin::status;
use dkraid_core::IOReturn;

/// The admin entitlement: destructive commands need it.
pub const ADMIN_ENTITLEMENT: &str = "org.dkraid.admin.configure";
/// The entitlement the system puts in a binary signed by a team (validated against its
/// provisioning profile): the driver requires its own team's.
pub const TEAM_ENTITLEMENT: &str = "com.apple.developer.team-identifier";
/// The team the test-bed's driver is built for (its default DEVELOPMENT_TEAM).
pub const DEFAULT_TEAM: &str = "DKRAIDTEAM";

/// What kind of failure, and so which exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 2: an invalid path, verb or argument.
    Usage,
    /// 3: no test-bed server or no driver.
    NoDriver,
    /// 4: the driver refused the client (the admin entitlement, or the connection itself).
    Permission,
    /// 5: the controller refused the command.
    Rejected,
    /// 6: busy or not ready: try again later.
    Busy,
    /// 7: a protocol or transport failure (a response that does not parse, a broken socket,
    /// a timeout).
    Protocol,
    /// 0, quietly: whoever read the output stopped reading (`raidctl … | head`), as with any
    /// Unix filter.
    OutputClosed,
}

impl ErrorKind {
    /// The process exit code.
    pub const fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage => 2,
            ErrorKind::NoDriver => 3,
            ErrorKind::Permission => 4,
            ErrorKind::Rejected => 5,
            ErrorKind::Busy => 6,
            ErrorKind::Protocol => 7,
            ErrorKind::OutputClosed => 0,
        }
    }
}

/// A failure: its kind, a message for a person, and the admin status it came from (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// The admin response status, when the controller answered with an error.
    pub status: Option<u32>,
    /// The kern_return, when a call failed.
    pub kern_return: Option<i32>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), status: None, kern_return: None }
    }
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, message)
    }
    pub fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }

    /// An error response from the controller: `status` is the admin status code.
    pub fn from_status(status_code: u32, command: u16) -> Error {
        let name = status::name(status_code).unwrap_or("unknown status");
        let cmd = dkraid_core::admin::command::name(command).unwrap_or("the command");
        let (kind, message) = match status_code {
            status::NOT_PERMITTED => (
                ErrorKind::Permission,
                format!(
                    "permission denied: {cmd} changes the configuration and needs the admin \
                     entitlement {ADMIN_ENTITLEMENT} in a binary signed by the driver's own team \
                     ({TEAM_ENTITLEMENT}) (NotPermitted)"
                ),
            ),
            status::BUSY => (
                ErrorKind::Busy,
                "the controller is busy (another management command or a reset); \
                 try again in a moment (Busy)"
                    .to_string(),
            ),
            status::NOT_READY => (
                ErrorKind::Busy,
                "the controller is not ready: the driver's bring-up stage has no controller \
                 to ask; try again once it runs stage full (NotReady)"
                    .to_string(),
            ),
            status::NOT_FOUND => {
                (ErrorKind::Rejected, format!("{cmd}: no such volume or drive (NotFound)"))
            }
            status::REJECTED => {
                (ErrorKind::Rejected, format!("the controller refused {cmd} (Rejected)"))
            }
            status::DEVICE_ERROR => (
                ErrorKind::Rejected,
                format!("{cmd} failed in the firmware or the driver (DeviceError)"),
            ),
            status::FIELD_OUT_OF_RANGE => (
                ErrorKind::Rejected,
                format!(
                    "the controller refused a field of {cmd} as out of range (FieldOutOfRange): \
                     volume IDs are 0..=127, drive IDs 0..=63, strip a power of two 4..=1024 \
                     KiB, block size 512 or 4096"
                ),
            ),
            status::DUPLICATE_DRIVE => {
                (ErrorKind::Rejected, format!("{cmd}: a drive is listed twice (DuplicateDrive)"))
            }
            status::DRIVE_COUNT_FOR_LEVEL => (
                ErrorKind::Rejected,
                format!(
                    "{cmd}: the drive count does not suit the RAID level (DriveCountForLevel): \
                     RAID 0 takes at least 1 drive, RAID 1 2, RAID 5 3, RAID 10 an even \
                     number from 4"
                ),
            ),
            _ => (
                ErrorKind::Protocol,
                format!(
                    "the driver could not read {cmd} from raidctl ({name}, status {status_code}); \
                     raidctl and the driver may be different versions"
                ),
            ),
        };
        Error { kind, message, status: Some(status_code), kern_return: None }
    }

    /// A call that failed with `kern_return`; `what` names the call.
    pub fn from_kern_return(kr: i32, what: &str) -> Error {
        let ior = IOReturn(kr);
        let named = match ior.name() {
            Some(n) => format!("{n} ({:#010x})", ior.bits()),
            None => format!("{:#010x}", ior.bits()),
        };
        let (kind, message) = match ior {
            IOReturn::kIOReturnNotPermitted | IOReturn::kIOReturnNotPrivileged => (
                ErrorKind::Permission,
                format!(
                    "permission denied: the driver refused {what}: {named}; the admin app needs \
                     the entitlement {ADMIN_ENTITLEMENT}"
                ),
            ),
            IOReturn::kIOReturnNoResources | IOReturn::kIOReturnBusy => (
                ErrorKind::Busy,
                format!("{what}: the driver is busy ({named}); try again in a moment"),
            ),
            IOReturn::kIOReturnNotReady => (
                ErrorKind::Busy,
                format!("{what}: the driver is not ready ({named}); try again once it has started"),
            ),
            IOReturn::kIOReturnNoDevice | IOReturn::kIOReturnNotAttached => (
                ErrorKind::NoDriver,
                format!("{what}: the controller is gone ({named}); is the dext loaded?"),
            ),
            _ => (ErrorKind::Protocol, format!("{what} failed: {named}")),
        };
        Error { kind, message, status: None, kern_return: Some(kr) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Results in raidctl.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let kinds = [
            ErrorKind::Usage,
            ErrorKind::NoDriver,
            ErrorKind::Permission,
            ErrorKind::Rejected,
            ErrorKind::Busy,
            ErrorKind::Protocol,
        ];
        let codes: Vec<i32> = kinds.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes, [2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn statuses_map_to_kinds() {
        let vc = dkraid_core::admin::command::VOLUME_CREATE;
        let cases = [
            (status::NOT_PERMITTED, ErrorKind::Permission),
            (status::BUSY, ErrorKind::Busy),
            (status::NOT_READY, ErrorKind::Busy),
            (status::NOT_FOUND, ErrorKind::Rejected),
            (status::REJECTED, ErrorKind::Rejected),
            (status::DEVICE_ERROR, ErrorKind::Rejected),
            (status::FIELD_OUT_OF_RANGE, ErrorKind::Rejected),
            (status::DUPLICATE_DRIVE, ErrorKind::Rejected),
            (status::DRIVE_COUNT_FOR_LEVEL, ErrorKind::Rejected),
            (status::BAD_MAGIC, ErrorKind::Protocol),
            (status::UNKNOWN_COMMAND, ErrorKind::Protocol),
            (status::BAD_RESPONSE, ErrorKind::Protocol),
            (999, ErrorKind::Protocol),
        ];
        for (s, kind) in cases {
            let e = Error::from_status(s, vc);
            assert_eq!(e.kind, kind, "status {s}: {e}");
            assert_eq!(e.status, Some(s));
        }
        let e = Error::from_status(status::NOT_PERMITTED, vc);
        assert!(e.message.contains(ADMIN_ENTITLEMENT), "{e}");
        assert!(e.message.contains("VOLUME_CREATE"), "{e}");
    }

    #[test]
    fn kern_returns_map_to_kinds() {
        let e = Error::from_kern_return(0xe00002e2_u32 as i32, "IOServiceOpen");
        assert_eq!(e.kind, ErrorKind::Permission);
        assert!(e.message.contains("kIOReturnNotPermitted (0xe00002e2)"), "{e}");
        assert_eq!(Error::from_kern_return(0xe00002c1_u32 as i32, "x").kind, ErrorKind::Permission);
        assert_eq!(Error::from_kern_return(0xe00002be_u32 as i32, "x").kind, ErrorKind::Busy);
        assert_eq!(Error::from_kern_return(0xe00002d8_u32 as i32, "x").kind, ErrorKind::Busy);
        assert_eq!(Error::from_kern_return(0xe00002c2_u32 as i32, "x").kind, ErrorKind::Protocol);
        assert_eq!(Error::from_kern_return(0xe00002f0_u32 as i32, "x").kind, ErrorKind::Protocol);
        assert!(Error::from_kern_return(0x1234, "x").message.contains("0x00001234"));
    }
}
