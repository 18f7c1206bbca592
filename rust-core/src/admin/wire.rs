//! The admin protocol's wire format: the request and response headers, the command numbers,
//! the status codes and every command's fixed-layout payload. Little-endian `zerocopy` structs
//! with no alignment requirement, so a payload is read in place from whatever buffer the
//! user client (or the test-bed's socket) hands over. `docs/ADMIN-PROTOCOL.md` gives the
//! offsets.

use static_assertions::const_assert_eq;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The bytes `44 4B 41 44`, "DKAD", on the wire (a little-endian `u32`), as the firmware's
/// init frame spells "DKFW".
pub const MAGIC: u32 = 0x4441_4B44;
/// The only protocol version this core speaks.
pub const VERSION: u16 = 1;

/// The largest request accepted (header + payload): what fits in an `ExternalMethod`'s
/// inline structure input.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// The most drives a volume takes, and the length of [`VolumeCreate::drives`].
pub const MAX_VOLUME_DRIVES: usize = 32;
/// The highest drive ID (the firmware addresses drives with a 64-bit bitmap).
pub const MAX_DRIVE_ID: u16 = 63;
/// The highest volume ID (a volume's ID is its SCSI target ID).
pub const MAX_VOLUME_ID: u16 = crate::limits::HIGHEST_TARGET_ID as u16;
/// [`VolumeRef::volume`] in an `IO_STATS` request: the whole controller.
pub const ALL_VOLUMES: u16 = 0xFFFF;
/// [`HotspareSet::volume`]: a global hot spare, not dedicated to one volume.
pub const GLOBAL_SPARE: u16 = 0xFFFF;
/// [`EventsSince::max`] is 1..=this.
pub const MAX_EVENTS_PER_REQUEST: u32 = 1024;
/// [`VolumeCreate::strip_kib`] bounds (and it is a power of two).
pub const MIN_STRIP_KIB: u32 = 4;
pub const MAX_STRIP_KIB: u32 = 1024;
/// [`IoStats::latency_us_log2`] buckets.
pub const LATENCY_BUCKETS: usize = 16;

/// Command numbers. Read-only commands are below 0x10; the destructive ones (which need the
/// admin entitlement) are 0x10 and above.
pub mod command {
    /// No payload → [`super::ControllerInfo`].
    pub const CONTROLLER_SHOW: u16 = 0x01;
    /// No payload → [`super::ListHeader`] + [`super::VolumeEntry`]s.
    pub const VOLUME_LIST: u16 = 0x02;
    /// [`super::VolumeRef`] → [`super::VolumeEntry`].
    pub const VOLUME_SHOW: u16 = 0x03;
    /// No payload → [`super::ListHeader`] + [`super::DriveEntry`]s.
    pub const DRIVE_LIST: u16 = 0x04;
    /// [`super::DriveRef`] → [`super::DriveEntry`].
    pub const DRIVE_SHOW: u16 = 0x05;
    /// [`super::EventsSince`] → [`super::ListHeader`] + [`super::EventEntry`]s.
    pub const EVENTS_SINCE: u16 = 0x06;
    /// [`super::VolumeRef`] (or [`super::ALL_VOLUMES`]) → [`super::IoStats`].
    pub const IO_STATS: u16 = 0x07;
    /// No payload → [`super::StageInfo`].
    pub const STAGE_GET: u16 = 0x08;
    /// [`super::VolumeCreate`] → [`super::VolumeEntry`] (destructive).
    pub const VOLUME_CREATE: u16 = 0x10;
    /// [`super::VolumeRef`] → no payload (destructive).
    pub const VOLUME_DELETE: u16 = 0x11;
    /// [`super::HotspareSet`] → no payload (destructive).
    pub const HOTSPARE_SET: u16 = 0x12;
    /// [`super::DriveRef`] → no payload (destructive).
    pub const HOTSPARE_CLEAR: u16 = 0x13;
    /// [`super::RebuildStart`] → no payload (destructive).
    pub const REBUILD_START: u16 = 0x14;

    /// Every command, in number order.
    pub const ALL: [u16; 13] = [
        CONTROLLER_SHOW,
        VOLUME_LIST,
        VOLUME_SHOW,
        DRIVE_LIST,
        DRIVE_SHOW,
        EVENTS_SINCE,
        IO_STATS,
        STAGE_GET,
        VOLUME_CREATE,
        VOLUME_DELETE,
        HOTSPARE_SET,
        HOTSPARE_CLEAR,
        REBUILD_START,
    ];

