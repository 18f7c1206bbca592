//! End-to-end behaviour of the engine through its public API.

use std::cell::RefCell;
use std::rc::Rc;

use dkraid_core::scsi::{Asc, Data, Emulator, Identity, Limits, SenseKey};

use super::support::*;
use crate::raid::{
    Backing, DriveState, Event, EventKind, FailReason, Level, Raid, RaidConfig, RaidError,
    VolumeBackend, VolumeRequest, VolumeState,
};

// ---- round trips ------------------------------------------------------------------------------

/// Random writes and reads at random LBAs and lengths on every level, against a shadow copy;
/// then the whole volume, and a consistency check of parity and mirrors.
#[test]
fn round_trip_every_level() {
    for (level, n) in SHAPES {
        for write_back in [false, true] {
            for block_size in [512, 4096] {
                let what = format!("{level} x{n} bs={block_size} wb={write_back}");
                let mut t = Tb::new(level, n, 0, block_size, write_back);
                let mut rng = Rng(n as u64 * 7919 + u64::from(block_size) + write_back as u64);
                for _ in 0..60 {
                    t.random_write(&mut rng);
                    t.random_read_check(&mut rng, &what);
                }
                t.raid.flush(0).unwrap();
                t.check_all(&what);
                assert_consistent(&t.raid, &what);
            }
        }
    }
}

#[test]
fn io_is_checked_against_the_volume() {
    let mut t = Tb::new(Level::Raid5, 3, 0, 512, true);
    let cap = t.capacity_blocks();
    assert_eq!(
        t.raid.read(0, cap - 1, &mut [0u8; 1024]),
        Err(RaidError::OutOfRange { volume: 0, lba: cap - 1, blocks: 2, capacity: cap })
    );
    assert_eq!(
        t.raid.write(0, 0, &[0u8; 100]).unwrap_err().to_string(),
        "volume 0: 100 bytes is not a whole number of 512-byte blocks"
    );
    assert_eq!(t.raid.read(9, 0, &mut [0u8; 512]), Err(RaidError::NoSuchVolume { volume: 9 }));
    t.raid.read(0, cap, &mut []).unwrap();
}

// ---- degraded operation ----------------------------------------------------------------------

/// With any one member gone, every block reads back exactly as written (RAID 1, 5, 10), both
/// from data flushed before the failure and from data still in the cache.
#[test]
fn degraded_reads_return_what_was_written() {
    for (level, n) in SHAPES.into_iter().filter(|(l, _)| *l != Level::Raid0) {
        for (victim, block_size) in (0..n as u32).flat_map(|v| [(v, 512), (v, 4096)]) {
            let what = format!("{level} x{n} bs={block_size}, drive {victim} failed");
            let mut t = Tb::new(level, n, 0, block_size, true);
            let mut rng = Rng(u64::from(victim) + 1);
            t.fill(&mut rng);
            t.raid.flush(0).unwrap();
            t.random_write(&mut rng); // some of it still cached
            t.raid.fail_drive(victim).unwrap();
            let want = if level == Level::Raid1 && n > 2 {
                VolumeState::PartiallyDegraded
            } else {
                VolumeState::Degraded
            };
            assert_eq!(t.raid.volume(0).unwrap().state, want, "{what}");
            t.check_all(&what);
            t.raid.flush(0).unwrap();
            t.check_all(&what);
        }
    }
}

#[test]
fn raid0_goes_offline_when_a_drive_fails() {
    let mut t = Tb::new(Level::Raid0, 3, 0, 512, false);
    let mut rng = Rng(3);
    t.fill(&mut rng);
    t.raid.fail_drive(1).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Offline);
    let e = t.raid.read(0, 0, &mut [0u8; 512]).unwrap_err();
    assert_eq!(e, RaidError::VolumeOffline { volume: 0, failed: vec![1] });
    assert_eq!(e.to_string(), "volume 0 is offline (failed: drive 1)");
    assert!(matches!(t.raid.write(0, 0, &[1u8; 512]), Err(RaidError::VolumeOffline { .. })));
    assert_eq!(
        kinds(&t.raid.events_since(1)),
        vec![
            EventKind::DriveFailed { drive: 1, volume: Some(0), reason: FailReason::SetOffline },
            EventKind::VolumeOffline { volume: 0 },
        ]
    );
    // No redundancy, so nothing to rebuild from.
    assert_eq!(
        t.raid.start_rebuild(0).unwrap_err().to_string(),
        "volume 0 is offline (failed: drive 1)"
    );
}

/// Writes while degraded keep parity (or the surviving mirror) right: after a rebuild every
/// block — old, rewritten while degraded, written during the rebuild — reads back.
#[test]
fn writes_while_degraded_then_rebuild_then_read_back() {
    for (level, n) in SHAPES.into_iter().filter(|(l, _)| *l != Level::Raid0) {
        for victim in [0u32, n as u32 - 1] {
            for write_back in [false, true] {
                let what = format!("{level} x{n}, drive {victim}, wb={write_back}");
                let mut t = Tb::new(level, n, 0, 512, write_back);
                let mut rng = Rng(u64::from(victim) * 31 + n as u64);
                t.fill(&mut rng);
                t.raid.fail_drive(victim).unwrap();
                for _ in 0..40 {
                    t.random_write(&mut rng);
                    t.random_read_check(&mut rng, &what);
                }
                // A spare arrives: the rebuild starts at once; keep writing while it runs.
                let spare = t.extra;
                t.raid.set_hot_spare(spare).unwrap();
                assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Rebuilding, "{what}");
                let mut steps = 0;
                while !t.raid.rebuilds().is_empty() {
                    t.raid.rebuild_step(STRIP);
                    t.random_write(&mut rng);
                    t.random_read_check(&mut rng, &what);
                    steps += 1;
                }
                assert!(steps > 4, "{what}: {steps} steps");
                assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Optimal, "{what}");
                t.raid.flush(0).unwrap();
                t.check_all(&what);
                assert_consistent(&t.raid, &what);
                // The rebuilt drive alone carries its share: lose another one and read again.
                let other = t.raid.volume(0).unwrap().drives.iter().copied().find(|&d| d != spare);
                t.raid.fail_drive(other.unwrap()).unwrap();
                t.check_all(&what);
            }
        }
    }
}

