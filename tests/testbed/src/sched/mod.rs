//! The test-bed's deterministic scheduler.
//!
//! Every simulated DriverKit dispatch queue, the simulated kernel and any
//! simulated firmware is a *simulated thread*. Exactly one of them runs at a
//! time, all on the one OS thread that calls [`Scheduler::run`]. Every call the
//! simulated code makes into the shim is a *scheduling point* ([`yield_now`],
//! [`block`], [`block_idle`], [`sleep_ns`], [`advance_ns`]), at which a PRNG
//! seeded from the [`Scheduler::new`] seed picks the runnable thread that runs
//! next — possibly the same one. Time is virtual: it only moves through
//! [`advance_ns`] and by jumping to the next sleeper when nobody can run. So a
//! seed fully determines a run: the same seed gives the same interleaving, the
//! same virtual timestamps, the same outcome.
//!
//! # Why stackful coroutines, not OS threads
//!
//! The dext's C++ runs *on* the simulated threads and calls back into Rust
//! shim functions that must be able to give up the CPU in the middle of a C++
//! call stack. That rules out async/stackless designs: each simulated thread
//! needs its own real stack. OS threads would provide that, but then every
//! hand-off is a futex wake plus a wait on another core (or a context switch
//! through the kernel), microseconds rather than nanoseconds, and "exactly one
//! runs" must be enforced with a baton that makes everything slower still.
//! [`corosensei`] coroutines switch stacks in user space with a handful of
//! instructions; `docs/PERFORMANCE.md` has the measured numbers for both.
//!
//! # How it works
//!
//! * Each thread is a `corosensei::Coroutine` with its own `mmap`ed stack
//!   ([`DEFAULT_STACK_SIZE`], 256 KiB, plus a guard page; see
//!   [`Scheduler::with_stack_size`]). Stacks of finished threads are reused.
//! * corosensei coroutines are asymmetric: [`Scheduler::run_until`] is the
//!   *run loop* that resumes a coroutine, and a simulated thread gives up the
//!   CPU by suspending back to it. A scheduling point first draws the next
//!   thread; if that is the current thread it simply returns (no stack switch
//!   at all); otherwise it records the choice and suspends, and the run loop
//!   resumes the chosen thread. A hand-off is therefore two user-space stack
//!   switches, with no allocation and no lock.
//! * The bookkeeping (thread table, `Vec` runnable set with O(1) insert,
//!   removal and pick, sleeper heap, clock, PRNG) lives in a `RefCell<State>`
//!   inside an `Rc<Core>`. The free functions find it through a thread-local
//!   raw pointer that is non-null only while `run_until` (or the scheduler's
//!   `Drop`) executes, and which is backed by an `Rc` clone for exactly that
//!   time. **Every `RefCell` borrow is taken and released inside one
//!   function, and never held across a stack switch**: the switching code
//!   copies what it needs (the `Yielder` pointer) out of the borrow, drops the
//!   borrow, and only then suspends. The coroutines themselves are owned by
//!   the `Scheduler` outside the `RefCell` (threads spawned from inside are
//!   queued in `State` and handed over by the run loop), so resuming one
//!   never needs a borrow either.
//! * When no thread is runnable the run loop jumps the clock to the earliest
//!   sleeper (ties woken in the order they went to sleep); if there is none,
//!   the run ends: [`Outcome::Finished`] if every thread returned or is idle
//!   ([`block_idle`]), otherwise [`Outcome::Deadlock`] with the wait-for
//!   chain.
//!
//! # Panics
//!
//! A panic in a simulated thread unwinds to the root of its coroutine, which
//! corosensei catches and re-raises from `resume`, so it **propagates out of
//! [`Scheduler::run`]** with its original payload (`#[should_panic]` tests
//! and `catch_unwind` work). The scheduler is then *poisoned*: running it
//! again panics; dropping it is fine.
//!
//! # Dropping a scheduler with live threads
//!
//! Threads that are blocked, idle, sleeping or merely runnable when the
//! scheduler is dropped still have frames on their stacks. By default
//! ([`Teardown::Unwind`]) `Drop` force-unwinds each one (corosensei makes
//! the pending `suspend` panic with a private payload, running every
//! destructor on that stack, then catches it at the coroutine root). While
//! that happens the scheduling functions do nothing (they return at once), so
//! destructors may call them. Unwinding through foreign frames is only sound
//! if those frames can be unwound: Rust functions called from C/C++ that may
//! reach a scheduling point must be `extern "C-unwind"`, and the C++ must have
//! unwind tables. **A Rust panic cannot leave an `extern "C"` function: the
//! process aborts.** So if a simulated stack can be suspended below an
//! `extern "C"` callback called from C++, do not use the default:
//!
//! * [`Teardown::Leak`]: the started coroutines, their stacks and everything
//!   on them are leaked (safe; nothing on those stacks runs). Costs the
//!   touched part of each stack plus two memory mappings per thread, for the
//!   rest of the process: fine for a few hundred simulations, not for an
//!   endless seed sweep.
//! * [`Scheduler::with_teardown_reset`] (`unsafe`): the started coroutines
//!   are reset without running anything on their stacks, and the stacks are
//!   freed. Sound as long as nothing on those stacks relies on its destructor
//!   running before its memory is reused (pinned intrusive list nodes, scoped
//!   threads and the like).
//!
//! In every mode, threads that never started just have their closure dropped.
//!
//! # Rules for code running on a simulated thread
//!
//! * Never block the OS thread (real locks held across a scheduling point,
//!   `std::thread::sleep`, channels): the other simulated threads cannot run
//!   until you return to a scheduling point. Use [`block`]/[`wake`].
//! * Never hold a `RefCell` borrow, `Mutex` guard or similar across a
//!   scheduling point if another simulated thread could take it.
//! * Do not move data that refers to the current stack to another thread, and
//!   do not run a `Scheduler` inside a simulated thread (nested runs panic).
//! * Stack depth is limited to the coroutine's stack (256 KiB by default);
//!   overflowing it hits the guard page and kills the process with SIGSEGV,
//!   like any stack overflow. Raise it with [`Scheduler::with_stack_size`].
//! * A loop that never reaches a scheduling point hangs the whole
//!   simulation; [`Scheduler::with_spin_watchdog`] detects that.
//! * `call` names should come from a small fixed set (API names): names passed
//!   to [`block`]/[`block_idle`] are interned (leaked once per distinct name
//!   and OS thread). Put variable details into [`WaitFor::Other`].

