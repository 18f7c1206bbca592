//! Fault injection during a workload (`dkraid-sim io --fail-drive D:PCT --reset-at PCT
//! --stall-firmware MS:PCT --drop-replies N --garbage-replies N:PCT --create-volume SPEC:PCT
//! --delete-volume V:PCT`): what to do to the simulated controller, and when — at a percentage
//! of the workload's bytes done. Each fault fires once, on the client thread whose I/O crossed
//! its mark, and leaves a `fault` entry on the timeline.

use serde::Serialize;

use crate::controller::{self, Controller};
use crate::raid::{self, VolumeRequest};
use crate::world;
use dkraid_core::firmware::wire::{doorbell, reg, ReplyDescriptor};
use zerocopy::FromBytes;

/// What happens to the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Drive `D` dies (the array degrades; a hot spare starts rebuilding).
    FailDrive(u16),
    /// The controller resets itself (as after a firmware crash): everything in flight is
    /// dropped without a reply and the firmware comes back READY. The driver must notice (task
    /// timeouts, a failed abort), reset, bring the firmware up again and complete every
    /// dropped task exactly once with a retryable status.
    Reset,
    /// The firmware stops taking requests for this many milliseconds.
    Stall { ms: u64 },
    /// The next N task replies are never posted: the driver's timeouts and aborts must fire.
    DropReplies(u32),
    /// N reply-ring entries of random bytes (random phase, SMID, status, everything), each
    /// with the producer advanced and an interrupt: none may complete a task.
    GarbageReplies(u32),
    /// A volume is created at runtime (hot plug: a new target).
    CreateVolume(VolumeRequest),
    /// A volume is deleted at runtime (hot unplug: its target goes).
    DeleteVolume(u16),
    /// The controller loses its write-back cache without flushing it (a dead cache battery):
    /// writes it acknowledged GOOD are gone. Not a driver fault — it is how a test proves the
    /// verify workload catches lost writes.
    LoseCache,
    /// The kernel sends ABORT TASK (`UserAbortTaskRequest`) for its newest outstanding task.
    AbortTask,
    /// The kernel sends TARGET RESET (`UserTargetResetRequest`) for a target.
    TargetReset(u64),
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Percent of the workload's bytes done (0-100) when it fires.
    pub at_percent: u32,
    pub kind: FaultKind,
}

/// What a fault did, for the report.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Fired {
    pub at_percent: u32,
    pub virtual_ns: u64,
    pub fault: String,
    pub result: String,
}

fn percent(text: &str, flag: &str) -> Result<u32, String> {
    let t = text.trim().trim_end_matches('%');
    match t.parse::<u32>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!("{flag} {text:?}: {t:?} is not a percentage (0-100)")),
    }
}

/// `VALUE:PERCENT`, e.g. `2:30`; errors name the flag and quote the bad part.
fn value_at<T: std::str::FromStr>(
    text: &str,
    flag: &str,
    example: &str,
    what: &str,
) -> Result<(T, u32), String> {
    let (v, p) =
        text.rsplit_once(':').ok_or_else(|| format!("{flag} {text:?}: expected {example}"))?;
    let value = v.trim().parse().map_err(|_| format!("{flag} {text:?}: {v:?} is not a {what}"))?;
    Ok((value, percent(p, flag)?))
}

impl Fault {
    /// `--fail-drive D:PCT`.
    pub fn fail_drive(text: &str) -> Result<Fault, String> {
        let (d, at_percent) = value_at(text, "--fail-drive", "DRIVE:PERCENT, e.g. 2:30", "drive")?;
        Ok(Fault { at_percent, kind: FaultKind::FailDrive(d) })
    }

    /// `--reset-at PCT`.
    pub fn reset_at(text: &str) -> Result<Fault, String> {
        Ok(Fault { at_percent: percent(text, "--reset-at")?, kind: FaultKind::Reset })
    }

    /// `--stall-firmware MS:PCT`.
    pub fn stall(text: &str) -> Result<Fault, String> {
        let example = "MILLISECONDS:PERCENT, e.g. 40000:50";
        let (ms, at_percent) =
            value_at(text, "--stall-firmware", example, "number of milliseconds")?;
        Ok(Fault { at_percent, kind: FaultKind::Stall { ms } })
    }

    /// `--drop-replies N` (at the start of the workload).
    pub fn drop_replies(text: &str) -> Result<Fault, String> {
        let n = text
            .trim()
            .parse()
            .map_err(|_| format!("--drop-replies {text:?} is not a count of replies"))?;
        Ok(Fault { at_percent: 0, kind: FaultKind::DropReplies(n) })
    }

