//! Consuming the reply ring. The device is not trusted: every index and identifier it wrote is
//! checked before use, and a bogus, stale or duplicate reply is dropped by name — it never
//! completes a wrong or an already-completed task.
//!
//! A reply is accepted only if its phase is this lap's, its check word matches
//! ([`super::wire::reply_check`]), its SMID names a task that is Submitted (or the control
//! request in flight), and it echoes the tag issued for that submission ([`Tags`]). The tag is
//! forgotten when the reply is accepted, so a replay of a genuine reply is dropped too, even
//! after the kernel has reused the task ID.

use core::fmt;

use super::wire::{ReplyDescriptor, ReplyFlags, CONTROL_SMID, EVENT_SMID};
use crate::limits::MAX_TASK_COUNT;
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
    /// The check word does not match the entry's other bytes: garbage, or a torn write.
    BadCheck { index: u16 },
    /// The flags byte has bits outside [`ReplyFlags`] (`unknown`).
    UnknownFlags { index: u16, unknown: u8 },
    /// The entry does not carry the tag issued for that SMID's submission in flight (`expected`
    /// 0: none is in flight): a reply for an earlier use of the ID, or a forgery.
    WrongTag { index: u16, smid: u16, expected: u32, found: u32 },
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
            ReplyError::BadCheck { index } => write!(
                f,
                "CorruptReply: reply entry {index} fails its check word (garbage or a torn write)"
            ),
            ReplyError::UnknownFlags { index, unknown } => write!(
                f,
                "UnknownReplyFlags: reply entry {index} sets flag bits {unknown:#04x}, which no \
                 reply carries"
            ),
            ReplyError::WrongTag { index, smid, expected: 0, found } => write!(
                f,
                "ForeignReply: reply entry {index} names SMID {smid} with tag {found:#010x}, \
                 but no request with that SMID is in flight"
            ),
            ReplyError::WrongTag { index, smid, expected, found } => write!(
                f,
                "ForeignReply: reply entry {index} names SMID {smid} with tag {found:#010x}, \
                 not the {expected:#010x} of the request in flight"
            ),
        }
    }
}

/// The tag each submission in flight expects its reply to echo: one per task slot and one for
/// the control request. Tags come from one counter per controller, never 0, so a reply for an
/// earlier submission with the same SMID does not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tags {
    last: u32,
    tasks: [u32; MAX_TASK_COUNT as usize],
    control: u32,
}

impl Default for Tags {
    fn default() -> Self {
        Self::new()
    }
}

impl Tags {
    pub const fn new() -> Tags {
        Tags { last: 0, tasks: [0; MAX_TASK_COUNT as usize], control: 0 }
    }

    fn slot(&mut self, smid: u16) -> Option<&mut u32> {
        if smid == CONTROL_SMID {
            return Some(&mut self.control);
        }
        let i = usize::from(smid).checked_sub(1)?;
        self.tasks.get_mut(i)
    }

    /// A fresh tag (never 0) for a submission with `smid` (a task ID or [`CONTROL_SMID`]),
    /// remembered as the one its reply must echo. 0 for any other SMID (nothing remembered).
    pub fn issue(&mut self, smid: u16) -> u32 {
        let tag = match self.last.wrapping_add(1) {
            0 => 1,
            t => t,
        };
        match self.slot(smid) {
            Some(slot) => {
                *slot = tag;
                self.last = tag;
                tag
            }
            None => 0,
        }
    }

    /// The tag `smid`'s reply must carry; 0 when nothing with that SMID is in flight.
    pub fn expected(&self, smid: u16) -> u32 {
        if smid == CONTROL_SMID {
            return self.control;
        }
        usize::from(smid).checked_sub(1).and_then(|i| self.tasks.get(i)).copied().unwrap_or(0)
    }

    /// Nothing with `smid` is in flight any more: its reply, if it comes, is foreign.
    pub fn clear(&mut self, smid: u16) {
        if let Some(slot) = self.slot(smid) {
            *slot = 0;
        }
    }

