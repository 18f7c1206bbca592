//! The `reply` target's harness: the reply ring is memory the device writes, so every byte of
//! it comes from the fuzzer, and the host's side ([`ReplyRing::drain`]) must accept exactly the
//! genuine replies and drop everything else by name, never panicking.
//!
//! Input:
//!
//! | bytes | meaning |
//! |---|---|
//! | u8 | ring entries: 2 + b % 63 |
//! | u8 | tasks used: 1 + b % 16 (the pool has 16) |
//! | u16 | tasks submitted at the start (bit k: task k + 1), each with a tag issued |
//! | u8 | bit 0: the control request is in flight |
//! | ops | until the input ends (at most [`MAX_OPS`]), each one byte then its operands |
//!
//! Operations (`op % 4`): 0 drain with a producer index (u32: sometimes past the ring); 1 the
//! host releases every completed task and submits those of a mask (u16), issuing fresh tags;
//! 2 the device writes entries (u8 first index, u8 count, then per entry a kind byte and its
//! fields: raw bytes, or a reply built from an SMID choice, flags, status, transferred and a
//! tag choice — the tag in flight, a neighbour of it, 0 or any — sealed or not); 3 a controller
//! reset (both sides start over, nothing is in flight).

use dkraid_core::firmware::reply::Tags;
use dkraid_core::firmware::wire::{ReplyDescriptor, ReplyFlags, CONTROL_SMID, EVENT_SMID};
use dkraid_core::firmware::{Reply, ReplyRing};
use dkraid_core::limits::{FrameLayout, PageSize};
use dkraid_core::platform::fake::FakePlatform;
use dkraid_core::task_pool::{SlotState, TaskPool};
use zerocopy::FromBytes;

use crate::input::Reader;

const PHASE: u8 = ReplyFlags::PHASE.bits();
const EVENT: u8 = ReplyFlags::EVENT.bits();

pub const MAX_OPS: usize = 64;

/// A dropped reply is named: its message is `Name: what happened`, the name one CamelCase word
/// (ReplyProducerOutOfRange, StaleReply, BogusReply, DuplicateReply, CorruptReply, ForeignReply,
/// UnknownReplyFlags, ...).
fn is_named(message: &str) -> bool {
    match message.split_once(": ") {
        Some((name, what)) => {
            name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphanumeric())
                && !what.is_empty()
        }
        None => false,
    }
}

/// One ring entry as the device writes it.
fn entry(r: &mut Reader<'_>, tags: &Tags) -> ReplyDescriptor {
    let kind = r.u8();
    if kind & 0x80 == 0 {
        let mut raw = [0u8; 16];
        let got = r.bytes(16);
        raw[..got.len()].copy_from_slice(got);
        return ReplyDescriptor::read_from_bytes(&raw).expect("16 bytes");
    }
    let smid = match r.u8() {
        0xFE => CONTROL_SMID,
        0xFF => EVENT_SMID,
        s if s <= 17 => u16::from(s),
        s => u16::from(s) << 8 | u16::from(r.u8()),
    };
    let flags = r.u8();
    let status = r.u8();
    let transferred = r.u32();
    let expected = tags.expected(smid);
    let tag = match kind & 0x03 {
        0 => expected,
        1 => expected.wrapping_add(u32::from(r.u8()) + 1),
        2 => 0,
        _ => r.u32(),
    };
    let mut d = ReplyDescriptor::sealed(smid, status, flags, transferred, tag);
    if kind & 0x40 != 0 {
        // Torn: a field changed after sealing.
        d.transferred.set(transferred ^ (u32::from(r.u8()) | 1));
    }
    d
}

