//! The simulated kernel: IOSCSIParallelFamily's side of a DriverKit SCSI controller, and the
//! DriverKit rules it enforces (DRIVERKIT.md §1–§5). Every rule the dext breaks becomes a
//! [`Violation`](crate::verifier::Violation) naming the rule, the queue, the call and the values.

use dkraid_core::IOReturn;

use crate::memory::Prepared;
use crate::runtime::{self, Obj};
use crate::sched::{self, WaitFor};
use crate::world::{
    self, call_on_queue, dext_call, ioreturn_name, set_last_result, violation, with_world, Timer,
    SDK_QUEUE_BINDINGS,
};

const OK: i32 = 0;
const SECTION_START: &str = "DRIVERKIT.md §1";
const SECTION_TASKS: &str = "DRIVERKIT.md §2";
const SECTION_QUEUES: &str = "DRIVERKIT.md §3";
const SECTION_TARGETS: &str = "DRIVERKIT.md §4";
const SECTION_IO: &str = "DRIVERKIT.md §5";
const SECTION_TIME: &str = "docs/DRIVERKIT-RULES.md §Time";
const SECTION_QUERIES: &str = "docs/DRIVERKIT-RULES.md §Queries";

/// The seven constraint keys, in the order the shim reports them.
pub const CONSTRAINT_KEYS: [&str; 7] = [
    "kIOMaximumSegmentCountReadKey",
    "kIOMaximumSegmentCountWriteKey",
    "kIOMaximumSegmentByteCountReadKey",
    "kIOMaximumSegmentByteCountWriteKey",
    "kIOMinimumSegmentAlignmentByteCountKey",
    "kIOMaximumSegmentAddressableBitCountKey",
    "kIOMinimumHBADataAlignmentMaskKey",
];

/// How long the registry may stay busy before the kernel panics.
pub const REGISTRY_BUSY_TIMEOUT_NS: u64 = 60_000_000_000;

// ------------------------------------------------------------------------------ queues --

/// `IOService::SetDispatchQueue`.
pub fn set_dispatch_queue(name: &str, queue: u64) -> i32 {
    if queue == 0 {
        violation(
            "NullDispatchQueue",
            SECTION_QUEUES,
            format!("name=\"{name}\" queue=NULL"),
            format!(
                "SetDispatchQueue(\"{name}\") was passed a NULL queue: the queue was not created \
                 yet. Create every queue with IODispatchQueue::Create before registering it."
            ),
        );
        return IOReturn::kIOReturnBadArgument.0;
    }
    let declared = with_world(|w| {
        name == "Default"
            || w.class.dext.iter().any(|(_, q)| q == name)
            || SDK_QUEUE_BINDINGS.iter().any(|(_, q)| *q == name)
    });
    if !declared {
        let class = with_world(|w| w.class.name.clone());
        violation(
            "UndeclaredQueueName",
            SECTION_QUEUES,
            format!("name=\"{name}\" result={}", IOReturn::kIOReturnBadArgument),
            format!(
                "SetDispatchQueue(\"{name}\") returned kIOReturnBadArgument (0xe00002c2): no \
                 method of {class} or its superclasses is declared QUEUENAME({name}). Declare a \
                 method with QUEUENAME({name}) in the .iig, or do not register the name."
            ),
        );
        return IOReturn::kIOReturnBadArgument.0;
    }
    with_world(|w| {
        if name == "Default" {
            w.default_queue = queue;
        }
        w.registered.insert(name.to_string(), queue);
    });
    OK
}

// ----------------------------------------------------------------------- family start --

fn controller() -> Obj {
    with_world(|w| w.family.controller as Obj)
}

/// A kernel→dext call returning a kern_return_t, recorded with its result.
fn call(method: &'static str, f: impl FnOnce(Obj) -> i32 + 'static) -> i32 {
    let object = controller();
    let r = dext_call(method, move || f(object));
    set_last_result(method, ioreturn_name(r));
    r
}