    /// `--garbage-replies N:PCT`.
    pub fn garbage(text: &str) -> Result<Fault, String> {
        let (n, at_percent) =
            value_at(text, "--garbage-replies", "COUNT:PERCENT, e.g. 64:50", "count")?;
        Ok(Fault { at_percent, kind: FaultKind::GarbageReplies(n) })
    }

    /// `--create-volume LEVEL:DRIVES[:...]@PCT` (the volume syntax of `--volume`).
    pub fn create_volume(text: &str) -> Result<Fault, String> {
        let (spec, p) = text
            .rsplit_once('@')
            .ok_or_else(|| format!("--create-volume {text:?}: expected SPEC@PERCENT"))?;
        let req = raid::spec::parse_volume(spec).map_err(|e| format!("--create-volume {e}"))?;
        Ok(Fault { at_percent: percent(p, "--create-volume")?, kind: FaultKind::CreateVolume(req) })
    }

    /// `--lose-cache PCT`.
    pub fn lose_cache(text: &str) -> Result<Fault, String> {
        Ok(Fault { at_percent: percent(text, "--lose-cache")?, kind: FaultKind::LoseCache })
    }

    /// `--abort-task PCT`.
    pub fn abort_task(text: &str) -> Result<Fault, String> {
        Ok(Fault { at_percent: percent(text, "--abort-task")?, kind: FaultKind::AbortTask })
    }

    /// `--target-reset T:PCT`.
    pub fn target_reset(text: &str) -> Result<Fault, String> {
        let (t, at_percent) =
            value_at(text, "--target-reset", "TARGET:PERCENT, e.g. 0:50", "target")?;
        Ok(Fault { at_percent, kind: FaultKind::TargetReset(t) })
    }

    /// `--delete-volume V:PCT`.
    pub fn delete_volume(text: &str) -> Result<Fault, String> {
        let (v, at_percent) =
            value_at(text, "--delete-volume", "VOLUME:PERCENT, e.g. 1:80", "volume")?;
        Ok(Fault { at_percent, kind: FaultKind::DeleteVolume(v) })
    }

    /// Do it to the installed controller (on a simulated thread). `seed` makes garbage
    /// reproducible.
    pub fn fire(&self, seed: u64) -> Fired {
        let now = crate::sched::now_ns();
        let (name, result) = match controller::current() {
            None => (self.describe(), "no controller in this stage".to_string()),
            Some(c) => (self.describe(), apply(&c, &self.kind, seed)),
        };
        world::record_event(
            now,
            world::current_queue_name(),
            "fault".into(),
            format!("{name} at {}%: {result}", self.at_percent),
        );
        Fired { at_percent: self.at_percent, virtual_ns: now, fault: name, result }
    }

    pub fn describe(&self) -> String {
        match &self.kind {
            FaultKind::FailDrive(d) => format!("fail drive {d}"),
            FaultKind::Reset => "controller reset".into(),
            FaultKind::Stall { ms } => format!("firmware stall {ms} ms"),
            FaultKind::DropReplies(n) => format!("drop {n} replies"),
            FaultKind::GarbageReplies(n) => format!("{n} garbage replies"),
            FaultKind::CreateVolume(r) => {
                format!("create {:?} volume on drives {:?}", r.level, r.drives)
            }
            FaultKind::DeleteVolume(v) => format!("delete volume {v}"),
            FaultKind::LoseCache => "lose the write-back cache".into(),
            FaultKind::AbortTask => "ABORT TASK".into(),
            FaultKind::TargetReset(t) => format!("TARGET RESET of target {t}"),
        }
    }
}