/// One fuzz input: drains checked against what the host knew before each one.
pub fn run(data: &[u8]) {
    POOL.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (_, pool) = slot.get_or_insert_with(|| {
            let mut platform = FakePlatform::with_page_size(4096);
            let mut pool = TaskPool::new();
            pool.set_count(TASKS as u32).expect("16 tasks");
            let layout = FrameLayout::for_page_size(PageSize::new(4096).expect("4 KiB"));
            for _ in 0..TASKS {
                pool.map_next(&mut platform, layout).expect("the fake maps every frame");
            }
            (platform, pool)
        });
        // Every slot back to Free, as in a fresh pool (mapping 16 frames per input is slow).
        for id in 1..=TASKS {
            let task = pool.task(id).expect("mapped");
            if pool.state(task) == Ok(SlotState::Submitted) {
                pool.complete(task).expect("submitted → completed");
            }
            if pool.state(task) == Ok(SlotState::Completed) {
                pool.release(task).expect("completed → free");
            }
        }
        run_with(data, pool);
    });
}

/// Task slots in the pool: SMIDs 1..=16 are task IDs (the input chooses how many it uses).
const TASKS: u64 = 16;

thread_local! {
    static POOL: std::cell::RefCell<Option<(FakePlatform, TaskPool)>> =
        const { std::cell::RefCell::new(None) };
}

fn run_with(data: &[u8], pool: &mut TaskPool) {
    let mut r = Reader::new(data);
    let entries = 2 + u16::from(r.u8() % 63);
    let n = 1 + u32::from(r.u8() % 16);
    let mut tags = Tags::new();
    let submit = |pool: &mut TaskPool, tags: &mut Tags, mask: u16| {
        for id in 1..=u64::from(n) {
            let task = pool.task(id).expect("mapped");
            if mask & (1 << (id - 1)) != 0 && pool.state(task) == Ok(SlotState::Free) {
                pool.submit(task).expect("free → submitted");
                tags.issue(id as u16);
            }
        }
    };
    submit(pool, &mut tags, r.u16());
    if r.u8() & 1 != 0 {
        tags.issue(CONTROL_SMID);
    }
    let mut ring = ReplyRing::new(entries).expect("at least 2 entries");
    let mut memory = vec![ReplyDescriptor::default(); usize::from(entries)];
    // The host's position, modelled: where it reads next and the phase it expects there.
    let mut consumer: u16 = 0;
    let mut phase = PHASE;

    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        match r.u8() % 4 {
            0 => {
                let producer = match r.u8() {
                    0xFF => r.u32(),
                    p => u32::from(p) % (u32::from(entries) + 2),
                };
                drain(&mut ring, &memory, producer, pool, &mut tags, &mut consumer, &mut phase);
            }
            1 => {
                for id in 1..=u64::from(n) {
                    let task = pool.task(id).expect("mapped");
                    if pool.state(task) == Ok(SlotState::Completed) {
                        pool.release(task).expect("completed → free");
                    }
                }
                let mask = r.u16();
                submit(pool, &mut tags, mask);
            }
            2 => {
                let first = usize::from(r.u8());
                let count = usize::from(r.u8() % 8) + 1;
                for k in 0..count {
                    let d = entry(&mut r, &tags);
                    memory[(first + k) % usize::from(entries)] = d;
                }
            }
            _ => {
                ring.reset();
                tags.clear_all();
                consumer = 0;
                phase = PHASE;
            }
        }
    }
}

