//! Fixed-format sense data (SPC-4 4.5.3): 18 bytes, response code 70h. macOS parses only this
//! format unless the control page's D_SENSE bit is set, which this device never sets.

/// Length of fixed-format sense data as built here.
pub const FIXED_SENSE_LEN: usize = 18;

/// Sense keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SenseKey {
    NoSense = 0x0,
    RecoveredError = 0x1,
    NotReady = 0x2,
    MediumError = 0x3,
    HardwareError = 0x4,
    IllegalRequest = 0x5,
    UnitAttention = 0x6,
    DataProtect = 0x7,
    AbortedCommand = 0xB,
    Miscompare = 0xE,
}

/// Additional sense code and qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asc(pub u8, pub u8);

impl Asc {
    pub const NO_ADDITIONAL_SENSE: Asc = Asc(0x00, 0x00);
    pub const INVALID_OPCODE: Asc = Asc(0x20, 0x00);
    pub const LBA_OUT_OF_RANGE: Asc = Asc(0x21, 0x00);
    pub const INVALID_FIELD_IN_CDB: Asc = Asc(0x24, 0x00);
    pub const LUN_NOT_SUPPORTED: Asc = Asc(0x25, 0x00);
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Asc = Asc(0x26, 0x00);
    pub const PARAMETER_LIST_LENGTH_ERROR: Asc = Asc(0x1A, 0x00);
    pub const UNRECOVERED_READ_ERROR: Asc = Asc(0x11, 0x00);
    pub const WRITE_ERROR: Asc = Asc(0x0C, 0x00);
    pub const MISCOMPARE_DURING_VERIFY: Asc = Asc(0x1D, 0x00);
    pub const WRITE_PROTECTED: Asc = Asc(0x27, 0x00);
    pub const BECOMING_READY: Asc = Asc(0x04, 0x01);
    pub const INITIALIZING_COMMAND_REQUIRED: Asc = Asc(0x04, 0x02);
    pub const POWER_ON_OR_RESET: Asc = Asc(0x29, 0x00);
    pub const CAPACITY_DATA_CHANGED: Asc = Asc(0x2A, 0x09);
    pub const REPORTED_LUNS_DATA_CHANGED: Asc = Asc(0x3F, 0x0E);
    pub const SAVING_PARAMETERS_NOT_SUPPORTED: Asc = Asc(0x39, 0x00);
    pub const INTERNAL_TARGET_FAILURE: Asc = Asc(0x44, 0x00);
}

/// Where in the CDB (`in_cdb`) or the parameter list an invalid field is: byte and, if the
/// whole byte is not at fault, the bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldPointer {
    pub in_cdb: bool,
    pub byte: u16,
    pub bit: Option<u8>,
}

impl FieldPointer {
    pub const fn cdb(byte: u16, bit: Option<u8>) -> FieldPointer {
        FieldPointer { in_cdb: true, byte, bit }
    }

    pub const fn parameter(byte: u16, bit: Option<u8>) -> FieldPointer {
        FieldPointer { in_cdb: false, byte, bit }
    }
}

/// One sense condition, before it is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    pub key: SenseKey,
    pub asc: Asc,
    /// INFORMATION (e.g. the first bad LBA); only representable up to 32 bits in fixed format.
    pub information: Option<u64>,
    pub field: Option<FieldPointer>,
}

impl Sense {
    pub const fn new(key: SenseKey, asc: Asc) -> Sense {
        Sense { key, asc, information: None, field: None }
    }

    pub const fn illegal(asc: Asc, field: Option<FieldPointer>) -> Sense {
        Sense { key: SenseKey::IllegalRequest, asc, information: None, field }
    }

    pub const fn invalid_cdb_field(byte: u16, bit: Option<u8>) -> Sense {
        Sense::illegal(Asc::INVALID_FIELD_IN_CDB, Some(FieldPointer::cdb(byte, bit)))
    }

    pub const fn invalid_parameter(byte: u16, bit: Option<u8>) -> Sense {
        Sense::illegal(
            Asc::INVALID_FIELD_IN_PARAMETER_LIST,
            Some(FieldPointer::parameter(byte, bit)),
        )
    }

    pub const fn with_information(mut self, information: u64) -> Sense {
        self.information = Some(information);
        self
    }

    /// Lay out as 18 bytes of fixed-format sense data.
    pub fn to_fixed(&self) -> [u8; FIXED_SENSE_LEN] {
        let mut s = [0u8; FIXED_SENSE_LEN];
        s[0] = 0x70;
        s[2] = self.key as u8;
        if let Some(info) = self.information {
            if let Ok(info) = u32::try_from(info) {
                s[0] |= 0x80;
                s[3..7].copy_from_slice(&info.to_be_bytes());
            }
        }
        s[7] = (FIXED_SENSE_LEN - 8) as u8;
        s[12] = self.asc.0;
        s[13] = self.asc.1;
        if let Some(f) = self.field {
            s[15] = 0x80;
            if f.in_cdb {
                s[15] |= 0x40;
            }
            if let Some(bit) = f.bit {
                s[15] |= 0x08 | (bit & 0x07);
            }
            s[16..18].copy_from_slice(&f.byte.to_be_bytes());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medium_error_carries_the_lba() {
        let s = Sense::new(SenseKey::MediumError, Asc::UNRECOVERED_READ_ERROR)
            .with_information(0x1234)
            .to_fixed();
        assert_eq!(s[0], 0xF0, "valid + 70h");
        assert_eq!(s[2], 0x03);
        assert_eq!(&s[3..7], &[0, 0, 0x12, 0x34]);
        assert_eq!(s[7], 10);
        assert_eq!((s[12], s[13]), (0x11, 0x00));
        assert_eq!(&s[15..18], &[0, 0, 0]);
    }

    #[test]
    fn field_pointers() {
        let s = Sense::invalid_cdb_field(2, None).to_fixed();
        assert_eq!(s[0], 0x70);
        assert_eq!((s[2], s[12], s[13]), (0x05, 0x24, 0x00));
        assert_eq!(&s[15..18], &[0xC0, 0, 2], "SKSV, C/D, byte 2");
        let s = Sense::invalid_cdb_field(1, Some(5)).to_fixed();
        assert_eq!(&s[15..18], &[0xC0 | 0x08 | 5, 0, 1], "BPV and bit 5");
        let s = Sense::invalid_parameter(300, Some(2)).to_fixed();
        assert_eq!(&s[15..18], &[0x80 | 0x08 | 2, 0x01, 0x2C], "parameter list: C/D = 0");
    }

    #[test]
    fn a_64_bit_lba_is_not_claimed_valid() {
        let s = Sense::new(SenseKey::MediumError, Asc::UNRECOVERED_READ_ERROR)
            .with_information(1 << 40)
            .to_fixed();
        assert_eq!(s[0], 0x70);
        assert_eq!(&s[3..7], &[0; 4]);
    }
}
