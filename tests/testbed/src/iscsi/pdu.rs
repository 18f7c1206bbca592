//! iSCSI PDUs (RFC 7143 §11): the 48-byte Basic Header Segment, additional header segments and
//! the data segment, read from and written to a byte stream; text key=value lists (§6.1).
//! Header and data digests are never negotiated (HeaderDigest=None, DataDigest=None), so a PDU
//! on the wire is BHS + AHS + data padded to 4 bytes.

use std::fmt;
use std::io::{self, Read, Write};

/// Opcodes (RFC 7143 §11.1.1.1).
pub mod op {
    pub const NOP_OUT: u8 = 0x00;
    pub const SCSI_COMMAND: u8 = 0x01;
    pub const TASK_MGMT_REQUEST: u8 = 0x02;
    pub const LOGIN_REQUEST: u8 = 0x03;
    pub const TEXT_REQUEST: u8 = 0x04;
    pub const DATA_OUT: u8 = 0x05;
    pub const LOGOUT_REQUEST: u8 = 0x06;
    pub const SNACK_REQUEST: u8 = 0x10;
    pub const NOP_IN: u8 = 0x20;
    pub const SCSI_RESPONSE: u8 = 0x21;
    pub const TASK_MGMT_RESPONSE: u8 = 0x22;
    pub const LOGIN_RESPONSE: u8 = 0x23;
    pub const TEXT_RESPONSE: u8 = 0x24;
    pub const DATA_IN: u8 = 0x25;
    pub const LOGOUT_RESPONSE: u8 = 0x26;
    pub const R2T: u8 = 0x31;
    pub const ASYNC_MESSAGE: u8 = 0x32;
    pub const REJECT: u8 = 0x3F;

    /// The opcode's name, for errors and logs.
    pub fn name(opcode: u8) -> &'static str {
        match opcode {
            NOP_OUT => "NOP-Out",
            SCSI_COMMAND => "SCSI Command",
            TASK_MGMT_REQUEST => "Task Management Function Request",
            LOGIN_REQUEST => "Login Request",
            TEXT_REQUEST => "Text Request",
            DATA_OUT => "SCSI Data-Out",
            LOGOUT_REQUEST => "Logout Request",
            SNACK_REQUEST => "SNACK Request",
            NOP_IN => "NOP-In",
            SCSI_RESPONSE => "SCSI Response",
            TASK_MGMT_RESPONSE => "Task Management Function Response",
            LOGIN_RESPONSE => "Login Response",
            TEXT_RESPONSE => "Text Response",
            DATA_IN => "SCSI Data-In",
            LOGOUT_RESPONSE => "Logout Response",
            R2T => "Ready To Transfer",
            ASYNC_MESSAGE => "Asynchronous Message",
            REJECT => "Reject",
            _ => "unknown opcode",
        }
    }
}

/// Reject reasons (RFC 7143 §11.17.1).
pub mod reject {
    pub const PROTOCOL_ERROR: u8 = 0x04;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x05;
    pub const INVALID_PDU_FIELD: u8 = 0x09;
}

/// The reserved Initiator/Target Task Tag value.
pub const RESERVED_TAG: u32 = 0xFFFF_FFFF;
/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;

/// What can be wrong with a PDU on the wire; each names the field.
#[derive(Debug)]
pub enum PduError {
    /// The peer closed the connection between PDUs.
    Closed,
    /// The connection ended or failed inside a PDU.
    Io(io::Error),
    /// DataSegmentLength is larger than the MaxRecvDataSegmentLength this side declared.
    DataSegmentTooLong { header: Box<[u8; BHS_LEN]>, length: usize, max: usize },
}

impl fmt::Display for PduError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PduError::Closed => write!(f, "ConnectionClosed: the initiator closed the connection"),
            PduError::Io(e) => write!(f, "TruncatedPdu: the connection failed inside a PDU: {e}"),
            PduError::DataSegmentTooLong { header, length, max } => write!(
                f,
                "DataSegmentTooLong: a {} PDU carries a {length}-byte data segment; this target \
                 declared MaxRecvDataSegmentLength={max}",
                op::name(header[0] & 0x3F)
            ),
        }
    }
}

impl std::error::Error for PduError {}

/// One PDU: BHS, AHS (whole 4-byte words) and the data segment (unpadded).
#[derive(Clone, PartialEq, Eq)]
pub struct Pdu {
    pub bhs: [u8; BHS_LEN],
    pub ahs: Vec<u8>,
    pub data: Vec<u8>,
}

