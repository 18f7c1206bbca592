//! `IOLock` on the simulated Mac: a mutex whose waiters block in the scheduler (so a held lock
//! is a wait-for edge in deadlock reports), and whose misuse is a violation: locking a lock the
//! thread already holds (DriverKit's locks are not recursive) and unlocking one it does not
//! hold.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::sched::{self, ThreadId, WaitFor};
use crate::world::violation;

#[derive(Debug, Default)]
struct Lock {
    owner: Option<ThreadId>,
    waiters: Vec<ThreadId>,
}

thread_local! {
    static LOCKS: RefCell<(u64, BTreeMap<u64, Lock>)> = const { RefCell::new((0, BTreeMap::new())) };
}

#[no_mangle]
pub extern "C" fn dksim_lock_alloc() -> u64 {
    LOCKS.with(|l| {
        let mut l = l.borrow_mut();
        l.0 += 1;
        let h = l.0;
        l.1.insert(h, Lock::default());
        h
    })
}

#[no_mangle]
pub extern "C" fn dksim_lock_free(handle: u64) {
    LOCKS.with(|l| l.borrow_mut().1.remove(&handle));
}

/// Take the lock, blocking (in the scheduler) while another thread holds it.
#[no_mangle]
pub extern "C" fn dksim_lock_lock(handle: u64) {
    sched::yield_now("IOLockLock");
    let me = sched::current();
    loop {
        let owner = LOCKS.with(|l| {
            let mut l = l.borrow_mut();
            let lock = l.1.get_mut(&handle)?;
            match lock.owner {
                None => {
                    lock.owner = Some(me);
                    None
                }
                Some(o) => {
                    if !lock.waiters.contains(&me) {
                        lock.waiters.push(me);
                    }
                    Some(o)
                }
            }
        });
        match owner {
            None => return,
            Some(o) if o == me => {
                violation(
                    "RecursiveLock",
                    "DriverKit IOLib.h",
                    format!("lock={handle}"),
                    "IOLockLock on a lock this thread already holds: DriverKit locks are not \
                     recursive, so the thread waits for itself forever"
                        .into(),
                );
                loop {
                    sched::block("IOLockLock", WaitFor::Thread(me));
                }
            }
            Some(o) => sched::block("IOLockLock", WaitFor::Thread(o)),
        }
    }
}

#[no_mangle]
pub extern "C" fn dksim_lock_trylock(handle: u64) -> bool {
    let me = sched::current();
    LOCKS.with(|l| {
        let mut l = l.borrow_mut();
        match l.1.get_mut(&handle) {
            Some(lock) if lock.owner.is_none() => {
                lock.owner = Some(me);
                true
            }
            _ => false,
        }
    })
}

#[no_mangle]
pub extern "C" fn dksim_lock_unlock(handle: u64) {
    let me = sched::current();
    let result = LOCKS.with(|l| {
        let mut l = l.borrow_mut();
        let lock = l.1.get_mut(&handle)?;
        if lock.owner != Some(me) {
            return Some(Err(()));
        }
        lock.owner = None;
        Some(Ok(std::mem::take(&mut lock.waiters)))
    });
    match result {
        Some(Ok(waiters)) => {
            for t in waiters {
                sched::wake(t);
            }
        }
        Some(Err(())) => {
            violation(
                "UnlockNotOwner",
                "DriverKit IOLib.h",
                format!("lock={handle}"),
                "IOLockUnlock of a lock this thread does not hold".into(),
            );
        }
        None => {}
    }
}
