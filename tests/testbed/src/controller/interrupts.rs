//! MSI-X delivery (DRIVERKIT.md §7): the runtime side of `IOInterruptDispatchSource`.
//!
//! The shim's `IOInterruptDispatchSource::Create(provider, index, queue, &src)` makes a source
//! here bound to the queue's handle; `SetHandler`, `SetEnableWithCompletion` and `Cancel` update
//! it. When the device raises vector *v*, every live source with index *v* gets one work item
//! on its queue that calls the handler — the dext's `InterruptOccurred(action, count, time)` —
//! with `count` the number of raises it covers and `time` the mach_absolute_time (ticks) of the first. While
//! an item is posted and has not run yet, further raises only bump its count (coalescing, as
//! DriverKit's dispatch source does). A raise while the source is disabled is latched and
//! delivered when it is enabled again; a cancelled source never fires, and an item already
//! posted for it does nothing (the action may be gone).

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use dkraid_core::IOReturn;

use crate::runtime::{self, Obj};
use crate::sched;
use crate::world::{self, with_world};

/// A handler a Rust test can install instead of a dext `OSAction`: called with (count, time).
pub type RustHandler = Rc<dyn Fn(u64, u64)>;

#[derive(Clone)]
enum Handler {
    /// The dext's `OSAction *` (the shim holds a retain while it is installed here).
    Action(usize),
    Rust(RustHandler),
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handler::Action(a) => write!(f, "Action({a:#x})"),
            Handler::Rust(_) => f.write_str("Rust"),
        }
    }
}

#[derive(Debug)]
struct Source {
    queue: u64,
    index: u32,
    handler: Option<Handler>,
    enabled: bool,
    cancelled: bool,
    /// Raises covered by the posted, not yet run work item: (count, time of the first).
    pending: Option<(u64, u64)>,
    /// Raises while disabled: (count, time of the first).
    latched: Option<(u64, u64)>,
    /// Handler calls made.
    delivered: u64,
}

/// Every interrupt source of the run (the world holds one).
#[derive(Debug, Default)]
pub struct Interrupts {
    sources: BTreeMap<u64, Source>,
    next: u64,
    /// Raises of each vector, delivered or not.
    raised: BTreeMap<u32, u64>,
}

/// What a test or report may want to know about one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    pub queue: u64,
    pub index: u32,
    pub enabled: bool,
    pub cancelled: bool,
    pub has_handler: bool,
    pub delivered: u64,
}

impl Interrupts {
    pub fn source(&self, handle: u64) -> Option<SourceInfo> {
        self.sources.get(&handle).map(|s| SourceInfo {
            queue: s.queue,
            index: s.index,
            enabled: s.enabled,
            cancelled: s.cancelled,
            has_handler: s.handler.is_some(),
            delivered: s.delivered,
        })
    }

    /// How many times the device raised `vector`.
    pub fn raised(&self, vector: u32) -> u64 {
        self.raised.get(&vector).copied().unwrap_or(0)
    }
}

// ------------------------------------------------------------------------------ the API --

/// `IOInterruptDispatchSource::Create`: a source for vector `index` delivering on `queue`.
pub fn create(queue: u64, index: u32) -> Result<u64, IOReturn> {
    // With a device present, the index must name one of its vectors.
    let vectors = with_world(|w| w.controller.as_ref().map(|c| c.msix_vectors()));
    if vectors.is_some_and(|n| index >= n) || !with_world(|w| w.queues.contains_key(&queue)) {
        return Err(IOReturn::kIOReturnBadArgument);
    }
    Ok(with_world(|w| {
        let i = &mut w.interrupts;
        i.next += 1;
        let handle = i.next;
        i.sources.insert(
            handle,
            Source {
                queue,
                index,
                handler: None,
                enabled: false,
                cancelled: false,
                pending: None,
                latched: None,
                delivered: 0,
            },
        );
        handle
    }))
}

fn set(handle: u64, handler: Handler) -> Result<(), IOReturn> {
    with_world(|w| match w.interrupts.sources.get_mut(&handle) {
        Some(s) if !s.cancelled => {
            s.handler = Some(handler);
            Ok(())
        }
        _ => Err(IOReturn::kIOReturnBadArgument),
    })
}

/// `SetHandler(action)`: the shim keeps the action retained for as long as it is installed.
pub fn set_action(handle: u64, action: Obj) -> Result<(), IOReturn> {
    if action.is_null() {
        return Err(IOReturn::kIOReturnBadArgument);
    }
    set(handle, Handler::Action(action as usize))
}

/// A Rust handler instead of an `OSAction` (tests, and kernel-side consumers).
pub fn set_rust_handler(handle: u64, handler: RustHandler) -> Result<(), IOReturn> {
    set(handle, Handler::Rust(handler))
}