/// The kernel's start of the controller (IOSCSIParallelInterfaceController::start), entered
/// from the dext's `Start(provider, SUPERDISPATCH)`. Runs on the dext thread that made the
/// super call; kernel→dext calls made here for that thread's queue run nested on it.
pub fn family_start(_service: Obj, _provider: Obj) -> i32 {
    // SAFETY: the controller object is live for the whole start; out-pointers point
    // into the closure's own frame.
    let r = call("UserInitializeController", |o| unsafe {
        runtime::dksim_invoke_UserInitializeController(o)
    });
    if r != OK {
        return r;
    }
    if let Err(r) = check_constraints() {
        return r;
    }
    // IOSCSIParallelInterfaceController::start takes each report as a plain value
    // (ReportInitiatorIdentifier() returns the ID, it cannot fail): a dext's error, or an
    // out-parameter it never set, leaves the kernel with its own default — start goes on.
    // SAFETY: the controller object is live for the whole start; out-pointers point
    // into the closure's own frame.
    let id = query("UserReportInitiatorIdentifier", 0u64, |o, p: *mut u64| unsafe {
        runtime::dksim_invoke_UserReportInitiatorIdentifier(o, p)
    });
    // SAFETY: the controller object is live for the whole start; out-pointers point
    // into the closure's own frame.
    let highest = query("UserReportHighestSupportedDeviceID", 0u64, |o, p: *mut u64| unsafe {
        runtime::dksim_invoke_UserReportHighestSupportedDeviceID(o, p)
    });
    with_world(|w| {
        w.family.initiator_id = id;
        w.family.highest_id = highest;
    });
    // SAFETY: the controller object is live for the whole start; out-pointers point
    // into the closure's own frame.
    let count = query("UserReportMaximumTaskCount", 0u32, |o, p: *mut u32| unsafe {
        runtime::dksim_invoke_UserReportMaximumTaskCount(o, p)
    });
    if count == 0 {
        violation(
            "ZeroTaskCount",
            SECTION_START,
            "count=0".into(),
            "UserReportMaximumTaskCount reported 0 tasks: the controller fails to load".into(),
        );
        return IOReturn::kIOReturnNoResources.0;
    }
    build_task_pool(count);
    if with_world(|w| w.family.task_ids.is_empty()) {
        return IOReturn::kIOReturnNoMemory.0;
    }
    // Bundled mode: any error opts out.
    // SAFETY: the controller object is live for the whole start; out-pointers point
    // into the closure's own frame.
    let _ = call("UserMapBundledParallelTaskCommandAndResponseBuffers", |o| unsafe {
        runtime::dksim_invoke_UserMapBundledParallelTaskCommandAndResponseBuffers(o)
    });
    let r =
        // SAFETY: the controller object is live for the whole start; out-pointers point
        // into the closure's own frame.
        call("UserStartController", |o| unsafe { runtime::dksim_invoke_UserStartController(o) });
    if r != OK {
        return r;
    }
    // SAFETY: the controller object is live for the whole start; out-pointers point
    // into the closure's own frame.
    // An error or an unset answer is "false": the kernel creates and probes every target.
    let manages = query("UserDoesHBAPerformDeviceManagement", false, |o, p: *mut bool| unsafe {
        runtime::dksim_invoke_UserDoesHBAPerformDeviceManagement(o, p)
    });
    if !manages {
        // The kernel probes every ID itself, synchronously, inside start.
        let (initiator, highest) = with_world(|w| (w.family.initiator_id, w.family.highest_id));
        for target in (0..=highest.min(255)).filter(|t| *t != initiator) {
            let _ = probe_and_attach(target);
        }
    }
    with_world(|w| w.family.registered = true);
    OK
}

/// A kernel→dext call with one out-parameter.
fn out_call<T: Default + Copy + 'static>(
    method: &'static str,
    f: impl FnOnce(Obj, *mut T) -> i32 + 'static,
) -> (i32, T) {
    let object = controller();
    let (r, v) = dext_call(method, move || {
        let mut v = T::default();
        let r = f(object, &mut v);
        (r, v)
    });
    set_last_result(method, ioreturn_name(r));
    (r, v)
}