mod introspect;
mod report;
mod rng;
mod state;
#[cfg(test)]
mod tests;
mod watchdog;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};

pub use introspect::{deadlock_snapshot, thread_name_of};
pub use report::{describe_chain, Blocked, Outcome, ThreadId, WaitFor};
pub use watchdog::SpinReport;

use state::{Coro, State, Status, NO_THREAD};
use watchdog::{Heartbeat, Watchdog};

/// Default size of each simulated thread's stack (a guard page is added).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// What dropping a [`Scheduler`] does with threads that have not returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Teardown {
    /// Force-unwind each coroutine, running the destructors on its stack.
    #[default]
    Unwind,
    /// Leak each coroutine with its stack (no code runs). For stacks holding
    /// frames that cannot be unwound (C++ without unwind tables, `extern "C"`
    /// callbacks).
    Leak,
}

/// What `Drop` does, including the `unsafe` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TeardownMode {
    Unwind,
    Leak,
    Reset,
}

/// Shared by the `Scheduler`, the thread-local pointer and the free functions.
struct Core {
    state: RefCell<State>,
    heartbeat: Arc<Heartbeat>,
    /// Thread names by id, readable by the watchdog thread.
    names: Arc<Mutex<Vec<String>>>,
    stack_size: Cell<usize>,
}

thread_local! {
    /// The `Core` of the scheduler running (or being torn down) on this OS
    /// thread; null otherwise. See [`TlsGuard`].
    static CORE: Cell<*const Core> = const { Cell::new(std::ptr::null()) };

    /// Interned `block` call names (see the module docs).
    static INTERNED: RefCell<HashSet<&'static str>> = RefCell::new(HashSet::new());
}

/// Installs a `Core` as this OS thread's current scheduler, keeping it alive
/// with an `Rc` clone, and restores the previous pointer on drop (also when
/// unwinding).
struct TlsGuard {
    prev: *const Core,
    _core: Rc<Core>,
}

impl TlsGuard {
    fn enter(core: &Rc<Core>) -> Self {
        let prev = CORE.with(|c| c.replace(Rc::as_ptr(core)));
        Self { prev, _core: Rc::clone(core) }
    }
}

impl Drop for TlsGuard {
    fn drop(&mut self) {
        CORE.with(|c| c.set(self.prev));
    }
}

#[cold]
#[inline(never)]
fn outside(what: &str) -> ! {
    panic!("dkraid_testbed::sched::{what} called outside a simulated thread")
}

