//! The controller's wire format: BAR0 registers, the init frame, request descriptors and frames
//! (built in each task's pre-mapped DMA frame) and reply descriptors. Little-endian `zerocopy`
//! structs; the simulated controller in the test-bed reads and writes the same types. Nothing
//! the device writes is trusted: see [`super::reply`].

use static_assertions::const_assert_eq;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// BAR0 register offsets (32-bit registers).
pub mod reg {
    /// Firmware state (read-only): [`super::fw_state`] in bits 3..0, a fault code in 31..16.
    pub const FW_STATE: u64 = 0x00;
    /// Host → firmware commands ([`super::doorbell`]).
    pub const DOORBELL: u64 = 0x04;
    /// Interrupt status, write 1 to clear: bit 0 replies posted, bit 1 state changed.
    pub const INTR_STATUS: u64 = 0x08;
    pub const INTR_MASK: u64 = 0x0C;
    /// The firmware's reply producer index (read-only).
    pub const REPLY_PRODUCER: u64 = 0x10;
    /// The host's reply consumer index.
    pub const REPLY_CONSUMER: u64 = 0x14;
    /// The host's request producer index.
    pub const REQUEST_PRODUCER: u64 = 0x18;
    /// The firmware's request consumer index (read-only).
    pub const REQUEST_CONSUMER: u64 = 0x1C;
    /// IOVA of the init frame, low and high halves.
    pub const INIT_FRAME_LO: u64 = 0x20;
    pub const INIT_FRAME_HI: u64 = 0x24;
    /// IOC facts (read-only, valid from READY).
    pub const MAX_COMMANDS: u64 = 0x30;
    pub const MAX_TARGETS: u64 = 0x34;
    pub const MAX_SGE: u64 = 0x38;
    pub const MAX_TRANSFER_KIB: u64 = 0x3C;
    /// The register window the driver uses: every register above lies inside it. The BAR the
    /// device reports may be larger (the simulated controller's is 64 KiB); nothing past this
    /// window is ever touched.
    pub const BAR0_BYTES: u64 = 0x1000;
}

/// Firmware states.
pub mod fw_state {
    pub const RESET: u32 = 0x0;
    pub const READY: u32 = 0x1;
    pub const OPERATIONAL: u32 = 0x2;
    pub const FAULT: u32 = 0xF;
    pub const MASK: u32 = 0xF;
}

/// Doorbell commands.
pub mod doorbell {
    /// Take the init frame at INIT_FRAME and become OPERATIONAL.
    pub const INIT: u32 = 0x1;
    /// Drop everything in flight and return to READY.
    pub const RESET: u32 = 0x2;
    /// New requests up to REQUEST_PRODUCER.
    pub const REQUEST: u32 = 0x3;
}

/// Request functions.
pub mod function {
    pub const SCSI_IO: u8 = 0x01;
    pub const ABORT_TASK: u8 = 0x02;
    pub const MANAGEMENT: u8 = 0x03;
}

/// "DKFW".
pub const INIT_MAGIC: u32 = 0x5746_4B44;
pub const INIT_VERSION: u16 = 1;

/// The init frame the host hands the firmware.
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
pub struct InitFrame {
    pub magic: U32,
    pub version: U16,
    pub request_entries: U16,
    pub reply_entries: U16,
    pub reserved: U16,
    pub msix_vector: U32,
    pub request_ring: U64,
    pub reply_ring: U64,
}

/// One request ring entry: which task, and where its frame is.
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
pub struct RequestDescriptor {
    /// The task ID (SMID), 1..=N.
    pub smid: U16,
    pub function: u8,
    pub reserved: u8,
    pub frame_length: U32,
    /// IOVA of the request frame in the task's DMA frame.
    pub frame: U64,
}

/// Data direction in a request frame.
pub mod direction {
    pub const NONE: u8 = 0;
    pub const TO_DEVICE: u8 = 1;
    pub const FROM_DEVICE: u8 = 2;
}

/// The fixed part of a request frame; `sge_count` [`Sge`]s follow it.
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
pub struct RequestFrame {
    pub function: u8,
    pub direction: u8,
    pub cdb_length: u8,
    pub sge_count: u8,
    pub target: U16,
    pub lun: U16,
    pub timeout_ms: U32,
    pub data_length: U32,
    /// Where the firmware writes sense data (inside the same task frame).
    pub sense_buffer: U64,
    pub sense_length: U16,
    /// For ABORT_TASK: the SMID to abort.
    pub abort_smid: U16,
    /// The host's tag for this submission (never 0): the firmware echoes it in the reply
    /// ([`ReplyDescriptor::tag`]), so a reply for an earlier use of the same SMID, or garbage
    /// that happens to name it, is told apart from the genuine one.
    pub tag: U32,
    pub cdb: [u8; 16],
}