    /// The command's name as the protocol document spells it, or `None` if unknown.
    pub const fn name(command: u16) -> Option<&'static str> {
        Some(match command {
            CONTROLLER_SHOW => "CONTROLLER_SHOW",
            VOLUME_LIST => "VOLUME_LIST",
            VOLUME_SHOW => "VOLUME_SHOW",
            DRIVE_LIST => "DRIVE_LIST",
            DRIVE_SHOW => "DRIVE_SHOW",
            EVENTS_SINCE => "EVENTS_SINCE",
            IO_STATS => "IO_STATS",
            STAGE_GET => "STAGE_GET",
            VOLUME_CREATE => "VOLUME_CREATE",
            VOLUME_DELETE => "VOLUME_DELETE",
            HOTSPARE_SET => "HOTSPARE_SET",
            HOTSPARE_CLEAR => "HOTSPARE_CLEAR",
            REBUILD_START => "REBUILD_START",
            _ => return None,
        })
    }

    /// The request payload's size in bytes for a known command.
    pub const fn request_payload_bytes(command: u16) -> Option<usize> {
        use core::mem::size_of;
        Some(match command {
            CONTROLLER_SHOW | VOLUME_LIST | DRIVE_LIST | STAGE_GET => 0,
            VOLUME_SHOW | VOLUME_DELETE | IO_STATS => size_of::<super::VolumeRef>(),
            DRIVE_SHOW | HOTSPARE_CLEAR => size_of::<super::DriveRef>(),
            EVENTS_SINCE => size_of::<super::EventsSince>(),
            VOLUME_CREATE => size_of::<super::VolumeCreate>(),
            HOTSPARE_SET => size_of::<super::HotspareSet>(),
            REBUILD_START => size_of::<super::RebuildStart>(),
            _ => return None,
        })
    }
}

/// Whether `command` changes the configuration (create, delete, hot spare, rebuild): the dext
/// refuses it with [`status::NOT_PERMITTED`] unless the client holds the admin entitlement.
pub const fn is_destructive(command: u16) -> bool {
    matches!(
        command,
        command::VOLUME_CREATE
            | command::VOLUME_DELETE
            | command::HOTSPARE_SET
            | command::HOTSPARE_CLEAR
            | command::REBUILD_START
    )
}

/// Response status codes ([`ResponseHeader::status`]).
pub mod status {
    pub const OK: u32 = 0;
    pub const BAD_MAGIC: u32 = 1;
    pub const UNSUPPORTED_VERSION: u32 = 2;
    pub const SHORT_REQUEST: u32 = 3;
    pub const REQUEST_TOO_LARGE: u32 = 4;
    pub const PAYLOAD_SIZE_MISMATCH: u32 = 5;
    pub const UNKNOWN_COMMAND: u32 = 6;
    pub const WRONG_PAYLOAD_SIZE: u32 = 7;
    pub const FIELD_OUT_OF_RANGE: u32 = 8;
    pub const DUPLICATE_DRIVE: u32 = 9;
    pub const DRIVE_COUNT_FOR_LEVEL: u32 = 10;
    pub const OUTPUT_TOO_SMALL: u32 = 11;
    /// A destructive command without the admin entitlement.
    pub const NOT_PERMITTED: u32 = 12;
    /// No such volume or drive.
    pub const NOT_FOUND: u32 = 13;
    /// The controller is busy (another management command, a reset): try again.
    pub const BUSY: u32 = 14;
    /// The bring-up stage has no controller to ask (stages 0 and 1).
    pub const NOT_READY: u32 = 15;
    /// The firmware refused the command (the drive is in use, too small, ...).
    pub const REJECTED: u32 = 16;
    /// The firmware or the driver failed.
    pub const DEVICE_ERROR: u32 = 17;
    /// A response that does not parse (seen by the app, never sent).
    pub const BAD_RESPONSE: u32 = 18;

    /// The status's name, or `None` if unknown.
    pub const fn name(status: u32) -> Option<&'static str> {
        Some(match status {
            OK => "Ok",
            BAD_MAGIC => "BadMagic",
            UNSUPPORTED_VERSION => "UnsupportedVersion",
            SHORT_REQUEST => "ShortRequest",
            REQUEST_TOO_LARGE => "RequestTooLarge",
            PAYLOAD_SIZE_MISMATCH => "PayloadSizeMismatch",
            UNKNOWN_COMMAND => "UnknownCommand",
            WRONG_PAYLOAD_SIZE => "WrongPayloadSize",
            FIELD_OUT_OF_RANGE => "FieldOutOfRange",
            DUPLICATE_DRIVE => "DuplicateDrive",
            DRIVE_COUNT_FOR_LEVEL => "DriveCountForLevel",
            OUTPUT_TOO_SMALL => "OutputTooSmall",
            NOT_PERMITTED => "NotPermitted",
            NOT_FOUND => "NotFound",
            BUSY => "Busy",
            NOT_READY => "NotReady",
            REJECTED => "Rejected",
            DEVICE_ERROR => "DeviceError",
            BAD_RESPONSE => "BadResponse",
            _ => return None,
        })
    }
}

