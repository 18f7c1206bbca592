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
    /// memory, and `on` hears about each one. A task's valid reply moves it Submitted →
    /// Completed ([`Reply::Task`]); an event notification ([`Reply::Event`]) and the driver's
    /// own control request ([`Reply::Control`]) are passed on; anything invalid is
    /// [`Reply::Dropped`] and changes nothing. Returns the new consumer index for the
    /// REPLY_CONSUMER register.
    pub fn drain(
        &mut self,
        producer: u32,
        mut read: impl FnMut(u16) -> ReplyDescriptor,
        pool: &mut TaskPool,
        mut on: impl FnMut(Reply),
    ) -> u16 {
        if producer >= u32::from(self.entries) {
            on(Reply::Dropped(ReplyError::ProducerOutOfRange { producer, entries: self.entries }));
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
                on(Reply::Dropped(ReplyError::StaleEntry { index }));
                break;
            }
            let smid = reply.smid.get();
            if smid == super::wire::EVENT_SMID && reply.flags & reply_flags::EVENT != 0 {
                on(Reply::Event(reply.transferred.get()));
            } else if smid == super::wire::CONTROL_SMID {
                on(Reply::Control(reply));
            } else {
                match check(index, &reply, pool) {
                    Ok(task) => on(Reply::Task(task, reply)),
                    Err(e) => on(Reply::Dropped(e)),
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

/// What one reply entry turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A task's reply; the task is now Completed.
    Task(TaskId, ReplyDescriptor),
    /// An asynchronous event notification with this sequence number.
    Event(u32),
    /// The reply to the driver's control request.
    Control(ReplyDescriptor),
    /// An entry that was not used, and why.
    Dropped(ReplyError),
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

    /// Drain and sort what happened: (tasks completed, events, control replies, dropped).
    #[derive(Debug, Default)]
    struct Seen {
        tasks: Vec<u64>,
        events: Vec<u32>,
        control: usize,
        dropped: Vec<ReplyError>,
    }

    fn drain(
        ring: &mut ReplyRing,
        producer: u32,
        read: impl FnMut(u16) -> ReplyDescriptor,
        pool: &mut TaskPool,
    ) -> (u16, Seen) {
        let mut seen = Seen::default();
        let consumer = ring.drain(producer, read, pool, |r| match r {
            Reply::Task(t, _) => seen.tasks.push(t.get()),
            Reply::Event(e) => seen.events.push(e),
            Reply::Control(_) => seen.control += 1,
            Reply::Dropped(e) => seen.dropped.push(e),
        });
        (consumer, seen)
    }

    #[test]
    fn good_bogus_duplicate_and_stale_replies() {
        let (mut p, mut pool) = pool(8, &[1, 2, 3]);
        let mut ring = ReplyRing::new(8).unwrap();
        let entries =
            [reply(2, 1), reply(0, 1), reply(9, 1), reply(2, 1), reply(3, 1), reply(1, 0)];
        let (consumer, seen) = drain(&mut ring, 6, |i| entries[i as usize], &mut pool);
        assert_eq!(seen.tasks, [2, 3]);
        let bad = &seen.dropped;
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
        let (_, seen) = drain(&mut ring, 9, |_| reply(1, 1), &mut pool);
        assert!(seen.tasks.is_empty());
        assert_eq!(seen.dropped, [ReplyError::ProducerOutOfRange { producer: 9, entries: 8 }]);
        pool.teardown(&mut p);
    }

    #[test]
    fn events_and_control_replies_are_not_tasks() {
        let (mut p, mut pool) = pool(4, &[1]);
        let mut ring = ReplyRing::new(8).unwrap();
        let event = ReplyDescriptor {
            smid: U16::new(super::super::wire::EVENT_SMID),
            scsi_status: 0,
            flags: 1 | reply_flags::EVENT,
            transferred: U32::new(42),
        };
        let control = reply(super::super::wire::CONTROL_SMID, 1);
        let fake_event = ReplyDescriptor { flags: 1, ..event };
        let entries = [event, reply(1, 1), control, fake_event];
        let (_, seen) = drain(&mut ring, 4, |i| entries[i as usize], &mut pool);
        assert_eq!((seen.tasks, seen.events, seen.control), (std::vec![1], std::vec![42], 1));
        assert_eq!(
            seen.dropped,
            [ReplyError::BadSmid { index: 3, smid: 0xFFFF }],
            "0xFFFF without EVENT"
        );
        pool.teardown(&mut p);
    }

    #[test]
    fn the_phase_flips_each_lap() {
        let (mut p, mut pool) = pool(4, &[1, 2, 3, 4]);
        let mut ring = ReplyRing::new(2).unwrap();
        let (_, a) = drain(&mut ring, 1, |_| reply(1, 1), &mut pool);
        let (_, b) = drain(&mut ring, 0, |_| reply(2, 1), &mut pool);
        // Lap 1 expects phase 0.
        let (_, c) = drain(&mut ring, 1, |_| reply(3, 0), &mut pool);
        assert_eq!((a.tasks, b.tasks, c.tasks), (std::vec![1], std::vec![2], std::vec![3]));
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
                let (_, seen) = drain(
                    &mut ring,
                    producer,
                    |i| ReplyDescriptor::read_from_bytes(&bytes[usize::from(i) * 8..usize::from(i) * 8 + 8]).unwrap(),
                    &mut pool,
                );
                completed.extend(seen.tasks);
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
