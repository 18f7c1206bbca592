//! The real transport on macOS: IOKit's user-client calls to the dext's `DkRaidUserClient`,
//! through raw FFI to IOKit.framework, CoreFoundation and the Mach message API.
//!
//! - The service: `IOServiceMatching("IOUserSCSIParallelInterfaceController")`, then the one
//!   whose `IOUserClass` property is `DkRaidController` (the dext's class).
//! - `IOServiceOpen(service, mach_task_self(), 0, &connect)`; `IOServiceClose` on drop.
//! - Synchronous calls: `IOConnectCallMethod`; asynchronous ones (SUBMIT, WATCH_EVENTS):
//!   `IOConnectCallAsyncMethod` with the Mach port of an `IONotificationPortCreate` port.
//! - Completions: `mach_msg` receives them from that port with a timeout; each is an
//!   `OSNotificationHeader64` of type `kIOAsyncCompletionNotificationType` followed by
//!   `IOAsyncCompletionContent` (an `IOReturn`, then the `u64` args).

use std::ffi::{c_char, c_void, CStr};
use std::time::Duration;

use dkraid_core::IOReturn;

use crate::error::{Error, ErrorKind, Result};
use crate::machmsg::ASYNC_REF64_COUNT;
use crate::transport::{AsyncMessage, CallReply, Transport};

#[allow(non_camel_case_types)]
type kern_return_t = i32;
#[allow(non_camel_case_types)]
type mach_port_t = u32;
#[allow(non_camel_case_types)]
type io_object_t = mach_port_t;
#[allow(non_camel_case_types)]
type io_iterator_t = io_object_t;
#[allow(non_camel_case_types)]
type io_service_t = io_object_t;
#[allow(non_camel_case_types)]
type io_connect_t = io_object_t;
type CFTypeRef = *const c_void;
type CFStringRef = *const c_void;
type CFAllocatorRef = *const c_void;
type CFMutableDictionaryRef = *mut c_void;
type CFTypeID = usize;
type CFIndex = isize;
type IONotificationPortRef = *mut c_void;

/// `kIOMainPortDefault` (formerly `kIOMasterPortDefault`): `MACH_PORT_NULL`.
const IO_MAIN_PORT_DEFAULT: mach_port_t = 0;
const K_CF_STRING_ENCODING_UTF8: u32 = 0x0800_0100;
const MACH_RCV_MSG: i32 = 0x0000_0002;
const MACH_RCV_TIMEOUT: i32 = 0x0000_0100;
const MACH_RCV_TIMED_OUT: kern_return_t = 0x1000_4003;

/// The dext's class, as its `IOUserClass` property names it.
pub const USER_CLASS: &str = "DkRaidController";
/// The kernel class the dext's service is an instance of.
pub const KERNEL_CLASS: &CStr = c"IOUserSCSIParallelInterfaceController";

#[link(name = "IOKit", kind = "framework")]
extern "C" {
    fn IOServiceMatching(name: *const c_char) -> CFMutableDictionaryRef;
    fn IOServiceGetMatchingServices(
        main_port: mach_port_t,
        matching: CFMutableDictionaryRef,
        existing: *mut io_iterator_t,
    ) -> kern_return_t;
    fn IOIteratorNext(iterator: io_iterator_t) -> io_object_t;
    fn IOObjectRelease(object: io_object_t) -> kern_return_t;
    fn IORegistryEntryCreateCFProperty(
        entry: io_object_t,
        key: CFStringRef,
        allocator: CFAllocatorRef,
        options: u32,
    ) -> CFTypeRef;
    fn IOServiceOpen(
        service: io_service_t,
        owning_task: mach_port_t,
        kind: u32,
        connect: *mut io_connect_t,
    ) -> kern_return_t;
    fn IOServiceClose(connect: io_connect_t) -> kern_return_t;
    fn IOConnectCallMethod(
        connection: mach_port_t,
        selector: u32,
        input: *const u64,
        input_cnt: u32,
        input_struct: *const c_void,
        input_struct_cnt: usize,
        output: *mut u64,
        output_cnt: *mut u32,
        output_struct: *mut c_void,
        output_struct_cnt: *mut usize,
    ) -> kern_return_t;
    fn IOConnectCallAsyncMethod(
        connection: mach_port_t,
        selector: u32,
        wake_port: mach_port_t,
        reference: *mut u64,
        reference_cnt: u32,
        input: *const u64,
        input_cnt: u32,
        input_struct: *const c_void,
        input_struct_cnt: usize,
        output: *mut u64,
        output_cnt: *mut u32,
        output_struct: *mut c_void,
        output_struct_cnt: *mut usize,
    ) -> kern_return_t;
    fn IONotificationPortCreate(main_port: mach_port_t) -> IONotificationPortRef;
    fn IONotificationPortDestroy(notify: IONotificationPortRef);
    fn IONotificationPortGetMachPort(notify: IONotificationPortRef) -> mach_port_t;
}

