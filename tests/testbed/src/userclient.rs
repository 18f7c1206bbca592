//! The admin app's path into the dext (DRIVERKIT.md §7), modelled like every other
//! kernel→dext call: `IOServiceOpen` asks the controller's `NewUserClient` (on its Default
//! queue) for a connection and starts the client the dext made; `IOConnectCall…Method` runs the
//! client's `ExternalMethod` on the queue it registered as `IOUserClientQueueExternalMethod`
//! (its Default queue until it does); `AsyncCompletion` reaches the caller's port;
//! `IOServiceClose` stops the client and drops the kernel's reference.
//!
//! What the dext gets wrong here is a named violation: `AsyncCompletionAfterClose` (a completion
//! for a connection that is gone), `AsyncArgumentsTooMany` (more than 16 words),
//! `StructureOutputOverrun` (more output than the caller has room for), and every dispatch
//! check DriverKit refuses a call for is logged by name (`checkScalarInputCount`, …).

use std::collections::{BTreeMap, VecDeque};
use std::ffi::{c_char, CString};

use dkraid_core::IOReturn;

use crate::runtime::{self, Obj};
use crate::sched;
use crate::world::{self, violation, with_world};

const SECTION: &str = "DRIVERKIT.md §7";
/// Kernel action handles for user-client completions live above every task handle.
const ACTION_HANDLE_BASE: u64 = 1 << 62;
/// `kIOUserClientScalarArrayCountMax`, `kIOUserClientAsyncArgumentsCountMax`.
pub const MAX_SCALARS: usize = 16;
/// Structure input above this size travels as a memory descriptor.
pub const INLINE_STRUCTURE_BYTES: usize = 4096;

/// One asynchronous completion, as the caller's port receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncMessage {
    pub status: i32,
    pub args: Vec<u64>,
}

/// What an `IOConnectCall…Method` returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallReply {
    pub kern_return: i32,
    pub scalars: Vec<u64>,
    pub structure: Vec<u8>,
}

#[derive(Debug)]
struct Connection {
    /// The dext's user-client object (the kernel's reference); 0 once the connection closed.
    client: usize,
    entitlements: Vec<CString>,
    /// The queue the client registered as `IOUserClientQueueExternalMethod`.
    external_method_queue: Option<u64>,
    asyncs: VecDeque<AsyncMessage>,
}

/// Every connection of this boot.
#[derive(Debug, Default)]
pub struct Connections {
    connections: BTreeMap<u64, Connection>,
    next_id: u64,
    /// Kernel action handle → connection.
    actions: BTreeMap<u64, u64>,
    next_action: u64,
    /// The user client's class (from the build) and its `create`.
    pub class: Option<(String, usize)>,
    /// `UserClientProperties`' `IOUserClass` (None: the personality publishes no user client).
    pub properties_class: Option<String>,
}

fn connection_of_client(w: &world::World, client: Obj) -> Option<u64> {
    w.user_clients.connections.iter().find(|(_, c)| c.client == client as usize).map(|(&id, _)| id)
}

