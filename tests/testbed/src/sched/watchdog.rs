//! The spin watchdog: a real OS thread that notices a simulated thread
//! running for too long without reaching a scheduling point.
//!
//! The simulation side only *publishes* (a few `Relaxed`/`Release` stores per
//! scheduling point, see [`Heartbeat::publish`]); all the waiting, comparing
//! and name lookups happen on the watcher thread.

use std::fmt;
use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// "No simulated thread is running" (the run loop is not inside `run()`).
pub(super) const NO_THREAD: u32 = u32::MAX;

/// What the spin watchdog reports about a simulated thread that has run for
/// the configured wall-clock limit without reaching a scheduling point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpinReport {
    /// Name of the simulated thread that is spinning.
    pub thread_name: String,
    /// The last scheduling point it passed (the `call` of `yield_now`,
    /// `block`, ..., or `"sleep_ns"` / `"advance_ns"` / `"start"`).
    pub last_call: String,
    /// Wall-clock milliseconds since that scheduling point (as observed by
    /// the watcher, so up to one polling tick late).
    pub wall_ms: u64,
}

impl fmt::Display for SpinReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulated thread {} has run for {} ms of wall-clock time without a scheduling point (last call: {})",
            self.thread_name, self.wall_ms, self.last_call
        )
    }
}

/// Which simulated thread runs and what its last call was, written by the
/// simulation at every scheduling point, read by the watcher.
///
/// A seqlock: `seq` is odd while the writer updates the fields. The writer is
/// only ever the simulation's OS thread, so it needs no read-modify-write.
#[derive(Debug)]
pub(super) struct Heartbeat {
    seq: AtomicU64,
    thread: AtomicU32,
    call_ptr: AtomicPtr<u8>,
    call_len: AtomicUsize,
}

impl Heartbeat {
    pub(super) fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            thread: AtomicU32::new(NO_THREAD),
            call_ptr: AtomicPtr::new("".as_ptr().cast_mut()),
            call_len: AtomicUsize::new(0),
        }
    }

    /// Simulated thread `thread` runs now; its last call was `call`.
    #[inline]
    pub(super) fn publish(&self, thread: u32, call: &'static str) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.thread.store(thread, Ordering::Relaxed);
        self.call_ptr.store(call.as_ptr().cast_mut(), Ordering::Relaxed);
        self.call_len.store(call.len(), Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// A consistent snapshot `(seq, thread, call)`, or `None` if a write was
    /// in progress or raced with the read.
    fn read(&self) -> Option<(u64, u32, &'static str)> {
        let s1 = self.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let thread = self.thread.load(Ordering::Relaxed);
        let ptr = self.call_ptr.load(Ordering::Relaxed);
        let len = self.call_len.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) != s1 {
            return None;
        }
        // SAFETY: the sequence number did not change and was even, so `ptr`
        // and `len` come from the same `publish(.., call)`, whose `call` is a
        // `&'static str`: valid, immutable memory for the rest of the process.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(ptr, len) };
        // SAFETY: those bytes are the contents of a `str`, hence UTF-8.
        let call = unsafe { std::str::from_utf8_unchecked(bytes) };
        Some((s1, thread, call))
    }
}

/// The watcher thread; stops (and is joined) on drop.
#[derive(Debug)]
pub(super) struct Watchdog {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub(super) fn start(
        heartbeat: Arc<Heartbeat>,
        names: Arc<Mutex<Vec<String>>>,
        limit: Duration,
        on_spin: Box<dyn Fn(SpinReport) + Send + 'static>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let tick = (limit / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
        let handle = std::thread::Builder::new()
            .name("dkraid-spin-watchdog".into())
            .spawn(move || watch(&heartbeat, &names, limit, tick, &stop2, &*on_spin))
            .expect("cannot start the spin watchdog thread");
        Self { stop, handle: Some(handle) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            // A panic in `on_spin` already printed its message; nothing to add.
            let _ = h.join();
        }
    }
}

fn watch(
    hb: &Heartbeat,
    names: &Mutex<Vec<String>>,
    limit: Duration,
    tick: Duration,
    stop: &AtomicBool,
    on_spin: &(dyn Fn(SpinReport) + Send),
) {
    let mut last_seq = hb.seq();
    let mut since = Instant::now();
    let mut fired = false;
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(tick);
        if stop.load(Ordering::Acquire) {
            break;
        }
        let seq = hb.seq();
        if seq != last_seq {
            last_seq = seq;
            since = Instant::now();
            fired = false;
            continue;
        }
        let stuck = since.elapsed();
        if fired || stuck < limit {
            continue;
        }
        let Some((s, thread, call)) = hb.read() else {
            continue;
        };
        if s != seq || thread == NO_THREAD {
            continue;
        }
        let thread_name = names
            .lock()
            .map(|n| n.get(thread as usize).cloned())
            .unwrap_or_default()
            .unwrap_or_else(|| format!("thread #{thread}"));
        fired = true;
        on_spin(SpinReport {
            thread_name,
            last_call: call.to_owned(),
            wall_ms: u64::try_from(stuck.as_millis()).unwrap_or(u64::MAX),
        });
    }
}
