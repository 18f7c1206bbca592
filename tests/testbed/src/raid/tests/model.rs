//! Property tests: random sequences of writes, reads, flushes, one member failure at a time
//! (set offline, or a drive that dies and is found by I/O), dead spares, spares arriving and
//! rebuild steps, on RAID 5 and RAID 10 — every read checked against a shadow copy, and at the
//! end the whole volume and its parity or mirrors.

use proptest::collection::vec;
use proptest::prelude::*;

use super::support::{Rng, Tb, DRIVE, STRIP};
use crate::raid::{DriveState, Level, Raid, RaidConfig, VolumeRequest, VolumeState};

#[derive(Clone, Debug)]
enum Op {
    /// Write `blocks` at a place picked by `at`, with data from `seed`.
    Write {
        at: u64,
        blocks: u64,
        seed: u64,
    },
    Read {
        at: u64,
        blocks: u64,
    },
    Flush,
    /// Set a member offline (when the volume has full redundancy).
    Fail(usize),
    /// Kill a member silently: the next I/O finds out.
    Kill(usize),
    /// Kill whichever hot spare there is.
    KillSpare,
    /// A drive becomes a hot spare (repairing a bad one if need be).
    SpareArrives,
    /// Advance rebuilds by this many strips.
    RebuildStep(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u64>(), 1..40u64, any::<u64>())
            .prop_map(|(at, blocks, seed)| Op::Write { at, blocks, seed }),
        5 => (any::<u64>(), 1..48u64).prop_map(|(at, blocks)| Op::Read { at, blocks }),
        1 => Just(Op::Flush),
        1 => (0..6usize).prop_map(Op::Fail),
        1 => (0..6usize).prop_map(Op::Kill),
        1 => Just(Op::KillSpare),
        2 => Just(Op::SpareArrives),
        3 => (1..12u64).prop_map(Op::RebuildStep),
    ]
}

fn spare_arrives(raid: &mut Raid) {
    let drives = raid.drives();
    if let Some(d) = drives.iter().find(|d| d.state == DriveState::UnconfiguredGood) {
        raid.set_hot_spare(d.id).unwrap();
    } else if let Some(d) = drives.iter().find(|d| d.state == DriveState::UnconfiguredBad) {
        raid.make_good(d.id).unwrap();
        raid.set_hot_spare(d.id).unwrap();
    }
}

fn run(level: Level, n: usize, write_back: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    // Two drives beyond the members, for spares.
    let raid = Raid::new(&RaidConfig::new(vec![DRIVE; n + 2])).unwrap();
    let req =
        VolumeRequest::new(level, (0..n as u32).collect()).strip(STRIP).write_back(write_back);
    let mut t = Tb::with_raid(raid, req);
    let cap = t.capacity_blocks();
    // The member that failed (or was killed) and is not yet replaced: one at a time.
    let mut broken: Option<u32> = None;
    for (i, op) in ops.iter().enumerate() {
        let what = format!("op {i} {op:?}");
        if let Some(d) = broken {
            let v = t.raid.volume(0).unwrap();
            if v.state == VolumeState::Optimal && !v.drives.contains(&d) {
                broken = None;
            }
        }
        match *op {
            Op::Write { at, blocks, seed } => {
                let blocks = blocks.min(cap);
                let lba = at % (cap - blocks + 1);
                let data = Rng(seed).bytes(blocks as usize * 512);
                if let Err(e) = t.raid.write(0, lba, &data) {
                    return Err(TestCaseError::fail(format!("{what}: {e}")));
                }
                t.shadow[lba as usize * 512..][..data.len()].copy_from_slice(&data);
            }
            Op::Read { at, blocks } => {
                let blocks = blocks.min(cap);
                t.check_range(at % (cap - blocks + 1), blocks, &what);
            }
            Op::Flush => t.raid.flush(0).unwrap(),
            Op::Fail(slot) | Op::Kill(slot) => {
                let v = t.raid.volume(0).unwrap();
                if broken.is_some() || v.state != VolumeState::Optimal {
                    continue;
                }
                let d = v.drives[slot % n];
                if matches!(op, Op::Fail(_)) {
                    t.raid.fail_drive(d).unwrap();
                } else {
                    t.raid.kill_drive(d).unwrap();
                }
                broken = Some(d);
            }
            Op::KillSpare => {
                let spare = t.raid.drives().into_iter().find(|d| d.state == DriveState::HotSpare);
                if let Some(d) = spare {
                    t.raid.kill_drive(d.id).unwrap();
                }
            }
            Op::SpareArrives => spare_arrives(&mut t.raid),
            Op::RebuildStep(strips) => {
                t.raid.rebuild_step(strips * STRIP);
            }
        }
        prop_assert_ne!(t.raid.volume(0).unwrap().state, VolumeState::Offline, "{}", what);
    }
    // Flush (a write may be what finds a dead drive), rebuild until whole, check everything.
    t.check_all("end");
    t.raid.flush(0).unwrap();
    t.check_all("end, flushed");
    for _ in 0..4 {
        if t.raid.volume(0).unwrap().state == VolumeState::Optimal {
            break;
        }
        spare_arrives(&mut t.raid);
        t.raid.finish_rebuilds();
        t.check_all("end, rebuilt");
    }
    prop_assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Optimal);
    let r = t.raid.consistency_check(0).unwrap();
    prop_assert!(r.inconsistent_rows.is_empty(), "inconsistent rows {:?}", r.inconsistent_rows);
    prop_assert_eq!(r.rows_skipped, 0);
    Ok(())
}

proptest! {
    // No regression file (the minimal cases it found are the tests below).
    #![proptest_config(ProptestConfig {
        cases: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn raid5_matches_a_shadow_copy(
        n in 3..=5usize,
        write_back in any::<bool>(),
        ops in vec(op(), 1..80),
    ) {
        run(Level::Raid5, n, write_back, &ops)?;
    }

    #[test]
    fn raid10_matches_a_shadow_copy(
        pairs in 2..=3usize,
        write_back in any::<bool>(),
        ops in vec(op(), 1..80),
    ) {
        run(Level::Raid10, 2 * pairs, write_back, &ops)?;
    }
}

/// Found by the property test: a drive that dies during a RAID 5 row write, when the strip it
/// holds is only partly overwritten, must be rebuilt from all the others' old contents.
#[test]
fn regression_a_drive_dying_in_a_row_write() {
    let ops = [
        Op::Write { at: 10071584952700713066, blocks: 26, seed: 0 },
        Op::Kill(2),
        Op::Write { at: 3655262060304225451, blocks: 13, seed: 0 },
    ];
    run(Level::Raid5, 3, false, &ops).unwrap();
}

/// Found by the property test: a rebuild over rows that are holes everywhere still finds a
/// dead spare (it must not come out of the rebuild Online).
#[test]
fn regression_a_dead_spare_under_a_rebuild_of_holes() {
    let write = Op::Write { at: 0, blocks: 1, seed: 0 };
    let ops = [
        write.clone(),
        Op::SpareArrives,
        Op::KillSpare,
        Op::Kill(2),
        write.clone(),
        Op::Read { at: 0, blocks: 17 },
        Op::RebuildStep(2),
        write.clone(),
        Op::RebuildStep(3),
        write,
        Op::RebuildStep(2),
        Op::RebuildStep(10),
        Op::RebuildStep(10),
        Op::RebuildStep(5),
        Op::Fail(3),
    ];
    run(Level::Raid5, 3, true, &ops).unwrap();
}
