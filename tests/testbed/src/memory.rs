//! Simulated memory and IOMMU.
//!
//! Buffers (`IOBufferMemoryDescriptor`) are real host memory: the dext's CPU mapping is a real
//! pointer. Device addresses are IOVAs handed out by `IODMACommand::PrepareForDMA` from a
//! window of address space reserved with no access rights, so a device address is never a CPU
//! address, and a CPU dereference of one faults — which [`install_iova_fault_handler`] turns
//! into a named violation instead of a crash. The IOMMU maps whole `IOVMPageSize` pages, as
//! DART does; device accesses outside a live mapping are reported faults.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::sync::OnceLock;

use dkraid_core::IOReturn;

/// Size of the reserved IOVA window.
const IOVA_WINDOW_BYTES: usize = 1 << 36;

struct Window {
    base: u64,
}

static WINDOW: OnceLock<Window> = OnceLock::new();

/// The IOVA window: reserved once per process, never accessible to the CPU.
fn window() -> &'static Window {
    WINDOW.get_or_init(|| {
        // SAFETY: an anonymous, private, no-access reservation; the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                IOVA_WINDOW_BYTES,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "reserving the IOVA window failed");
        Window { base: p as u64 }
    })
}

/// Is `address` inside the IOVA window?
pub fn is_iova(address: u64) -> bool {
    let w = window();
    address >= w.base && address < w.base + IOVA_WINDOW_BYTES as u64
}

/// Directions `IOBufferMemoryDescriptor::Create` accepts (kIOMemoryDirection*).
pub const DIRECTION_MASK: u64 = 0x3;

#[derive(Debug)]
pub struct Buffer {
    ptr: *mut u8,
    layout: Layout,
    pub capacity: u64,
    pub alignment: u64,
    pub length: u64,
    pub direction: u64,
}

impl Buffer {
    pub fn cpu_address(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `Memory::create_buffer` with this layout, freed once here.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// A live IOMMU mapping of one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub buffer: u64,
    /// The device address of the buffer's first byte.
    pub iova: u64,
    pub length: u64,
    /// The page-granular range the IOMMU actually opened to the device.
    pub mapped_start: u64,
    pub mapped_bytes: u64,
}

#[derive(Debug)]
pub struct DmaCommand {
    pub max_address_bits: u64,
    pub prepared: Option<Mapping>,
}

/// Every buffer, command and mapping of the run.
#[derive(Debug)]
pub struct Memory {
    pub page_size: u64,
    buffers: BTreeMap<u64, Buffer>,
    commands: BTreeMap<u64, DmaCommand>,
    next_handle: u64,
    next_iova_offset: u64,
}

/// What `PrepareForDMA` mapped, for the caller's checks.
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    pub mapping: Mapping,
    pub buffer_capacity: u64,
    pub buffer_cpu_address: u64,
}

impl Memory {
    pub fn new(page_size: u64) -> Memory {
        Memory {
            page_size,
            buffers: BTreeMap::new(),
            commands: BTreeMap::new(),
            next_handle: 1,
            next_iova_offset: page_size,
        }
    }

    fn handle(&mut self) -> u64 {
        let h = self.next_handle;
        self.next_handle += 1;
        h
    }

