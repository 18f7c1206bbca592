//! The task pool behind `UserMapHBAData` (DRIVERKIT.md §2), and where a task slot changes state.
//!
//! The kernel asks for `N` tasks (`UserReportMaximumTaskCount`) and calls `UserMapHBAData` once
//! per task; each call gets the next ID of `1..=N` and a per-task DMA frame mapped through the
//! platform here, never on the I/O path. Because each pooled task is outstanding at most once,
//! the ID is the 1-based index of its slot.
//!
//! Slot states change only through [`TaskPool::submit`], [`TaskPool::complete`] and
//! [`TaskPool::release`], each of which checks the state it leaves:
//!
//! ```text
//! Free --submit--> Submitted --complete--> Completed --release--> Free
//! ```

use core::fmt;

use crate::ioreturn::IOReturn;
use crate::limits::{FrameLayout, MAX_TASK_COUNT};
use crate::platform::{DmaDirection, DmaHandle, DmaSegment, Platform, DMA_MAX_SEGMENTS};

/// A task ID as handed to the kernel: `1..=N`, never 0 (the kernel's "first task" sentinel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(u64);

impl TaskId {
    /// `None` for 0.
    pub const fn new(raw: u64) -> Option<TaskId> {
        if raw == 0 {
            None
        } else {
            Some(TaskId(raw))
        }
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The ID as `UserMapHBAData(uint32_t *)` hands it out. IDs never exceed
    /// `MAX_TASK_COUNT`, so this never truncates.
    pub const fn get32(self) -> u32 {
        self.0 as u32
    }

    /// The slot index (`id - 1`). Only meaningful for IDs the pool handed out.
    const fn index(self) -> usize {
        (self.0 - 1) as usize
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Mapped and idle: the kernel may send a task with this ID.
    Free,
    /// Accepted in `UserProcessParallelTask`; the hardware or the emulator owns it.
    Submitted,
    /// Its response is built; the completion is being delivered to the kernel.
    Completed,
}

impl SlotState {
    pub const fn name(self) -> &'static str {
        match self {
            SlotState::Free => "Free",
            SlotState::Submitted => "Submitted",
            SlotState::Completed => "Completed",
        }
    }
}

/// A task's DMA frame: where the core writes request frames and the device writes sense data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskFrame {
    pub handle: DmaHandle,
    /// The dext's CPU mapping.
    pub cpu_address: u64,
    /// What the device is given (from `PrepareForDMA`, never `GetAddress`).
    pub iova: u64,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    state: SlotState,
    frame: TaskFrame,
}

/// Everything that can go wrong in the pool, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// `UserMapHBAData` before `UserReportMaximumTaskCount`.
    CountNotKnown,
    /// A maximum task count of 0.
    ZeroCount,
    /// More tasks than the core can hold.
    CountTooLarge { requested: u32, max: u32 },
    /// The count was already reported.
    CountAlreadyKnown { count: u32 },
    /// The (N+1)-th `UserMapHBAData`.
    Exhausted { count: u32 },
    /// `dma_buffer_create` failed.
    CreateFailed { task: TaskId, status: IOReturn },
    /// The platform returned a buffer that cannot be used as asked (NULL, misaligned, short).
    BadBuffer { task: TaskId, cpu_address: u64, cpu_length: u64 },
    /// `dma_buffer_prepare` failed.
    PrepareFailed { task: TaskId, status: IOReturn },
    /// The preparation reported no segments, or more than the array holds.
    BadSegmentCount { task: TaskId, count: usize },
    /// The mapping covers fewer bytes than the frame.
    ShortMapping { task: TaskId, mapped: u64, expected: u64 },
    /// The mapping covers more bytes than the frame.
    LongMapping { task: TaskId, mapped: u64, expected: u64 },
    /// The frame must be one contiguous device range; the mapping came in pieces.
    SplitMapping { task: TaskId, segments: usize },
    /// The device address is 0, not aligned like the frame, or wraps.
    BadDeviceAddress { task: TaskId, iova: u64, alignment: u64 },
    /// A task ID the pool never handed out (0, or above the mapped count).
    UnknownTask { raw_id: u64, mapped: u32 },
    /// A state change from the wrong state: a duplicate submission, a double completion, ...
    InvalidTransition { task: TaskId, from: SlotState, to: SlotState },
}

