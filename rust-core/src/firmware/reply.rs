//! Consuming the reply ring. The device is not trusted: every index and identifier it wrote is
//! checked before use, and a bogus, stale or duplicate reply is dropped by name — it never
//! completes a wrong or an already-completed task.

use core::fmt;

use super::wire::{reply_flags, ReplyDescriptor};
use crate::task_pool::{PoolError, SlotState, TaskId, TaskPool};

/// Why a reply was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The producer index the device reported is outside the ring.
    ProducerOutOfRange { producer: u32, entries: u16 },
    /// The entry still carries the previous lap's phase: the device did not write it.
    StaleEntry { index: u16 },
    /// The SMID is 0 or was never handed out.
    BadSmid { index: u16, smid: u16 },
    /// The task is not outstanding: a duplicate, or a reply for a task already completed.
    NotOutstanding { index: u16, task: TaskId, state: SlotState },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReplyError::ProducerOutOfRange { producer, entries } => write!(
                f,
                "ReplyProducerOutOfRange: the device reported producer index {producer} for a \
                 ring of {entries} entries"
            ),
            ReplyError::StaleEntry { index } => {
                write!(f, "StaleReply: reply entry {index} was not written in this lap")
            }
            ReplyError::BadSmid { index, smid } => {
                write!(f, "BogusReply: reply entry {index} names SMID {smid}, never handed out")
            }
            ReplyError::NotOutstanding { index, task, state } => write!(
                f,
                "DuplicateReply: reply entry {index} completes {task}, which is {} not Submitted",
                state.name()
            ),
        }
    }
}

/// The host's side of the reply ring: where it reads next, and which phase it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyRing {
    entries: u16,
    consumer: u16,
    phase: u8,
}

impl ReplyRing {
    /// A ring of `entries` (at least 2). The firmware writes lap 0 with PHASE set.
    pub const fn new(entries: u16) -> Option<ReplyRing> {
        if entries < 2 {
            None
        } else {
            Some(ReplyRing { entries, consumer: 0, phase: reply_flags::PHASE })
        }
    }

    pub const fn consumer(&self) -> u16 {
        self.consumer
    }

    /// After a controller reset both sides start over.
    pub fn reset(&mut self) {
        self.consumer = 0;
        self.phase = reply_flags::PHASE;
    }

    /// Consume every entry up to `producer`: `read(index)` fetches an entry from the ring's
    /// memory; each valid reply moves its task Submitted → Completed and is passed to
    /// `completed`; an event notification (SMID `EVENT_SMID` with the EVENT flag) goes to
    /// `event` with its sequence number; each invalid entry is passed to `dropped` and changes
    /// nothing. Returns the new consumer index for the REPLY_CONSUMER register.
    pub fn drain(
        &mut self,
        producer: u32,
        mut read: impl FnMut(u16) -> ReplyDescriptor,
        pool: &mut TaskPool,
        mut completed: impl FnMut(TaskId, ReplyDescriptor),
        mut event: impl FnMut(u32),
        mut dropped: impl FnMut(ReplyError),
    ) -> u16 {
        if producer >= u32::from(self.entries) {
            dropped(ReplyError::ProducerOutOfRange { producer, entries: self.entries });
            return self.consumer;
        }
        let producer = producer as u16;
        // At most one lap per drain, whatever the device claims.
        let mut budget = self.entries;
        while self.consumer != producer && budget > 0 {
            budget -= 1;
            let index = self.consumer;
            let reply = read(index);
            if reply.flags & reply_flags::PHASE != self.phase {
                // Not written yet: stop here and look again at the next interrupt.
                dropped(ReplyError::StaleEntry { index });
                break;
            }
            if reply.smid.get() == super::wire::EVENT_SMID && reply.flags & reply_flags::EVENT != 0
            {
                event(reply.transferred.get());
            } else {
                match check(index, &reply, pool) {
                    Ok(task) => completed(task, reply),
                    Err(e) => dropped(e),
                }
            }
            self.consumer += 1;
            if self.consumer == self.entries {
                self.consumer = 0;
                self.phase ^= reply_flags::PHASE;
            }
        }
        self.consumer
    }
}

