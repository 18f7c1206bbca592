//! dkraid-ffi: the `extern "C"` entry points of `rust-core/include/dkraid.h`, and nothing else.
//!
//! Each entry point validates its pointers once, converts to the core's safe types, calls the
//! core, logs any error by name and returns an `IOReturn`. No panic is meant to reach here; if
//! one does, `extern "C"` aborts rather than unwinding into C++. In the DriverKit build
//! (`target_os = "driverkit"`) the crate is `no_std` and carries a panic handler that logs and
//! traps.
#![cfg_attr(target_os = "driverkit", no_std)]

mod c_platform;
mod logger;

use core::ffi::c_void;

use dkraid_core::abi::{
    self, dk_core, dk_core_config, dk_dma_specification, dk_hba_constraints, dk_ioreturn,
    dk_platform, dk_scsi_user_parallel_response, dk_scsi_user_parallel_task, dk_target_work,
};
use dkraid_core::{Controller, IOReturn, Stage};

use c_platform::CPlatform;

/// Marks memory that holds a live core ("dkraid\0\x01").
const CORE_MAGIC: u64 = 0x646b_7261_6964_0001;

/// What lives in the memory the dext hands to `dk_core_init`.
#[repr(C)]
struct CoreCell {
    magic: u64,
    controller: Controller<CPlatform>,
}

fn fail(err: impl core::fmt::Display, status: IOReturn) -> dk_ioreturn {
    log::error!("dkraid: {err} -> {status}");
    status.0
}

fn ok() -> dk_ioreturn {
    IOReturn::kIOReturnSuccess.0
}

/// The core behind a handle, if it is one: non-NULL, aligned, initialised and not torn down.
///
/// # Safety
/// `core` must be NULL or point to at least `dk_core_size()` bytes the caller owns.
unsafe fn core_cell<'a>(core: *mut dk_core, call: &str) -> Result<&'a mut CoreCell, dk_ioreturn> {
    let cell = core.cast::<CoreCell>();
    if cell.is_null() {
        log::error!("dkraid: {call}: NULL core handle -> {}", IOReturn::kIOReturnBadArgument);
        return Err(IOReturn::kIOReturnBadArgument.0);
    }
    if !cell.is_aligned() {
        log::error!("dkraid: {call}: misaligned core handle -> {}", IOReturn::kIOReturnNotAligned);
        return Err(IOReturn::kIOReturnNotAligned.0);
    }
    // SAFETY: non-NULL and aligned (checked), and the caller promises the memory is ours;
    // `magic` is the first field of the repr(C) cell, and a volatile read of a u64 is fine
    // even if the memory was never initialised by us.
    let magic = unsafe { cell.cast::<u64>().read_volatile() };
    if magic != CORE_MAGIC {
        log::error!(
            "dkraid: {call}: CoreNotInitialized: the handle holds no live core (before \
             dk_core_init or after dk_core_teardown) -> {}",
            IOReturn::kIOReturnNotReady
        );
        return Err(IOReturn::kIOReturnNotReady.0);
    }
    // SAFETY: the magic says dk_core_init constructed a CoreCell here and teardown has not run;
    // the dext serialises calls into one core, so this is the only reference.
    Ok(unsafe { &mut *cell })
}

/// Run `f` on the core behind `core`, logging and converting its error.
///
/// # Safety
/// As [`core_cell`].
unsafe fn with_controller<T>(
    core: *mut dk_core,
    call: &str,
    f: impl FnOnce(&mut Controller<CPlatform>) -> Result<T, dkraid_core::ControllerError>,
) -> Result<T, dk_ioreturn> {
    // SAFETY: forwarded from the caller.
    let cell = unsafe { core_cell(core, call) }?;
    f(&mut cell.controller).map_err(|err| fail(err, err.ioreturn()))
}

/// Write `value` through an out-pointer the caller gave us, refusing NULL.
///
/// # Safety
/// `out` must be NULL or valid for a write of `T`.
unsafe fn write_out<T>(out: *mut T, value: T, call: &str) -> dk_ioreturn {
    if out.is_null() || !out.is_aligned() {
        return fail(
            format_args!("{call}: the out-pointer is NULL or misaligned"),
            IOReturn::kIOReturnBadArgument,
        );
    }
    // SAFETY: non-NULL and aligned (checked); validity for writes is the caller's promise.
    unsafe { out.write(value) };
    ok()
}

