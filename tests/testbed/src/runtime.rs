//! The runtime behind the DriverKit shim: every `dksim_*` function the shim's C++ calls
//! (`shim/include/dksim/runtime.h`), and the C++ entry points the simulated kernel calls.
//! Pointers from the shim are trusted only as far as the shim's own code guarantees (it is
//! part of the test-bed); values from the dext are checked.

// These functions are called only by the test-bed's own shim (shim/src/shim.cpp), whose
// pointers are valid by construction; they are not a public API.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, c_void, CStr};

use dkraid_core::abi::dk_scsi_user_parallel_response;
use dkraid_core::IOReturn;

use crate::kernel;
use crate::pci;
use crate::sched;
use crate::trace::LogLine;
use crate::world::{self, with_world};

pub type Obj = *mut c_void;

/// `DkSimQueueBinding` / `DkSimClassInfo` (shim/include/dksim/runtime.h).
#[repr(C)]
#[derive(Debug)]
pub struct DkSimQueueBinding {
    pub method: *const c_char,
    pub queue: *const c_char,
}

#[repr(C)]
#[derive(Debug)]
pub struct DkSimClassInfo {
    pub name: *const c_char,
    pub superclass: *const c_char,
    pub create: unsafe extern "C" fn() -> Obj,
    pub queue_bindings: *const DkSimQueueBinding,
}

extern "C" {
    pub fn dksim_object_release(object: Obj);
    pub fn dksim_pci_device_new(device: u64) -> Obj;
    pub fn dksim_kernel_action_new(handle: u64) -> Obj;
    pub fn dksim_action_kernel_handle(action: Obj) -> u64;
    pub fn dksim_action_invoke(action: Obj, args: *const u64);
    pub fn dksim_live_objects() -> u64;
    pub fn dksim_invoke_Start(object: Obj, provider: Obj) -> i32;
    pub fn dksim_invoke_Stop(object: Obj, provider: Obj) -> i32;
    pub fn dksim_invoke_UserInitializeController(object: Obj) -> i32;
    pub fn dksim_invoke_NewUserClient(service: Obj, kind: u32, out_client: *mut Obj) -> i32;
    pub fn dksim_invoke_ExternalMethod(
        object: Obj,
        selector: u64,
        completion: Obj,
        scalar_in: *const u64,
        scalar_in_count: u32,
        struct_in: *const u8,
        struct_in_length: u64,
        scalar_out: *mut u64,
        scalar_out_count: *mut u32,
        struct_out_maximum: u64,
        struct_out: *mut u8,
        struct_out_capacity: u64,
        struct_out_length: *mut u64,
    ) -> i32;
    pub fn dksim_invoke_UserReportInitiatorIdentifier(object: Obj, id: *mut u64) -> i32;
    pub fn dksim_invoke_UserReportHighestSupportedDeviceID(object: Obj, id: *mut u64) -> i32;
    pub fn dksim_invoke_UserReportMaximumTaskCount(object: Obj, count: *mut u32) -> i32;
    pub fn dksim_invoke_UserGetDMASpecification(
        object: Obj,
        max_transfer_size: *mut u64,
        alignment: *mut u32,
        address_bits: *mut u8,
        segment_type: *mut u16,
    ) -> i32;
    pub fn dksim_invoke_UserMapHBAData(object: Obj, task_id: *mut u32) -> i32;
    pub fn dksim_invoke_UserMapBundledParallelTaskCommandAndResponseBuffers(object: Obj) -> i32;
    pub fn dksim_invoke_UserStartController(object: Obj) -> i32;
    pub fn dksim_invoke_UserDoesHBAPerformDeviceManagement(object: Obj, result: *mut bool) -> i32;
    pub fn dksim_invoke_UserInitializeTargetForID(object: Obj, target: u64) -> i32;
    pub fn dksim_invoke_UserDoesHBASupportMultiPathing(object: Obj, result: *mut bool) -> i32;
    pub fn dksim_invoke_UserReportHBAHighestLogicalUnitNumber(object: Obj, value: *mut u64) -> i32;
    pub fn dksim_invoke_UserDoesHBAPerformAutoSense(object: Obj, result: *mut bool) -> i32;
    pub fn dksim_invoke_UserProcessParallelTask(
        object: Obj,
        task: *const c_void,
        response: *mut u32,
        completion: Obj,
    ) -> i32;
    /// `User<function>Request` (UserAbortTaskRequest, …) by SAM-2 function number (1 ABORT
    /// TASK, 2 ABORT TASK SET, 3 CLEAR ACA, 4 CLEAR TASK SET, 5 LUN RESET, 6 TARGET RESET).
    pub fn dksim_invoke_TaskManagement(
        object: Obj,
        function: u32,
        target: u64,
        lun: u64,
        tag: u64,
        response: *mut u32,
    ) -> i32;
    /// The C++ global `IOVMPageSize` (DriverKit/IOLib.h).
    pub static mut IOVMPageSize: u64;
}

