//! Where a command is decoded: CDB layouts as `zerocopy` big-endian structs, checked field by
//! field into a [`Command`]. Every problem becomes the sense data SPC/SBC prescribe, with a
//! field pointer at the offending byte (and bit); nothing here can panic on any input.

use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::sense::{Asc, Sense};

/// Operation codes of the command set (SCSI.md).
pub mod op {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0A;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SELECT_6: u8 = 0x15;
    pub const MODE_SENSE_6: u8 = 0x1A;
    pub const START_STOP_UNIT: u8 = 0x1B;
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1E;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2A;
    pub const WRITE_AND_VERIFY_10: u8 = 0x2E;
    pub const VERIFY_10: u8 = 0x2F;
    pub const PRE_FETCH_10: u8 = 0x34;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const WRITE_SAME_10: u8 = 0x41;
    pub const UNMAP: u8 = 0x42;
    pub const MODE_SELECT_10: u8 = 0x55;
    pub const MODE_SENSE_10: u8 = 0x5A;
    pub const READ_16: u8 = 0x88;
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    pub const WRITE_16: u8 = 0x8A;
    pub const WRITE_AND_VERIFY_16: u8 = 0x8E;
    pub const VERIFY_16: u8 = 0x8F;
    pub const PRE_FETCH_16: u8 = 0x90;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const WRITE_SAME_16: u8 = 0x93;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
    pub const REPORT_LUNS: u8 = 0xA0;
    pub const MAINTENANCE_IN: u8 = 0xA3;
    pub const READ_12: u8 = 0xA8;
    pub const WRITE_12: u8 = 0xAA;
    pub const WRITE_AND_VERIFY_12: u8 = 0xAE;
    pub const VERIFY_12: u8 = 0xAF;
    /// SERVICE ACTION IN(16) service action: READ CAPACITY(16).
    pub const SA_READ_CAPACITY_16: u8 = 0x10;
    /// SERVICE ACTION IN(16) service action: GET LBA STATUS.
    pub const SA_GET_LBA_STATUS: u8 = 0x12;
    /// MAINTENANCE IN service action: REPORT SUPPORTED OPERATION CODES.
    pub const SA_REPORT_SUPPORTED_OPCODES: u8 = 0x0C;
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Cdb6 {
    opcode: u8,
    b1: u8,
    b2: u8,
    b3: u8,
    b4: u8,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Rw6 {
    opcode: u8,
    lba_high: u8,
    lba_low: U16,
    length: u8,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Rw10 {
    opcode: u8,
    flags: u8,
    lba: U32,
    group: u8,
    length: U16,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Rw12 {
    opcode: u8,
    flags: u8,
    lba: U32,
    length: U32,
    group: u8,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Rw16 {
    opcode: u8,
    flags: u8,
    lba: U64,
    length: U32,
    group: u8,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Inquiry {
    opcode: u8,
    flags: u8,
    page: u8,
    alloc: U16,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ModeSense10 {
    opcode: u8,
    flags: u8,
    page: u8,
    subpage: u8,
    reserved: [u8; 3],
    alloc: U16,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ModeSelect10 {
    opcode: u8,
    flags: u8,
    reserved: [u8; 5],
    length: U16,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ReadCapacity10 {
    opcode: u8,
    reserved: u8,
    lba: U32,
    reserved2: [u8; 2],
    pmi: u8,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ServiceAction16 {
    opcode: u8,
    service_action: u8,
    lba: U64,
    alloc: U32,
    flags: u8,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ReportLuns {
    opcode: u8,
    reserved: u8,
    select: u8,
    reserved2: [u8; 3],
    alloc: U32,
    reserved3: u8,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Unmap {
    opcode: u8,
    anchor: u8,
    reserved: [u8; 4],
    group: u8,
    length: U16,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct CompareAndWrite {
    opcode: u8,
    flags: u8,
    lba: U64,
    reserved: [u8; 3],
    blocks: u8,
    group: u8,
    control: u8,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ReportOpcodes {
    opcode_a3: u8,
    service_action: u8,
    options: u8,
    opcode: u8,
    requested_sa: U16,
    alloc: U32,
    reserved: u8,
    control: u8,
}

/// A READ, WRITE, VERIFY or WRITE SAME range, with where its fields sit (for field pointers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub lba: u64,
    pub blocks: u32,
    pub fua: bool,
    /// Byte offset of the LBA and of the transfer length fields in the CDB.
    pub lba_byte: u16,
    pub length_byte: u16,
}

/// A decoded command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    TestUnitReady,
    RequestSense {
        alloc: u32,
    },
    Inquiry {
        evpd: bool,
        page: u8,
        alloc: u32,
    },
    ReadCapacity10,
    ReadCapacity16 {
        alloc: u32,
    },
    ModeSense {
        ten: bool,
        dbd: bool,
        llbaa: bool,
        control: u8,
        page: u8,
        alloc: u32,
    },
    ModeSelect {
        ten: bool,
        length: u32,
    },
    Read(Range),
    Write(Range),
    Verify {
        range: Range,
        byte_check: bool,
    },
    /// WRITE AND VERIFY(10/12/16): write, then verify the medium (`byte_check`: compare it with
    /// the data-out).
    WriteVerify {
        range: Range,
        byte_check: bool,
    },
    /// PRE-FETCH(10/16); `blocks` 0 means to the end of the medium.
    PreFetch {
        range: Range,
        immed: bool,
    },
    /// COMPARE AND WRITE: `range.blocks` (at most 255) compared, then the same blocks written.
    CompareAndWrite(Range),
    /// REPORT SUPPORTED OPERATION CODES: `options` the REPORTING OPTIONS field (0..=3).
    ReportOpcodes {
        rctd: bool,
        options: u8,
        opcode: u8,
        service_action: u16,
        alloc: u32,
    },
    GetLbaStatus {
        lba: u64,
        alloc: u32,
    },
    SynchronizeCache {
        lba: u64,
        blocks: u32,
    },
    StartStopUnit {
        start: bool,
        load_eject: bool,
        power_condition: u8,
    },
    PreventAllowMediumRemoval,
    ReportLuns {
        select: u8,
        alloc: u32,
    },
    Unmap {
        length: u32,
    },
    WriteSame {
        range: Range,
        unmap: bool,
        no_data_out: bool,
    },
}

/// The CDB length an opcode's group implies (SPC-4 4.2.5.1).
pub const fn cdb_length(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

fn invalid(byte: u16, bit: Option<u8>) -> Sense {
    Sense::invalid_cdb_field(byte, bit)
}

/// The highest set bit of `value & mask`, for a field pointer at a reserved bit.
fn first_bit(value: u8) -> Option<u8> {
    if value == 0 {
        None
    } else {
        Some(7 - value.leading_zeros() as u8)
    }
}

/// Reserved bits `mask` of byte `index` must be zero.
fn reserved(cdb: &[u8], index: usize, mask: u8) -> Result<(), Sense> {
    let v = cdb.get(index).copied().unwrap_or(0) & mask;
    match first_bit(v) {
        None => Ok(()),
        Some(bit) => Err(invalid(index as u16, Some(bit))),
    }
}

/// Whole reserved bytes `from..to` must be zero.
fn reserved_bytes(cdb: &[u8], from: usize, to: usize) -> Result<(), Sense> {
    for i in from..to {
        reserved(cdb, i, 0xFF)?;
    }
    Ok(())
}

/// NACA and LINK in the control byte are not supported.
fn control(cdb: &[u8], index: usize) -> Result<(), Sense> {
    reserved(cdb, index, 0x05)
}

fn parse<T: FromBytes + KnownLayout + Immutable>(cdb: &[u8]) -> Result<&T, Sense> {
    T::ref_from_prefix(cdb).map(|(t, _)| t).map_err(|_| invalid(0, None))
}

/// RDPROTECT / WRPROTECT / VRPROTECT (bits 7..5 of byte 1) must be zero: no protection.
fn no_protection(flags: u8) -> Result<(), Sense> {
    if flags & 0xE0 != 0 {
        Err(invalid(1, Some(first_bit(flags & 0xE0).unwrap_or(7))))
    } else {
        Ok(())
    }
}

/// Decode `cdb` (the first `fCommandSize` bytes of the task's CDB).
pub fn decode(cdb: &[u8]) -> Result<Command, Sense> {
    let Some(&opcode) = cdb.first() else {
        return Err(Sense::illegal(Asc::INVALID_OPCODE, None));
    };
    let invalid_opcode =
        || Sense::illegal(Asc::INVALID_OPCODE, Some(super::sense::FieldPointer::cdb(0, None)));
    let Some(len) = cdb_length(opcode) else {
        return Err(invalid_opcode());
    };
    if cdb.len() < len {
        return Err(invalid(0, None));
    }
    let cdb = &cdb[..len];
    match opcode {
        op::TEST_UNIT_READY => {
            reserved_bytes(cdb, 1, 5)?;
            control(cdb, 5)?;
            Ok(Command::TestUnitReady)
        }
        op::REQUEST_SENSE => {
            let c: &Cdb6 = parse(cdb)?;
            // DESC: descriptor-format sense is not supported.
            reserved(cdb, 1, 0xFF)?;
            let _ = c.b1;
            reserved_bytes(cdb, 2, 4)?;
            control(cdb, 5)?;
            Ok(Command::RequestSense { alloc: u32::from(c.b4) })
        }
        op::INQUIRY => {
            let c: &Inquiry = parse(cdb)?;
            // Byte 1: EVPD (bit 0); CMDDT (bit 1) is obsolete, the rest reserved.
            reserved(cdb, 1, 0xFE)?;
            let evpd = c.flags & 1 != 0;
            if !evpd && c.page != 0 {
                return Err(invalid(2, None));
            }
            control(cdb, 5)?;
            Ok(Command::Inquiry { evpd, page: c.page, alloc: u32::from(c.alloc.get()) })
        }
        op::READ_CAPACITY_10 => {
            let c: &ReadCapacity10 = parse(cdb)?;
            reserved(cdb, 1, 0xFF)?;
            // PMI is obsolete; with PMI = 0 the LBA must be zero.
            if c.pmi & 1 == 0 && c.lba.get() != 0 {
                return Err(invalid(2, None));
            }
            reserved_bytes(cdb, 6, 8)?;
            reserved(cdb, 8, 0xFE)?;
            let _ = (c.reserved, c.reserved2);
            control(cdb, 9)?;
            Ok(Command::ReadCapacity10)
        }
        op::SERVICE_ACTION_IN_16 => {
            let c: &ServiceAction16 = parse(cdb)?;
            reserved(cdb, 1, 0xE0)?;
            if c.service_action & 0x1F == op::SA_GET_LBA_STATUS {
                // Byte 14: REPORT TYPE (SBC-4) is not supported: all LBAs.
                reserved(cdb, 14, 0xFF)?;
                control(cdb, 15)?;
                return Ok(Command::GetLbaStatus { lba: c.lba.get(), alloc: c.alloc.get() });
            }
            if c.service_action & 0x1F != op::SA_READ_CAPACITY_16 {
                return Err(invalid(1, Some(4)));
            }
            if c.flags & 1 == 0 && c.lba.get() != 0 {
                return Err(invalid(2, None));
            }
            reserved(cdb, 14, 0xFE)?;
            control(cdb, 15)?;
            Ok(Command::ReadCapacity16 { alloc: c.alloc.get() })
        }
        op::MODE_SENSE_6 => {
            let c: &Cdb6 = parse(cdb)?;
            reserved(cdb, 1, 0xF7)?;
            control(cdb, 5)?;
            Ok(Command::ModeSense {
                ten: false,
                dbd: c.b1 & 0x08 != 0,
                llbaa: false,
                control: c.b2 >> 6,
                page: c.b2 & 0x3F,
                alloc: u32::from(c.b4),
            }
            .check_subpage(c.b3)?)
        }
        op::MODE_SENSE_10 => {
            let c: &ModeSense10 = parse(cdb)?;
            reserved(cdb, 1, 0xE7)?;
            reserved_bytes(cdb, 4, 7)?;
            let _ = c.reserved;
            control(cdb, 9)?;
            Ok(Command::ModeSense {
                ten: true,
                dbd: c.flags & 0x08 != 0,
                llbaa: c.flags & 0x10 != 0,
                control: c.page >> 6,
                page: c.page & 0x3F,
                alloc: u32::from(c.alloc.get()),
            }
            .check_subpage(c.subpage)?)
        }
        op::MODE_SELECT_6 | op::MODE_SELECT_10 => {
            let ten = opcode == op::MODE_SELECT_10;
            let flags = cdb[1];
            // PF must be 1 (page format); SP (save pages) is not supported.
            if flags & 0x10 == 0 {
                return Err(invalid(1, Some(4)));
            }
            if flags & 0x01 != 0 {
                return Err(Sense::illegal(
                    Asc::INVALID_FIELD_IN_CDB,
                    Some(super::sense::FieldPointer::cdb(1, Some(0))),
                ));
            }
            reserved(cdb, 1, 0xEE)?;
            let length = if ten {
                let c: &ModeSelect10 = parse(cdb)?;
                reserved_bytes(cdb, 2, 7)?;
                let _ = c.reserved;
                control(cdb, 9)?;
                u32::from(c.length.get())
            } else {
                reserved_bytes(cdb, 2, 4)?;
                control(cdb, 5)?;
                u32::from(cdb[4])
            };
            Ok(Command::ModeSelect { ten, length })
        }
        op::READ_6 | op::WRITE_6 => {
            let c: &Rw6 = parse(cdb)?;
            control(cdb, 5)?;
            let lba = (u64::from(c.lba_high & 0x1F) << 16) | u64::from(c.lba_low.get());
            reserved(cdb, 1, 0xE0)?;
            // A transfer length of 0 means 256 blocks in the 6-byte commands.
            let blocks = if c.length == 0 { 256 } else { u32::from(c.length) };
            let range = Range { lba, blocks, fua: false, lba_byte: 1, length_byte: 4 };
            Ok(if opcode == op::READ_6 { Command::Read(range) } else { Command::Write(range) })
        }
        op::READ_10
        | op::WRITE_10
        | op::VERIFY_10
        | op::WRITE_SAME_10
        | op::WRITE_AND_VERIFY_10
        | op::PRE_FETCH_10 => {
            let c: &Rw10 = parse(cdb)?;
            control(cdb, 9)?;
            reserved(cdb, 6, 0xE0)?;
            let range = Range {
                lba: u64::from(c.lba.get()),
                blocks: u32::from(c.length.get()),
                fua: c.flags & 0x08 != 0,
                lba_byte: 2,
                length_byte: 7,
            };
            rw_command(opcode, c.flags, range)
        }
        op::READ_12 | op::WRITE_12 | op::VERIFY_12 | op::WRITE_AND_VERIFY_12 => {
            let c: &Rw12 = parse(cdb)?;
            control(cdb, 11)?;
            reserved(cdb, 10, 0xE0)?;
            let range = Range {
                lba: u64::from(c.lba.get()),
                blocks: c.length.get(),
                fua: c.flags & 0x08 != 0,
                lba_byte: 2,
                length_byte: 6,
            };
            rw_command(opcode, c.flags, range)
        }
        op::READ_16
        | op::WRITE_16
        | op::VERIFY_16
        | op::WRITE_SAME_16
        | op::WRITE_AND_VERIFY_16
        | op::PRE_FETCH_16 => {
            let c: &Rw16 = parse(cdb)?;
            control(cdb, 15)?;
            reserved(cdb, 14, 0xC0)?;
            let range = Range {
                lba: c.lba.get(),
                blocks: c.length.get(),
                fua: c.flags & 0x08 != 0,
                lba_byte: 2,
                length_byte: 10,
            };
            rw_command(opcode, c.flags, range)
        }
        op::SYNCHRONIZE_CACHE_10 => {
            let c: &Rw10 = parse(cdb)?;
            // Byte 1: IMMED (bit 1) accepted; the rest reserved or obsolete.
            reserved(cdb, 1, 0xF9)?;
            reserved(cdb, 6, 0xE0)?;
            control(cdb, 9)?;
            Ok(Command::SynchronizeCache {
                lba: u64::from(c.lba.get()),
                blocks: u32::from(c.length.get()),
            })
        }
        op::SYNCHRONIZE_CACHE_16 => {
            let c: &Rw16 = parse(cdb)?;
            reserved(cdb, 1, 0xF9)?;
            reserved(cdb, 14, 0xC0)?;
            control(cdb, 15)?;
            Ok(Command::SynchronizeCache { lba: c.lba.get(), blocks: c.length.get() })
        }
        op::START_STOP_UNIT => {
            let c: &Cdb6 = parse(cdb)?;
            reserved(cdb, 1, 0xFE)?;
            reserved(cdb, 2, 0xFF)?;
            reserved(cdb, 3, 0xF0)?;
            reserved(cdb, 4, 0x0C)?;
            control(cdb, 5)?;
            Ok(Command::StartStopUnit {
                start: c.b4 & 0x01 != 0,
                load_eject: c.b4 & 0x02 != 0,
                power_condition: c.b4 >> 4,
            })
        }
        op::PREVENT_ALLOW_MEDIUM_REMOVAL => {
            reserved_bytes(cdb, 1, 4)?;
            reserved(cdb, 4, 0xFC)?;
            control(cdb, 5)?;
            Ok(Command::PreventAllowMediumRemoval)
        }
        op::REPORT_LUNS => {
            let c: &ReportLuns = parse(cdb)?;
            reserved(cdb, 1, 0xFF)?;
            reserved_bytes(cdb, 3, 6)?;
            reserved(cdb, 10, 0xFF)?;
            let _ = (c.reserved, c.reserved2, c.reserved3);
            control(cdb, 11)?;
            if c.select > 2 {
                return Err(invalid(2, None));
            }
            // The allocation length must hold at least the 16-byte header + one entry.
            if c.alloc.get() < 16 {
                return Err(invalid(6, None));
            }
            Ok(Command::ReportLuns { select: c.select, alloc: c.alloc.get() })
        }
        op::UNMAP => {
            let c: &Unmap = parse(cdb)?;
            // ANCHOR is not supported.
            reserved(cdb, 1, 0xFF)?;
            reserved_bytes(cdb, 2, 6)?;
            reserved(cdb, 6, 0xE0)?;
            let _ = (c.anchor, c.reserved, c.group);
            control(cdb, 9)?;
            Ok(Command::Unmap { length: u32::from(c.length.get()) })
        }
        op::COMPARE_AND_WRITE => {
            let c: &CompareAndWrite = parse(cdb)?;
            no_protection(c.flags)?;
            // DPO, FUA accepted (bit 1, FUA_NV, obsolete); bits 2 and 0 reserved.
            reserved(cdb, 1, 0x05)?;
            reserved_bytes(cdb, 10, 13)?;
            reserved(cdb, 14, 0xC0)?;
            let _ = (c.reserved, c.group);
            control(cdb, 15)?;
            Ok(Command::CompareAndWrite(Range {
                lba: c.lba.get(),
                blocks: u32::from(c.blocks),
                fua: c.flags & 0x08 != 0,
                lba_byte: 2,
                length_byte: 13,
            }))
        }
        op::MAINTENANCE_IN => {
            let c: &ReportOpcodes = parse(cdb)?;
            if c.service_action & 0x1F != op::SA_REPORT_SUPPORTED_OPCODES {
                return Err(invalid(1, Some(4)));
            }
            reserved(cdb, 1, 0xE0)?;
            // Byte 2: RCTD (bit 7), REPORTING OPTIONS (bits 2..0: 000b..011b).
            reserved(cdb, 2, 0x78)?;
            if c.options & 0x07 > 3 {
                return Err(invalid(2, Some(2)));
            }
            reserved(cdb, 10, 0xFF)?;
            let _ = c.reserved;
            control(cdb, 11)?;
            Ok(Command::ReportOpcodes {
                rctd: c.options & 0x80 != 0,
                options: c.options & 0x07,
                opcode: c.opcode,
                service_action: c.requested_sa.get(),
                alloc: c.alloc.get(),
            })
        }
        _ => Err(invalid_opcode()),
    }
}

fn rw_command(opcode: u8, flags: u8, range: Range) -> Result<Command, Sense> {
    match opcode {
        op::READ_10 | op::READ_12 | op::READ_16 => {
            no_protection(flags)?;
            // DPO, FUA accepted; RARC (bit 2) accepted; bit 0 obsolete/reserved.
            reserved(&[0, flags], 1, 0x01)?;
            Ok(Command::Read(range))
        }
        op::WRITE_10 | op::WRITE_12 | op::WRITE_16 => {
            no_protection(flags)?;
            reserved(&[0, flags], 1, 0x05)?;
            Ok(Command::Write(range))
        }
        op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => {
            no_protection(flags)?;
            // BYTCHK (bits 2..1): 00 media only, 01 compare with data-out; others unsupported.
            let byte_check = (flags >> 1) & 0x03;
            if byte_check > 1 {
                return Err(invalid(1, Some(2)));
            }
            reserved(&[0, flags], 1, 0x09)?;
            Ok(Command::Verify {
                range: Range { fua: false, ..range },
                byte_check: byte_check == 1,
            })
        }
        op::WRITE_AND_VERIFY_10 | op::WRITE_AND_VERIFY_12 | op::WRITE_AND_VERIFY_16 => {
            no_protection(flags)?;
            // DPO (bit 4) accepted; BYTCHK (bits 2..1): 00b verify the medium, 01b compare
            // with the data-out, the others are not supported; bits 3 and 0 reserved.
            let byte_check = (flags >> 1) & 0x03;
            if byte_check > 1 {
                return Err(invalid(1, Some(2)));
            }
            reserved(&[0, flags], 1, 0x09)?;
            Ok(Command::WriteVerify {
                range: Range { fua: false, ..range },
                byte_check: byte_check == 1,
            })
        }
        op::PRE_FETCH_10 | op::PRE_FETCH_16 => {
            // IMMED (bit 1); the rest reserved.
            reserved(&[0, flags], 1, 0xFD)?;
            Ok(Command::PreFetch { range: Range { fua: false, ..range }, immed: flags & 0x02 != 0 })
        }
        op::WRITE_SAME_10 | op::WRITE_SAME_16 => {
            no_protection(flags)?;
            // ANCHOR (bit 4) not supported; UNMAP bit 3; NDOB bit 0 (16 only).
            let ndob_mask = if opcode == op::WRITE_SAME_16 { 0x01 } else { 0x00 };
            reserved(&[0, flags], 1, 0x17 & !ndob_mask)?;
            Ok(Command::WriteSame {
                range: Range { fua: false, ..range },
                unmap: flags & 0x08 != 0,
                no_data_out: flags & ndob_mask != 0,
            })
        }
        _ => Err(invalid(0, None)),
    }
}

impl Command {
    /// Subpages are not supported except 0 (and FFh with "all pages").
    fn check_subpage(self, subpage: u8) -> Result<Command, Sense> {
        if let Command::ModeSense { page, .. } = self {
            if subpage != 0 && !(page == 0x3F && subpage == 0xFF) {
                return Err(invalid(3, None));
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::sense::FieldPointer;

    #[test]
    fn read_write_10_16_6() {
        let c = decode(&[0x28, 0x08, 0, 0, 0x10, 0, 0, 0, 8, 0]).unwrap();
        assert_eq!(
            c,
            Command::Read(Range { lba: 0x1000, blocks: 8, fua: true, lba_byte: 2, length_byte: 7 })
        );
        let mut c16 = [0u8; 16];
        c16[0] = 0x8A;
        c16[2..10].copy_from_slice(&0x1_0000_0000u64.to_be_bytes());
        c16[10..14].copy_from_slice(&16u32.to_be_bytes());
        assert!(
            matches!(decode(&c16).unwrap(), Command::Write(r) if r.lba == 1 << 32 && r.blocks == 16)
        );
        // READ(6): length 0 means 256.
        assert!(
            matches!(decode(&[0x08, 0x01, 0x02, 0x03, 0, 0]).unwrap(), Command::Read(r) if r.lba == 0x10203 && r.blocks == 256)
        );
    }

    #[test]
    fn errors_point_at_the_field() {
        assert_eq!(
            decode(&[0xFF, 0, 0, 0, 0, 0]).unwrap_err(),
            Sense::illegal(Asc::INVALID_OPCODE, Some(FieldPointer::cdb(0, None)))
        );
        assert_eq!(
            decode(&[0x00, 0, 1, 0, 0, 0]).unwrap_err(),
            Sense::invalid_cdb_field(2, Some(0))
        );
        assert_eq!(
            decode(&[0x00, 0, 0, 0, 0, 0x01]).unwrap_err(),
            Sense::invalid_cdb_field(5, Some(0)),
            "LINK"
        );
        assert_eq!(
            decode(&[0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0]).unwrap_err(),
            Sense::invalid_cdb_field(1, Some(5)),
            "RDPROTECT"
        );
        assert_eq!(
            decode(&[0x12, 0, 0x80, 0, 36, 0]).unwrap_err(),
            Sense::invalid_cdb_field(2, None),
            "page without EVPD"
        );
        assert_eq!(
            decode(&[0x28, 0, 0, 0]).unwrap_err(),
            Sense::invalid_cdb_field(0, None),
            "short CDB"
        );
        assert!(decode(&[]).is_err());
        let mut rl = [0u8; 12];
        rl[0] = 0xA0;
        rl[9] = 15;
        assert_eq!(
            decode(&rl).unwrap_err(),
            Sense::invalid_cdb_field(6, None),
            "REPORT LUNS alloc < 16"
        );
        assert_eq!(
            decode(&[0x15, 0x00, 0, 0, 24, 0]).unwrap_err(),
            Sense::invalid_cdb_field(1, Some(4)),
            "PF=0"
        );
    }

    #[test]
    fn new_commands_decode() {
        let mut v12 = [0u8; 12];
        v12[0] = op::VERIFY_12;
        v12[1] = 0x12; // DPO, BYTCHK 01b
        v12[2..6].copy_from_slice(&7u32.to_be_bytes());
        v12[6..10].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(
            decode(&v12).unwrap(),
            Command::Verify {
                range: Range { lba: 7, blocks: 3, fua: false, lba_byte: 2, length_byte: 6 },
                byte_check: true
            }
        );
        v12[0] = op::WRITE_AND_VERIFY_12;
        assert!(matches!(decode(&v12).unwrap(), Command::WriteVerify { byte_check: true, .. }));
        v12[1] = 0x08;
        assert_eq!(decode(&v12).unwrap_err(), Sense::invalid_cdb_field(1, Some(3)), "reserved");
        let mut p = [0u8; 10];
        p[0] = op::PRE_FETCH_10;
        p[1] = 0x02;
        p[8] = 9;
        assert!(
            matches!(decode(&p).unwrap(), Command::PreFetch { immed: true, range } if range.blocks == 9)
        );
        let mut caw = [0u8; 16];
        caw[0] = op::COMPARE_AND_WRITE;
        caw[1] = 0x08;
        caw[13] = 4;
        assert!(
            matches!(decode(&caw).unwrap(), Command::CompareAndWrite(r) if r.blocks == 4 && r.fua && r.length_byte == 13)
        );
        caw[11] = 1;
        assert_eq!(decode(&caw).unwrap_err(), Sense::invalid_cdb_field(11, Some(0)));
        let mut r = [0u8; 12];
        r[0] = op::MAINTENANCE_IN;
        r[1] = 0x0B;
        assert_eq!(decode(&r).unwrap_err(), Sense::invalid_cdb_field(1, Some(4)), "other SA");
        r[1] = 0x0C;
        r[2] = 0x82;
        r[3] = 0x28;
        r[9] = 20;
        assert_eq!(
            decode(&r).unwrap(),
            Command::ReportOpcodes {
                rctd: true,
                options: 2,
                opcode: 0x28,
                service_action: 0,
                alloc: 20
            }
        );
        r[2] = 0x08;
        assert_eq!(decode(&r).unwrap_err(), Sense::invalid_cdb_field(2, Some(3)));
        let mut g = [0u8; 16];
        g[0] = op::SERVICE_ACTION_IN_16;
        g[1] = op::SA_GET_LBA_STATUS;
        g[2..10].copy_from_slice(&5u64.to_be_bytes());
        g[13] = 24;
        assert_eq!(decode(&g).unwrap(), Command::GetLbaStatus { lba: 5, alloc: 24 });
    }

    /// REPORT SUPPORTED OPERATION CODES' CDB usage data is the decoder's: each command it lists
    /// decodes with only its opcode (and service action) set, and any bit its usage data says
    /// the device does not use is refused (the control byte, whose vendor bits pass, aside).
    #[test]
    fn cdb_usage_data_matches_the_decoder() {
        use crate::scsi::emulator::supported::TABLE;
        for c in TABLE {
            let n = c.usage.len();
            assert_eq!(Some(n), cdb_length(c.opcode), "{:#04x}: CDB length", c.opcode);
            assert_eq!(c.usage[0], c.opcode);
            let mut base = [0u8; 16];
            base[0] = c.opcode;
            if c.has_service_action {
                base[1] = c.service_action;
                assert_eq!(c.usage[1], c.service_action, "{:#04x}: the SA bits", c.opcode);
            }
            match c.opcode {
                op::MODE_SELECT_6 | op::MODE_SELECT_10 => base[1] = 0x10,
                op::REPORT_LUNS => base[9] = 16,
                _ => {}
            }
            assert!(decode(&base[..n]).is_ok(), "{:#04x}: the bare CDB decodes", c.opcode);
            for byte in 1..n - 1 {
                for bit in 0..8 {
                    let b = 1u8 << bit;
                    if c.usage[byte] & b != 0 || (c.has_service_action && byte == 1) {
                        continue;
                    }
                    let mut cdb = base;
                    cdb[byte] |= b;
                    assert!(
                        decode(&cdb[..n]).is_err(),
                        "{:#04x}/{:#04x}: byte {byte} bit {bit} is not in the usage data but \
                         the decoder accepts it",
                        c.opcode,
                        c.service_action
                    );
                }
            }
        }
    }

    #[test]
    fn group_lengths() {
        assert_eq!(cdb_length(0x00), Some(6));
        assert_eq!(cdb_length(0x28), Some(10));
        assert_eq!(cdb_length(0x5A), Some(10));
        assert_eq!(cdb_length(0x88), Some(16));
        assert_eq!(cdb_length(0xA8), Some(12));
        assert_eq!(cdb_length(0x7F), None);
    }
}