macro_rules! wire_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(
            Clone,
            Copy,
            Debug,
            Default,
            PartialEq,
            Eq,
            FromBytes,
            IntoBytes,
            KnownLayout,
            Immutable,
            Unaligned,
        )]
        #[repr(C)]
        pub struct $name { $($body)* }
    };
}

wire_struct! {
    /// Every request starts with this.
    pub struct RequestHeader {
        /// [`MAGIC`].
        pub magic: U32,
        /// [`VERSION`].
        pub version: U16,
        /// A [`command`] number.
        pub command: U16,
        /// The bytes after the header: exactly what the command's payload takes.
        pub payload_bytes: U32,
        /// Chosen by the app, echoed in the response.
        pub sequence: U32,
    }
}

wire_struct! {
    /// Every response starts with this.
    pub struct ResponseHeader {
        /// [`MAGIC`].
        pub magic: U32,
        /// [`VERSION`].
        pub version: U16,
        /// The request's command (0 when the request was too broken to have one).
        pub command: U16,
        /// A [`status`] code; a payload only follows [`status::OK`].
        pub status: U32,
        /// The bytes after the header.
        pub payload_bytes: U32,
        /// The request's sequence (0 when the request was too broken to have one).
        pub sequence: U32,
    }
}

// ---- request payloads ----

wire_struct! {
    /// VOLUME_SHOW, VOLUME_DELETE, IO_STATS.
    pub struct VolumeRef {
        /// 0..=[`MAX_VOLUME_ID`]; IO_STATS also takes [`ALL_VOLUMES`].
        pub volume: U16,
        /// Zero.
        pub reserved: U16,
    }
}

wire_struct! {
    /// DRIVE_SHOW, HOTSPARE_CLEAR.
    pub struct DriveRef {
        /// 0..=[`MAX_DRIVE_ID`].
        pub drive: U16,
        /// Zero.
        pub reserved: U16,
    }
}

wire_struct! {
    /// EVENTS_SINCE: the events with a sequence number greater than `sequence`, oldest first.
    pub struct EventsSince {
        pub sequence: U64,
        /// 1..=[`MAX_EVENTS_PER_REQUEST`]; fewer come back if the output buffer is smaller.
        pub max: U32,
    }
}

wire_struct! {
    /// VOLUME_CREATE.
    pub struct VolumeCreate {
        /// 0, 1, 5 or 10.
        pub level: u8,
        /// 1..=32, at least the level's minimum (1, 2, 3, 4); even for RAID 10.
        pub drive_count: u8,
        /// Zero.
        pub reserved: U16,
        /// A power of two in [`MIN_STRIP_KIB`]..=[`MAX_STRIP_KIB`].
        pub strip_kib: U32,
        /// 512 or 4096.
        pub block_size: U32,
        /// The member drives in order, each 0..=[`MAX_DRIVE_ID`], no duplicates; the entries
        /// past `drive_count` are zero.
        pub drives: [U16; MAX_VOLUME_DRIVES],
    }
}

wire_struct! {
    /// HOTSPARE_SET.
    pub struct HotspareSet {
        /// 0..=[`MAX_DRIVE_ID`].
        pub drive: U16,
        /// The volume it is dedicated to (0..=[`MAX_VOLUME_ID`]), or [`GLOBAL_SPARE`].
        pub volume: U16,
    }
}

wire_struct! {
    /// REBUILD_START: rebuild `volume` onto `drive`.
    pub struct RebuildStart {
        /// 0..=[`MAX_VOLUME_ID`].
        pub volume: U16,
        /// 0..=[`MAX_DRIVE_ID`].
        pub drive: U16,
    }
}

// ---- response payloads ----

wire_struct! {
    /// CONTROLLER_SHOW.
    pub struct ControllerInfo {
        pub max_commands: U32,
        pub max_targets: U32,
        pub drives: U32,
        pub volumes: U32,
        /// The bring-up stage ([`crate::Stage`] as a number).
        pub stage: U32,
        pub reserved: U32,
        /// NUL-padded ASCII.
        pub firmware_version: [u8; 16],
        /// NUL-padded ASCII.
        pub serial: [u8; 16],
        /// NUL-padded ASCII.
        pub driver_version: [u8; 16],
    }
}

/// Volume states (StorCLI vocabulary), as the firmware reports them.
pub mod volume_state {
    pub const OPTIMAL: u8 = 0;
    pub const DEGRADED: u8 = 1;
    pub const PARTIALLY_DEGRADED: u8 = 2;
    pub const OFFLINE: u8 = 3;
    pub const REBUILDING: u8 = 4;
}

