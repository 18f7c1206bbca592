//! Where a task completes: the kernel's side of one SCSI task — a task ID from the pool the dext
//! mapped, a data buffer mapped through the IOMMU, `UserProcessParallelTask` on its queue, and
//! the completion the dext sends back, checked against DRIVERKIT.md §5 (response version, task
//! ID, exactly once).

use dkraid_core::abi::{dk_scsi_user_parallel_response, dk_scsi_user_parallel_task};

use crate::runtime::{self, Obj};
use crate::sched::{self, WaitFor};
use crate::world::{dext_call, ioreturn_name, set_last_result, violation, with_world, PendingTask};

const SECTION_IO: &str = "DRIVERKIT.md §5";

/// Which way the data goes (fTransferDirection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    None,
    /// Host → device (1).
    Out,
    /// Device → host (2).
    In,
}

impl Direction {
    const fn abi(self) -> u8 {
        match self {
            Direction::None => 0,
            Direction::Out => 1,
            Direction::In => 2,
        }
    }
}

/// One command from a kernel client.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub target: u64,
    pub lun: u64,
    pub cdb: &'a [u8],
    pub direction: Direction,
    /// fRequestedTransferCount.
    pub length: u64,
    /// The bytes to send, for `Direction::Out` (shorter is zero-padded).
    pub data_out: &'a [u8],
}

/// How a command ended, as the kernel sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `None` when the dext did not accept the task (a delivery failure).
    pub service_response: Option<u32>,
    pub status: u32,
    pub bytes: u64,
    pub sense: Vec<u8>,
    /// Device → host data, `bytes` long.
    pub data: Vec<u8>,
}

impl Outcome {
    pub fn good(&self) -> bool {
        self.service_response == Some(2) && self.status == 0
    }

    /// (sense key, ASC, ASCQ) of fixed-format sense, if any.
    pub fn sense_code(&self) -> Option<(u8, u8, u8)> {
        if self.sense.len() >= 14 && self.sense[0] & 0x7F == 0x70 {
            Some((self.sense[2] & 0x0F, self.sense[12], self.sense[13]))
        } else {
            None
        }
    }
}

fn controller() -> Obj {
    with_world(|w| w.family.controller as Obj)
}

/// A free task ID, waiting for one if all are in use.
fn take_task_id() -> Option<u32> {
    loop {
        let got = with_world(|w| {
            if w.family.task_ids.is_empty() {
                return Err(());
            }
            let id =
                w.family.task_ids.iter().copied().find(|id| !w.family.tasks_in_use.contains(id));
            if let Some(id) = id {
                w.family.tasks_in_use.insert(id);
            } else {
                w.family.task_waiters.push(sched::current());
            }
            Ok(id)
        });
        match got {
            Err(()) => return None,
            Ok(Some(id)) => return Some(id),
            Ok(None) => {
                sched::block("UserProcessParallelTask", WaitFor::Other("a free task".into()))
            }
        }
    }
}

fn release_task_id(id: u32) {
    let waiters = with_world(|w| {
        w.family.tasks_in_use.remove(&id);
        std::mem::take(&mut w.family.task_waiters)
    });
    for t in waiters {
        sched::wake(t);
    }
}

/// A kernel data buffer for the task: created, mapped through the IOMMU; its handle and IOVA.
fn map_data(length: u64, data_out: &[u8]) -> Option<(u64, u64, u64)> {
    with_world(|w| {
        let buffer = w.memory.create_buffer(3, length, 64).ok()?;
        w.memory.set_length(buffer, length).ok()?;
        if !data_out.is_empty() {
            w.memory.fill(buffer, data_out);
        }
        let command = w.memory.create_command(64);
        let prepared = w.memory.prepare(command, buffer, 0, 0).ok()?;
        Some((buffer, command, prepared.mapping.iova))
    })
}