/// A kernel→dext query with one out-parameter, as the kernel's host class makes it: the value
/// comes back in the RPC reply, which is read only when the call succeeded; the caller has no
/// way to fail (`bool DoesHBAPerformDeviceManagement()`), so on an error it keeps `default`.
/// The out-parameter is poisoned before the call, so an answer the dext never wrote is seen.
fn query<T: Copy + 'static>(
    method: &'static str,
    default: T,
    f: impl FnOnce(Obj, *mut T) -> i32 + 'static,
) -> T {
    let object = controller();
    let (r, v, written) = dext_call(method, move || poisoned_out(default, |p| f(object, p)));
    set_last_result(method, ioreturn_name(r));
    if r != OK {
        violation(
            "UserQueryFailed",
            SECTION_QUERIES,
            format!("result={} (0x{:08x}) written={written}", ioreturn_name(r), r as u32),
            format!(
                "{method} returned {} instead of kIOReturnSuccess. IOSCSIParallelFamily's start \
                 cannot fail on a report: it discards the answer and goes on with its default \
                 ({}). Return kIOReturnSuccess and set the out-parameter (a seed-style \
                 `bool ret = TRUE; return ret;` returns 1, an error, and sets nothing).",
                ioreturn_name(r),
                default_text(method),
            ),
        );
        return default;
    }
    if !written {
        violation(
            "OutParameterNeverSet",
            SECTION_QUERIES,
            format!("result={}", ioreturn_name(r)),
            format!(
                "{method} returned kIOReturnSuccess without writing its out-parameter: the \
                 kernel reads whatever the reply held (the test-bed uses {}). Set it on every \
                 path that returns success.",
                default_text(method),
            ),
        );
    }
    v
}

/// Call `f` with an out-parameter poisoned beforehand: (result, the value or `default` when `f`
/// never wrote it, whether it wrote it).
fn poisoned_out<T: Copy>(default: T, f: impl FnOnce(*mut T) -> i32) -> (i32, T, bool) {
    const POISON: u8 = 0xA5;
    let mut slot = std::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the slot is size_of::<T>() bytes of this frame.
    unsafe { std::ptr::write_bytes(slot.as_mut_ptr().cast::<u8>(), POISON, size_of::<T>()) };
    let r = f(slot.as_mut_ptr());
    // SAFETY: every byte of the slot was initialised above (poison) or by `f`.
    let bytes = unsafe { std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size_of::<T>()) };
    let written = bytes.iter().any(|b| *b != POISON);
    // SAFETY: read only when `f` wrote a T there (a bool it wrote is 0 or 1).
    let v = if written { unsafe { slot.assume_init() } } else { default };
    (r, v, written)
}

fn default_text(method: &str) -> &'static str {
    match method {
        "UserDoesHBAPerformDeviceManagement" => {
            "false: the kernel itself creates and probes every target ID, synchronously, in start"
        }
        "UserReportMaximumTaskCount" => "0 tasks: the controller fails to load",
        "UserReportHighestSupportedDeviceID" => "0: no target above ID 0 is ever probed",
        "UserDoesHBAPerformAutoSense" => {
            "false: the disk driver sends REQUEST SENSE after every CHECK CONDITION"
        }
        _ => "0",
    }
}

fn check_constraints() -> Result<(), i32> {
    let (reported, present) =
        with_world(|w| (w.family.constraints_reported, w.family.constraints_present));
    let missing: Vec<&str> = CONSTRAINT_KEYS
        .iter()
        .enumerate()
        .filter(|(i, _)| !reported || present & (1 << i) == 0)
        .map(|(_, k)| *k)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let fatal = missing.contains(&"kIOMinimumHBADataAlignmentMaskKey");
    violation(
        "MissingHbaConstraint",
        SECTION_START,
        format!("missing=[{}]", missing.join(", ")),
        if fatal {
            format!(
                "kernel panic: UserInitializeController returned without reporting {}; the \
                 kernel dereferences kIOMinimumHBADataAlignmentMaskKey without a NULL check \
                 (IOSCSIParallelInterfaceController::AllocateSCSIParallelTasks). Report all \
                 seven keys with UserReportHBAConstraints before returning.",
                missing.join(", ")
            )
        } else {
            format!("UserReportHBAConstraints did not report {}", missing.join(", "))
        },
    );
    if fatal {
        sched::stop("kernel panic: NULL dereference of kIOMinimumHBADataAlignmentMaskKey".into());
        return Err(IOReturn::kIOReturnError.0);
    }
    Ok(())
}

