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
                r[8..12].copy_from_slice(&max_blocks.to_be_bytes());
                r[12..16].copy_from_slice(&opt_blocks.to_be_bytes());
                if unmap {
                    r[20..24].copy_from_slice(&self.limits.max_unmap_blocks.to_be_bytes());
                    r[24..28].copy_from_slice(&self.limits.max_unmap_descriptors.to_be_bytes());
                    r[36..44].copy_from_slice(&self.limits.max_write_same_blocks.to_be_bytes());
                }
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
        let mut result = self.backend.write(r.lba, &buf[..bytes as usize]);
        // FUA, or no write cache: durable before completion.
        if result.is_ok() && (r.fua || !self.write_cache) {
            result = self.backend.flush();
        }
        Self::backend_result(result, bytes)
    }

    fn verify(&mut self, r: Range, byte_check: bool, requested: u64, data: Data<'_>) -> Completion {
        if let Err(s) = self.check_range(r.lba, u64::from(r.blocks)) {
            return Completion::check(s);
        }
        let bs = self.backend.block_size() as usize;
        let mut block = [0u8; 4096];
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
        if !self.backend.supports_unmap() {
            return Completion::check(Sense::illegal(
                Asc::INVALID_OPCODE,
                Some(FieldPointer::cdb(0, None)),
            ));
        }
        // A length of 0 would mean "to the end of the medium"; not supported.
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
        for i in 0..u64::from(r.blocks) {
            if let Err(e) = self.backend.write(r.lba + i, pattern) {
                return Self::backend_result(Err(e), 0);
            }
        }
        Completion::good(if no_data_out { 0 } else { bs as u64 })
    }
}