#[test]
fn rebuild_onto_a_hot_spare_restores_optimal() {
    let mut t = Tb::new(Level::Raid5, 5, 1, 512, true);
    let mut rng = Rng(11);
    t.fill(&mut rng);
    t.raid.fail_drive(2).unwrap();
    let v = t.raid.volume(0).unwrap();
    assert_eq!(v.state, VolumeState::Rebuilding);
    assert_eq!(v.drives, vec![0, 1, 5, 3, 4]);
    assert_eq!(t.raid.drive(5).unwrap().state, DriveState::Rebuild);
    assert_eq!(t.raid.drive(2).unwrap().state, DriveState::UnconfiguredBad);
    assert_eq!(t.raid.drive(2).unwrap().volume, None);
    let total = v.member_bytes;
    let mut last = 0;
    loop {
        let s = t.raid.rebuild_step(total / 7);
        assert_eq!(s.len(), 1);
        assert!(s[0].percent >= last);
        last = s[0].percent;
        if s[0].finished {
            assert_eq!((s[0].percent, s[0].done_bytes), (100, total));
            break;
        }
        assert_eq!(t.raid.rebuilds()[0].percent, s[0].percent);
    }
    let v = t.raid.volume(0).unwrap();
    assert_eq!(v.state, VolumeState::Optimal);
    assert!(v.rebuilds.is_empty());
    assert_eq!(t.raid.drive(5).unwrap().state, DriveState::Online);
    assert_eq!(t.raid.drive(5).unwrap().volume, Some(0));
    assert!(t
        .raid
        .events_since(0)
        .iter()
        .any(|e| e.kind == EventKind::SpareActive { volume: 0, drive: 5 }));
    t.check_all("after the rebuild");
    assert_consistent(&t.raid, "after the rebuild");
    // The replaced drive can be repaired and become the next spare.
    t.raid.make_good(2).unwrap();
    t.raid.set_hot_spare(2).unwrap();
    assert_eq!(t.raid.controller_info().hot_spares, 1);
}

/// The event log for fail → degraded → rebuild progress → done, exactly.
#[test]
fn event_sequence_for_a_failure_and_rebuild() {
    let mut t = Tb::new(Level::Raid5, 5, 1, 512, true);
    let start = t.raid.last_event_seq();
    t.raid.fail_drive(3).unwrap();
    t.raid.finish_rebuilds();
    let events = t.raid.events_since(start);
    let mut want = vec![
        EventKind::DriveFailed { drive: 3, volume: Some(0), reason: FailReason::SetOffline },
        EventKind::VolumeDegraded { volume: 0, state: VolumeState::Degraded },
        EventKind::RebuildStarted { volume: 0, drive: 5, replacing: 3 },
    ];
    for percent in (10..=90).step_by(10) {
        want.push(EventKind::RebuildProgress { volume: 0, drive: 5, percent });
    }
    want.extend([
        EventKind::RebuildFinished { volume: 0, drive: 5 },
        EventKind::SpareActive { volume: 0, drive: 5 },
        EventKind::VolumeOptimal { volume: 0 },
    ]);
    assert_eq!(kinds(&events), want);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (start + 1..=start + want.len() as u64).collect::<Vec<_>>());
    assert_eq!(t.raid.events_since(start + 3)[0].seq, start + 4);
}

#[test]
fn the_creation_events_come_first() {
    let t = Tb::new(Level::Raid10, 4, 1, 512, true);
    let member = t.raid.volume(0).unwrap().member_bytes;
    assert_eq!(
        kinds(&t.raid.events_since(0)),
        vec![
            EventKind::VolumeCreated {
                volume: 0,
                level: Level::Raid10,
                drives: vec![0, 1, 2, 3],
                capacity_bytes: 2 * member,
            },
            EventKind::HotSpareAdded { drive: 4 },
        ]
    );
}

#[test]
fn two_failures_take_raid5_offline() {
    let mut t = Tb::new(Level::Raid5, 4, 0, 512, true);
    let mut rng = Rng(5);
    t.fill(&mut rng);
    t.raid.fail_drive(1).unwrap();
    t.check_all("one failure");
    t.random_write(&mut rng);
    t.raid.fail_drive(3).unwrap();
    let v = t.raid.volume(0).unwrap();
    assert_eq!(v.state, VolumeState::Offline);
    assert!(v.dirty_bytes > 0, "the cache is pinned, not dropped");
    let offline = RaidError::VolumeOffline { volume: 0, failed: vec![1, 3] };
    assert_eq!(t.raid.read(0, 0, &mut [0u8; 512]), Err(offline.clone()));
    assert_eq!(t.raid.write(0, 0, &[0u8; 512]), Err(offline.clone()));
    assert_eq!(t.raid.flush(0), Err(offline.clone()));
    assert_eq!(offline.to_string(), "volume 0 is offline (failed: drives 1, 3)");
    assert_eq!(
        kinds(&t.raid.events_since(1)),
        vec![
            EventKind::DriveFailed { drive: 1, volume: Some(0), reason: FailReason::SetOffline },
            EventKind::VolumeDegraded { volume: 0, state: VolumeState::Degraded },
            EventKind::DriveFailed { drive: 3, volume: Some(0), reason: FailReason::SetOffline },
            EventKind::VolumeOffline { volume: 0 },
        ]
    );
    // A spare arriving now changes nothing.
    let spare = t.extra;
    t.raid.set_hot_spare(spare).unwrap();
    assert!(t.raid.rebuilds().is_empty());
    assert_eq!(t.raid.replace_drive(1, spare).unwrap_err(), offline);
}

