//! A fake platform for tests: real host memory behind every buffer, IOVAs that are never the
//! CPU address, an `IOVMPageSize` of 16 KiB (default) or 4 KiB, and injectable failures —
//! fail the N-th buffer creation or preparation, or answer the N-th preparation with a short or
//! split mapping. It keeps the books (live buffers, double frees) so tests can prove nothing
//! leaks.

extern crate std;

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::vec::Vec;

use super::{DmaBuffer, DmaDirection, DmaHandle, DmaSegment, Platform};
use crate::ioreturn::IOReturn;

/// Device addresses start here; host heap addresses on the test machines never do, so an IOVA
/// mistaken for a CPU pointer is obvious.
pub const IOVA_BASE: u64 = 0x0000_2a00_0000_0000;

/// What the N-th preparation (1-based) should answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrepareFault {
    /// Fail with this status.
    Fail(IOReturn),
    /// Map only this many bytes of the buffer, in one segment.
    Short { mapped_bytes: u64 },
    /// Map the whole buffer, but as two segments at non-adjacent IOVAs.
    Split,
    /// Map the whole buffer in one segment whose device address is not aligned like the buffer.
    Misaligned,
}

#[derive(Debug)]
struct FakeBuffer {
    ptr: *mut u8,
    layout: Layout,
    iova: u64,
    direction: DmaDirection,
    prepared: bool,
}

/// The fake. Create with [`FakePlatform::new`] (16 KiB pages) or
/// [`FakePlatform::with_page_size`].
#[derive(Debug)]
pub struct FakePlatform {
    page_size: u64,
    buffers: BTreeMap<u64, FakeBuffer>,
    next_handle: u64,
    next_iova: u64,
    creates: u32,
    prepares: u32,
    fail_create_at: Option<(u32, IOReturn)>,
    null_create_at: Option<u32>,
    prepare_fault_at: Option<(u32, PrepareFault)>,
    /// Frees of handles that were not live: double frees or invented handles.
    pub bad_frees: Vec<u64>,
    /// Every buffer ever created: (capacity, alignment, direction).
    pub created: Vec<(u64, u64, DmaDirection)>,
    /// Register file for MMIO: (bar, offset) -> value.
    pub registers: BTreeMap<(u32, u64), u64>,
    /// Virtual time, advanced by 1 µs per MMIO access and by [`FakePlatform::advance_ns`].
    pub now_ns: u64,
}

impl Default for FakePlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl FakePlatform {
    /// 16 KiB pages, as on Apple silicon.
    pub fn new() -> Self {
        Self::with_page_size(16 * 1024)
    }

    pub fn with_page_size(page_size: u64) -> Self {
        assert!(page_size.is_power_of_two(), "page size {page_size} is not a power of two");
        FakePlatform {
            page_size,
            buffers: BTreeMap::new(),
            next_handle: 1,
            next_iova: IOVA_BASE,
            creates: 0,
            prepares: 0,
            fail_create_at: None,
            null_create_at: None,
            prepare_fault_at: None,
            bad_frees: Vec::new(),
            created: Vec::new(),
            registers: BTreeMap::new(),
            now_ns: 0,
        }
    }

    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// The `n`-th call (1-based) to `dma_buffer_create` fails with `status`.
    pub fn fail_create_at(&mut self, n: u32, status: IOReturn) -> &mut Self {
        self.fail_create_at = Some((n, status));
        self
    }

    /// The `n`-th call (1-based) to `dma_buffer_create` "succeeds" with a NULL CPU address.
    pub fn null_create_at(&mut self, n: u32) -> &mut Self {
        self.null_create_at = Some(n);
        self
    }

    /// The `n`-th call (1-based) to `dma_buffer_prepare` answers with `fault`.
    pub fn fault_prepare_at(&mut self, n: u32, fault: PrepareFault) -> &mut Self {
        self.prepare_fault_at = Some((n, fault));
        self
    }

    /// Buffers created and not yet freed.
    pub fn live_buffers(&self) -> usize {
        self.buffers.len()
    }

    pub fn create_calls(&self) -> u32 {
        self.creates
    }

    pub fn prepare_calls(&self) -> u32 {
        self.prepares
    }