impl PoolError {
    pub const fn name(&self) -> &'static str {
        match self {
            PoolError::CountNotKnown => "TaskCountNotKnown",
            PoolError::ZeroCount => "ZeroTaskCount",
            PoolError::CountTooLarge { .. } => "TaskCountTooLarge",
            PoolError::CountAlreadyKnown { .. } => "TaskCountAlreadyKnown",
            PoolError::Exhausted { .. } => "TaskPoolExhausted",
            PoolError::CreateFailed { .. } => "DmaBufferCreateFailed",
            PoolError::BadBuffer { .. } => "DmaBufferUnusable",
            PoolError::PrepareFailed { .. } => "DmaPrepareFailed",
            PoolError::BadSegmentCount { .. } => "DmaBadSegmentCount",
            PoolError::ShortMapping { .. } => "DmaShortMapping",
            PoolError::LongMapping { .. } => "DmaLongMapping",
            PoolError::SplitMapping { .. } => "DmaSplitMapping",
            PoolError::BadDeviceAddress { .. } => "DmaBadDeviceAddress",
            PoolError::UnknownTask { .. } => "UnknownTaskId",
            PoolError::InvalidTransition { .. } => "InvalidSlotTransition",
        }
    }

    /// What the entry point returns to DriverKit.
    pub const fn ioreturn(&self) -> IOReturn {
        match self {
            PoolError::CountNotKnown => IOReturn::kIOReturnNotReady,
            PoolError::ZeroCount | PoolError::CountTooLarge { .. } => {
                IOReturn::kIOReturnBadArgument
            }
            PoolError::CountAlreadyKnown { .. } => IOReturn::kIOReturnNotPermitted,
            PoolError::Exhausted { .. } => IOReturn::kIOReturnNoResources,
            PoolError::CreateFailed { status, .. } | PoolError::PrepareFailed { status, .. } => {
                *status
            }
            PoolError::BadBuffer { .. } => IOReturn::kIOReturnNoMemory,
            PoolError::BadSegmentCount { .. }
            | PoolError::SplitMapping { .. }
            | PoolError::BadDeviceAddress { .. } => IOReturn::kIOReturnDMAError,
            PoolError::ShortMapping { .. } => IOReturn::kIOReturnUnderrun,
            PoolError::LongMapping { .. } => IOReturn::kIOReturnOverrun,
            PoolError::UnknownTask { .. } => IOReturn::kIOReturnBadArgument,
            PoolError::InvalidTransition { .. } => IOReturn::kIOReturnNotPermitted,
        }
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match *self {
            PoolError::CountNotKnown => f.write_str(
                "UserMapHBAData before UserReportMaximumTaskCount: the pool size is not known",
            ),
            PoolError::ZeroCount => f.write_str("the maximum task count must be at least 1"),
            PoolError::CountTooLarge { requested, max } => {
                write!(f, "{requested} tasks asked, the core holds at most {max}")
            }
            PoolError::CountAlreadyKnown { count } => {
                write!(f, "the task count was already reported as {count}")
            }
            PoolError::Exhausted { count } => write!(
                f,
                "UserMapHBAData called more than the {count} times the reported task count allows"
            ),
            PoolError::CreateFailed { task, status } => {
                write!(f, "creating the DMA frame of {task} failed with {status}")
            }
            PoolError::BadBuffer { task, cpu_address, cpu_length } => write!(
                f,
                "the DMA frame of {task} is unusable: CPU address {cpu_address:#x}, \
                 length {cpu_length}"
            ),
            PoolError::PrepareFailed { task, status } => {
                write!(f, "PrepareForDMA of the frame of {task} failed with {status}")
            }
            PoolError::BadSegmentCount { task, count } => write!(
                f,
                "PrepareForDMA of the frame of {task} reported {count} segments (1..={DMA_MAX_SEGMENTS})"
            ),
            PoolError::ShortMapping { task, mapped, expected } => write!(
                f,
                "the frame of {task} is mapped for {mapped} of its {expected} bytes"
            ),
            PoolError::LongMapping { task, mapped, expected } => write!(
                f,
                "the frame of {task} is mapped for {mapped} bytes, more than its {expected}"
            ),
            PoolError::SplitMapping { task, segments } => write!(
                f,
                "the frame of {task} must be one contiguous device range but is mapped as \
                 {segments} segments"
            ),
            PoolError::BadDeviceAddress { task, iova, alignment } => write!(
                f,
                "the frame of {task} has device address {iova:#x}, not a usable address \
                 aligned to {alignment}"
            ),
            PoolError::UnknownTask { raw_id, mapped } => {
                write!(f, "task ID {raw_id} was never handed out (IDs are 1..={mapped})")
            }
            PoolError::InvalidTransition { task, from, to } => write!(
                f,
                "{task} cannot go from {} to {}",
                from.name(),
                to.name()
            ),
        }
    }
}

