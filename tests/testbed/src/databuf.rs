//! The task data buffers the kernel hands the dext through `UserGetDataBuffer`, and mappings of
//! buffers into the dext (`IOMemoryDescriptor::CreateMapping`).

// Called only by the test-bed's own shim, whose pointers are valid by construction.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use dkraid_core::IOReturn;

use crate::runtime::Obj;
use crate::world::{violation, with_world};

/// `UserGetDataBuffer(target, task)`: legal only inside `UserProcessParallelTask` for that
/// task (DRIVERKIT.md §5).
#[no_mangle]
pub extern "C" fn dksim_get_data_buffer(
    _service: Obj,
    target: u64,
    task: u64,
    out: *mut u64,
) -> i32 {
    let inside = with_world(|w| {
        w.call_stacks
            .get(&crate::sched::current())
            .is_some_and(|s| s.iter().any(|c| c == "UserProcessParallelTask"))
    });
    if !inside {
        violation(
            "DataBufferOutsideProcessTask",
            "DRIVERKIT.md §5",
            format!("target={target} task={task}"),
            "UserGetDataBuffer is legal only inside UserProcessParallelTask".into(),
        );
        return IOReturn::kIOReturnNotPermitted.0;
    }
    let buffer = with_world(|w| {
        w.family
            .pending
            .values()
            .find(|p| p.task_id == task && p.target == target)
            .and_then(|p| p.data_buffer)
    });
    match buffer {
        Some(handle) => {
            // SAFETY: the shim passes a valid out-pointer.
            unsafe { *out = handle };
            0
        }
        None => IOReturn::kIOReturnNotFound.0,
    }
}

/// `CreateMapping(0, 0, offset, length)`: the dext's view of `[offset, offset + length)`
/// (length 0 = to the end).
#[no_mangle]
pub extern "C" fn dksim_buffer_map(
    buffer: u64,
    offset: u64,
    length: u64,
    out_address: *mut u64,
    out_length: *mut u64,
) -> i32 {
    let found = with_world(|w| w.memory.buffer(buffer).map(|b| (b.cpu_address(), b.length)));
    let Some((address, buffer_length)) = found else {
        return IOReturn::kIOReturnBadArgument.0;
    };
    let length = if length == 0 { buffer_length.saturating_sub(offset) } else { length };
    if offset.checked_add(length).is_none_or(|end| end > buffer_length) {
        return IOReturn::kIOReturnBadArgument.0;
    }
    // SAFETY: the shim passes valid out-pointers.
    unsafe {
        *out_address = address + offset;
        *out_length = length;
    }
    0
}