/// Send one task to the dext and wait for its completion.
pub fn run(req: &Request<'_>) -> Outcome {
    let not_accepted = Outcome {
        service_response: None,
        status: 0,
        bytes: 0,
        sense: Vec::new(),
        data: Vec::new(),
    };
    let Some(task_id) = take_task_id() else {
        return not_accepted;
    };
    let handle = with_world(|w| {
        w.family.next_action += 1;
        w.family.next_action
    });
    let mapped = if req.direction != Direction::None && req.length > 0 {
        map_data(req.length, req.data_out)
    } else {
        None
    };
    let cdb_len = req.cdb.len().min(16);
    let mut task = dk_scsi_user_parallel_task {
        version: 1,
        fTargetID: req.target,
        fControllerTaskIdentifier: u64::from(task_id),
        fRequestedTransferCount: if mapped.is_some() { req.length } else { 0 },
        fBufferIOVMAddr: mapped.map_or(0, |(_, _, iova)| iova),
        fTimeoutInMilliSec: 30_000,
        // The family's tag for the task (what an ABORT TASK names): unique, never 0.
        fTaskTagIdentifier: handle,
        fCommandSize: cdb_len as u8,
        fTransferDirection: if mapped.is_some() { req.direction.abi() } else { 0 },
        ..Default::default()
    };
    task.fCommandDescriptorBlock[..cdb_len].copy_from_slice(&req.cdb[..cdb_len]);
    // Single-level LUN, peripheral device addressing.
    task.fLogicalUnitBytes[1] = (req.lun & 0xFF) as u8;
    let waiter = sched::current();
    with_world(|w| {
        w.family.pending.insert(
            handle,
            PendingTask {
                task_id: u64::from(task_id),
                target: req.target,
                waiter,
                response: None,
                dropped: false,
                data_buffer: mapped.map(|(b, _, _)| b),
            },
        )
    });
    // SAFETY: creating a kernel-side OSAction has no preconditions.
    let action = unsafe { runtime::dksim_kernel_action_new(handle) } as usize;
    let object = controller() as usize;
    let (r, service_response) = dext_call("UserProcessParallelTask", move || {
        let mut service_response = u32::MAX;
        // SAFETY: live controller and action; the task outlives the call.
        let r = unsafe {
            runtime::dksim_invoke_UserProcessParallelTask(
                object as Obj,
                (&task as *const dk_scsi_user_parallel_task).cast(),
                &mut service_response,
                action as Obj,
            )
        };
        (r, service_response)
    });
    if r != 0 {
        set_last_result("UserProcessParallelTask", ioreturn_name(r));
    }
    let response = if r != 0 || service_response != 0 {
        // Not accepted: completed at once with that service response.
        reused_too_soon(u64::from(task_id));
        None
    } else {
        loop {
            let done = with_world(|w| w.family.pending.get(&handle).and_then(|p| p.response));
            if let Some(resp) = done {
                break Some(resp);
            }
            sched::block(
                "UserProcessParallelTask",
                WaitFor::Other(format!("the completion of task {task_id} (target {})", req.target)),
            );
        }
    };
    let data = with_world(|w| {
        w.family.pending.remove(&handle);
        let mut data = Vec::new();
        if let Some((buffer, command, _)) = mapped {
            if let (Some(resp), Direction::In) = (&response, req.direction) {
                let n = resp.fBytesTransferred.min(req.length) as usize;
                data = w.memory.contents(buffer, n);
            }
            let _ = w.memory.complete(command);
            w.memory.release_command(command);
            w.memory.release_buffer(buffer);
        }
        data
    });
    release_task_id(task_id);
    // SAFETY: the kernel's own reference; the dext retained its own if it needed one.
    unsafe { runtime::dksim_object_release(action as Obj) };
    if r == 0 {
        let what = command_name(req.cdb);
        let result = match &response {
            Some(resp) if resp.fCompletionStatus == 0 => {
                format!("{what}: GOOD, {} bytes", resp.fBytesTransferred)
            }
            Some(resp) if resp.fSenseLength >= 14 => format!(
                "{what}: status {:#04x}, sense {:X}/{:02X}/{:02X}",
                resp.fCompletionStatus,
                resp.fSenseBuffer[2] & 0x0F,
                resp.fSenseBuffer[12],
                resp.fSenseBuffer[13]
            ),
            Some(resp) => format!(
                "{what}: service response {}, status {:#04x}",
                resp.fServiceResponse, resp.fCompletionStatus
            ),
            None => format!("{what}: not accepted (service response {service_response})"),
        };
        set_last_result("UserProcessParallelTask", result);
    }
    match response {
        Some(resp) => {
            let sense_len = usize::from(resp.fSenseLength).min(resp.fSenseBuffer.len());
            Outcome {
                service_response: Some(resp.fServiceResponse),
                status: resp.fCompletionStatus,
                bytes: resp.fBytesTransferred,
                sense: resp.fSenseBuffer[..sense_len].to_vec(),
                data,
            }
        }
        None => Outcome { service_response: Some(service_response), ..not_accepted },
    }
}

