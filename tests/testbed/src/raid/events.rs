//! The controller's event log: what the firmware reports asynchronously (mdadm's vocabulary,
//! SCSI.md "RAID admin conventions"), each event numbered in order.

use std::collections::VecDeque;
use std::fmt;

use serde::Serialize;

use super::drive::DriveId;
use super::layout::Level;
use super::volume::{VolumeId, VolumeState};

/// Why a drive failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FailReason {
    /// The admin set it offline (`fail_drive`).
    #[serde(rename = "set offline")]
    SetOffline,
    /// An I/O to it failed: the drive stopped answering.
    #[serde(rename = "I/O error")]
    IoError,
    /// Pulled from its slot.
    #[serde(rename = "removed")]
    Removed,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailReason::SetOffline => "set offline",
            FailReason::IoError => "I/O error",
            FailReason::Removed => "removed",
        })
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event")]
pub enum EventKind {
    VolumeCreated {
        volume: VolumeId,
        level: Level,
        drives: Vec<DriveId>,
        capacity_bytes: u64,
    },
    VolumeDeleted {
        volume: VolumeId,
    },
    HotSpareAdded {
        drive: DriveId,
    },
    HotSpareRemoved {
        drive: DriveId,
    },
    /// mdadm `Fail`.
    DriveFailed {
        drive: DriveId,
        volume: Option<VolumeId>,
        reason: FailReason,
    },
    /// mdadm `DegradedArray`: a member was lost and the volume still serves I/O. `state` is the
    /// redundancy left: Degraded or Partially Degraded.
    VolumeDegraded {
        volume: VolumeId,
        state: VolumeState,
    },
    /// More members lost than the level tolerates: every I/O fails.
    VolumeOffline {
        volume: VolumeId,
    },
    /// Full redundancy again (after a rebuild).
    VolumeOptimal {
        volume: VolumeId,
    },
    /// mdadm `RebuildStarted`: `drive` is being rebuilt in place of `replacing`.
    RebuildStarted {
        volume: VolumeId,
        drive: DriveId,
        replacing: DriveId,
    },
    /// mdadm `Rebuild10`, `Rebuild20`, …: once per 10 % crossed, 10 to 90.
    RebuildProgress {
        volume: VolumeId,
        drive: DriveId,
        percent: u8,
    },
    /// mdadm `RebuildFinished`.
    RebuildFinished {
        volume: VolumeId,
        drive: DriveId,
    },
    /// The rebuild stopped short (its drive failed, or the volume went offline).
    RebuildAborted {
        volume: VolumeId,
        drive: DriveId,
        reason: String,
    },
    /// mdadm `SpareActive`: the rebuilt drive is now an active member.
    SpareActive {
        volume: VolumeId,
        drive: DriveId,
    },
    /// A sector that failed to read was rebuilt from redundancy and rewritten.
    MediaErrorCorrected {
        drive: DriveId,
        offset: u64,
    },
    /// A volume block could not be read from any copy.
    MediaErrorUnrecovered {
        volume: VolumeId,
        lba: u64,
    },
    /// A rebuild could not reconstruct these bytes of `drive`: they now read as media errors.
    RebuildPuncture {
        volume: VolumeId,
        drive: DriveId,
        offset: u64,
        bytes: u64,
    },
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::VolumeCreated { volume, level, drives, capacity_bytes } => write!(
                f,
                "volume {volume} created: {level} over drives {drives:?}, {capacity_bytes} bytes"
            ),
            EventKind::VolumeDeleted { volume } => write!(f, "volume {volume} deleted"),
            EventKind::HotSpareAdded { drive } => write!(f, "drive {drive} is a hot spare"),
            EventKind::HotSpareRemoved { drive } => {
                write!(f, "drive {drive} is no longer a hot spare")
            }
            EventKind::DriveFailed { drive, volume: Some(v), reason } => {
                write!(f, "drive {drive} of volume {v} failed ({reason})")
            }
            EventKind::DriveFailed { drive, volume: None, reason } => {
                write!(f, "drive {drive} failed ({reason})")
            }
            EventKind::VolumeDegraded { volume, state } => write!(f, "volume {volume} is {state}"),
            EventKind::VolumeOffline { volume } => write!(f, "volume {volume} is offline"),
            EventKind::VolumeOptimal { volume } => write!(f, "volume {volume} is optimal"),
            EventKind::RebuildStarted { volume, drive, replacing } => write!(
                f,
                "rebuild of volume {volume} started on drive {drive} (replacing drive {replacing})"
            ),
            EventKind::RebuildProgress { volume, drive, percent } => {
                write!(f, "rebuild of volume {volume} on drive {drive}: {percent}%")
            }
            EventKind::RebuildFinished { volume, drive } => {
                write!(f, "rebuild of volume {volume} on drive {drive} finished")
            }
            EventKind::RebuildAborted { volume, drive, reason } => {
                write!(f, "rebuild of volume {volume} on drive {drive} aborted: {reason}")
            }
            EventKind::SpareActive { volume, drive } => {
                write!(f, "drive {drive} is an active member of volume {volume}")
            }
            EventKind::MediaErrorCorrected { drive, offset } => {
                write!(f, "corrected a media error on drive {drive} at byte {offset}")
            }
            EventKind::MediaErrorUnrecovered { volume, lba } => {
                write!(f, "unrecoverable media error on volume {volume} at LBA {lba}")
            }
            EventKind::RebuildPuncture { volume, drive, offset, bytes } => write!(
                f,
                "rebuild of volume {volume} could not reconstruct {bytes} bytes of drive {drive} \
                 at byte {offset}"
            ),
        }
    }
}

