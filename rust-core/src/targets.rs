//! Where targets are created: a queue of pending target operations, handed to the dext's
//! private target queue one at a time, so a second `UserCreateTargetForID` is never in flight
//! (DRIVERKIT.md §4), and the set of targets that exist.

use core::fmt;

use crate::abi;

/// Pending operations the queue holds; more is a named error, never a panic.
pub const MAX_PENDING: usize = 32;
/// Target IDs the core tracks (`HIGHEST_TARGET_ID` is below this).
const TARGET_IDS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Destroy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetOp {
    pub kind: OpKind,
    pub target: u64,
}

impl TargetOp {
    pub const fn abi(self) -> abi::dk_target_work {
        abi::dk_target_work {
            kind: match self.kind {
                OpKind::Create => abi::DK_TARGET_WORK_CREATE,
                OpKind::Destroy => abi::DK_TARGET_WORK_DESTROY,
            },
            reserved: 0,
            target_id: self.target,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    QueueFull,
    BadTargetId {
        target: u64,
    },
    /// A result for an operation that is not the one in flight.
    NotInFlight {
        kind: u32,
        target: u64,
    },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TargetError::QueueFull => {
                write!(f, "TargetQueueFull: more than {MAX_PENDING} target operations pending")
            }
            TargetError::BadTargetId { target } => {
                write!(f, "BadTargetId: target {target} is out of range")
            }
            TargetError::NotInFlight { kind, target } => write!(
                f,
                "TargetWorkNotInFlight: a result for operation {kind} on target {target}, which \
                 is not the operation in flight"
            ),
        }
    }
}

/// The pending operations (a ring), the one in flight, and the targets that exist.
#[derive(Debug)]
pub struct Targets {
    ring: [Option<TargetOp>; MAX_PENDING],
    head: usize,
    len: usize,
    in_flight: Option<TargetOp>,
    present: [u64; TARGET_IDS / 64],
}

impl Default for Targets {
    fn default() -> Self {
        Self::new()
    }
}

impl Targets {
    pub const fn new() -> Targets {
        Targets { ring: [None; MAX_PENDING], head: 0, len: 0, in_flight: None, present: [0; 4] }
    }

    pub fn push(&mut self, op: TargetOp) -> Result<(), TargetError> {
        if op.target >= TARGET_IDS as u64 {
            return Err(TargetError::BadTargetId { target: op.target });
        }
        if self.len == MAX_PENDING {
            return Err(TargetError::QueueFull);
        }
        self.ring[(self.head + self.len) % MAX_PENDING] = Some(op);
        self.len += 1;
        Ok(())
    }

    /// The next operation, if none is in flight: it becomes the one in flight.
    pub fn take_next(&mut self) -> Option<TargetOp> {
        if self.in_flight.is_some() || self.len == 0 {
            return None;
        }
        let op = self.ring[self.head].take();
        self.head = (self.head + 1) % MAX_PENDING;
        self.len -= 1;
        self.in_flight = op;
        op
    }

    pub fn in_flight(&self) -> Option<TargetOp> {
        self.in_flight
    }

    /// The in-flight operation finished; on success the target set follows it.
    pub fn done(&mut self, kind: u32, target: u64, success: bool) -> Result<(), TargetError> {
        match self.in_flight {
            Some(op) if op.abi().kind == kind && op.target == target => {
                self.in_flight = None;
                if success {
                    let (word, bit) = ((target / 64) as usize, target % 64);
                    match op.kind {
                        OpKind::Create => self.present[word] |= 1 << bit,
                        OpKind::Destroy => self.present[word] &= !(1 << bit),
                    }
                }
                Ok(())
            }
            _ => Err(TargetError::NotInFlight { kind, target }),
        }
    }

    pub fn is_present(&self, target: u64) -> bool {
        target < TARGET_IDS as u64
            && self.present[(target / 64) as usize] & (1 << (target % 64)) != 0
    }

    /// Present, or being created right now (its probe is running).
    pub fn is_reachable(&self, target: u64) -> bool {
        self.is_present(target) || self.in_flight == Some(TargetOp { kind: OpKind::Create, target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C0: TargetOp = TargetOp { kind: OpKind::Create, target: 0 };
    const C1: TargetOp = TargetOp { kind: OpKind::Create, target: 1 };

    #[test]
    fn one_at_a_time() {
        let mut t = Targets::new();
        t.push(C0).unwrap();
        t.push(C1).unwrap();
        assert_eq!(t.take_next(), Some(C0));
        assert_eq!(t.take_next(), None, "never a second create in flight");
        assert!(t.is_reachable(0) && !t.is_present(0));
        assert_eq!(
            t.done(abi::DK_TARGET_WORK_CREATE, 1, true),
            Err(TargetError::NotInFlight { kind: abi::DK_TARGET_WORK_CREATE, target: 1 })
        );
        t.done(abi::DK_TARGET_WORK_CREATE, 0, true).unwrap();
        assert!(t.is_present(0));
        assert_eq!(t.take_next(), Some(C1));
        t.done(abi::DK_TARGET_WORK_CREATE, 1, false).unwrap();
        assert!(!t.is_present(1), "a failed create leaves no target");
        assert_eq!(t.take_next(), None);
    }

    #[test]
    fn bounds() {
        let mut t = Targets::new();
        assert_eq!(
            t.push(TargetOp { kind: OpKind::Create, target: 256 }),
            Err(TargetError::BadTargetId { target: 256 })
        );
        for i in 0..MAX_PENDING as u64 {
            t.push(TargetOp { kind: OpKind::Create, target: i }).unwrap();
        }
        assert_eq!(t.push(C0), Err(TargetError::QueueFull));
        assert!(!t.is_present(u64::MAX));
    }
}