/// `IOServiceOpen(controller, task, 0, &connect)` by a process holding `entitlements`.
/// Returns the connection, or the kern_return the app would see.
pub fn service_open(entitlements: &[String]) -> Result<u64, i32> {
    let controller = with_world(|w| w.family.controller) as Obj;
    if controller.is_null() || !with_world(|w| w.family.registered) {
        // IOServiceGetMatchingService finds nothing to open.
        return Err(IOReturn::kIOReturnNotFound.0);
    }
    let (r, client) = world::dext_call("NewUserClient", move || {
        let mut client: Obj = std::ptr::null_mut();
        // SAFETY: the controller object is live while registered; `client` is this frame's.
        let r = unsafe { runtime::dksim_invoke_NewUserClient(controller, 0, &mut client) };
        (r, client as usize)
    });
    world::set_last_result("NewUserClient", world::ioreturn_name(r));
    if r != 0 {
        return Err(r);
    }
    if client == 0 {
        violation(
            "NewUserClientWithoutClient",
            SECTION,
            "result=kIOReturnSuccess client=NULL".into(),
            "NewUserClient returned success without a client: IOServiceOpen fails with \
             kIOReturnError. Create the client with Create(this, \"UserClientProperties\", ...)."
                .into(),
        );
        return Err(IOReturn::kIOReturnError.0);
    }
    let id = with_world(|w| {
        let uc = &mut w.user_clients;
        uc.next_id += 1;
        let id = uc.next_id;
        uc.connections.insert(
            id,
            Connection {
                client,
                entitlements: entitlements
                    .iter()
                    .map(|e| CString::new(e.replace('\0', "")).unwrap_or_default())
                    .collect(),
                external_method_queue: None,
                asyncs: VecDeque::new(),
            },
        );
        id
    });
    // The kernel starts the new service with the controller as its provider.
    let r = world::dext_call("Start", move || {
        // SAFETY: both objects are live: the kernel holds a reference to each.
        unsafe { runtime::dksim_invoke_Start(client as Obj, controller) }
    });
    world::set_last_result("Start", world::ioreturn_name(r));
    if r != 0 {
        close_object(id);
        return Err(r);
    }
    Ok(id)
}

/// The queue `ExternalMethod` runs on for this connection.
fn external_method_queue(id: u64) -> u64 {
    with_world(|w| {
        w.user_clients
            .connections
            .get(&id)
            .and_then(|c| c.external_method_queue)
            .unwrap_or(w.default_queue)
    })
}

/// `IOConnectCall{Scalar,Struct,Async…}Method` on connection `id`.
pub fn call(
    id: u64,
    selector: u32,
    scalars: &[u64],
    input: &[u8],
    output_capacity: u32,
    scalar_output_capacity: u16,
    asynchronous: bool,
) -> CallReply {
    let refuse = |r: IOReturn| CallReply { kern_return: r.0, ..CallReply::default() };
    let client = match with_world(|w| w.user_clients.connections.get(&id).map(|c| c.client)) {
        Some(client) if client != 0 => client,
        // A closed connection's port is dead: IOKit answers MACH_SEND_INVALID_DEST as this.
        _ => return refuse(IOReturn::kIOReturnNotOpen),
    };
    if scalars.len() > MAX_SCALARS || usize::from(scalar_output_capacity) > MAX_SCALARS {
        return refuse(IOReturn::kIOReturnBadArgument);
    }
    let action = if asynchronous {
        let handle = with_world(|w| {
            let uc = &mut w.user_clients;
            uc.next_action += 1;
            let handle = ACTION_HANDLE_BASE + uc.next_action;
            uc.actions.insert(handle, id);
            handle
        });
        // SAFETY: creates a kernel-side OSAction; the kernel's reference is dropped below.
        unsafe { runtime::dksim_kernel_action_new(handle) as usize }
    } else {
        0
    };
    let scalars = scalars.to_vec();
    let input = input.to_vec();
    let queue = external_method_queue(id);
    let reply = world::call_on_queue(queue, "ExternalMethod", true, move || {
        let mut out = [0u64; MAX_SCALARS];
        let mut out_count = u32::from(scalar_output_capacity);
        let mut structure = vec![0u8; output_capacity.min(1 << 20) as usize];
        let mut structure_len = 0u64;
        // SAFETY: the client object is live (the kernel's reference); every buffer is this
        // frame's and sized as passed.
        let r = unsafe {
            runtime::dksim_invoke_ExternalMethod(
                client as Obj,
                u64::from(selector),
                action as Obj,
                scalars.as_ptr(),
                scalars.len() as u32,
                input.as_ptr(),
                input.len() as u64,
                out.as_mut_ptr(),
                &mut out_count,
                u64::from(output_capacity),
                structure.as_mut_ptr(),
                structure.len() as u64,
                &mut structure_len,
            )
        };
        (r, out, out_count, structure, structure_len)
    });
    if action != 0 {
        // The kernel's reference: the dext retained the action if it keeps it.
        // SAFETY: created above, released once.
        unsafe { runtime::dksim_object_release(action as Obj) };
    }
    let (r, out, out_count, mut structure, structure_len) = reply;
    world::set_last_result("ExternalMethod", world::ioreturn_name(r));
    if out_count as usize > usize::from(scalar_output_capacity) {
        violation(
            "ScalarOutputOverrun",
            SECTION,
            format!("selector={selector} scalarOutputCount={out_count} capacity={scalar_output_capacity}"),
            "ExternalMethod returned more scalar outputs than the caller passed room for.".into(),
        );
        return refuse(IOReturn::kIOReturnOverrun);
    }
    if structure_len > u64::from(output_capacity) {
        violation(
            "StructureOutputOverrun",
            SECTION,
            format!(
                "selector={selector} structureOutput={structure_len} maximum={output_capacity}"
            ),
            format!(
                "ExternalMethod returned a {structure_len}-byte structureOutput but the caller's \
                 structureOutputMaximumSize is {output_capacity}: IOKit fails the call with \
                 kIOReturnOverrun. Check structureOutputMaximumSize before filling the output."
            ),
        );
        return refuse(IOReturn::kIOReturnOverrun);
    }
    structure.truncate(structure_len as usize);
    CallReply { kern_return: r, scalars: out[..out_count as usize].to_vec(), structure }
}

