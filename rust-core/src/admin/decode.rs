//! Decoding, strictly: a request is taken apart without trusting any size or field the app
//! sent, and every way it can be wrong has a name ([`AdminError`]) and a status code. A request
//! that decodes re-encodes ([`super::encode_request`]) to exactly the same bytes: reserved
//! fields, unused drive slots and trailing bytes are all refused.

use core::fmt;

use zerocopy::FromBytes;

use super::wire::{
    command, status, DriveRef, EventsSince, HotspareSet, ListHeader, RebuildStart, RequestHeader,
    ResponseHeader, VolumeCreate, VolumeRef, ALL_VOLUMES, GLOBAL_SPARE, MAGIC, MAX_DRIVE_ID,
    MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES, MAX_STRIP_KIB, MAX_VOLUME_DRIVES, MAX_VOLUME_ID,
    MIN_STRIP_KIB, REQUEST_HEADER_BYTES, RESPONSE_HEADER_BYTES, VERSION,
};

/// Everything that can be wrong with a request (or, on the app's side, a response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminError {
    /// Fewer bytes than the header.
    ShortRequest {
        got: usize,
        needed: usize,
    },
    /// More bytes than any request may have ([`MAX_REQUEST_BYTES`]).
    RequestTooLarge {
        got: usize,
        max: usize,
    },
    BadMagic {
        got: u32,
    },
    UnsupportedVersion {
        got: u16,
    },
    UnknownCommand {
        got: u16,
    },
    /// The header's `payload_bytes` is not the number of bytes after the header.
    PayloadSizeMismatch {
        declared: u32,
        present: usize,
    },
    /// The payload is not the size the command takes.
    WrongPayloadSize {
        command: u16,
        expected: usize,
        got: usize,
    },
    /// A field outside what the protocol allows (reserved fields must be zero).
    FieldOutOfRange {
        field: &'static str,
        value: u64,
    },
    /// A drive listed twice in VOLUME_CREATE.
    DuplicateDrive {
        drive: u16,
    },
    /// VOLUME_CREATE with fewer drives than the level takes, or an odd count for RAID 10.
    DriveCountForLevel {
        level: u8,
        count: u8,
        minimum: u8,
    },
    /// The output buffer cannot hold the response.
    OutputTooSmall {
        needed: usize,
        available: usize,
    },
    /// A destructive command from a client without the admin entitlement.
    NotPermitted {
        command: u16,
    },
    /// A response that does not parse (the app's side): what was wrong.
    BadResponse {
        what: &'static str,
    },
}

impl AdminError {
    /// The response status code for this error.
    pub const fn status(&self) -> u32 {
        match self {
            AdminError::ShortRequest { .. } => status::SHORT_REQUEST,
            AdminError::RequestTooLarge { .. } => status::REQUEST_TOO_LARGE,
            AdminError::BadMagic { .. } => status::BAD_MAGIC,
            AdminError::UnsupportedVersion { .. } => status::UNSUPPORTED_VERSION,
            AdminError::UnknownCommand { .. } => status::UNKNOWN_COMMAND,
            AdminError::PayloadSizeMismatch { .. } => status::PAYLOAD_SIZE_MISMATCH,
            AdminError::WrongPayloadSize { .. } => status::WRONG_PAYLOAD_SIZE,
            AdminError::FieldOutOfRange { .. } => status::FIELD_OUT_OF_RANGE,
            AdminError::DuplicateDrive { .. } => status::DUPLICATE_DRIVE,
            AdminError::DriveCountForLevel { .. } => status::DRIVE_COUNT_FOR_LEVEL,
            AdminError::OutputTooSmall { .. } => status::OUTPUT_TOO_SMALL,
            AdminError::NotPermitted { .. } => status::NOT_PERMITTED,
            AdminError::BadResponse { .. } => status::BAD_RESPONSE,
        }
    }

    /// The error's name (the same as its status's name).
    pub const fn name(&self) -> &'static str {
        match status::name(self.status()) {
            Some(name) => name,
            None => "Unknown",
        }
    }
}

