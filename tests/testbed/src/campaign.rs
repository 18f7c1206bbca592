//! `dkraid-sim campaign`: many seeds, each a random but deterministic array, verify workload
//! and fault schedule, run as `dkraid-sim io ... --json` child processes of the same binary,
//! each checked against the rules below. Every failure carries the exact `dkraid-sim io`
//! command that reproduces it.
//!
//! Why child processes and not boots in this process: a boot can end the process (the IOVA
//! SIGSEGV handler, the spin watchdog's exit 3, a panic in the dext's C++ stack frames), and a
//! livelock never returns. A child that crashes or hangs is killed and reported as that seed's
//! failure while the campaign goes on; a boot costs a few tens of milliseconds of process
//! start-up at most.
//!
//! A seed fails on (see `docs/CAMPAIGN.md`):
//! - any violation the test-bed names (lost and double completions among them);
//! - any mismatch (a block that read back GOOD with other data): never excused;
//! - any I/O error, unless the schedule makes failure legitimate *and* the controller's final
//!   state shows it happened: volume 0 is `Offline` and the schedule failed enough of its
//!   members for its level to lose data (RAID 0: one; RAID 1: both; RAID 5: two; RAID 10: both
//!   of a mirror pair), or the schedule deleted volume 0 and it is gone;
//! - the workload taking more virtual time than the bound ([`Plan::virtual_bound_ns`]);
//! - the child crashing (a signal, a spin: exit 3, no report), exceeding the wall-clock
//!   timeout, or refusing the command (exit 2: a generator bug).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The task timeout a stall is measured against (the kernel model's `fTimeoutInMilliSec`).
pub const TASK_TIMEOUT_MS: u64 = 30_000;
/// The longest single stall generated (past the task timeout, inside the host's retry window).
pub const MAX_STALL_MS: u64 = 65_000;
/// The most stall time one schedule holds in total.
pub const MAX_TOTAL_STALL_MS: u64 = 90_000;

/// Which faults the schedules hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FaultMode {
    /// A random schedule per seed.
    Random,
    /// No faults: random arrays and workloads only.
    None,
}

/// A RAID level the generator picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Level {
    Raid0,
    Raid1,
    Raid5,
    Raid10,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Raid0 => "raid0",
            Level::Raid1 => "raid1",
            Level::Raid5 => "raid5",
            Level::Raid10 => "raid10",
        }
    }
}

/// One seed's generated run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub seed: u64,
    /// The arguments after `dkraid-sim` (`io ... --json`).
    pub args: Vec<String>,
    pub level: Level,
    /// Volume 0's member drives, in slot order.
    pub members: Vec<u16>,
    pub spare: Option<u16>,
    /// Every drive a `--fail-drive` fails.
    pub failed_drives: Vec<u16>,
    /// The schedule deletes volume 0 (the workload's disk).
    pub deletes_volume0: bool,
    /// Sum of the schedule's firmware stalls.
    pub stall_ms: u64,
    /// How many faults the schedule holds.
    pub faults: usize,
}

/// splitmix64: a small deterministic generator keyed by the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0xD1B5_4A32_D192_ED03)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
    /// True with probability `num/den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

fn drive_list(drives: &[u16]) -> String {
    let contiguous = drives.windows(2).all(|w| w[1] == w[0] + 1);
    if drives.len() >= 3 && contiguous {
        format!("{}-{}", drives[0], drives[drives.len() - 1])
    } else {
        drives.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
    }
}

