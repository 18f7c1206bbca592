//! The simulated Mac's state and the one mechanism every call goes through: routing a call to
//! the queue its `QUEUENAME` names and waiting for it there.
//!
//! The state lives in a thread-local `RefCell`. It is borrowed only inside short closures that
//! never call C++ or reach a scheduling point, so no borrow is ever held across a switch.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::CString;
use std::rc::Rc;

use serde::Serialize;

use crate::memory::Memory;
use crate::pci::SimPciDevice;
use crate::sched::{self, ThreadId, WaitFor};
use crate::trace::{Event, LogLine};
use crate::verifier::Violation;

/// Work posted to a queue.
pub type Work = Box<dyn FnOnce()>;

pub struct Queue {
    pub name: String,
    pub thread: ThreadId,
    pub items: VecDeque<Work>,
    pub released: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("thread", &self.thread)
            .field("pending_items", &self.items.len())
            .field("released", &self.released)
            .finish()
    }
}

/// A timer source: the queue it fires on; `generation` changes when a pending deadline is
/// dropped (re-armed, disabled, cancelled); a cancelled source can only be freed.
#[derive(Debug)]
pub struct Timer {
    pub queue: u64,
    pub generation: u64,
    pub cancelled: bool,
}

/// A task the kernel sent and waits for.
#[derive(Debug)]
pub struct PendingTask {
    pub task_id: u64,
    pub target: u64,
    pub waiter: ThreadId,
    pub response: Option<dkraid_core::abi::dk_scsi_user_parallel_response>,
    pub dropped: bool,
    /// The kernel's data buffer for the task, if it moves data.
    pub data_buffer: Option<u64>,
}

/// What the SCSI parallel family knows of the controller.
#[derive(Debug, Default)]
pub struct Family {
    pub controller: usize,
    pub provider: usize,
    pub constraints_reported: bool,
    pub constraints_present: u32,
    pub constraints: [u64; 7],
    pub initiator_id: u64,
    pub highest_id: u64,
    pub task_ids: Vec<u32>,
    pub tasks_in_use: BTreeSet<u32>,
    pub in_map_hba_data: bool,
    pub create_in_flight: Option<(u64, String)>,
    pub targets: BTreeSet<u64>,
    pub pending: BTreeMap<u64, PendingTask>,
    pub next_action: u64,
    /// Kernel threads waiting for a free task.
    pub task_waiters: Vec<ThreadId>,
    pub start_returned: bool,
    pub registered: bool,
    pub completions: u64,
    /// The dext answered UserDoesHBAPerformAutoSense true: every CHECK CONDITION it completes
    /// must carry sense data (the disk driver will not ask with REQUEST SENSE).
    pub autosense: bool,
    /// Per task ID: the dext dispatch (thread, serial) that last completed it, to tell a task
    /// refused because the ID came back while that dispatch was still running.
    pub completed_in: BTreeMap<u64, (ThreadId, u64)>,
}

/// The class the dext build registered: name and QUEUENAME bindings (its own and the SDK's).
#[derive(Clone, Debug, Default)]
pub struct ClassBindings {
    pub name: String,
    /// (method, queue) from the dext's `.iig`.
    pub dext: Vec<(String, String)>,
}

/// A registry property of the controller's service, as `CopyProperties` returns it: an
/// OSString, an OSNumber or an OSBoolean.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Property {
    String(String),
    Number(u64),
    Boolean(bool),
}

/// A property with the C strings the shim reads (they live as long as the world).
#[derive(Clone, Debug)]
pub struct RegistryProperty {
    pub key: CString,
    pub value: Property,
    /// The string value for OSString properties (empty otherwise).
    pub c_string: CString,
}

