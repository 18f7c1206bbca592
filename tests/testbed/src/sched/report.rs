//! The scheduler's public vocabulary: thread ids, what a blocked thread waits
//! for, and how a run ended.

use std::fmt;

/// A simulated thread. Ids are assigned sequentially from 0 in spawn order
/// (so the first thread spawned is `ThreadId(0)`), and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId(pub u32);

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a blocked thread waits for; followed to build the wait-for chain of a
/// deadlock report.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WaitFor {
    /// Another simulated thread (e.g. the queue a synchronous dispatch went to).
    Thread(ThreadId),
    /// Anything else, described for humans ("the completion of task 7").
    Other(String),
}

/// A thread that was blocked (not idle, not sleeping) when a deadlock was
/// reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub thread: ThreadId,
    /// The thread's name.
    pub name: String,
    /// The `call` it passed to [`block`](super::block).
    pub call: String,
    pub waits_for: WaitFor,
    /// `waits_for` for humans: the other thread's name, or the `Other` text.
    pub waits_for_name: String,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} waits in {} for {}", self.name, self.call, self.waits_for_name)
    }
}

/// `"<name> waits in <call> for <other>"` for each entry, joined with `"; "`,
/// e.g. `Default waits in UserCreateTargetForID for AuxiliaryQueue;
/// AuxiliaryQueue waits in UserInitializeTargetForID for Default`.
pub fn describe_chain(chain: &[Blocked]) -> String {
    let mut out = String::new();
    for (i, b) in chain.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&b.to_string());
    }
    out
}

/// How [`Scheduler::run`](super::Scheduler::run) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Quiescent: no thread runnable or sleeping, and every thread either
    /// returned or waits idle for work ([`block_idle`](super::block_idle)).
    Finished,
    /// No thread can run, none sleeps, and at least one is blocked (not idle).
    /// `chain` follows the `waits_for` links from one blocked thread: around
    /// a cycle (starting at the cycle's lowest thread id) if there is one,
    /// otherwise the longest chain. `all_blocked` is every blocked thread, in
    /// id order.
    Deadlock { chain: Vec<Blocked>, all_blocked: Vec<Blocked> },
    /// A simulated thread called [`stop`](super::stop).
    Stopped { reason: String },
    /// The virtual deadline of [`run_until`](super::Scheduler::run_until)
    /// was reached; `now_ns` is the virtual time then.
    TimeLimit { now_ns: u64 },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Finished => f.write_str("finished (quiescent)"),
            Outcome::Deadlock { chain, all_blocked } => {
                write!(f, "deadlock: {}", describe_chain(chain))?;
                let others: Vec<Blocked> = all_blocked
                    .iter()
                    .filter(|b| !chain.iter().any(|c| c.thread == b.thread))
                    .cloned()
                    .collect();
                if !others.is_empty() {
                    write!(f, " (also blocked: {})", describe_chain(&others))?;
                }
                Ok(())
            }
            Outcome::Stopped { reason } => write!(f, "stopped: {reason}"),
            Outcome::TimeLimit { now_ns } => write!(f, "time limit reached at {now_ns} ns"),
        }
    }
}
