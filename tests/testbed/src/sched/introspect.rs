//! Looking at the other threads from inside a simulated thread: what a watchdog running on the
//! scheduler needs to tell "slow" from "stuck".

use super::state::Status;
use super::{with_core, Blocked, Outcome, ThreadId};

/// If no thread other than the caller can ever run again (none runnable, none sleeping) and at
/// least one is blocked, the wait-for chain and every blocked thread, as
/// [`Outcome::Deadlock`] would report them. `None` otherwise.
pub fn deadlock_snapshot() -> Option<(Vec<Blocked>, Vec<Blocked>)> {
    with_core("deadlock_snapshot", |core| {
        let st = core.state.borrow();
        let me = st.running;
        let others_can_run = st.threads.iter().enumerate().any(|(i, t)| {
            i as u32 != me && matches!(t.status, Status::Runnable | Status::Sleeping)
        });
        if others_can_run || !st.threads.iter().any(|t| t.status == Status::Blocked) {
            return None;
        }
        match st.deadlock() {
            Outcome::Deadlock { chain, all_blocked } => Some((chain, all_blocked)),
            _ => None,
        }
    })
}

/// The name of any thread of the running scheduler.
pub fn thread_name_of(t: ThreadId) -> String {
    with_core("thread_name_of", |core| {
        core.state
            .borrow()
            .threads
            .get(t.0 as usize)
            .map_or_else(|| format!("unknown thread {t}"), |th| th.name.to_string())
    })
}