/// The SDK name of an IOReturn, NUL-terminated and static; NULL if it has none.
#[no_mangle]
pub extern "C" fn dk_ioreturn_name(value: dk_ioreturn) -> *const core::ffi::c_char {
    match IOReturn(value).c_name() {
        Some(name) => name.as_ptr(),
        None => core::ptr::null(),
    }
}

/// Bytes of memory the dext must provide for one core.
#[no_mangle]
pub extern "C" fn dk_core_size() -> usize {
    core::mem::size_of::<CoreCell>()
}

/// Alignment of that memory.
#[no_mangle]
pub extern "C" fn dk_core_align() -> usize {
    core::mem::align_of::<CoreCell>()
}

/// Construct a core in `memory`.
///
/// # Safety
/// `memory` must be NULL or valid for writes of `memory_size` bytes and stay valid until
/// `dk_core_teardown`; `platform` and `config` must be NULL or point to initialised structs;
/// `out_core` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dk_core_init(
    memory: *mut c_void,
    memory_size: usize,
    platform: *const dk_platform,
    config: *const dk_core_config,
    out_core: *mut *mut dk_core,
) -> dk_ioreturn {
    const CALL: &str = "dk_core_init";
    if out_core.is_null() || !out_core.is_aligned() {
        return fail(format_args!("{CALL}: out_core is NULL"), IOReturn::kIOReturnBadArgument);
    }
    if platform.is_null() || !platform.is_aligned() {
        return fail(format_args!("{CALL}: platform is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: non-NULL and aligned (checked); the caller promises it is initialised.
    let table = unsafe { &*platform };
    let c_platform = match CPlatform::from_table(table) {
        Ok(p) => p,
        Err(err) => return fail(format_args!("{CALL}: {err}"), IOReturn::kIOReturnBadArgument),
    };
    // From here on errors reach the dext's log.
    logger::install(table);
    if config.is_null() || !config.is_aligned() {
        return fail(format_args!("{CALL}: config is NULL"), IOReturn::kIOReturnBadArgument);
    }
    if memory.is_null() {
        return fail(format_args!("{CALL}: memory is NULL"), IOReturn::kIOReturnBadArgument);
    }
    let cell = memory.cast::<CoreCell>();
    if !cell.is_aligned() {
        return fail(
            format_args!("{CALL}: memory is not aligned to dk_core_align() = {}", dk_core_align()),
            IOReturn::kIOReturnNotAligned,
        );
    }
    if memory_size < dk_core_size() {
        return fail(
            format_args!("{CALL}: {memory_size} bytes given, dk_core_size() = {}", dk_core_size()),
            IOReturn::kIOReturnNoSpace,
        );
    }
    // SAFETY: non-NULL and aligned (checked); the caller promises it is initialised.
    let config = unsafe { &*config };
    // Built in place: the controller is too large to pass through the caller's stack.
    // SAFETY: a place projection of `cell`, which is non-NULL, aligned and valid for
    // `dk_core_size()` bytes (checked above and promised by the caller).
    let controller = unsafe { core::ptr::addr_of_mut!((*cell).controller) };
    // SAFETY: `controller` points into `cell`; any previous content is overwritten unread.
    let built = unsafe { Controller::new_in_place(controller, c_platform, config) };
    if let Err(err) = built {
        return fail(format_args!("{CALL}: {err}"), err.ioreturn());
    }
    // SAFETY: as above.
    let magic = unsafe { core::ptr::addr_of_mut!((*cell).magic) };
    // SAFETY: the magic is written last, once the controller is whole.
    unsafe { magic.write(CORE_MAGIC) };
    // SAFETY: `out_core` is non-NULL and aligned (checked above).
    unsafe { out_core.write(cell.cast::<dk_core>()) };
    ok()
}

/// Parse a bring-up stage name.
///
/// # Safety
/// `name` must be NULL or valid for reads of `length` bytes; `out_stage` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_stage_parse(
    name: *const core::ffi::c_char,
    length: usize,
    out_stage: *mut u32,
) -> dk_ioreturn {
    if name.is_null() {
        return fail("dk_stage_parse: name is NULL", IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: non-NULL (checked); the caller promises `length` readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(name.cast::<u8>(), length) };
    let Ok(text) = core::str::from_utf8(bytes) else {
        return fail("dk_stage_parse: the stage name is not UTF-8", IOReturn::kIOReturnBadArgument);
    };
    match Stage::parse(text) {
        // SAFETY: forwarded from the caller.
        Ok(stage) => unsafe { write_out(out_stage, stage.number(), "dk_stage_parse") },
        Err(err) => fail(err, IOReturn::kIOReturnBadArgument),
    }
}

/// The dext's `Start` ran.
///
/// # Safety
/// `core` must be NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_controller_start(core: *mut dk_core) -> dk_ioreturn {
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, "dk_controller_start", |c| c.start()) } {
        Ok(()) => ok(),
        Err(status) => status,
    }
}