#[test]
fn a_second_failure_during_the_rebuild_aborts_it() {
    let mut t = Tb::new(Level::Raid5, 4, 1, 512, false);
    t.fill(&mut Rng(8));
    t.raid.fail_drive(0).unwrap();
    t.raid.rebuild_step(3 * STRIP);
    let seq = t.raid.last_event_seq();
    t.raid.fail_drive(2).unwrap();
    assert_eq!(
        kinds(&t.raid.events_since(seq)),
        vec![
            EventKind::DriveFailed { drive: 2, volume: Some(0), reason: FailReason::SetOffline },
            EventKind::VolumeOffline { volume: 0 },
            EventKind::RebuildAborted {
                volume: 0,
                drive: 4,
                reason: "the volume is offline".into()
            },
        ]
    );
    assert!(t.raid.rebuilds().is_empty());
    assert!(t.raid.rebuild_step(u64::MAX).is_empty());
}

#[test]
fn raid10_survives_one_failure_per_pair_not_two_in_one() {
    let mut t = Tb::new(Level::Raid10, 6, 0, 512, false);
    t.fill(&mut Rng(21));
    t.raid.fail_drive(0).unwrap();
    t.raid.fail_drive(3).unwrap();
    t.raid.fail_drive(5).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Degraded);
    t.check_all("one per pair");
    t.raid.fail_drive(1).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Offline);
}

#[test]
fn raid1_three_way_degrades_partially_then_fully() {
    let mut t = Tb::new(Level::Raid1, 3, 0, 512, false);
    t.fill(&mut Rng(2));
    t.raid.fail_drive(0).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::PartiallyDegraded);
    t.raid.fail_drive(2).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Degraded);
    t.check_all("one copy left");
    let events = kinds(&t.raid.events_since(1));
    assert_eq!(
        events[1],
        EventKind::VolumeDegraded { volume: 0, state: VolumeState::PartiallyDegraded }
    );
    assert_eq!(events[3], EventKind::VolumeDegraded { volume: 0, state: VolumeState::Degraded });
}

#[test]
fn replace_drive_rebuilds_onto_a_chosen_drive() {
    let mut t = Tb::new(Level::Raid10, 4, 0, 512, true);
    let spare = t.extra;
    t.fill(&mut Rng(4));
    t.raid.fail_drive(2).unwrap();
    assert_eq!(
        t.raid.start_rebuild(0).unwrap_err().to_string(),
        format!(
            "volume 0 needs a hot spare of at least {} and there is none",
            crate::raid::error::human_bytes(t.raid.volume(0).unwrap().member_bytes)
        )
    );
    assert_eq!(
        t.raid.replace_drive(1, spare).unwrap_err().to_string(),
        "drive 1 is not a failed member of any volume"
    );
    assert_eq!(
        t.raid.replace_drive(2, 3).unwrap_err().to_string(),
        "drive 3 is already in volume 0"
    );
    t.raid.replace_drive(2, spare).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().drives, vec![0, 1, spare, 3]);
    t.raid.finish_rebuilds();
    assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Optimal);
    t.check_all("after replace");
    assert_consistent(&t.raid, "after replace");
}

#[test]
fn a_pulled_drive_is_missing() {
    let mut t = Tb::new(Level::Raid1, 2, 1, 512, true);
    t.fill(&mut Rng(6));
    t.raid.pull_drive(0).unwrap();
    assert_eq!(t.raid.drive(0).unwrap().state, DriveState::Missing);
    assert_eq!(
        kinds(&t.raid.events_since(0))[2],
        EventKind::DriveFailed { drive: 0, volume: Some(0), reason: FailReason::Removed }
    );
    t.raid.finish_rebuilds();
    assert_eq!(t.raid.volume(0).unwrap().drives, vec![2, 1]);
    t.check_all("after the pull");
}

// ---- faults found by I/O ---------------------------------------------------------------------

#[test]
fn a_dead_drive_is_found_by_the_next_io() {
    let mut t = Tb::new(Level::Raid5, 4, 1, 512, false);
    t.fill(&mut Rng(9));
    t.raid.kill_drive(1).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Optimal, "nobody knows yet");
    let seq = t.raid.last_event_seq();
    t.check_all("read across the dead drive");
    assert_eq!(t.raid.drive(1).unwrap().state, DriveState::UnconfiguredBad);
    assert_eq!(
        kinds(&t.raid.events_since(seq))[..3],
        [
            EventKind::DriveFailed { drive: 1, volume: Some(0), reason: FailReason::IoError },
            EventKind::VolumeDegraded { volume: 0, state: VolumeState::Degraded },
            EventKind::RebuildStarted { volume: 0, drive: 4, replacing: 1 },
        ]
    );
    t.raid.finish_rebuilds();
    t.check_all("after the rebuild");
}

#[test]
fn a_dead_spare_is_found_by_the_rebuild_and_the_next_one_taken() {
    let mut t = Tb::new(Level::Raid1, 2, 2, 512, false);
    t.fill(&mut Rng(10));
    t.raid.kill_drive(2).unwrap();
    t.raid.fail_drive(0).unwrap();
    t.raid.finish_rebuilds();
    assert_eq!(t.raid.drive(2).unwrap().state, DriveState::UnconfiguredBad);
    assert_eq!(t.raid.volume(0).unwrap().drives, vec![3, 1]);
    assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Optimal);
    let events = kinds(&t.raid.events_since(0));
    assert!(events.contains(&EventKind::RebuildAborted {
        volume: 0,
        drive: 2,
        reason: "drive 2 failed".into()
    }));
    t.check_all("second spare");
}