    pub fn advance_ns(&mut self, ns: u64) {
        self.now_ns += ns;
    }

    /// The IOVA the fake gave a live buffer, if any.
    pub fn iova_of(&self, handle: DmaHandle) -> Option<u64> {
        self.buffers.get(&handle.0).map(|b| b.iova)
    }

    /// The device's view of memory: the bytes at `iova..iova + len` of a live, prepared buffer,
    /// or `None` (a fake device uses this to play the hardware's DMA).
    pub fn dma(&mut self, iova: u64, len: usize) -> Option<&mut [u8]> {
        let b = self.buffers.values().find(|b| {
            b.prepared && iova >= b.iova && iova + len as u64 <= b.iova + b.layout.size() as u64
        })?;
        let offset = (iova - b.iova) as usize;
        let start = b.ptr.wrapping_add(offset);
        // SAFETY: the buffer owns `layout.size()` bytes at `ptr` and `offset..offset + len` was
        // checked to lie inside it; the borrow is tied to `&mut self`, so nothing overlaps it.
        Some(unsafe { std::slice::from_raw_parts_mut(start, len) })
    }

    fn round_up_to_page(&self, n: u64) -> u64 {
        n.div_ceil(self.page_size) * self.page_size
    }
}

impl Platform for FakePlatform {
    fn dma_buffer_create(
        &mut self,
        capacity: u64,
        alignment: u64,
        direction: DmaDirection,
    ) -> Result<DmaBuffer, IOReturn> {
        self.creates += 1;
        if let Some((n, status)) = self.fail_create_at {
            if n == self.creates {
                return Err(status);
            }
        }
        // IOBufferMemoryDescriptor::Create refuses what it cannot allocate.
        if capacity == 0 || !alignment.is_power_of_two() || alignment > self.page_size {
            return Err(IOReturn::kIOReturnNoMemory);
        }
        let layout = Layout::from_size_align(capacity as usize, alignment as usize)
            .map_err(|_| IOReturn::kIOReturnNoMemory)?;
        // SAFETY: the layout has a non-zero size (checked above).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(IOReturn::kIOReturnNoMemory);
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        // Each buffer gets its own IOVA range, page-granular as an IOMMU maps, with a guard page.
        let iova = self.next_iova;
        self.next_iova += self.round_up_to_page(capacity) + self.page_size;
        self.buffers.insert(handle, FakeBuffer { ptr, layout, iova, direction, prepared: false });
        self.created.push((capacity, alignment, direction));
        let cpu_address = if self.null_create_at == Some(self.creates) { 0 } else { ptr as u64 };
        Ok(DmaBuffer { handle: DmaHandle(handle), cpu_address, cpu_length: capacity })
    }

    fn dma_buffer_prepare(
        &mut self,
        handle: DmaHandle,
        segments: &mut [DmaSegment],
    ) -> Result<usize, IOReturn> {
        self.prepares += 1;
        let fault = match self.prepare_fault_at {
            Some((n, fault)) if n == self.prepares => Some(fault),
            _ => None,
        };
        let page_size = self.page_size;
        let buffer = self.buffers.get_mut(&handle.0).ok_or(IOReturn::kIOReturnBadArgument)?;
        if buffer.prepared {
            // One preparation per command at a time.
            return Err(IOReturn::kIOReturnBusy);
        }
        if segments.is_empty() {
            return Err(IOReturn::kIOReturnBadArgument);
        }
        let length = buffer.layout.size() as u64;
        let used = match fault {
            Some(PrepareFault::Fail(status)) => return Err(status),
            Some(PrepareFault::Short { mapped_bytes }) => {
                segments[0] = DmaSegment { address: buffer.iova, length: mapped_bytes.min(length) };
                1
            }
            Some(PrepareFault::Split) if segments.len() >= 2 => {
                let first = (length / 2).max(1);
                segments[0] = DmaSegment { address: buffer.iova, length: first };
                segments[1] =
                    DmaSegment { address: buffer.iova + first + page_size, length: length - first };
                2
            }
            Some(PrepareFault::Misaligned) => {
                segments[0] = DmaSegment { address: buffer.iova + 512, length };
                1
            }
            Some(PrepareFault::Split) | None => {
                segments[0] = DmaSegment { address: buffer.iova, length };
                1
            }
        };
        buffer.prepared = true;
        Ok(used)
    }