#[link(name = "CoreFoundation", kind = "framework")]
extern "C" {
    fn CFStringCreateWithCString(
        alloc: CFAllocatorRef,
        c_str: *const c_char,
        encoding: u32,
    ) -> CFStringRef;
    fn CFStringGetCString(
        the_string: CFStringRef,
        buffer: *mut c_char,
        buffer_size: CFIndex,
        encoding: u32,
    ) -> u8;
    fn CFGetTypeID(cf: CFTypeRef) -> CFTypeID;
    fn CFStringGetTypeID() -> CFTypeID;
    fn CFRelease(cf: CFTypeRef);
}

extern "C" {
    /// What the `mach_task_self()` macro reads.
    static mach_task_self_: mach_port_t;
    fn mach_msg(
        msg: *mut u8,
        option: i32,
        send_size: u32,
        rcv_size: u32,
        rcv_name: mach_port_t,
        timeout: u32,
        notify: mach_port_t,
    ) -> kern_return_t;
}

/// Reads a CF string property of a registry entry.
fn string_property(entry: io_object_t, key: &CStr) -> Option<String> {
    // SAFETY: `key` is NUL-terminated; a NULL allocator is the default one.
    let cf_key = unsafe {
        CFStringCreateWithCString(std::ptr::null(), key.as_ptr(), K_CF_STRING_ENCODING_UTF8)
    };
    if cf_key.is_null() {
        return None;
    }
    // SAFETY: `entry` is a live registry entry and `cf_key` a CFString we own.
    let value = unsafe { IORegistryEntryCreateCFProperty(entry, cf_key, std::ptr::null(), 0) };
    // SAFETY: `cf_key` came from a Create call, so we hold its one reference.
    unsafe { CFRelease(cf_key) };
    if value.is_null() {
        return None;
    }
    // SAFETY: `value` is a live CF object (we own it until the CFRelease below).
    let is_string = unsafe { CFGetTypeID(value) } == cf_string_type_id();
    let mut buf = [0 as c_char; 256];
    let copied = is_string && {
        // SAFETY: `value` is a CFString; `buf` holds `buf.len()` bytes and CF writes a
        // NUL-terminated string no longer than that.
        let r = unsafe {
            CFStringGetCString(
                value,
                buf.as_mut_ptr(),
                buf.len() as CFIndex,
                K_CF_STRING_ENCODING_UTF8,
            )
        };
        r != 0
    };
    // SAFETY: `value` came from a Create call, so we hold its one reference.
    unsafe { CFRelease(value) };
    if !copied {
        return None;
    }
    // SAFETY: CFStringGetCString succeeded, so `buf` holds a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(text.to_string_lossy().into_owned())
}

fn cf_string_type_id() -> CFTypeID {
    // SAFETY: CFStringGetTypeID has no preconditions.
    unsafe { CFStringGetTypeID() }
}

