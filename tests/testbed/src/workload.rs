//! `dkraid-sim io`: a block workload through the whole stack — kernel clients issuing READ/WRITE
//! (10, or 16 above LBA 0xFFFFFFFF, as macOS does) with a queue depth, through the simulated
//! kernel, the dext's C++ and the core, to the backend — measured in wall time (I/Os and MB per
//! second) and in virtual time (latency percentiles).
//!
//! `--verify` is fio's verify: every logical block is written with a self-describing,
//! checksummed pattern (a header naming its LBA and the run's seed, a checksum of the payload,
//! then a payload drawn from the LBA), all writes complete, then every block is read back and
//! checked; each mismatch is reported by LBA with what was found there. Faults
//! ([`crate::faults`]) fire at a percentage of the bytes done.
//!
//! Like macOS's block storage driver, a client retries an I/O that failed for a transient
//! reason — BUSY, TASK SET FULL, a task timeout, UNIT ATTENTION, NOT READY (becoming ready) —
//! with a doubling back-off for a bounded time ([`RETRY_BUDGET_NS`]); what is still failing
//! after that is an error.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;

use crate::disk::DiskReport;
use crate::sched;
use crate::tasks::{self, Direction, Request};

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoConfig {
    pub write: bool,
    pub total_bytes: u64,
    pub block_bytes: u64,
    pub queue_depth: u32,
    /// Write `total_bytes` of verifiable pattern, then read it all back and check it
    /// (`write` is ignored).
    pub verify: bool,
}

pub use crate::tasks::{FIRST_BACKOFF_NS, MAX_BACKOFF_NS, RETRY_BUDGET_NS};

/// How many mismatches the report lists one by one (all are counted).
pub const MISMATCHES_LISTED: usize = 10_000;

/// One logical block that did not read back as written.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Mismatch {
    pub lba: u64,
    /// What the block held instead: `zeroes`, `the data of LBA N`, `corrupt payload
    /// (checksum)`, `N bytes differ`, or `a block of another run (seed S)`.
    pub found: String,
}

/// The result table.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct IoReport {
    pub mode: String,
    pub ios: u64,
    pub bytes: u64,
    pub errors: u64,
    pub queue_depth: u32,
    pub block_bytes: u64,
    pub wall_seconds: f64,
    pub ios_per_second: f64,
    pub mb_per_second: f64,
    pub latency_p50_ns: u64,
    pub latency_p99_ns: u64,
    pub virtual_ns: u64,
    pub first_error: Option<String>,
    /// Retries of transient failures (each attempt after an I/O's first).
    pub retries: u64,
    /// `--verify`: blocks read back and checked.
    pub verified_blocks: u64,
    /// `--verify`: blocks that did not read back as written (a count).
    pub mismatches: u64,
    /// The first [`MISMATCHES_LISTED`] of them, by LBA.
    pub mismatch_list: Vec<Mismatch>,
    /// What the faults did, in order.
    pub faults: Vec<crate::faults::Fired>,
}

/// A size like `1GiB`, `4k`, `512`, `1MiB`, `2M`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 =
        digits.parse().map_err(|_| format!("{text:?} is not a size (e.g. 4k, 1MiB, 1GiB)"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use k, M, G, T)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{text:?} is too large"))
}

#[derive(Debug, Default)]
struct State {
    /// `--verify`: false while writing, true once every write completed and reads began.
    verifying: bool,
    /// I/Os taken but not finished (the verify phase waits for the writes to drain).
    outstanding: u64,
    retries: u64,
    verified_blocks: u64,
    mismatches: u64,
    mismatch_list: Vec<Mismatch>,
    next_offset: u64,
    ios: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_ns: Vec<u64>,
    started_ns: Option<u64>,
    finished_ns: u64,
}

/// A progress callback: bytes done so far.
pub type Progress = Rc<dyn Fn(u64)>;

/// A prepared workload against one disk.
pub struct Workload {
    cfg: IoConfig,
    target: u64,
    lun: u64,
    block_size: u64,
    state: Rc<RefCell<State>>,
    pattern: Rc<Vec<u8>>,
    progress: Option<Progress>,
    faults: Rc<RefCell<crate::faults::Schedule>>,
    seed: u64,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload").field("cfg", &self.cfg).field("target", &self.target).finish()
    }
}