impl fmt::Debug for Pdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (itt {:#x}, {} AHS bytes, {} data bytes)",
            op::name(self.opcode()),
            self.itt(),
            self.ahs.len(),
            self.data.len()
        )
    }
}

impl Pdu {
    /// A PDU of this opcode with every other field zero.
    pub fn new(opcode: u8) -> Pdu {
        let mut bhs = [0u8; BHS_LEN];
        bhs[0] = opcode & 0x3F;
        Pdu { bhs, ahs: Vec::new(), data: Vec::new() }
    }

    pub fn opcode(&self) -> u8 {
        self.bhs[0] & 0x3F
    }

    /// The I bit: an immediate command.
    pub fn immediate(&self) -> bool {
        self.bhs[0] & 0x40 != 0
    }

    pub fn set_immediate(&mut self, on: bool) {
        self.bhs[0] = (self.bhs[0] & !0x40) | if on { 0x40 } else { 0 };
    }

    /// Byte 1: the F bit and the opcode-specific flags.
    pub fn flags(&self) -> u8 {
        self.bhs[1]
    }

    pub fn final_bit(&self) -> bool {
        self.bhs[1] & 0x80 != 0
    }

    pub fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes([self.bhs[at], self.bhs[at + 1], self.bhs[at + 2], self.bhs[at + 3]])
    }

    pub fn set_u32(&mut self, at: usize, v: u32) {
        self.bhs[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    pub fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.bhs[at], self.bhs[at + 1]])
    }

    pub fn set_u16(&mut self, at: usize, v: u16) {
        self.bhs[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    pub fn itt(&self) -> u32 {
        self.u32_at(16)
    }

    pub fn set_itt(&mut self, v: u32) {
        self.set_u32(16, v);
    }

    /// Bytes 8..16: the LUN (or ISID/TSIH in login PDUs).
    pub fn lun_bytes(&self) -> [u8; 8] {
        let mut l = [0u8; 8];
        l.copy_from_slice(&self.bhs[8..16]);
        l
    }

    pub fn set_lun_bytes(&mut self, l: [u8; 8]) {
        self.bhs[8..16].copy_from_slice(&l);
    }

    /// Encode BHS + AHS + padded data. The AHS and data lengths are filled in from the fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut bhs = self.bhs;
        bhs[4] = (self.ahs.len() / 4) as u8;
        let len = self.data.len() as u32;
        bhs[5..8].copy_from_slice(&len.to_be_bytes()[1..4]);
        let mut out = Vec::with_capacity(BHS_LEN + self.ahs.len() + padded(self.data.len()));
        out.extend_from_slice(&bhs);
        out.extend_from_slice(&self.ahs);
        out.extend_from_slice(&self.data);
        out.resize(out.len() + padded(self.data.len()) - self.data.len(), 0);
        out
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())?;
        w.flush()
    }

    /// Read one PDU whose data segment may be at most `max_data` bytes.
    pub fn read_from(r: &mut impl Read, max_data: usize) -> Result<Pdu, PduError> {
        let mut bhs = [0u8; BHS_LEN];
        // A clean close between PDUs is not an error in a PDU.
        let mut got = 0;
        while got < BHS_LEN {
            match r.read(&mut bhs[got..]) {
                Ok(0) if got == 0 => return Err(PduError::Closed),
                Ok(0) => {
                    return Err(PduError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the connection closed after {got} of the 48 header bytes"),
                    )))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if got == 0 && is_disconnect(&e) => return Err(PduError::Closed),
                Err(e) => return Err(PduError::Io(e)),
            }
        }
        let ahs_len = usize::from(bhs[4]) * 4;
        let data_len = u32::from_be_bytes([0, bhs[5], bhs[6], bhs[7]]) as usize;
        if data_len > max_data {
            return Err(PduError::DataSegmentTooLong {
                header: Box::new(bhs),
                length: data_len,
                max: max_data,
            });
        }
        let mut ahs = vec![0u8; ahs_len];
        r.read_exact(&mut ahs).map_err(PduError::Io)?;
        let mut data = vec![0u8; padded(data_len)];
        r.read_exact(&mut data).map_err(PduError::Io)?;
        data.truncate(data_len);
        Ok(Pdu { bhs, ahs, data })
    }
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
}

/// `n` rounded up to a whole number of 4-byte words.
pub const fn padded(n: usize) -> usize {
    (n + 3) & !3
}

/// Serial number arithmetic (RFC 1982, 32 bits): `a < b`.
pub fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// `a <= b` in serial number arithmetic.
pub fn sn_le(a: u32, b: u32) -> bool {
    a == b || sn_lt(a, b)
}