/// One scatter-gather element.
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
pub struct Sge {
    pub address: U64,
    pub length: U32,
    pub flags: U32,
}

/// Management opcodes (a MANAGEMENT request's [`MgmtFrame::opcode`]).
pub mod mgmt {
    /// Fills a [`super::ControllerInfo`].
    pub const CONTROLLER_INFO: u8 = 0x01;
    /// Fills an array of [`super::VolumeEntry`] (up to the buffer's size); `transferred` says
    /// how many bytes.
    pub const LIST_VOLUMES: u8 = 0x02;
    /// Fills an array of [`super::DriveEntry`].
    pub const LIST_DRIVES: u8 = 0x03;
    /// Fills [`super::EventEntry`]s with sequence > `args[0]`.
    pub const EVENTS_SINCE: u8 = 0x04;
    /// args: [level (0, 1, 5, 10) in bits 0..8 | log2(block size) in bits 8..16 (0: the
    /// firmware's default, 9: 512, 12: 4096), strip bytes, drive bitmap low, drive bitmap
    /// high]. The buffer returns the new volume's [`super::VolumeEntry`].
    pub const CREATE_VOLUME: u8 = 0x10;
    /// args: [volume id].
    pub const DELETE_VOLUME: u8 = 0x11;
    /// args: [drive id, 1 = make spare / 0 = clear, the volume a spare is dedicated to
    /// ([`GLOBAL_SPARE`]: a global spare; ignored when clearing)].
    pub const SET_HOT_SPARE: u8 = 0x12;
    /// args: [volume id, drive id].
    pub const START_REBUILD: u8 = 0x13;

    /// SET_HOT_SPARE `args[2]`: a global spare.
    pub const GLOBAL_SPARE: u32 = 0xFFFF;
}

/// The `scsi_status` of MANAGEMENT and ABORT_TASK replies (SCSI_IO replies carry a SCSI
/// status). The one definition: the simulated firmware answers with these too.
pub mod mgmt_status {
    pub const SUCCESS: u8 = 0x00;
    /// Unknown request function or management opcode.
    pub const INVALID_FUNCTION: u8 = 0x01;
    pub const INVALID_ARGUMENT: u8 = 0x02;
    /// No such volume or drive; for ABORT_TASK: the SMID is not queued (running or done).
    pub const NOT_FOUND: u8 = 0x03;
    /// The object's state forbids it (drive in use, rebuild running).
    pub const BUSY: u8 = 0x04;
    /// The opcode returns data but the frame names no buffer.
    pub const NO_BUFFER: u8 = 0x05;
    /// The array cannot do this.
    pub const UNSUPPORTED: u8 = 0x06;
    /// The array tried and failed (a drive or its backing store).
    pub const FAILED: u8 = 0x07;

    /// The status's name, or `None` for a value the firmware interface does not define.
    pub const fn name(status: u8) -> Option<&'static str> {
        Some(match status {
            SUCCESS => "SUCCESS",
            INVALID_FUNCTION => "INVALID_FUNCTION",
            INVALID_ARGUMENT => "INVALID_ARGUMENT",
            NOT_FOUND => "NOT_FOUND",
            BUSY => "BUSY",
            NO_BUFFER => "NO_BUFFER",
            UNSUPPORTED => "UNSUPPORTED",
            FAILED => "FAILED",
            _ => return None,
        })
    }
}

/// A MANAGEMENT request frame (in the task's DMA frame, instead of a [`RequestFrame`]).
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
pub struct MgmtFrame {
    pub function: u8,
    pub opcode: u8,
    pub reserved: [u8; 2],
    pub buffer_length: U32,
    /// IOVA of the data buffer (results, or nothing).
    pub buffer: U64,
    pub args: [U32; 4],
    /// The host's tag for this submission, echoed in the reply (as [`RequestFrame::tag`]).
    pub tag: U32,
    pub reserved2: [u8; 4],
}

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
pub struct ControllerInfo {
    pub max_commands: U32,
    pub max_targets: U32,
    pub drives: U32,
    pub volumes: U32,
    pub firmware_version: [u8; 16],
    pub serial: [u8; 16],
}

/// Volume states (StorCLI vocabulary).
pub mod volume_state {
    pub const OPTIMAL: u8 = 0;
    pub const DEGRADED: u8 = 1;
    pub const PARTIALLY_DEGRADED: u8 = 2;
    pub const OFFLINE: u8 = 3;
    pub const REBUILDING: u8 = 4;
}

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
pub struct VolumeEntry {
    /// The volume's ID, which is also its SCSI target ID.
    pub id: U16,
    pub state: u8,
    pub level: u8,
    pub block_size: U32,
    pub capacity_blocks: U64,
    pub strip_bytes: U32,
    pub rebuild_percent: u8,
    pub reserved: [u8; 3],
    pub drives: U64,
}

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
pub struct DriveEntry {
    pub id: U16,
    /// 0 online, 1 offline, 2 unconfigured good, 3 unconfigured bad, 4 rebuild, 5 hot spare,
    /// 6 missing.
    pub state: u8,
    pub reserved: u8,
    pub volume: U32,
    pub capacity_bytes: U64,
}