/// A C string from the shim, or "" for NULL.
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string that outlives the returned borrow.
unsafe fn cstr<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        return "";
    }
    // SAFETY: promised by the caller.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("<not UTF-8>")
}

const OK: i32 = 0;

// ------------------------------------------------------------------ scheduling, logging --

#[no_mangle]
pub extern "C" fn dksim_enter(call: *const c_char) {
    // A scheduling point. The call name is interned by the scheduler's watchdog as a pointer to
    // a static string: the shim only passes string literals.
    // SAFETY: the shim passes string literals.
    let name: &'static str = unsafe { cstr(call) };
    sched::yield_now(name);
}

#[no_mangle]
pub extern "C" fn dksim_sleep_ns(ns: u64) {
    sched::sleep_ns(ns);
}

#[no_mangle]
pub extern "C" fn dksim_now_ns() -> u64 {
    sched::now_ns()
}

/// `mach_absolute_time()`: virtual time in the simulated Mac's ticks.
#[no_mangle]
pub extern "C" fn dksim_mach_absolute_time() -> u64 {
    let timebase = with_world(|w| w.timebase);
    timebase.ns_to_ticks(sched::now_ns())
}

/// `mach_timebase_info()`: the tick, as numer/denom nanoseconds.
#[no_mangle]
pub extern "C" fn dksim_mach_timebase_info(numer: *mut u32, denom: *mut u32) -> i32 {
    if numer.is_null() || denom.is_null() {
        return IOReturn::kIOReturnBadArgument.0;
    }
    let timebase = with_world(|w| {
        w.timebase_asked = true;
        w.timebase
    });
    // SAFETY: both pointers were checked non-NULL; the shim passes the fields of the caller's
    // mach_timebase_info struct.
    unsafe {
        *numer = timebase.numer;
        *denom = timebase.denom;
    }
    OK
}

#[no_mangle]
pub extern "C" fn dksim_page_size() -> u64 {
    with_world(|w| w.memory.page_size)
}

#[no_mangle]
pub extern "C" fn dksim_log(level: i32, message: *const c_char, length: usize) {
    // SAFETY: the shim passes a buffer of `length` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(message.cast::<u8>(), length) };
    let text = String::from_utf8_lossy(bytes).trim_end().to_string();
    let queue = world::current_queue_name();
    let now = sched::now_ns();
    with_world(|w| {
        w.logs.push(LogLine {
            time_ns: now,
            queue,
            level: if level == 1 { "error" } else { "default" },
            message: text,
        })
    });
}

// ------------------------------------------------------------------- queues, services --

#[no_mangle]
pub extern "C" fn dksim_queue_create(name: *const c_char, _options: u64, out: *mut u64) -> i32 {
    // SAFETY: the shim passes the dext's name string.
    let name = unsafe { cstr(name) }.to_string();
    if name.is_empty() || name.len() > 64 {
        return IOReturn::kIOReturnBadArgument.0;
    }
    let id = world::create_queue(&name);
    // SAFETY: the shim passes a valid out-pointer.
    unsafe { *out = id };
    OK
}

#[no_mangle]
pub extern "C" fn dksim_queue_release(queue: u64) {
    world::release_queue(queue);
}

#[no_mangle]
pub extern "C" fn dksim_set_dispatch_queue(service: Obj, name: *const c_char, queue: u64) -> i32 {
    // SAFETY: the shim passes the dext's name string.
    let name = unsafe { cstr(name) }.to_string();
    if let Some(r) = crate::userclient::set_dispatch_queue(service, &name, queue) {
        return r;
    }
    kernel::set_dispatch_queue(&name, queue)
}

#[no_mangle]
pub extern "C" fn dksim_copy_dispatch_queue(_s: Obj, _n: *const c_char, _q: *mut u64) -> i32 {
    IOReturn::kIOReturnUnsupported.0
}

