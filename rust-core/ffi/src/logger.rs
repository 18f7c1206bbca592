//! The `log` facade forwarded to the platform's `log` callback (os_log in the dext, the trace
//! in the test-bed). Lines are formatted into a fixed stack buffer: no allocation.

use core::ffi::c_void;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use dkraid_core::abi::dk_platform;
use dkraid_core::platform::log_level_to_abi;

type LogFn = unsafe extern "C" fn(*mut c_void, u32, *const core::ffi::c_char, usize);

/// The sink: a context and a function pointer (0 = none). One per process; the last core
/// initialised owns it.
static SINK_CONTEXT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static SINK_FN: AtomicUsize = AtomicUsize::new(0);

struct PlatformLogger;

static LOGGER: PlatformLogger = PlatformLogger;

/// Longest line forwarded; longer ones are cut at a character boundary.
const LINE_BYTES: usize = 480;

struct Line {
    buf: [u8; LINE_BYTES],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LINE_BYTES - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

fn emit(level: u32, args: fmt::Arguments<'_>) {
    let f = SINK_FN.load(Ordering::Acquire);
    if f == 0 {
        return;
    }
    let mut line = Line { buf: [0; LINE_BYTES], len: 0 };
    let _ = line.write_fmt(args);
    // SAFETY: `f` was stored from a non-NULL `LogFn` in `install` and fn pointers round-trip
    // through usize on every supported target.
    let f: LogFn = unsafe { core::mem::transmute::<usize, LogFn>(f) };
    let context = SINK_CONTEXT.load(Ordering::Acquire);
    // SAFETY: the dext's contract is that the callback and its context outlive the core; the
    // line is valid for `len` bytes.
    unsafe { f(context, level, line.buf.as_ptr().cast(), line.len) };
}

impl log::Log for PlatformLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        SINK_FN.load(Ordering::Relaxed) != 0
    }

    fn log(&self, record: &log::Record<'_>) {
        emit(log_level_to_abi(record.level()), *record.args());
    }

    fn flush(&self) {}
}

/// Route the facade to `table.log` (already checked non-NULL).
pub fn install(table: &dk_platform) {
    let Some(f) = table.log else { return };
    SINK_CONTEXT.store(table.context, Ordering::Release);
    SINK_FN.store(f as usize, Ordering::Release);
    // Fails harmlessly if a logger is already set (ours, or the host program's own).
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// Stop logging through `context` if it is the current sink.
pub fn uninstall(context: *mut c_void) {
    if SINK_CONTEXT.load(Ordering::Acquire) == context {
        SINK_FN.store(0, Ordering::Release);
    }
}

#[cfg(target_os = "driverkit")]
pub fn log_panic(info: &core::panic::PanicInfo<'_>) {
    emit(dkraid_core::abi::DK_LOG_ERROR, format_args!("dkraid: PANIC: {info}"));
}