/// Runs `f` on the current scheduler's `Core`; panics outside a simulation.
#[inline(always)]
fn with_core<R>(what: &str, f: impl FnOnce(&Core) -> R) -> R {
    let p = CORE.with(Cell::get);
    if p.is_null() {
        outside(what)
    }
    // SAFETY: `CORE` is non-null only while a `TlsGuard` is alive on this OS
    // thread, and that guard holds an `Rc<Core>` clone, so the `Core` is
    // alive. `Core` is only ever accessed through shared references (its
    // mutable parts are behind `RefCell`/`Cell`/atomics).
    let core = unsafe { &*p };
    f(core)
}

fn intern(s: &str) -> &'static str {
    INTERNED.with(|i| {
        let mut i = i.borrow_mut();
        if let Some(&x) = i.get(s) {
            x
        } else {
            let x: &'static str = Box::leak(Box::from(s));
            i.insert(x);
            x
        }
    })
}

/// How the current thread leaves a scheduling point.
enum Park {
    /// Stays runnable (`yield_now`).
    Stay,
    /// Stays runnable after charging virtual time (`advance_ns`).
    Advance(u64),
    Block(WaitFor),
    Idle,
    Sleep(u64),
}

/// The name a scheduling point records.
enum Call<'a> {
    Static(&'static str),
    Dynamic(&'a str),
}

/// The heart of every scheduling point: update the current thread, draw the
/// next one, and switch stacks only if it is another thread. Inlined into
/// each public entry point so that `call` and `park` are constants there.
#[inline(always)]
fn scheduling_point(what: &str, call: Call<'_>, park: Park) {
    with_core(what, |core| {
        let yielder = {
            let mut st = core.state.borrow_mut();
            if st.teardown {
                return;
            }
            let cur = st.running;
            if cur == NO_THREAD {
                drop(st);
                outside(what);
            }
            st.points += 1;
            let call = match call {
                Call::Static(s) => s,
                Call::Dynamic(s) => {
                    let cached = st.threads[cur as usize].call_cache;
                    if cached == s {
                        cached
                    } else {
                        let s = intern(s);
                        st.threads[cur as usize].call_cache = s;
                        s
                    }
                }
            };
            st.threads[cur as usize].last_call = call;
            match park {
                Park::Stay => {}
                Park::Advance(ns) => st.now = st.now.saturating_add(ns),
                Park::Block(w) => {
                    st.park(cur, Status::Blocked);
                    st.threads[cur as usize].waits_for = Some(w);
                }
                Park::Idle => st.park(cur, Status::Idle),
                Park::Sleep(ns) => st.sleep(cur, ns),
            }
            st.wake_due();
            if st.must_return() || !st.has_runnable() {
                st.next = NO_THREAD;
            } else {
                let next = st.pick();
                if next == cur {
                    drop(st);
                    core.heartbeat.publish(cur, call);
                    return;
                }
                st.next = next;
            }
            st.threads[cur as usize].yielder
        };
        // SAFETY: `yielder` was registered by this very coroutine when it
        // started (a thread reaches a scheduling point only after that); it
        // points at the coroutine's `Yielder` at the base of the stack we are
        // running on, which lives as long as the coroutine. No `RefCell`
        // borrow is held across the switch.
        unsafe { (*yielder).suspend(()) };
    })
}

/// Marks the scheduler poisoned if a resumed coroutine unwinds out of
/// `resume` (a panic in a simulated thread).
struct PanicGuard<'a> {
    core: &'a Core,
    thread: u32,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.core.state.try_borrow_mut() {
            st.poisoned = true;
            st.running = NO_THREAD;
            st.finish(self.thread);
        }
        self.core.heartbeat.publish(NO_THREAD, "");
    }
}

fn spawn_in(core: &Core, name: &str, f: impl FnOnce() + 'static) -> ThreadId {
    let mut st = core.state.borrow_mut();
    let stack = match st.stack_pool.pop() {
        Some(s) => s,
        None => DefaultStack::new(core.stack_size.get()).unwrap_or_else(|e| {
            panic!("cannot allocate the stack of simulated thread {name}: {e}")
        }),
    };
    let id = st.add_thread(name);
    let coro: Coro = Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
        with_core("spawn", |c| {
            c.state.borrow_mut().threads[id as usize].yielder = y;
        });
        f()
    });
    st.pending.push(coro);
    drop(st);
    core.names.lock().unwrap_or_else(|e| e.into_inner()).push(name.to_owned());
    ThreadId(id)
}

