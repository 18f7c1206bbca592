//! The core's submit-and-complete path against the firmware rings: build the request frame in
//! the task's DMA frame, post the descriptor, ring the doorbell; then, for the reply the bench
//! writes as the firmware would, walk the reply ring, validate, build the kernel's response and
//! free the slot. Budget (issue 6): under 150 ns and no allocation per I/O in the core.
//! Results: docs/PERFORMANCE.md.

use std::alloc::{alloc_zeroed, Layout};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dkraid_core::abi;
use dkraid_core::admin::stats::{IoKind, IoStatsTable, Started};
use dkraid_core::firmware::wire::{
    fw_state, reg, InitFrame, ReplyDescriptor, ReplyFlags, RequestDescriptor, RequestFrame,
};
use dkraid_core::firmware::{Firmware, Step};
use dkraid_core::limits::{FrameLayout, PageSize};
use dkraid_core::platform::{DmaBuffer, DmaDirection, DmaHandle, DmaSegment, Platform};
use dkraid_core::task_pool::TaskPool;
use dkraid_core::IOReturn;
use zerocopy::{FromBytes, IntoBytes};

/// Registers in an array; DMA addresses equal CPU addresses (the bench plays the device).
struct BenchPlatform {
    regs: [u32; 64],
    buffers: Vec<(u64, u64)>,
}

impl Platform for BenchPlatform {
    fn dma_buffer_create(
        &mut self,
        capacity: u64,
        alignment: u64,
        _: DmaDirection,
    ) -> Result<DmaBuffer, IOReturn> {
        let layout = Layout::from_size_align(capacity as usize, alignment as usize)
            .map_err(|_| IOReturn::kIOReturnNoMemory)?;
        // SAFETY: non-zero size; leaked for the bench's lifetime.
        let p = unsafe { alloc_zeroed(layout) } as u64;
        self.buffers.push((p, capacity));
        Ok(DmaBuffer {
            handle: DmaHandle(self.buffers.len() as u64),
            cpu_address: p,
            cpu_length: capacity,
        })
    }
    fn dma_buffer_prepare(
        &mut self,
        handle: DmaHandle,
        segments: &mut [DmaSegment],
    ) -> Result<usize, IOReturn> {
        let (p, len) = self.buffers[handle.0 as usize - 1];
        segments[0] = DmaSegment { address: p, length: len };
        Ok(1)
    }
    fn dma_buffer_free(&mut self, _: DmaHandle) {}
    fn mmio_read32(&mut self, _: u32, offset: u64) -> u32 {
        self.regs[(offset / 4) as usize]
    }
    fn mmio_write32(&mut self, _: u32, offset: u64, value: u32) {
        self.regs[(offset / 4) as usize] = value;
    }
    fn mmio_read64(&mut self, _: u32, _: u64) -> u64 {
        0
    }
    fn mmio_write64(&mut self, _: u32, _: u64, _: u64) {}
    fn monotonic_time_ns(&mut self) -> u64 {
        0
    }
}