/// Drive states, as the firmware reports them.
pub mod drive_state {
    pub const ONLINE: u8 = 0;
    pub const OFFLINE: u8 = 1;
    pub const UNCONFIGURED_GOOD: u8 = 2;
    pub const UNCONFIGURED_BAD: u8 = 3;
    pub const REBUILD: u8 = 4;
    pub const HOT_SPARE: u8 = 5;
    pub const MISSING: u8 = 6;
}

wire_struct! {
    /// One volume (VOLUME_LIST entries, VOLUME_SHOW, VOLUME_CREATE).
    pub struct VolumeEntry {
        pub id: U16,
        /// A [`volume_state`].
        pub state: u8,
        /// 0, 1, 5 or 10.
        pub level: u8,
        pub block_size: U32,
        pub capacity_blocks: U64,
        pub strip_kib: U32,
        pub rebuild_percent: u8,
        pub drive_count: u8,
        pub reserved: U16,
        /// Bit n set: drive n is a member.
        pub drives: U64,
    }
}

/// No volume ([`DriveEntry::volume`]).
pub const NO_VOLUME: u16 = 0xFFFF;

wire_struct! {
    /// One drive (DRIVE_LIST entries, DRIVE_SHOW).
    pub struct DriveEntry {
        pub id: U16,
        /// A [`drive_state`].
        pub state: u8,
        pub reserved: u8,
        /// The volume it belongs to (or is dedicated to as a spare), or [`NO_VOLUME`].
        pub volume: U16,
        pub reserved2: U16,
        pub capacity_bytes: U64,
        pub media_errors: U32,
        pub reserved3: U32,
    }
}

/// Event codes ([`EventEntry::code`]): the firmware's, passed through as they come.
pub use crate::firmware::wire::event;

wire_struct! {
    /// One event (EVENTS_SINCE entries).
    pub struct EventEntry {
        pub sequence: U64,
        /// An [`event`] code.
        pub code: U16,
        pub volume: U16,
        pub drive: U16,
        /// Rebuild progress in percent, where it applies.
        pub percent: u8,
        pub reserved: u8,
    }
}

wire_struct! {
    /// IO_STATS.
    pub struct IoStats {
        pub reads: U64,
        pub writes: U64,
        pub read_bytes: U64,
        pub write_bytes: U64,
        pub errors: U64,
        /// Completion latency: bucket 0 counts < 1 µs... bucket n counts [2^(n-1), 2^n) µs;
        /// the last bucket also counts everything slower.
        pub latency_us_log2: [U64; LATENCY_BUCKETS],
    }
}

wire_struct! {
    /// STAGE_GET.
    pub struct StageInfo {
        /// [`crate::Stage`] as a number.
        pub stage: U32,
    }
}

wire_struct! {
    /// The start of a list response's payload; `count` entries follow.
    pub struct ListHeader {
        /// How many entries there are in all.
        pub total: U32,
        /// How many follow (fewer than `total`: the output buffer was too small).
        pub count: U32,
        /// The size of one entry, so an app can check it.
        pub entry_bytes: U32,
        pub reserved: U32,
    }
}

/// The bucket of [`IoStats::latency_us_log2`] a latency falls in.
pub const fn latency_bucket(latency_us: u64) -> usize {
    let bits = (u64::BITS - latency_us.leading_zeros()) as usize;
    if bits >= LATENCY_BUCKETS {
        LATENCY_BUCKETS - 1
    } else {
        bits
    }
}

pub const REQUEST_HEADER_BYTES: usize = core::mem::size_of::<RequestHeader>();
pub const RESPONSE_HEADER_BYTES: usize = core::mem::size_of::<ResponseHeader>();

const_assert_eq!(core::mem::size_of::<RequestHeader>(), 16);
const_assert_eq!(core::mem::size_of::<ResponseHeader>(), 20);
const_assert_eq!(core::mem::size_of::<VolumeRef>(), 4);
const_assert_eq!(core::mem::size_of::<DriveRef>(), 4);
const_assert_eq!(core::mem::size_of::<EventsSince>(), 12);
const_assert_eq!(core::mem::size_of::<VolumeCreate>(), 76);
const_assert_eq!(core::mem::size_of::<HotspareSet>(), 4);
const_assert_eq!(core::mem::size_of::<RebuildStart>(), 4);
const_assert_eq!(core::mem::size_of::<ControllerInfo>(), 72);
const_assert_eq!(core::mem::size_of::<VolumeEntry>(), 32);
const_assert_eq!(core::mem::size_of::<DriveEntry>(), 24);
const_assert_eq!(core::mem::size_of::<EventEntry>(), 16);
const_assert_eq!(core::mem::size_of::<IoStats>(), 168);
const_assert_eq!(core::mem::size_of::<StageInfo>(), 4);
const_assert_eq!(core::mem::size_of::<ListHeader>(), 16);
