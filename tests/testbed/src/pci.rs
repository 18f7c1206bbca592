//! The simulated PCI function the controller dext matches and drives: its identity (vendor,
//! device, subsystem and class code, as the kernel matches them — DRIVERKIT.md §8) and its
//! configuration space as `IOPCIDevice::ConfigurationRead*` sees it (DRIVERKIT.md §7).
//!
//! The default device is dkraid's simulated RAID controller, `1af4:10f0`: QEMU's PCI ID list
//! (docs/specs/pci-ids.rst) sets 1af4:10f0..10ff aside "for experimental usage without
//! registration", so it names no real product. A shipping controller uses its vendor's IDs
//! (see docs/BUNDLE.md).

use std::fmt;

/// `memoryIndex` the shim passes for configuration space (`ConfigurationRead16/32`).
pub const CONFIG_SPACE_INDEX: u8 = 0xFF;

/// Configuration-space offsets (PCI Local Bus 3.0, type 0 header).
pub mod offset {
    pub const VENDOR_ID: u64 = 0x00;
    pub const DEVICE_ID: u64 = 0x02;
    pub const COMMAND: u64 = 0x04;
    pub const REVISION_ID: u64 = 0x08;
    pub const CLASS_CODE: u64 = 0x09;
    pub const HEADER_TYPE: u64 = 0x0E;
    pub const SUBSYSTEM_VENDOR_ID: u64 = 0x2C;
    pub const SUBSYSTEM_ID: u64 = 0x2E;
}

/// Size of the (conventional) configuration space.
pub const CONFIG_SPACE_SIZE: u64 = 256;

/// One PCI function's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimPciDevice {
    pub vendor_id: u16,
    pub device_id: u16,
    pub subsystem_vendor_id: u16,
    pub subsystem_id: u16,
    /// Base class, subclass, programming interface: 0x010400 is a RAID bus controller.
    pub class_code: u32,
    pub revision_id: u8,
}

/// dkraid's simulated RAID controller (the IDs `Info.plist` and the entitlements match).
pub const DKRAID_CONTROLLER: SimPciDevice = SimPciDevice {
    vendor_id: 0x1AF4,
    device_id: 0x10F0,
    subsystem_vendor_id: 0x1AF4,
    subsystem_id: 0x10F0,
    class_code: 0x01_04_00,
    revision_id: 0x01,
};

impl Default for SimPciDevice {
    fn default() -> Self {
        DKRAID_CONTROLLER
    }
}

impl SimPciDevice {
    /// The 32-bit configuration register at `offset & !3`, as IOPCIFamily's matching reads it:
    /// 0x00 is `device << 16 | vendor`, 0x2c `subsystem << 16 | subsystem vendor`, 0x08
    /// `class code << 8 | revision`.
    pub fn register(&self, offset: u8) -> u32 {
        let mut bytes = [0u8; 4];
        let base = u64::from(offset & !3);
        for (k, b) in bytes.iter_mut().enumerate() {
            *b = self.config_byte(base + k as u64);
        }
        u32::from_le_bytes(bytes)
    }

    fn config_byte(&self, at: u64) -> u8 {
        let le16 = |v: u16, k: u64| v.to_le_bytes()[k as usize];
        match at {
            0x00..=0x01 => le16(self.vendor_id, at - offset::VENDOR_ID),
            0x02..=0x03 => le16(self.device_id, at - offset::DEVICE_ID),
            0x08 => self.revision_id,
            0x09..=0x0B => self.class_code.to_le_bytes()[(at - offset::CLASS_CODE) as usize],
            // Header type 0 (a single-function endpoint); command, status and the BARs read 0:
            // the kernel has not enabled the device for the dext.
            0x2C..=0x2D => le16(self.subsystem_vendor_id, at - offset::SUBSYSTEM_VENDOR_ID),
            0x2E..=0x2F => le16(self.subsystem_id, at - offset::SUBSYSTEM_ID),
            _ => 0,
        }
    }

    /// A configuration-space read of `width` bits (8, 16, 32) at `offset`, little-endian as the
    /// bus delivers it. Reads past the end of configuration space or of an unsupported width
    /// return all ones, as a read of a missing function does.
    pub fn config_read(&self, at: u64, width: u32) -> u64 {
        let bytes = match width {
            8 => 1,
            16 => 2,
            32 => 4,
            _ => return all_ones(width),
        };
        if at.checked_add(bytes).is_none_or(|end| end > CONFIG_SPACE_SIZE) {
            return all_ones(width);
        }
        (0..bytes).fold(0u64, |v, k| v | (u64::from(self.config_byte(at + k)) << (8 * k)))
    }