impl Plan {
    /// The run for `seed`: the same seed always gives the same plan.
    pub fn generate(seed: u64, mode: FaultMode, variant: Option<&str>) -> Plan {
        let mut r = Rng::new(seed);
        let drives = r.range(4, 8) as u16;
        let level = r.pick(&[Level::Raid0, Level::Raid1, Level::Raid5, Level::Raid10]);
        let width = match level {
            Level::Raid0 => r.range(2, 4),
            Level::Raid1 => 2,
            Level::Raid5 => r.range(3, 5.min(u64::from(drives))),
            Level::Raid10 => {
                if drives >= 6 && r.chance(1, 3) {
                    6
                } else {
                    4
                }
            }
        } as u16;
        let members: Vec<u16> = (0..width).collect();
        let mut next_free = width;
        let spare = (next_free < drives && r.chance(1, 2)).then(|| {
            next_free += 1;
            next_free - 1
        });
        let free: Vec<u16> = (next_free..drives).collect();
        let block_size = r.pick(&[512u64, 4096]);
        let mut volume = format!("{}:{}", level.name(), drive_list(&members));
        let strip = r.pick(&["", "16k", "128k", "256k"]);
        if !strip.is_empty() {
            volume += &format!(":strip={strip}");
        }
        if block_size == 4096 {
            volume += ":block=4096";
        }
        if r.chance(1, 5) {
            volume += ":cache=wt";
        }
        let io_block = r.pick(&["4KiB", "16KiB", "64KiB", "256KiB", "1MiB"]);
        let verify = r.pick(&["1MiB", "2MiB", "4MiB", "8MiB"]);
        let qd = r.pick(&[1u32, 2, 4, 8, 16, 32]);

        let mut args: Vec<String> = ["io", "--stage", "full", "--seed"]
            .iter()
            .map(|s| s.to_string())
            .chain([seed.to_string()])
            .collect();
        if let Some(v) = variant {
            args.extend(["--variant".into(), v.to_string()]);
        }
        args.extend(["--drives".into(), format!("{drives}x1GiB"), "--volume".into(), volume]);
        if let Some(s) = spare {
            args.extend(["--spare".into(), s.to_string()]);
        }
        args.extend([
            "--verify".into(),
            verify.into(),
            "--block".into(),
            io_block.into(),
            "--qd".into(),
            qd.to_string(),
        ]);

        let mut plan = Plan {
            seed,
            args: Vec::new(),
            level,
            members: members.clone(),
            spare,
            failed_drives: Vec::new(),
            deletes_volume0: false,
            stall_ms: 0,
            faults: 0,
        };
        let mut flags: Vec<(&'static str, String)> = Vec::new();
        if mode == FaultMode::Random {
            let count = r.pick(&[0usize, 1, 1, 2, 2, 2, 3, 3, 4, 5]);
            let mut dropped = false;
            let pct = |r: &mut Rng| r.range(1, 95);
            for _ in 0..count {
                match r.range(0, 10) {
                    0 => {
                        let d = match (r.range(0, 9), spare, free.first()) {
                            (0..=5, _, _) => r.pick(&members),
                            (6 | 7, Some(s), _) => s,
                            (_, _, Some(&f)) => f,
                            _ => r.pick(&members),
                        };
                        plan.failed_drives.push(d);
                        flags.push(("--fail-drive", format!("{d}:{}", pct(&mut r))));
                    }
                    1 => flags.push(("--reset-at", pct(&mut r).to_string())),
                    2 | 3 => {
                        // A stall, often past the task timeout, and often overlapped by a
                        // recovery action: a reset, an abort or a target reset while the
                        // firmware takes nothing (same mark: it fires right after the stall;
                        // a later mark: once the stalled I/O is recovered).
                        let ms =
                            r.pick(&[200, 2_000, 10_000, 29_000, 31_000, 40_000, MAX_STALL_MS]);
                        if plan.stall_ms + ms > MAX_TOTAL_STALL_MS {
                            continue;
                        }
                        plan.stall_ms += ms;
                        let at = pct(&mut r);
                        flags.push(("--stall-firmware", format!("{ms}:{at}")));
                        if r.chance(1, 2) {
                            let then = (at + r.range(0, 2)).min(100);
                            match r.range(0, 2) {
                                0 => flags.push(("--reset-at", then.to_string())),
                                1 => flags.push(("--abort-task", then.to_string())),
                                _ => flags.push(("--target-reset", format!("0:{then}"))),
                            }
                        }
                    }
                    4 if !dropped => {
                        dropped = true;
                        // Each dropped reply costs a 30 s task timeout; at QD 1 one after
                        // another: four outlast the host's 120 s retry window.
                        flags.push(("--drop-replies", r.range(1, 3).to_string()));
                    }
                    4 | 5 => {
                        let n = r.pick(&[1, 4, 64, 512]);
                        flags.push(("--garbage-replies", format!("{n}:{}", pct(&mut r))));
                    }
                    6 => flags.push(("--abort-task", pct(&mut r).to_string())),
                    7 => flags.push(("--target-reset", format!("0:{}", pct(&mut r)))),
                    8 => {
                        // Hot plug on two free drives; on drives in use it is refused.
                        let pair = if free.len() >= 2 {
                            format!("{},{}", free[0], free[1])
                        } else {
                            format!("{},{}", members[0], members[1])
                        };
                        let lvl = r.pick(&["raid1", "raid0"]);
                        flags.push(("--create-volume", format!("{lvl}:{pair}@{}", pct(&mut r))));
                    }
                    9 => {
                        // Hot unplug: mostly the hot-plugged volume 1 (refused if it is not
                        // there), sometimes the workload's own disk.
                        let v = if r.chance(1, 4) { 0 } else { 1 };
                        if v == 0 {
                            plan.deletes_volume0 = true;
                        }
                        flags.push(("--delete-volume", format!("{v}:{}", pct(&mut r))));
                    }
                    _ => {
                        // A drive failure and a reset close together: recovery while degraded.
                        let d = r.pick(&members);
                        let at = pct(&mut r);
                        plan.failed_drives.push(d);
                        flags.push(("--fail-drive", format!("{d}:{at}")));
                        flags.push(("--reset-at", (at + r.range(0, 3)).min(100).to_string()));
                    }
                }
            }
        }
        plan.faults = flags.len();
        for (flag, value) in flags {
            args.extend([flag.to_string(), value]);
        }
        args.push("--json".into());
        plan.failed_drives.sort_unstable();
        plan.failed_drives.dedup();
        plan.args = args;
        plan
    }

    /// The reproducing command line.
    pub fn command(&self) -> String {
        format!("dkraid-sim {}", self.args.join(" "))
    }

    /// Could the schedule's drive failures take volume 0 `Offline` (more members lost than
    /// its level tolerates)? A spare's failure never counts: it only ever stands in for a
    /// member whose failure is already counted.
    pub fn may_lose_volume(&self) -> bool {
        let lost = |d: &u16| self.failed_drives.contains(d);
        let lost_members = self.members.iter().filter(|d| lost(d)).count();
        match self.level {
            Level::Raid0 => lost_members >= 1,
            Level::Raid1 => lost_members == self.members.len(),
            Level::Raid5 => lost_members >= 2,
            Level::Raid10 => self.members.chunks(2).any(|pair| pair.iter().all(lost)),
        }
    }

    /// The most virtual time the workload may take: a fault-free run takes well under a
    /// second; every stall adds its length, every recovery at most one task timeout plus a
    /// bring-up, and the host's 120 s retry window bounds the rest.
    pub fn virtual_bound_ns(&self) -> u64 {
        let s = 1_000_000_000u64;
        (180 + self.faults as u64 * 60) * s + 2 * self.stall_ms * 1_000_000
    }
}

/// Why a seed failed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    Violation,
    Mismatch,
    IoError,
    VirtualTime,
    Timeout,
    Crash,
    Spin,
    BadCommand,
}