/// A reply is good if its SMID names an outstanding task; that task becomes Completed.
fn check(index: u16, reply: &ReplyDescriptor, pool: &mut TaskPool) -> Result<TaskId, ReplyError> {
    let smid = reply.smid.get();
    let task = pool.task(u64::from(smid)).map_err(|_| ReplyError::BadSmid { index, smid })?;
    match pool.complete(task) {
        Ok(()) => Ok(task),
        Err(PoolError::InvalidTransition { from, .. }) => {
            Err(ReplyError::NotOutstanding { index, task, state: from })
        }
        Err(_) => Err(ReplyError::BadSmid { index, smid }),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use proptest::prelude::*;
    use zerocopy::little_endian::{U16, U32};
    use zerocopy::FromBytes;

    use super::*;
    use crate::limits::{FrameLayout, PageSize};
    use crate::platform::fake::FakePlatform;

    fn pool(n: u32, submitted: &[u64]) -> (FakePlatform, TaskPool) {
        let mut p = FakePlatform::with_page_size(4096);
        let mut pool = TaskPool::new();
        pool.set_count(n).unwrap();
        let layout = FrameLayout::for_page_size(PageSize::new(4096).unwrap());
        for _ in 0..n {
            pool.map_next(&mut p, layout).unwrap();
        }
        for &id in submitted {
            pool.submit(pool.task(id).unwrap()).unwrap();
        }
        (p, pool)
    }

    fn reply(smid: u16, phase: u8) -> ReplyDescriptor {
        ReplyDescriptor {
            smid: U16::new(smid),
            scsi_status: 0,
            flags: phase,
            transferred: U32::new(0),
        }
    }

    #[test]
    fn good_bogus_duplicate_and_stale_replies() {
        let (mut p, mut pool) = pool(8, &[1, 2, 3]);
        let mut ring = ReplyRing::new(8).unwrap();
        let entries =
            [reply(2, 1), reply(0, 1), reply(9, 1), reply(2, 1), reply(3, 1), reply(1, 0)];
        let mut done = Vec::new();
        let mut bad = Vec::new();
        let consumer = ring.drain(
            6,
            |i| entries[i as usize],
            &mut pool,
            |t, _| done.push(t.get()),
            |_| {},
            |e| bad.push(e),
        );
        assert_eq!(done, [2, 3]);
        assert_eq!(bad[0], ReplyError::BadSmid { index: 1, smid: 0 });
        assert_eq!(bad[1], ReplyError::BadSmid { index: 2, smid: 9 });
        assert!(matches!(
            bad[2],
            ReplyError::NotOutstanding { index: 3, state: SlotState::Completed, .. }
        ));
        assert_eq!(bad[3], ReplyError::StaleEntry { index: 5 });
        assert_eq!(consumer, 5, "stops at the stale entry");
        assert_eq!(
            pool.state(pool.task(1).unwrap()),
            Ok(SlotState::Submitted),
            "task 1 still waits"
        );
        assert!(bad[2].to_string().starts_with("DuplicateReply: reply entry 3 completes task 2"));
        let mut bad = Vec::new();
        ring.drain(
            9,
            |_| reply(1, 1),
            &mut pool,
            |_, _| panic!("nothing completes"),
            |_| {},
            |e| bad.push(e),
        );
        assert_eq!(bad, [ReplyError::ProducerOutOfRange { producer: 9, entries: 8 }]);
        pool.teardown(&mut p);
    }

    #[test]
    fn event_notifications_are_not_tasks() {
        let (mut p, mut pool) = pool(4, &[1]);
        let mut ring = ReplyRing::new(4).unwrap();
        let event = ReplyDescriptor {
            smid: U16::new(super::super::wire::EVENT_SMID),
            scsi_status: 0,
            flags: 1 | reply_flags::EVENT,
            transferred: U32::new(42),
        };
        let entries = [event, reply(1, 1)];
        let (mut events, mut done) = (Vec::new(), Vec::new());
        ring.drain(
            2,
            |i| entries[i as usize],
            &mut pool,
            |t, _| done.push(t.get()),
            |s| events.push(s),
            |e| panic!("{e}"),
        );
        assert_eq!((events, done), (std::vec![42], std::vec![1]));
        // 0xFFFF without the EVENT flag is a bogus SMID.
        let mut bad = Vec::new();
        let fake_event = ReplyDescriptor { flags: 1, ..event };
        ring.drain(3, |_| fake_event, &mut pool, |_, _| panic!(), |_| panic!(), |e| bad.push(e));
        assert_eq!(bad, [ReplyError::BadSmid { index: 2, smid: 0xFFFF }]);
        pool.teardown(&mut p);
    }

    #[test]
    fn the_phase_flips_each_lap() {
        let (mut p, mut pool) = pool(4, &[1, 2, 3, 4]);
        let mut ring = ReplyRing::new(2).unwrap();
        let mut done = Vec::new();
        ring.drain(
            1,
            |_| reply(1, 1),
            &mut pool,
            |t, _| done.push(t.get()),
            |_| {},
            |e| panic!("{e}"),
        );
        ring.drain(
            0,
            |_| reply(2, 1),
            &mut pool,
            |t, _| done.push(t.get()),
            |_| {},
            |e| panic!("{e}"),
        );
        // Lap 1 expects phase 0.
        ring.drain(
            1,
            |_| reply(3, 0),
            &mut pool,
            |t, _| done.push(t.get()),
            |_| {},
            |e| panic!("{e}"),
        );
        assert_eq!(done, [1, 2, 3]);
        pool.teardown(&mut p);
    }

    proptest! {
        /// Garbage in the ring never completes a task that was not outstanding, and never
        /// completes one twice.
        #[test]
        fn random_reply_rings_never_complete_wrongly(
            bytes in proptest::collection::vec(any::<u8>(), 8 * 64),
            producers in proptest::collection::vec(any::<u32>(), 1..6),
            submitted in proptest::collection::btree_set(1u64..=16, 0..16),
        ) {
            let submitted: Vec<u64> = submitted.into_iter().collect();
            let (mut p, mut pool) = pool(16, &submitted);
            let mut ring = ReplyRing::new(64).unwrap();
            let mut completed = Vec::new();
            for producer in producers {
                let producer = producer % 80; // sometimes out of range
                ring.drain(
                    producer,
                    |i| ReplyDescriptor::read_from_bytes(&bytes[usize::from(i) * 8..usize::from(i) * 8 + 8]).unwrap(),
                    &mut pool,
                    |t, _| completed.push(t.get()),
                    |_| {},
                    |_| {},
                );
            }
            let mut seen = completed.clone();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), completed.len(), "a task completed twice");
            for t in &completed {
                prop_assert!(submitted.contains(t), "task {} was not outstanding", t);
            }
            pool.teardown(&mut p);
        }
    }
}