fn apply(c: &Controller, kind: &FaultKind, seed: u64) -> String {
    match kind {
        FaultKind::FailDrive(d) => match c.fail_drive(*d) {
            Ok(()) => "failed".into(),
            Err(e) => format!("refused: {e:?}"),
        },
        FaultKind::Reset => {
            c.mmio_write(reg::DOORBELL, 32, u64::from(doorbell::RESET));
            "RESET rung by the device itself".into()
        }
        FaultKind::Stall { ms } => {
            c.stall(ms * 1_000_000);
            "stalled".into()
        }
        FaultKind::DropReplies(n) => {
            c.drop_next_replies(*n);
            "armed".into()
        }
        FaultKind::GarbageReplies(n) => {
            let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15;
            let mut posted = 0;
            for _ in 0..*n {
                let mut bytes = [0u8; core::mem::size_of::<ReplyDescriptor>()];
                for b in bytes.iter_mut() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    *b = rng as u8;
                }
                let desc = ReplyDescriptor::read_from_bytes(&bytes[..]).expect("exact size");
                if c.post_bogus_reply(desc) {
                    posted += 1;
                }
            }
            format!("{posted} posted")
        }
        FaultKind::CreateVolume(req) => {
            let Some(r) = c.raid() else { return "no RAID engine".into() };
            let result = r.borrow_mut().create_volume(req);
            c.array_changed();
            match result {
                Ok(v) => format!("volume {v} created"),
                Err(e) => format!("refused: {e}"),
            }
        }
        FaultKind::AbortTask => match crate::tasks::newest_pending() {
            None => "no task outstanding".into(),
            Some((tag, target)) => match crate::tasks::task_management(1, target, 0, tag) {
                Ok(r) => format!("tag {tag} on target {target}: {}", service_response_name(r)),
                Err(e) => format!("failed: {}", crate::world::ioreturn_name(e)),
            },
        },
        FaultKind::TargetReset(t) => match crate::tasks::task_management(6, *t, 0, 0) {
            Ok(r) => service_response_name(r).into(),
            Err(e) => format!("failed: {}", crate::world::ioreturn_name(e)),
        },
        FaultKind::LoseCache => {
            let Some(r) = c.raid() else { return "no RAID engine".into() };
            let lost = r.borrow_mut().power_loss();
            format!("{lost} acknowledged bytes lost")
        }
        FaultKind::DeleteVolume(v) => {
            let Some(r) = c.raid() else { return "no RAID engine".into() };
            let result = r.borrow_mut().delete_volume(u32::from(*v));
            c.array_changed();
            match result {
                Ok(()) => format!("volume {v} deleted"),
                Err(e) => format!("refused: {e}"),
            }
        }
    }
}

fn service_response_name(r: u32) -> &'static str {
    match r {
        4 => "FUNCTION_COMPLETE",
        5 => "FUNCTION_REJECTED",
        1 => "SERVICE_DELIVERY_OR_TARGET_FAILURE",
        _ => "an unexpected service response",
    }
}

/// Faults not yet fired, in the order they fire.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    pending: Vec<Fault>,
    pub fired: Vec<Fired>,
}

impl Schedule {
    pub fn new(mut faults: Vec<Fault>) -> Schedule {
        faults.sort_by_key(|f| f.at_percent);
        Schedule { pending: faults, fired: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The faults due at `done` of `total` (removed from the schedule).
    pub fn due(&mut self, done: u64, total: u64) -> Vec<Fault> {
        let mut out = Vec::new();
        while let Some(f) = self.pending.first() {
            if u128::from(done) * 100 >= u128::from(f.at_percent) * u128::from(total) {
                out.push(self.pending.remove(0));
            } else {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_named() {
        assert_eq!(
            Fault::fail_drive("2:30").unwrap(),
            Fault { at_percent: 30, kind: FaultKind::FailDrive(2) }
        );
        assert_eq!(Fault::reset_at("50%").unwrap().kind, FaultKind::Reset);
        assert_eq!(Fault::stall("40000:10").unwrap().kind, FaultKind::Stall { ms: 40_000 });
        assert_eq!(Fault::drop_replies("3").unwrap().kind, FaultKind::DropReplies(3));
        assert_eq!(Fault::garbage("64:20").unwrap().kind, FaultKind::GarbageReplies(64));
        assert_eq!(Fault::delete_volume("1:80").unwrap().kind, FaultKind::DeleteVolume(1));
        let c = Fault::create_volume("raid1:6,7@25").unwrap();
        assert_eq!(c.at_percent, 25);
        assert!(Fault::fail_drive("2").unwrap_err().contains("DRIVE:PERCENT"));
        assert!(Fault::fail_drive("x:30").unwrap_err().contains("\"x\" is not a drive"));
        assert!(Fault::reset_at("101").unwrap_err().contains("not a percentage"));
        assert!(Fault::create_volume("raid9:0,1@5").unwrap_err().contains("raid9"));
    }

    #[test]
    fn a_schedule_fires_each_fault_once_in_order() {
        let mut s = Schedule::new(vec![
            Fault { at_percent: 50, kind: FaultKind::Reset },
            Fault { at_percent: 0, kind: FaultKind::DropReplies(1) },
        ]);
        assert_eq!(s.due(0, 100).len(), 1, "the 0% fault at once");
        assert!(s.due(49, 100).is_empty());
        assert_eq!(s.due(50, 100).len(), 1);
        assert!(s.due(100, 100).is_empty() && s.is_empty());
    }
}
