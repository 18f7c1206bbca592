//! I/O statistics for the admin protocol's `IO_STATS`: per target (a volume's ID is its target
//! ID) and for the whole controller, counted in every stage's completion path.
//!
//! Memory: one [`Counters`] is 168 bytes (five `u64` counters and 16 latency buckets); the
//! table holds one per target (128) plus the controller's sum, 129 × 168 = 21,672 bytes, inside
//! the core object. The controller also keeps one `u64` per task ([`Started`], 8 × 256 =
//! 2,048 bytes): when the task was submitted and whether it reads or writes.

use zerocopy::little_endian::U64;

use super::wire::{latency_bucket, IoStats, LATENCY_BUCKETS};
use crate::abi;
use crate::limits::HIGHEST_TARGET_ID;

/// How many targets have counters of their own (0..=[`HIGHEST_TARGET_ID`]).
pub const STATS_TARGETS: usize = HIGHEST_TARGET_ID as usize + 1;

/// What a command does with data, for the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoKind {
    Read,
    Write,
    /// Anything else (INQUIRY, TEST UNIT READY, SYNCHRONIZE CACHE, ...): counted only in
    /// `errors`, if it fails.
    Other,
}

impl IoKind {
    /// From the CDB's operation code: READ(6/10/12/16) and WRITE(6/10/12/16).
    pub const fn of_cdb(opcode: u8) -> IoKind {
        match opcode {
            0x08 | 0x28 | 0xA8 | 0x88 => IoKind::Read,
            0x0A | 0x2A | 0xAA | 0x8A => IoKind::Write,
            _ => IoKind::Other,
        }
    }

    /// From a task as the kernel sent it.
    pub fn of_task(task: &abi::dk_scsi_user_parallel_task) -> IoKind {
        if task.fCommandSize == 0 {
            return IoKind::Other;
        }
        IoKind::of_cdb(task.fCommandDescriptorBlock[0])
    }

    const fn bits(self) -> u64 {
        match self {
            IoKind::Other => 0,
            IoKind::Read => 1,
            IoKind::Write => 2,
        }
    }
}

/// One task's submission, packed in a `u64`: the submission time in ns with its two low bits
/// replaced by the [`IoKind`] (a 4 ns loss of resolution for a histogram whose first bucket is
/// 1 µs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Started(u64);

impl Started {
    pub const NONE: Started = Started(0);

    pub const fn new(now_ns: u64, kind: IoKind) -> Started {
        Started((now_ns & !3) | kind.bits())
    }

    pub const fn at_ns(self) -> u64 {
        self.0 & !3
    }

    pub const fn kind(self) -> IoKind {
        match self.0 & 3 {
            1 => IoKind::Read,
            2 => IoKind::Write,
            _ => IoKind::Other,
        }
    }
}

/// One target's (or the controller's) counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub errors: u64,
    pub latency_us_log2: [u64; LATENCY_BUCKETS],
}

impl Counters {
    pub const ZERO: Counters = Counters {
        reads: 0,
        writes: 0,
        read_bytes: 0,
        write_bytes: 0,
        errors: 0,
        latency_us_log2: [0; LATENCY_BUCKETS],
    };

    fn count(&mut self, kind: IoKind, bytes: u64, failed: bool, latency_us: u64) {
        match kind {
            IoKind::Read => {
                self.reads = self.reads.wrapping_add(1);
                self.read_bytes = self.read_bytes.wrapping_add(bytes);
            }
            IoKind::Write => {
                self.writes = self.writes.wrapping_add(1);
                self.write_bytes = self.write_bytes.wrapping_add(bytes);
            }
            IoKind::Other => {}
        }
        if kind != IoKind::Other {
            let b = &mut self.latency_us_log2[latency_bucket(latency_us)];
            *b = b.wrapping_add(1);
        }
        if failed {
            self.errors = self.errors.wrapping_add(1);
        }
    }

    /// The protocol's payload.
    pub fn to_wire(&self) -> IoStats {
        IoStats {
            reads: U64::new(self.reads),
            writes: U64::new(self.writes),
            read_bytes: U64::new(self.read_bytes),
            write_bytes: U64::new(self.write_bytes),
            errors: U64::new(self.errors),
            latency_us_log2: self.latency_us_log2.map(U64::new),
        }
    }
}

/// Every target's counters and the controller's sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoStatsTable {
    targets: [Counters; STATS_TARGETS],
    total: Counters,
}

impl Default for IoStatsTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Did a completion fail? Anything but TASK_COMPLETE with GOOD status.
pub fn failed(response: &abi::dk_scsi_user_parallel_response) -> bool {
    response.fServiceResponse != abi::ServiceResponse::TASK_COMPLETE.0
        || response.fCompletionStatus != abi::TaskStatus::GOOD.0
}

impl IoStatsTable {
    pub const fn new() -> IoStatsTable {
        IoStatsTable { targets: [Counters::ZERO; STATS_TARGETS], total: Counters::ZERO }
    }

    /// Count one completion of a task to `target` submitted as `started`, completed at
    /// `now_ns` with `response`. A target past [`HIGHEST_TARGET_ID`] counts in the total only.
    pub fn complete(
        &mut self,
        target: u64,
        started: Started,
        now_ns: u64,
        response: &abi::dk_scsi_user_parallel_response,
    ) {
        let kind = started.kind();
        let failed = failed(response);
        if kind == IoKind::Other && !failed {
            return;
        }
        let latency_us = now_ns.saturating_sub(started.at_ns()) / 1_000;
        let bytes = response.fBytesTransferred;
        if let Some(t) = usize::try_from(target).ok().and_then(|t| self.targets.get_mut(t)) {
            t.count(kind, bytes, failed, latency_us);
        }
        self.total.count(kind, bytes, failed, latency_us);
    }

    /// A target's counters, or the controller's for [`super::wire::ALL_VOLUMES`].
    pub fn get(&self, volume: u16) -> Counters {
        if volume == super::wire::ALL_VOLUMES {
            return self.total;
        }
        self.targets.get(usize::from(volume)).copied().unwrap_or(Counters::ZERO)
    }
}