/// The completions queued for connection `id` (the caller's port), taken.
pub fn take_asyncs(id: u64) -> Vec<AsyncMessage> {
    with_world(|w| {
        w.user_clients
            .connections
            .get_mut(&id)
            .map(|c| c.asyncs.drain(..).collect())
            .unwrap_or_default()
    })
}

/// `IOServiceClose`: the kernel stops the client (on its Default queue) and drops its
/// reference.
pub fn service_close(id: u64) -> i32 {
    let Some(client) =
        with_world(|w| w.user_clients.connections.get(&id).map(|c| c.client).filter(|&c| c != 0))
    else {
        return IOReturn::kIOReturnNotOpen.0;
    };
    let controller = with_world(|w| w.family.controller);
    let r = world::dext_call("Stop", move || {
        // SAFETY: the kernel's reference keeps the client alive until close_object.
        unsafe { runtime::dksim_invoke_Stop(client as Obj, controller as Obj) }
    });
    world::set_last_result("Stop", world::ioreturn_name(r));
    close_object(id);
    r
}

fn close_object(id: u64) {
    let client = with_world(|w| {
        let c = w.user_clients.connections.get_mut(&id)?;
        let client = c.client;
        c.client = 0;
        c.asyncs.clear();
        Some(client)
    });
    if let Some(client) = client.filter(|&c| c != 0) {
        // SAFETY: the kernel's reference from NewUserClient, dropped once.
        unsafe { runtime::dksim_object_release(client as Obj) };
    }
}

/// Close every connection still open (the app exits when the system stops).
pub fn close_all() {
    let open: Vec<u64> = with_world(|w| {
        w.user_clients
            .connections
            .iter()
            .filter(|(_, c)| c.client != 0)
            .map(|(&id, _)| id)
            .collect()
    });
    for id in open {
        service_close(id);
    }
}

// ------------------------------------------------------------------- runtime callbacks --