#[no_mangle]
pub extern "C" fn dksim_property_count(_service: Obj) -> u32 {
    with_world(|w| w.properties.len() as u32)
}

/// `DKSIM_PROPERTY_*` (shim/include/dksim/runtime.h).
pub const DKSIM_PROPERTY_STRING: u32 = 0;
pub const DKSIM_PROPERTY_NUMBER: u32 = 1;
pub const DKSIM_PROPERTY_BOOLEAN: u32 = 2;

#[no_mangle]
pub extern "C" fn dksim_property_at(
    _service: Obj,
    index: u32,
    key: *mut *const c_char,
    kind: *mut u32,
    string: *mut *const c_char,
    number: *mut u64,
) {
    with_world(|w| {
        if let Some(p) = w.properties.get(index as usize) {
            let (k, n) = match &p.value {
                world::Property::String(_) => (DKSIM_PROPERTY_STRING, 0),
                world::Property::Number(n) => (DKSIM_PROPERTY_NUMBER, *n),
                world::Property::Boolean(b) => (DKSIM_PROPERTY_BOOLEAN, u64::from(*b)),
            };
            // SAFETY: the shim passes valid out-pointers; the strings live in the world for
            // the whole run.
            unsafe {
                *key = p.key.as_ptr();
                *kind = k;
                *string = p.c_string.as_ptr();
                *number = n;
            }
        }
    });
}

#[no_mangle]
pub extern "C" fn dksim_super_start(service: Obj, provider: Obj) -> i32 {
    // A user client's superclass start (IOUserClient) has nothing of the SCSI family's.
    if crate::userclient::is_client(service) {
        return OK;
    }
    kernel::family_start(service, provider)
}

#[no_mangle]
pub extern "C" fn dksim_super_stop(_service: Obj, _provider: Obj) -> i32 {
    OK
}

#[no_mangle]
pub extern "C" fn dksim_register_service(_service: Obj) -> i32 {
    OK
}

// ---------------------------------------------------------------- SCSI parallel family --

#[no_mangle]
pub extern "C" fn dksim_report_hba_constraints(
    _service: Obj,
    present: u32,
    values: *const u64,
) -> i32 {
    // SAFETY: the shim passes an array of 7.
    let values = unsafe { std::slice::from_raw_parts(values, 7) };
    with_world(|w| {
        w.family.constraints_reported = true;
        w.family.constraints_present = present;
        w.family.constraints.copy_from_slice(values);
    });
    OK
}

#[no_mangle]
pub extern "C" fn dksim_create_target(_service: Obj, target: u64) -> i32 {
    kernel::create_target(target)
}

#[no_mangle]
pub extern "C" fn dksim_destroy_target(_service: Obj, target: u64) -> i32 {
    // The target's disk goes with it (macOS terminates the IOMedia and unmounts).
    with_world(|w| {
        w.family.targets.remove(&target);
        for d in w.disks.iter_mut().filter(|d| d.target == target) {
            d.attached = false;
        }
    });
    OK
}

#[no_mangle]
pub extern "C" fn dksim_parallel_task_completion(
    _service: Obj,
    action: Obj,
    response: *const c_void,
) {
    // SAFETY: the shim passes a pointer to a SCSIUserParallelResponse (384 bytes, the layout
    // of dk_scsi_user_parallel_response, asserted on both sides).
    let response =
        unsafe { std::ptr::read_unaligned(response.cast::<dk_scsi_user_parallel_response>()) };
    // SAFETY: `action` is an OSAction the dext holds.
    let handle = unsafe { dksim_action_kernel_handle(action) };
    crate::tasks::task_completion(handle, &response);
}

// ---------------------------------------------------------------------- timers --

#[no_mangle]
pub extern "C" fn dksim_timer_create(queue: u64, out: *mut u64) -> i32 {
    let id = kernel::timer_create(queue);
    // SAFETY: the shim passes a valid out-pointer.
    unsafe { *out = id };
    OK
}

#[no_mangle]
pub extern "C" fn dksim_timer_wake_at(timer: u64, action: Obj, clock: u64, deadline: u64) -> i32 {
    kernel::timer_wake_at(timer, action as usize, clock, deadline)
}

#[no_mangle]
pub extern "C" fn dksim_timer_cancel(timer: u64) {
    kernel::timer_cancel(timer);
}

#[no_mangle]
pub extern "C" fn dksim_timer_set_enable(timer: u64, enable: bool) -> i32 {
    kernel::timer_set_enable(timer, enable)
}