impl Workload {
    /// Check the workload against the disk: sizes are whole blocks and fit the disk.
    pub fn new(
        cfg: IoConfig,
        disk: &DiskReport,
        progress: Option<Progress>,
    ) -> Result<Workload, String> {
        let bs = u64::from(disk.block_size);
        if bs == 0 || !disk.attached {
            return Err(format!("target {} LUN {} is not an attached disk", disk.target, disk.lun));
        }
        if cfg.block_bytes == 0 || cfg.block_bytes % bs != 0 {
            return Err(format!(
                "--block {} is not a whole number of {bs}-byte blocks",
                cfg.block_bytes
            ));
        }
        if cfg.block_bytes / bs > u64::from(u16::MAX) {
            return Err(format!(
                "--block {} is more than a READ/WRITE(10) can carry",
                cfg.block_bytes
            ));
        }
        if cfg.total_bytes == 0 || cfg.total_bytes % cfg.block_bytes != 0 {
            return Err(format!(
                "the size {} is not a whole, non-zero number of {}-byte I/Os",
                cfg.total_bytes, cfg.block_bytes
            ));
        }
        if cfg.total_bytes > disk.capacity_bytes {
            return Err(format!(
                "{} bytes do not fit the {}-byte disk",
                cfg.total_bytes, disk.capacity_bytes
            ));
        }
        if cfg.queue_depth == 0 || cfg.queue_depth > 128 {
            return Err(format!("--qd {} is not in 1..=128", cfg.queue_depth));
        }
        let pattern: Vec<u8> = (0..cfg.block_bytes).map(|i| (i % 251) as u8).collect();
        Ok(Workload {
            cfg,
            target: disk.target,
            lun: disk.lun,
            block_size: bs,
            state: Rc::new(RefCell::new(State::default())),
            pattern: Rc::new(pattern),
            progress,
            faults: Rc::new(RefCell::new(crate::faults::Schedule::default())),
            seed: 1,
        })
    }

    /// Faults to fire during the run; `seed` keys the verify pattern and garbage replies.
    pub fn with_faults(mut self, faults: Vec<crate::faults::Fault>, seed: u64) -> Workload {
        self.faults = Rc::new(RefCell::new(crate::faults::Schedule::new(faults)));
        self.seed = seed;
        self
    }

    /// Bytes the whole run moves (a verify run writes, then reads, `total_bytes`).
    fn work_bytes(&self) -> u64 {
        if self.cfg.verify {
            2 * self.cfg.total_bytes
        } else {
            self.cfg.total_bytes
        }
    }

    /// One client thread's body: take the next I/O until none is left.
    pub fn client(&self) -> impl FnOnce() + 'static {
        let (cfg, target, lun, bs, seed) =
            (self.cfg, self.target, self.lun, self.block_size, self.seed);
        let work = self.work_bytes();
        let state = self.state.clone();
        let pattern = self.pattern.clone();
        let progress = self.progress.clone();
        let faults = self.faults.clone();
        move || loop {
            // Faults due before anything moved (0%) fire first.
            let done = state.borrow().ios * cfg.block_bytes;
            fire_due(&faults, done, work, seed);
            let Some((write, offset)) = next_io(&state, &cfg) else { return };
            let lba = offset / bs;
            let blocks = (cfg.block_bytes / bs) as u32;
            let cdb = rw_cdb(write, lba, blocks);
            // The plain write's pattern is shared, not copied per I/O; a verify write's is
            // the blocks' own.
            let data_out: std::borrow::Cow<'_, [u8]> = if !write {
                std::borrow::Cow::Borrowed(&[])
            } else if cfg.verify {
                std::borrow::Cow::Owned(verify_pattern(lba, bs, cfg.block_bytes, seed))
            } else {
                std::borrow::Cow::Borrowed(&pattern[..])
            };
            let start = sched::now_ns();
            let request = Request {
                target,
                lun,
                cdb: &cdb,
                direction: if write { Direction::Out } else { Direction::In },
                length: cfg.block_bytes,
                data_out: &data_out,
            };
            let (o, retries) = tasks::run_retrying(&request, transient);
            state.borrow_mut().retries += retries;
            let latency = sched::now_ns() - start;
            {
                let mut s = state.borrow_mut();
                s.outstanding -= 1;
                s.ios += 1;
                s.latencies_ns.push(latency);
                if o.good() {
                    s.bytes += o.bytes;
                    if cfg.verify && !write {
                        check_blocks(&mut s, &o.data, lba, bs, seed);
                    }
                } else {
                    s.errors += 1;
                    if s.first_error.is_none() {
                        s.first_error = Some(match o.sense_code() {
                            Some((k, asc, ascq)) => format!(
                                "LBA {lba}: {} {k:X}/{asc:02X}/{ascq:02X}",
                                crate::passthrough::sense_key_name(k)
                            ),
                            None => format!(
                                "LBA {lba}: service response {:?}, status {:#04x}",
                                o.service_response, o.status
                            ),
                        });
                    }
                }
                s.finished_ns = sched::now_ns();
            }
            let done = state.borrow().ios * cfg.block_bytes;
            if let Some(p) = &progress {
                p(done);
            }
            fire_due(&faults, done, work, seed);
        }
    }

    pub fn report(&self, wall: Duration) -> IoReport {
        let s = self.state.borrow();
        let mut lat = s.latencies_ns.clone();
        lat.sort_unstable();
        let pct = |p: f64| -> u64 {
            if lat.is_empty() {
                0
            } else {
                lat[(((lat.len() - 1) as f64) * p).round() as usize]
            }
        };
        let secs = wall.as_secs_f64().max(1e-9);
        IoReport {
            mode: match (self.cfg.verify, self.cfg.write) {
                (true, _) => "verify",
                (false, true) => "write",
                (false, false) => "read",
            }
            .into(),
            ios: s.ios,
            bytes: s.bytes,
            errors: s.errors,
            queue_depth: self.cfg.queue_depth,
            block_bytes: self.cfg.block_bytes,
            wall_seconds: secs,
            ios_per_second: s.ios as f64 / secs,
            mb_per_second: s.bytes as f64 / secs / 1e6,
            latency_p50_ns: pct(0.50),
            latency_p99_ns: pct(0.99),
            virtual_ns: s.finished_ns.saturating_sub(s.started_ns.unwrap_or(0)),
            first_error: s.first_error.clone(),
            retries: s.retries,
            verified_blocks: s.verified_blocks,
            mismatches: s.mismatches,
            mismatch_list: s.mismatch_list.clone(),
            faults: self.faults.borrow().fired.clone(),
        }
    }
}

