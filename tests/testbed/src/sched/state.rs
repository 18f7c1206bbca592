//! The scheduler's bookkeeping: thread table, runnable set, sleepers, clock
//! and PRNG. Pure data, no stack switching: every method runs to completion
//! under one short `RefCell` borrow.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, Yielder};

use super::report::{Blocked, Outcome, ThreadId, WaitFor};
use super::rng::Rng;
pub(super) use super::watchdog::NO_THREAD;

/// A simulated thread's coroutine: resumed with `()`, suspends with `()`,
/// returns `()`.
pub(super) type Coro = Coroutine<(), (), (), DefaultStack>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// In `State::runnable` (this includes the thread that is running).
    Runnable,
    /// Parked by `block`, waiting for `wake`.
    Blocked,
    /// Parked by `block_idle`: waiting for work, never part of a deadlock.
    Idle,
    /// Parked by `sleep_ns` until the clock reaches its wake time.
    Sleeping,
    /// Its closure returned (or panicked).
    Finished,
}

pub(super) struct Thread {
    pub(super) name: Rc<str>,
    pub(super) status: Status,
    /// Index in `State::runnable` while `Runnable`.
    pos: u32,
    /// The `call` of the last scheduling point this thread passed.
    pub(super) last_call: &'static str,
    /// Set while `Blocked`.
    pub(super) waits_for: Option<WaitFor>,
    /// Identifies the current sleep, to ignore stale heap entries.
    sleep_seq: u64,
    /// The coroutine's `Yielder` (at the base of its own stack), registered
    /// when the coroutine first runs; null before.
    pub(super) yielder: *const Yielder<(), ()>,
    /// The last interned `block` call name, to skip the interner when a
    /// thread blocks in the same call again.
    pub(super) call_cache: &'static str,
}

pub(super) struct State {
    pub(super) threads: Vec<Thread>,
    /// Runnable thread ids, in no particular (but deterministic) order.
    runnable: Vec<u32>,
    /// `(wake time, sleep sequence, thread)`, earliest first; ties in the
    /// order the sleeps began.
    sleepers: BinaryHeap<Reverse<(u64, u64, u32)>>,
    /// Wake time of the earliest sleeper, `u64::MAX` if none (fast check).
    next_wake: u64,
    sleep_seq: u64,
    pub(super) now: u64,
    pub(super) deadline: u64,
    pub(super) stop: Option<String>,
    /// The thread whose coroutine is executing, or `NO_THREAD`.
    pub(super) running: u32,
    /// Chosen at a scheduling point for the run loop to resume next, or
    /// `NO_THREAD` if the run loop must decide.
    pub(super) next: u32,
    rng: Rng,
    pub(super) switches: u64,
    /// FNV-1a over the id of every thread switched to, in order.
    pub(super) fingerprint: u64,
    pub(super) points: u64,
    /// Coroutines spawned but not yet handed to the run loop (which owns the
    /// coroutines outside this `RefCell`).
    pub(super) pending: Vec<Coro>,
    /// Stacks of finished threads, for reuse by later spawns.
    pub(super) stack_pool: Vec<DefaultStack>,
    /// Set while the scheduler is being dropped: scheduling points return at
    /// once.
    pub(super) teardown: bool,
    /// A simulated thread panicked; the scheduler must not run again.
    pub(super) poisoned: bool,
}

impl State {
    pub(super) fn new(seed: u64) -> Self {
        Self {
            threads: Vec::new(),
            runnable: Vec::new(),
            sleepers: BinaryHeap::new(),
            next_wake: u64::MAX,
            sleep_seq: 0,
            now: 0,
            deadline: u64::MAX,
            stop: None,
            running: NO_THREAD,
            next: NO_THREAD,
            rng: Rng::new(seed),
            switches: 0,
            fingerprint: 0xcbf2_9ce4_8422_2325,
            points: 0,
            pending: Vec::new(),
            stack_pool: Vec::new(),
            teardown: false,
            poisoned: false,
        }
    }

    /// Adds a runnable thread; returns its id.
    pub(super) fn add_thread(&mut self, name: &str) -> u32 {
        let id = u32::try_from(self.threads.len())
            .ok()
            .filter(|&id| id != NO_THREAD)
            .expect("too many simulated threads");
        self.threads.push(Thread {
            name: Rc::from(name),
            status: Status::Finished,
            pos: 0,
            last_call: "start",
            waits_for: None,
            sleep_seq: 0,
            yielder: std::ptr::null(),
            call_cache: "",
        });
        self.make_runnable(id);
        id
    }

    #[inline]
    fn make_runnable(&mut self, t: u32) {
        let th = &mut self.threads[t as usize];
        th.status = Status::Runnable;
        th.waits_for = None;
        th.pos = self.runnable.len() as u32;
        self.runnable.push(t);
    }

    /// Takes a runnable thread out of the runnable set and gives it `status`.
    #[inline]
    pub(super) fn park(&mut self, t: u32, status: Status) {
        let th = &mut self.threads[t as usize];
        debug_assert_eq!(th.status, Status::Runnable);
        th.status = status;
        let pos = th.pos as usize;
        self.runnable.swap_remove(pos);
        if let Some(&moved) = self.runnable.get(pos) {
            self.threads[moved as usize].pos = pos as u32;
        }
    }

    /// Parks `t` as sleeping until `now + ns`.
    pub(super) fn sleep(&mut self, t: u32, ns: u64) {
        self.park(t, Status::Sleeping);
        self.sleep_seq += 1;
        let seq = self.sleep_seq;
        self.threads[t as usize].sleep_seq = seq;
        let at = self.now.saturating_add(ns);
        self.sleepers.push(Reverse((at, seq, t)));
        self.next_wake = self.next_wake.min(at);
    }

