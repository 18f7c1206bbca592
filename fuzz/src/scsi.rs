//! The `cdb` target's harness: every CDB the input holds is decoded on its own
//! ([`dkraid_core::scsi::cdb::decode`]) and then executed by the SCSI emulator over a
//! [`CheckedBackend`], with a small model of the device (unit attention, stopped) alongside.
//! Any broken invariant panics, which libFuzzer reports as a crash.
//!
//! Input: one setup byte, then commands until the input ends (at most [`MAX_COMMANDS`]):
//!
//! | bytes | meaning |
//! |---|---|
//! | setup | bit 0: 4096-byte blocks (else 512); bits 1-2: capacity (64 blocks in memory, 2^21+3, 2^32+5, 2^56 sparse); bit 3: UNMAP supported; bit 4: a bad LBA follows (u32); bit 5: flushes fail; bit 6: small limits |
//! | h | bits 0-4: CDB length 0..=16, 17 = an event (next byte: reset / capacity changed / LUNs changed), 18..=31 = the opcode's own length; bit 5: data-out; bit 6: LUN 1; bit 7: no data buffer |
//! | u16 | the task's requested transfer count |
//! | u16 | the host buffer's length (modulo [`MAX_BUFFER`] + 1) |
//! | CDB | opcode, then the rest of the CDB |
//! | data | for data-out, the buffer's bytes (zero-padded) |

use std::collections::BTreeMap;

use dkraid_core::scsi::cdb::{self, Command};
use dkraid_core::scsi::emulator::status::{CHECK_CONDITION, GOOD};
use dkraid_core::scsi::{
    Asc, BackendError, BlockBackend, Completion, Data, Emulator, Identity, Limits, Sense, SenseKey,
};

use crate::input::Reader;

/// Commands per input, so one input stays fast.
pub const MAX_COMMANDS: usize = 32;
/// VERIFY without data and WRITE SAME walk their range block by block: ranges longer than this
/// are decoded and checked but not executed, so one input cannot take seconds (docs/FUZZING.md).
pub const MAX_WALKED_BLOCKS: u64 = 4096;
/// The largest host buffer (four 4 KiB blocks): bigger ones only cost time.
pub const MAX_BUFFER: usize = 16 << 10;
/// Blocks of the in-memory capacity choice.
const MEMORY_BLOCKS: u64 = 64;

/// A backend that checks every call the emulator makes: whole blocks, never empty, never past
/// the capacity. Small capacities are stored in memory, large ones sparsely (written blocks
/// only). It can fail one LBA (reads and writes that cover it) and every flush.
#[derive(Debug)]
pub struct CheckedBackend {
    block_size: u32,
    capacity: u64,
    unmap: bool,
    blocks: BTreeMap<u64, Vec<u8>>,
    pub bad_lba: Option<u64>,
    pub fail_flush: bool,
    pub flushes: u64,
}

impl CheckedBackend {
    pub fn new(block_size: u32, capacity: u64, unmap: bool) -> CheckedBackend {
        CheckedBackend {
            block_size,
            capacity,
            unmap,
            blocks: BTreeMap::new(),
            bad_lba: None,
            fail_flush: false,
            flushes: 0,
        }
    }

    /// The blocks `lba..lba + n` as the backend holds them (unwritten blocks are zeros).
    pub fn contents(&self, lba: u64, n: u64) -> Vec<u8> {
        let bs = self.block_size as usize;
        let mut out = Vec::with_capacity(n as usize * bs);
        for b in lba..lba + n {
            match self.blocks.get(&b) {
                Some(block) => out.extend_from_slice(block),
                None => out.resize(out.len() + bs, 0),
            }
        }
        out
    }

    /// The range a data call covers, checked; panics (a finding) if the emulator got it wrong.
    fn range(&self, what: &str, lba: u64, len: usize) -> u64 {
        let bs = self.block_size as usize;
        assert!(len > 0, "{what}: an empty transfer reached the backend");
        assert_eq!(len % bs, 0, "{what}: {len} bytes is not whole {bs}-byte blocks");
        let n = (len / bs) as u64;
        let end = lba.checked_add(n).unwrap_or_else(|| panic!("{what}: lba {lba} + {n} overflows"));
        assert!(
            end <= self.capacity,
            "{what}: blocks {lba}..{end} past the capacity {}",
            self.capacity
        );
        n
    }