/// For each task: UserGetDMASpecification, then UserMapHBAData once — exactly `count` times.
fn build_task_pool(count: u32) {
    for index in 0..count {
        let object = controller();
        let (r, segment_type) = dext_call("UserGetDMASpecification", move || {
            let (mut max, mut align, mut bits, mut kind) = (0u64, 0u32, 0u8, 0u16);
            // SAFETY: live controller, out-pointers on this frame.
            let r = unsafe {
                runtime::dksim_invoke_UserGetDMASpecification(
                    object, &mut max, &mut align, &mut bits, &mut kind,
                )
            };
            (r, kind)
        });
        set_last_result("UserGetDMASpecification", ioreturn_name(r));
        if r == OK && segment_type != 3 && index == 0 {
            violation(
                "DmaSegmentTypeNotHost64",
                SECTION_IO,
                format!("segmentType={segment_type}"),
                "UserGetDMASpecification must answer kDMAOutputSegmentHost64 (3); a Big32 type \
                 killed INQUIRY in the kernel before it reached a dext"
                    .into(),
            );
        }
        with_world(|w| w.family.in_map_hba_data = true);
        // SAFETY: the controller object is live for the whole start; out-pointers point
        // into the closure's own frame.
        let (r, id) = out_call("UserMapHBAData", |o, p: *mut u32| unsafe {
            // SAFETY: live controller, out-pointer on the closure's frame.
            runtime::dksim_invoke_UserMapHBAData(o, p)
        });
        with_world(|w| w.family.in_map_hba_data = false);
        if r != OK {
            // The first failure fails start; a later one truncates the pool.
            return;
        }
        if id == 0 {
            violation(
                "ZeroTaskId",
                SECTION_TASKS,
                format!("call={} uniqueTaskID=0", index + 1),
                "UserMapHBAData returned task ID 0, the kernel's \"first task on the queue\" \
                 sentinel: lookups go to the wrong task. Hand out 1..=N."
                    .into(),
            );
        } else if with_world(|w| w.family.task_ids.contains(&id)) {
            violation(
                "DuplicateTaskId",
                SECTION_TASKS,
                format!("call={} uniqueTaskID={id}", index + 1),
                format!(
                    "UserMapHBAData returned task ID {id} a second time: task IDs must be unique \
                     and non-zero, or completions go to the wrong task."
                ),
            );
        }
        with_world(|w| w.family.task_ids.push(id));
    }
}

/// Stage-independent check of every `PrepareForDMA` the dext makes.
pub fn check_dma_frame(prepared: &Prepared) {
    let (in_map, page) = with_world(|w| (w.family.in_map_hba_data, w.memory.page_size));
    if !in_map {
        return;
    }
    let alignment =
        with_world(|w| w.memory.buffer(prepared.mapping.buffer).map(|b| b.alignment).unwrap_or(0));
    if prepared.buffer_capacity % page == 0 && alignment % page == 0 {
        return;
    }
    // One finding per run: every task's frame is made the same way.
    if with_world(|w| w.violations.iter().any(|v| v.rule == "SubPageDmaFrame")) {
        return;
    }
    violation(
        "SubPageDmaFrame",
        SECTION_TASKS,
        format!("capacity={} alignment={alignment} IOVMPageSize={page}", prepared.buffer_capacity),
        format!(
            "a per-task DMA frame of {} bytes aligned to {alignment} is not a whole number of \
             {page}-byte pages: the IOMMU maps whole pages, so the device can reach the {} bytes \
             around it. Size and align per-task memory with IOVMPageSize, never a constant 4096.",
            prepared.buffer_capacity, prepared.mapping.mapped_bytes
        ),
    );
}

/// A BAR access (`MemoryRead*`/`MemoryWrite*`; `write` carries the value). Stages 0 and 1 touch
/// no hardware: the access is a violation and reads all ones. In stages 2 and 3 it reaches the
/// simulated controller's BAR0 (`controller::bar_access`), which charges its cost.
pub fn hardware_access(write: Option<u64>, memory_index: u8, offset: u64, width: u32) -> u64 {
    let stage = with_world(|w| w.stage);
    if matches!(stage, dkraid_core::Stage::Pipeline | dkraid_core::Stage::FakeBlock) {
        let kind = if write.is_some() { "write" } else { "read" };
        violation(
            "HardwareTouchedInPipelineStage",
            "DRIVERKIT.md §9",
            format!("{kind}{width} memoryIndex={memory_index} offset={offset:#x} stage={stage}"),
            format!(
                "bring-up stage {} ({stage}) must not touch the hardware: stages 0 and 1 run \
                 without the controller",
                stage.number()
            ),
        );
        return crate::controller::all_ones(width);
    }
    crate::controller::bar_access(write, memory_index, offset, width)
}

// -------------------------------------------------------------------------- targets --