#[test]
fn media_errors_are_corrected_from_redundancy() {
    for (level, n) in [(Level::Raid1, 2), (Level::Raid5, 4), (Level::Raid10, 4)] {
        let what = format!("{level}");
        let mut t = Tb::new(level, n, 0, 512, false);
        t.fill(&mut Rng(12));
        let layout = t.raid.layout(0).unwrap();
        let lba = 3 * layout.strip_blocks + 5;
        let (slot, member) = layout.map(lba);
        let drive = t.raid.volume(0).unwrap().drives[slot];
        t.raid.inject_media_error(drive, member * 512 + 100).unwrap();
        let seq = t.raid.last_event_seq();
        t.check_all(&what);
        assert_eq!(
            kinds(&t.raid.events_since(seq)),
            vec![EventKind::MediaErrorCorrected { drive, offset: member * 512 }],
            "{what}"
        );
        assert_eq!(t.raid.drive(drive).unwrap().media_errors, 0, "{what}");
        assert_eq!(t.raid.volume(0).unwrap().state, VolumeState::Optimal, "{what}");
    }
}

#[test]
fn unrecoverable_media_errors_name_the_lba() {
    // RAID 0: no second copy.
    let mut t = Tb::new(Level::Raid0, 2, 0, 512, false);
    t.fill(&mut Rng(13));
    let layout = t.raid.layout(0).unwrap();
    let (slot, member) = layout.map(300);
    t.raid.inject_media_error(slot as u32, member * 512).unwrap();
    let mut buf = vec![0u8; 64 * 512];
    assert_eq!(t.raid.read(0, 290, &mut buf), Err(RaidError::ReadError { volume: 0, lba: 300 }));
    assert_eq!(
        kinds(&t.raid.events_since(1)),
        vec![EventKind::MediaErrorUnrecovered { volume: 0, lba: 300 }]
    );
    // Writing the block reallocates the sector.
    t.write(300, &[0x77u8; 512]);
    t.check_all("rewritten");

    // RAID 5 degraded: a bad sector on a survivor loses only that block.
    let mut t = Tb::new(Level::Raid5, 3, 0, 512, false);
    t.fill(&mut Rng(14));
    let layout = t.raid.layout(0).unwrap();
    let (slot, member) = layout.map(300);
    t.raid.inject_media_error(slot as u32, member * 512).unwrap();
    let row = member / layout.strip_blocks;
    let victim = (0..3).find(|&s| s != slot && Some(s) != layout.parity_slot(row)).unwrap();
    t.raid.fail_drive(victim as u32).unwrap();
    // The failed drive's block at the same member offset is rebuilt from parity and the bad
    // sector: lost. Its neighbours are not.
    let lost = (0..t.capacity_blocks()).find(|&l| layout.map(l) == (victim, member)).unwrap();
    assert_eq!(
        t.raid.read(0, lost - 2, &mut [0u8; 2048]),
        Err(RaidError::ReadError { volume: 0, lba: lost })
    );
    let mut one = [0u8; 512];
    t.raid.read(0, lost - 1, &mut one).unwrap();
    assert_eq!(one[..], t.shadow[((lost - 1) * 512) as usize..(lost * 512) as usize]);
    // And block 300 itself, unreadable on the only copy left, is lost too.
    assert_eq!(t.raid.read(0, 300, &mut one), Err(RaidError::ReadError { volume: 0, lba: 300 }));
}

// ---- the cache -------------------------------------------------------------------------------

/// A write acknowledged after `flush` is on the drives; one not yet flushed lives only in the
/// volatile cache.
#[test]
fn flush_puts_acknowledged_writes_on_the_drives() {
    let mut t = Tb::new(Level::Raid5, 3, 0, 512, true);
    t.raid.write(0, 10, &[0xA1u8; 4096]).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().dirty_bytes, 4096);
    let mut buf = [0u8; 4096];
    t.raid.read(0, 10, &mut buf).unwrap();
    assert_eq!(buf, [0xA1u8; 4096], "reads see the cache");
    assert_eq!(t.raid.power_loss(), 4096);
    t.raid.read(0, 10, &mut buf).unwrap();
    assert_eq!(buf, [0u8; 4096], "never flushed: lost with the power");

    t.raid.write(0, 10, &[0xB2u8; 4096]).unwrap();
    t.raid.flush(0).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().dirty_bytes, 0);
    assert_eq!(t.raid.power_loss(), 0);
    t.raid.read(0, 10, &mut buf).unwrap();
    assert_eq!(buf, [0xB2u8; 4096]);
    // On the medium itself.
    let (slot, member) = t.raid.layout(0).unwrap().map(10);
    let mut raw = [0u8; 512];
    t.raid.peek(slot as u32, member * 512, &mut raw).unwrap();
    assert_eq!(raw, [0xB2u8; 512]);
    assert_consistent(&t.raid, "after flush");

    // Write-through: on the drives before write returns.
    t.raid.set_write_cache(0, false).unwrap();
    t.raid.write(0, 10, &[0xC3u8; 512]).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().write_cache, "WT");
    assert_eq!(t.raid.power_loss(), 0);
    t.raid.read(0, 10, &mut raw).unwrap();
    assert_eq!(raw, [0xC3u8; 512]);
}