/// Owns every simulated thread of one simulation. See the module docs.
pub struct Scheduler {
    core: Rc<Core>,
    /// Coroutines by thread id; `None` once finished (or during teardown).
    coros: Vec<Option<Coro>>,
    teardown: TeardownMode,
    watchdog: Option<Watchdog>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.core.state.borrow();
        f.debug_struct("Scheduler")
            .field("threads", &st.threads.len())
            .field("now_ns", &st.now)
            .field("switches", &st.switches)
            .field("teardown", &self.teardown)
            .field("watchdog", &self.watchdog.is_some())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler whose interleaving is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            core: Rc::new(Core {
                state: RefCell::new(State::new(seed)),
                heartbeat: Arc::new(Heartbeat::new()),
                names: Arc::new(Mutex::new(Vec::new())),
                stack_size: Cell::new(DEFAULT_STACK_SIZE),
            }),
            coros: Vec::new(),
            teardown: TeardownMode::Unwind,
            watchdog: None,
        }
    }

    /// Stack size for threads spawned from now on (default
    /// [`DEFAULT_STACK_SIZE`]; a guard page is added, at least 4 KiB).
    pub fn with_stack_size(self, bytes: usize) -> Self {
        self.core.stack_size.set(bytes);
        self.core.state.borrow_mut().stack_pool.clear();
        self
    }

    /// What `Drop` does with threads that have not returned (see the module
    /// docs).
    pub fn with_teardown(mut self, teardown: Teardown) -> Self {
        self.teardown = match teardown {
            Teardown::Unwind => TeardownMode::Unwind,
            Teardown::Leak => TeardownMode::Leak,
        };
        self
    }

    /// On drop, reset started threads without running anything on their
    /// stacks (no destructors, no unwinding through foreign frames) and free
    /// their stacks.
    ///
    /// # Safety
    ///
    /// Nothing on a simulated thread's stack may rely on being dropped
    /// before its memory is reused: no pinned values with drop guarantees
    /// (intrusive wait-list nodes), no `std::thread::scope`, no stack-held
    /// guards whose leaking would let other code observe freed memory. The
    /// values are simply never dropped (their heap allocations leak).
    pub unsafe fn with_teardown_reset(mut self) -> Self {
        self.teardown = TeardownMode::Reset;
        self
    }

    /// Starts an OS watcher thread that calls `on_spin` (from that thread)
    /// once a simulated thread has run for `limit` of wall-clock time without
    /// reaching a scheduling point. It polls every `limit / 4` (at most 50 ms),
    /// reports each stuck episode once, and stops when the scheduler is
    /// dropped. Typical `on_spin`: print the report and
    /// `std::process::exit(3)`.
    pub fn with_spin_watchdog(
        mut self,
        limit: Duration,
        on_spin: impl Fn(SpinReport) + Send + 'static,
    ) -> Self {
        self.watchdog = Some(Watchdog::start(
            Arc::clone(&self.core.heartbeat),
            Arc::clone(&self.core.names),
            limit,
            Box::new(on_spin),
        ));
        self
    }

    /// Adds a runnable thread (before or between runs; from inside a
    /// simulated thread use the free function [`spawn`]).
    pub fn spawn(&mut self, name: &str, f: impl FnOnce() + 'static) -> ThreadId {
        let id = spawn_in(&self.core, name, f);
        self.adopt_pending();
        id
    }

    /// Makes a blocked or idle thread runnable, from outside the simulation
    /// (e.g. a harness injecting work between runs). No-op otherwise.
    pub fn wake(&mut self, t: ThreadId) {
        self.core.state.borrow_mut().wake(t.0);
    }

    /// Runs until [`Outcome::Finished`], [`Outcome::Deadlock`] or
    /// [`Outcome::Stopped`]. Panics of simulated threads propagate out of it.
    pub fn run(&mut self) -> Outcome {
        self.run_until(u64::MAX)
    }

    /// Like [`run`](Self::run), but also returns [`Outcome::TimeLimit`] once
    /// virtual time reaches `deadline_ns` (threads due at the deadline have
    /// not run yet). A scheduler can be run again after any outcome except a
    /// panic; a new run continues where the last one stopped.
    pub fn run_until(&mut self, deadline_ns: u64) -> Outcome {
        if CORE.with(|c| !c.get().is_null()) {
            panic!(
                "Scheduler::run called inside a running simulation (nested runs are not supported)"
            );
        }
        let core = Rc::clone(&self.core);
        let _tls = TlsGuard::enter(&core);
        {
            let mut st = core.state.borrow_mut();
            assert!(!st.poisoned, "Scheduler::run after a simulated thread panicked");
            st.deadline = deadline_ns;
        }
        let outcome = loop {
            let next = {
                let mut st = core.state.borrow_mut();
                if !st.pending.is_empty() {
                    self.coros.extend(st.pending.drain(..).map(Some));
                }
                if let Some(reason) = st.stop.take() {
                    break Outcome::Stopped { reason };
                }
                let mut next = std::mem::replace(&mut st.next, NO_THREAD);
                if next == NO_THREAD {
                    match st.choose() {
                        Ok(t) => next = t,
                        Err(outcome) => break outcome,
                    }
                }
                st.running = next;
                st.switches += 1;
                let fp = (st.fingerprint ^ u64::from(next)).wrapping_mul(0x100_0000_01b3);
                st.fingerprint = (fp ^ st.points).wrapping_mul(0x100_0000_01b3);
                core.heartbeat.publish(next, st.threads[next as usize].last_call);
                next
            };
            let coro =
                self.coros[next as usize].as_mut().expect("a runnable thread has a coroutine");
            let guard = PanicGuard { core: &core, thread: next };
            let result = coro.resume(());
            std::mem::forget(guard);
            // After a suspend `running` still names the suspended thread
            // until the next iteration overwrites it (nothing reads it in
            // between); it is cleared when the run ends.
            if let CoroutineResult::Return(()) = result {
                let mut st = core.state.borrow_mut();
                st.running = NO_THREAD;
                st.finish(next);
                if let Some(c) = self.coros[next as usize].take() {
                    st.stack_pool.push(c.into_stack());
                }
            }
        };
        core.state.borrow_mut().running = NO_THREAD;
        core.heartbeat.publish(NO_THREAD, "");
        outcome
    }

    /// Virtual time, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.core.state.borrow().now
    }

    /// A fingerprint of the interleaving: FNV-1a over, at every hand-off,
    /// the thread switched to and the number of scheduling points passed so
    /// far (so it also tells *when* each switch happened, not just the order
    /// of threads). Equal seeds give equal fingerprints; different
    /// interleavings differ, barring 64-bit hash collisions.
    pub fn fingerprint(&self) -> u64 {
        self.core.state.borrow().fingerprint
    }

    /// Hand-offs so far: how many times the run loop switched into a thread.
    /// (A scheduling point that picks the thread already running is not a
    /// hand-off.)
    pub fn switches(&self) -> u64 {
        self.core.state.borrow().switches
    }

    /// Scheduling points passed so far (each one draws the next thread).
    pub fn scheduling_points(&self) -> u64 {
        self.core.state.borrow().points
    }

    pub fn thread_name(&self, t: ThreadId) -> String {
        self.core
            .state
            .borrow()
            .threads
            .get(t.0 as usize)
            .map_or_else(|| format!("unknown thread {t}"), |th| th.name.to_string())
    }

    fn adopt_pending(&mut self) {
        let mut st = self.core.state.borrow_mut();
        self.coros.extend(st.pending.drain(..).map(Some));
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // Stop the watcher first: unwinding takes wall-clock time.
        self.watchdog = None;
        let core = Rc::clone(&self.core);
        let _tls = TlsGuard::enter(&core);
        if let Ok(mut st) = core.state.try_borrow_mut() {
            st.teardown = true;
        }
        loop {
            self.adopt_pending();
            if self.coros.iter().all(Option::is_none) {
                break;
            }
            // Destructors may spawn more threads: those land in `pending`,
            // and are dropped unstarted on the next pass.
            for (id, slot) in self.coros.iter_mut().enumerate() {
                let Some(mut coro) = slot.take() else {
                    continue;
                };
                match self.teardown {
                    // Unstarted: only the closure, on no frame, is dropped.
                    _ if !coro.started() => teardown_unwind(&core, id, coro),
                    TeardownMode::Unwind => teardown_unwind(&core, id, coro),
                    TeardownMode::Leak => std::mem::forget(coro),
                    TeardownMode::Reset => {
                        // SAFETY: the coroutine is suspended (not running),
                        // and whoever chose `with_teardown_reset` promised
                        // that skipping the destructors of everything on its
                        // stack before freeing it is sound.
                        unsafe { coro.force_reset() };
                        drop(coro);
                    }
                }
            }
        }
    }
}