/// The dext's service: the `IOUserSCSIParallelInterfaceController` whose `IOUserClass` is
/// `DkRaidController`. The caller releases it.
fn find_service() -> Result<io_service_t> {
    // SAFETY: `KERNEL_CLASS` is NUL-terminated.
    let matching = unsafe { IOServiceMatching(KERNEL_CLASS.as_ptr()) };
    if matching.is_null() {
        return Err(Error::protocol("IOServiceMatching failed"));
    }
    let mut iterator: io_iterator_t = 0;
    // SAFETY: `matching` is a dictionary this call consumes; `iterator` is written on success.
    let kr = unsafe { IOServiceGetMatchingServices(IO_MAIN_PORT_DEFAULT, matching, &mut iterator) };
    if kr != 0 {
        return Err(Error::from_kern_return(kr, "IOServiceGetMatchingServices"));
    }
    let mut found = None;
    loop {
        // SAFETY: `iterator` is the live iterator returned above.
        let service = unsafe { IOIteratorNext(iterator) };
        if service == 0 {
            break;
        }
        if found.is_none()
            && string_property(service, c"IOUserClass").as_deref() == Some(USER_CLASS)
        {
            found = Some(service);
            continue;
        }
        // SAFETY: `service` came from IOIteratorNext, which hands us a reference.
        unsafe { IOObjectRelease(service) };
    }
    // SAFETY: we hold the iterator's reference.
    unsafe { IOObjectRelease(iterator) };
    found.ok_or_else(|| {
        Error::new(
            ErrorKind::NoDriver,
            format!(
                "driver not found: no {} service with IOUserClass {USER_CLASS}; is the dkraid \
                 dext loaded and a controller attached? (systemextensionsctl list; ioreg -l -c \
                 {})",
                KERNEL_CLASS.to_string_lossy(),
                KERNEL_CLASS.to_string_lossy()
            ),
        )
    })
}

/// A connection to `DkRaidUserClient` through IOKit.
#[derive(Debug)]
pub struct IoKitTransport {
    connect: io_connect_t,
    notify: IONotificationPortRef,
}

impl IoKitTransport {
    /// A transport that opens the user client on [`Transport::open`].
    pub fn new() -> IoKitTransport {
        IoKitTransport { connect: 0, notify: std::ptr::null_mut() }
    }

    fn not_open() -> Error {
        Error::protocol("the user client is not open")
    }
}

impl Default for IoKitTransport {
    fn default() -> Self {
        IoKitTransport::new()
    }
}

impl Drop for IoKitTransport {
    fn drop(&mut self) {
        if self.connect != 0 {
            // SAFETY: `connect` came from IOServiceOpen and is closed once.
            unsafe { IOServiceClose(self.connect) };
            self.connect = 0;
        }
        if !self.notify.is_null() {
            // SAFETY: `notify` came from IONotificationPortCreate and is destroyed once.
            unsafe { IONotificationPortDestroy(self.notify) };
            self.notify = std::ptr::null_mut();
        }
    }
}

impl Transport for IoKitTransport {
    fn open(&mut self) -> Result<()> {
        if self.connect != 0 {
            return Ok(());
        }
        let service = find_service()?;
        let mut connect: io_connect_t = 0;
        // SAFETY: reading the task's own port name, which the C runtime sets up before main.
        let task = unsafe { mach_task_self_ };
        // SAFETY: `service` is a live service reference; `connect` is written on success.
        let kr = unsafe { IOServiceOpen(service, task, 0, &mut connect) };
        // SAFETY: we hold `service`'s reference from find_service.
        unsafe { IOObjectRelease(service) };
        if kr != 0 {
            let ior = IOReturn(kr);
            let mut e = Error::from_kern_return(kr, "IOServiceOpen");
            if ior == IOReturn::kIOReturnNotPermitted || ior == IOReturn::kIOReturnNotPrivileged {
                e.message = format!(
                    "permission denied: the driver refused to open its user client ({}); \
                     raidctl must be signed with the entitlement {} (and the dext allow its \
                     user clients)",
                    ior.name().unwrap_or("refused"),
                    crate::error::ADMIN_ENTITLEMENT
                );
            }
            return Err(e);
        }
        self.connect = connect;
        // SAFETY: no preconditions; NULL is checked below.
        let notify = unsafe { IONotificationPortCreate(IO_MAIN_PORT_DEFAULT) };
        if notify.is_null() {
            return Err(Error::protocol("IONotificationPortCreate failed"));
        }
        self.notify = notify;
        Ok(())
    }