/// `UserInitializeController`.
///
/// # Safety
/// `core` as for `dk_controller_start`; `out_constraints` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_initialize_controller(
    core: *mut dk_core,
    out_constraints: *mut dk_hba_constraints,
) -> dk_ioreturn {
    const CALL: &str = "dk_initialize_controller";
    if out_constraints.is_null() {
        return fail(
            format_args!("{CALL}: out_constraints is NULL"),
            IOReturn::kIOReturnBadArgument,
        );
    }
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| c.initialize_controller()) } {
        // SAFETY: forwarded from the caller.
        Ok(constraints) => unsafe { write_out(out_constraints, constraints, CALL) },
        Err(status) => status,
    }
}

macro_rules! report_entry_point {
    ($(#[$doc:meta])* $name:ident, $method:ident, $ty:ty) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `core` NULL or a handle from `dk_core_init`; `out` NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $name(core: *mut dk_core, out: *mut $ty) -> dk_ioreturn {
            const CALL: &str = stringify!($name);
            if out.is_null() {
                return fail(format_args!("{CALL}: the out-pointer is NULL"), IOReturn::kIOReturnBadArgument);
            }
            // SAFETY: forwarded from the caller.
            match unsafe { with_controller(core, CALL, |c| c.$method()) } {
                // SAFETY: forwarded from the caller.
                Ok(value) => unsafe { write_out(out, value, CALL) },
                Err(status) => status,
            }
        }
    };
}

report_entry_point!(
    /// `UserReportInitiatorIdentifier`.
    dk_report_initiator_identifier, report_initiator_identifier, u64
);
report_entry_point!(
    /// `UserReportHighestSupportedDeviceID` (inclusive).
    dk_report_highest_supported_device_id, report_highest_supported_device_id, u64
);
report_entry_point!(
    /// `UserReportMaximumTaskCount`.
    dk_report_maximum_task_count, report_maximum_task_count, u32
);

/// One `UserMapHBAData`: the next task ID (1..=N) with its DMA frame mapped.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out_task_id` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_map_hba_data(core: *mut dk_core, out_task_id: *mut u32) -> dk_ioreturn {
    const CALL: &str = "dk_map_hba_data";
    if out_task_id.is_null() {
        return fail(format_args!("{CALL}: out_task_id is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| c.map_hba_data()) } {
        // SAFETY: forwarded from the caller.
        Ok(task) => unsafe { write_out(out_task_id, task.get32(), CALL) },
        Err(status) => status,
    }
}

/// `UserStartController`.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_start_controller(core: *mut dk_core) -> dk_ioreturn {
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, "dk_start_controller", |c| c.start_controller()) } {
        Ok(()) => ok(),
        Err(status) => status,
    }
}

