//! The platform (HAL): the few synchronous services the core needs from whoever hosts it —
//! the dext's C++ through the `dk_platform` callback table, or the fake in tests.
//!
//! It is deliberately narrow (as virtio-drivers' `Hal`): DMA buffers, MMIO, time, logging.
//! Everything asynchronous goes the other way, as plain data the C++ side acts on.

use crate::abi;
use crate::ioreturn::IOReturn;

#[cfg(any(test, feature = "fake-platform"))]
pub mod fake;

/// One device-visible segment (`IOAddressSegment`): an IOVA and a length.
pub type DmaSegment = abi::dk_dma_segment;

/// The most segments one `PrepareForDMA` call returns.
pub const DMA_MAX_SEGMENTS: usize = abi::DK_DMA_MAX_SEGMENTS as usize;

/// Opaque name of a buffer owned by the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DmaHandle(pub u64);

/// Direction bits accepted by `IOBufferMemoryDescriptor::Create`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DmaDirection {
    In = abi::DK_DMA_DIRECTION_IN,
    Out = abi::DK_DMA_DIRECTION_OUT,
    InOut = abi::DK_DMA_DIRECTION_IN_OUT,
}

/// A buffer the platform created: its handle and the CPU mapping the dext has of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaBuffer {
    pub handle: DmaHandle,
    pub cpu_address: u64,
    pub cpu_length: u64,
}

/// Log levels as the C ABI numbers them (`DK_LOG_*`).
pub fn log_level_to_abi(level: log::Level) -> u32 {
    match level {
        log::Level::Error => abi::DK_LOG_ERROR,
        log::Level::Warn => abi::DK_LOG_WARN,
        log::Level::Info => abi::DK_LOG_INFO,
        log::Level::Debug => abi::DK_LOG_DEBUG,
        log::Level::Trace => abi::DK_LOG_TRACE,
    }
}

/// The services the core calls synchronously.
pub trait Platform {
    /// `IOBufferMemoryDescriptor::Create(direction, capacity, alignment)` + `SetLength` +
    /// `GetAddressRange`.
    fn dma_buffer_create(
        &mut self,
        capacity: u64,
        alignment: u64,
        direction: DmaDirection,
    ) -> Result<DmaBuffer, IOReturn>;

    /// `IODMACommand::Create` + `PrepareForDMA` over the whole buffer. Fills `segments` and
    /// returns how many it used; the caller checks the count and the lengths.
    fn dma_buffer_prepare(
        &mut self,
        handle: DmaHandle,
        segments: &mut [DmaSegment],
    ) -> Result<usize, IOReturn>;

    /// `CompleteDMA` if prepared, then release the buffer and its command.
    fn dma_buffer_free(&mut self, handle: DmaHandle);

    fn mmio_read32(&mut self, bar: u32, offset: u64) -> u32;
    fn mmio_write32(&mut self, bar: u32, offset: u64, value: u32);
    fn mmio_read64(&mut self, bar: u32, offset: u64) -> u64;
    fn mmio_write64(&mut self, bar: u32, offset: u64, value: u64);

    /// Monotonic nanoseconds.
    fn monotonic_time_ns(&mut self) -> u64;
}