fn command_name(command: u16) -> &'static str {
    command::name(command).unwrap_or("unknown")
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match *self {
            AdminError::ShortRequest { got, needed } => {
                write!(f, "{got} bytes, the header alone takes {needed}")
            }
            AdminError::RequestTooLarge { got, max } => {
                write!(f, "{got} bytes, a request takes at most {max}")
            }
            AdminError::BadMagic { got } => {
                write!(f, "got {got:#010X}, expected {MAGIC:#010X}")
            }
            AdminError::UnsupportedVersion { got } => {
                write!(f, "got version {got}, this driver speaks version {VERSION}")
            }
            AdminError::UnknownCommand { got } => write!(f, "command {got:#06X}"),
            AdminError::PayloadSizeMismatch { declared, present } => {
                write!(f, "the header declares {declared} payload bytes, {present} follow it")
            }
            AdminError::WrongPayloadSize { command, expected, got } => {
                write!(f, "{} takes a {expected}-byte payload, got {got}", command_name(command))
            }
            AdminError::FieldOutOfRange { field, value } => write!(f, "{field} = {value}"),
            AdminError::DuplicateDrive { drive } => write!(f, "drive {drive} is listed twice"),
            AdminError::DriveCountForLevel { level, count, minimum } => {
                if level == 10 && count >= minimum {
                    write!(f, "RAID 10 takes an even number of drives, got {count}")
                } else {
                    write!(f, "RAID {level} takes at least {minimum} drives, got {count}")
                }
            }
            AdminError::OutputTooSmall { needed, available } => {
                write!(f, "the response takes {needed} bytes, the buffer holds {available}")
            }
            AdminError::NotPermitted { command } => write!(
                f,
                "{} changes the configuration and the client lacks the admin entitlement",
                command_name(command)
            ),
            AdminError::BadResponse { what } => f.write_str(what),
        }
    }
}

/// A decoded, validated request. The payload references borrow the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The app's sequence number, to echo in the response.
    pub sequence: u32,
    pub body: Body<'a>,
}