/// `UserDoesHBAPerformDeviceManagement`: 1 for true.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out_answer` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_does_hba_perform_device_management(
    core: *mut dk_core,
    out_answer: *mut u8,
) -> dk_ioreturn {
    const CALL: &str = "dk_does_hba_perform_device_management";
    if out_answer.is_null() {
        return fail(format_args!("{CALL}: out_answer is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| c.does_hba_perform_device_management()) } {
        // SAFETY: forwarded from the caller.
        Ok(answer) => unsafe { write_out(out_answer, u8::from(answer), CALL) },
        Err(status) => status,
    }
}

/// `UserGetDMASpecification`.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out_spec` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_get_dma_specification(
    core: *mut dk_core,
    out_spec: *mut dk_dma_specification,
) -> dk_ioreturn {
    const CALL: &str = "dk_get_dma_specification";
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| Ok(c.dma_specification())) } {
        // SAFETY: forwarded from the caller.
        Ok(spec) => unsafe { write_out(out_spec, spec, CALL) },
        Err(status) => status,
    }
}

/// `UserProcessParallelTask`.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `task` NULL or readable; `data` NULL or valid
/// for reads and writes of `data_length` bytes for the duration of the call; `out_response`
/// and `out_disposition` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_process_parallel_task(
    core: *mut dk_core,
    task: *const dk_scsi_user_parallel_task,
    data: *mut core::ffi::c_void,
    data_length: u64,
    out_response: *mut dk_scsi_user_parallel_response,
    out_disposition: *mut u32,
) -> dk_ioreturn {
    const CALL: &str = "dk_process_parallel_task";
    if task.is_null() || !task.is_aligned() {
        return fail(format_args!("{CALL}: task is NULL"), IOReturn::kIOReturnBadArgument);
    }
    if out_response.is_null() || !out_response.is_aligned() || out_disposition.is_null() {
        return fail(
            format_args!("{CALL}: an out-pointer is NULL"),
            IOReturn::kIOReturnBadArgument,
        );
    }
    let Ok(data_length) = usize::try_from(data_length) else {
        return fail(format_args!("{CALL}: data_length overflows"), IOReturn::kIOReturnBadArgument);
    };
    let data = if data.is_null() || data_length == 0 {
        None
    } else {
        // SAFETY: non-NULL (checked) and valid for `data_length` bytes (the caller's promise);
        // u8 has no alignment requirement.
        Some(unsafe { core::slice::from_raw_parts_mut(data.cast::<u8>(), data_length) })
    };
    // SAFETY: non-NULL and aligned (checked); the caller promises it is initialised.
    let task = unsafe { &*task };
    // SAFETY: non-NULL and aligned (checked); the caller promises it is writable and not
    // aliased for the duration of the call.
    let response = unsafe { &mut *out_response };
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| c.process_parallel_task(task, data, response)) }
    {
        // SAFETY: forwarded from the caller.
        Ok(disposition) => unsafe { write_out(out_disposition, disposition.abi(), CALL) },
        Err(status) => status,
    }
}