    /// `IOBufferMemoryDescriptor::Create`: only direction bits in `options`; a power-of-two
    /// alignment; a non-zero capacity.
    pub fn create_buffer(
        &mut self,
        options: u64,
        capacity: u64,
        alignment: u64,
    ) -> Result<u64, IOReturn> {
        if options & !DIRECTION_MASK != 0 {
            return Err(IOReturn::kIOReturnBadArgument);
        }
        let alignment = alignment.max(1);
        if capacity == 0 || !alignment.is_power_of_two() || capacity > 1 << 32 {
            return Err(IOReturn::kIOReturnNoMemory);
        }
        let layout = Layout::from_size_align(capacity as usize, alignment as usize)
            .map_err(|_| IOReturn::kIOReturnNoMemory)?;
        // SAFETY: non-zero size (checked above).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(IOReturn::kIOReturnNoMemory);
        }
        let h = self.handle();
        self.buffers
            .insert(h, Buffer { ptr, layout, capacity, alignment, length: 0, direction: options });
        Ok(h)
    }

    pub fn buffer(&self, h: u64) -> Option<&Buffer> {
        self.buffers.get(&h)
    }

    pub fn set_length(&mut self, h: u64, length: u64) -> Result<(), IOReturn> {
        let b = self.buffers.get_mut(&h).ok_or(IOReturn::kIOReturnBadArgument)?;
        if length > b.capacity {
            return Err(IOReturn::kIOReturnBadArgument);
        }
        b.length = length;
        Ok(())
    }

    /// Copy `data` into the start of buffer `h` (the kernel filling its own buffer).
    pub fn fill(&mut self, h: u64, data: &[u8]) {
        if let Some(b) = self.buffers.get_mut(&h) {
            let n = data.len().min(b.capacity as usize);
            // SAFETY: `ptr` is valid for `capacity` bytes and `n` is at most that.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), b.ptr, n) };
        }
    }

    /// The first `n` bytes of buffer `h`.
    pub fn contents(&self, h: u64, n: usize) -> Vec<u8> {
        match self.buffers.get(&h) {
            Some(b) => {
                let n = n.min(b.capacity as usize);
                // SAFETY: `ptr` is valid for `capacity` bytes and `n` is at most that.
                unsafe { std::slice::from_raw_parts(b.ptr, n) }.to_vec()
            }
            None => Vec::new(),
        }
    }

    pub fn release_buffer(&mut self, h: u64) {
        self.buffers.remove(&h);
    }

    pub fn live_buffers(&self) -> usize {
        self.buffers.len()
    }

    pub fn create_command(&mut self, max_address_bits: u64) -> u64 {
        let h = self.handle();
        self.commands.insert(h, DmaCommand { max_address_bits, prepared: None });
        h
    }

    pub fn release_command(&mut self, h: u64) {
        self.commands.remove(&h);
    }

    pub fn live_commands(&self) -> usize {
        self.commands.len()
    }

    /// `PrepareForDMA(options, memory, offset, length /*0 = all*/)`: map the buffer's pages.
    pub fn prepare(
        &mut self,
        command: u64,
        buffer: u64,
        offset: u64,
        length: u64,
    ) -> Result<Prepared, IOReturn> {
        let page = self.page_size;
        let b = self.buffers.get(&buffer).ok_or(IOReturn::kIOReturnBadArgument)?;
        let (cpu, capacity, buffer_length) = (b.cpu_address(), b.capacity, b.length);
        let cmd = self.commands.get(&command).ok_or(IOReturn::kIOReturnBadArgument)?;
        if cmd.prepared.is_some() {
            // One preparation per command at a time.
            return Err(IOReturn::kIOReturnBusy);
        }
        let length = if length == 0 { buffer_length.saturating_sub(offset) } else { length };
        if length == 0 || offset.checked_add(length).is_none_or(|end| end > buffer_length) {
            return Err(IOReturn::kIOReturnBadArgument);
        }
        // The IOMMU maps whole pages around [cpu + offset, + length).
        let start = cpu + offset;
        let first_page = start / page * page;
        let end = (start + length).div_ceil(page) * page;
        let mapped_bytes = end - first_page;
        let mapped_start = window().base + self.next_iova_offset;
        // A guard page between mappings.
        self.next_iova_offset += mapped_bytes + page;
        if self.next_iova_offset >= IOVA_WINDOW_BYTES as u64 {
            return Err(IOReturn::kIOReturnNoResources);
        }
        let mapping = Mapping {
            buffer,
            iova: mapped_start + (start - first_page),
            length,
            mapped_start,
            mapped_bytes,
        };
        if let Some(cmd) = self.commands.get_mut(&command) {
            cmd.prepared = Some(mapping);
        }
        Ok(Prepared { mapping, buffer_capacity: capacity, buffer_cpu_address: cpu })
    }

    /// `CompleteDMA`: without a preparation it is kIOReturnNotReady.
    pub fn complete(&mut self, command: u64) -> Result<(), IOReturn> {
        let cmd = self.commands.get_mut(&command).ok_or(IOReturn::kIOReturnBadArgument)?;
        match cmd.prepared.take() {
            Some(_) => Ok(()),
            None => Err(IOReturn::kIOReturnNotReady),
        }
    }

    /// Translate a device access of `len` bytes at `iova` to a CPU pointer, or fault.
    pub fn translate(&self, iova: u64, len: u64) -> Result<*mut u8, DmaFault> {
        for cmd in self.commands.values() {
            let Some(m) = cmd.prepared else { continue };
            if iova >= m.iova && iova.saturating_add(len) <= m.iova + m.length {
                let b = self.buffers.get(&m.buffer).ok_or(DmaFault { iova, len })?;
                return Ok((b.cpu_address() + (iova - m.iova)) as *mut u8);
            }
        }
        Err(DmaFault { iova, len })
    }
}

