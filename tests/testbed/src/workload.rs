//! `dkraid-sim io`: a block workload through the whole stack — kernel clients issuing READ/WRITE
//! (10, or 16 above LBA 0xFFFFFFFF, as macOS does) with a queue depth, through the simulated
//! kernel, the dext's C++ and the core, to the backend — measured in wall time (I/Os and MB per
//! second) and in virtual time (latency percentiles).

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
        })
    }

    /// One client thread's body: take the next I/O until none is left.
    pub fn client(&self) -> impl FnOnce() + 'static {
        let (cfg, target, lun, bs) = (self.cfg, self.target, self.lun, self.block_size);
        let state = self.state.clone();
        let pattern = self.pattern.clone();
        let progress = self.progress.clone();
        move || loop {
            let offset = {
                let mut s = state.borrow_mut();
                if s.next_offset >= cfg.total_bytes {
                    return;
                }
                let o = s.next_offset;
                s.next_offset += cfg.block_bytes;
                s.started_ns.get_or_insert(sched::now_ns());
                o
            };
            let lba = offset / bs;
            let blocks = (cfg.block_bytes / bs) as u32;
            let cdb = rw_cdb(cfg.write, lba, blocks);
            let start = sched::now_ns();
            let o = tasks::run(&Request {
                target,
                lun,
                cdb: &cdb,
                direction: if cfg.write { Direction::Out } else { Direction::In },
                length: cfg.block_bytes,
                data_out: if cfg.write { &pattern } else { &[] },
            });
            let latency = sched::now_ns() - start;
            let done = {
                let mut s = state.borrow_mut();
                s.ios += 1;
                s.latencies_ns.push(latency);
                if o.good() {
                    s.bytes += o.bytes;
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
                s.ios * cfg.block_bytes
            };
            if let Some(p) = &progress {
                p(done);
            }
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
            mode: if self.cfg.write { "write" } else { "read" }.into(),
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
        }
    }
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
    fn workloads_are_checked_against_the_disk() {
        let disk = DiskReport {
            block_size: 512,
            capacity_bytes: 1 << 30,
            attached: true,
            ..DiskReport::default()
        };
        let cfg = IoConfig { write: true, total_bytes: 1 << 20, block_bytes: 4096, queue_depth: 4 };
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