/// Asynchronous event codes.
pub mod event {
    pub const DRIVE_FAILED: u16 = 1;
    pub const VOLUME_DEGRADED: u16 = 2;
    pub const REBUILD_STARTED: u16 = 3;
    pub const REBUILD_PROGRESS: u16 = 4;
    pub const REBUILD_FINISHED: u16 = 5;
    pub const VOLUME_CREATED: u16 = 6;
    pub const VOLUME_DELETED: u16 = 7;
    pub const VOLUME_OFFLINE: u16 = 8;
    pub const SPARE_ACTIVE: u16 = 9;
    pub const HOT_SPARE_ADDED: u16 = 10;
    pub const HOT_SPARE_REMOVED: u16 = 11;
    /// Full redundancy again after a rebuild.
    pub const VOLUME_OPTIMAL: u16 = 12;
    pub const REBUILD_ABORTED: u16 = 13;
    pub const MEDIA_ERROR_CORRECTED: u16 = 14;
    pub const MEDIA_ERROR_UNRECOVERED: u16 = 15;
    pub const REBUILD_PUNCTURE: u16 = 16;
}

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
pub struct EventEntry {
    pub sequence: U64,
    pub code: U16,
    pub volume: U16,
    pub drive: U16,
    /// Rebuild progress in percent, where it applies.
    pub percent: u8,
    pub reserved: u8,
}

/// The SMID of the driver's own control request (management, the stage 2 read): never a
/// task ID, and at most one in flight.
pub const CONTROL_SMID: u16 = 0xFFFE;

/// The SMID of an asynchronous event notification on the reply ring (never a task ID):
/// `transferred` carries the event's sequence number (low 32 bits); the host fetches it with
/// EVENTS_SINCE.
pub const EVENT_SMID: u16 = 0xFFFF;

bitflags::bitflags! {
    /// The flags byte of a reply entry. A bit outside this set is garbage: the host drops the
    /// entry (`UnknownReplyFlags`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct ReplyFlags: u8 {
        /// The phase of the lap this entry was written in; the host expects it to flip each
        /// wrap, so a stale entry from the previous lap is recognised.
        const PHASE = 0x01;
        /// Sense data was written to the task's sense buffer.
        const SENSE_VALID = 0x02;
        /// The request was aborted or flushed by a reset.
        const ABORTED = 0x04;
        /// An asynchronous event notification (SMID [`EVENT_SMID`]), not a task's reply.
        const EVENT = 0x08;
    }
}

/// Salt of [`reply_check`] ("FRKD" little-endian), so an all-zero entry is not sealed.
pub const REPLY_CHECK_SALT: u32 = 0x444B_5246;

/// The check word of a reply entry: a fixed function of its other 12 bytes. With `head` the
/// entry's first four bytes as a little-endian word (`smid | scsi_status << 16 | flags << 24`),
/// `check = !(head ^ transferred.rotate_left(11) ^ tag.rotate_left(22) ^ REPLY_CHECK_SALT)`.
/// Not a MAC: it catches garbage and torn or stale writes, not a device that forges on purpose
/// (the tag does most of that work).
pub const fn reply_check(smid: u16, scsi_status: u8, flags: u8, transferred: u32, tag: u32) -> u32 {
    let head = smid as u32 | (scsi_status as u32) << 16 | (flags as u32) << 24;
    !(head ^ transferred.rotate_left(11) ^ tag.rotate_left(22) ^ REPLY_CHECK_SALT)
}

/// One reply ring entry, written by the firmware: it echoes the request's tag and seals the
/// entry with [`reply_check`]. Event notifications carry tag 0.
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
pub struct ReplyDescriptor {
    pub smid: U16,
    pub scsi_status: u8,
    pub flags: u8,
    pub transferred: U32,
    /// The request frame's tag, echoed ([`RequestFrame::tag`], [`MgmtFrame::tag`]); 0 for an
    /// event notification.
    pub tag: U32,
    /// [`reply_check`] of the other fields.
    pub check: U32,
}