/// The command's name for the timeline.
pub fn command_name(cdb: &[u8]) -> String {
    let name = match cdb.first() {
        Some(0x00) => "TEST UNIT READY",
        Some(0x03) => "REQUEST SENSE",
        Some(0x08) => "READ(6)",
        Some(0x0A) => "WRITE(6)",
        Some(0x12) if cdb.get(1).is_some_and(|b| b & 1 != 0) => "INQUIRY VPD",
        Some(0x12) => "INQUIRY",
        Some(0x15) => "MODE SELECT(6)",
        Some(0x1A) => "MODE SENSE(6)",
        Some(0x1B) => "START STOP UNIT",
        Some(0x1E) => "PREVENT ALLOW MEDIUM REMOVAL",
        Some(0x25) => "READ CAPACITY(10)",
        Some(0x28) => "READ(10)",
        Some(0x2A) => "WRITE(10)",
        Some(0x2F) => "VERIFY(10)",
        Some(0x35) => "SYNCHRONIZE CACHE(10)",
        Some(0x42) => "UNMAP",
        Some(0x55) => "MODE SELECT(10)",
        Some(0x5A) => "MODE SENSE(10)",
        Some(0x88) => "READ(16)",
        Some(0x8A) => "WRITE(16)",
        Some(0x9E) => "READ CAPACITY(16)",
        Some(0xA0) => "REPORT LUNS",
        Some(0xA8) => "READ(12)",
        Some(0xAA) => "WRITE(12)",
        _ => return format!("opcode {:#04x}", cdb.first().copied().unwrap_or(0)),
    };
    name.to_string()
}

/// `ParallelTaskCompletion(action, response)`, dext → kernel (DRIVERKIT.md §5).
/// A controller that reported autosense must deliver sense with every CHECK CONDITION: the
/// disk driver takes `fSenseBuffer` as the sense data and never sends REQUEST SENSE.
fn check_autosense(task_id: u64, response: &dk_scsi_user_parallel_response) {
    const TASK_COMPLETE: u32 = 2;
    const CHECK_CONDITION: u32 = 0x02;
    if !with_world(|w| w.family.autosense)
        || response.fServiceResponse != TASK_COMPLETE
        || response.fCompletionStatus != CHECK_CONDITION
    {
        return;
    }
    let length = usize::from(response.fSenseLength).min(response.fSenseBuffer.len());
    let code = response.fSenseBuffer[0] & 0x7F;
    // Fixed format (70h/71h) needs 8 bytes before ADDITIONAL SENSE LENGTH counts; descriptor
    // format (72h/73h) 8 as well.
    let valid = length >= 8 && matches!(code, 0x70..=0x73);
    if !valid {
        violation(
            "CheckConditionWithoutSense",
            SECTION_IO,
            format!("task={task_id} sense_length={length} response_code=0x{code:02x}"),
            format!(
                "task {task_id} completed CHECK CONDITION with {length} bytes of sense (response \
                 code 0x{code:02x}), but the controller reported UserDoesHBAPerformAutoSense = \
                 true: the disk driver reads fSenseBuffer as the sense data and never asks with \
                 REQUEST SENSE. Fill fSenseBuffer/fSenseLength with fixed-format sense."
            ),
        );
    }
}

pub fn task_completion(handle: u64, response: &dk_scsi_user_parallel_response) {
    sched::advance_ns(crate::world::IPC_CROSSING_NS);
    let pending = with_world(|w| {
        w.family.pending.get(&handle).map(|p| (p.task_id, p.response.is_some(), p.waiter))
    });
    let Some((task_id, already, waiter)) = pending else {
        violation(
            "CompletionOfUnknownTask",
            SECTION_IO,
            format!("task={} action={handle}", response.fControllerTaskIdentifier),
            "ParallelTaskCompletion for an action the kernel is not waiting on: a task completed \
             twice, or after it was aborted"
                .into(),
        );
        return;
    };
    if response.version != 1 {
        violation(
            "BadResponseVersion",
            SECTION_IO,
            format!("task={task_id} version={}", response.version),
            format!(
                "the completion of task {task_id} has version {}; the kernel accepts only \
                 kScsiUserParallelTaskResponseCurrentVersion1 (1) and silently drops the rest, so \
                 the I/O never completes",
                response.version
            ),
        );
        with_world(|w| {
            if let Some(p) = w.family.pending.get_mut(&handle) {
                p.dropped = true;
            }
        });
        return;
    }
    if already {
        violation(
            "DoubleCompletion",
            SECTION_IO,
            format!("task={task_id}"),
            format!("task {task_id} was completed twice; each task completes exactly once"),
        );
        return;
    }
    if response.fControllerTaskIdentifier != task_id {
        violation(
            "CompletionTaskIdMismatch",
            SECTION_IO,
            format!("expected={task_id} got={}", response.fControllerTaskIdentifier),
            "the response's fControllerTaskIdentifier is not the task's".into(),
        );
    }
    check_autosense(task_id, response);
    let dispatch = crate::world::current_dispatch();
    with_world(|w| {
        w.family.completions += 1;
        if let Some(p) = w.family.pending.get_mut(&handle) {
            p.response = Some(*response);
        }
        if let Some(d) = dispatch {
            w.family.completed_in.insert(task_id, d);
        }
    });
    sched::wake(waiter);
}