/// `IOService::Create(provider, "UserClientProperties", &service)`.
pub fn service_create(key: &str) -> Result<Obj, i32> {
    if key != "UserClientProperties" {
        return Err(IOReturn::kIOReturnNotFound.0);
    }
    let (class, wanted) =
        with_world(|w| (w.user_clients.class.clone(), w.user_clients.properties_class.clone()));
    let Some((name, create)) = class else {
        return Err(IOReturn::kIOReturnUnsupported.0);
    };
    match wanted {
        Some(wanted) if wanted == name => {}
        Some(other) => {
            violation(
                "UserClientClassMissing",
                SECTION,
                format!("UserClientProperties.IOUserClass={other}"),
                format!(
                    "UserClientProperties names IOUserClass {other}, but the dext has no such \
                     class (it has {name}): IOService::Create fails and no app can connect."
                ),
            );
            return Err(IOReturn::kIOReturnUnsupported.0);
        }
        None => return Err(IOReturn::kIOReturnNotFound.0),
    }
    // SAFETY: `create` is the build's class factory (a generated `extern "C"` function).
    let create: unsafe extern "C" fn() -> Obj = unsafe { std::mem::transmute(create) };
    // SAFETY: creates a new object with one reference, which the caller owns.
    let object = unsafe { create() };
    if object.is_null() {
        return Err(IOReturn::kIOReturnNoMemory.0);
    }
    Ok(object)
}

/// Whether `service` is a connection's user client.
pub fn is_client(service: Obj) -> bool {
    with_world(|w| connection_of_client(w, service).is_some())
}

/// `SetDispatchQueue` on a user client: Some(result) if `service` is one.
pub fn set_dispatch_queue(service: Obj, name: &str, queue: u64) -> Option<i32> {
    with_world(|w| {
        let id = connection_of_client(w, service)?;
        let c = w.user_clients.connections.get_mut(&id)?;
        match name {
            "IOUserClientQueueExternalMethod" => {
                c.external_method_queue = Some(queue);
                Some(0)
            }
            "Default" => Some(0),
            _ => Some(IOReturn::kIOReturnBadArgument.0),
        }
    })
}

/// `AsyncCompletion(action, status, args)` from `client`; `handle` is the action's kernel
/// handle.
pub fn async_completion(client: Obj, handle: u64, status: i32, args: &[u64]) {
    let target = with_world(|w| w.user_clients.actions.get(&handle).copied());
    let Some(id) = target else {
        violation(
            "AsyncCompletionWithoutCall",
            SECTION,
            format!("action={handle}"),
            "AsyncCompletion was sent to an action that no asynchronous ExternalMethod call \
             passed in."
                .into(),
        );
        return;
    };
    if args.len() > MAX_SCALARS {
        violation(
            "AsyncArgumentsTooMany",
            SECTION,
            format!("asyncDataCount={}", args.len()),
            "AsyncCompletion carries at most kIOUserClientAsyncArgumentsCountMax (16) words."
                .into(),
        );
        return;
    }
    let delivered = with_world(|w| {
        let c = w.user_clients.connections.get_mut(&id)?;
        if c.client != client as usize {
            return Some(false);
        }
        c.asyncs.push_back(AsyncMessage { status, args: args.to_vec() });
        Some(true)
    });
    match delivered {
        Some(true) => {}
        _ => {
            violation(
                "AsyncCompletionAfterClose",
                SECTION,
                format!("connection={id} action={handle}"),
                "AsyncCompletion for a connection that was closed: its actions must be released \
                 in the client's Stop, not used."
                    .into(),
            );
        }
    }
}

pub fn entitlement_count(client: Obj) -> u32 {
    with_world(|w| {
        connection_of_client(w, client)
            .and_then(|id| w.user_clients.connections.get(&id))
            .map_or(0, |c| c.entitlements.len() as u32)
    })
}

pub fn entitlement_at(client: Obj, index: u32) -> *const c_char {
    with_world(|w| {
        connection_of_client(w, client)
            .and_then(|id| w.user_clients.connections.get(&id))
            .and_then(|c| c.entitlements.get(index as usize))
            .map_or(std::ptr::null(), |e| e.as_ptr())
    })
}

pub fn external_method_refused(selector: u64, check: &str, expected: u64, got: u64) {
    let line = format!(
        "kernel: ExternalMethod selector {selector} refused with kIOReturnBadArgument: \
         {check} expects {expected}, the call has {got}"
    );
    let queue = world::current_queue_name();
    let time_ns = sched::now_ns();
    with_world(|w| {
        w.logs.push(crate::trace::LogLine { time_ns, level: "error", queue, message: line })
    });
}
