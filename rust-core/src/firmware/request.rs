//! Building requests: the request frame and its scatter-gather list go into the task's own
//! pre-mapped DMA frame (no allocation, no mapping on the I/O path), the data address is the
//! task's `fBufferIOVMAddr`, the task ID is the request identifier (SMID), and the descriptor
//! goes onto the request ring — or, when the ring is full, the task is answered TASK SET FULL
//! instead of waiting.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use super::wire::{direction, frame_layout, function, RequestDescriptor, RequestFrame, Sge};
use crate::abi;
use crate::task_pool::{TaskFrame, TaskId};

/// Why a task could not be turned into a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The task's frame is smaller than a request needs.
    FrameTooSmall { bytes: u64 },
    /// fCommandSize is 0 or more than 16.
    BadCdbLength { length: u8 },
    /// fTransferDirection is not 0, 1 or 2.
    BadDirection { direction: u8 },
    /// Data is to move but fBufferIOVMAddr is 0, or the transfer does not fit 32 bits.
    BadDataBuffer { iova: u64, length: u64 },
    /// The request ring is full: answer TASK SET FULL, the kernel retries.
    RingFull,
}

/// Write the request frame for `task` into `frame` (the task's DMA frame, CPU view), carrying
/// `tag` (the submission's tag, which the reply must echo), and return the descriptor that
/// names it.
pub fn build(
    id: TaskId,
    tag: u32,
    task: &abi::dk_scsi_user_parallel_task,
    frame: &TaskFrame,
    memory: &mut [u8],
) -> Result<RequestDescriptor, RequestError> {
    if memory.len() < frame_layout::SENSE + frame_layout::SENSE_BYTES {
        return Err(RequestError::FrameTooSmall { bytes: memory.len() as u64 });
    }
    let cdb_length = task.fCommandSize;
    if cdb_length == 0 || usize::from(cdb_length) > task.fCommandDescriptorBlock.len() {
        return Err(RequestError::BadCdbLength { length: cdb_length });
    }
    let (dir, sge_count) = match task.fTransferDirection {
        0 => (direction::NONE, 0u8),
        1 => (direction::TO_DEVICE, 1),
        2 => (direction::FROM_DEVICE, 1),
        other => return Err(RequestError::BadDirection { direction: other }),
    };
    let length = task.fRequestedTransferCount;
    let moves_data = sge_count != 0 && length != 0;
    if moves_data && (task.fBufferIOVMAddr == 0 || u32::try_from(length).is_err()) {
        return Err(RequestError::BadDataBuffer { iova: task.fBufferIOVMAddr, length });
    }
    let lun =
        (u16::from(task.fLogicalUnitBytes[0] & 0x3F) << 8) | u16::from(task.fLogicalUnitBytes[1]);
    let mut cdb = [0u8; 16];
    cdb[..usize::from(cdb_length)]
        .copy_from_slice(&task.fCommandDescriptorBlock[..usize::from(cdb_length)]);
    let request = RequestFrame {
        function: function::SCSI_IO,
        direction: if moves_data { dir } else { direction::NONE },
        cdb_length,
        sge_count: u8::from(moves_data),
        target: U16::new(task.fTargetID.min(u64::from(u16::MAX)) as u16),
        lun: U16::new(lun),
        timeout_ms: U32::new(task.fTimeoutInMilliSec),
        data_length: U32::new(if moves_data { length as u32 } else { 0 }),
        sense_buffer: U64::new(frame.iova + frame_layout::SENSE as u64),
        sense_length: U16::new(frame_layout::SENSE_BYTES as u16),
        abort_smid: U16::new(0),
        tag: U32::new(tag),
        cdb,
    };
    memory[frame_layout::REQUEST..frame_layout::SGL].copy_from_slice(request.as_bytes());
    let mut frame_length = frame_layout::SGL;
    if moves_data {
        // The kernel's data address covers the whole transfer: one element.
        let sge = Sge {
            address: U64::new(task.fBufferIOVMAddr),
            length: U32::new(length as u32),
            flags: U32::new(0),
        };
        memory[frame_layout::SGL..frame_layout::SGL + 16].copy_from_slice(sge.as_bytes());
        frame_length += 16;
    }
    // Clear the sense area so stale sense is never mistaken for new.
    memory[frame_layout::SENSE..frame_layout::SENSE + frame_layout::SENSE_BYTES].fill(0);
    Ok(RequestDescriptor {
        smid: U16::new(id.get32() as u16),
        function: function::SCSI_IO,
        reserved: 0,
        frame_length: U32::new(frame_length as u32),
        frame: U64::new(frame.iova),
    })
}

/// The host's side of the request ring: the producer index, and the firmware's consumer index
/// as last read. One slot stays empty so "full" and "empty" differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRing {
    entries: u16,
    producer: u16,
    consumer: u16,
}

impl RequestRing {
    pub const fn new(entries: u16) -> Option<RequestRing> {
        if entries < 2 {
            None
        } else {
            Some(RequestRing { entries, producer: 0, consumer: 0 })
        }
    }