    /// After a reset: nothing is in flight. The counter runs on.
    pub fn clear_all(&mut self) {
        self.tasks = [0; MAX_TASK_COUNT as usize];
        self.control = 0;
    }

    /// Accept `found` for `smid` if it is the tag in flight, and forget it.
    fn take(&mut self, index: u16, smid: u16, found: u32) -> Result<(), ReplyError> {
        let expected = self.expected(smid);
        if expected == 0 || expected != found {
            return Err(ReplyError::WrongTag { index, smid, expected, found });
        }
        self.clear(smid);
        Ok(())
    }
}

/// The host's side of the reply ring: where it reads next, and which phase it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyRing {
    entries: u16,
    consumer: u16,
    phase: ReplyFlags,
}

impl ReplyRing {
    /// A ring of `entries` (at least 2). The firmware writes lap 0 with PHASE set.
    pub const fn new(entries: u16) -> Option<ReplyRing> {
        if entries < 2 {
            None
        } else {
            Some(ReplyRing { entries, consumer: 0, phase: ReplyFlags::PHASE })
        }
    }

    pub const fn consumer(&self) -> u16 {
        self.consumer
    }

    /// After a controller reset both sides start over.
    pub fn reset(&mut self) {
        self.consumer = 0;
        self.phase = ReplyFlags::PHASE;
    }