    fn call(
        &mut self,
        selector: u32,
        scalars_in: &[u64],
        struct_in: &[u8],
        struct_out_capacity: usize,
        scalars_out_capacity: usize,
        is_async: bool,
    ) -> Result<CallReply> {
        if self.connect == 0 {
            return Err(IoKitTransport::not_open());
        }
        let input_cnt = u32::try_from(scalars_in.len())
            .map_err(|_| Error::protocol("too many scalar inputs"))?;
        let mut scalars_out = vec![0u64; scalars_out_capacity];
        let mut output_cnt = u32::try_from(scalars_out_capacity)
            .map_err(|_| Error::protocol("too many scalar outputs"))?;
        let mut struct_out = vec![0u8; struct_out_capacity];
        let mut struct_out_cnt = struct_out_capacity;
        let struct_in_ptr =
            if struct_in.is_empty() { std::ptr::null() } else { struct_in.as_ptr().cast() };
        let struct_out_ptr: *mut c_void = if struct_out.is_empty() {
            std::ptr::null_mut()
        } else {
            struct_out.as_mut_ptr().cast()
        };
        let kr = if is_async {
            // SAFETY: `notify` is live while `self` is.
            let wake = unsafe { IONotificationPortGetMachPort(self.notify) };
            // reference[0] is IOKit's (the wake port); the rest is ours, echoed in the
            // completion's header.
            let mut reference = [0u64; ASYNC_REF64_COUNT];
            reference[2] = u64::from(selector);
            // SAFETY: every pointer is valid for the count passed beside it (the vectors
            // and arrays above live until the call returns); IOKit writes at most
            // `output_cnt` scalars and `struct_out_cnt` bytes.
            unsafe {
                IOConnectCallAsyncMethod(
                    self.connect,
                    selector,
                    wake,
                    reference.as_mut_ptr(),
                    ASYNC_REF64_COUNT as u32,
                    scalars_in.as_ptr(),
                    input_cnt,
                    struct_in_ptr,
                    struct_in.len(),
                    scalars_out.as_mut_ptr(),
                    &mut output_cnt,
                    struct_out_ptr,
                    &mut struct_out_cnt,
                )
            }
        } else {
            // SAFETY: as above, without the async reference.
            unsafe {
                IOConnectCallMethod(
                    self.connect,
                    selector,
                    scalars_in.as_ptr(),
                    input_cnt,
                    struct_in_ptr,
                    struct_in.len(),
                    scalars_out.as_mut_ptr(),
                    &mut output_cnt,
                    struct_out_ptr,
                    &mut struct_out_cnt,
                )
            }
        };
        scalars_out.truncate((output_cnt as usize).min(scalars_out_capacity));
        struct_out.truncate(struct_out_cnt.min(struct_out_capacity));
        Ok(CallReply { kern_return: kr, scalars_out, struct_out })
    }

    fn wait_async(&mut self, timeout: Duration) -> Result<Option<AsyncMessage>> {
        if self.notify.is_null() {
            return Err(IoKitTransport::not_open());
        }
        // SAFETY: `notify` is live while `self` is.
        let port = unsafe { IONotificationPortGetMachPort(self.notify) };
        // u64s keep the buffer 8-byte aligned for mach_msg; room for the header, the
        // notification, the args and the trailer the kernel appends.
        let mut buf = [0u64; 512];
        let size = std::mem::size_of_val(&buf) as u32;
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        // SAFETY: `buf` is writable for `size` bytes; receive only, so nothing is sent.
        let kr = unsafe {
            mach_msg(buf.as_mut_ptr().cast(), MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, size, port, ms, 0)
        };
        if kr == MACH_RCV_TIMED_OUT {
            return Ok(None);
        }
        if kr != 0 {
            return Err(Error::protocol(format!("mach_msg receive failed: {kr:#x}")));
        }
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        crate::machmsg::parse_completion(&bytes).map(Some)
    }
}