/// A text data segment: `key=value` pairs separated by NUL (RFC 7143 §6.1).
pub fn parse_text(data: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in data.split(|b| *b == 0) {
        if item.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(item)
            .map_err(|_| format!("MalformedText: a key=value pair is not UTF-8: {item:02x?}"))?;
        let Some((k, v)) = text.split_once('=') else {
            return Err(format!("MalformedText: {text:?} has no '='"));
        };
        if k.is_empty() || k.len() > 63 {
            return Err(format!("MalformedText: key {k:?} must be 1 to 63 characters"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Encode `key=value` pairs as a text data segment.
pub fn encode_text(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// An 8-byte iSCSI LUN field as the single-level LUN number (SAM-5 peripheral or flat
/// addressing); `None` for other addressing methods or a nonzero second level.
pub fn decode_lun(l: [u8; 8]) -> Option<u64> {
    if l[2..].iter().any(|b| *b != 0) {
        return None;
    }
    match l[0] >> 6 {
        0 if l[0] == 0 => Some(u64::from(l[1])),
        1 => Some((u64::from(l[0] & 0x3F) << 8) | u64::from(l[1])),
        _ => None,
    }
}

/// The LUN field for a single-level LUN number.
pub fn encode_lun(lun: u64) -> [u8; 8] {
    let mut l = [0u8; 8];
    if lun < 256 {
        l[1] = lun as u8;
    } else {
        l[0] = 0x40 | ((lun >> 8) & 0x3F) as u8;
        l[1] = lun as u8;
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pdu_round_trips_with_padding() {
        let mut p = Pdu::new(op::SCSI_COMMAND);
        p.set_immediate(true);
        p.bhs[1] = 0x80;
        p.set_itt(0x1234);
        p.data = vec![1, 2, 3, 4, 5];
        let bytes = p.encode();
        assert_eq!(bytes.len(), 48 + 8, "5 data bytes padded to 8");
        assert_eq!(&bytes[5..8], &[0, 0, 5]);
        let q = Pdu::read_from(&mut &bytes[..], 8192).unwrap();
        assert_eq!(q.data, p.data);
        assert_eq!(q.encode(), bytes, "re-encodes to the same bytes");
        assert!(q.immediate() && q.final_bit());
        assert_eq!(q.opcode(), op::SCSI_COMMAND);
        assert_eq!(q.itt(), 0x1234);
    }

    #[test]
    fn errors_are_named() {
        assert!(matches!(Pdu::read_from(&mut &[][..], 10), Err(PduError::Closed)));
        let e = Pdu::read_from(&mut &[0u8; 20][..], 10).unwrap_err();
        assert!(e.to_string().starts_with("TruncatedPdu"), "{e}");
        let mut p = Pdu::new(op::DATA_OUT);
        p.data = vec![0; 100];
        let e = Pdu::read_from(&mut &p.encode()[..], 64).unwrap_err();
        assert!(
            e.to_string().contains("DataSegmentTooLong: a SCSI Data-Out PDU carries a 100-byte"),
            "{e}"
        );
        // The AHS or data cut short.
        let mut bytes = p.encode();
        bytes.truncate(60);
        assert!(Pdu::read_from(&mut &bytes[..], 8192).unwrap_err().to_string().contains("Trunc"));
    }

    #[test]
    fn text_pairs() {
        let t = encode_text(&[("A".into(), "1".into()), ("SendTargets".into(), "All".into())]);
        assert_eq!(t, b"A=1\0SendTargets=All\0");
        let back = parse_text(&t).unwrap();
        assert_eq!(back[1], ("SendTargets".to_string(), "All".to_string()));
        assert!(parse_text(b"novalue\0").unwrap_err().contains("no '='"));
        assert!(parse_text(b"=x\0").unwrap_err().contains("1 to 63"));
        assert!(parse_text(&[0xff, b'=', b'1']).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn serial_numbers_wrap() {
        assert!(sn_lt(1, 2) && !sn_lt(2, 1) && !sn_lt(5, 5));
        assert!(sn_lt(0xFFFF_FFFF, 0), "wraps");
        assert!(sn_le(7, 7) && sn_le(0xFFFF_FFF0, 3));
    }

    #[test]
    fn luns() {
        assert_eq!(decode_lun([0; 8]), Some(0));
        assert_eq!(decode_lun(encode_lun(5)), Some(5));
        assert_eq!(decode_lun(encode_lun(300)), Some(300));
        assert_eq!(decode_lun([0, 1, 0, 2, 0, 0, 0, 0]), None, "two levels");
        assert_eq!(decode_lun([0x80, 0, 0, 0, 0, 0, 0, 0]), None, "logical unit addressing");
    }
}