    fn dma_buffer_free(&mut self, handle: DmaHandle) {
        match self.buffers.remove(&handle.0) {
            Some(buffer) => {
                let _ = buffer.direction;
                // SAFETY: `ptr` came from `alloc_zeroed(layout)` and is freed exactly once,
                // because the entry was just removed from the map.
                unsafe { dealloc(buffer.ptr, buffer.layout) };
            }
            None => self.bad_frees.push(handle.0),
        }
    }

    fn mmio_read32(&mut self, bar: u32, offset: u64) -> u32 {
        self.now_ns += 1_000;
        self.registers.get(&(bar, offset)).copied().unwrap_or(0) as u32
    }

    fn mmio_write32(&mut self, bar: u32, offset: u64, value: u32) {
        self.now_ns += 1_000;
        self.registers.insert((bar, offset), u64::from(value));
    }

    fn mmio_read64(&mut self, bar: u32, offset: u64) -> u64 {
        self.now_ns += 1_000;
        self.registers.get(&(bar, offset)).copied().unwrap_or(0)
    }

    fn mmio_write64(&mut self, bar: u32, offset: u64, value: u64) {
        self.now_ns += 1_000;
        self.registers.insert((bar, offset), value);
    }

    fn monotonic_time_ns(&mut self) -> u64 {
        self.now_ns
    }
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        for (_, buffer) in core::mem::take(&mut self.buffers) {
            // SAFETY: each live entry owns its allocation, made with this layout.
            unsafe { dealloc(buffer.ptr, buffer.layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iovas_are_not_cpu_addresses_and_pages_are_respected() {
        for page in [4096u64, 16384] {
            let mut p = FakePlatform::with_page_size(page);
            let a = p.dma_buffer_create(page, page, DmaDirection::InOut).unwrap();
            let b = p.dma_buffer_create(page, page, DmaDirection::InOut).unwrap();
            let mut seg = [DmaSegment::default(); 4];
            assert_eq!(p.dma_buffer_prepare(a.handle, &mut seg).unwrap(), 1);
            assert_ne!(seg[0].address, a.cpu_address);
            assert_eq!(seg[0].address % page, 0);
            assert_eq!(seg[0].length, page);
            assert_eq!(a.cpu_address % page, 0, "alignment honoured");
            assert_ne!(p.iova_of(a.handle), p.iova_of(b.handle));
            p.dma_buffer_free(a.handle);
            p.dma_buffer_free(b.handle);
            assert_eq!(p.live_buffers(), 0);
            assert!(p.bad_frees.is_empty());
        }
    }

    #[test]
    fn injected_faults_hit_exactly_the_nth_call() {
        let mut p = FakePlatform::new();
        p.fail_create_at(2, IOReturn::kIOReturnNoMemory);
        assert!(p.dma_buffer_create(16384, 16384, DmaDirection::InOut).is_ok());
        assert_eq!(
            p.dma_buffer_create(16384, 16384, DmaDirection::InOut),
            Err(IOReturn::kIOReturnNoMemory)
        );
        let c = p.dma_buffer_create(16384, 16384, DmaDirection::InOut).unwrap();
        p.fault_prepare_at(1, PrepareFault::Split);
        let mut seg = [DmaSegment::default(); 4];
        assert_eq!(p.dma_buffer_prepare(c.handle, &mut seg).unwrap(), 2);
        assert_eq!(seg[0].length + seg[1].length, 16384);
        assert_eq!(
            p.dma_buffer_prepare(c.handle, &mut seg),
            Err(IOReturn::kIOReturnBusy),
            "a second preparation of a prepared buffer is refused"
        );
    }

    #[test]
    fn double_free_is_recorded() {
        let mut p = FakePlatform::new();
        let a = p.dma_buffer_create(100, 64, DmaDirection::Out).unwrap();
        p.dma_buffer_free(a.handle);
        p.dma_buffer_free(a.handle);
        assert_eq!(p.bad_frees, [a.handle.0]);
    }
}