/// Does the core need the task's data mapped for the CPU?
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `task` NULL or readable; `out_wants` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn dk_task_wants_data_buffer(
    core: *mut dk_core,
    task: *const dk_scsi_user_parallel_task,
    out_wants: *mut u32,
) -> dk_ioreturn {
    const CALL: &str = "dk_task_wants_data_buffer";
    if task.is_null() || !task.is_aligned() {
        return fail(format_args!("{CALL}: task is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: non-NULL and aligned (checked); the caller promises it is initialised.
    let task = unsafe { &*task };
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| Ok(c.wants_data_buffer(task))) } {
        // SAFETY: forwarded from the caller.
        Ok(wants) => unsafe { write_out(out_wants, u32::from(wants), CALL) },
        Err(status) => status,
    }
}

/// Stages 2 and 3: interrupts and timers.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out_responses` NULL or valid for writes of
/// `capacity` responses; `out_count` and `out_poll_in_ns` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_service(
    core: *mut dk_core,
    now_ns: u64,
    out_responses: *mut dk_scsi_user_parallel_response,
    capacity: u32,
    out_count: *mut u32,
    out_poll_in_ns: *mut u64,
) -> dk_ioreturn {
    const CALL: &str = "dk_service";
    if out_responses.is_null()
        || !out_responses.is_aligned()
        || out_count.is_null()
        || out_poll_in_ns.is_null()
    {
        return fail(format_args!("{CALL}: a pointer is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: non-NULL and aligned (checked); the caller promises `capacity` writable entries
    // not aliased for the duration of the call.
    let out = unsafe { core::slice::from_raw_parts_mut(out_responses, capacity as usize) };
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| c.service(now_ns, out)) } {
        Ok((count, poll)) => {
            // SAFETY: forwarded from the caller.
            let r = unsafe { write_out(out_count, count as u32, CALL) };
            if r != ok() {
                return r;
            }
            // SAFETY: forwarded from the caller.
            unsafe { write_out(out_poll_in_ns, poll, CALL) }
        }
        Err(status) => status,
    }
}

/// Complete an outstanding task with a delivery failure (Stop, reset).
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out_response` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_fail_task(
    core: *mut dk_core,
    task_id: u64,
    out_response: *mut dk_scsi_user_parallel_response,
) -> dk_ioreturn {
    const CALL: &str = "dk_fail_task";
    if out_response.is_null() {
        return fail(format_args!("{CALL}: out_response is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| c.fail_task(task_id)) } {
        // SAFETY: forwarded from the caller.
        Ok(response) => unsafe { write_out(out_response, response, CALL) },
        Err(status) => status,
    }
}

/// A task-management function (`UserAbortTaskRequest` and its siblings).
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out_response` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_task_management(
    core: *mut dk_core,
    function: u32,
    target: u64,
    lun: u64,
    tag: u64,
    out_response: *mut u32,
) -> dk_ioreturn {
    const CALL: &str = "dk_task_management";
    if out_response.is_null() {
        return fail(format_args!("{CALL}: out_response is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: forwarded from the caller.
    let r =
        unsafe { with_controller(core, CALL, |c| c.task_management(function, target, lun, tag)) };
    match r {
        // SAFETY: forwarded from the caller.
        Ok((response, _)) => unsafe { write_out(out_response, response.0, CALL) },
        Err(status) => status,
    }
}

/// The completion of `task_id` was delivered to the kernel.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_task_delivered(core: *mut dk_core, task_id: u64) -> dk_ioreturn {
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, "dk_task_delivered", |c| c.task_delivered(task_id)) } {
        Ok(()) => ok(),
        Err(status) => status,
    }
}

/// `UserInitializeTargetForID`.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_initialize_target(core: *mut dk_core, target_id: u64) -> dk_ioreturn {
    // SAFETY: forwarded from the caller.
    match unsafe {
        with_controller(core, "dk_initialize_target", |c| c.initialize_target(target_id))
    } {
        Ok(()) => ok(),
        Err(status) => status,
    }
}

/// The next target operation for the private target queue.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out_work` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_next_target_work(
    core: *mut dk_core,
    out_work: *mut dk_target_work,
) -> dk_ioreturn {
    const CALL: &str = "dk_next_target_work";
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, CALL, |c| Ok(c.next_target_work())) } {
        // SAFETY: forwarded from the caller.
        Ok(work) => unsafe { write_out(out_work, work, CALL) },
        Err(status) => status,
    }
}