impl FailureClass {
    pub fn name(&self) -> &'static str {
        match self {
            FailureClass::Violation => "violation",
            FailureClass::Mismatch => "mismatch",
            FailureClass::IoError => "io-error",
            FailureClass::VirtualTime => "virtual-time",
            FailureClass::Timeout => "timeout",
            FailureClass::Crash => "crash",
            FailureClass::Spin => "spin",
            FailureClass::BadCommand => "bad-command",
        }
    }
}

/// A failed seed.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub seed: u64,
    pub class: FailureClass,
    pub detail: String,
    pub command: String,
}

/// One seed's result.
#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub failure: Option<Failure>,
    /// Errors the rules excused, and why (`volume offline`, `volume deleted`).
    pub excused: Option<&'static str>,
    pub virtual_ns: u64,
    pub wall_seconds: f64,
    pub faults_fired: usize,
}

/// Judge a child's outcome: `code` (None: killed by a signal), its stdout and stderr.
pub fn judge(
    plan: &Plan,
    code: Option<i32>,
    stdout: &str,
    stderr: &str,
) -> (Option<(FailureClass, String)>, Option<&'static str>, u64, usize) {
    let tail = |s: &str| {
        let t: Vec<&str> = s.lines().rev().take(3).collect();
        t.into_iter().rev().collect::<Vec<_>>().join(" | ")
    };
    match code {
        None => {
            return (
                Some((FailureClass::Crash, format!("killed by a signal: {}", tail(stderr)))),
                None,
                0,
                0,
            )
        }
        Some(2) => return (Some((FailureClass::BadCommand, tail(stderr))), None, 0, 0),
        Some(3) => return (Some((FailureClass::Spin, tail(stderr))), None, 0, 0),
        Some(0 | 1) => {}
        Some(c) => {
            return (
                Some((FailureClass::Crash, format!("exit status {c}: {}", tail(stderr)))),
                None,
                0,
                0,
            )
        }
    }
    let json = stdout.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let Some(v) = json.filter(|v| v.get("errors").is_some()) else {
        return (
            Some((FailureClass::Crash, format!("no report (exit {code:?}): {}", tail(stderr)))),
            None,
            0,
            0,
        );
    };
    let num = |k: &str| v[k].as_u64().unwrap_or(0);
    let virtual_ns = num("virtual_ns");
    let fired = v["faults"].as_array().map_or(0, Vec::len);
    let violations = v["violations"].as_array().cloned().unwrap_or_default();
    if let Some(first) = violations.first() {
        let rule = first["rule"].as_str().unwrap_or("?");
        let msg = first["message"].as_str().unwrap_or("");
        let detail = format!("{} violation(s), first {rule}: {msg}", violations.len());
        return (Some((FailureClass::Violation, detail)), None, virtual_ns, fired);
    }
    if num("mismatches") > 0 {
        let first = &v["mismatch_list"][0];
        let detail = format!(
            "{} mismatches, first LBA {} held {}",
            num("mismatches"),
            first["lba"],
            first["found"].as_str().unwrap_or("?")
        );
        return (Some((FailureClass::Mismatch, detail)), None, virtual_ns, fired);
    }
    if virtual_ns > plan.virtual_bound_ns() {
        let detail = format!(
            "the workload took {:.1} s of virtual time, over the bound of {:.0} s ({} errors, {} \
             retries)",
            virtual_ns as f64 / 1e9,
            plan.virtual_bound_ns() as f64 / 1e9,
            num("errors"),
            num("retries")
        );
        return (Some((FailureClass::VirtualTime, detail)), None, virtual_ns, fired);
    }
    let mut excused = None;
    if num("errors") > 0 {
        let volume0 = v["volumes"].as_array().and_then(|vs| vs.iter().find(|x| x["id"] == 0));
        let offline = volume0.is_some_and(|x| x["state"] == "Offline");
        let deleted = v["faults"]
            .as_array()
            .is_some_and(|fs| fs.iter().any(|f| f["result"].as_str() == Some("volume 0 deleted")));
        if offline && plan.may_lose_volume() {
            excused = Some("volume offline");
        } else if deleted && plan.deletes_volume0 && volume0.is_none() {
            excused = Some("volume deleted");
        } else {
            let detail = format!(
                "{} I/O errors ({} retries), first: {}{}",
                num("errors"),
                num("retries"),
                v["first_error"].as_str().unwrap_or("?"),
                volume0.map_or(" (volume 0 gone)".to_string(), |x| format!(
                    " (volume 0 {})",
                    x["state"].as_str().unwrap_or("?")
                ))
            );
            return (Some((FailureClass::IoError, detail)), None, virtual_ns, fired);
        }
    }
    if code == Some(1) && excused.is_none() {
        let detail = format!("exit status 1 with a clean report: {}", tail(stderr));
        return (Some((FailureClass::Crash, detail)), None, virtual_ns, fired);
    }
    (None, excused, virtual_ns, fired)
}