    /// Parse `VENDOR:DEVICE` or `VENDOR:DEVICE:SUBVENDOR:SUBSYSTEM` (hexadecimal, as `lspci -n`
    /// prints them). Without subsystem IDs the subsystem repeats the primary IDs.
    pub fn parse_ids(text: &str) -> Result<SimPciDevice, String> {
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() != 2 && parts.len() != 4 {
            return Err(format!(
                "{text:?} is not VENDOR:DEVICE or VENDOR:DEVICE:SUBVENDOR:SUBSYSTEM (hex)"
            ));
        }
        let mut ids = [0u16; 4];
        for (k, p) in parts.iter().enumerate() {
            let digits = p.trim_start_matches("0x").trim_start_matches("0X");
            ids[k] = u16::from_str_radix(digits, 16)
                .map_err(|_| format!("{p:?} in {text:?} is not a 16-bit hexadecimal ID"))?;
        }
        if parts.len() == 2 {
            ids[2] = ids[0];
            ids[3] = ids[1];
        }
        Ok(SimPciDevice {
            vendor_id: ids[0],
            device_id: ids[1],
            subsystem_vendor_id: ids[2],
            subsystem_id: ids[3],
            ..DKRAID_CONTROLLER
        })
    }
}

fn all_ones(width: u32) -> u64 {
    match width {
        0 => 0,
        w if w >= 64 => u64::MAX,
        w => u64::MAX >> (64 - w),
    }
}

impl fmt::Display for SimPciDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:04x} (subsystem {:04x}:{:04x}, class {:06x})",
            self.vendor_id,
            self.device_id,
            self.subsystem_vendor_id,
            self.subsystem_id,
            self.class_code
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_space_reads_the_ids() {
        let d = DKRAID_CONTROLLER;
        assert_eq!(d.config_read(offset::VENDOR_ID, 16), 0x1AF4);
        assert_eq!(d.config_read(offset::DEVICE_ID, 16), 0x10F0);
        assert_eq!(d.config_read(0, 32), 0x10F0_1AF4);
        assert_eq!(d.config_read(offset::SUBSYSTEM_VENDOR_ID, 16), 0x1AF4);
        assert_eq!(d.config_read(offset::SUBSYSTEM_ID, 16), 0x10F0);
        assert_eq!(d.config_read(offset::REVISION_ID, 32), 0x0104_0001);
        assert_eq!(d.config_read(offset::CLASS_CODE + 2, 8), 0x01, "base class: mass storage");
        assert_eq!(d.config_read(offset::COMMAND, 16), 0);
        assert_eq!(d.config_read(offset::HEADER_TYPE, 8), 0);
        assert_eq!(d.config_read(0xFE, 16), 0);
        assert_eq!(d.config_read(0xFF, 16), 0xFFFF, "past the end reads all ones");
        assert_eq!(d.config_read(0x1000, 32), 0xFFFF_FFFF);
        assert_eq!(d.register(0x00), 0x10F0_1AF4);
        assert_eq!(d.register(0x2C), 0x10F0_1AF4);
        assert_eq!(d.register(0x2E), 0x10F0_1AF4, "the dword containing the offset");
        assert_eq!(d.register(0x08), 0x0104_0001);
    }

    #[test]
    fn parses_lspci_style_ids() {
        let d = SimPciDevice::parse_ids("1000:0073").unwrap();
        assert_eq!((d.vendor_id, d.device_id), (0x1000, 0x0073));
        assert_eq!((d.subsystem_vendor_id, d.subsystem_id), (0x1000, 0x0073));
        let d = SimPciDevice::parse_ids("1af4:10f0:1028:1f4d").unwrap();
        assert_eq!(d.register(0x2C), 0x1F4D_1028);
        assert!(SimPciDevice::parse_ids("1af4").is_err());
        assert!(SimPciDevice::parse_ids("1af4:xyz").is_err());
        assert!(SimPciDevice::parse_ids("1af4:10000").is_err());
        assert_eq!(DKRAID_CONTROLLER.to_string(), "1af4:10f0 (subsystem 1af4:10f0, class 010400)");
    }
}