/// A FUA write goes through to the drives and supersedes the cached copies of its blocks; the
/// volume's other dirty blocks stay cached.
#[test]
fn write_through_bypasses_the_cache_for_its_blocks_only() {
    let mut t = Tb::new(Level::Raid5, 3, 0, 512, true);
    t.raid.write(0, 10, &[0xA1u8; 2048]).unwrap();
    t.raid.write(0, 100, &[0x5Au8; 512]).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().dirty_bytes, 2560);
    t.raid.write_through(0, 11, &[0xB2u8; 1024]).unwrap();
    assert_eq!(t.raid.volume(0).unwrap().dirty_bytes, 1536, "blocks 11-12 superseded");
    let (slot, member) = t.raid.layout(0).unwrap().map(12);
    let mut raw = [0u8; 512];
    t.raid.peek(slot as u32, member * 512, &mut raw).unwrap();
    assert_eq!(raw, [0xB2u8; 512], "on the medium");
    let mut buf = vec![0u8; 2048];
    t.raid.read(0, 10, &mut buf).unwrap();
    assert_eq!(&buf[..512], &[0xA1u8; 512][..]);
    assert_eq!(&buf[512..1536], &[0xB2u8; 1024][..]);
    assert_eq!(&buf[1536..], &[0xA1u8; 512][..]);
    // A power loss loses only what was never written through.
    assert_eq!(t.raid.power_loss(), 1536);
    t.raid.read(0, 10, &mut buf).unwrap();
    assert_eq!(&buf[512..1536], &[0xB2u8; 1024][..]);
    assert_eq!(&buf[..512], &[0u8; 512][..]);
    assert_consistent(&t.raid, "after write-through");
    assert!(t.raid.write_through(0, 1 << 40, &[0u8; 512]).is_err(), "past the end");
    assert!(t.raid.write_through(9, 0, &[0u8; 512]).is_err(), "no such volume");
}

#[test]
fn going_write_through_flushes() {
    let mut t = Tb::new(Level::Raid1, 2, 0, 512, true);
    t.write(0, &[5u8; 1024]);
    t.raid.set_write_cache(0, false).unwrap();
    assert_eq!(t.raid.power_loss(), 0);
    t.check_all("flushed by the switch");
}

#[test]
fn a_full_cache_is_flushed_to_make_room() {
    let mut config = RaidConfig::new(vec![1 << 20; 3]);
    config.cache_bytes = 256 << 10;
    let raid = Raid::new(&config).unwrap();
    let mut t = Tb::with_raid(raid, VolumeRequest::new(Level::Raid5, vec![0, 1, 2]).strip(STRIP));
    let mut rng = Rng(15);
    for _ in 0..50 {
        t.random_write(&mut rng);
        let dirty = t.raid.volume(0).unwrap().dirty_bytes;
        assert!(dirty <= 256 << 10, "{dirty}");
    }
    assert!(t.raid.drive(0).unwrap().stats.writes > 0, "pressure flushed to the drives");
    t.check_all("under pressure");
    // Larger than the cache: written through, superseding an older cached copy of block 10.
    t.write(10, &[0x99u8; 512]);
    t.write(0, &vec![0x42u8; 512 << 10]);
    t.check_all("big write");
    t.raid.power_loss();
    t.check_range(0, 1024, "big write, after a power loss");
}

// ---- management ------------------------------------------------------------------------------

#[test]
fn management_errors_say_what_and_why() {
    let mut raid =
        Raid::new(&RaidConfig::new(vec![1 << 20, 1 << 20, 1 << 20, 1 << 20, 4096])).unwrap();
    let mut err = |req: VolumeRequest| raid.create_volume(&req).unwrap_err().to_string();
    assert_eq!(
        err(VolumeRequest::new(Level::Raid5, vec![0, 1])),
        "RAID 5 needs at least 3 drives, got 2"
    );
    assert_eq!(
        err(VolumeRequest::new(Level::Raid10, vec![0, 1, 2])),
        "RAID 10 needs at least 4 drives, got 3"
    );
    assert_eq!(
        err(VolumeRequest::new(Level::Raid10, vec![0, 1, 2, 3, 4, 5])),
        "drive 5 does not exist"
    );
    assert_eq!(err(VolumeRequest::new(Level::Raid1, vec![0, 9])), "drive 9 does not exist");
    assert_eq!(err(VolumeRequest::new(Level::Raid1, vec![0, 0])), "drive 0 is listed twice");
    assert_eq!(
        err(VolumeRequest::new(Level::Raid5, vec![0, 1, 2]).strip(3000)),
        "strip size 3000 is not a power of two"
    );
    assert_eq!(
        err(VolumeRequest::new(Level::Raid5, vec![0, 1, 2]).strip(2 << 20)),
        "strip size 2 MiB is outside 512 bytes ..= 1 MiB"
    );
    assert_eq!(
        err(VolumeRequest::new(Level::Raid5, vec![0, 1, 2]).strip(512).block_size(4096)),
        "strip size 512 bytes is outside 4 KiB ..= 1 MiB"
    );
    assert_eq!(
        err(VolumeRequest::new(Level::Raid1, vec![0, 1]).block_size(520)),
        "block size 520 is not 512 or 4096"
    );
    assert_eq!(
        err(VolumeRequest::new(Level::Raid1, vec![0, 4]).strip(8192)),
        "drive 4 has 4 KiB but needs at least 8 KiB"
    );
    let mut raid = Raid::new(&RaidConfig::new(vec![1 << 20; 6])).unwrap();
    raid.create_volume(&VolumeRequest::new(Level::Raid1, vec![0, 1]).strip(4096)).unwrap();
    raid.set_hot_spare(5).unwrap();
    let mut err = |req: VolumeRequest| raid.create_volume(&req).unwrap_err().to_string();
    assert_eq!(
        err(VolumeRequest::new(Level::Raid0, vec![2, 3, 1])),
        "drive 1 is already in volume 0"
    );
    assert_eq!(err(VolumeRequest::new(Level::Raid0, vec![2, 5])), "drive 5 is a hot spare");
    assert_eq!(raid.set_hot_spare(0).unwrap_err().to_string(), "drive 0 is already in volume 0");
    assert_eq!(
        raid.clear_hot_spare(2).unwrap_err().to_string(),
        "drive 2 is Unconfigured Good, not a hot spare"
    );
    assert_eq!(raid.delete_volume(4).unwrap_err().to_string(), "volume 4 does not exist");
    assert_eq!(raid.fail_drive(7).unwrap_err().to_string(), "drive 7 does not exist");
    assert_eq!(
        raid.start_rebuild(0).unwrap_err().to_string(),
        "volume 0 has no failed member to rebuild"
    );
    raid.fail_drive(2).unwrap();
    assert_eq!(
        raid.fail_drive(2).unwrap_err().to_string(),
        "drive 2 is Unconfigured Bad, not a working drive"
    );
    assert_eq!(
        raid.make_good(3).unwrap_err().to_string(),
        "drive 3 is Unconfigured Good, not Unconfigured Bad"
    );
    assert_eq!(raid.make_good(0).unwrap_err().to_string(), "drive 0 is already in volume 0");
    let mut err = |req: VolumeRequest| raid.create_volume(&req).unwrap_err().to_string();
    assert_eq!(
        err(VolumeRequest::new(Level::Raid1, vec![2, 3])),
        "drive 2 is Unconfigured Bad, not Unconfigured Good"
    );
    raid.make_good(2).unwrap();
    raid.create_volume(&VolumeRequest::new(Level::Raid1, vec![2, 3])).unwrap();
    assert_eq!(
        Raid::new(&RaidConfig::new(vec![1000])).unwrap_err().to_string(),
        "drive 0: capacity 1000 bytes is not a positive multiple of 512"
    );
}