fn drain(
    ring: &mut ReplyRing,
    memory: &[ReplyDescriptor],
    producer: u32,
    pool: &mut TaskPool,
    tags: &mut Tags,
    consumer: &mut u16,
    phase: &mut u8,
) {
    let entries = memory.len() as u16;
    let count = pool.count().expect("known") as u64;
    let states: Vec<SlotState> =
        (1..=count).map(|id| pool.state(pool.task(id).expect("mapped")).expect("mapped")).collect();
    let before = tags.clone();
    let mut seen: Vec<(u16, Reply)> = Vec::new();
    let mut read_at = Vec::new();
    let returned = ring.drain(
        producer,
        |i| {
            read_at.push(i);
            memory[usize::from(i)]
        },
        pool,
        tags,
        |reply| seen.push((0, reply)),
    );
    assert_eq!(returned, ring.consumer());

    if producer >= u32::from(entries) {
        assert!(read_at.is_empty(), "entries read with the producer out of range");
        assert_eq!(returned, *consumer, "the consumer moved with the producer out of range");
        assert_eq!(seen.len(), 1);
        assert!(matches!(
            seen[0].1,
            Reply::Dropped(dkraid_core::firmware::ReplyError::ProducerOutOfRange { .. })
        ));
        assert_eq!(*tags, before, "tags changed");
        return;
    }
    // Every entry from the consumer to the producer, in order, each heard of exactly once.
    assert_eq!(returned, producer as u16, "the drain stopped short of the producer");
    let mut expect_index = *consumer;
    let mut expect_phase = Vec::new();
    while expect_index != producer as u16 {
        expect_phase.push((expect_index, *phase));
        expect_index += 1;
        if expect_index == entries {
            expect_index = 0;
            *phase ^= PHASE;
        }
    }
    *consumer = producer as u16;
    assert_eq!(read_at, expect_phase.iter().map(|&(i, _)| i).collect::<Vec<_>>());
    assert_eq!(seen.len(), read_at.len(), "one callback per entry consumed");

    let mut completed = Vec::new();
    let mut control = 0;
    for (k, (_, reply)) in seen.iter().enumerate() {
        let (index, lap_phase) = expect_phase[k];
        let d = memory[usize::from(index)];
        match reply {
            Reply::Task(task, got) => {
                assert_eq!(*got, d, "a task's reply is the entry read");
                let id = task.get();
                assert_eq!(u64::from(d.smid.get()), id);
                assert!(d.is_sealed(), "an unsealed entry completed {task}");
                assert_eq!(d.flags & PHASE, lap_phase, "a stale entry completed {task}");
                assert_eq!(
                    states[(id - 1) as usize],
                    SlotState::Submitted,
                    "{task} was not outstanding"
                );
                let tag = before.expected(id as u16);
                assert!(tag != 0 && d.tag.get() == tag, "{task} completed with a foreign tag");
                assert!(!completed.contains(&id), "{task} completed twice in one drain");
                completed.push(id);
            }
            Reply::Event(seq) => {
                assert!(d.is_sealed() && d.smid.get() == EVENT_SMID && d.tag.get() == 0);
                assert_ne!(d.flags & EVENT, 0);
                assert_eq!(d.flags & PHASE, lap_phase);
                assert_eq!(*seq, d.transferred.get());
            }
            Reply::Control(got) => {
                assert_eq!(*got, d);
                assert!(d.is_sealed() && d.smid.get() == CONTROL_SMID);
                assert_eq!(d.flags & PHASE, lap_phase);
                let tag = before.expected(CONTROL_SMID);
                assert!(tag != 0 && d.tag.get() == tag, "a foreign control reply was accepted");
                control += 1;
            }
            Reply::Dropped(e) => {
                let shown = e.to_string();
                assert!(is_named(&shown), "unnamed drop: {shown}");
            }
        }
    }
    assert!(control <= 1, "the control request completed twice");
    // The pool and the tags moved exactly for what was accepted.
    for id in 1..=count {
        let now = pool.state(pool.task(id).expect("mapped")).expect("mapped");
        if completed.contains(&id) {
            assert_eq!(now, SlotState::Completed);
            assert_eq!(tags.expected(id as u16), 0, "an accepted tag is forgotten");
        } else {
            assert_eq!(now, states[(id - 1) as usize], "task {id} changed without a reply");
            assert_eq!(tags.expected(id as u16), before.expected(id as u16));
        }
    }
    if control == 0 {
        assert_eq!(tags.expected(CONTROL_SMID), before.expected(CONTROL_SMID));
    } else {
        assert_eq!(tags.expected(CONTROL_SMID), 0);
    }
}