/// The next I/O to issue, (write, byte offset); None when the run is done. In a verify run the
/// reads start only once every write has completed.
fn next_io(state: &Rc<RefCell<State>>, cfg: &IoConfig) -> Option<(bool, u64)> {
    loop {
        {
            let mut s = state.borrow_mut();
            if s.next_offset < cfg.total_bytes {
                let o = s.next_offset;
                s.next_offset += cfg.block_bytes;
                s.outstanding += 1;
                s.started_ns.get_or_insert(sched::now_ns());
                let write = if cfg.verify { !s.verifying } else { cfg.write };
                return Some((write, o));
            }
            if !cfg.verify || s.verifying {
                return None;
            }
            if s.outstanding == 0 {
                s.verifying = true;
                s.next_offset = 0;
                continue;
            }
        }
        // Writes still in flight: wait for them to drain.
        sched::sleep_ns(100_000);
    }
}

/// Fire the faults due once `done` of `work` bytes have moved.
fn fire_due(faults: &Rc<RefCell<crate::faults::Schedule>>, done: u64, work: u64, seed: u64) {
    if faults.borrow().is_empty() {
        return;
    }
    let due = faults.borrow_mut().due(done, work);
    for f in due {
        let fired = f.fire(seed);
        faults.borrow_mut().fired.push(fired);
    }
}

/// Whether a failed I/O is worth retrying, as macOS's storage stack judges it.
pub fn transient(o: &tasks::Outcome) -> bool {
    // CHECK CONDITION: UNIT ATTENTION, or NOT READY becoming ready.
    tasks::transport_transient(o)
        || (o.service_response == Some(2)
            && o.status == 0x02
            && matches!(o.sense_code(), Some((0x6, _, _)) | Some((0x2, 0x04, 0x01))))
}