/// What to run.
#[derive(Clone, Debug)]
pub struct CampaignConfig {
    pub exe: PathBuf,
    pub first_seed: u64,
    pub seeds: u64,
    pub jobs: usize,
    pub mode: FaultMode,
    pub variant: Option<String>,
    /// Wall-clock limit per seed; a child still running is killed.
    pub timeout: Duration,
}

/// Run one plan as a child process.
pub fn run_seed(exe: &Path, plan: &Plan, timeout: Duration) -> SeedResult {
    let started = Instant::now();
    let fail = |class, detail: String, wall: f64| SeedResult {
        seed: plan.seed,
        failure: Some(Failure { seed: plan.seed, class, detail, command: plan.command() }),
        excused: None,
        virtual_ns: 0,
        wall_seconds: wall,
        faults_fired: 0,
    };
    let mut child = match Command::new(exe)
        .args(&plan.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return fail(FailureClass::Crash, format!("cannot start {}: {e}", exe.display()), 0.0)
        }
    };
    let pipe = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = pipe(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = pipe(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let mut nap = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(5));
            }
            Err(_) => break None,
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let wall = started.elapsed().as_secs_f64();
    let Some(status) = status else {
        return fail(
            FailureClass::Timeout,
            format!("still running after {} s of wall time: killed", timeout.as_secs()),
            wall,
        );
    };
    let (failure, excused, virtual_ns, faults_fired) = judge(plan, status.code(), &stdout, &stderr);
    SeedResult {
        seed: plan.seed,
        failure: failure.map(|(class, detail)| Failure {
            seed: plan.seed,
            class,
            detail,
            command: plan.command(),
        }),
        excused,
        virtual_ns,
        wall_seconds: wall,
        faults_fired,
    }
}

