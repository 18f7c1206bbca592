//! The core's limits: every size the driver works with, fixed at compile time or derived once
//! at init from the platform's page size. Nothing is sized on the I/O path.

use crate::abi;

/// The most tasks the core can hold (the size of the slot array).
pub const MAX_TASK_COUNT: u32 = abi::DK_MAX_TASK_COUNT;
/// Tasks reported by `UserReportMaximumTaskCount` unless the personality says otherwise.
pub const DEFAULT_TASK_COUNT: u32 = 128;

/// What one task's DMA frame must hold: the firmware request frame, its scatter-gather chain
/// and the sense buffer the device writes. The frame is rounded up to a whole page.
pub const TASK_FRAME_MIN_BYTES: u64 = 4096;

/// `IOVMPageSize` bounds: 4 KiB (Intel) .. 16 KiB (Apple silicon), 64 KiB as headroom.
pub const MIN_PAGE_SIZE: u64 = 4096;
pub const MAX_PAGE_SIZE: u64 = 64 * 1024;

/// Scatter-gather limits the controller accepts per task.
pub const MAX_SEGMENT_COUNT: u64 = 128;
pub const MAX_SEGMENT_BYTES: u64 = 64 * 1024;
/// The largest transfer of one task (`UserGetDMASpecification`): every segment full.
pub const MAX_TRANSFER_BYTES: u64 = MAX_SEGMENT_COUNT * MAX_SEGMENT_BYTES;
/// Data segments must be 4-byte aligned (dword SGEs).
pub const MIN_SEGMENT_ALIGNMENT_BYTES: u64 = 4;
/// The controller addresses all 64 bits.
pub const SEGMENT_ADDRESSABLE_BITS: u64 = 64;
/// `kIOMinimumHBADataAlignmentMask`: 16-byte aligned anywhere in 64-bit memory. (The kernel's
/// default is 0xFFFF_FFF0: 16-byte aligned, 32-bit memory only.)
pub const HBA_DATA_ALIGNMENT_MASK: u64 = 0xFFFF_FFFF_FFFF_FFF0;

/// The initiator's own ID on the bus, and the highest target ID the controller reports
/// (inclusive). Targets are volumes; the initiator ID is never a target.
pub const INITIATOR_ID: u64 = 255;
pub const HIGHEST_TARGET_ID: u64 = 127;

const _: () = assert!(TASK_FRAME_MIN_BYTES <= MIN_PAGE_SIZE);
const _: () = assert!(MIN_PAGE_SIZE.is_power_of_two() && MAX_PAGE_SIZE.is_power_of_two());
const _: () = assert!(DEFAULT_TASK_COUNT <= MAX_TASK_COUNT);
const _: () = assert!(INITIATOR_ID > HIGHEST_TARGET_ID);

/// A validated `IOVMPageSize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize(u64);

impl PageSize {
    pub const fn new(bytes: u64) -> Option<PageSize> {
        if bytes.is_power_of_two() && bytes >= MIN_PAGE_SIZE && bytes <= MAX_PAGE_SIZE {
            Some(PageSize(bytes))
        } else {
            None
        }
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    pub const fn round_up(self, n: u64) -> u64 {
        n.div_ceil(self.0) * self.0
    }
}

/// Size and alignment of one task's DMA frame on a system with this page size.
///
/// The frame is a whole number of pages and page-aligned, so with one page (the case for every
/// supported page size) it can never straddle two IOMMU pages: the mapping must come back as
/// exactly one segment of exactly this length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    pub bytes: u64,
    pub alignment: u64,
}

impl FrameLayout {
    pub const fn for_page_size(page: PageSize) -> FrameLayout {
        FrameLayout { bytes: page.round_up(TASK_FRAME_MIN_BYTES), alignment: page.bytes() }
    }
}

/// The seven keys `UserReportHBAConstraints` must carry.
pub const fn hba_constraints() -> abi::dk_hba_constraints {
    abi::dk_hba_constraints {
        max_segment_count_read: MAX_SEGMENT_COUNT,
        max_segment_count_write: MAX_SEGMENT_COUNT,
        max_segment_byte_count_read: MAX_SEGMENT_BYTES,
        max_segment_byte_count_write: MAX_SEGMENT_BYTES,
        min_segment_alignment_byte_count: MIN_SEGMENT_ALIGNMENT_BYTES,
        max_segment_addressable_bit_count: SEGMENT_ADDRESSABLE_BITS,
        min_hba_data_alignment_mask: HBA_DATA_ALIGNMENT_MASK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(PageSize::new(4096).map(PageSize::bytes), Some(4096));
        assert_eq!(PageSize::new(16384).map(PageSize::bytes), Some(16384));
        for bad in [0, 512, 2048, 4095, 12288, 128 * 1024, u64::MAX] {
            assert_eq!(PageSize::new(bad), None, "{bad}");
        }
    }

    #[test]
    fn frames_are_one_whole_page() {
        let f4 = FrameLayout::for_page_size(PageSize::new(4096).unwrap());
        assert_eq!(f4, FrameLayout { bytes: 4096, alignment: 4096 });
        let f16 = FrameLayout::for_page_size(PageSize::new(16384).unwrap());
        assert_eq!(f16, FrameLayout { bytes: 16384, alignment: 16384 });
    }

    #[test]
    fn every_constraint_is_set() {
        let c = hba_constraints();
        for v in [
            c.max_segment_count_read,
            c.max_segment_count_write,
            c.max_segment_byte_count_read,
            c.max_segment_byte_count_write,
            c.min_segment_alignment_byte_count,
            c.max_segment_addressable_bit_count,
            c.min_hba_data_alignment_mask,
        ] {
            assert_ne!(v, 0);
        }
    }
}