impl RegistryProperty {
    /// Keys and strings with NUL bytes cannot exist in the registry; they are cut at the NUL.
    pub fn new(key: &str, value: Property) -> RegistryProperty {
        let c =
            |s: &str| CString::new(s.split('\0').next().unwrap_or_default()).unwrap_or_default();
        let c_string = match &value {
            Property::String(s) => c(s),
            _ => CString::default(),
        };
        RegistryProperty { key: c(key), value, c_string }
    }
}

/// QUEUENAMEs the SDK's IOUserSCSIParallelInterfaceController.iig declares.
pub const SDK_QUEUE_BINDINGS: &[(&str, &str)] = &[("UserCreateTargetForID", "AuxiliaryQueue")];

/// QUEUENAMEs the SDK's IOUserClient.iig declares: ExternalMethod (LOCALONLY) runs on
/// `IOUserClientQueueExternalMethod` once the client registers it (`crate::userclient`).
pub const USER_CLIENT_SDK_QUEUE_BINDINGS: &[(&str, &str)] =
    &[("ExternalMethod", "IOUserClientQueueExternalMethod")];

/// Macros the SDK defines for queue names (IOUserClient.h), as the dext's sources use them.
pub const SDK_QUEUE_NAME_MACROS: &[(&str, &str)] =
    &[("kIOUserClientQueueNameExternalMethod", "IOUserClientQueueExternalMethod")];

#[derive(Debug)]
pub struct World {
    pub stage: dkraid_core::Stage,
    pub memory: Memory,
    /// `mach_timebase_info` of the simulated Mac (`crate::timebase`).
    pub timebase: crate::timebase::Timebase,
    /// Whether the dext asked for the timebase (`mach_timebase_info`).
    pub timebase_asked: bool,
    pub queues: BTreeMap<u64, Queue>,
    next_queue: u64,
    pub default_queue: u64,
    /// Names registered with SetDispatchQueue (and "Default").
    pub registered: BTreeMap<String, u64>,
    pub class: ClassBindings,
    /// The service's registry properties (the matched personality's), for `CopyProperties`.
    pub properties: Vec<RegistryProperty>,
    /// The PCI function the controller was matched to.
    pub pci_device: SimPciDevice,
    pub violations: Vec<Violation>,
    pub events: Vec<Event>,
    pub logs: Vec<LogLine>,
    /// The calls each simulated thread is inside, innermost last.
    pub call_stacks: BTreeMap<ThreadId, Vec<String>>,
    /// The serial of the dext dispatch each thread is running (its outermost call).
    pub dispatches: BTreeMap<ThreadId, u64>,
    pub next_dispatch: u64,
    pub family: Family,
    pub timers: BTreeMap<u64, Timer>,
    pub pci_open: bool,
    pub object_baseline: u64,
    /// Disks the disk driver attached (stage 1 and up).
    pub disks: Vec<crate::disk::DiskReport>,
    /// The simulated RAID controller behind BAR0 (stages single-io and full).
    pub controller: Option<crate::controller::Controller>,
    /// Interrupt sources (`IOInterruptDispatchSource`).
    pub interrupts: crate::controller::interrupts::Interrupts,
    /// The admin app's connections (`IOServiceOpen`, `crate::userclient`).
    pub user_clients: crate::userclient::Connections,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

impl World {
    pub fn new(stage: dkraid_core::Stage, page_size: u64) -> World {
        World {
            stage,
            memory: Memory::new(page_size),
            timebase: crate::timebase::Timebase::APPLE_SILICON,
            timebase_asked: false,
            queues: BTreeMap::new(),
            next_queue: 1,
            default_queue: 0,
            registered: BTreeMap::new(),
            class: ClassBindings::default(),
            properties: Vec::new(),
            pci_device: SimPciDevice::default(),
            violations: Vec::new(),
            events: Vec::new(),
            logs: Vec::new(),
            call_stacks: BTreeMap::new(),
            dispatches: BTreeMap::new(),
            next_dispatch: 0,
            family: Family::default(),
            timers: BTreeMap::new(),
            pci_open: false,
            object_baseline: 0,
            disks: Vec::new(),
            controller: None,
            interrupts: Default::default(),
            user_clients: Default::default(),
        }
    }