/// The campaign's result.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignReport {
    pub first_seed: u64,
    pub seeds: u64,
    pub jobs: usize,
    pub faults: FaultMode,
    pub variant: Option<String>,
    pub passed: u64,
    pub failed: u64,
    pub by_class: BTreeMap<String, u64>,
    /// Seeds whose I/O errors the rules excused, by reason.
    pub excused: BTreeMap<String, u64>,
    pub faults_fired: u64,
    pub max_virtual_seconds: f64,
    pub max_virtual_seed: u64,
    pub slowest_wall_seconds: f64,
    pub slowest_wall_seed: u64,
    pub wall_seconds: f64,
    pub seeds_per_second: f64,
    pub failures: Vec<Failure>,
}

/// Run every seed on `jobs` workers; `progress(done, failed)` after each.
pub fn run(cfg: &CampaignConfig, progress: &(dyn Fn(u64, u64) + Sync)) -> CampaignReport {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let results = Mutex::new(Vec::with_capacity(cfg.seeds as usize));
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cfg.seeds {
                    break;
                }
                let plan = Plan::generate(cfg.first_seed + i, cfg.mode, cfg.variant.as_deref());
                let r = run_seed(&cfg.exe, &plan, cfg.timeout);
                if r.failure.is_some() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(d, failed.load(Ordering::Relaxed));
                results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| r.seed);
    let wall = started.elapsed().as_secs_f64();
    let mut report = CampaignReport {
        first_seed: cfg.first_seed,
        seeds: cfg.seeds,
        jobs: cfg.jobs,
        faults: cfg.mode,
        variant: cfg.variant.clone(),
        passed: 0,
        failed: 0,
        by_class: BTreeMap::new(),
        excused: BTreeMap::new(),
        faults_fired: 0,
        max_virtual_seconds: 0.0,
        max_virtual_seed: 0,
        slowest_wall_seconds: 0.0,
        slowest_wall_seed: 0,
        wall_seconds: wall,
        seeds_per_second: if wall > 0.0 { cfg.seeds as f64 / wall } else { 0.0 },
        failures: Vec::new(),
    };
    for r in results {
        report.faults_fired += r.faults_fired as u64;
        let v = r.virtual_ns as f64 / 1e9;
        if v > report.max_virtual_seconds {
            report.max_virtual_seconds = v;
            report.max_virtual_seed = r.seed;
        }
        if r.wall_seconds > report.slowest_wall_seconds {
            report.slowest_wall_seconds = r.wall_seconds;
            report.slowest_wall_seed = r.seed;
        }
        if let Some(e) = r.excused {
            *report.excused.entry(e.to_string()).or_default() += 1;
        }
        match r.failure {
            None => report.passed += 1,
            Some(f) => {
                report.failed += 1;
                *report.by_class.entry(f.class.name().to_string()).or_default() += 1;
                report.failures.push(f);
            }
        }
    }
    report
}