/// The pool: `MAX_TASK_COUNT` slots, the first `mapped` of which are live.
#[derive(Debug)]
pub struct TaskPool {
    slots: [Option<Slot>; MAX_TASK_COUNT as usize],
    /// `N` from `UserReportMaximumTaskCount`; `None` until then.
    count: Option<u32>,
    /// Slots `0..mapped` hold a frame.
    mapped: u32,
}

impl Default for TaskPool {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskPool {
    pub const fn new() -> Self {
        TaskPool { slots: [None; MAX_TASK_COUNT as usize], count: None, mapped: 0 }
    }

    /// Record `N`. Must come before the first [`TaskPool::map_next`].
    pub fn set_count(&mut self, count: u32) -> Result<(), PoolError> {
        if let Some(count) = self.count {
            return Err(PoolError::CountAlreadyKnown { count });
        }
        if count == 0 {
            return Err(PoolError::ZeroCount);
        }
        if count > MAX_TASK_COUNT {
            return Err(PoolError::CountTooLarge { requested: count, max: MAX_TASK_COUNT });
        }
        self.count = Some(count);
        Ok(())
    }

    pub const fn count(&self) -> Option<u32> {
        self.count
    }

    pub const fn mapped(&self) -> u32 {
        self.mapped
    }

    /// One `UserMapHBAData`: create and map the next task's frame and return its ID. On any
    /// failure the buffer is released and the ID is not consumed.
    pub fn map_next<P: Platform>(
        &mut self,
        platform: &mut P,
        layout: FrameLayout,
    ) -> Result<TaskId, PoolError> {
        let count = self.count.ok_or(PoolError::CountNotKnown)?;
        if self.mapped >= count {
            return Err(PoolError::Exhausted { count });
        }
        let task = TaskId(u64::from(self.mapped) + 1);
        let buffer = platform
            .dma_buffer_create(layout.bytes, layout.alignment, DmaDirection::InOut)
            .map_err(|status| PoolError::CreateFailed { task, status })?;
        match Self::check_mapping(
            platform,
            task,
            buffer.handle,
            layout,
            buffer.cpu_address,
            buffer.cpu_length,
        ) {
            Ok(iova) => {
                let frame = TaskFrame {
                    handle: buffer.handle,
                    cpu_address: buffer.cpu_address,
                    iova,
                    bytes: layout.bytes,
                };
                self.slots[task.index()] = Some(Slot { state: SlotState::Free, frame });
                self.mapped += 1;
                Ok(task)
            }
            Err(err) => {
                platform.dma_buffer_free(buffer.handle);
                Err(err)
            }
        }
    }

    /// Prepare the buffer and check what came back; the device address on success.
    fn check_mapping<P: Platform>(
        platform: &mut P,
        task: TaskId,
        handle: DmaHandle,
        layout: FrameLayout,
        cpu_address: u64,
        cpu_length: u64,
    ) -> Result<u64, PoolError> {
        if cpu_address == 0 || cpu_address % layout.alignment != 0 || cpu_length < layout.bytes {
            return Err(PoolError::BadBuffer { task, cpu_address, cpu_length });
        }
        let mut segments = [DmaSegment::default(); DMA_MAX_SEGMENTS];
        let count = platform
            .dma_buffer_prepare(handle, &mut segments)
            .map_err(|status| PoolError::PrepareFailed { task, status })?;
        if count == 0 || count > segments.len() {
            return Err(PoolError::BadSegmentCount { task, count });
        }
        let mut mapped: u64 = 0;
        for segment in &segments[..count] {
            mapped = mapped.saturating_add(segment.length);
        }
        let expected = layout.bytes;
        if mapped < expected {
            return Err(PoolError::ShortMapping { task, mapped, expected });
        }
        if mapped > expected {
            return Err(PoolError::LongMapping { task, mapped, expected });
        }
        if count > 1 {
            return Err(PoolError::SplitMapping { task, segments: count });
        }
        let iova = segments[0].address;
        if iova == 0 || iova % layout.alignment != 0 || iova.checked_add(expected).is_none() {
            return Err(PoolError::BadDeviceAddress { task, iova, alignment: layout.alignment });
        }
        Ok(iova)
    }