/// Force-unwinds (or, if it never started, drops the closure of) thread `id`.
fn teardown_unwind(core: &Core, id: usize, mut coro: Coro) {
    // `current()` etc. keep working in destructors.
    set_running(core, id as u32);
    let unwound = catch_unwind(AssertUnwindSafe(|| coro.force_unwind()));
    set_running(core, NO_THREAD);
    if unwound.is_err() {
        eprintln!(
            "dkraid_testbed::sched: a destructor panicked while unwinding a simulated thread"
        );
    }
    drop(coro);
}

fn set_running(core: &Core, t: u32) {
    if let Ok(mut st) = core.state.try_borrow_mut() {
        st.running = t;
    }
}

// ---------------------------------------------------------------------------
// Inside a simulated thread
// ---------------------------------------------------------------------------

/// Spawns a new, runnable simulated thread (not a scheduling point).
pub fn spawn(name: &str, f: impl FnOnce() + 'static) -> ThreadId {
    with_core("spawn", |core| spawn_in(core, name, f))
}

/// The calling simulated thread.
pub fn current() -> ThreadId {
    with_core("current", |core| {
        let t = core.state.borrow().running;
        if t == NO_THREAD {
            outside("current")
        }
        ThreadId(t)
    })
}

/// The calling simulated thread's name (allocates; see [`current_name_rc`]).
pub fn current_name() -> String {
    current_name_rc().to_string()
}