    /// Consume every entry up to `producer`: `read(index)` fetches an entry from the ring's
    /// memory, and `on` hears about each one. A task's valid reply moves it Submitted →
    /// Completed ([`Reply::Task`]); an event notification ([`Reply::Event`]) and the driver's
    /// own control request ([`Reply::Control`]) are passed on; anything invalid is
    /// [`Reply::Dropped`] and changes nothing but the consumer index. `tags` says which tag
    /// each SMID in flight must echo; an accepted reply's tag is forgotten. Returns the new
    /// consumer index for the REPLY_CONSUMER register.
    pub fn drain(
        &mut self,
        producer: u32,
        mut read: impl FnMut(u16) -> ReplyDescriptor,
        pool: &mut TaskPool,
        tags: &mut Tags,
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
            let smid = reply.smid.get();
            let tag = reply.tag.get();
            let flags = reply.reply_flags();
            if flags & ReplyFlags::PHASE != self.phase {
                // Behind the producer yet not written in this lap: the producer was read over
                // MMIO after the device's DMA writes (PCIe ordering), so this entry is garbage,
                // not late. Dropped and consumed, so the replies behind it are not held up.
                on(Reply::Dropped(ReplyError::StaleEntry { index }));
            } else if !reply.is_sealed() {
                on(Reply::Dropped(ReplyError::BadCheck { index }));
            } else if ReplyFlags::from_bits(reply.flags).is_none() {
                // Sealed, yet with bits no firmware of this interface writes.
                let unknown = (flags - ReplyFlags::all()).bits();
                on(Reply::Dropped(ReplyError::UnknownFlags { index, unknown }));
            } else if smid == EVENT_SMID && flags.contains(ReplyFlags::EVENT) {
                if tag == 0 {
                    on(Reply::Event(reply.transferred.get()));
                } else {
                    let e = ReplyError::WrongTag { index, smid, expected: 0, found: tag };
                    on(Reply::Dropped(e));
                }
            } else if smid == CONTROL_SMID {
                match tags.take(index, smid, tag) {
                    Ok(()) => on(Reply::Control(reply)),
                    Err(e) => on(Reply::Dropped(e)),
                }
            } else {
                match check(index, &reply, pool, tags) {
                    Ok(task) => on(Reply::Task(task, reply)),
                    Err(e) => on(Reply::Dropped(e)),
                }
            }
            self.consumer += 1;
            if self.consumer == self.entries {
                self.consumer = 0;
                self.phase ^= ReplyFlags::PHASE;
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

/// A (sealed) reply is good if its SMID names an outstanding task and it echoes that task's
/// tag; that task becomes Completed and its tag is forgotten.
fn check(
    index: u16,
    reply: &ReplyDescriptor,
    pool: &mut TaskPool,
    tags: &mut Tags,
) -> Result<TaskId, ReplyError> {
    let smid = reply.smid.get();
    let task = pool.task(u64::from(smid)).map_err(|_| ReplyError::BadSmid { index, smid })?;
    match pool.state(task) {
        Ok(SlotState::Submitted) => {}
        Ok(state) => return Err(ReplyError::NotOutstanding { index, task, state }),
        Err(_) => return Err(ReplyError::BadSmid { index, smid }),
    }
    tags.take(index, smid, reply.tag.get())?;
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
    use zerocopy::FromBytes;

    use super::*;
    use crate::limits::{FrameLayout, PageSize};
    use crate::platform::fake::FakePlatform;

    /// A pool of `n` tasks with `submitted` outstanding, each with a tag issued.
    fn pool(n: u32, submitted: &[u64]) -> (FakePlatform, TaskPool, Tags) {
        let mut p = FakePlatform::with_page_size(4096);
        let mut pool = TaskPool::new();
        pool.set_count(n).unwrap();
        let layout = FrameLayout::for_page_size(PageSize::new(4096).unwrap());
        for _ in 0..n {
            pool.map_next(&mut p, layout).unwrap();
        }
        let mut tags = Tags::new();
        for &id in submitted {
            pool.submit(pool.task(id).unwrap()).unwrap();
            tags.issue(id as u16);
        }
        (p, pool, tags)
    }

    /// A sealed reply for `smid` carrying the tag `tags` expects for it.
    fn reply(tags: &Tags, smid: u16, phase: u8) -> ReplyDescriptor {
        ReplyDescriptor::sealed(smid, 0, phase, 0, tags.expected(smid))
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
        tags: &mut Tags,
    ) -> (u16, Seen) {
        let mut seen = Seen::default();
        let consumer = ring.drain(producer, read, pool, tags, |r| match r {
            Reply::Task(t, _) => seen.tasks.push(t.get()),
            Reply::Event(e) => seen.events.push(e),
            Reply::Control(_) => seen.control += 1,
            Reply::Dropped(e) => seen.dropped.push(e),
        });
        (consumer, seen)
    }

    #[test]
    fn good_bogus_duplicate_and_stale_replies() {
        let (mut p, mut pool, mut tags) = pool(8, &[1, 2, 3]);
        let mut ring = ReplyRing::new(8).unwrap();
        let t = tags.clone();
        let entries = [
            reply(&t, 2, 1),
            reply(&t, 0, 1),
            reply(&t, 9, 1),
            reply(&t, 2, 1),
            reply(&t, 3, 1),
            reply(&t, 1, 0),
        ];
        let (consumer, seen) = drain(&mut ring, 6, |i| entries[i as usize], &mut pool, &mut tags);
        assert_eq!(seen.tasks, [2, 3]);
        let bad = &seen.dropped;
        assert_eq!(bad[0], ReplyError::BadSmid { index: 1, smid: 0 });
        assert_eq!(bad[1], ReplyError::BadSmid { index: 2, smid: 9 });
        assert!(matches!(
            bad[2],
            ReplyError::NotOutstanding { index: 3, state: SlotState::Completed, .. }
        ));
        assert_eq!(bad[3], ReplyError::StaleEntry { index: 5 });
        assert_eq!(consumer, 6, "the stale entry behind the producer is consumed");
        assert_eq!(
            pool.state(pool.task(1).unwrap()),
            Ok(SlotState::Submitted),
            "task 1 still waits"
        );
        assert!(bad[2].to_string().starts_with("DuplicateReply: reply entry 3 completes task 2"));
        assert_eq!((tags.expected(2), tags.expected(3)), (0, 0), "accepted tags are forgotten");
        let (_, seen) = drain(&mut ring, 9, |_| reply(&t, 1, 1), &mut pool, &mut tags);
        assert!(seen.tasks.is_empty());
        assert_eq!(seen.dropped, [ReplyError::ProducerOutOfRange { producer: 9, entries: 8 }]);
        pool.teardown(&mut p);
    }

    #[test]
    fn a_sealed_reply_with_flag_bits_no_reply_carries_completes_nothing() {
        let (mut p, mut pool, mut tags) = pool(4, &[1]);
        let mut ring = ReplyRing::new(8).unwrap();
        let tag = tags.expected(1);
        let phase = ReplyFlags::PHASE.bits();
        let entries = [
            // Sealed by a device that set a reserved bit: not trusted, not consumed as a reply.
            ReplyDescriptor::sealed(1, 0, phase | 0x40, 512, tag),
            ReplyDescriptor::sealed(1, 0, phase | ReplyFlags::SENSE_VALID.bits(), 512, tag),
        ];
        let (_, seen) = drain(&mut ring, 2, |i| entries[i as usize], &mut pool, &mut tags);
        assert_eq!(seen.dropped, [ReplyError::UnknownFlags { index: 0, unknown: 0x40 }]);
        assert_eq!(seen.tasks, [1], "the genuine reply behind it still completes the task");
        assert!(seen.dropped[0].to_string().starts_with("UnknownReplyFlags: reply entry 0"));
        pool.teardown(&mut p);
    }

    #[test]
    fn a_wrong_tag_or_a_bad_check_completes_nothing_and_the_genuine_reply_still_does() {
        let (mut p, mut pool, mut tags) = pool(4, &[1, 2]);
        let mut ring = ReplyRing::new(8).unwrap();
        let genuine = tags.expected(1);
        let mut torn = ReplyDescriptor::sealed(1, 0, 1, 512, genuine);
        torn.transferred.set(4096);
        let entries = [
            ReplyDescriptor::sealed(1, 0, 1, 512, genuine + 100),
            ReplyDescriptor::sealed(1, 0, 1, 512, 0),
            torn,
            ReplyDescriptor::sealed(1, 0, 1, 512, genuine),
        ];
        let (consumer, seen) = drain(&mut ring, 4, |i| entries[i as usize], &mut pool, &mut tags);
        assert_eq!(seen.tasks, [1], "only the genuine reply, after the bogus ones");
        assert_eq!(consumer, 4, "dropped entries are consumed");
        assert_eq!(
            seen.dropped,
            [
                ReplyError::WrongTag { index: 0, smid: 1, expected: genuine, found: genuine + 100 },
                ReplyError::WrongTag { index: 1, smid: 1, expected: genuine, found: 0 },
                ReplyError::BadCheck { index: 2 },
            ]
        );
        assert!(seen.dropped[0]
            .to_string()
            .starts_with("ForeignReply: reply entry 0 names SMID 1"));
        assert!(seen.dropped[2].to_string().starts_with("CorruptReply: reply entry 2"));
        // Task 1 is released and its ID reused: the old genuine reply, replayed, is foreign.
        let task = pool.task(1).unwrap();
        pool.release(task).unwrap();
        pool.submit(task).unwrap();
        let fresh = tags.issue(1);
        assert_ne!(fresh, genuine);
        let replay = entries[3];
        let (_, seen) = drain(&mut ring, 5, |_| replay, &mut pool, &mut tags);
        assert!(seen.tasks.is_empty());
        assert_eq!(
            seen.dropped,
            [ReplyError::WrongTag { index: 4, smid: 1, expected: fresh, found: genuine }]
        );
        assert_eq!(pool.state(task), Ok(SlotState::Submitted));
        pool.teardown(&mut p);
    }

    #[test]
    fn events_and_control_replies_are_not_tasks() {
        let (mut p, mut pool, mut tags) = pool(4, &[1]);
        let mut ring = ReplyRing::new(8).unwrap();
        let control_tag = tags.issue(CONTROL_SMID);
        let event = ReplyDescriptor::sealed(EVENT_SMID, 0, 1 | ReplyFlags::EVENT.bits(), 42, 0);
        let control = ReplyDescriptor::sealed(CONTROL_SMID, 0, 1, 0, control_tag);
        let fake_event = ReplyDescriptor::sealed(EVENT_SMID, 0, 1, 42, 0);
        let tagged_event =
            ReplyDescriptor::sealed(EVENT_SMID, 0, 1 | ReplyFlags::EVENT.bits(), 43, 9);
        let t = tags.clone();
        let entries = [event, reply(&t, 1, 1), control, fake_event, control, tagged_event];
        let (_, seen) = drain(&mut ring, 6, |i| entries[i as usize], &mut pool, &mut tags);
        assert_eq!((seen.tasks, seen.events, seen.control), (std::vec![1], std::vec![42], 1));
        assert_eq!(
            seen.dropped,
            [
                ReplyError::BadSmid { index: 3, smid: 0xFFFF },
                ReplyError::WrongTag {
                    index: 4,
                    smid: CONTROL_SMID,
                    expected: 0,
                    found: control_tag
                },
                ReplyError::WrongTag { index: 5, smid: EVENT_SMID, expected: 0, found: 9 },
            ],
            "0xFFFF without EVENT; the control reply twice; an event with a tag"
        );
        pool.teardown(&mut p);
    }

    #[test]
    fn the_phase_flips_each_lap() {
        let (mut p, mut pool, mut tags) = pool(4, &[1, 2, 3, 4]);
        let t = tags.clone();
        let mut ring = ReplyRing::new(2).unwrap();
        let (_, a) = drain(&mut ring, 1, |_| reply(&t, 1, 1), &mut pool, &mut tags);
        let (_, b) = drain(&mut ring, 0, |_| reply(&t, 2, 1), &mut pool, &mut tags);
        // Lap 1 expects phase 0.
        let (_, c) = drain(&mut ring, 1, |_| reply(&t, 3, 0), &mut pool, &mut tags);
        assert_eq!((a.tasks, b.tasks, c.tasks), (std::vec![1], std::vec![2], std::vec![3]));
        pool.teardown(&mut p);
    }

    #[test]
    fn tags_are_never_zero_and_never_repeat_back_to_back() {
        let mut tags = Tags::new();
        tags.last = u32::MAX - 1;
        assert_eq!(tags.issue(1), u32::MAX);
        assert_eq!(tags.issue(1), 1, "0 is skipped");
        assert_eq!(tags.issue(0), 0, "SMID 0 gets no tag");
        assert_eq!(tags.issue(EVENT_SMID), 0, "nor does the event SMID");
        assert_eq!(tags.issue(CONTROL_SMID), 2);
        tags.clear_all();
        assert_eq!((tags.expected(1), tags.expected(CONTROL_SMID)), (0, 0));
        assert_eq!(tags.issue(1), 3, "the counter runs on after a reset");
    }

    proptest! {
        /// Garbage in the ring never completes a task that was not outstanding, and never
        /// completes one twice.
        #[test]
        fn random_reply_rings_never_complete_wrongly(
            bytes in proptest::collection::vec(any::<u8>(), 16 * 64),
            producers in proptest::collection::vec(any::<u32>(), 1..6),
            submitted in proptest::collection::btree_set(1u64..=16, 0..16),
        ) {
            let submitted: Vec<u64> = submitted.into_iter().collect();
            let (mut p, mut pool, mut tags) = pool(16, &submitted);
            let mut ring = ReplyRing::new(64).unwrap();
            let mut completed = Vec::new();
            for producer in producers {
                let producer = producer % 80; // sometimes out of range
                let (_, seen) = drain(
                    &mut ring,
                    producer,
                    |i| ReplyDescriptor::read_from_bytes(&bytes[usize::from(i) * 16..usize::from(i) * 16 + 16]).unwrap(),
                    &mut pool,
                    &mut tags,
                );
                completed.extend(seen.tasks);
            }
            prop_assert!(completed.is_empty(), "garbage completed {:?}", completed);
            pool.teardown(&mut p);
        }
    }
}