// ------------------------------------------------------------------- memory, DMA --

#[no_mangle]
pub extern "C" fn dksim_buffer_create(
    options: u64,
    capacity: u64,
    alignment: u64,
    out: *mut u64,
) -> i32 {
    match with_world(|w| w.memory.create_buffer(options, capacity, alignment)) {
        Ok(h) => {
            // SAFETY: the shim passes a valid out-pointer.
            unsafe { *out = h };
            OK
        }
        Err(e) => e.0,
    }
}

#[no_mangle]
pub extern "C" fn dksim_buffer_set_length(buffer: u64, length: u64) -> i32 {
    match with_world(|w| w.memory.set_length(buffer, length)) {
        Ok(()) => OK,
        Err(e) => e.0,
    }
}

#[no_mangle]
pub extern "C" fn dksim_buffer_get_length(buffer: u64, out: *mut u64) -> i32 {
    match with_world(|w| w.memory.buffer(buffer).map(|b| b.length)) {
        Some(len) => {
            // SAFETY: the shim passes a valid out-pointer.
            unsafe { *out = len };
            OK
        }
        None => IOReturn::kIOReturnBadArgument.0,
    }
}

#[no_mangle]
pub extern "C" fn dksim_buffer_address_range(buffer: u64, range: *mut [u64; 2]) -> i32 {
    match with_world(|w| w.memory.buffer(buffer).map(|b| (b.cpu_address(), b.length))) {
        Some((address, length)) => {
            // SAFETY: the shim passes an IOAddressSegment (two u64).
            unsafe { *range = [address, length] };
            OK
        }
        None => IOReturn::kIOReturnBadArgument.0,
    }
}

#[no_mangle]
pub extern "C" fn dksim_buffer_release(buffer: u64) {
    with_world(|w| w.memory.release_buffer(buffer));
}

#[no_mangle]
pub extern "C" fn dksim_dma_create(
    _device: Obj,
    _options: u64,
    max_address_bits: u64,
    out: *mut u64,
) -> i32 {
    let h = with_world(|w| w.memory.create_command(max_address_bits));
    // SAFETY: the shim passes a valid out-pointer.
    unsafe { *out = h };
    OK
}

#[no_mangle]
pub extern "C" fn dksim_dma_prepare(
    command: u64,
    _options: u64,
    buffer: u64,
    offset: u64,
    length: u64,
    flags: *mut u64,
    segments_count: *mut u32,
    segments: *mut [u64; 2],
) -> i32 {
    // SAFETY: the shim passes a valid in/out count.
    let capacity = unsafe { *segments_count };
    if capacity == 0 {
        return IOReturn::kIOReturnBadArgument.0;
    }
    let prepared = match with_world(|w| w.memory.prepare(command, buffer, offset, length)) {
        Ok(p) => p,
        Err(e) => return e.0,
    };
    kernel::check_dma_frame(&prepared);
    // SAFETY: the shim passes arrays of at least `capacity` (≥ 1) segments and valid pointers.
    unsafe {
        *segments = [prepared.mapping.iova, prepared.mapping.length];
        *segments_count = 1;
        if !flags.is_null() {
            *flags = 0;
        }
    }
    OK
}

#[no_mangle]
pub extern "C" fn dksim_dma_complete(command: u64, _options: u64) -> i32 {
    match with_world(|w| w.memory.complete(command)) {
        Ok(()) => OK,
        Err(e) => e.0,
    }
}

#[no_mangle]
pub extern "C" fn dksim_dma_release(command: u64) {
    with_world(|w| w.memory.release_command(command));
}

// ------------------------------------------------------------------------------ PCI --

#[no_mangle]
pub extern "C" fn dksim_pci_open(_device: u64, _client: Obj) -> i32 {
    with_world(|w| {
        if w.pci_open {
            IOReturn::kIOReturnExclusiveAccess.0
        } else {
            w.pci_open = true;
            OK
        }
    })
}

#[no_mangle]
pub extern "C" fn dksim_pci_close(_device: u64, _client: Obj) {
    with_world(|w| w.pci_open = false);
}