#[test]
fn show_and_delete() {
    let mut t = Tb::new(Level::Raid5, 4, 1, 4096, true);
    let v = t.raid.volume(0).unwrap();
    assert_eq!(v.level, Level::Raid5);
    assert_eq!(v.drives, vec![0, 1, 2, 3]);
    assert_eq!(v.member_bytes, DRIVE / STRIP * STRIP);
    assert_eq!(v.capacity_bytes, 3 * v.member_bytes);
    assert_eq!(v.capacity_blocks, v.capacity_bytes / 4096);
    assert_eq!((v.block_size, v.strip_bytes, v.write_cache), (4096, STRIP, "WB"));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["level"], "RAID5");
    assert_eq!(json["state"], "Optimal");
    let d = serde_json::to_value(t.raid.drive(4).unwrap()).unwrap();
    assert_eq!(d["state"], "Hot Spare");
    assert_eq!(d["backing"], "memory");
    let c = t.raid.controller_info();
    assert_eq!((c.drives, c.volumes, c.hot_spares), (6, 1, 1));
    serde_json::to_string(&t.raid.events_since(0)).unwrap();

    t.write(0, &[1u8; 8192]);
    t.raid.fail_drive(1).unwrap();
    t.raid.delete_volume(0).unwrap();
    assert!(t.raid.volumes().is_empty());
    let states: Vec<DriveState> = t.raid.drives().iter().map(|d| d.state).collect();
    use DriveState::*;
    // Drive 1 was replaced by the spare (4), which was still rebuilding; 5 is the extra.
    assert_eq!(
        states,
        vec![
            UnconfiguredGood,
            UnconfiguredBad,
            UnconfiguredGood,
            UnconfiguredGood,
            UnconfiguredGood,
            UnconfiguredGood
        ]
    );
    assert_eq!(t.raid.read(0, 0, &mut [0u8; 4096]), Err(RaidError::NoSuchVolume { volume: 0 }));
    assert_eq!(
        kinds(&t.raid.events_since(0)).last(),
        Some(&EventKind::VolumeDeleted { volume: 0 })
    );
    // Volume numbers are not reused; a new volume over old drives reads zeros.
    let id = t.raid.create_volume(&VolumeRequest::new(Level::Raid0, vec![0, 2])).unwrap();
    assert_eq!(id, 1);
    let mut buf = vec![0xFFu8; 8192];
    t.raid.read(1, 0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

// ---- backing ---------------------------------------------------------------------------------

#[test]
fn sparse_files_in_a_directory() {
    let dir = std::env::temp_dir().join(format!("dkraid-raid-files-{}", std::process::id()));
    let mut config = RaidConfig::new(vec![64 << 20; 4]);
    config.backing = Backing::Files(dir.clone());
    let raid = Raid::new(&config).unwrap();
    let mut t = Tb::with_raid(raid, VolumeRequest::new(Level::Raid5, vec![0, 1, 2]).strip(STRIP));
    t.raid.set_hot_spare(3).unwrap();
    let mut rng = Rng(16);
    for _ in 0..40 {
        t.random_write(&mut rng);
    }
    t.raid.flush(0).unwrap();
    let info = t.raid.drive(0).unwrap();
    assert_eq!(info.backing, "file");
    let path = std::path::PathBuf::from(info.path.unwrap());
    assert_eq!(path, dir.join("drive-00.img"));
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 64 << 20);
    {
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 < 16 << 20, "sparse: {} blocks", meta.blocks());
    }
    t.raid.fail_drive(1).unwrap();
    t.check_all("files, degraded");
    t.raid.finish_rebuilds();
    t.check_all("files, rebuilt");
    assert_consistent(&t.raid, "files");
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The showcase array: 8 GiB of RAID 5 over six 2 GiB drives costs only what is written, and
/// survives a failure and a full rebuild onto its spare.
#[test]
fn the_default_array_fails_and_rebuilds() {
    let mut raid = Raid::default();
    let cap = raid.volume(0).unwrap().capacity_blocks;
    let mut rng = Rng(17);
    let mut written = Vec::new();
    for _ in 0..64 {
        let lba = rng.below(cap - 256);
        let data = rng.bytes(256 * 512);
        raid.write(0, lba, &data).unwrap();
        written.push((lba, data));
    }
    raid.flush(0).unwrap();
    raid.fail_drive(2).unwrap();
    let mut steps = 0;
    while !raid.rebuilds().is_empty() {
        raid.rebuild_step(256 << 20);
        steps += 1;
    }
    assert_eq!(steps, 8);
    assert_eq!(raid.volume(0).unwrap().state, VolumeState::Optimal);
    assert_eq!(raid.volume(0).unwrap().drives, vec![0, 1, 5, 3, 4]);
    // The newest data of every block written (later writes may overlap earlier ones).
    let mut shadow: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
    for (lba, data) in &written {
        for (i, block) in data.chunks(512).enumerate() {
            shadow.insert(lba + i as u64, block.to_vec());
        }
    }
    let mut block = [0u8; 512];
    for (lba, want) in &shadow {
        raid.read(0, *lba, &mut block).unwrap();
        assert_eq!(&block[..], &want[..], "LBA {lba}");
    }
    let allocated: u64 = raid.drives().iter().map(|d| d.allocated_bytes).sum();
    assert!(allocated < 64 << 20, "{allocated} bytes allocated");
    assert!(raid.consistency_check(0).unwrap().inconsistent_rows.is_empty());
}