const VERIFY_MAGIC: &[u8; 8] = b"DKRAIDVF";
const VERIFY_HEADER: usize = 32;

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// FNV-1a, 64-bit: the payload checksum in each block's header.
fn checksum(data: &[u8]) -> u64 {
    data.iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// One logical block of the verify pattern: `DKRAIDVF`, the LBA, the seed, the payload's
/// checksum (little-endian u64s), then a payload drawn from (seed, LBA).
pub fn verify_block(lba: u64, block_size: u64, seed: u64, out: &mut [u8]) {
    let n = block_size as usize;
    let mut x = xorshift(seed ^ lba.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
    for chunk in out[VERIFY_HEADER..n].chunks_mut(8) {
        x = xorshift(x);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let sum = checksum(&out[VERIFY_HEADER..n]);
    out[..8].copy_from_slice(VERIFY_MAGIC);
    out[8..16].copy_from_slice(&lba.to_le_bytes());
    out[16..24].copy_from_slice(&seed.to_le_bytes());
    out[24..32].copy_from_slice(&sum.to_le_bytes());
}

/// The data-out of one verify write: consecutive blocks from `lba`.
pub fn verify_pattern(lba: u64, block_size: u64, bytes: u64, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; bytes as usize];
    for (i, block) in buf.chunks_mut(block_size as usize).enumerate() {
        verify_block(lba + i as u64, block_size, seed, block);
    }
    buf
}

/// Check each block of a verify read; record every mismatch.
fn check_blocks(s: &mut State, data: &[u8], lba: u64, block_size: u64, seed: u64) {
    let mut expected = vec![0u8; block_size as usize];
    for (i, got) in data.chunks(block_size as usize).enumerate() {
        let lba = lba + i as u64;
        s.verified_blocks += 1;
        verify_block(lba, block_size, seed, &mut expected);
        if got == &expected[..] {
            continue;
        }
        s.mismatches += 1;
        if s.mismatch_list.len() < MISMATCHES_LISTED {
            let found = describe_mismatch(got, &expected, seed);
            s.mismatch_list.push(Mismatch { lba, found });
        }
    }
}

fn describe_mismatch(got: &[u8], expected: &[u8], seed: u64) -> String {
    if got.len() != expected.len() {
        return format!("{} bytes instead of {}", got.len(), expected.len());
    }
    if got.iter().all(|&b| b == 0) {
        return "zeroes".into();
    }
    if got.len() >= VERIFY_HEADER && &got[..8] == VERIFY_MAGIC {
        let word = |i: usize| u64::from_le_bytes(got[i..i + 8].try_into().unwrap_or([0; 8]));
        let (their_lba, their_seed, sum) = (word(8), word(16), word(24));
        if their_seed != seed {
            return format!("a block of another run (seed {their_seed})");
        }
        if sum != checksum(&got[VERIFY_HEADER..]) {
            return "corrupt payload (checksum)".into();
        }
        if their_lba != u64::from_le_bytes(expected[8..16].try_into().unwrap_or([0; 8])) {
            return format!("the data of LBA {their_lba}");
        }
    }
    let differ = got.iter().zip(expected).filter(|(a, b)| a != b).count();
    format!("{differ} bytes differ")
}

/// READ/WRITE(10), or (16) for LBAs past 32 bits.
pub fn rw_cdb(write: bool, lba: u64, blocks: u32) -> Vec<u8> {
    if lba + u64::from(blocks) <= u64::from(u32::MAX) && blocks <= u32::from(u16::MAX) {
        let mut c = vec![if write { 0x2A } else { 0x28 }, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        c[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
        c[7..9].copy_from_slice(&(blocks as u16).to_be_bytes());
        c
    } else {
        let mut c = vec![0u8; 16];
        c[0] = if write { 0x8A } else { 0x88 };
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&blocks.to_be_bytes());
        c
    }
}

/// The final table.
pub fn print(r: &IoReport) {
    println!(
        "{:<22} {}",
        "workload",
        format_args!("{} {} x {} bytes, qd {}", r.mode, r.ios, r.block_bytes, r.queue_depth)
    );
    println!("{:<22} {}", "I/Os", r.ios);
    println!("{:<22} {}", "bytes", r.bytes);
    println!("{:<22} {:.0}", "I/Os per second (wall)", r.ios_per_second);
    println!("{:<22} {:.1}", "MB/s (wall)", r.mb_per_second);
    println!("{:<22} {:.3} s", "wall time", r.wall_seconds);
    println!("{:<22} {:.1} µs", "latency p50 (virtual)", r.latency_p50_ns as f64 / 1e3);
    println!("{:<22} {:.1} µs", "latency p99 (virtual)", r.latency_p99_ns as f64 / 1e3);
    println!("{:<22} {}", "errors", r.errors);
    if let Some(e) = &r.first_error {
        println!("{:<22} {e}", "first error");
    }
    println!("{:<22} {}", "retries", r.retries);
    for f in &r.faults {
        println!(
            "{:<22} {} at {}% ({:.3} ms): {}",
            "fault",
            f.fault,
            f.at_percent,
            f.virtual_ns as f64 / 1e6,
            f.result
        );
    }
    if r.mode == "verify" {
        println!("{:<22} {}", "blocks verified", r.verified_blocks);
        println!("{:<22} {}", "mismatches", r.mismatches);
        for m in &r.mismatch_list {
            println!("{:<22} LBA {}: {}", "mismatch", m.lba, m.found);
        }
        if r.mismatches as usize > r.mismatch_list.len() {
            println!(
                "{:<22} ({} more not listed)",
                "",
                r.mismatches as usize - r.mismatch_list.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("10Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn cdbs_as_macos_sends_them() {
        assert_eq!(rw_cdb(false, 8, 16)[0], 0x28);
        assert_eq!(rw_cdb(true, 8, 16)[0], 0x2A);
        let big = rw_cdb(true, 1 << 33, 8);
        assert_eq!((big[0], big.len()), (0x8A, 16));
    }

    #[test]
    fn the_verify_pattern_names_its_block_and_mismatches_say_what_was_found() {
        let a = verify_pattern(100, 512, 1024, 7);
        assert_eq!(&a[..8], VERIFY_MAGIC);
        assert_ne!(a[..512], a[512..], "each block differs");
        assert_eq!(a, verify_pattern(100, 512, 1024, 7), "and is reproducible");
        let mut s = State::default();
        check_blocks(&mut s, &a, 100, 512, 7);
        assert_eq!((s.verified_blocks, s.mismatches), (2, 0));
        // Block 101 holds block 100's data, then zeroes, then a flipped byte, then a stale run.
        let mut shifted = a.clone();
        shifted.copy_within(..512, 512);
        check_blocks(&mut s, &shifted, 100, 512, 7);
        let mut zeroed = a.clone();
        zeroed[512..].fill(0);
        check_blocks(&mut s, &zeroed, 100, 512, 7);
        let mut flipped = a.clone();
        flipped[600] ^= 1;
        check_blocks(&mut s, &flipped, 100, 512, 7);
        check_blocks(&mut s, &verify_pattern(100, 512, 1024, 8), 100, 512, 7);
        let found: Vec<(u64, &str)> =
            s.mismatch_list.iter().map(|m| (m.lba, m.found.as_str())).collect();
        assert_eq!(
            found,
            [
                (101, "the data of LBA 100"),
                (101, "zeroes"),
                (101, "corrupt payload (checksum)"),
                (100, "a block of another run (seed 8)"),
                (101, "a block of another run (seed 8)"),
            ]
        );
        assert_eq!(s.mismatches, 5);
    }

    #[test]
    fn transient_failures_are_the_ones_a_host_retries() {
        let o = |sr: Option<u32>, status: u32, sense: &[u8]| tasks::Outcome {
            service_response: sr,
            status,
            bytes: 0,
            sense: sense.to_vec(),
            data: Vec::new(),
        };
        let mut ua = vec![0u8; 18];
        ua[0] = 0x70;
        ua[2] = 0x06;
        ua[12] = 0x29;
        let mut medium = ua.clone();
        medium[2] = 0x03;
        medium[12] = 0x11;
        assert!(transient(&o(Some(2), 0x08, &[])), "BUSY");
        assert!(transient(&o(Some(2), 0x28, &[])), "TASK SET FULL");
        assert!(transient(&o(Some(2), 0x02, &ua)), "UNIT ATTENTION");
        assert!(transient(&o(Some(1), 0x01, &[])), "task timeout");
        assert!(!transient(&o(Some(2), 0x02, &medium)), "MEDIUM ERROR is final");
        assert!(!transient(&o(None, 0, &[])), "a task the dext refused");
    }

    #[test]
    fn workloads_are_checked_against_the_disk() {
        let disk = DiskReport {
            block_size: 512,
            capacity_bytes: 1 << 30,
            attached: true,
            ..DiskReport::default()
        };
        let cfg = IoConfig {
            write: true,
            total_bytes: 1 << 20,
            block_bytes: 4096,
            queue_depth: 4,
            verify: false,
        };
        assert!(Workload::new(cfg, &disk, None).is_ok());
        assert!(Workload::new(IoConfig { block_bytes: 1000, ..cfg }, &disk, None)
            .unwrap_err()
            .contains("whole number"));
        assert!(Workload::new(IoConfig { total_bytes: 2 << 30, ..cfg }, &disk, None)
            .unwrap_err()
            .contains("do not fit"));
        assert!(Workload::new(IoConfig { queue_depth: 0, ..cfg }, &disk, None).is_err());
        assert!(Workload::new(cfg, &DiskReport::default(), None)
            .unwrap_err()
            .contains("not an attached disk"));
    }
}
