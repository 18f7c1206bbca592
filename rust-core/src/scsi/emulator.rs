//! An SPC/SBC direct-access device over a [`BlockBackend`] (SCSI.md's command set): what the
//! fake block device and the simulated firmware's volumes answer. No allocation, no panic: every
//! response is built in a fixed buffer and copied out, truncated to the allocation length and to
//! the host's buffer, with the exact byte count reported.

use super::backend::{BackendError, BlockBackend};
use super::cdb::{decode, Command, Range};
use super::sense::{Asc, FieldPointer, Sense, SenseKey};

/// SCSI status bytes.
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
}

/// The most blocks one COMPARE AND WRITE may name (VPD B0h MAXIMUM COMPARE AND WRITE LENGTH;
/// the field is one byte).
pub const MAX_COMPARE_AND_WRITE_BLOCKS: u32 = 255;

/// The timeout REPORT SUPPORTED OPERATION CODES recommends for every command (RCTD), in
/// seconds: the driver's task timeout.
pub const RECOMMENDED_TIMEOUT_S: u32 = 30;

/// The device's names, as INQUIRY and the VPD pages report them. ASCII, space-padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub vendor: [u8; 8],
    pub product: [u8; 16],
    pub revision: [u8; 4],
    pub serial: [u8; 16],
    /// The 16-byte NAA 6 designator of VPD 83h (first nibble 6).
    pub naa: [u8; 16],
}

impl Identity {
    /// dkraid's identity for volume `index`: serial and NAA derived from it.
    pub fn dkraid(product: &[u8], index: u32) -> Identity {
        let mut p = [b' '; 16];
        let n = product.len().min(16);
        p[..n].copy_from_slice(&product[..n]);
        let mut serial = *b"DKRAID0000000000";
        let mut v = index;
        for i in (6..16).rev() {
            serial[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        // NAA 6, OUI 00-00-00 (none registered: locally administered identifiers would need
        // NAA 3; dkraid is a development device), vendor-specific part = "DKRAID" + index.
        let mut naa = [0u8; 16];
        naa[0] = 0x60;
        naa[4..10].copy_from_slice(b"DKRAID");
        naa[12..16].copy_from_slice(&index.to_be_bytes());
        Identity { vendor: *b"DKRAID  ", product: p, revision: *b"0001", serial, naa }
    }
}

/// Limits the device reports in VPD B0h and enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_transfer_bytes: u64,
    pub optimal_transfer_bytes: u64,
    pub max_unmap_blocks: u32,
    pub max_unmap_descriptors: u32,
    pub max_write_same_blocks: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_transfer_bytes: crate::limits::MAX_TRANSFER_BYTES,
            optimal_transfer_bytes: 1 << 20,
            max_unmap_blocks: 1 << 22,
            max_unmap_descriptors: 16,
            max_write_same_blocks: 1 << 22,
        }
    }
}

/// The host's data buffer for one command.
#[derive(Debug)]
pub enum Data<'a> {
    None,
    /// Device → host; its length is what the host will accept.
    In(&'a mut [u8]),
    /// Host → device.
    Out(&'a [u8]),
}

/// The outcome of one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub status: u8,
    pub sense: Option<Sense>,
    /// Exactly the bytes moved.
    pub bytes: u64,
}

impl Completion {
    const fn good(bytes: u64) -> Completion {
        Completion { status: status::GOOD, sense: None, bytes }
    }

    const fn check(sense: Sense) -> Completion {
        Completion { status: status::CHECK_CONDITION, sense: Some(sense), bytes: 0 }
    }
}

/// A pending unit attention, highest priority first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Attention {
    PowerOnReset,
    CapacityChanged,
    LunsChanged,
}

impl Attention {
    const fn asc(self) -> Asc {
        match self {
            Attention::PowerOnReset => Asc::POWER_ON_OR_RESET,
            Attention::CapacityChanged => Asc::CAPACITY_DATA_CHANGED,
            Attention::LunsChanged => Asc::REPORTED_LUNS_DATA_CHANGED,
        }
    }
}

/// Mode parameter block sizes.
const CACHING_PAGE_LEN: usize = 20;
const CONTROL_PAGE_LEN: usize = 12;
const SCRATCH: usize = 128;

/// The emulated disk (LUN 0 of one target).
#[derive(Debug)]
pub struct Emulator<B: BlockBackend> {
    backend: B,
    identity: Identity,
    limits: Limits,
    attention: Option<Attention>,
    write_cache: bool,
    stopped: bool,
}