// ---- the SCSI emulator on a volume -------------------------------------------------------------

fn cdb10(op: u8, lba: u32, blocks: u16, fua: bool) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[1] = if fua { 0x08 } else { 0 };
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[test]
fn the_scsi_emulator_runs_on_a_volume() {
    let raid = Rc::new(RefCell::new(Raid::default()));
    let backend = VolumeBackend::new(raid.clone(), 0).unwrap();
    let mut disk = Emulator::new(backend, Identity::dkraid(b"RAID5 volume", 0), Limits::default());
    // The power-on unit attention.
    let c = disk.execute(&[0u8; 6], 0, 0, Data::None);
    assert_eq!(c.sense.map(|s| s.key), Some(SenseKey::UnitAttention));
    // READ CAPACITY(16): 8 GiB of 512-byte blocks.
    let mut cap = [0u8; 32];
    let rc16 = [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    assert_eq!(disk.execute(&rc16, 0, 32, Data::In(&mut cap)).status, 0);
    assert_eq!(u64::from_be_bytes(cap[..8].try_into().unwrap()), (8u64 << 30) / 512 - 1);

    let data: Vec<u8> = (0..64 * 512).map(|i| (i % 253) as u8).collect();
    let c = disk.execute(&cdb10(0x2A, 1000, 64, false), 0, data.len() as u64, Data::Out(&data));
    assert_eq!((c.status, c.bytes), (0, data.len() as u64));
    assert!(raid.borrow().volume(0).unwrap().dirty_bytes > 0);
    // SYNCHRONIZE CACHE(10) empties the cache.
    assert_eq!(disk.execute(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0, 0, Data::None).status, 0);
    assert_eq!(raid.borrow().volume(0).unwrap().dirty_bytes, 0);
    // FUA: on the drives when the command completes.
    let c = disk.execute(&cdb10(0x2A, 5000, 1, true), 0, 512, Data::Out(&data[..512]));
    assert_eq!(c.status, 0);
    assert_eq!(raid.borrow_mut().power_loss(), 0);

    // A failure underneath changes nothing for the host.
    raid.borrow_mut().fail_drive(1).unwrap();
    let mut back = vec![0u8; data.len()];
    let c = disk.execute(&cdb10(0x28, 1000, 64, false), 0, back.len() as u64, Data::In(&mut back));
    assert_eq!(c.status, 0);
    assert_eq!(back, data);

    // An offline volume is HARDWARE ERROR; the backend keeps the engine's reason.
    raid.borrow_mut().finish_rebuilds();
    raid.borrow_mut().fail_drive(0).unwrap();
    raid.borrow_mut().fail_drive(3).unwrap();
    let c = disk.execute(&cdb10(0x28, 0, 1, false), 0, 512, Data::In(&mut back[..512]));
    let sense = c.sense.unwrap();
    assert_eq!((sense.key, sense.asc), (SenseKey::HardwareError, Asc::INTERNAL_TARGET_FAILURE));
    assert!(matches!(
        disk.backend_mut().take_last_error(),
        Some(RaidError::VolumeOffline { volume: 0, .. })
    ));
}

#[test]
fn an_unreadable_block_is_a_medium_error_with_its_lba() {
    let mut config = RaidConfig::new(vec![DRIVE; 2]);
    config.cache_bytes = 1 << 20;
    let raid = Rc::new(RefCell::new(Raid::new(&config).unwrap()));
    raid.borrow_mut()
        .create_volume(&VolumeRequest::new(Level::Raid0, vec![0, 1]).strip(STRIP))
        .unwrap();
    let (slot, member) = raid.borrow().layout(0).unwrap().map(77);
    raid.borrow_mut().inject_media_error(slot as u32, member * 512).unwrap();
    let mut disk = Emulator::new(
        VolumeBackend::new(raid, 0).unwrap(),
        Identity::dkraid(b"x", 1),
        Limits::default(),
    );
    disk.execute(&[0u8; 6], 0, 0, Data::None);
    let mut buf = vec![0u8; 16 * 512];
    let c = disk.execute(&cdb10(0x28, 70, 16, false), 0, buf.len() as u64, Data::In(&mut buf));
    let sense = c.sense.unwrap();
    assert_eq!((sense.key, sense.asc), (SenseKey::MediumError, Asc::UNRECOVERED_READ_ERROR));
    assert_eq!(sense.information, Some(77));
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind.clone()).collect()
}