/// `UserCreateTargetForID`, dext → kernel (DRIVERKIT.md §4).
pub fn create_target(target: u64) -> i32 {
    let caller = world::current_queue_name();
    let in_flight = with_world(|w| w.family.create_in_flight.clone());
    if let Some((other, other_queue)) = in_flight {
        violation(
            "ReentrantTargetCreate",
            SECTION_TARGETS,
            format!(
                "target={target} in_flight={other} from {other_queue} result={}",
                IOReturn::kIOReturnNotReady
            ),
            format!(
                "UserCreateTargetForID({target}) from {caller} while UserCreateTargetForID({other}) \
                 from {other_queue} is in flight re-enters DriverKit's IPC and fails with \
                 kIOReturnNotReady (0xe00002d8). Queue target creations and issue them one at a \
                 time."
            ),
        );
        return IOReturn::kIOReturnNotReady.0;
    }
    let (initiator, exists) =
        with_world(|w| (w.family.initiator_id, w.family.targets.contains(&target)));
    if target == initiator || exists {
        return IOReturn::kIOReturnError.0;
    }
    let aux = with_world(|w| w.registered.get("AuxiliaryQueue").copied());
    let Some(aux) = aux else {
        // The SDK routes this call through AuxiliaryQueue; unregistered, it never dispatches.
        loop {
            sched::block(
                "UserCreateTargetForID",
                WaitFor::Other(
                    "AuxiliaryQueue, which was never registered, so the call never dispatches"
                        .into(),
                ),
            );
        }
    };
    with_world(|w| w.family.create_in_flight = Some((target, caller)));
    // Never inline: a call from AuxiliaryQueue itself waits for its own queue.
    let r = call_on_queue(aux, "UserCreateTargetForID", false, move || probe_and_attach(target));
    with_world(|w| w.family.create_in_flight = None);
    set_last_result("UserCreateTargetForID", ioreturn_name(r));
    r
}

/// The kernel's CreateTargetForID: UserInitializeTargetForID on Default, then the initial
/// probe through UserProcessParallelTask.
fn probe_and_attach(target: u64) -> i32 {
    // SAFETY: the controller object is live for the whole start; out-pointers point
    // into the closure's own frame.
    let r = call("UserInitializeTargetForID", move |o| unsafe {
        // SAFETY: live controller.
        runtime::dksim_invoke_UserInitializeTargetForID(o, target)
    });
    if r != OK {
        return r;
    }
    // IOSCSIParallelInterfaceDevice::start asks for multipathing; the SCSI Architecture Model
    // then asks IsProtocolServiceSupported for the highest LUN and for autosense
    // (IOSCSIParallelInterfaceDevice.cpp). An error answer is the kernel's default.
    // SAFETY: the controller object is live; out-pointers point into the closure's own frame.
    let _multipath = query("UserDoesHBASupportMultiPathing", false, |o, p: *mut bool| unsafe {
        runtime::dksim_invoke_UserDoesHBASupportMultiPathing(o, p)
    });
    // SAFETY: as above.
    let _highest_lun =
        query("UserReportHBAHighestLogicalUnitNumber", 0u64, |o, p: *mut u64| unsafe {
            runtime::dksim_invoke_UserReportHBAHighestLogicalUnitNumber(o, p)
        });
    // SAFETY: as above.
    let autosense = query("UserDoesHBAPerformAutoSense", false, |o, p: *mut bool| unsafe {
        runtime::dksim_invoke_UserDoesHBAPerformAutoSense(o, p)
    });
    with_world(|w| w.family.autosense = autosense);
    // The kernel's initial probe (SCSI.md steps 1-5): any TASK_COMPLETE to TEST UNIT READY
    // means a device is there.
    if crate::disk::probe_target(target) {
        with_world(|w| w.family.targets.insert(target));
        OK
    } else {
        IOReturn::kIOReturnNoDevice.0
    }
}

// ------------------------------------------------------------------------------ timers --

pub fn timer_create(queue: u64) -> u64 {
    with_world(|w| {
        let id = w.timers.keys().next_back().copied().unwrap_or(0) + 1;
        w.timers.insert(id, Timer { queue, generation: 0, cancelled: false });
        id
    })
}