impl ReplyDescriptor {
    /// An entry with its check word computed. `flags` is the raw byte, as a device (or a test
    /// writing garbage) puts it: [`ReplyFlags::bits`] of a flag set.
    pub const fn sealed(
        smid: u16,
        scsi_status: u8,
        flags: u8,
        transferred: u32,
        tag: u32,
    ) -> ReplyDescriptor {
        ReplyDescriptor {
            smid: U16::new(smid),
            scsi_status,
            flags,
            transferred: U32::new(transferred),
            tag: U32::new(tag),
            check: U32::new(reply_check(smid, scsi_status, flags, transferred, tag)),
        }
    }

    /// The flags the device wrote, unknown bits kept (see [`ReplyFlags::from_bits`]).
    pub fn reply_flags(&self) -> ReplyFlags {
        ReplyFlags::from_bits_retain(self.flags)
    }

    /// The check word this entry should carry.
    pub fn expected_check(&self) -> u32 {
        reply_check(
            self.smid.get(),
            self.scsi_status,
            self.flags,
            self.transferred.get(),
            self.tag.get(),
        )
    }

    /// Recompute the check word (after changing a field, e.g. the phase flag).
    pub fn seal(&mut self) {
        self.check = U32::new(self.expected_check());
    }

    /// Whether the check word matches the other fields.
    pub fn is_sealed(&self) -> bool {
        self.check.get() == self.expected_check()
    }
}

const_assert_eq!(core::mem::size_of::<InitFrame>(), 32);
const_assert_eq!(core::mem::size_of::<RequestDescriptor>(), 16);
const_assert_eq!(core::mem::size_of::<RequestFrame>(), 48);
const_assert_eq!(core::mem::size_of::<Sge>(), 16);
const_assert_eq!(core::mem::size_of::<ReplyDescriptor>(), 16);
const_assert_eq!(core::mem::size_of::<MgmtFrame>(), 40);
const_assert_eq!(core::mem::size_of::<ControllerInfo>(), 48);
const_assert_eq!(core::mem::size_of::<VolumeEntry>(), 32);
const_assert_eq!(core::mem::size_of::<DriveEntry>(), 16);
const_assert_eq!(core::mem::size_of::<EventEntry>(), 16);
// A frame carries at least as many SGEs as one PrepareForDMA returns.
static_assertions::const_assert!(frame_layout::MAX_SGE >= 32);

/// Where things sit inside one task's DMA frame.
pub mod frame_layout {
    /// The request frame at the start.
    pub const REQUEST: usize = 0;
    /// Scatter-gather elements follow the fixed part.
    pub const SGL: usize = 48;
    /// The sense buffer at the end of the first KiB.
    pub const SENSE: usize = 1024 - 256;
    pub const SENSE_BYTES: usize = 256;
    /// How many SGEs fit before the sense buffer.
    pub const MAX_SGE: usize = (SENSE - SGL) / 16;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip_little_endian() {
        let d = RequestDescriptor {
            smid: U16::new(7),
            function: function::SCSI_IO,
            reserved: 0,
            frame_length: U32::new(64),
            frame: U64::new(0x1122_3344_5566_7788),
        };
        let bytes = d.as_bytes();
        assert_eq!(&bytes[..2], &[7, 0]);
        assert_eq!(&bytes[8..16], &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        assert_eq!(RequestDescriptor::read_from_bytes(bytes).unwrap(), d);
        let r = ReplyDescriptor::sealed(3, 2, 3, 512, 0x0A0B_0C0D);
        let bytes = r.as_bytes();
        assert_eq!(&bytes[..12], &[3, 0, 2, 3, 0, 2, 0, 0, 0x0D, 0x0C, 0x0B, 0x0A]);
        let back = ReplyDescriptor::read_from_bytes(bytes).unwrap();
        assert_eq!(
            (back.smid.get(), back.scsi_status, back.flags, back.transferred.get()),
            (3, 2, 3, 512)
        );
        assert!(back.is_sealed());
        let head = u32::from_le_bytes([3, 0, 2, 3]);
        let check =
            !(head ^ 512u32.rotate_left(11) ^ 0x0A0B_0C0Du32.rotate_left(22) ^ REPLY_CHECK_SALT);
        assert_eq!(&bytes[12..], &check.to_le_bytes());
        assert!(!ReplyDescriptor::default().is_sealed(), "zeroed memory is not a reply");
        for i in 0..12 {
            let mut b = [0u8; 16];
            b.copy_from_slice(bytes);
            b[i] ^= 0x10;
            assert!(
                !ReplyDescriptor::read_from_bytes(&b).unwrap().is_sealed(),
                "byte {i} is covered"
            );
        }
        let f = RequestFrame { tag: U32::new(0x1122_3344), ..Default::default() };
        assert_eq!(&f.as_bytes()[28..32], &[0x44, 0x33, 0x22, 0x11]);
        let m = MgmtFrame { tag: U32::new(7), ..Default::default() };
        assert_eq!(&m.as_bytes()[32..36], &[7, 0, 0, 0]);
    }
}