/// A spare dedicated to a volume rebuilds that volume only; a global spare any; a deleted
/// volume's dedicated spare becomes global.
#[test]
fn a_dedicated_spare_rebuilds_only_its_volume() {
    let mut raid = Raid::new(&RaidConfig::new(vec![1 << 20; 6])).unwrap();
    let a = raid.create_volume(&VolumeRequest::new(Level::Raid1, vec![0, 1]).strip(4096)).unwrap();
    let b = raid.create_volume(&VolumeRequest::new(Level::Raid1, vec![2, 3]).strip(4096)).unwrap();
    assert_eq!(raid.set_dedicated_spare(4, 9).unwrap_err().to_string(), "volume 9 does not exist");
    raid.set_dedicated_spare(4, b).unwrap();
    assert_eq!((raid.dedicated_to(4), raid.drive(4).unwrap().volume), (Some(b), Some(b)));
    assert_eq!(raid.drive(4).unwrap().state, DriveState::HotSpare);
    // Volume a degrades: the spare is not its to take.
    raid.fail_drive(0).unwrap();
    assert!(raid.volume(a).unwrap().rebuilds.is_empty());
    assert_eq!(raid.drive(4).unwrap().state, DriveState::HotSpare);
    // A global spare is taken by a at once.
    raid.set_hot_spare(5).unwrap();
    assert_eq!(raid.volume(a).unwrap().rebuilds[0].drive, 5);
    raid.finish_rebuilds();
    // Volume b degrades: its dedicated spare rebuilds it and is a member, no longer a spare.
    raid.fail_drive(3).unwrap();
    assert_eq!(raid.volume(b).unwrap().rebuilds[0].drive, 4);
    assert_eq!(raid.dedicated_to(4), None);
    raid.finish_rebuilds();
    assert_eq!(raid.volume(b).unwrap().state, VolumeState::Optimal);
    // Clearing forgets a dedication; deleting the volume makes its spare global.
    raid.make_good(3).unwrap();
    raid.set_dedicated_spare(3, b).unwrap();
    raid.clear_hot_spare(3).unwrap();
    assert_eq!(raid.dedicated_to(3), None);
    raid.set_dedicated_spare(3, b).unwrap();
    raid.delete_volume(b).unwrap();
    assert_eq!((raid.dedicated_to(3), raid.drive(3).unwrap().volume), (None, None));
    assert_eq!(raid.drive(3).unwrap().state, DriveState::HotSpare);
}

/// The SBC commands of issue 14 on a RAID volume, the way the firmware runs them: FUA, WRITE
/// AND VERIFY and COMPARE AND WRITE reach the drives; they work on a degraded volume.
#[test]
fn fua_write_and_verify_and_compare_and_write_on_a_volume() {
    let raid = Rc::new(RefCell::new(Raid::default()));
    let backend = VolumeBackend::new(raid.clone(), 0).unwrap();
    let mut disk = Emulator::new(backend, Identity::dkraid(b"RAID5 volume", 0), Limits::default());
    disk.execute(&[0u8; 6], 0, 0, Data::None);
    let dirty = |raid: &Rc<RefCell<Raid>>| raid.borrow().volume(0).unwrap().dirty_bytes;
    // A cached write elsewhere stays cached across a FUA write.
    assert_eq!(disk.execute(&cdb10(0x2A, 0, 1, false), 0, 512, Data::Out(&[1u8; 512])).status, 0);
    assert_eq!(dirty(&raid), 512);
    let c = disk.execute(&cdb10(0x2A, 64, 2, true), 0, 1024, Data::Out(&[2u8; 1024]));
    assert_eq!((c.status, dirty(&raid)), (0, 512), "FUA: through, the rest of the cache kept");
    // WRITE AND VERIFY(10) with BYTCHK: written through and compared from the drives.
    let data: Vec<u8> = (0..4096).map(|i| (i % 241) as u8).collect();
    let mut wv = cdb10(0x2E, 128, 8, false);
    wv[1] = 0x02;
    let c = disk.execute(&wv, 0, 4096, Data::Out(&data));
    assert_eq!((c.status, c.bytes, dirty(&raid)), (0, 4096, 512));
    assert_eq!(raid.borrow_mut().power_loss(), 512, "only the plain write was lost");
    let mut back = vec![0u8; 4096];
    disk.execute(&cdb10(0x28, 128, 8, false), 0, 4096, Data::In(&mut back));
    assert_eq!(back, data);
    // COMPARE AND WRITE on a degraded volume: the compare reads reconstruct, the write lands.
    raid.borrow_mut().fail_drive(2).unwrap();
    let mut caw = [0u8; 16];
    caw[0] = 0x89;
    caw[1] = 0x08; // FUA
    caw[2..10].copy_from_slice(&128u64.to_be_bytes());
    caw[13] = 8;
    let mut both = data.clone();
    both.extend(std::iter::repeat_n(0xC4u8, 4096));
    let c = disk.execute(&caw, 0, 8192, Data::Out(&both));
    assert_eq!((c.status, c.bytes), (0, 8192));
    disk.execute(&cdb10(0x28, 128, 8, false), 0, 4096, Data::In(&mut back));
    assert_eq!(back, vec![0xC4u8; 4096]);
    // Compared against the old data again: a miscompare at byte 0, nothing written.
    let c = disk.execute(&caw, 0, 8192, Data::Out(&both));
    let sense = c.sense.unwrap();
    assert_eq!(
        (sense.key, sense.asc, sense.information),
        (SenseKey::Miscompare, Asc::MISCOMPARE_DURING_VERIFY, Some(0))
    );
    disk.execute(&cdb10(0x28, 128, 8, false), 0, 4096, Data::In(&mut back));
    assert_eq!(back, vec![0xC4u8; 4096]);
    // WRITE SAME(10): the pattern in every block.
    let c = disk.execute(&cdb10(0x41, 300, 40, false), 0, 512, Data::Out(&[0x77u8; 512]));
    assert_eq!(c.status, 0);
    let mut many = vec![0u8; 41 * 512];
    disk.execute(&cdb10(0x28, 300, 41, false), 0, many.len() as u64, Data::In(&mut many));
    assert!(many[..40 * 512].iter().all(|b| *b == 0x77));
    assert!(many[40 * 512..].iter().all(|b| *b == 0));
    raid.borrow_mut().finish_rebuilds();
    raid.borrow_mut().flush(0).unwrap();
    assert_consistent(&raid.borrow(), "after the SBC commands");
}