    fn covers_bad(&self, lba: u64, n: u64) -> Option<u64> {
        self.bad_lba.filter(|&b| b >= lba && b < lba + n)
    }
}

impl BlockBackend for CheckedBackend {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn capacity_blocks(&self) -> u64 {
        self.capacity
    }

    fn read(&mut self, lba: u64, data: &mut [u8]) -> Result<(), BackendError> {
        let n = self.range("read", lba, data.len());
        if let Some(bad) = self.covers_bad(lba, n) {
            return Err(BackendError::ReadError { lba: bad });
        }
        data.copy_from_slice(&self.contents(lba, n));
        Ok(())
    }

    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        let n = self.range("write", lba, data.len());
        if let Some(bad) = self.covers_bad(lba, n) {
            return Err(BackendError::WriteError { lba: bad });
        }
        for (i, block) in data.chunks_exact(self.block_size as usize).enumerate() {
            if block.iter().all(|&b| b == 0) {
                self.blocks.remove(&(lba + i as u64));
            } else {
                self.blocks.insert(lba + i as u64, block.to_vec());
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        self.flushes += 1;
        if self.fail_flush {
            Err(BackendError::Internal)
        } else {
            Ok(())
        }
    }

    fn unmap(&mut self, lba: u64, blocks: u64) -> Option<Result<(), BackendError>> {
        if !self.unmap {
            panic!("unmap called on a backend without UNMAP support");
        }
        let end = lba.checked_add(blocks).expect("unmap range overflows");
        assert!(end <= self.capacity, "unmap {lba}..{end} past the capacity {}", self.capacity);
        let keys: Vec<u64> = self.blocks.range(lba..end).map(|(k, _)| *k).collect();
        for k in keys {
            self.blocks.remove(&k);
        }
        Some(Ok(()))
    }

    fn supports_unmap(&self) -> bool {
        self.unmap
    }
}

/// Every ASC the device may report, by name.
const NAMED_ASCS: &[Asc] = &[
    Asc::NO_ADDITIONAL_SENSE,
    Asc::INVALID_OPCODE,
    Asc::LBA_OUT_OF_RANGE,
    Asc::INVALID_FIELD_IN_CDB,
    Asc::LUN_NOT_SUPPORTED,
    Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    Asc::PARAMETER_LIST_LENGTH_ERROR,
    Asc::UNRECOVERED_READ_ERROR,
    Asc::WRITE_ERROR,
    Asc::MISCOMPARE_DURING_VERIFY,
    Asc::WRITE_PROTECTED,
    Asc::BECOMING_READY,
    Asc::INITIALIZING_COMMAND_REQUIRED,
    Asc::POWER_ON_OR_RESET,
    Asc::CAPACITY_DATA_CHANGED,
    Asc::REPORTED_LUNS_DATA_CHANGED,
    Asc::SAVING_PARAMETERS_NOT_SUPPORTED,
    Asc::INTERNAL_TARGET_FAILURE,
];

/// Fixed-format sense data, well formed: 70h, ADDITIONAL LENGTH 10, VALID only with a 32-bit
/// INFORMATION, a named ASC, and a field pointer inside the CDB or the parameter list.
pub fn check_sense(s: &Sense, cdb_len: usize, parameter_len: usize) {
    assert!(NAMED_ASCS.contains(&s.asc), "unnamed ASC {:02x}/{:02x}", s.asc.0, s.asc.1);
    let f = s.to_fixed();
    assert_eq!(f[0] & 0x7F, 0x70, "response code");
    assert_eq!(f[7], 10, "additional sense length");
    assert_eq!(f[2], s.key as u8);
    let info32 = s.information.and_then(|i| u32::try_from(i).ok());
    assert_eq!(f[0] & 0x80 != 0, info32.is_some(), "VALID iff INFORMATION fits");
    if let Some(i) = info32 {
        assert_eq!(f[3..7], i.to_be_bytes());
    }
    match s.field {
        None => assert_eq!(f[15..18], [0, 0, 0]),
        Some(p) => {
            assert_eq!(f[15] & 0x80, 0x80, "SKSV");
            if let Some(bit) = p.bit {
                assert!(bit <= 7, "bit {bit}");
            }
            if p.in_cdb {
                assert!(usize::from(p.byte) < cdb_len, "CDB byte {} of {cdb_len}", p.byte);
            } else {
                assert!(
                    usize::from(p.byte) < parameter_len,
                    "parameter byte {} of {parameter_len}",
                    p.byte
                );
            }
        }
    }
}

/// Reads the big-endian field of `width` bytes at `at`.
fn be(cdb: &[u8], at: usize, width: usize) -> u64 {
    cdb[at..at + width].iter().fold(0, |v, &b| (v << 8) | u64::from(b))
}

/// The decoder alone: no panic, errors are ILLEGAL REQUEST naming the opcode or a CDB field,
/// decoding ignores bytes past the opcode's length, and a decoded range's field positions
/// hold exactly the LBA and length it reports.
pub fn check_decode(bytes: &[u8]) -> Result<Command, Sense> {
    let result = cdb::decode(bytes);
    if let Some(len) = bytes.first().and_then(|&op| cdb::cdb_length(op)) {
        if bytes.len() >= len {
            assert_eq!(cdb::decode(&bytes[..len]), result, "trailing bytes changed the decode");
        }
    }
    match &result {
        Err(s) => {
            assert_eq!(s.key, SenseKey::IllegalRequest, "{s:?}");
            assert!(matches!(s.asc, Asc::INVALID_OPCODE | Asc::INVALID_FIELD_IN_CDB), "{s:?}");
            assert!(s.information.is_none());
            if let Some(p) = s.field {
                assert!(p.in_cdb, "a decode error points into the CDB");
            }
            check_sense(s, bytes.len(), 0);
        }
        Ok(c) => {
            let len = cdb::cdb_length(bytes[0]).expect("decoded without a length");
            let range = match c {
                Command::Read(r) | Command::Write(r) => Some(r),
                Command::Verify { range, .. }
                | Command::WriteSame { range, .. }
                | Command::WriteVerify { range, .. }
                | Command::PreFetch { range, .. }
                | Command::CompareAndWrite(range) => Some(range),
                _ => None,
            };
            if let Some(r) = range {
                let (lba_width, length_width) = match len {
                    6 => (3, 1),
                    10 => (4, 2),
                    12 => (4, 4),
                    _ => (8, 4),
                };
                let at = usize::from(r.lba_byte);
                let lba = be(bytes, at, lba_width);
                let lba = if len == 6 { lba & 0x1F_FFFF } else { lba };
                assert_eq!(r.lba, lba, "LBA field");
                let length_width =
                    if matches!(c, Command::CompareAndWrite(_)) { 1 } else { length_width };
                let blocks = be(bytes, usize::from(r.length_byte), length_width);
                let blocks = if len == 6 && blocks == 0 { 256 } else { blocks };
                assert_eq!(u64::from(r.blocks), blocks, "length field");
            }
        }
    }
    result
}

/// The pending unit attention, as the model expects it (highest priority first).
fn attention_asc(a: u8) -> Asc {
    match a {
        0 => Asc::POWER_ON_OR_RESET,
        1 => Asc::CAPACITY_DATA_CHANGED,
        _ => Asc::REPORTED_LUNS_DATA_CHANGED,
    }
}

/// One fuzz input through the decoder and the emulator.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let setup = r.u8();
    let bs: u32 = if setup & 1 != 0 { 4096 } else { 512 };
    let capacity = match (setup >> 1) & 3 {
        0 => MEMORY_BLOCKS,
        1 => (1 << 21) + 3,
        2 => (1 << 32) + 5,
        _ => 1 << 56,
    };
    let mut backend = CheckedBackend::new(bs, capacity, setup & 0x08 != 0);
    if setup & 0x10 != 0 {
        backend.bad_lba = Some(u64::from(r.u32()) % capacity);
    }
    backend.fail_flush = setup & 0x20 != 0;
    let limits = if setup & 0x40 != 0 {
        Limits {
            max_transfer_bytes: 64 << 10,
            optimal_transfer_bytes: 16 << 10,
            max_unmap_blocks: 1024,
            max_unmap_descriptors: 2,
            max_write_same_blocks: 64,
        }
    } else {
        Limits { max_write_same_blocks: MAX_WALKED_BLOCKS, ..Limits::default() }
    };
    let bad_lba = backend.bad_lba;
    let mut e = Emulator::new(backend, Identity::dkraid(b"Fuzz", 7), limits);
    // The model: a pending unit attention (0 highest priority) and whether the unit is stopped.
    let mut attention: Option<u8> = Some(0);
    let mut stopped = false;