/// `Cancel`: the pending deadline is dropped and the source is dead (IODispatchSource.iig:
/// "After cancellation, the source can only be freed. It cannot be reactivated.").
pub fn timer_cancel(timer: u64) {
    with_world(|w| {
        if let Some(t) = w.timers.get_mut(&timer) {
            t.generation += 1;
            t.cancelled = true;
        }
    });
}

/// `SetEnableWithCompletion(enable)`: disabling drops the pending deadline; neither is allowed
/// on a cancelled source.
pub fn timer_set_enable(timer: u64, enable: bool) -> i32 {
    let cancelled = with_world(|w| w.timers.get(&timer).map(|t| t.cancelled));
    match cancelled {
        None => IOReturn::kIOReturnBadArgument.0,
        Some(true) => {
            timer_used_after_cancel(timer, if enable { "enable" } else { "disable" });
            IOReturn::kIOReturnNotReady.0
        }
        Some(false) => {
            if !enable {
                with_world(|w| {
                    if let Some(t) = w.timers.get_mut(&timer) {
                        t.generation += 1;
                    }
                });
            }
            OK
        }
    }
}

fn timer_used_after_cancel(timer: u64, what: &str) {
    violation(
        "TimerUsedAfterCancel",
        SECTION_TIME,
        format!("timer={timer} call={what}"),
        format!(
            "an IOTimerDispatchSource was asked to {what} after Cancel: a cancelled source can \
             only be freed, it cannot be reactivated (IODispatchSource.iig). The test-bed \
             answers kIOReturnNotReady and nothing fires. Create a new source instead."
        ),
    );
}