    pub const fn producer(&self) -> u16 {
        self.producer
    }

    /// The firmware's consumer index (REQUEST_CONSUMER). A value outside the ring is ignored:
    /// the device is not trusted.
    pub fn set_consumer(&mut self, consumer: u32) -> bool {
        if consumer < u32::from(self.entries) {
            self.consumer = consumer as u16;
            true
        } else {
            false
        }
    }

    /// Descriptors posted and not yet consumed, as the last consumer index read says.
    pub fn queued(&self) -> u16 {
        (self.producer + self.entries - self.consumer) % self.entries
    }

    pub fn is_full(&self) -> bool {
        (self.producer + 1) % self.entries == self.consumer
    }

    /// The index to write the next descriptor at, and advance; `RingFull` if there is none.
    pub fn push(&mut self) -> Result<u16, RequestError> {
        if self.is_full() {
            return Err(RequestError::RingFull);
        }
        let index = self.producer;
        self.producer = (self.producer + 1) % self.entries;
        Ok(index)
    }

    pub fn reset(&mut self) {
        self.producer = 0;
        self.consumer = 0;
    }
}

#[cfg(test)]
mod tests {
    use zerocopy::FromBytes;

    use super::*;
    use crate::platform::DmaHandle;

    fn frame() -> TaskFrame {
        TaskFrame { handle: DmaHandle(1), cpu_address: 0, iova: 0x7000_0000, bytes: 4096 }
    }

    fn task(cdb: &[u8], direction: u8, length: u64) -> abi::dk_scsi_user_parallel_task {
        let mut t = abi::dk_scsi_user_parallel_task {
            fTargetID: 3,
            fControllerTaskIdentifier: 5,
            fCommandSize: cdb.len() as u8,
            fTransferDirection: direction,
            fRequestedTransferCount: length,
            fBufferIOVMAddr: if length > 0 { 0x9000_0000 } else { 0 },
            fTimeoutInMilliSec: 30_000,
            ..Default::default()
        };
        t.fCommandDescriptorBlock[..cdb.len()].copy_from_slice(cdb);
        t.fLogicalUnitBytes[1] = 2;
        t
    }

    #[test]
    fn a_read_becomes_a_frame_with_one_sge() {
        let mut memory = [0xEEu8; 4096];
        let id = TaskId::new(5).unwrap();
        let d = build(
            id,
            0xCAFE,
            &task(&[0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0], 2, 512),
            &frame(),
            &mut memory,
        )
        .unwrap();
        assert_eq!((d.smid.get(), d.frame.get(), d.frame_length.get()), (5, 0x7000_0000, 64));
        let r = RequestFrame::read_from_bytes(&memory[..48]).unwrap();
        assert_eq!((r.function, r.direction, r.cdb_length, r.sge_count), (1, 2, 10, 1));
        assert_eq!((r.target.get(), r.lun.get(), r.data_length.get()), (3, 2, 512));
        assert_eq!(r.tag.get(), 0xCAFE, "the submission's tag");
        assert_eq!(r.sense_buffer.get(), 0x7000_0000 + frame_layout::SENSE as u64);
        let sge = Sge::read_from_bytes(&memory[48..64]).unwrap();
        assert_eq!((sge.address.get(), sge.length.get()), (0x9000_0000, 512));
        assert!(memory[frame_layout::SENSE..frame_layout::SENSE + 256].iter().all(|b| *b == 0));
    }

    #[test]
    fn bad_tasks_are_named() {
        let mut memory = [0u8; 4096];
        let id = TaskId::new(1).unwrap();
        assert_eq!(
            build(id, 1, &task(&[], 0, 0), &frame(), &mut memory),
            Err(RequestError::BadCdbLength { length: 0 })
        );
        assert_eq!(
            build(id, 1, &task(&[0; 6], 3, 0), &frame(), &mut memory),
            Err(RequestError::BadDirection { direction: 3 })
        );
        let mut t = task(&[0x28; 10], 2, 512);
        t.fBufferIOVMAddr = 0;
        assert!(matches!(
            build(id, 1, &t, &frame(), &mut memory),
            Err(RequestError::BadDataBuffer { .. })
        ));
        assert!(matches!(
            build(id, 1, &task(&[0; 6], 0, 0), &frame(), &mut memory[..100]),
            Err(RequestError::FrameTooSmall { .. })
        ));
    }

    #[test]
    fn a_full_ring_says_so_instead_of_waiting() {
        let mut r = RequestRing::new(4).unwrap();
        assert_eq!((r.push(), r.push(), r.push()), (Ok(0), Ok(1), Ok(2)));
        assert_eq!(r.push(), Err(RequestError::RingFull));
        assert!(!r.set_consumer(9), "a consumer index outside the ring is ignored");
        assert!(r.set_consumer(2));
        assert_eq!(r.push(), Ok(3));
        assert_eq!(r.push(), Ok(0));
        assert_eq!(r.push(), Err(RequestError::RingFull));
    }
}