/// A request's command and its validated payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    ControllerShow,
    VolumeList,
    VolumeShow(&'a VolumeRef),
    DriveList,
    DriveShow(&'a DriveRef),
    EventsSince(&'a EventsSince),
    /// `volume` may be [`ALL_VOLUMES`].
    IoStats(&'a VolumeRef),
    StageGet,
    VolumeCreate(&'a VolumeCreate),
    VolumeDelete(&'a VolumeRef),
    HotspareSet(&'a HotspareSet),
    HotspareClear(&'a DriveRef),
    RebuildStart(&'a RebuildStart),
}

impl Body<'_> {
    /// The command number.
    pub const fn command(&self) -> u16 {
        match self {
            Body::ControllerShow => command::CONTROLLER_SHOW,
            Body::VolumeList => command::VOLUME_LIST,
            Body::VolumeShow(_) => command::VOLUME_SHOW,
            Body::DriveList => command::DRIVE_LIST,
            Body::DriveShow(_) => command::DRIVE_SHOW,
            Body::EventsSince(_) => command::EVENTS_SINCE,
            Body::IoStats(_) => command::IO_STATS,
            Body::StageGet => command::STAGE_GET,
            Body::VolumeCreate(_) => command::VOLUME_CREATE,
            Body::VolumeDelete(_) => command::VOLUME_DELETE,
            Body::HotspareSet(_) => command::HOTSPARE_SET,
            Body::HotspareClear(_) => command::HOTSPARE_CLEAR,
            Body::RebuildStart(_) => command::REBUILD_START,
        }
    }

    /// The payload's bytes.
    pub fn payload(&self) -> &[u8] {
        use zerocopy::IntoBytes;
        match self {
            Body::ControllerShow | Body::VolumeList | Body::DriveList | Body::StageGet => &[],
            Body::VolumeShow(p) | Body::IoStats(p) | Body::VolumeDelete(p) => p.as_bytes(),
            Body::DriveShow(p) | Body::HotspareClear(p) => p.as_bytes(),
            Body::EventsSince(p) => p.as_bytes(),
            Body::VolumeCreate(p) => p.as_bytes(),
            Body::HotspareSet(p) => p.as_bytes(),
            Body::RebuildStart(p) => p.as_bytes(),
        }
    }

    /// Whether the command changes the configuration.
    pub const fn is_destructive(&self) -> bool {
        super::wire::is_destructive(self.command())
    }
}

fn out_of_range(field: &'static str, value: impl Into<u64>) -> AdminError {
    AdminError::FieldOutOfRange { field, value: value.into() }
}

fn check_zero(field: &'static str, value: u16) -> Result<(), AdminError> {
    if value == 0 {
        Ok(())
    } else {
        Err(out_of_range(field, value))
    }
}

fn check_volume(volume: u16) -> Result<(), AdminError> {
    if volume <= MAX_VOLUME_ID {
        Ok(())
    } else {
        Err(out_of_range("volume", volume))
    }
}

fn check_drive(field: &'static str, drive: u16) -> Result<(), AdminError> {
    if drive <= MAX_DRIVE_ID {
        Ok(())
    } else {
        Err(out_of_range(field, drive))
    }
}

/// The fewest drives a RAID level takes, or `None` for a level that does not exist.
pub const fn level_minimum_drives(level: u8) -> Option<u8> {
    match level {
        0 => Some(1),
        1 => Some(2),
        5 => Some(3),
        10 => Some(4),
        _ => None,
    }
}

fn validate_create(p: &VolumeCreate) -> Result<(), AdminError> {
    let Some(minimum) = level_minimum_drives(p.level) else {
        return Err(out_of_range("level", p.level));
    };
    check_zero("reserved", p.reserved.get())?;
    let count = p.drive_count;
    if count == 0 || usize::from(count) > MAX_VOLUME_DRIVES {
        return Err(out_of_range("drive_count", count));
    }
    if count < minimum || (p.level == 10 && count % 2 != 0) {
        return Err(AdminError::DriveCountForLevel { level: p.level, count, minimum });
    }
    let strip = p.strip_kib.get();
    if !strip.is_power_of_two() || !(MIN_STRIP_KIB..=MAX_STRIP_KIB).contains(&strip) {
        return Err(out_of_range("strip_kib", strip));
    }
    let block = p.block_size.get();
    if block != 512 && block != 4096 {
        return Err(out_of_range("block_size", block));
    }
    let (used, unused) = p.drives.split_at(usize::from(count));
    let mut seen = 0u64;
    for d in used {
        let d = d.get();
        check_drive("drives[]", d)?;
        if seen & (1 << d) != 0 {
            return Err(AdminError::DuplicateDrive { drive: d });
        }
        seen |= 1 << d;
    }
    for d in unused {
        check_zero("drives[] past drive_count", d.get())?;
    }
    Ok(())
}

fn payload<T>(command: u16, bytes: &[u8]) -> Result<&T, AdminError>
where
    T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable + zerocopy::Unaligned,
{
    T::ref_from_bytes(bytes).map_err(|_| AdminError::WrongPayloadSize {
        command,
        expected: core::mem::size_of::<T>(),
        got: bytes.len(),
    })
}

/// Decodes and validates one request: `input` is exactly the bytes the app sent.
pub fn decode_request(input: &[u8]) -> Result<Request<'_>, AdminError> {
    if input.len() > MAX_REQUEST_BYTES {
        return Err(AdminError::RequestTooLarge { got: input.len(), max: MAX_REQUEST_BYTES });
    }
    let Ok((header, rest)) = RequestHeader::ref_from_prefix(input) else {
        return Err(AdminError::ShortRequest { got: input.len(), needed: REQUEST_HEADER_BYTES });
    };
    if header.magic.get() != MAGIC {
        return Err(AdminError::BadMagic { got: header.magic.get() });
    }
    if header.version.get() != VERSION {
        return Err(AdminError::UnsupportedVersion { got: header.version.get() });
    }
    let cmd = header.command.get();
    let Some(expected) = command::request_payload_bytes(cmd) else {
        return Err(AdminError::UnknownCommand { got: cmd });
    };
    let declared = header.payload_bytes.get();
    if usize::try_from(declared).ok() != Some(rest.len()) {
        return Err(AdminError::PayloadSizeMismatch { declared, present: rest.len() });
    }
    if rest.len() != expected {
        return Err(AdminError::WrongPayloadSize { command: cmd, expected, got: rest.len() });
    }
    let body = match cmd {
        command::CONTROLLER_SHOW => Body::ControllerShow,
        command::VOLUME_LIST => Body::VolumeList,
        command::DRIVE_LIST => Body::DriveList,
        command::STAGE_GET => Body::StageGet,
        command::VOLUME_SHOW | command::VOLUME_DELETE | command::IO_STATS => {
            let p: &VolumeRef = payload(cmd, rest)?;
            let v = p.volume.get();
            if !(cmd == command::IO_STATS && v == ALL_VOLUMES) {
                check_volume(v)?;
            }
            check_zero("reserved", p.reserved.get())?;
            match cmd {
                command::VOLUME_SHOW => Body::VolumeShow(p),
                command::VOLUME_DELETE => Body::VolumeDelete(p),
                _ => Body::IoStats(p),
            }
        }
        command::DRIVE_SHOW | command::HOTSPARE_CLEAR => {
            let p: &DriveRef = payload(cmd, rest)?;
            check_drive("drive", p.drive.get())?;
            check_zero("reserved", p.reserved.get())?;
            if cmd == command::DRIVE_SHOW {
                Body::DriveShow(p)
            } else {
                Body::HotspareClear(p)
            }
        }
        command::EVENTS_SINCE => {
            let p: &EventsSince = payload(cmd, rest)?;
            let max = p.max.get();
            if max == 0 || max > MAX_EVENTS_PER_REQUEST {
                return Err(out_of_range("max", max));
            }
            Body::EventsSince(p)
        }
        command::VOLUME_CREATE => {
            let p: &VolumeCreate = payload(cmd, rest)?;
            validate_create(p)?;
            Body::VolumeCreate(p)
        }
        command::HOTSPARE_SET => {
            let p: &HotspareSet = payload(cmd, rest)?;
            check_drive("drive", p.drive.get())?;
            if p.volume.get() != GLOBAL_SPARE {
                check_volume(p.volume.get())?;
            }
            Body::HotspareSet(p)
        }
        command::REBUILD_START => {
            let p: &RebuildStart = payload(cmd, rest)?;
            check_volume(p.volume.get())?;
            check_drive("drive", p.drive.get())?;
            Body::RebuildStart(p)
        }
        other => return Err(AdminError::UnknownCommand { got: other }),
    };
    Ok(Request { sequence: header.sequence.get(), body })
}

/// A response as the app sees it: the header's fields and the payload's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub command: u16,
    pub sequence: u32,
    pub status: u32,
    pub payload: &'a [u8],
}

/// Decodes a response's header (the app's side): magic, version and the payload's size are
/// checked; the status is returned as it came.
pub fn decode_response(input: &[u8]) -> Result<Response<'_>, AdminError> {
    let Ok((header, rest)) = ResponseHeader::ref_from_prefix(input) else {
        return Err(AdminError::ShortRequest { got: input.len(), needed: RESPONSE_HEADER_BYTES });
    };
    if header.magic.get() != MAGIC {
        return Err(AdminError::BadMagic { got: header.magic.get() });
    }
    if header.version.get() != VERSION {
        return Err(AdminError::UnsupportedVersion { got: header.version.get() });
    }
    let declared = header.payload_bytes.get();
    if usize::try_from(declared).ok() != Some(rest.len()) {
        return Err(AdminError::PayloadSizeMismatch { declared, present: rest.len() });
    }
    Ok(Response {
        command: header.command.get(),
        sequence: header.sequence.get(),
        status: header.status.get(),
        payload: rest,
    })
}

/// Reads a list response's payload (the app's side): `(total, entries)`. The entry size and
/// the count are checked against the bytes present.
pub fn decode_list<T>(payload: &[u8]) -> Result<(u32, &[T]), AdminError>
where
    T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable + zerocopy::Unaligned,
{
    let Ok((header, rest)) = ListHeader::ref_from_prefix(payload) else {
        return Err(AdminError::BadResponse { what: "list payload shorter than its header" });
    };
    let entry = core::mem::size_of::<T>();
    if usize::try_from(header.entry_bytes.get()).ok() != Some(entry) {
        return Err(AdminError::BadResponse { what: "list entry size is not the expected one" });
    }
    let count = header.count.get();
    if count > header.total.get() {
        return Err(AdminError::BadResponse { what: "list count exceeds its total" });
    }
    if usize::try_from(count).ok().and_then(|c| c.checked_mul(entry)) != Some(rest.len()) {
        return Err(AdminError::BadResponse { what: "list count does not match the bytes" });
    }
    let entries = <[T]>::ref_from_bytes(rest)
        .map_err(|_| AdminError::BadResponse { what: "list entries do not parse" })?;
    Ok((header.total.get(), entries))
}