/// `WakeAtTime(options, deadline, leeway)`: at the deadline, read in the clock `options` names
/// (mach ticks or nanoseconds, `crate::timebase`), the action runs on the timer's queue with the
/// deadline, in that clock's units, as its `time`. A timer has one deadline: arming it again
/// replaces one that has not fired (IOTimerDispatchSource.iig: "it will not fire and be
/// replaced by the new deadline").
pub fn timer_wake_at(timer: u64, action: usize, clock: u64, deadline: u64) -> i32 {
    let Some((units, clock_name)) = crate::timebase::clock_units(clock) else {
        violation(
            "TimerClockUnknown",
            SECTION_TIME,
            format!("options=0x{clock:x} deadline={deadline}"),
            format!(
                "IOTimerDispatchSource::WakeAtTime was given clock 0x{clock:x}, which is not one \
                 of the SDK's kIOTimerClock* values (MachAbsoluteTime 0xC8, MachContinuousTime \
                 0xC4, UptimeRaw 0x88, MonotonicRaw 0x84): the timer is not armed. Pass the \
                 constant by name from <DriverKit/IOTimerDispatchSource.h>."
            ),
        );
        return IOReturn::kIOReturnBadArgument.0;
    };
    if with_world(|w| w.timers.get(&timer).is_some_and(|t| t.cancelled)) {
        timer_used_after_cancel(timer, "WakeAtTime");
        return IOReturn::kIOReturnNotReady.0;
    }
    let (timebase, asked) = with_world(|w| (w.timebase, w.timebase_asked));
    let now_ns = sched::now_ns();
    let deadline_ns = match units {
        crate::timebase::ClockUnits::Ticks => timebase.ticks_to_ns(deadline),
        crate::timebase::ClockUnits::Nanoseconds => deadline,
    };
    // A deadline in ticks further out than "now" is arithmetic on ticks; without the timebase
    // that arithmetic was done in nanoseconds (one tick is 41.7 ns on Apple silicon). Named
    // once per boot: every later arming repeats the same mistake.
    let reported =
        with_world(|w| w.violations.iter().any(|v| v.rule == "MachTicksWithoutTimebase"));
    if units == crate::timebase::ClockUnits::Ticks
        && !asked
        && !reported
        && deadline_ns > now_ns.saturating_add(1_000_000)
    {
        let now_ticks = timebase.ns_to_ticks(now_ns);
        let delta = deadline.saturating_sub(now_ticks);
        violation(
            "MachTicksWithoutTimebase",
            SECTION_TIME,
            format!(
                "clock={clock_name} deadline={deadline} now={now_ticks} timebase={}/{}",
                timebase.numer, timebase.denom
            ),
            format!(
                "WakeAtTime({clock_name}) was armed {delta} ticks ahead, but the dext never \
                 called mach_timebase_info: on this Mac a tick is {}/{} ns, so the timer fires \
                 {:.3} s from now — if {delta} was meant as nanoseconds, that is {:.1}x late. \
                 Convert with mach_timebase_info, or arm kIOTimerClockUptimeRaw in nanoseconds.",
                timebase.numer,
                timebase.denom,
                (deadline_ns - now_ns) as f64 / 1e9,
                timebase.numer as f64 / timebase.denom as f64,
            ),
        );
    }
    // Replace the pending deadline, if any: the earlier arming's thread finds itself stale.
    let Some((queue, generation)) = with_world(|w| {
        w.timers.get_mut(&timer).map(|t| {
            t.generation += 1;
            (t.queue, t.generation)
        })
    }) else {
        return IOReturn::kIOReturnBadArgument.0;
    };
    sched::spawn("timer", move || {
        let now = sched::now_ns();
        if deadline_ns > now {
            sched::sleep_ns(deadline_ns - now);
        }
        let live = with_world(|w| w.timers.get(&timer).is_some_and(|t| t.generation == generation));
        if live {
            world::post(
                queue,
                Box::new(move || {
                    let still = with_world(|w| {
                        w.timers.get(&timer).is_some_and(|t| t.generation == generation)
                    });
                    if still {
                        let args = [deadline, 0u64];
                        world::traced("TimerOccurred", || {
                            // SAFETY: the timer holds the action for as long as it is live.
                            unsafe { runtime::dksim_action_invoke(action as Obj, args.as_ptr()) }
                        });
                    }
                }),
            );
        }
    });
    OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::World;

    #[test]
    fn an_out_parameter_the_dext_never_wrote_is_seen() {
        // SAFETY (closures): the pointer is the poisoned slot, valid for one T.
        let (r, v, written) = poisoned_out(false, |p| {
            // SAFETY: p points at the slot.
            unsafe { *p = true };
            OK
        });
        assert_eq!((r, v, written), (OK, true, true));
        let (r, v, written) = poisoned_out(false, |p| {
            // SAFETY: p points at the slot.
            unsafe { *p = false };
            OK
        });
        assert_eq!((r, v, written), (OK, false, true));
        // The seed's `bool ret = TRUE; return ret;`: 1, nothing written.
        assert_eq!(poisoned_out(false, |_| 1), (1, false, false));
        assert_eq!(poisoned_out(7u64, |_| OK), (OK, 7, false));
        let (_, v, written) = poisoned_out(0u64, |p| {
            // SAFETY: p points at the slot.
            unsafe { *p = 0 };
            OK
        });
        assert_eq!((v, written), (0, true), "zero is an answer, not a missing one");
    }

    #[test]
    fn a_timer_armed_with_a_clock_the_sdk_does_not_have_is_refused_by_name() {
        World::install(World::new(dkraid_core::Stage::Pipeline, 16384));
        with_world(|w| {
            w.timers.insert(1, Timer { queue: 1, generation: 0, cancelled: false });
        });
        // 0 was the old model's kIOTimerClockMachAbsoluteTime; the SDK's is 0xC8.
        assert_eq!(timer_wake_at(1, 0, 0, 1000), IOReturn::kIOReturnBadArgument.0);
        let rules = with_world(|w| w.violations.iter().map(|v| v.rule).collect::<Vec<_>>());
        assert_eq!(rules, ["TimerClockUnknown"]);
        World::take();
    }

    #[test]
    fn a_cancelled_timer_cannot_be_armed_or_enabled_again() {
        World::install(World::new(dkraid_core::Stage::Pipeline, 16384));
        with_world(|w| {
            w.timers.insert(1, Timer { queue: 1, generation: 0, cancelled: false });
        });
        // Disabling and enabling a live source is fine.
        assert_eq!(timer_set_enable(1, false), OK);
        assert_eq!(timer_set_enable(1, true), OK);
        timer_cancel(1);
        let clock = crate::timebase::K_IO_TIMER_CLOCK_UPTIME_RAW;
        assert_eq!(timer_wake_at(1, 0, clock, 1000), IOReturn::kIOReturnNotReady.0);
        assert_eq!(timer_set_enable(1, true), IOReturn::kIOReturnNotReady.0);
        let rules = with_world(|w| w.violations.iter().map(|v| v.rule).collect::<Vec<_>>());
        assert_eq!(rules, ["TimerUsedAfterCancel", "TimerUsedAfterCancel"]);
        World::take();
    }
}