/// The result of a target operation, logged by name.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `work` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn dk_target_work_done(
    core: *mut dk_core,
    work: *const dk_target_work,
    status: dk_ioreturn,
) -> dk_ioreturn {
    const CALL: &str = "dk_target_work_done";
    if work.is_null() || !work.is_aligned() {
        return fail(format_args!("{CALL}: work is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: non-NULL and aligned (checked); the caller promises it is initialised.
    let work = unsafe { *work };
    let status = IOReturn(status);
    // SAFETY: forwarded from the caller.
    match unsafe {
        with_controller(core, CALL, |c| c.target_work_done(work.kind, work.target_id, status))
    } {
        Ok(()) => ok(),
        Err(status) => status,
    }
}

/// `UserStopController`.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_stop_controller(core: *mut dk_core) -> dk_ioreturn {
    // SAFETY: forwarded from the caller.
    match unsafe { with_controller(core, "dk_stop_controller", |c| c.stop_controller()) } {
        Ok(()) => ok(),
        Err(status) => status,
    }
}

/// An admin call's error: logged by name unless it is the answer the call exists to give
/// (nothing ready, no such ticket), converted to its IOReturn.
fn admin_fail(call: &str, err: dkraid_core::admin::AdminCallError) -> dk_ioreturn {
    use dkraid_core::admin::AdminCallError;
    match err {
        AdminCallError::NotFound { .. } | AdminCallError::NotReady { .. } => {
            log::debug!("dkraid: {call}: {err}");
            err.ioreturn().0
        }
        _ => fail(format_args!("{call}: {err}"), err.ioreturn()),
    }
}

/// Take one admin request; every request gets a ticket.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `request` NULL or valid for reads of `length`
/// bytes; `out_ticket` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_admin_submit(
    core: *mut dk_core,
    owner: u64,
    request: *const u8,
    length: usize,
    entitled: bool,
    out_ticket: *mut u32,
) -> dk_ioreturn {
    const CALL: &str = "dk_admin_submit";
    if request.is_null() || out_ticket.is_null() || !out_ticket.is_aligned() {
        return fail(format_args!("{CALL}: a pointer is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: non-NULL (checked); the caller promises `length` readable bytes, and u8 has no
    // alignment requirement. Nothing past `length` is read.
    let bytes = unsafe { core::slice::from_raw_parts(request, length) };
    // SAFETY: forwarded from the caller.
    let cell = match unsafe { core_cell(core, CALL) } {
        Ok(cell) => cell,
        Err(status) => return status,
    };
    match cell.controller.admin_submit(owner, bytes, entitled) {
        // SAFETY: forwarded from the caller.
        Ok(ticket) => unsafe { write_out(out_ticket, ticket, CALL) },
        Err(err) => admin_fail(CALL, err),
    }
}

/// Whether a user client's owner may run destructive admin commands (`dkraid.h`).
///
/// # Safety
/// `client_team` and `driver_team` each NULL or `*_length` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn dk_admin_authorise(
    holds_configure: u32,
    client_team: *const core::ffi::c_char,
    client_team_length: usize,
    driver_team: *const core::ffi::c_char,
    driver_team_length: usize,
) -> u32 {
    // SAFETY: forwarded from the caller: NULL or `client_team_length` readable bytes.
    let client = unsafe { optional_bytes(client_team, client_team_length) };
    // SAFETY: forwarded from the caller: NULL or `driver_team_length` readable bytes.
    let driver = unsafe { optional_bytes(driver_team, driver_team_length) };
    dkraid_core::admin::authorise(holds_configure != 0, client, driver) as u32
}

/// A static explanation of a `DK_ADMIN_AUTH_*` code; NULL for another value.
#[no_mangle]
pub extern "C" fn dk_admin_auth_reason(code: u32) -> *const core::ffi::c_char {
    match dkraid_core::admin::Authorisation::from_code(code) {
        Some(a) => a.c_reason().as_ptr(),
        None => core::ptr::null(),
    }
}

/// # Safety
/// `p` NULL or `length` readable bytes that outlive `'a`.
unsafe fn optional_bytes<'a>(p: *const core::ffi::c_char, length: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL (checked); the caller promises `length` readable bytes; u8 has no
    // alignment requirement.
    Some(unsafe { core::slice::from_raw_parts(p.cast::<u8>(), length) })
}

/// The next ticket whose response became ready and was not reported yet.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out_ticket` and `out_bytes` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_admin_next_ready(
    core: *mut dk_core,
    out_ticket: *mut u32,
    out_bytes: *mut u32,
) -> dk_ioreturn {
    const CALL: &str = "dk_admin_next_ready";
    if out_ticket.is_null()
        || !out_ticket.is_aligned()
        || out_bytes.is_null()
        || !out_bytes.is_aligned()
    {
        return fail(format_args!("{CALL}: a pointer is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: forwarded from the caller.
    let cell = match unsafe { core_cell(core, CALL) } {
        Ok(cell) => cell,
        Err(status) => return status,
    };
    match cell.controller.admin_next_ready() {
        Some((ticket, bytes)) => {
            // SAFETY: non-NULL and aligned (checked); the caller promises it is writable.
            unsafe { out_ticket.write(ticket) };
            // SAFETY: as above.
            unsafe { out_bytes.write(bytes) };
            ok()
        }
        None => IOReturn::kIOReturnNotFound.0,
    }
}

/// Copy a ready ticket's response into `out` and free its slot.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`; `out` NULL or valid for writes of `capacity`
/// bytes; `out_bytes` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn dk_admin_fetch(
    core: *mut dk_core,
    owner: u64,
    ticket: u32,
    out: *mut u8,
    capacity: usize,
    out_bytes: *mut usize,
) -> dk_ioreturn {
    const CALL: &str = "dk_admin_fetch";
    if out.is_null() || out_bytes.is_null() || !out_bytes.is_aligned() {
        return fail(format_args!("{CALL}: a pointer is NULL"), IOReturn::kIOReturnBadArgument);
    }
    // SAFETY: non-NULL (checked); the caller promises `capacity` writable bytes not aliased
    // for the duration of the call; u8 has no alignment requirement.
    let buffer = unsafe { core::slice::from_raw_parts_mut(out, capacity) };
    // SAFETY: forwarded from the caller.
    let cell = match unsafe { core_cell(core, CALL) } {
        Ok(cell) => cell,
        Err(status) => return status,
    };
    match cell.controller.admin_fetch(owner, ticket, buffer) {
        // SAFETY: forwarded from the caller.
        Ok(n) => unsafe { write_out(out_bytes, n, CALL) },
        Err(err) => admin_fail(CALL, err),
    }
}

/// Forget a ticket (its client went away).
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_admin_cancel(core: *mut dk_core, ticket: u32) -> dk_ioreturn {
    const CALL: &str = "dk_admin_cancel";
    // SAFETY: forwarded from the caller.
    let cell = match unsafe { core_cell(core, CALL) } {
        Ok(cell) => cell,
        Err(status) => return status,
    };
    match cell.controller.admin_cancel(ticket) {
        Ok(()) => ok(),
        Err(err) => admin_fail(CALL, err),
    }
}

/// A client connection closed: forget every ticket of `owner`.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_admin_close(core: *mut dk_core, owner: u64) -> dk_ioreturn {
    const CALL: &str = "dk_admin_close";
    // SAFETY: forwarded from the caller.
    let cell = match unsafe { core_cell(core, CALL) } {
        Ok(cell) => cell,
        Err(status) => return status,
    };
    let n = cell.controller.admin_close(owner);
    if n > 0 {
        log::info!("dkraid: admin client closed: {n} of its requests forgotten");
    }
    ok()
}

/// The newest event sequence number the firmware announced (0: none, or not a live core).
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_admin_event_sequence(core: *const dk_core) -> u64 {
    // SAFETY: forwarded from the caller; only read through the reference.
    match unsafe { core_cell(core.cast_mut(), "dk_admin_event_sequence") } {
        Ok(cell) => cell.controller.admin_event_sequence(),
        Err(_) => 0,
    }
}

/// Release every DMA buffer and end the core. Calling it again, or with NULL, logs and does
/// nothing.
///
/// # Safety
/// `core` NULL or a handle from `dk_core_init`.
#[no_mangle]
pub unsafe extern "C" fn dk_core_teardown(core: *mut dk_core) {
    // SAFETY: forwarded from the caller.
    let Ok(cell) = (unsafe { core_cell(core, "dk_core_teardown") }) else {
        return;
    };
    cell.controller.teardown();
    cell.magic = 0;
    logger::uninstall(cell.controller.platform().log_context());
}

#[cfg(target_os = "driverkit")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    logger::log_panic(info);
    trap()
}

/// Stop the process without calling anything outside the library: DriverKit's `abort` is not
/// among the symbols the static library may import.
#[cfg(target_os = "driverkit")]
fn trap() -> ! {
    loop {
        // SAFETY: a trap instruction has no preconditions; it ends the process.
        #[cfg(target_arch = "aarch64")]
        unsafe {
            core::arch::asm!("brk #0xdead", options(noreturn, nomem, nostack))
        };
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            core::arch::asm!("ud2", options(noreturn, nomem, nostack))
        };
    }
}

// Keep the generated ABI constants referenced so the header's version is the one we build.
const _: () = assert!(abi::DK_ABI_VERSION == 1);