/// One numbered event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// 1, 2, 3, … in the order things happened.
    pub seq: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.seq, self.kind)
    }
}

/// The log: the newest [`EventLog::CAPACITY`] events (older ones are dropped, their numbers
/// are not reused).
#[derive(Debug, Default)]
pub struct EventLog {
    events: VecDeque<Event>,
    last_seq: u64,
}

impl EventLog {
    pub const CAPACITY: usize = 8192;

    pub fn push(&mut self, kind: EventKind) -> u64 {
        self.last_seq += 1;
        if self.events.len() == Self::CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(Event { seq: self.last_seq, kind });
        self.last_seq
    }

    /// The number of the newest event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Every retained event numbered after `seq`, oldest first.
    pub fn since(&self, seq: u64) -> Vec<Event> {
        let skip = self.events.partition_point(|e| e.seq <= seq);
        self.events.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_increase_and_since_is_exclusive() {
        let mut log = EventLog::default();
        assert_eq!(log.push(EventKind::VolumeDeleted { volume: 0 }), 1);
        assert_eq!(log.push(EventKind::VolumeOffline { volume: 1 }), 2);
        assert_eq!(log.since(0).len(), 2);
        assert_eq!(
            log.since(1),
            vec![Event { seq: 2, kind: EventKind::VolumeOffline { volume: 1 } }]
        );
        assert!(log.since(2).is_empty());
    }

    #[test]
    fn old_events_are_dropped_not_renumbered() {
        let mut log = EventLog::default();
        for v in 0..EventLog::CAPACITY as u32 + 5 {
            log.push(EventKind::VolumeDeleted { volume: v });
        }
        let all = log.since(0);
        assert_eq!(all.len(), EventLog::CAPACITY);
        assert_eq!(all[0].seq, 6);
        assert_eq!(log.last_seq(), EventLog::CAPACITY as u64 + 5);
    }

    #[test]
    fn json_names_the_event() {
        let e =
            Event { seq: 7, kind: EventKind::RebuildProgress { volume: 0, drive: 5, percent: 40 } };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"seq":7,"event":"RebuildProgress","volume":0,"drive":5,"percent":40}"#
        );
    }
}