/// The summary for a terminal.
pub fn print(r: &CampaignReport) {
    let last = r.first_seed + r.seeds.saturating_sub(1);
    println!(
        "campaign: {} seeds ({}..={last}), faults {}, {} jobs{}",
        r.seeds,
        r.first_seed,
        match r.faults {
            FaultMode::Random => "random",
            FaultMode::None => "none",
        },
        r.jobs,
        r.variant.as_deref().map(|v| format!(", variant {v}")).unwrap_or_default()
    );
    println!("passed {}, failed {}", r.passed, r.failed);
    for (class, n) in &r.by_class {
        println!("  {class:<14} {n}");
    }
    let excused: Vec<String> = r.excused.iter().map(|(k, n)| format!("{n} {k}")).collect();
    if !excused.is_empty() {
        println!("errors excused: {}", excused.join(", "));
    }
    println!("faults fired {}", r.faults_fired);
    println!(
        "virtual time: longest {:.1} s (seed {}); wall time: slowest seed {:.2} s (seed {})",
        r.max_virtual_seconds, r.max_virtual_seed, r.slowest_wall_seconds, r.slowest_wall_seed
    );
    println!("wall {:.1} s, {:.1} seeds/s", r.wall_seconds, r.seeds_per_second);
    for f in &r.failures {
        println!();
        println!("seed {} FAILED [{}]: {}", f.seed, f.class.name(), f.detail);
        println!("  reproduce: {}", f.command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_and_vary() {
        for seed in 0..500 {
            assert_eq!(
                Plan::generate(seed, FaultMode::Random, None),
                Plan::generate(seed, FaultMode::Random, None)
            );
        }
        let distinct: std::collections::BTreeSet<_> =
            (0..200).map(|s| Plan::generate(s, FaultMode::Random, None).command()).collect();
        assert_eq!(distinct.len(), 200);
        let none = Plan::generate(7, FaultMode::None, None);
        assert_eq!(none.faults, 0);
        assert!(!none.command().contains("--reset-at"));
        let v = Plan::generate(7, FaultMode::Random, Some("late-slot-free"));
        assert!(v.command().contains(" --variant late-slot-free "));
    }

    #[test]
    fn generated_flags_parse_and_describe_an_array_the_engine_builds() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..3000 {
            let p = Plan::generate(seed, FaultMode::Random, None);
            let a = &p.args;
            let values = |flag: &str| -> Vec<&str> {
                a.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
            };
            let volumes = values("--volume");
            let spares = values("--spare");
            let spec = crate::raid::ArraySpec::parse(
                values("--drives").first().copied(),
                &volumes,
                &spares,
            )
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", p.command()));
            spec.build(&crate::raid::Backing::Memory)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", p.command()));
            let total = crate::workload::parse_size(values("--verify")[0]).unwrap();
            let block = crate::workload::parse_size(values("--block")[0]).unwrap();
            assert_eq!(total % block, 0, "seed {seed}");
            assert!(total <= 8 << 20, "seed {seed}: a seed stays small");
            use crate::faults::Fault;
            type Parser = fn(&str) -> Result<Fault, String>;
            let parsers: [(&str, Parser); 9] = [
                ("--fail-drive", Fault::fail_drive),
                ("--reset-at", Fault::reset_at),
                ("--stall-firmware", Fault::stall),
                ("--drop-replies", Fault::drop_replies),
                ("--garbage-replies", Fault::garbage),
                ("--create-volume", Fault::create_volume),
                ("--delete-volume", Fault::delete_volume),
                ("--abort-task", Fault::abort_task),
                ("--target-reset", Fault::target_reset),
            ];
            let mut n = 0;
            for (flag, parse) in parsers {
                for v in values(flag) {
                    parse(v).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                    kinds.insert(flag);
                    n += 1;
                }
            }
            assert_eq!(n, p.faults, "seed {seed}: every fault is a known flag");
            assert!(values("--drop-replies").len() <= 1, "seed {seed}");
            assert!(p.stall_ms <= MAX_TOTAL_STALL_MS);
            assert_eq!(a.last().map(String::as_str), Some("--json"));
        }
        assert_eq!(kinds.len(), 9, "every fault kind is generated: {kinds:?}");
    }

    #[test]
    fn data_loss_follows_the_level() {
        let mut p = Plan::generate(1, FaultMode::None, None);
        p.members = vec![0, 1, 2, 3];
        p.spare = Some(4);
        p.failed_drives = vec![4, 0];
        for (level, lost) in [
            (Level::Raid0, true),
            (Level::Raid1, false),
            (Level::Raid5, false),
            (Level::Raid10, false),
        ] {
            p.level = level;
            assert_eq!(p.may_lose_volume(), lost, "{level:?}");
        }
        p.failed_drives = vec![0, 2];
        p.level = Level::Raid10;
        assert!(!p.may_lose_volume(), "different mirror pairs");
        p.failed_drives = vec![2, 3];
        assert!(p.may_lose_volume(), "both of a pair");
        p.level = Level::Raid5;
        assert!(p.may_lose_volume());
    }

    #[test]
    fn outcomes_are_judged_by_the_rules() {
        let mut p = Plan::generate(1, FaultMode::None, None);
        p.level = Level::Raid5;
        p.members = vec![0, 1, 2];
        let clean = r#"{"errors":0,"mismatches":0,"virtual_ns":5,"violations":[],"faults":[]}"#;
        assert_eq!(judge(&p, Some(0), clean, "").0, None);
        assert_eq!(judge(&p, None, "", "").0.unwrap().0, FailureClass::Crash);
        assert_eq!(judge(&p, Some(3), "", "spin").0.unwrap().0, FailureClass::Spin);
        assert_eq!(judge(&p, Some(2), "", "bad").0.unwrap().0, FailureClass::BadCommand);
        assert_eq!(judge(&p, Some(1), "", "").0.unwrap().0, FailureClass::Crash);
        let viol = r#"{"errors":0,"mismatches":0,"virtual_ns":5,"violations":[{"rule":"DoubleCompletion","message":"m"}]}"#;
        let (f, ..) = judge(&p, Some(1), viol, "");
        assert_eq!(f.unwrap().0, FailureClass::Violation);
        let mism = r#"{"errors":0,"mismatches":2,"mismatch_list":[{"lba":3,"found":"zeroes"}],"virtual_ns":5,"violations":[]}"#;
        assert_eq!(judge(&p, Some(1), mism, "").0.unwrap().0, FailureClass::Mismatch);
        let offline = r#"{"errors":4,"mismatches":0,"virtual_ns":5,"violations":[],"volumes":[{"id":0,"state":"Offline"}]}"#;
        assert_eq!(
            judge(&p, Some(1), offline, "").0.unwrap().0,
            FailureClass::IoError,
            "one drive"
        );
        p.failed_drives = vec![0, 2];
        let (f, excused, ..) = judge(&p, Some(1), offline, "");
        assert_eq!((f, excused), (None, Some("volume offline")));
        let slow = format!(
            r#"{{"errors":0,"mismatches":0,"virtual_ns":{},"violations":[]}}"#,
            p.virtual_bound_ns() + 1
        );
        assert_eq!(judge(&p, Some(0), &slow, "").0.unwrap().0, FailureClass::VirtualTime);
    }
}