    /// Makes a blocked or idle thread runnable; anything else is a no-op.
    pub(super) fn wake(&mut self, t: u32) {
        if let Some(th) = self.threads.get(t as usize) {
            if matches!(th.status, Status::Blocked | Status::Idle) {
                self.make_runnable(t);
            }
        }
    }

    /// Marks the running thread `t` finished.
    pub(super) fn finish(&mut self, t: u32) {
        if self.threads[t as usize].status == Status::Runnable {
            self.park(t, Status::Finished);
        }
        self.threads[t as usize].status = Status::Finished;
        self.threads[t as usize].waits_for = None;
    }

    /// Wakes every sleeper whose time has come (earliest first, ties in sleep
    /// order).
    #[inline]
    pub(super) fn wake_due(&mut self) {
        if self.next_wake <= self.now {
            self.wake_due_slow();
        }
    }

    #[cold]
    fn wake_due_slow(&mut self) {
        while let Some(&Reverse((at, seq, t))) = self.sleepers.peek() {
            if at > self.now {
                break;
            }
            self.sleepers.pop();
            let th = &self.threads[t as usize];
            if th.status == Status::Sleeping && th.sleep_seq == seq {
                self.make_runnable(t);
            }
        }
        self.next_wake = self.sleepers.peek().map_or(u64::MAX, |&Reverse((at, _, _))| at);
    }

    /// Whether the run loop must get control back at this scheduling point.
    #[inline]
    pub(super) fn must_return(&self) -> bool {
        self.stop.is_some() || self.now >= self.deadline
    }

    #[cfg(test)]
    pub(super) fn runnable_ids(&self) -> &[u32] {
        &self.runnable
    }

    #[inline]
    pub(super) fn has_runnable(&self) -> bool {
        !self.runnable.is_empty()
    }

    /// Picks the next thread among the runnable ones (precondition: there is
    /// one). With a single candidate no random number is drawn.
    #[inline]
    pub(super) fn pick(&mut self) -> u32 {
        let n = self.runnable.len();
        debug_assert!(n > 0);
        if n == 1 {
            self.runnable[0]
        } else {
            self.runnable[self.rng.below(n)]
        }
    }

    /// The run loop's decision when no scheduling point chose the next
    /// thread: wake due sleepers, jump the clock if nobody can run, or end
    /// the run.
    pub(super) fn choose(&mut self) -> Result<u32, Outcome> {
        self.wake_due();
        if self.now >= self.deadline {
            return Err(Outcome::TimeLimit { now_ns: self.now });
        }
        if self.runnable.is_empty() {
            match self.sleepers.peek() {
                Some(&Reverse((at, _, _))) => {
                    if at >= self.deadline {
                        self.now = self.deadline;
                        return Err(Outcome::TimeLimit { now_ns: self.now });
                    }
                    self.now = self.now.max(at);
                    self.wake_due_slow();
                }
                None => {
                    return Err(if self.threads.iter().any(|t| t.status == Status::Blocked) {
                        self.deadlock()
                    } else {
                        Outcome::Finished
                    });
                }
            }
        }
        // Only stale sleeper entries (impossible today) could leave us empty.
        if self.runnable.is_empty() {
            return self.choose();
        }
        Ok(self.pick())
    }

    fn blocked(&self, t: u32) -> Option<Blocked> {
        let th = &self.threads[t as usize];
        if th.status != Status::Blocked {
            return None;
        }
        let waits_for =
            th.waits_for.clone().unwrap_or_else(|| WaitFor::Other("nothing recorded".into()));
        let waits_for_name = match &waits_for {
            WaitFor::Thread(o) => self
                .threads
                .get(o.0 as usize)
                .map_or_else(|| format!("unknown thread {o}"), |o| o.name.to_string()),
            WaitFor::Other(s) => s.clone(),
        };
        Some(Blocked {
            thread: ThreadId(t),
            name: th.name.to_string(),
            call: th.last_call.to_owned(),
            waits_for,
            waits_for_name,
        })
    }

    /// The wait-for chain from `start`: each blocked thread, then the one it
    /// waits for, until a thread that is not blocked, a `WaitFor::Other`, or a
    /// thread already in the chain. The bool says whether it closed a cycle
    /// back to `start`.
    fn chain_from(&self, start: u32) -> (Vec<u32>, bool) {
        let mut chain = vec![start];
        let mut cur = start;
        loop {
            match &self.threads[cur as usize].waits_for {
                Some(WaitFor::Thread(ThreadId(o)))
                    if self
                        .threads
                        .get(*o as usize)
                        .is_some_and(|t| t.status == Status::Blocked) =>
                {
                    if chain.contains(o) {
                        return (chain, *o == start);
                    }
                    chain.push(*o);
                    cur = *o;
                }
                _ => return (chain, false),
            }
        }
    }

    pub(super) fn deadlock(&self) -> Outcome {
        let blocked: Vec<u32> = (0..self.threads.len() as u32)
            .filter(|&t| self.threads[t as usize].status == Status::Blocked)
            .collect();
        let mut best: Option<Vec<u32>> = None;
        for &t in &blocked {
            let (chain, cycle) = self.chain_from(t);
            if cycle {
                best = Some(chain);
                break;
            }
            if best.as_ref().is_none_or(|b| chain.len() > b.len()) {
                best = Some(chain);
            }
        }
        let to_blocked =
            |ids: &[u32]| -> Vec<Blocked> { ids.iter().filter_map(|&t| self.blocked(t)).collect() };
        Outcome::Deadlock {
            chain: to_blocked(&best.unwrap_or_default()),
            all_blocked: to_blocked(&blocked),
        }
    }
}