/// `SetEnableWithCompletion(enable, …)`. Enabling delivers what was latched while disabled.
pub fn enable(handle: u64, enable: bool) -> Result<(), IOReturn> {
    let post = with_world(|w| {
        let s = w.interrupts.sources.get_mut(&handle).ok_or(IOReturn::kIOReturnBadArgument)?;
        if s.cancelled {
            return Err(IOReturn::kIOReturnBadArgument);
        }
        s.enabled = enable;
        if !enable || s.handler.is_none() {
            return Ok(None);
        }
        let Some((count, time)) = s.latched.take() else { return Ok(None) };
        Ok(match &mut s.pending {
            Some((c, _)) => {
                *c += count;
                None
            }
            None => {
                s.pending = Some((count, time));
                Some(s.queue)
            }
        })
    })?;
    if let Some(queue) = post {
        world::post(queue, deliver(handle));
    }
    Ok(())
}

/// `Cancel`, and the source's `free()`: it never fires again. Idempotent.
pub fn cancel(handle: u64) {
    with_world(|w| {
        if let Some(s) = w.interrupts.sources.get_mut(&handle) {
            s.cancelled = true;
            s.enabled = false;
            s.handler = None;
            s.pending = None;
            s.latched = None;
        }
    });
}

/// The device raises MSI-X `vector`. Not a scheduling point.
pub fn raise(vector: u32) {
    let now = sched::now_ns();
    let posts = with_world(|w| {
        *w.interrupts.raised.entry(vector).or_insert(0) += 1;
        let mut posts = Vec::new();
        for (&handle, s) in w.interrupts.sources.iter_mut() {
            if s.index != vector || s.cancelled || s.handler.is_none() {
                continue;
            }
            let slot = if s.enabled { &mut s.pending } else { &mut s.latched };
            match slot {
                Some((count, _)) => *count += 1,
                None => {
                    *slot = Some((1, now));
                    if s.enabled {
                        posts.push((handle, s.queue));
                    }
                }
            }
        }
        posts
    });
    for (handle, queue) in posts {
        world::post(queue, deliver(handle));
    }
}

/// The work item: take what is pending and call the handler once.
fn deliver(handle: u64) -> world::Work {
    Box::new(move || {
        let call = with_world(|w| {
            let s = w.interrupts.sources.get_mut(&handle)?;
            let (count, time) = s.pending.take()?;
            if !s.enabled || s.cancelled {
                // Disabled after it was posted: keep it for the next enable.
                if !s.cancelled {
                    s.latched = Some(match s.latched {
                        Some((c, t)) => (c + count, t.min(time)),
                        None => (count, time),
                    });
                }
                return None;
            }
            s.delivered += 1;
            Some((s.handler.clone()?, count, time))
        });
        let Some((handler, count, time)) = call else { return };
        world::traced("InterruptOccurred", || match handler {
            Handler::Action(action) => {
                // A dext's handler gets the time in mach ticks (mach_absolute_time's clock).
                let ticks = with_world(|w| w.timebase).ns_to_ticks(time);
                let args = [count, ticks];
                // SAFETY: the shim keeps the action retained while it is installed on the
                // source; Cancel and free() clear it here before releasing it, and the handler
                // was read from the live source just now, with no scheduling point since.
                unsafe { runtime::dksim_action_invoke(action as Obj, args.as_ptr()) }
            }
            Handler::Rust(f) => f(count, time),
        });
    })
}

// -------------------------------------------------------------- the shim's entry points --

const OK: i32 = 0;

// Called only by the test-bed's shim, whose out-pointer is valid (and checked for NULL).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[no_mangle]
pub extern "C" fn dksim_interrupt_create(queue: u64, index: u32, out: *mut u64) -> i32 {
    if out.is_null() {
        return IOReturn::kIOReturnBadArgument.0;
    }
    match create(queue, index) {
        Ok(handle) => {
            // SAFETY: the shim passes a valid out-pointer (checked non-NULL above).
            unsafe { *out = handle };
            OK
        }
        Err(e) => e.0,
    }
}

#[no_mangle]
pub extern "C" fn dksim_interrupt_set_handler(handle: u64, action: Obj) -> i32 {
    match set_action(handle, action) {
        Ok(()) => OK,
        Err(e) => e.0,
    }
}

#[no_mangle]
pub extern "C" fn dksim_interrupt_enable(handle: u64, on: bool) -> i32 {
    match enable(handle, on) {
        Ok(()) => OK,
        Err(e) => e.0,
    }
}

#[no_mangle]
pub extern "C" fn dksim_interrupt_cancel(handle: u64) {
    cancel(handle);
}