    /// Look a raw ID from the kernel up; 0 and IDs never handed out are refused by name.
    pub fn task(&self, raw_id: u64) -> Result<TaskId, PoolError> {
        match TaskId::new(raw_id) {
            Some(task) if raw_id <= u64::from(self.mapped) => Ok(task),
            _ => Err(PoolError::UnknownTask { raw_id, mapped: self.mapped }),
        }
    }

    pub fn state(&self, task: TaskId) -> Result<SlotState, PoolError> {
        Ok(self.slot(task)?.state)
    }

    pub fn frame(&self, task: TaskId) -> Result<TaskFrame, PoolError> {
        Ok(self.slot(task)?.frame)
    }

    fn slot(&self, task: TaskId) -> Result<&Slot, PoolError> {
        self.slots
            .get(task.index())
            .and_then(Option::as_ref)
            .ok_or(PoolError::UnknownTask { raw_id: task.get(), mapped: self.mapped })
    }

    /// The one place a slot changes state.
    fn transition(
        &mut self,
        task: TaskId,
        from: SlotState,
        to: SlotState,
    ) -> Result<(), PoolError> {
        let mapped = self.mapped;
        let slot = self
            .slots
            .get_mut(task.index())
            .and_then(Option::as_mut)
            .ok_or(PoolError::UnknownTask { raw_id: task.get(), mapped })?;
        if slot.state != from {
            return Err(PoolError::InvalidTransition { task, from: slot.state, to });
        }
        slot.state = to;
        Ok(())
    }

    /// Free → Submitted (`UserProcessParallelTask` accepted it). A duplicate is refused.
    pub fn submit(&mut self, task: TaskId) -> Result<(), PoolError> {
        self.transition(task, SlotState::Free, SlotState::Submitted)
    }

    /// Submitted → Completed (its response is built). A second completion is refused.
    pub fn complete(&mut self, task: TaskId) -> Result<(), PoolError> {
        self.transition(task, SlotState::Submitted, SlotState::Completed)
    }

    /// Completed → Free (the completion was delivered to the kernel).
    pub fn release(&mut self, task: TaskId) -> Result<(), PoolError> {
        self.transition(task, SlotState::Completed, SlotState::Free)
    }

    /// How many slots are in `state`.
    pub fn count_in(&self, state: SlotState) -> usize {
        self.slots.iter().flatten().filter(|s| s.state == state).count()
    }