    pub fn install(world: World) {
        WORLD.with(|w| *w.borrow_mut() = Some(world));
    }

    pub fn take() -> Option<World> {
        WORLD.with(|w| w.borrow_mut().take())
    }
}

/// Run `f` on the world. Never call C++ or a scheduling point inside `f`.
pub fn with_world<R>(f: impl FnOnce(&mut World) -> R) -> R {
    WORLD.with(|w| {
        let mut guard = w.borrow_mut();
        let world = guard.as_mut().expect("no simulated Mac is running");
        f(world)
    })
}

/// Like [`with_world`], but `None` when the world is absent or busy (signal handlers).
pub fn try_with_world<R>(f: impl FnOnce(&mut World) -> R) -> Option<R> {
    WORLD.with(|w| {
        let mut guard = w.try_borrow_mut().ok()?;
        guard.as_mut().map(f)
    })
}

/// The current simulated thread's name ("kernel" outside one).
pub fn current_queue_name() -> String {
    if sched::in_simulation() {
        sched::current_name()
    } else {
        "kernel".to_string()
    }
}

/// The innermost call the current thread is in.
pub fn current_call(world: &World) -> String {
    if !sched::in_simulation() {
        return "boot".into();
    }
    world
        .call_stacks
        .get(&sched::current())
        .and_then(|s| s.last().cloned())
        .unwrap_or_else(|| "(idle)".into())
}

/// Record a violation seen on the current thread.
pub fn violation(
    rule: &'static str,
    section: &'static str,
    values: String,
    message: String,
) -> Violation {
    let queue = current_queue_name();
    with_world(|w| {
        let v = Violation { rule, queue, call: current_call(w), values, section, message };
        w.violations.push(v.clone());
        v
    })
}

pub fn record_event(start_ns: u64, queue: String, call: String, result: String) {
    let now = sched::now_ns();
    with_world(|w| {
        w.events.push(Event { start_ns, duration_ns: now - start_ns, queue, call, result })
    });
}

fn push_call(call: &str) {
    let t = sched::current();
    with_world(|w| {
        let stack = w.call_stacks.entry(t).or_default();
        if stack.is_empty() {
            w.next_dispatch += 1;
            w.dispatches.insert(t, w.next_dispatch);
        }
        stack.push(call.to_string())
    });
}

fn pop_call() {
    let t = sched::current();
    with_world(|w| {
        if let Some(s) = w.call_stacks.get_mut(&t) {
            s.pop();
            if s.is_empty() {
                w.dispatches.remove(&t);
            }
        }
    });
}

/// The dispatch the current thread is running: (thread, serial), if it is in one.
pub fn current_dispatch() -> Option<(ThreadId, u64)> {
    let t = sched::current();
    with_world(|w| w.dispatches.get(&t).map(|&serial| (t, serial)))
}

/// Whether that dispatch is still running.
pub fn dispatch_running(dispatch: (ThreadId, u64)) -> bool {
    with_world(|w| w.dispatches.get(&dispatch.0) == Some(&dispatch.1))
}

// ------------------------------------------------------------------------------- queues --

/// Create a queue and its simulated thread.
pub fn create_queue(name: &str) -> u64 {
    let id = with_world(|w| {
        let id = w.next_queue;
        w.next_queue += 1;
        id
    });
    let thread = sched::spawn(name, move || queue_main(id));
    with_world(|w| {
        w.queues.insert(
            id,
            Queue { name: name.to_string(), thread, items: VecDeque::new(), released: false },
        )
    });
    id
}

/// A queue's thread: run posted work in order; idle when there is none; end when released.
fn queue_main(id: u64) {
    loop {
        let next = with_world(|w| {
            let q = w.queues.get_mut(&id)?;
            match q.items.pop_front() {
                Some(item) => Some(Some(item)),
                None if q.released => None,
                None => Some(None),
            }
        });
        match next {
            None => return,
            Some(Some(item)) => item(),
            Some(None) => sched::block_idle("waiting for work"),
        }
    }
}

pub fn release_queue(id: u64) {
    let thread = with_world(|w| {
        let q = w.queues.get_mut(&id)?;
        q.released = true;
        Some(q.thread)
    });
    if let Some(t) = thread {
        sched::wake(t);
    }
}

pub fn post(queue: u64, work: Work) {
    let thread = with_world(|w| {
        let q = w.queues.get_mut(&queue)?;
        q.items.push_back(work);
        Some(q.thread)
    });
    if let Some(t) = thread {
        sched::wake(t);
    }
}

pub fn queue_thread(queue: u64) -> Option<ThreadId> {
    with_world(|w| w.queues.get(&queue).map(|q| q.thread))
}

/// The queue a kernel→dext method runs on: its QUEUENAME's registered queue, Default until
/// one is registered.
pub fn queue_for_method(method: &str) -> u64 {
    with_world(|w| {
        let name =
            w.class.dext.iter().find(|(m, _)| m == method).map(|(_, q)| q.clone()).or_else(|| {
                SDK_QUEUE_BINDINGS.iter().find(|(m, _)| *m == method).map(|(_, q)| q.to_string())
            });
        name.and_then(|n| w.registered.get(&n).copied()).unwrap_or(w.default_queue)
    })
}

/// The virtual cost of one user/kernel crossing (a DriverKit IPC message): what makes I/O
/// latency in virtual time mean something, and why bundled mode exists (DRIVERKIT.md §5).
pub const IPC_CROSSING_NS: u64 = 2_000;

/// Run `f` on `queue` and wait for its result. On the queue's own thread it runs inline (a
/// call nested in a call chain that thread is serving); elsewhere it is posted and the caller
/// blocks, waiting for that queue, until it ran.
pub fn call_on_queue<R: 'static>(
    queue: u64,
    call: &'static str,
    allow_inline: bool,
    f: impl FnOnce() -> R + 'static,
) -> R {
    let target = queue_thread(queue);
    let here = sched::current();
    sched::advance_ns(IPC_CROSSING_NS);
    if allow_inline && target == Some(here) {
        return traced(call, f);
    }
    let slot: Rc<RefCell<Option<R>>> = Rc::new(RefCell::new(None));
    let filled = slot.clone();
    post(
        queue,
        Box::new(move || {
            let r = traced(call, f);
            *filled.borrow_mut() = Some(r);
            sched::wake(here);
        }),
    );
    let waits_for = match target {
        Some(t) => WaitFor::Thread(t),
        None => WaitFor::Other("a queue that does not exist".into()),
    };
    loop {
        if let Some(r) = slot.borrow_mut().take() {
            return r;
        }
        sched::block(call, waits_for.clone());
    }
}

/// Run `f` as `call` on the current thread, recording it on the timeline.
pub fn traced<R>(call: &'static str, f: impl FnOnce() -> R) -> R {
    let start = sched::now_ns();
    push_call(call);
    let r = f();
    pop_call();
    record_event(start, current_queue_name(), call.to_string(), String::new());
    r
}

/// Kernel → dext: run the dext's `method` on the queue it is bound to.
pub fn dext_call<R: 'static>(method: &'static str, f: impl FnOnce() -> R + 'static) -> R {
    let queue = queue_for_method(method);
    call_on_queue(queue, method, true, f)
}

/// Name an IOReturn for the timeline.
pub fn ioreturn_name(status: i32) -> String {
    dkraid_core::IOReturn(status).to_string()
}

/// Set the result of the most recent timeline event of `call`.
pub fn set_last_result(call: &str, result: String) {
    with_world(|w| {
        if let Some(e) = w.events.iter_mut().rev().find(|e| e.call == call) {
            e.result = result;
        }
    });
}