    for _ in 0..MAX_COMMANDS {
        if r.is_empty() {
            break;
        }
        let h = r.u8();
        let kind = h & 0x1F;
        if kind == 17 {
            let a = r.u8() % 3;
            match a {
                0 => e.reset(),
                1 => e.capacity_changed(),
                _ => e.luns_changed(),
            }
            attention = Some(attention.map_or(a, |cur| cur.min(a)));
            continue;
        }
        let out = h & 0x20 != 0;
        let lun = u64::from(h >> 6 & 1);
        let no_buffer = h & 0x80 != 0;
        let requested = u64::from(r.u16());
        let buffer_len = usize::from(r.u16()) % (MAX_BUFFER + 1);
        let opcode = r.u8();
        let len = match kind {
            0 => 0,
            1..=16 => usize::from(kind),
            _ => cdb::cdb_length(opcode).unwrap_or(6),
        };
        let mut cdb_bytes = Vec::with_capacity(len);
        if len > 0 {
            cdb_bytes.push(opcode);
            cdb_bytes.extend_from_slice(r.bytes(len - 1));
            cdb_bytes.resize(len, 0);
        }
        let mut buf = vec![0xA5u8; buffer_len];
        if out {
            let given = r.bytes(buffer_len);
            buf[..given.len()].copy_from_slice(given);
            buf[given.len()..].fill(0);
        }

        let decoded = check_decode(&cdb_bytes);
        let walked = match decoded {
            Ok(Command::Verify { range, byte_check: false }) => u64::from(range.blocks),
            Ok(Command::WriteSame { range, .. }) => u64::from(range.blocks),
            _ => 0,
        };
        if walked > MAX_WALKED_BLOCKS {
            continue;
        }
        let before = if out { buf.clone() } else { Vec::new() };
        let data = if no_buffer {
            Data::None
        } else if out {
            Data::Out(&buf)
        } else {
            Data::In(&mut buf)
        };
        let host_len = if no_buffer { 0 } else { buffer_len };
        let c = e.execute(&cdb_bytes, lun, requested, data);
        check_completion(&c, &cdb_bytes, requested, host_len, if out { buffer_len } else { 0 });
        if !no_buffer && !out {
            let n = c.bytes as usize;
            assert!(buf[n..].iter().all(|&b| b == 0xA5), "bytes past the count were written");
        } else if out {
            assert_eq!(buf, before, "the host's data-out buffer changed");
        }

        let command = match decoded {
            Err(s) => {
                assert_eq!(c, Completion { status: CHECK_CONDITION, sense: Some(s), bytes: 0 });
                continue;
            }
            Ok(command) => command,
        };
        // The model: what must come back before the command itself runs.
        match command {
            Command::Inquiry { alloc, .. } => assert!(c.bytes <= u64::from(alloc.min(96))),
            Command::ReportLuns { alloc, .. } => assert!(c.bytes <= u64::from(alloc.min(16))),
            Command::RequestSense { alloc } => {
                assert_eq!(c.status, GOOD, "REQUEST SENSE is always answered: {c:?}");
                assert!(c.bytes <= u64::from(alloc.min(18)));
                if c.bytes >= 8 && !out && !no_buffer {
                    assert_eq!(buf[0], 0x70, "REQUEST SENSE data is fixed format");
                    assert_eq!(buf[7], 10);
                }
                if lun == 0 {
                    if let (Some(a), true) = (attention, c.bytes >= 14 && !out && !no_buffer) {
                        assert_eq!(
                            (buf[2], buf[12], buf[13]),
                            (0x06, attention_asc(a).0, attention_asc(a).1)
                        );
                    }
                    attention = None;
                }
            }
            _ if lun != 0 => {
                assert_eq!(c.sense.map(|s| s.asc), Some(Asc::LUN_NOT_SUPPORTED), "{c:?}");
            }
            _ => {
                if let Some(a) = attention.take() {
                    let s = c.sense.expect("a pending unit attention is reported");
                    assert_eq!((s.key, s.asc), (SenseKey::UnitAttention, attention_asc(a)));
                    continue;
                }
                let needs_medium = !matches!(
                    command,
                    Command::StartStopUnit { .. } | Command::PreventAllowMediumRemoval
                );
                if stopped && needs_medium {
                    let s = c.sense.expect("a stopped unit is not ready");
                    assert_eq!(
                        (s.key, s.asc),
                        (SenseKey::NotReady, Asc::INITIALIZING_COMMAND_REQUIRED)
                    );
                    continue;
                }
                check_command(&e, command, &c, &buf, out, no_buffer, bad_lba);
                if let Command::StartStopUnit { start, load_eject: false, power_condition: 0 } =
                    command
                {
                    stopped = !start;
                }
            }
        }
    }
}