/// A task refused while the dext dispatch that completed the ID's previous task is still
/// running: the dext still counted the ID as its own after `ParallelTaskCompletion`, which
/// hands it back to the kernel at once (DRIVERKIT.md §5).
fn reused_too_soon(task_id: u64) {
    let Some(d) = with_world(|w| w.family.completed_in.get(&task_id).copied()) else { return };
    if crate::world::dispatch_running(d) {
        violation(
            "TaskIdReusedTooSoon",
            SECTION_IO,
            format!("task={task_id}"),
            format!(
                "the dext refused task {task_id} while the call that completed the ID's previous \
                 task was still running: after ParallelTaskCompletion the ID is the kernel's, and \
                 the next task with it may arrive at once, from any queue; free the task's state \
                 before completing it"
            ),
        );
    }
}

/// The SAM-2 task-management function names, by the number `dksim_invoke_TaskManagement`
/// takes.
pub fn tmf_method(function: u32) -> &'static str {
    match function {
        1 => "UserAbortTaskRequest",
        2 => "UserAbortTaskSetRequest",
        3 => "UserClearACARequest",
        4 => "UserClearTaskSetRequest",
        5 => "UserLogicalUnitResetRequest",
        _ => "UserTargetResetRequest",
    }
}

/// The kernel sends a task-management request (from a simulated thread) and returns the
/// service response the dext gave, or the IOReturn it failed with.
pub fn task_management(function: u32, target: u64, lun: u64, tag: u64) -> Result<u32, i32> {
    let object = controller() as usize;
    let method = tmf_method(function);
    let (r, response) = dext_call(method, move || {
        let mut response = u32::MAX;
        // SAFETY: a live controller; `response` outlives the call.
        let r = unsafe {
            runtime::dksim_invoke_TaskManagement(
                object as Obj,
                function,
                target,
                lun,
                tag,
                &mut response,
            )
        };
        (r, response)
    });
    set_last_result(
        method,
        if r == 0 { format!("service response {response}") } else { ioreturn_name(r) },
    );
    if r == 0 {
        Ok(response)
    } else {
        Err(r)
    }
}

/// The newest task the kernel is still waiting for: (tag, target).
pub fn newest_pending() -> Option<(u64, u64)> {
    with_world(|w| {
        w.family
            .pending
            .iter()
            .filter(|(_, p)| p.response.is_none() && !p.dropped)
            .map(|(&handle, p)| (handle, p.target))
            .max()
    })
}

/// How long a host keeps retrying a command that fails for a transient reason, in virtual
/// time: long enough to ride out a controller reset after a 30 s task timeout.
pub const RETRY_BUDGET_NS: u64 = 120_000_000_000;

/// The first back-off; it doubles per retry up to [`MAX_BACKOFF_NS`].
pub const FIRST_BACKOFF_NS: u64 = 1_000_000;
pub const MAX_BACKOFF_NS: u64 = 1_000_000_000;

/// The device was busy or the transport lost the task, as macOS's storage stack retries
/// whatever the command: BUSY, TASK SET FULL, or a task timeout, protocol timeout, device not
/// responding or delivery failure (`kSCSITaskStatus_*` with SERVICE_DELIVERY_OR_TARGET_FAILURE).
pub fn transport_transient(o: &Outcome) -> bool {
    match o.service_response {
        Some(2) => matches!(o.status, 0x08 | 0x28),
        Some(1) => matches!(o.status, 0x01 | 0x02 | 0x03 | 0x05),
        _ => false,
    }
}

/// [`run`], retried while `retry` says so, with a back-off doubling from [`FIRST_BACKOFF_NS`]
/// to [`MAX_BACKOFF_NS`], for at most [`RETRY_BUDGET_NS`]; the last outcome and the number of
/// retries.
pub fn run_retrying(req: &Request<'_>, retry: impl Fn(&Outcome) -> bool) -> (Outcome, u64) {
    let start = sched::now_ns();
    let mut backoff = FIRST_BACKOFF_NS;
    let mut retries = 0;
    loop {
        let o = run(req);
        if o.good() || !retry(&o) || sched::now_ns() - start >= RETRY_BUDGET_NS {
            return (o, retries);
        }
        retries += 1;
        sched::sleep_ns(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF_NS);
    }
}