fn bench(c: &mut Criterion) {
    let mut p = BenchPlatform { regs: [0; 64], buffers: Vec::new() };
    let mut pool = TaskPool::new();
    pool.set_count(32).unwrap();
    let layout = FrameLayout::for_page_size(PageSize::new(16384).unwrap());
    for _ in 0..32 {
        pool.map_next(&mut p, layout).unwrap();
    }
    let mut fw = Firmware::new();
    fw.start(&mut p, 32, 0).unwrap();
    p.regs[(reg::FW_STATE / 4) as usize] = fw_state::READY;
    p.regs[(reg::MAX_COMMANDS / 4) as usize] = 256;
    assert!(matches!(fw.step(&mut p, 0), Step::Pending { .. }));
    let init_iova = u64::from(p.regs[(reg::INIT_FRAME_LO / 4) as usize])
        | (u64::from(p.regs[(reg::INIT_FRAME_HI / 4) as usize]) << 32);
    // SAFETY: identity-mapped buffer the platform created, 32 bytes of init frame.
    let init = InitFrame::read_from_bytes(unsafe {
        std::slice::from_raw_parts(init_iova as *const u8, 32)
    })
    .unwrap();
    let reply_ring = init.reply_ring.get() as *mut u8;
    let request_ring = init.request_ring.get() as *const u8;
    let entries = init.reply_entries.get();
    p.regs[(reg::FW_STATE / 4) as usize] = fw_state::OPERATIONAL;
    assert_eq!(fw.step(&mut p, 0), Step::Operational);

    let mut task = abi::dk_scsi_user_parallel_task {
        fTargetID: 0,
        fCommandSize: 10,
        fTransferDirection: 2,
        fRequestedTransferCount: 4096,
        fBufferIOVMAddr: 0x1000_0000,
        fTimeoutInMilliSec: 30_000,
        ..Default::default()
    };
    task.fCommandDescriptorBlock[..10].copy_from_slice(&[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0]);
    let mut producer: u16 = 0;
    let mut phase = ReplyFlags::PHASE.bits();

    let mut g = c.benchmark_group("firmware_path");
    g.throughput(Throughput::Elements(1));
    g.bench_function("submit_and_complete", |b| {
        b.iter(|| {
            let id = pool.task(1).unwrap();
            task.fControllerTaskIdentifier = 1;
            pool.submit(id).unwrap();
            fw.submit(&mut p, &pool, id, black_box(&task), 0).unwrap();
            // The firmware: consume the request (its descriptor, and its frame's tag), write
            // the sealed reply echoing the tag.
            let at = p.regs[(reg::REQUEST_CONSUMER / 4) as usize] as usize * 16;
            // SAFETY: the request ring holds `entries` 16-byte descriptors, identity-mapped,
            // and the consumer index the bench keeps is below `entries`.
            let d = RequestDescriptor::read_from_bytes(unsafe {
                std::slice::from_raw_parts(request_ring.wrapping_add(at), 16)
            })
            .unwrap();
            // SAFETY: the descriptor names the task's identity-mapped DMA frame, which starts
            // with the 48-byte request frame the core just built.
            let frame = RequestFrame::read_from_bytes(unsafe {
                std::slice::from_raw_parts(d.frame.get() as *const u8, 48)
            })
            .unwrap();
            p.regs[(reg::REQUEST_CONSUMER / 4) as usize] =
                p.regs[(reg::REQUEST_PRODUCER / 4) as usize];
            let r = ReplyDescriptor::sealed(d.smid.get(), 0, phase, 4096, frame.tag.get());
            const ENTRY: usize = std::mem::size_of::<ReplyDescriptor>();
            let slot = reply_ring.wrapping_add(usize::from(producer) * ENTRY);
            // SAFETY: the reply ring holds `entries` 16-byte entries and `producer` < entries.
            unsafe { std::ptr::copy_nonoverlapping(r.as_bytes().as_ptr(), slot, ENTRY) };
            producer += 1;
            if producer == entries {
                producer = 0;
                phase ^= ReplyFlags::PHASE.bits();
            }
            p.regs[(reg::REPLY_PRODUCER / 4) as usize] = u32::from(producer);
            let mut n = 0;
            fw.interrupt(&mut p, &mut pool, |_, resp| {
                n += black_box(resp.fBytesTransferred);
            });
            assert_eq!(n, 4096, "the genuine reply completes the task");
            pool.release(id).unwrap();
            n
        })
    });
    g.finish();

    // What the controller adds per completion for IO_STATS: the task's kind from its CDB, the
    // latency bucket, and the target's and the controller's counters.
    let mut stats = IoStatsTable::new();
    let response =
        abi::dk_scsi_user_parallel_response { fBytesTransferred: 4096, ..Default::default() };
    let mut now: u64 = 0;
    let mut g = c.benchmark_group("io_stats");
    g.throughput(Throughput::Elements(1));
    g.bench_function("count_a_completion", |b| {
        b.iter(|| {
            let started = Started::new(now, IoKind::of_task(black_box(&task)));
            now += 37_000;
            stats.complete(black_box(3), started, now, black_box(&response));
        })
    });
    g.finish();
    assert!(stats.get(3).to_wire().reads.get() > 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