/// A device access outside every live mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault {
    pub iova: u64,
    pub len: u64,
}

/// Called from the SIGSEGV handler with the faulting address when it lies in the IOVA window.
pub type IovaFaultHook = fn(address: u64) -> !;

static HOOK: OnceLock<IovaFaultHook> = OnceLock::new();

extern "C" fn on_segv(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let address = unsafe { (*info).si_addr() } as u64;
    if is_iova(address) {
        if let Some(hook) = HOOK.get() {
            hook(address);
        }
    }
    // Not ours: restore the default action and return, so the fault re-raises and the process
    // dies as it would have.
    // SAFETY: resetting a signal disposition to the default is always sound.
    unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
}

/// Route CPU faults on IOVAs to `hook` (once per process).
pub fn install_iova_fault_handler(hook: IovaFaultHook) {
    window();
    if HOOK.set(hook).is_err() {
        return;
    }
    // SAFETY: a zeroed sigaction with SA_SIGINFO | SA_ONSTACK and our handler is a valid
    // argument; the alternate stack is needed because the fault may happen on a coroutine stack
    // close to its guard page.
    unsafe {
        let stack_size = 256 * 1024;
        let stack = libc::mmap(
            std::ptr::null_mut(),
            stack_size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if stack != libc::MAP_FAILED {
            let ss = libc::stack_t { ss_sp: stack, ss_flags: 0, ss_size: stack_size };
            libc::sigaltstack(&ss, std::ptr::null_mut());
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_segv as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_and_mappings() {
        let mut m = Memory::new(16384);
        assert_eq!(m.create_buffer(0x100 | 3, 4096, 4096), Err(IOReturn::kIOReturnBadArgument));
        let b = m.create_buffer(3, 16384, 16384).unwrap();
        let c = m.create_command(64);
        assert_eq!(m.prepare(c, b, 0, 0).unwrap_err(), IOReturn::kIOReturnBadArgument, "length 0");
        m.set_length(b, 16384).unwrap();
        let p = m.prepare(c, b, 0, 0).unwrap();
        assert!(is_iova(p.mapping.iova));
        assert!(!is_iova(p.buffer_cpu_address));
        assert_eq!(p.mapping.length, 16384);
        assert_eq!(m.prepare(c, b, 0, 0).unwrap_err(), IOReturn::kIOReturnBusy);
        assert!(m.translate(p.mapping.iova + 100, 8).is_ok());
        assert!(m.translate(p.mapping.iova + 16380, 8).is_err(), "runs off the mapping");
        m.complete(c).unwrap();
        assert_eq!(m.complete(c), Err(IOReturn::kIOReturnNotReady));
        assert!(m.translate(p.mapping.iova, 8).is_err(), "unmapped after CompleteDMA");
        m.release_command(c);
        m.release_buffer(b);
        assert_eq!(m.live_buffers(), 0);
    }

    #[test]
    fn sub_page_buffers_open_whole_pages() {
        let mut m = Memory::new(16384);
        let b = m.create_buffer(3, 4096, 4096).unwrap();
        m.set_length(b, 4096).unwrap();
        let c = m.create_command(64);
        let p = m.prepare(c, b, 0, 0).unwrap();
        assert_eq!(p.mapping.mapped_bytes, 16384);
        assert_eq!(p.mapping.length, 4096);
    }
}