/// The calling simulated thread's name, without allocating.
pub fn current_name_rc() -> Rc<str> {
    with_core("current_name", |core| {
        let st = core.state.borrow();
        match st.threads.get(st.running as usize) {
            Some(t) => Rc::clone(&t.name),
            None => {
                drop(st);
                outside("current_name")
            }
        }
    })
}

/// A scheduling point: the PRNG picks who runs next (maybe the caller).
/// `call` is recorded as the thread's last call (watchdog, deadlock reports).
pub fn yield_now(call: &'static str) {
    scheduling_point("yield_now", Call::Static(call), Park::Stay);
}

/// Parks the calling thread until another thread calls [`wake`] for it. It
/// is *blocked*: if nothing else can run, the run ends in
/// [`Outcome::Deadlock`]. There are no spurious wake-ups, but a `wake` that
/// came before the `block` is not remembered: keep the condition in your own
/// state and re-check it in a loop.
pub fn block(call: &str, waits_for: WaitFor) {
    scheduling_point("block", Call::Dynamic(call), Park::Block(waits_for));
}

/// Parks the calling thread as *idle* (a queue waiting for work) until
/// [`wake`]. Idle threads never make a deadlock: when only idle threads
/// remain the run is [`Outcome::Finished`].
pub fn block_idle(call: &str) {
    scheduling_point("block_idle", Call::Dynamic(call), Park::Idle);
}

/// Makes a blocked or idle thread runnable. A no-op for a thread that is
/// runnable, sleeping, finished or unknown. Not a scheduling point.
pub fn wake(t: ThreadId) {
    with_core("wake", |core| core.state.borrow_mut().wake(t.0));
}

/// Sleeps for `ns` of virtual time (a scheduling point; `0` behaves like
/// [`yield_now`]). [`wake`] does not end a sleep.
pub fn sleep_ns(ns: u64) {
    scheduling_point("sleep_ns", Call::Static("sleep_ns"), Park::Sleep(ns));
}

/// Virtual time, in nanoseconds.
pub fn now_ns() -> u64 {
    with_core("now_ns", |core| core.state.borrow().now)
}

/// Charges `ns` of virtual time without blocking (e.g. the cost of an MMIO
/// access); still a scheduling point.
pub fn advance_ns(ns: u64) {
    scheduling_point("advance_ns", Call::Static("advance_ns"), Park::Advance(ns));
}

/// Ends the run with [`Outcome::Stopped`] when the calling thread next
/// reaches a scheduling point (or returns). The first reason wins.
pub fn stop(reason: String) {
    with_core("stop", |core| {
        let mut st = core.state.borrow_mut();
        if !st.teardown && st.stop.is_none() {
            st.stop = Some(reason);
        }
    });
}

/// Whether the caller runs on a simulated thread (also while a dropped
/// scheduler unwinds it, when scheduling points return at once).
pub fn in_simulation() -> bool {
    let p = CORE.with(Cell::get);
    if p.is_null() {
        return false;
    }
    with_core("in_simulation", |core| core.state.borrow().running != NO_THREAD)
}