/// What every completion satisfies.
fn check_completion(c: &Completion, cdb: &[u8], requested: u64, host_len: usize, out_len: usize) {
    match c.status {
        GOOD => assert!(c.sense.is_none(), "GOOD with sense: {c:?}"),
        CHECK_CONDITION => {
            let s = c.sense.expect("CHECK CONDITION without sense");
            assert_eq!(c.bytes, 0, "CHECK CONDITION moved bytes: {c:?}");
            check_sense(&s, cdb.len(), out_len);
        }
        other => panic!("status {other:#x}"),
    }
    assert!(c.bytes <= requested, "{} bytes moved, {requested} requested", c.bytes);
    assert!(c.bytes <= host_len as u64, "{} bytes moved, the buffer holds {host_len}", c.bytes);
}

/// A command that ran: its byte count and its effect on the backend.
fn check_command(
    e: &Emulator<CheckedBackend>,
    command: Command,
    c: &Completion,
    buf: &[u8],
    out: bool,
    no_buffer: bool,
    bad_lba: Option<u64>,
) {
    let bs = u64::from(e.backend().block_size());
    if let Some(s) = c.sense {
        if s.key == SenseKey::MediumError {
            assert_eq!(s.information, bad_lba, "a medium error names the bad LBA");
        }
        return;
    }
    match command {
        Command::ReadCapacity10 => assert!(c.bytes <= 8),
        Command::ReadCapacity16 { alloc } => assert!(c.bytes <= u64::from(alloc.min(32))),
        Command::ModeSense { alloc, .. } => assert!(c.bytes <= u64::from(alloc)),
        Command::Read(r) => {
            assert_eq!(c.bytes, u64::from(r.blocks) * bs, "READ moves exactly its blocks");
            if c.bytes > 0 && !out && !no_buffer {
                let held = e.backend().contents(r.lba, u64::from(r.blocks));
                assert!(buf[..c.bytes as usize] == held[..], "READ returned other blocks");
            }
        }
        Command::Write(r) => {
            assert_eq!(c.bytes, u64::from(r.blocks) * bs, "WRITE moves exactly its blocks");
            if c.bytes > 0 {
                let held = e.backend().contents(r.lba, u64::from(r.blocks));
                assert!(buf[..c.bytes as usize] == held[..], "WRITE stored other data");
            }
        }
        Command::Verify { range, byte_check } => {
            let expected = if byte_check { u64::from(range.blocks) * bs } else { 0 };
            assert_eq!(c.bytes, expected);
        }
        Command::ModeSelect { length, .. } | Command::Unmap { length } => {
            assert_eq!(c.bytes, u64::from(length))
        }
        Command::WriteSame { .. } => assert!(c.bytes == 0 || c.bytes == bs),
        Command::WriteVerify { range: r, .. } => {
            assert_eq!(c.bytes, u64::from(r.blocks) * bs, "WRITE AND VERIFY moves its blocks");
            if c.bytes > 0 {
                let held = e.backend().contents(r.lba, u64::from(r.blocks));
                assert!(buf[..c.bytes as usize] == held[..], "WRITE AND VERIFY stored other data");
            }
        }
        Command::CompareAndWrite(r) => {
            let half = u64::from(r.blocks) * bs;
            assert_eq!(c.bytes, 2 * half, "COMPARE AND WRITE moves both halves");
            if half > 0 {
                let held = e.backend().contents(r.lba, u64::from(r.blocks));
                let written = &buf[half as usize..2 * half as usize];
                assert!(written == &held[..], "COMPARE AND WRITE stored other data");
            }
        }
        Command::ReportOpcodes { alloc, .. } | Command::GetLbaStatus { alloc, .. } => {
            assert!(c.bytes <= u64::from(alloc))
        }
        Command::PreFetch { .. } => assert_eq!(c.bytes, 0),
        Command::TestUnitReady
        | Command::StartStopUnit { .. }
        | Command::PreventAllowMediumRemoval
        | Command::SynchronizeCache { .. } => assert_eq!(c.bytes, 0),
        Command::Inquiry { .. } | Command::ReportLuns { .. } | Command::RequestSense { .. } => {}
    }
}