impl<B: BlockBackend> Emulator<B> {
    /// A new device: it reports POWER ON OR RESET (29/00) once, as after initialization.
    pub fn new(backend: B, identity: Identity, limits: Limits) -> Emulator<B> {
        Emulator {
            backend,
            identity,
            limits,
            attention: Some(Attention::PowerOnReset),
            write_cache: true,
            stopped: false,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    pub fn write_cache_enabled(&self) -> bool {
        self.write_cache
    }

    fn raise(&mut self, a: Attention) {
        self.attention = Some(match self.attention {
            Some(current) if current < a => current,
            _ => a,
        });
    }

    /// A bus or target reset happened.
    pub fn reset(&mut self) {
        self.raise(Attention::PowerOnReset);
    }

    /// The backend's capacity changed: report 2A/09 once.
    pub fn capacity_changed(&mut self) {
        self.raise(Attention::CapacityChanged);
    }

    /// The LUN inventory changed: report 3F/0E once.
    pub fn luns_changed(&mut self) {
        self.raise(Attention::LunsChanged);
    }

    /// Execute one command. `lun` is the flat LUN from the task's LUN bytes; `requested` is the
    /// task's fRequestedTransferCount.
    pub fn execute(&mut self, cdb: &[u8], lun: u64, requested: u64, data: Data<'_>) -> Completion {
        let command = match decode(cdb) {
            Ok(c) => c,
            Err(sense) => return Completion::check(sense),
        };
        let lun_ok = lun == 0;
        // INQUIRY, REPORT LUNS and REQUEST SENSE are not failed by a pending unit attention,
        // and are the only commands a missing LUN answers.
        match command {
            Command::Inquiry { evpd, page, alloc } => {
                return self.inquiry(lun_ok, evpd, page, alloc, requested, data)
            }
            Command::ReportLuns { alloc, .. } => return self.report_luns(alloc, requested, data),
            Command::RequestSense { alloc } => {
                return self.request_sense(lun_ok, alloc, requested, data)
            }
            _ => {}
        }
        if !lun_ok {
            return Completion::check(Sense::new(SenseKey::IllegalRequest, Asc::LUN_NOT_SUPPORTED));
        }
        if let Some(a) = self.attention.take() {
            return Completion::check(Sense::new(SenseKey::UnitAttention, a.asc()));
        }
        let needs_medium =
            !matches!(command, Command::StartStopUnit { .. } | Command::PreventAllowMediumRemoval);
        if self.stopped && needs_medium {
            return Completion::check(Sense::new(
                SenseKey::NotReady,
                Asc::INITIALIZING_COMMAND_REQUIRED,
            ));
        }
        match command {
            Command::TestUnitReady | Command::PreventAllowMediumRemoval => Completion::good(0),
            Command::StartStopUnit { start, load_eject, power_condition } => {
                if power_condition == 0 && !load_eject {
                    self.stopped = !start;
                }
                Completion::good(0)
            }
            Command::ReadCapacity10 => self.read_capacity_10(requested, data),
            Command::ReadCapacity16 { alloc } => self.read_capacity_16(alloc, requested, data),
            Command::ModeSense { ten, dbd, llbaa, control, page, alloc } => {
                self.mode_sense(ten, dbd, llbaa, control, page, alloc, requested, data)
            }
            Command::ModeSelect { ten, length } => self.mode_select(ten, length, requested, data),
            Command::Read(r) => self.read(r, requested, data),
            Command::Write(r) => self.write(r, requested, data),
            Command::Verify { range, byte_check } => {
                self.verify(range, byte_check, requested, data)
            }
            Command::SynchronizeCache { lba, blocks } => {
                if let Err(s) = self.check_range(lba, u64::from(blocks)) {
                    return Completion::check(s);
                }
                Self::backend_result(self.backend.flush(), 0)
            }
            Command::WriteVerify { range, byte_check } => {
                self.write_verify(range, byte_check, requested, data)
            }
            Command::PreFetch { range, immed } => {
                // No read cache to stage blocks in (the RAID firmware's cache holds writes
                // only): GOOD, not CONDITION MET, says they were not all staged (SBC-4 5.8).
                let _ = immed;
                match self.check_range(range.lba, u64::from(range.blocks)) {
                    Ok(()) => Completion::good(0),
                    Err(s) => Completion::check(s),
                }
            }
            Command::CompareAndWrite(range) => self.compare_and_write(range, requested, data),
            Command::ReportOpcodes { rctd, options, opcode, service_action, alloc } => {
                self.report_opcodes(rctd, options, opcode, service_action, alloc, requested, data)
            }
            Command::GetLbaStatus { lba, alloc } => {
                self.get_lba_status(lba, alloc, requested, data)
            }
            Command::Unmap { length } => self.unmap(length, requested, data),
            Command::WriteSame { range, unmap, no_data_out } => {
                self.write_same(range, unmap, no_data_out, requested, data)
            }
            Command::Inquiry { .. } | Command::ReportLuns { .. } | Command::RequestSense { .. } => {
                Completion::good(0)
            }
        }
    }

    // ------------------------------------------------------------------ data-in helpers --

    /// Copy `response` to the host: at most `alloc` bytes, the host's buffer and its requested
    /// count. The response's own length fields are never changed.
    fn data_in(response: &[u8], alloc: u32, requested: u64, data: Data<'_>) -> Completion {
        let Data::In(buf) = data else {
            return Completion::good(0);
        };
        let n = response
            .len()
            .min(alloc as usize)
            .min(buf.len())
            .min(usize::try_from(requested).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&response[..n]);
        Completion::good(n as u64)
    }

    fn backend_result(r: Result<(), BackendError>, bytes: u64) -> Completion {
        match r {
            Ok(()) => Completion::good(bytes),
            Err(BackendError::ReadError { lba }) => Completion::check(
                Sense::new(SenseKey::MediumError, Asc::UNRECOVERED_READ_ERROR)
                    .with_information(lba),
            ),
            Err(BackendError::WriteError { lba }) => Completion::check(
                Sense::new(SenseKey::MediumError, Asc::WRITE_ERROR).with_information(lba),
            ),
            Err(BackendError::Internal) => {
                Completion::check(Sense::new(SenseKey::HardwareError, Asc::INTERNAL_TARGET_FAILURE))
            }
        }
    }

    // ------------------------------------------------------------------------ INQUIRY --

    fn inquiry(
        &mut self,
        lun_ok: bool,
        evpd: bool,
        page: u8,
        alloc: u32,
        requested: u64,
        data: Data<'_>,
    ) -> Completion {
        let mut r = [0u8; SCRATCH];
        if !evpd {
            // Standard data, 96 bytes. No LU here: PQ 3, PDT 1Fh.
            r[0] = if lun_ok { 0x00 } else { 0x7F };
            r[2] = 0x06; // SPC-4
            r[3] = 0x12; // HISUP, response data format 2
            r[4] = 96 - 5;
            r[7] = 0x02; // CMDQUE
            r[8..16].copy_from_slice(&self.identity.vendor);
            r[16..32].copy_from_slice(&self.identity.product);
            r[32..36].copy_from_slice(&self.identity.revision);
            // Version descriptors: SAM-5, SPC-4, SBC-3.
            r[58..60].copy_from_slice(&0x00A0u16.to_be_bytes());
            r[60..62].copy_from_slice(&0x0460u16.to_be_bytes());
            r[62..64].copy_from_slice(&0x04C0u16.to_be_bytes());
            return Self::data_in(&r[..96], alloc, requested, data);
        }
        if !lun_ok {
            return Completion::check(Sense::new(SenseKey::IllegalRequest, Asc::LUN_NOT_SUPPORTED));
        }
        let unmap = self.backend.supports_unmap();
        let len = match page {
            0x00 => {
                let pages: [u8; 6] = [0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2];
                let n = if unmap { 6 } else { 5 };
                r[4..4 + n].copy_from_slice(&pages[..n]);
                r[3] = n as u8;
                4 + n
            }
            0x80 => {
                r[1] = 0x80;
                r[3] = 16;
                r[4..20].copy_from_slice(&self.identity.serial);
                20
            }
            0x83 => {
                r[1] = 0x83;
                // NAA 6 (binary, LU-associated, type 3), 16 bytes.
                r[4..8].copy_from_slice(&[0x01, 0x03, 0x00, 0x10]);
                r[8..24].copy_from_slice(&self.identity.naa);
                // T10 vendor ID (ASCII, LU-associated, type 1): vendor + serial.
                r[24..28].copy_from_slice(&[0x02, 0x01, 0x00, 24]);
                r[28..36].copy_from_slice(&self.identity.vendor);
                r[36..52].copy_from_slice(&self.identity.serial);
                r[2..4].copy_from_slice(&48u16.to_be_bytes());
                52
            }
            0xB0 => {
                r[1] = 0xB0;
                r[3] = 0x3C;
                let bs = u64::from(self.backend.block_size().max(1));
                let max_blocks =
                    u32::try_from(self.limits.max_transfer_bytes / bs).unwrap_or(u32::MAX);
                let opt_blocks =
                    u32::try_from(self.limits.optimal_transfer_bytes / bs).unwrap_or(u32::MAX);
                // WSNZ: a WRITE SAME of 0 blocks ("to the end") is refused.
                r[4] = 0x01;
                r[5] = MAX_COMPARE_AND_WRITE_BLOCKS as u8;
                r[8..12].copy_from_slice(&max_blocks.to_be_bytes());
                r[12..16].copy_from_slice(&opt_blocks.to_be_bytes());
                if unmap {
                    r[20..24].copy_from_slice(&self.limits.max_unmap_blocks.to_be_bytes());
                    r[24..28].copy_from_slice(&self.limits.max_unmap_descriptors.to_be_bytes());
                }
                r[36..44].copy_from_slice(&self.limits.max_write_same_blocks.to_be_bytes());
                64
            }
            0xB1 => {
                r[1] = 0xB1;
                r[3] = 0x3C;
                r[4..6].copy_from_slice(&1u16.to_be_bytes()); // non-rotating (SSD)
                64
            }
            0xB2 if unmap => {
                r[1] = 0xB2;
                r[3] = 0x04;
                r[5] = 0x80 | 0x40 | 0x04; // LBPU, LBPWS, LBPRZ
                r[6] = 0x02; // thin provisioned
                8
            }
            _ => return Completion::check(Sense::invalid_cdb_field(2, None)),
        };
        Self::data_in(&r[..len], alloc, requested, data)
    }

    // ------------------------------------------------------------- REQUEST SENSE, LUNS --

    fn request_sense(
        &mut self,
        lun_ok: bool,
        alloc: u32,
        requested: u64,
        data: Data<'_>,
    ) -> Completion {
        let sense = if !lun_ok {
            Sense::new(SenseKey::IllegalRequest, Asc::LUN_NOT_SUPPORTED)
        } else if let Some(a) = self.attention.take() {
            Sense::new(SenseKey::UnitAttention, a.asc())
        } else if self.stopped {
            Sense::new(SenseKey::NotReady, Asc::INITIALIZING_COMMAND_REQUIRED)
        } else {
            Sense::new(SenseKey::NoSense, Asc::NO_ADDITIONAL_SENSE)
        };
        Self::data_in(&sense.to_fixed(), alloc, requested, data)
    }

    fn report_luns(&mut self, alloc: u32, requested: u64, data: Data<'_>) -> Completion {
        // One LUN, 0, peripheral device addressing.
        let mut r = [0u8; 16];
        r[0..4].copy_from_slice(&8u32.to_be_bytes());
        Self::data_in(&r, alloc, requested, data)
    }

    // -------------------------------------------------------------------- capacity --

    fn read_capacity_10(&mut self, requested: u64, data: Data<'_>) -> Completion {
        let last = self.backend.capacity_blocks().saturating_sub(1);
        let mut r = [0u8; 8];
        r[0..4].copy_from_slice(&u32::try_from(last).unwrap_or(u32::MAX).to_be_bytes());
        r[4..8].copy_from_slice(&self.backend.block_size().to_be_bytes());
        Self::data_in(&r, 8, requested, data)
    }

    fn read_capacity_16(&mut self, alloc: u32, requested: u64, data: Data<'_>) -> Completion {
        let last = self.backend.capacity_blocks().saturating_sub(1);
        let mut r = [0u8; 32];
        r[0..8].copy_from_slice(&last.to_be_bytes());
        r[8..12].copy_from_slice(&self.backend.block_size().to_be_bytes());
        if self.backend.supports_unmap() {
            r[14] = 0x80 | 0x40; // LBPME, LBPRZ
        }
        Self::data_in(&r, alloc, requested, data)
    }

    // ------------------------------------------------------------------ mode pages --

    fn caching_page(&self, control: u8, out: &mut [u8]) {
        out[0] = 0x08;
        out[1] = (CACHING_PAGE_LEN - 2) as u8;
        out[2] = match control {
            0 => u8::from(self.write_cache) << 2, // current
            1 => 0x04,                            // changeable: WCE only
            _ => 0x04,                            // default: write cache on
        };
    }

    fn control_page(&self, control: u8, out: &mut [u8]) {
        out[0] = 0x0A;
        out[1] = (CONTROL_PAGE_LEN - 2) as u8;
        if control != 1 {
            out[2] = 0x02; // GLTSD; D_SENSE = 0: fixed-format sense
            out[3] = 0x10; // queue algorithm modifier 1: unrestricted reordering
            out[8..10].copy_from_slice(&0xFFFFu16.to_be_bytes()); // busy timeout: unlimited
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn mode_sense(
        &mut self,
        ten: bool,
        dbd: bool,
        llbaa: bool,
        control: u8,
        page: u8,
        alloc: u32,
        requested: u64,
        data: Data<'_>,
    ) -> Completion {
        if control == 3 {
            return Completion::check(Sense::illegal(
                Asc::SAVING_PARAMETERS_NOT_SUPPORTED,
                Some(FieldPointer::cdb(2, Some(7))),
            ));
        }
        if !matches!(page, 0x08 | 0x0A | 0x3F) {
            return Completion::check(Sense::invalid_cdb_field(2, Some(5)));
        }
        let mut r = [0u8; SCRATCH];
        let header = if ten { 8 } else { 4 };
        let mut at = header;
        // Block descriptor, unless DBD.
        let blocks = self.backend.capacity_blocks();
        let bs = self.backend.block_size();
        let descriptor_len = if dbd {
            0
        } else if ten && llbaa {
            r[at..at + 8].copy_from_slice(&blocks.to_be_bytes());
            r[at + 12..at + 16].copy_from_slice(&bs.to_be_bytes());
            16
        } else {
            r[at..at + 4].copy_from_slice(&u32::try_from(blocks).unwrap_or(u32::MAX).to_be_bytes());
            r[at + 5..at + 8].copy_from_slice(&bs.to_be_bytes()[1..4]);
            8
        };
        at += descriptor_len;
        if matches!(page, 0x08 | 0x3F) {
            self.caching_page(control, &mut r[at..at + CACHING_PAGE_LEN]);
            at += CACHING_PAGE_LEN;
        }
        if matches!(page, 0x0A | 0x3F) {
            self.control_page(control, &mut r[at..at + CONTROL_PAGE_LEN]);
            at += CONTROL_PAGE_LEN;
        }
        // Device-specific parameter: WP = 0, DPOFUA = 1.
        if ten {
            r[0..2].copy_from_slice(&((at - 2) as u16).to_be_bytes());
            r[3] = 0x10;
            r[4] = u8::from(descriptor_len == 16);
            r[6..8].copy_from_slice(&(descriptor_len as u16).to_be_bytes());
        } else {
            r[0] = (at - 1) as u8;
            r[2] = 0x10;
            r[3] = descriptor_len as u8;
        }
        Self::data_in(&r[..at], alloc, requested, data)
    }

    fn mode_select(
        &mut self,
        ten: bool,
        length: u32,
        requested: u64,
        data: Data<'_>,
    ) -> Completion {
        let length = length as usize;
        if length == 0 {
            return Completion::good(0);
        }
        let Data::Out(list) = data else {
            return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
        };
        if (requested as usize) < length || list.len() < length {
            return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
        }
        let list = &list[..length];
        let header = if ten { 8 } else { 4 };
        if list.len() < header {
            return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
        }
        let (descriptor_len, long) = if ten {
            (u16::from_be_bytes([list[6], list[7]]) as usize, list[4] & 1 != 0)
        } else {
            (list[3] as usize, false)
        };
        let expected = if long { 16 } else { 8 };
        if descriptor_len != 0 && descriptor_len != expected {
            let at = if ten { 6 } else { 3 };
            return Completion::check(Sense::invalid_parameter(at, None));
        }
        let mut at = header;
        if descriptor_len != 0 {
            let Some(d) = list.get(at..at + descriptor_len) else {
                return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
            };
            let bs_field = if long { &d[12..16] } else { &d[5..8] };
            let mut bs = [0u8; 4];
            bs[4 - bs_field.len()..].copy_from_slice(bs_field);
            if u32::from_be_bytes(bs) != self.backend.block_size() {
                let off = (at + if long { 12 } else { 5 }) as u16;
                return Completion::check(Sense::invalid_parameter(off, None));
            }
            at += descriptor_len;
        }
        let mut new_wce = self.write_cache;
        while at < list.len() {
            let code = list[at] & 0x3F;
            if list[at] & 0x40 != 0 {
                return Completion::check(Sense::invalid_parameter(at as u16, Some(6)));
            }
            let Some(&page_len) = list.get(at + 1) else {
                return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
            };
            let total = page_len as usize + 2;
            let Some(page) = list.get(at..at + total) else {
                return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
            };
            match code {
                0x08 => {
                    if total != CACHING_PAGE_LEN {
                        return Completion::check(Sense::invalid_parameter(at as u16 + 1, None));
                    }
                    // Only WCE may change; every other field must equal the current value.
                    let mut current = [0u8; CACHING_PAGE_LEN];
                    self.caching_page(0, &mut current);
                    for i in 2..CACHING_PAGE_LEN {
                        let mask = if i == 2 { !0x04u8 } else { 0xFF };
                        if (page[i] ^ current[i]) & mask != 0 {
                            let bit = 7 - ((page[i] ^ current[i]) & mask).leading_zeros() as u8;
                            return Completion::check(Sense::invalid_parameter(
                                (at + i) as u16,
                                Some(bit),
                            ));
                        }
                    }
                    new_wce = page[2] & 0x04 != 0;
                }
                0x0A => {
                    // Nothing in the control page is changeable: it must match.
                    let mut current = [0u8; CONTROL_PAGE_LEN];
                    self.control_page(0, &mut current);
                    if total != CONTROL_PAGE_LEN {
                        return Completion::check(Sense::invalid_parameter(at as u16 + 1, None));
                    }
                    if let Some(i) = (2..CONTROL_PAGE_LEN).find(|&i| page[i] != current[i]) {
                        return Completion::check(Sense::invalid_parameter((at + i) as u16, None));
                    }
                }
                _ => return Completion::check(Sense::invalid_parameter(at as u16, Some(5))),
            }
            at += total;
        }
        self.write_cache = new_wce;
        Completion::good(length as u64)
    }

    // --------------------------------------------------------------------- media --

    /// The range must lie inside the medium: `lba` itself below the capacity (even for a
    /// length of 0), and `lba + blocks` neither past the end nor overflowing 64 bits.
    fn check_range(&self, lba: u64, blocks: u64) -> Result<(), Sense> {
        let capacity = self.backend.capacity_blocks();
        match lba.checked_add(blocks) {
            Some(end) if lba < capacity && end <= capacity => Ok(()),
            _ => Err(Sense::illegal(Asc::LBA_OUT_OF_RANGE, None)),
        }
    }

    /// Checks every READ/WRITE range: inside the medium, within the device's maximum transfer
    /// length and the task's requested transfer count. The byte count on success.
    fn check_transfer(&self, r: Range, requested: u64, buffer: usize) -> Result<u64, Sense> {
        self.check_range(r.lba, u64::from(r.blocks))?;
        let bs = u64::from(self.backend.block_size());
        let bytes = u64::from(r.blocks) * bs;
        if bytes > self.limits.max_transfer_bytes {
            return Err(Sense::invalid_cdb_field(r.length_byte, None));
        }
        if bytes > requested || bytes > buffer as u64 {
            return Err(Sense::invalid_cdb_field(r.length_byte, None));
        }
        Ok(bytes)
    }

    fn read(&mut self, r: Range, requested: u64, data: Data<'_>) -> Completion {
        let buf: &mut [u8] = match data {
            Data::In(buf) => buf,
            _ => &mut [],
        };
        let bytes = match self.check_transfer(r, requested, buf.len()) {
            Ok(b) => b,
            Err(s) => return Completion::check(s),
        };
        if bytes == 0 {
            return Completion::good(0);
        }
        // FUA: read the medium, not a write-back cache; the backend's cache holds only
        // writes, so making them durable first is enough.
        if r.fua {
            if let Err(e) = self.backend.flush() {
                return Self::backend_result(Err(e), 0);
            }
        }
        let result = self.backend.read(r.lba, &mut buf[..bytes as usize]);
        Self::backend_result(result, bytes)
    }

    fn write(&mut self, r: Range, requested: u64, data: Data<'_>) -> Completion {
        let buf: &[u8] = match data {
            Data::Out(buf) => buf,
            _ => &[],
        };
        let bytes = match self.check_transfer(r, requested, buf.len()) {
            Ok(b) => b,
            Err(s) => return Completion::check(s),
        };
        if bytes == 0 {
            return Completion::good(0);
        }
        // FUA, or no write cache: durable before completion.
        let result = self.durable_write(r.lba, &buf[..bytes as usize], r.fua);
        Self::backend_result(result, bytes)
    }

    /// A write that honours FUA (the blocks durable before completion, `write_fua`) and the
    /// caching mode page (WCE = 0: every write durable before completion).
    fn durable_write(&mut self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        if fua {
            self.backend.write_fua(lba, data)
        } else if self.write_cache {
            self.backend.write(lba, data)
        } else {
            self.backend.write(lba, data).and_then(|()| self.backend.flush())
        }
    }

    fn verify(&mut self, r: Range, byte_check: bool, requested: u64, data: Data<'_>) -> Completion {
        if let Err(s) = self.check_range(r.lba, u64::from(r.blocks)) {
            return Completion::check(s);
        }
        let bs = self.backend.block_size() as usize;
        let mut block = [0u8; MAX_BLOCK];
        if bs > block.len() {
            return Completion::check(Sense::new(
                SenseKey::HardwareError,
                Asc::INTERNAL_TARGET_FAILURE,
            ));
        }
        let expected: &[u8] = match (&data, byte_check) {
            (Data::Out(d), true) => d,
            (_, true) => &[],
            _ => &[],
        };
        let bytes = u64::from(r.blocks) * bs as u64;
        if byte_check && (bytes > requested || (expected.len() as u64) < bytes) {
            return Completion::check(Sense::invalid_cdb_field(r.length_byte, None));
        }
        for i in 0..u64::from(r.blocks) {
            let lba = r.lba + i;
            if let Err(e) = self.backend.read(lba, &mut block[..bs]) {
                return Self::backend_result(Err(e), 0);
            }
            if byte_check {
                let off = (i as usize) * bs;
                if expected.get(off..off + bs) != Some(&block[..bs]) {
                    return Completion::check(
                        Sense::new(SenseKey::Miscompare, Asc::MISCOMPARE_DURING_VERIFY)
                            .with_information(lba),
                    );
                }
            }
        }
        Completion::good(if byte_check { bytes } else { 0 })
    }

    fn unmap(&mut self, length: u32, requested: u64, data: Data<'_>) -> Completion {
        if !self.backend.supports_unmap() {
            return Completion::check(Sense::illegal(
                Asc::INVALID_OPCODE,
                Some(FieldPointer::cdb(0, None)),
            ));
        }
        let length = length as usize;
        if length == 0 {
            return Completion::good(0);
        }
        let Data::Out(list) = data else {
            return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
        };
        if length < 8 || (requested as usize) < length || list.len() < length {
            return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
        }
        let list = &list[..length];
        let data_len = u16::from_be_bytes([list[0], list[1]]) as usize;
        let desc_len = u16::from_be_bytes([list[2], list[3]]) as usize;
        if data_len + 2 > length || desc_len + 8 > length || desc_len % 16 != 0 {
            return Completion::check(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR, None));
        }
        if desc_len / 16 > self.limits.max_unmap_descriptors as usize {
            return Completion::check(Sense::invalid_parameter(2, None));
        }
        // Check every descriptor before changing anything.
        for (k, d) in list[8..8 + desc_len].chunks_exact(16).enumerate() {
            let lba = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
            let blocks = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
            if blocks > self.limits.max_unmap_blocks {
                return Completion::check(Sense::invalid_parameter((8 + k * 16 + 8) as u16, None));
            }
            if self.check_range(lba, u64::from(blocks)).is_err() {
                return Completion::check(Sense::illegal(Asc::LBA_OUT_OF_RANGE, None));
            }
        }
        for d in list[8..8 + desc_len].chunks_exact(16) {
            let lba = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
            let blocks = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
            if let Some(Err(e)) = self.backend.unmap(lba, u64::from(blocks)) {
                return Self::backend_result(Err(e), 0);
            }
        }
        Completion::good(length as u64)
    }

    fn write_same(
        &mut self,
        r: Range,
        unmap: bool,
        no_data_out: bool,
        requested: u64,
        data: Data<'_>,
    ) -> Completion {
        // A fully provisioned medium writes the blocks; UNMAP needs thin provisioning.
        if unmap && !self.backend.supports_unmap() {
            return Completion::check(Sense::invalid_cdb_field(1, Some(3)));
        }
        // A length of 0 would mean "to the end of the medium"; not supported (WSNZ = 1).
        if r.blocks == 0 || u64::from(r.blocks) > self.limits.max_write_same_blocks {
            return Completion::check(Sense::invalid_cdb_field(r.length_byte, None));
        }
        if let Err(s) = self.check_range(r.lba, u64::from(r.blocks)) {
            return Completion::check(s);
        }
        let bs = self.backend.block_size() as usize;
        let zeros = [0u8; 4096];
        let pattern: &[u8] = if no_data_out {
            if bs > zeros.len() {
                return Completion::check(Sense::invalid_cdb_field(1, Some(0)));
            }
            &zeros[..bs]
        } else {
            match data {
                Data::Out(d) if d.len() >= bs && requested >= bs as u64 => &d[..bs],
                _ => return Completion::check(Sense::invalid_cdb_field(r.length_byte, None)),
            }
        };
        let all_zero = pattern.iter().all(|b| *b == 0);
        if unmap && all_zero {
            if let Some(result) = self.backend.unmap(r.lba, u64::from(r.blocks)) {
                return Self::backend_result(result, if no_data_out { 0 } else { bs as u64 });
            }
        }
        // Whole blocks of the pattern, several per backend write.
        let mut chunk = [0u8; WRITE_SAME_CHUNK];
        let per_chunk = (WRITE_SAME_CHUNK / bs.max(1)).max(1);
        if bs <= WRITE_SAME_CHUNK {
            for b in chunk.chunks_exact_mut(bs).take(per_chunk) {
                b.copy_from_slice(pattern);
            }
        }
        let mut done = 0u64;
        while done < u64::from(r.blocks) {
            let n = (u64::from(r.blocks) - done).min(per_chunk as u64);
            let result = if bs <= WRITE_SAME_CHUNK {
                self.backend.write(r.lba + done, &chunk[..n as usize * bs])
            } else {
                self.backend.write(r.lba + done, pattern)
            };
            if let Err(e) = result {
                return Self::backend_result(Err(e), 0);
            }
            done += n;
        }
        Completion::good(if no_data_out { 0 } else { bs as u64 })
    }

    /// WRITE AND VERIFY: the write, made durable (`write_fua`: the verification is of the
    /// medium, not of a write-back cache), then every block read back — and compared with the data-out when
    /// `byte_check`. A block that does not read back as written is MISCOMPARE 1D/00 with its
    /// LBA.
    fn write_verify(
        &mut self,
        r: Range,
        byte_check: bool,
        requested: u64,
        data: Data<'_>,
    ) -> Completion {
        let buf: &[u8] = match data {
            Data::Out(buf) => buf,
            _ => &[],
        };
        let bytes = match self.check_transfer(r, requested, buf.len()) {
            Ok(b) => b,
            Err(s) => return Completion::check(s),
        };
        if bytes == 0 {
            return Completion::good(0);
        }
        let written = &buf[..bytes as usize];
        if let Err(e) = self.backend.write_fua(r.lba, written) {
            return Self::backend_result(Err(e), 0);
        }
        let bs = self.backend.block_size() as usize;
        let mut block = [0u8; MAX_BLOCK];
        if bs > block.len() {
            return Completion::check(Sense::new(
                SenseKey::HardwareError,
                Asc::INTERNAL_TARGET_FAILURE,
            ));
        }
        for (i, expected) in written.chunks_exact(bs).enumerate() {
            let lba = r.lba + i as u64;
            if let Err(e) = self.backend.read(lba, &mut block[..bs]) {
                return Self::backend_result(Err(e), 0);
            }
            if byte_check && expected != &block[..bs] {
                return Completion::check(
                    Sense::new(SenseKey::Miscompare, Asc::MISCOMPARE_DURING_VERIFY)
                        .with_information(lba),
                );
            }
        }
        Completion::good(bytes)
    }

    /// COMPARE AND WRITE (SBC-4 5.3): the data-out is `blocks` of verify data then `blocks`
    /// of write data. Every block is compared before anything is written, and nothing else
    /// runs on this device meanwhile (`execute` holds it exclusively), so the pair is atomic
    /// against other writes. A miscompare is MISCOMPARE 1D/00 with INFORMATION = the offset
    /// of the first differing byte in the verify data.
    fn compare_and_write(&mut self, r: Range, requested: u64, data: Data<'_>) -> Completion {
        if r.blocks > MAX_COMPARE_AND_WRITE_BLOCKS {
            return Completion::check(Sense::invalid_cdb_field(r.length_byte, None));
        }
        if let Err(s) = self.check_range(r.lba, u64::from(r.blocks)) {
            return Completion::check(s);
        }
        if r.blocks == 0 {
            return Completion::good(0);
        }
        let bs = self.backend.block_size() as usize;
        let half = r.blocks as usize * bs;
        let buf: &[u8] = match data {
            Data::Out(buf) => buf,
            _ => &[],
        };
        // The data-out must be exactly both halves.
        if requested != 2 * half as u64 || buf.len() < 2 * half {
            return Completion::check(Sense::invalid_cdb_field(r.length_byte, None));
        }
        let (verify, write) = buf[..2 * half].split_at(half);
        let mut block = [0u8; MAX_BLOCK];
        if bs > block.len() {
            return Completion::check(Sense::new(
                SenseKey::HardwareError,
                Asc::INTERNAL_TARGET_FAILURE,
            ));
        }
        for (i, expected) in verify.chunks_exact(bs).enumerate() {
            if let Err(e) = self.backend.read(r.lba + i as u64, &mut block[..bs]) {
                return Self::backend_result(Err(e), 0);
            }
            if let Some(k) = expected.iter().zip(&block[..bs]).position(|(a, b)| a != b) {
                return Completion::check(
                    Sense::new(SenseKey::Miscompare, Asc::MISCOMPARE_DURING_VERIFY)
                        .with_information((i * bs + k) as u64),
                );
            }
        }
        let result = self.durable_write(r.lba, write, r.fua);
        Self::backend_result(result, 2 * half as u64)
    }

    /// GET LBA STATUS: the medium is fully provisioned unless the backend unmaps, so one
    /// descriptor says every block from `lba` on (at most 2^32 - 1 of them) is mapped. A
    /// backend that unmaps (LBPME = 1) does not say which blocks are deallocated: refused as
    /// an unsupported command rather than answered wrongly.
    fn get_lba_status(
        &mut self,
        lba: u64,
        alloc: u32,
        requested: u64,
        data: Data<'_>,
    ) -> Completion {
        if self.backend.supports_unmap() {
            return Completion::check(Sense::invalid_cdb_field(1, Some(4)));
        }
        if let Err(s) = self.check_range(lba, 0) {
            return Completion::check(s);
        }
        let mut r = [0u8; 24];
        r[0..4].copy_from_slice(&20u32.to_be_bytes());
        r[8..16].copy_from_slice(&lba.to_be_bytes());
        let rest = self.backend.capacity_blocks() - lba;
        r[16..20].copy_from_slice(&u32::try_from(rest).unwrap_or(u32::MAX).to_be_bytes());
        // r[20]: PROVISIONING STATUS 0, mapped.
        Self::data_in(&r, alloc, requested, data)
    }

    /// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35), from [`supported`].
    #[allow(clippy::too_many_arguments)]
    fn report_opcodes(
        &mut self,
        rctd: bool,
        options: u8,
        opcode: u8,
        service_action: u16,
        alloc: u32,
        requested: u64,
        data: Data<'_>,
    ) -> Completion {
        let unmap = self.backend.supports_unmap();
        let mut r = [0u8; 4 + supported::TABLE.len() * 20];
        if options == 0 {
            let mut at = 4;
            for c in supported::TABLE.iter().filter(|c| c.listed(unmap)) {
                r[at] = c.opcode;
                r[at + 2..at + 4].copy_from_slice(&u16::from(c.service_action).to_be_bytes());
                r[at + 5] = (u8::from(rctd) << 1) | u8::from(c.has_service_action);
                r[at + 6..at + 8].copy_from_slice(&(c.usage.len() as u16).to_be_bytes());
                at += 8;
                if rctd {
                    supported::timeout_descriptor(&mut r[at..at + 12]);
                    at += 12;
                }
            }
            r[0..4].copy_from_slice(&((at - 4) as u32).to_be_bytes());
            return Self::data_in(&r[..at], alloc, requested, data);
        }
        let has_sa = supported::TABLE.iter().any(|c| c.opcode == opcode && c.has_service_action);
        match options {
            1 if has_sa => return Completion::check(Sense::invalid_cdb_field(2, Some(2))),
            2 if !has_sa => return Completion::check(Sense::invalid_cdb_field(2, Some(2))),
            _ => {}
        }
        let found = supported::TABLE.iter().find(|c| {
            c.opcode == opcode
                && (!c.has_service_action || u16::from(c.service_action) == service_action)
                && c.listed(unmap)
        });
        let Some(c) = found else {
            // SUPPORT 001b: not supported; no CDB usage data.
            r[1] = 0x01;
            return Self::data_in(&r[..4], alloc, requested, data);
        };
        // SUPPORT 011b: supported as the standard says.
        r[1] = (u8::from(rctd) << 7) | 0x03;
        let n = c.usage.len();
        r[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        r[4..4 + n].copy_from_slice(c.usage);
        if c.opcode == super::cdb::op::WRITE_SAME_10 || c.opcode == super::cdb::op::WRITE_SAME_16 {
            // UNMAP (byte 1 bit 3) only with thin provisioning.
            if !unmap {
                r[5] &= !0x08;
            }
        }
        let mut at = 4 + n;
        if rctd {
            supported::timeout_descriptor(&mut r[at..at + 12]);
            at += 12;
        }
        Self::data_in(&r[..at], alloc, requested, data)
    }
}

/// Largest block size the block-by-block paths (VERIFY, WRITE AND VERIFY, COMPARE AND WRITE)
/// handle.
const MAX_BLOCK: usize = 4096;
/// WRITE SAME writes its pattern this many bytes at a time.
const WRITE_SAME_CHUNK: usize = 16 * 1024;

/// The commands the device supports, as REPORT SUPPORTED OPERATION CODES reports them: each
/// with its CDB USAGE DATA, the bits of each CDB byte the decoder ([`super::cdb::decode`])
/// evaluates (a bit it refuses when set, such as RDPROTECT without protection information,
/// is not reported). A unit test holds the decoder to it: a bit outside the mask is refused.
pub mod supported {
    use super::super::cdb::op;

    #[derive(Debug)]
    pub struct Supported {
        pub opcode: u8,
        pub service_action: u8,
        pub has_service_action: bool,
        /// Only with thin provisioning (the backend unmaps).
        pub needs_unmap: bool,
        pub usage: &'static [u8],
    }

    impl Supported {
        pub fn listed(&self, unmap: bool) -> bool {
            unmap || !self.needs_unmap
        }
    }

    const fn c(opcode: u8, usage: &'static [u8]) -> Supported {
        Supported {
            opcode,
            service_action: 0,
            has_service_action: false,
            needs_unmap: false,
            usage,
        }
    }

    const fn sa(opcode: u8, service_action: u8, usage: &'static [u8]) -> Supported {
        Supported { opcode, service_action, has_service_action: true, needs_unmap: false, usage }
    }

    const F: u8 = 0xFF;

    /// In opcode order.
    pub const TABLE: &[Supported] = &[
        c(op::TEST_UNIT_READY, &[op::TEST_UNIT_READY, 0, 0, 0, 0, 0]),
        c(op::REQUEST_SENSE, &[op::REQUEST_SENSE, 0, 0, 0, F, 0]),
        c(op::READ_6, &[op::READ_6, 0x1F, F, F, F, 0]),
        c(op::WRITE_6, &[op::WRITE_6, 0x1F, F, F, F, 0]),
        c(op::INQUIRY, &[op::INQUIRY, 0x01, F, F, F, 0]),
        c(op::MODE_SELECT_6, &[op::MODE_SELECT_6, 0x10, 0, 0, F, 0]),
        c(op::MODE_SENSE_6, &[op::MODE_SENSE_6, 0x08, F, F, F, 0]),
        c(op::START_STOP_UNIT, &[op::START_STOP_UNIT, 0x01, 0, 0x0F, 0xF3, 0]),
        c(op::PREVENT_ALLOW_MEDIUM_REMOVAL, &[op::PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 0x03, 0]),
        c(op::READ_CAPACITY_10, &[op::READ_CAPACITY_10, 0, F, F, F, F, 0, 0, 0x01, 0]),
        c(op::READ_10, &[op::READ_10, 0x1E, F, F, F, F, 0x1F, F, F, 0]),
        c(op::WRITE_10, &[op::WRITE_10, 0x1A, F, F, F, F, 0x1F, F, F, 0]),
        c(op::WRITE_AND_VERIFY_10, &[op::WRITE_AND_VERIFY_10, 0x12, F, F, F, F, 0x1F, F, F, 0]),
        c(op::VERIFY_10, &[op::VERIFY_10, 0x12, F, F, F, F, 0x1F, F, F, 0]),
        c(op::PRE_FETCH_10, &[op::PRE_FETCH_10, 0x02, F, F, F, F, 0x1F, F, F, 0]),
        c(op::SYNCHRONIZE_CACHE_10, &[op::SYNCHRONIZE_CACHE_10, 0x06, F, F, F, F, 0x1F, F, F, 0]),
        c(op::WRITE_SAME_10, &[op::WRITE_SAME_10, 0x08, F, F, F, F, 0x1F, F, F, 0]),
        Supported {
            opcode: op::UNMAP,
            service_action: 0,
            has_service_action: false,
            needs_unmap: true,
            usage: &[op::UNMAP, 0, 0, 0, 0, 0, 0x1F, F, F, 0],
        },
        c(op::MODE_SELECT_10, &[op::MODE_SELECT_10, 0x10, 0, 0, 0, 0, 0, F, F, 0]),
        c(op::MODE_SENSE_10, &[op::MODE_SENSE_10, 0x18, F, F, 0, 0, 0, F, F, 0]),
        c(op::READ_16, &[op::READ_16, 0x1E, F, F, F, F, F, F, F, F, F, F, F, F, 0x3F, 0]),
        c(
            op::COMPARE_AND_WRITE,
            &[op::COMPARE_AND_WRITE, 0x1A, F, F, F, F, F, F, F, F, 0, 0, 0, F, 0x3F, 0],
        ),
        c(op::WRITE_16, &[op::WRITE_16, 0x1A, F, F, F, F, F, F, F, F, F, F, F, F, 0x3F, 0]),
        c(
            op::WRITE_AND_VERIFY_16,
            &[op::WRITE_AND_VERIFY_16, 0x12, F, F, F, F, F, F, F, F, F, F, F, F, 0x3F, 0],
        ),
        c(op::VERIFY_16, &[op::VERIFY_16, 0x12, F, F, F, F, F, F, F, F, F, F, F, F, 0x3F, 0]),
        c(op::PRE_FETCH_16, &[op::PRE_FETCH_16, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, 0x3F, 0]),
        c(
            op::SYNCHRONIZE_CACHE_16,
            &[op::SYNCHRONIZE_CACHE_16, 0x06, F, F, F, F, F, F, F, F, F, F, F, F, 0x3F, 0],
        ),
        c(
            op::WRITE_SAME_16,
            &[op::WRITE_SAME_16, 0x09, F, F, F, F, F, F, F, F, F, F, F, F, 0x3F, 0],
        ),
        sa(
            op::SERVICE_ACTION_IN_16,
            op::SA_READ_CAPACITY_16,
            &[
                op::SERVICE_ACTION_IN_16,
                op::SA_READ_CAPACITY_16,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                0x01,
                0,
            ],
        ),
        Supported {
            opcode: op::SERVICE_ACTION_IN_16,
            service_action: op::SA_GET_LBA_STATUS,
            has_service_action: true,
            // Answered only for a fully provisioned medium (see `get_lba_status`).
            needs_unmap: false,
            usage: &[
                op::SERVICE_ACTION_IN_16,
                op::SA_GET_LBA_STATUS,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                F,
                0,
                0,
            ],
        },
        c(op::REPORT_LUNS, &[op::REPORT_LUNS, 0, F, 0, 0, 0, F, F, F, F, 0, 0]),
        sa(
            op::MAINTENANCE_IN,
            op::SA_REPORT_SUPPORTED_OPCODES,
            &[op::MAINTENANCE_IN, op::SA_REPORT_SUPPORTED_OPCODES, 0x87, F, F, F, F, F, F, F, 0, 0],
        ),
        c(op::READ_12, &[op::READ_12, 0x1E, F, F, F, F, F, F, F, F, 0x1F, 0]),
        c(op::WRITE_12, &[op::WRITE_12, 0x1A, F, F, F, F, F, F, F, F, 0x1F, 0]),
        c(
            op::WRITE_AND_VERIFY_12,
            &[op::WRITE_AND_VERIFY_12, 0x12, F, F, F, F, F, F, F, F, 0x1F, 0],
        ),
        c(op::VERIFY_12, &[op::VERIFY_12, 0x12, F, F, F, F, F, F, F, F, 0x1F, 0]),
    ];

    /// The 12-byte command timeouts descriptor (RCTD): no nominal time, the recommended one.
    pub fn timeout_descriptor(out: &mut [u8]) {
        out.fill(0);
        out[0..2].copy_from_slice(&0x000Au16.to_be_bytes());
        out[8..12].copy_from_slice(&super::RECOMMENDED_TIMEOUT_S.to_be_bytes());
    }
}