    /// Release every frame. Idempotent; the pool is empty (and its count unknown) afterwards.
    pub fn teardown<P: Platform>(&mut self, platform: &mut P) {
        for slot in self.slots.iter_mut() {
            if let Some(slot) = slot.take() {
                platform.dma_buffer_free(slot.frame.handle);
            }
        }
        self.mapped = 0;
        self.count = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::PageSize;
    use crate::platform::fake::{FakePlatform, PrepareFault};

    fn layout(p: &FakePlatform) -> FrameLayout {
        FrameLayout::for_page_size(PageSize::new(p.page_size()).unwrap())
    }

    fn pool_of(p: &mut FakePlatform, n: u32) -> TaskPool {
        let mut pool = TaskPool::new();
        pool.set_count(n).unwrap();
        let l = layout(p);
        for expected in 1..=u64::from(n) {
            assert_eq!(pool.map_next(p, l).unwrap().get(), expected);
        }
        pool
    }

    #[test]
    fn ids_are_one_to_n_exactly_n_times() {
        for n in [1, 2, 31, 128, MAX_TASK_COUNT] {
            let mut p = FakePlatform::new();
            let mut pool = pool_of(&mut p, n);
            assert_eq!(pool.mapped(), n);
            let l = layout(&p);
            assert_eq!(
                pool.map_next(&mut p, l),
                Err(PoolError::Exhausted { count: n }),
                "the (N+1)-th call"
            );
            assert_eq!(p.live_buffers(), n as usize, "the refused call created nothing");
            pool.teardown(&mut p);
            assert_eq!(p.live_buffers(), 0);
            assert!(p.bad_frees.is_empty());
        }
    }

    #[test]
    fn the_count_is_checked() {
        let mut p = FakePlatform::new();
        let mut pool = TaskPool::new();
        let l = layout(&p);
        assert_eq!(pool.map_next(&mut p, l), Err(PoolError::CountNotKnown));
        assert_eq!(p.create_calls(), 0);
        assert_eq!(pool.set_count(0), Err(PoolError::ZeroCount));
        assert_eq!(
            pool.set_count(MAX_TASK_COUNT + 1),
            Err(PoolError::CountTooLarge { requested: MAX_TASK_COUNT + 1, max: MAX_TASK_COUNT })
        );
        pool.set_count(4).unwrap();
        assert_eq!(pool.set_count(4), Err(PoolError::CountAlreadyKnown { count: 4 }));
        assert_eq!(PoolError::CountNotKnown.ioreturn(), IOReturn::kIOReturnNotReady);
        assert_eq!(PoolError::ZeroCount.ioreturn(), IOReturn::kIOReturnBadArgument);
        assert_eq!(PoolError::Exhausted { count: 4 }.ioreturn(), IOReturn::kIOReturnNoResources);
    }

    #[test]
    fn frames_are_sized_and_aligned_for_the_page_size() {
        for page in [4096u64, 16384] {
            let mut p = FakePlatform::with_page_size(page);
            let mut pool = pool_of(&mut p, 8);
            for (capacity, alignment, direction) in &p.created {
                assert_eq!((*capacity, *alignment), (page, page));
                assert_eq!(*direction, DmaDirection::InOut);
            }
            for id in 1..=8 {
                let frame = pool.frame(pool.task(id).unwrap()).unwrap();
                assert_eq!(frame.bytes, page);
                assert_eq!(frame.iova % page, 0);
                assert_eq!(frame.cpu_address % page, 0);
                assert_ne!(frame.iova, frame.cpu_address, "the device address is an IOVA");
                assert_eq!(Some(frame.iova), p.iova_of(frame.handle));
            }
            pool.teardown(&mut p);
            assert_eq!(p.live_buffers(), 0);
        }
    }

    /// Every injected failure, at the first task and in the middle of the pool: the error is
    /// named, the failed buffer is released, the pool keeps the tasks mapped before it, the ID
    /// is not consumed, and teardown leaves nothing behind.
    #[test]
    fn every_injected_failure_is_named_and_leaks_nothing() {
        type Inject = fn(&mut FakePlatform, u32);
        type Expect = fn(TaskId) -> PoolError;
        let cases: [(&str, Inject, Expect); 7] = [
            (
                "NULL CPU address",
                |p, n| {
                    p.null_create_at(n);
                },
                |task| PoolError::BadBuffer { task, cpu_address: 0, cpu_length: 16384 },
            ),
            (
                "misaligned device address",
                |p, n| {
                    p.fault_prepare_at(n, PrepareFault::Misaligned);
                },
                |task| PoolError::BadDeviceAddress {
                    task,
                    iova: crate::platform::fake::IOVA_BASE
                        + 512
                        + (u64::from(task.get32()) - 1) * 2 * 16384,
                    alignment: 16384,
                },
            ),
            (
                "create fails",
                |p, n| {
                    p.fail_create_at(n, IOReturn::kIOReturnNoMemory);
                },
                |task| PoolError::CreateFailed { task, status: IOReturn::kIOReturnNoMemory },
            ),
            (
                "prepare fails",
                |p, n| {
                    p.fault_prepare_at(n, PrepareFault::Fail(IOReturn::kIOReturnVMError));
                },
                |task| PoolError::PrepareFailed { task, status: IOReturn::kIOReturnVMError },
            ),
            (
                "short mapping",
                |p, n| {
                    p.fault_prepare_at(n, PrepareFault::Short { mapped_bytes: 4096 });
                },
                |task| PoolError::ShortMapping { task, mapped: 4096, expected: 16384 },
            ),
            (
                "empty mapping",
                |p, n| {
                    p.fault_prepare_at(n, PrepareFault::Short { mapped_bytes: 0 });
                },
                |task| PoolError::ShortMapping { task, mapped: 0, expected: 16384 },
            ),
            (
                "split mapping",
                |p, n| {
                    p.fault_prepare_at(n, PrepareFault::Split);
                },
                |task| PoolError::SplitMapping { task, segments: 2 },
            ),
        ];
        for (what, inject, expect) in cases {
            for fail_at in [1u32, 5, 16] {
                let mut p = FakePlatform::new();
                inject(&mut p, fail_at);
                let mut pool = TaskPool::new();
                pool.set_count(16).unwrap();
                let l = layout(&p);
                for id in 1..fail_at {
                    assert_eq!(pool.map_next(&mut p, l).unwrap().get(), u64::from(id), "{what}");
                }
                let failing = TaskId(u64::from(fail_at));
                let err = pool.map_next(&mut p, l).unwrap_err();
                assert_eq!(err, expect(failing), "{what} at {fail_at}");
                assert!(err.to_string().contains(&failing.to_string()), "{err}");
                assert_ne!(err.ioreturn(), IOReturn::kIOReturnSuccess);
                assert_eq!(pool.mapped(), fail_at - 1, "{what}: the pool is truncated there");
                assert_eq!(p.live_buffers(), (fail_at - 1) as usize, "{what}: failed frame freed");
                // The kernel may try again (it does not, but the core must cope): same ID.
                if fail_at < 16 {
                    assert_eq!(pool.map_next(&mut p, l).unwrap(), failing, "{what}");
                }
                pool.teardown(&mut p);
                assert_eq!(p.live_buffers(), 0, "{what} at {fail_at}: leak after teardown");
                assert!(p.bad_frees.is_empty(), "{what}: double free {:?}", p.bad_frees);
            }
        }
    }

    #[test]
    fn task_lookup_refuses_zero_and_unmapped_ids() {
        let mut p = FakePlatform::with_page_size(4096);
        let mut pool = pool_of(&mut p, 4);
        assert_eq!(pool.task(0), Err(PoolError::UnknownTask { raw_id: 0, mapped: 4 }));
        assert_eq!(pool.task(5), Err(PoolError::UnknownTask { raw_id: 5, mapped: 4 }));
        assert_eq!(
            pool.task(u64::MAX),
            Err(PoolError::UnknownTask { raw_id: u64::MAX, mapped: 4 })
        );
        assert_eq!(pool.task(4).unwrap().get(), 4);
        pool.teardown(&mut p);
        assert!(pool.task(1).is_err(), "nothing is mapped after teardown");
    }

    #[test]
    fn slot_states_change_only_along_the_cycle() {
        let mut p = FakePlatform::new();
        let mut pool = pool_of(&mut p, 2);
        let t = pool.task(1).unwrap();
        assert_eq!(pool.state(t), Ok(SlotState::Free));
        assert_eq!(
            pool.complete(t),
            Err(PoolError::InvalidTransition {
                task: t,
                from: SlotState::Free,
                to: SlotState::Completed
            })
        );
        pool.submit(t).unwrap();
        let dup = pool.submit(t).unwrap_err();
        assert_eq!(
            dup,
            PoolError::InvalidTransition {
                task: t,
                from: SlotState::Submitted,
                to: SlotState::Submitted
            }
        );
        assert_eq!(
            dup.to_string(),
            "InvalidSlotTransition: task 1 cannot go from Submitted to Submitted"
        );
        assert_eq!(pool.release(t).unwrap_err().name(), "InvalidSlotTransition");
        pool.complete(t).unwrap();
        assert_eq!(
            pool.complete(t),
            Err(PoolError::InvalidTransition {
                task: t,
                from: SlotState::Completed,
                to: SlotState::Completed
            }),
            "exactly-once completion"
        );
        assert_eq!(pool.count_in(SlotState::Completed), 1);
        pool.release(t).unwrap();
        assert_eq!(pool.state(t), Ok(SlotState::Free));
        assert_eq!(pool.count_in(SlotState::Free), 2);
        // The other slot was never touched.
        assert_eq!(pool.state(pool.task(2).unwrap()), Ok(SlotState::Free));
        pool.teardown(&mut p);
    }

    #[test]
    fn teardown_is_idempotent() {
        let mut p = FakePlatform::new();
        let mut pool = pool_of(&mut p, 3);
        pool.teardown(&mut p);
        pool.teardown(&mut p);
        assert_eq!(p.live_buffers(), 0);
        assert!(p.bad_frees.is_empty());
        assert_eq!(pool.count(), None);
    }
}
