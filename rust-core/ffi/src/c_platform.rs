//! The `dk_platform` callback table as the core's [`Platform`]: validated once, when the core
//! is created, so every later call goes through a known-good function pointer.

use core::ffi::c_void;
use core::fmt;

use dkraid_core::abi::{self, dk_dma_buffer, dk_dma_segment, dk_ioreturn, dk_platform};
use dkraid_core::platform::{DmaBuffer, DmaDirection, DmaHandle, DmaSegment, Platform};
use dkraid_core::IOReturn;

type CreateFn = unsafe extern "C" fn(*mut c_void, u64, u64, u32, *mut dk_dma_buffer) -> dk_ioreturn;
type PrepareFn =
    unsafe extern "C" fn(*mut c_void, u64, *mut dk_dma_segment, *mut u32) -> dk_ioreturn;
type FreeFn = unsafe extern "C" fn(*mut c_void, u64);
type Read32Fn = unsafe extern "C" fn(*mut c_void, u32, u64) -> u32;
type Write32Fn = unsafe extern "C" fn(*mut c_void, u32, u64, u32);
type Read64Fn = unsafe extern "C" fn(*mut c_void, u32, u64) -> u64;
type Write64Fn = unsafe extern "C" fn(*mut c_void, u32, u64, u64);
type TimeFn = unsafe extern "C" fn(*mut c_void) -> u64;

/// Why a callback table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    AbiVersion { got: u32 },
    StructSize { got: u32 },
    MissingCallback(&'static str),
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TableError::AbiVersion { got } => write!(
                f,
                "PlatformAbiMismatch: dk_platform.abi_version is {got}, the core implements {}",
                abi::DK_ABI_VERSION
            ),
            TableError::StructSize { got } => write!(
                f,
                "PlatformAbiMismatch: dk_platform.struct_size is {got}, expected {}",
                core::mem::size_of::<dk_platform>()
            ),
            TableError::MissingCallback(name) => {
                write!(f, "PlatformCallbackMissing: dk_platform.{name} is NULL")
            }
        }
    }
}

/// A validated copy of the table.
#[derive(Debug)]
pub struct CPlatform {
    context: *mut c_void,
    dma_buffer_create: CreateFn,
    dma_buffer_prepare: PrepareFn,
    dma_buffer_free: FreeFn,
    mmio_read32: Read32Fn,
    mmio_write32: Write32Fn,
    mmio_read64: Read64Fn,
    mmio_write64: Write64Fn,
    monotonic_time_ns: TimeFn,
}

fn required<T>(f: Option<T>, name: &'static str) -> Result<T, TableError> {
    f.ok_or(TableError::MissingCallback(name))
}

impl CPlatform {
    pub fn from_table(table: &dk_platform) -> Result<CPlatform, TableError> {
        if table.abi_version != abi::DK_ABI_VERSION {
            return Err(TableError::AbiVersion { got: table.abi_version });
        }
        if table.struct_size as usize != core::mem::size_of::<dk_platform>() {
            return Err(TableError::StructSize { got: table.struct_size });
        }
        required(table.log, "log")?;
        Ok(CPlatform {
            context: table.context,
            dma_buffer_create: required(table.dma_buffer_create, "dma_buffer_create")?,
            dma_buffer_prepare: required(table.dma_buffer_prepare, "dma_buffer_prepare")?,
            dma_buffer_free: required(table.dma_buffer_free, "dma_buffer_free")?,
            mmio_read32: required(table.mmio_read32, "mmio_read32")?,
            mmio_write32: required(table.mmio_write32, "mmio_write32")?,
            mmio_read64: required(table.mmio_read64, "mmio_read64")?,
            mmio_write64: required(table.mmio_write64, "mmio_write64")?,
            monotonic_time_ns: required(table.monotonic_time_ns, "monotonic_time_ns")?,
        })
    }

    pub fn log_context(&self) -> *mut c_void {
        self.context
    }
}

// Every callback below is called with the context the table came with; the dext's contract
// (dkraid.h) is that the table and its context outlive the core.
impl Platform for CPlatform {
    fn dma_buffer_create(
        &mut self,
        capacity: u64,
        alignment: u64,
        direction: DmaDirection,
    ) -> Result<DmaBuffer, IOReturn> {
        let mut out = dk_dma_buffer::default();
        // SAFETY: a validated callback, our context, and a valid out-pointer on our stack.
        let status = unsafe {
            (self.dma_buffer_create)(self.context, capacity, alignment, direction as u32, &mut out)
        };
        IOReturn(status).into_result()?;
        Ok(DmaBuffer {
            handle: DmaHandle(out.handle),
            cpu_address: out.cpu_address,
            cpu_length: out.cpu_length,
        })
    }

    fn dma_buffer_prepare(
        &mut self,
        handle: DmaHandle,
        segments: &mut [DmaSegment],
    ) -> Result<usize, IOReturn> {
        let mut count = u32::try_from(segments.len()).unwrap_or(u32::MAX);
        // SAFETY: a validated callback; `segments` is valid for `count` writes.
        let status = unsafe {
            (self.dma_buffer_prepare)(self.context, handle.0, segments.as_mut_ptr(), &mut count)
        };
        IOReturn(status).into_result()?;
        // A count beyond the array is passed on as is: the pool refuses it by name.
        Ok(count as usize)
    }

    fn dma_buffer_free(&mut self, handle: DmaHandle) {
        // SAFETY: a validated callback with our context.
        unsafe { (self.dma_buffer_free)(self.context, handle.0) }
    }

    fn mmio_read32(&mut self, bar: u32, offset: u64) -> u32 {
        // SAFETY: a validated callback with our context.
        unsafe { (self.mmio_read32)(self.context, bar, offset) }
    }

    fn mmio_write32(&mut self, bar: u32, offset: u64, value: u32) {
        // SAFETY: a validated callback with our context.
        unsafe { (self.mmio_write32)(self.context, bar, offset, value) }
    }

    fn mmio_read64(&mut self, bar: u32, offset: u64) -> u64 {
        // SAFETY: a validated callback with our context.
        unsafe { (self.mmio_read64)(self.context, bar, offset) }
    }

    fn mmio_write64(&mut self, bar: u32, offset: u64, value: u64) {
        // SAFETY: a validated callback with our context.
        unsafe { (self.mmio_write64)(self.context, bar, offset, value) }
    }

    fn monotonic_time_ns(&mut self) -> u64 {
        // SAFETY: a validated callback with our context.
        unsafe { (self.monotonic_time_ns)(self.context) }
    }
}