#[no_mangle]
pub extern "C" fn dksim_pci_bar_info(
    _device: u64,
    bar: u8,
    memory_index: *mut u8,
    size: *mut u64,
    kind: *mut u8,
) -> i32 {
    // BAR0: the controller's 64 KiB register window.
    if bar != 0 {
        return IOReturn::kIOReturnNotFound.0;
    }
    // SAFETY: the shim passes valid out-pointers.
    unsafe {
        *memory_index = 0;
        *size = 64 * 1024;
        *kind = 0;
    }
    OK
}

#[no_mangle]
pub extern "C" fn dksim_pci_read(_device: u64, memory_index: u8, offset: u64, width: u32) -> u64 {
    if memory_index == pci::CONFIG_SPACE_INDEX {
        // Configuration space (ConfigurationRead16/32): the kernel answers from the device's
        // identity; reading it touches no BAR, so it is allowed in every stage.
        return with_world(|w| w.pci_device.config_read(offset, width));
    }
    // BAR0 (memory index 0) is the controller's register window in stages single-io and full.
    kernel::hardware_access(None, memory_index, offset, width)
}

#[no_mangle]
pub extern "C" fn dksim_pci_write(
    _device: u64,
    memory_index: u8,
    offset: u64,
    width: u32,
    value: u64,
) {
    kernel::hardware_access(Some(value), memory_index, offset, width);
}

// ------------------------------------------------------------------------ user clients --

#[no_mangle]
pub extern "C" fn dksim_service_create(_service: Obj, key: *const c_char, out: *mut Obj) -> i32 {
    if key.is_null() || out.is_null() {
        return IOReturn::kIOReturnBadArgument.0;
    }
    // SAFETY: the shim passes the dext's NUL-terminated key.
    let key = unsafe { CStr::from_ptr(key) }.to_string_lossy().into_owned();
    match crate::userclient::service_create(&key) {
        Ok(object) => {
            // SAFETY: `out` is the shim's out-pointer, checked non-null above.
            unsafe { *out = object };
            OK
        }
        Err(r) => r,
    }
}

#[no_mangle]
pub extern "C" fn dksim_async_completion(
    client: Obj,
    action: Obj,
    status: i32,
    args: *const u64,
    count: u32,
) {
    // SAFETY: `action` is the OSAction the dext passes, a live object it holds.
    let handle = unsafe { dksim_action_kernel_handle(action) };
    let args = if args.is_null() || count == 0 {
        &[][..]
    } else {
        // SAFETY: the dext passes an IOUserClientAsyncArgumentsArray (16 words); `count` is
        // its claim, read no further than the array.
        unsafe { std::slice::from_raw_parts(args, (count as usize).min(16)) }
    };
    if count as usize > 16 {
        let mut long = args.to_vec();
        long.resize(count as usize, 0);
        crate::userclient::async_completion(client, handle, status, &long);
        return;
    }
    crate::userclient::async_completion(client, handle, status, args);
}

#[no_mangle]
pub extern "C" fn dksim_client_entitlement_count(client: Obj) -> u32 {
    crate::userclient::entitlement_count(client)
}

#[no_mangle]
pub extern "C" fn dksim_client_entitlement_at(client: Obj, index: u32) -> *const c_char {
    crate::userclient::entitlement_at(client, index)
}

#[no_mangle]
pub extern "C" fn dksim_external_method_refused(
    _client: Obj,
    selector: u64,
    check: *const c_char,
    expected: u64,
    got: u64,
) {
    // SAFETY: the shim passes string literals.
    let check = unsafe { cstr(check) };
    crate::userclient::external_method_refused(selector, check, expected, got);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::World;

    #[test]
    fn config_space_reads_answer_the_ids_and_touch_no_hardware() {
        World::install(World::new(dkraid_core::Stage::Pipeline, 16384));
        assert_eq!(dksim_pci_read(1, pci::CONFIG_SPACE_INDEX, 0x00, 16), 0x1AF4);
        assert_eq!(dksim_pci_read(1, pci::CONFIG_SPACE_INDEX, 0x02, 16), 0x10F0);
        assert_eq!(dksim_pci_read(1, pci::CONFIG_SPACE_INDEX, 0x2C, 32), 0x10F0_1AF4);
        assert!(with_world(|w| w.violations.is_empty()), "config space is not a BAR");
        // A BAR read in the pipeline stage is still caught.
        dksim_pci_read(1, 0, 0x10, 32);
        let rules = with_world(|w| w.violations.iter().map(|v| v.rule).collect::<Vec<_>>());
        assert_eq!(rules, ["HardwareTouchedInPipelineStage"]);
        World::take();
    }
}
