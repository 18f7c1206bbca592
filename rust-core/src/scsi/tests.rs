//! The emulator against SCSI.md: formats, allocation lengths, exact byte counts, unit
//! attentions, bad input named by sense (table-driven), and property tests over arbitrary CDBs.

extern crate std;

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::emulator::status::{CHECK_CONDITION, GOOD};
use super::*;

const TIB: u64 = 1 << 40;

fn fake(capacity_bytes: u64) -> Emulator<FakeBlock> {
    let mut e = Emulator::new(
        FakeBlock::new(512, capacity_bytes / 512),
        Identity::dkraid(b"Fake Block", 0),
        Limits::default(),
    );
    // Consume the power-on unit attention.
    let c = e.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None);
    assert_eq!(c.sense.map(|s| s.asc), Some(Asc::POWER_ON_OR_RESET));
    e
}

fn ram(storage: &mut [u8]) -> Emulator<Ram<'_>> {
    let mut e = Emulator::new(
        Ram::new(storage, 512).unwrap(),
        Identity::dkraid(b"RAM", 1),
        Limits::default(),
    );
    e.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None);
    e
}

fn data_in<B: BlockBackend>(e: &mut Emulator<B>, cdb: &[u8], len: usize) -> (Completion, Vec<u8>) {
    let mut buf = vec![0xEEu8; len];
    let c = e.execute(cdb, 0, len as u64, Data::In(&mut buf));
    buf.truncate(c.bytes as usize);
    (c, buf)
}

fn sense_of(c: &Completion) -> (u8, u8, u8, [u8; 3]) {
    assert_eq!(c.status, CHECK_CONDITION, "{c:?}");
    let s = c.sense.unwrap().to_fixed();
    (s[2], s[12], s[13], [s[15], s[16], s[17]])
}

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[test]
fn inquiry_keeps_additional_length_whatever_the_allocation() {
    let mut e = fake(TIB);
    let (c, d) = data_in(&mut e, &[0x12, 0, 0, 0, 6, 0], 255);
    assert_eq!((c.status, c.bytes), (GOOD, 6));
    assert_eq!(d[4], 91, "ADDITIONAL LENGTH for 96 bytes");
    let (c, d) = data_in(&mut e, &[0x12, 0, 0, 0, 96, 0], 255);
    assert_eq!(c.bytes, 96);
    assert_eq!(d[0], 0x00, "direct-access device");
    assert_eq!(d[2], 0x06, "SPC-4");
    assert_eq!(d[3], 0x12, "HISUP, format 2");
    assert_eq!(d[7] & 0x02, 0x02, "CMDQUE");
    assert_eq!(&d[8..16], b"DKRAID  ");
    assert_eq!(&d[16..32], b"Fake Block      ");
    assert_eq!(&d[58..64], &[0x00, 0xA0, 0x04, 0x60, 0x04, 0xC0]);
    // 36 bytes: exactly 36 are transferred.
    assert_eq!(data_in(&mut e, &[0x12, 0, 0, 0, 36, 0], 36).0.bytes, 36);
    // The host's buffer bounds the transfer too.
    assert_eq!(data_in(&mut e, &[0x12, 0, 0, 0, 96, 0], 20).0.bytes, 20);
}

#[test]
fn vpd_pages() {
    let mut e = fake(TIB);
    let (c, d) = data_in(&mut e, &[0x12, 1, 0x00, 0, 4, 0], 255);
    assert_eq!(c.bytes, 4);
    assert_eq!(d[3], 5, "page list length");
    let (_, d) = data_in(&mut e, &[0x12, 1, 0x00, 0, 255, 0], 255);
    assert_eq!(&d[4..], &[0x00, 0x80, 0x83, 0xB0, 0xB1], "no B2 without unmap");
    let (_, d) = data_in(&mut e, &[0x12, 1, 0x80, 0, 255, 0], 255);
    assert_eq!(&d[4..], b"DKRAID0000000000");
    let (_, d) = data_in(&mut e, &[0x12, 1, 0x83, 0, 255, 0], 255);
    assert_eq!(&d[4..8], &[0x01, 0x03, 0x00, 16], "NAA, LU, 16 bytes");
    assert_eq!(d[8] >> 4, 6, "NAA 6");
    assert_eq!(usize::from(u16::from_be_bytes([d[2], d[3]])) + 4, d.len());
    let (_, d) = data_in(&mut e, &[0x12, 1, 0xB0, 0, 255, 0], 255);
    assert_eq!(d[3], 0x3C);
    assert_eq!(u32::from_be_bytes([d[8], d[9], d[10], d[11]]), (8 << 20) / 512, "max transfer");
    let (_, d) = data_in(&mut e, &[0x12, 1, 0xB1, 0, 255, 0], 255);
    assert_eq!(&d[4..6], &[0, 1], "non-rotating");
    let c = data_in(&mut e, &[0x12, 1, 0xB2, 0, 255, 0], 255).0;
    assert_eq!(sense_of(&c), (5, 0x24, 0, [0xC0, 0, 2]), "B2 only with unmap");
    let mut storage = vec![0u8; 512 * 64];
    let mut r = ram(&mut storage);
    let (_, d) = data_in(&mut r, &[0x12, 1, 0xB2, 0, 255, 0], 255);
    assert_eq!((d[1], d[5] & 0x80), (0xB2, 0x80));
}

#[test]
fn unit_attention_is_reported_once_but_not_to_inquiry() {
    let mut e =
        Emulator::new(FakeBlock::new(512, 1000), Identity::dkraid(b"x", 0), Limits::default());
    assert_eq!(data_in(&mut e, &[0x12, 0, 0, 0, 36, 0], 36).0.status, GOOD, "INQUIRY passes");
    let mut rl = [0u8; 12];
    rl[0] = 0xA0;
    rl[9] = 16;
    assert_eq!(data_in(&mut e, &rl, 16).0.status, GOOD, "REPORT LUNS passes");
    let c = e.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None);
    assert_eq!(sense_of(&c), (6, 0x29, 0x00, [0, 0, 0]));
    assert_eq!(e.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None).status, GOOD);
    e.capacity_changed();
    let (c, d) = data_in(&mut e, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!((c.status, c.bytes), (GOOD, 18), "REQUEST SENSE returns it");
    assert_eq!((d[0], d[2], d[7], d[12], d[13]), (0x70, 6, 10, 0x2A, 0x09));
    let (_, d) = data_in(&mut e, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!((d[2], d[12]), (0, 0), "and clears it");
    e.luns_changed();
    e.reset();
    let c = e.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None);
    assert_eq!(sense_of(&c).1, 0x29, "power-on outranks the LUN change");
}

#[test]
fn read_capacity() {
    let mut e = fake(TIB);
    let (c, d) = data_in(&mut e, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(c.bytes, 8);
    assert_eq!(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), (TIB / 512 - 1) as u32);
    assert_eq!(u32::from_be_bytes([d[4], d[5], d[6], d[7]]), 512);
    let mut big = fake(4 * TIB);
    let (_, d) = data_in(&mut big, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(&d[0..4], &[0xFF; 4], "2 TiB and up need READ CAPACITY(16)");
    let mut rc16 = [0u8; 16];
    rc16[0] = 0x9E;
    rc16[1] = 0x10;
    rc16[13] = 32;
    let (c, d) = data_in(&mut big, &rc16, 32);
    assert_eq!(c.bytes, 32);
    assert_eq!(u64::from_be_bytes(d[0..8].try_into().unwrap()), 4 * TIB / 512 - 1);
    rc16[13] = 12;
    assert_eq!(data_in(&mut big, &rc16, 32).0.bytes, 12, "allocation length honoured");
}

#[test]
fn mode_sense_lengths_and_pages() {
    let mut e = fake(TIB);
    // Caching page with the block descriptor: 4 + 8 + 20.
    let (c, d) = data_in(&mut e, &[0x1A, 0, 0x08, 0, 32, 0], 255);
    assert_eq!(c.bytes, 32, "the transferred count equals the requested count");
    assert_eq!(d[0], 31);
    assert_eq!(d[2] & 0x10, 0x10, "DPOFUA");
    assert_eq!(d[3], 8);
    assert_eq!((d[12], d[13], d[14] & 0x04), (0x08, 0x12, 0x04), "caching page, WCE on");
    // Header only (macOS's 3Fh probe): the length field still describes everything.
    let (c, d) = data_in(&mut e, &[0x1A, 0, 0x3F, 0, 4, 0], 255);
    assert_eq!(c.bytes, 4);
    assert_eq!(d[0] as usize, 4 + 8 + 20 + 12 - 1);
    // DBD.
    let (_, d) = data_in(&mut e, &[0x1A, 0x08, 0x08, 0, 255, 0], 255);
    assert_eq!((d[0], d[3], d[4]), (23, 0, 0x08));
    // Changeable values: only WCE.
    let (_, d) = data_in(&mut e, &[0x1A, 0x08, 0x48, 0, 255, 0], 255);
    assert_eq!(&d[4..8], &[0x08, 0x12, 0x04, 0]);
    // MODE SENSE(10) with long LBA descriptor.
    let (c, d) = data_in(&mut e, &[0x5A, 0x10, 0x0A, 0, 0, 0, 0, 0, 255, 0], 255);
    assert_eq!(c.bytes, 8 + 16 + 12);
    assert_eq!((d[4], d[7]), (1, 16));
    assert_eq!(u16::from_be_bytes([d[0], d[1]]) as u64, c.bytes - 2);
    assert_eq!(d[24], 0x0A);
}

#[test]
fn mode_select_turns_the_write_cache_off_and_refuses_malformed_lists() {
    let mut e = fake(TIB);
    let mut list = [0u8; 4 + 20];
    list[4] = 0x08;
    list[5] = 0x12;
    let c = e.execute(&[0x15, 0x10, 0, 0, 24, 0], 0, 24, Data::Out(&list));
    assert_eq!((c.status, c.bytes), (GOOD, 24));
    assert!(!e.write_cache_enabled());
    let (_, d) = data_in(&mut e, &[0x1A, 0x08, 0x08, 0, 255, 0], 255);
    assert_eq!(d[6] & 0x04, 0, "WCE now off");
    // A non-changeable field (RCD, bit 0 of byte 2).
    list[6] = 0x05;
    let c = e.execute(&[0x15, 0x10, 0, 0, 24, 0], 0, 24, Data::Out(&list));
    assert_eq!(sense_of(&c), (5, 0x26, 0, [0x88, 0, 6]));
    // Wrong page length.
    list[6] = 0x04;
    list[5] = 0x10;
    let c = e.execute(&[0x15, 0x10, 0, 0, 24, 0], 0, 24, Data::Out(&list));
    assert_eq!(sense_of(&c).1, 0x26);
    // Truncated list.
    let c = e.execute(&[0x15, 0x10, 0, 0, 10, 0], 0, 10, Data::Out(&list[..10]));
    assert_eq!(sense_of(&c).1, 0x1A);
    // Save pages is not supported.
    let c = e.execute(&[0x15, 0x11, 0, 0, 24, 0], 0, 24, Data::Out(&list));
    assert_eq!(sense_of(&c), (5, 0x24, 0, [0xC8, 0, 1]));
    assert!(!e.write_cache_enabled(), "a refused MODE SELECT changes nothing");
}

#[test]
fn the_fake_block_device() {
    let mut e = fake(TIB);
    let mut buf = vec![0u8; 4096];
    let c = e.execute(&rw10(0x28, 1234, 8), 0, 4096, Data::In(&mut buf));
    assert_eq!(c.bytes, 0);
    let s = c.sense.unwrap().to_fixed();
    assert_eq!((c.status, s[0], s[2], s[12], s[13]), (CHECK_CONDITION, 0xF0, 3, 0x11, 0));
    assert_eq!(u32::from_be_bytes([s[3], s[4], s[5], s[6]]), 1234, "INFORMATION = first LBA");
    let c = e.execute(&rw10(0x2A, 1234, 8), 0, 4096, Data::Out(&buf));
    assert_eq!((c.status, c.bytes), (GOOD, 4096));
    assert_eq!(e.execute(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0, 0, Data::None).status, GOOD);
    // A zero-length READ(10) moves nothing, successfully.
    assert_eq!(
        e.execute(&rw10(0x28, 5, 0), 0, 0, Data::None),
        Completion { status: GOOD, sense: None, bytes: 0 }
    );
}

#[test]
fn ram_round_trip_and_verify() {
    let mut storage = vec![0u8; 512 * 64];
    let mut e = ram(&mut storage);
    let pattern: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    let mut w = rw10(0x2A, 10, 2);
    w[1] = 0x08; // FUA
    assert_eq!(e.execute(&w, 0, 1024, Data::Out(&pattern)).bytes, 1024);
    let mut out = vec![0u8; 1024];
    assert_eq!(e.execute(&rw10(0x28, 10, 2), 0, 1024, Data::In(&mut out)).bytes, 1024);
    assert_eq!(out, pattern);
    let mut v = rw10(0x2F, 10, 2);
    v[1] = 0x02; // BYTCHK = 01
    assert_eq!(e.execute(&v, 0, 1024, Data::Out(&pattern)).status, GOOD);
    let mut wrong = pattern.clone();
    wrong[600] ^= 1;
    let c = e.execute(&v, 0, 1024, Data::Out(&wrong));
    let s = c.sense.unwrap().to_fixed();
    assert_eq!((s[2], s[12]), (0x0E, 0x1D), "MISCOMPARE");
    assert_eq!(s[6], 11, "at the second block");
    // UNMAP and WRITE SAME(16) with UNMAP.
    let mut list = [0u8; 24];
    list[1] = 22;
    list[3] = 16;
    list[8..16].copy_from_slice(&10u64.to_be_bytes());
    list[16..20].copy_from_slice(&1u32.to_be_bytes());
    let c = e.execute(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], 0, 24, Data::Out(&list));
    assert_eq!(c.status, GOOD);
    e.execute(&rw10(0x28, 10, 1), 0, 512, Data::In(&mut out[..512]));
    assert_eq!(&out[..512], &[0u8; 512]);
    let mut ws = [0u8; 16];
    ws[0] = 0x93;
    ws[1] = 0x08 | 0x01; // UNMAP, NDOB
    ws[2..10].copy_from_slice(&11u64.to_be_bytes());
    ws[10..14].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(e.execute(&ws, 0, 0, Data::None).status, GOOD);
    e.execute(&rw10(0x28, 11, 1), 0, 512, Data::In(&mut out[..512]));
    assert_eq!(&out[..512], &[0u8; 512]);
}

#[test]
fn report_luns_and_other_luns() {
    let mut e = fake(TIB);
    let mut rl = [0u8; 12];
    rl[0] = 0xA0;
    rl[9] = 64;
    let (c, d) = data_in(&mut e, &rl, 64);
    assert_eq!(c.bytes, 16);
    assert_eq!(d, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut buf = [0u8; 36];
    let c = e.execute(&[0x12, 0, 0, 0, 36, 0], 1, 36, Data::In(&mut buf));
    assert_eq!((c.status, buf[0]), (GOOD, 0x7F), "no LU at LUN 1");
    let c = e.execute(&[0, 0, 0, 0, 0, 0], 1, 0, Data::None);
    assert_eq!(sense_of(&c), (5, 0x25, 0, [0, 0, 0]));
}

#[test]
fn start_stop_unit() {
    let mut e = fake(TIB);
    assert_eq!(e.execute(&[0x1B, 0, 0, 0, 0, 0], 0, 0, Data::None).status, GOOD);
    let c = e.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None);
    assert_eq!(sense_of(&c), (2, 0x04, 0x02, [0, 0, 0]), "stopped: initializing command required");
    assert_eq!(e.execute(&[0x1B, 0, 0, 0, 1, 0], 0, 0, Data::None).status, GOOD);
    assert_eq!(e.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None).status, GOOD);
    assert_eq!(e.execute(&[0x1E, 0, 0, 0, 1, 0], 0, 0, Data::None).status, GOOD, "PREVENT");
}

/// Bad input, table-driven (SCSI.md "Sense data").
#[test]
fn bad_input_is_named_by_sense() {
    let capacity_blocks = TIB / 512;
    let mut read16_overflow = [0u8; 16];
    read16_overflow[0] = 0x88;
    read16_overflow[2..10].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
    read16_overflow[13] = 8;
    let mut read16_end = [0u8; 16];
    read16_end[0] = 0x88;
    read16_end[2..10].copy_from_slice(&(capacity_blocks - 4).to_be_bytes());
    read16_end[13] = 8;
    let mut mode_select_bad = [0u8; 4 + 20];
    mode_select_bad[4] = 0x1C; // unsupported page
    mode_select_bad[5] = 0x12;
    type Expected = (u8, u8, u8, [u8; 3]);
    let cases: Vec<(&str, Vec<u8>, u64, Expected)> = vec![
        (
            "invalid opcode",
            vec![0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            0,
            (5, 0x20, 0, [0xC0, 0, 0]),
        ),
        ("reserved bits in TUR", vec![0, 0, 0, 0x10, 0, 0], 0, (5, 0x24, 0, [0xCC, 0, 3])),
        ("NACA", vec![0, 0, 0, 0, 0, 0x04], 0, (5, 0x24, 0, [0xCA, 0, 5])),
        (
            "LBA at capacity",
            rw10(0x28, (capacity_blocks) as u32, 1).to_vec(),
            512,
            (5, 0x21, 0, [0, 0, 0]),
        ),
        ("LBA + length past the end", read16_end.to_vec(), 4096, (5, 0x21, 0, [0, 0, 0])),
        ("LBA + length overflows 64 bits", read16_overflow.to_vec(), 4096, (5, 0x21, 0, [0, 0, 0])),
        (
            "transfer beyond fRequestedTransferCount",
            rw10(0x28, 0, 8).to_vec(),
            2048,
            (5, 0x24, 0, [0xC0, 0, 7]),
        ),
        (
            "transfer beyond the block limits",
            rw10(0x28, 0, 0xFFFF).to_vec(),
            1 << 30,
            (5, 0x24, 0, [0xC0, 0, 7]),
        ),
        ("RDPROTECT", vec![0x28, 0x40, 0, 0, 0, 0, 0, 0, 1, 0], 512, (5, 0x24, 0, [0xCE, 0, 1])),
        ("unsupported VPD page", vec![0x12, 1, 0xC5, 0, 64, 0], 64, (5, 0x24, 0, [0xC0, 0, 2])),
        (
            "REPORT LUNS allocation below 16",
            vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0],
            8,
            (5, 0x24, 0, [0xC0, 0, 6]),
        ),
        ("unsupported mode page", vec![0x1A, 0, 0x1C, 0, 64, 0], 64, (5, 0x24, 0, [0xCD, 0, 2])),
        ("saved mode values", vec![0x1A, 0, 0xC8, 0, 64, 0], 64, (5, 0x39, 0, [0xCF, 0, 2])),
        ("mode subpage", vec![0x1A, 0, 0x08, 0x01, 64, 0], 64, (5, 0x24, 0, [0xC0, 0, 3])),
        (
            "UNMAP without thin provisioning",
            vec![0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0],
            24,
            (5, 0x20, 0, [0xC0, 0, 0]),
        ),
        ("descriptor sense requested", vec![0x03, 1, 0, 0, 18, 0], 18, (5, 0x24, 0, [0xC8, 0, 1])),
    ];
    for (what, cdb, requested, expected) in cases {
        let mut e = fake(TIB);
        let mut buf = vec![0u8; requested as usize];
        let c = e.execute(&cdb, 0, requested, Data::In(&mut buf));
        assert_eq!(sense_of(&c), expected, "{what}");
        assert_eq!(c.bytes, 0, "{what}: nothing transferred");
    }
    // MODE SELECT with a malformed parameter list.
    let mut e = fake(TIB);
    let c = e.execute(&[0x15, 0x10, 0, 0, 24, 0], 0, 24, Data::Out(&mode_select_bad));
    assert_eq!(sense_of(&c), (5, 0x26, 0, [0x8D, 0, 4]));
}

fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn rw12(op: u8, lba: u32, blocks: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6..10].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn rsoc(rctd: bool, options: u8, opcode: u8, sa: u16, alloc: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xA3;
    c[1] = 0x0C;
    c[2] = (u8::from(rctd) << 7) | options;
    c[3] = opcode;
    c[4..6].copy_from_slice(&sa.to_be_bytes());
    c[6..10].copy_from_slice(&alloc.to_be_bytes());
    c
}

#[test]
fn report_supported_opcodes_all_and_one() {
    let mut e = fake(TIB);
    let (c, d) = data_in(&mut e, &rsoc(false, 0, 0, 0, 4096), 4096);
    assert_eq!(c.status, GOOD);
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len + 4, d.len(), "COMMAND DATA LENGTH covers the descriptors");
    assert_eq!(len % 8, 0);
    let descriptors: Vec<&[u8]> = d[4..].chunks_exact(8).collect();
    let has = |op: u8, sa: u16| {
        descriptors.iter().any(|x| x[0] == op && u16::from_be_bytes([x[2], x[3]]) == sa)
    };
    for op in [0x28, 0x2A, 0x2E, 0x2F, 0x34, 0x41, 0x89, 0x8E, 0x90, 0xAE, 0xAF] {
        assert!(has(op, 0), "{op:#04x} listed");
    }
    assert!(has(0x9E, 0x10) && has(0x9E, 0x12) && has(0xA3, 0x0C));
    assert!(!has(0x42, 0), "UNMAP is not listed without thin provisioning");
    for x in &descriptors {
        assert_eq!(x[5] & 0x02, 0, "no CTDP without RCTD");
        if x[5] & 0x01 == 0 {
            assert_eq!(&x[2..4], &[0, 0], "SERVICE ACTION 0 without SERVACTV");
        }
        assert_ne!(u16::from_be_bytes([x[6], x[7]]), 0);
    }
    // RCTD: every descriptor has a 12-byte timeouts descriptor of length 0Ah.
    let (_, t) = data_in(&mut e, &rsoc(true, 0, 0, 0, 4096), 4096);
    assert_eq!(t.len() - 4, descriptors.len() * 20);
    for x in t[4..].chunks_exact(20) {
        assert_eq!(x[5] & 0x02, 0x02);
        assert_eq!(&x[8..10], &[0, 0x0A]);
        assert_eq!(u32::from_be_bytes([x[16], x[17], x[18], x[19]]), 30);
    }
    // Truncated to the allocation length; the length field still says the whole.
    let (c, d) = data_in(&mut e, &rsoc(false, 0, 0, 0, 6), 4096);
    assert_eq!((c.bytes, u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize), (6, len));
    // One command: WRITE(10) reports DPO and FUA in its CDB usage data.
    let (c, d) = data_in(&mut e, &rsoc(false, 1, 0x2A, 0, 512), 512);
    assert_eq!(c.status, GOOD);
    assert_eq!((d[1], u16::from_be_bytes([d[2], d[3]])), (0x03, 10), "supported, 10 bytes");
    assert_eq!(d.len(), 14);
    assert_eq!((d[4], d[5] & 0x18), (0x2A, 0x18));
    // WRITE SAME without thin provisioning: no UNMAP bit.
    let (_, d) = data_in(&mut e, &rsoc(false, 1, 0x41, 0, 512), 512);
    assert_eq!(d[5] & 0x08, 0);
    // With RCTD: the timeouts descriptor follows.
    let (_, d) = data_in(&mut e, &rsoc(true, 1, 0x28, 0, 512), 512);
    assert_eq!((d[1], d.len(), &d[14..16]), (0x83, 26, &[0u8, 0x0A][..]));
    // An opcode with service actions needs options 2 (and one without, 1).
    assert_eq!(sense_of(&data_in(&mut e, &rsoc(false, 1, 0x9E, 0x10, 512), 512).0).1, 0x24);
    assert_eq!(sense_of(&data_in(&mut e, &rsoc(false, 2, 0x28, 0, 512), 512).0).1, 0x24);
    let (_, d) = data_in(&mut e, &rsoc(false, 2, 0x9E, 0x10, 512), 512);
    assert_eq!((d[1], d[4], d[5], d.len()), (0x03, 0x9E, 0x10, 20));
    // Unsupported: SUPPORT 001b, no usage data.
    let (c, d) = data_in(&mut e, &rsoc(false, 1, 0xC0, 0, 512), 512);
    assert_eq!((c.status, d), (GOOD, vec![0, 1, 0, 0]));
    let (_, d) = data_in(&mut e, &rsoc(false, 3, 0x9E, 0x11, 512), 512);
    assert_eq!(d, vec![0, 1, 0, 0], "options 3: READ CAPACITY's neighbour is not supported");
    // Reporting options 4..7 are reserved.
    let c = data_in(&mut e, &rsoc(false, 4, 0, 0, 512), 512).0;
    assert_eq!(sense_of(&c), (5, 0x24, 0, [0xCA, 0, 2]));
}

#[test]
fn report_supported_opcodes_lists_unmap_with_thin_provisioning() {
    let mut storage = vec![0u8; 512 * 64];
    let mut e = ram(&mut storage);
    let (_, d) = data_in(&mut e, &rsoc(false, 1, 0x42, 0, 512), 512);
    assert_eq!((d[1], d[4]), (0x03, 0x42));
    let (_, d) = data_in(&mut e, &rsoc(false, 1, 0x93, 0, 512), 512);
    assert_eq!(d[5] & 0x09, 0x09, "WRITE SAME(16): UNMAP and NDOB");
    // GET LBA STATUS is answered only for a fully provisioned medium.
    let (_, d) = data_in(&mut e, &rsoc(false, 2, 0x9E, 0x12, 512), 512);
    assert_eq!(d[1] & 0x07, 0x03);
}

#[test]
fn verify_12_and_write_and_verify() {
    let mut storage = vec![0u8; 512 * 64];
    let mut e = ram(&mut storage);
    let pattern: Vec<u8> = (0..2048).map(|i| (i % 253) as u8).collect();
    for (cdb, what) in [
        (rw10(0x2E, 4, 4).to_vec(), "WRITE AND VERIFY(10)"),
        (rw12(0xAE, 4, 4).to_vec(), "WRITE AND VERIFY(12)"),
        (rw16(0x8E, 4, 4).to_vec(), "WRITE AND VERIFY(16)"),
    ] {
        for bytchk in [0u8, 0x02] {
            let mut cdb = cdb.clone();
            cdb[1] = bytchk | 0x10; // DPO accepted
            let c = e.execute(&cdb, 0, 2048, Data::Out(&pattern));
            assert_eq!((c.status, c.bytes), (GOOD, 2048), "{what}");
        }
        let mut out = vec![0u8; 2048];
        e.execute(&rw10(0x28, 4, 4), 0, 2048, Data::In(&mut out));
        assert_eq!(out, pattern, "{what} wrote");
        let mut bad = cdb.clone();
        bad[1] = 0x40; // WRPROTECT
        assert_eq!(sense_of(&e.execute(&bad, 0, 2048, Data::Out(&pattern))).3, [0xCE, 0, 1]);
        bad[1] = 0x04; // BYTCHK 10b
        assert_eq!(sense_of(&e.execute(&bad, 0, 2048, Data::Out(&pattern))).3, [0xCA, 0, 1]);
    }
    // Past the end; more than the data-out holds.
    assert_eq!(sense_of(&e.execute(&rw10(0x2E, 62, 4), 0, 2048, Data::Out(&pattern))).1, 0x21);
    assert_eq!(sense_of(&e.execute(&rw10(0x2E, 0, 8), 0, 2048, Data::Out(&pattern))).1, 0x24);
    assert_eq!(e.execute(&rw10(0x2E, 0, 0), 0, 0, Data::None).status, GOOD, "0 blocks");
    // VERIFY(12), with and without BYTCHK.
    let mut v = rw12(0xAF, 4, 4);
    assert_eq!(e.execute(&v, 0, 0, Data::None).status, GOOD);
    v[1] = 0x02;
    assert_eq!(e.execute(&v, 0, 2048, Data::Out(&pattern)).status, GOOD);
    let mut wrong = pattern.clone();
    wrong[1500] ^= 0x80;
    let s = e.execute(&v, 0, 2048, Data::Out(&wrong)).sense.unwrap().to_fixed();
    assert_eq!((s[2], s[12], s[6]), (0x0E, 0x1D, 6), "MISCOMPARE at LBA 4 + 2");
    assert_eq!(sense_of(&e.execute(&rw12(0xAF, 64, 1), 0, 0, Data::None)).1, 0x21);
    v[1] = 0x40; // VRPROTECT
    assert_eq!(sense_of(&e.execute(&v, 0, 2048, Data::Out(&pattern))).3, [0xCE, 0, 1]);
}

#[test]
fn fake_block_write_and_verify_fails_its_verification() {
    let mut e = fake(TIB);
    let buf = vec![0u8; 4096];
    let c = e.execute(&rw10(0x2E, 100, 8), 0, 4096, Data::Out(&buf));
    let s = c.sense.unwrap().to_fixed();
    assert_eq!((s[2], s[12], s[6]), (3, 0x11, 100), "the read-back is a MEDIUM ERROR");
    // COMPARE AND WRITE reads too; WRITE SAME writes (discarded).
    let mut caw = [0u8; 16];
    caw[0] = 0x89;
    caw[13] = 1;
    let c = e.execute(&caw, 0, 1024, Data::Out(&[0u8; 1024]));
    assert_eq!(sense_of(&c).1, 0x11);
    let c = e.execute(&rw10(0x41, 0, 8), 0, 512, Data::Out(&buf[..512]));
    assert_eq!((c.status, c.bytes), (GOOD, 512));
    let c = e.execute(&rw10(0x34, 0, 8), 0, 0, Data::None);
    assert_eq!(c.status, GOOD, "PRE-FETCH reads nothing");
}

#[test]
fn pre_fetch() {
    let mut e = fake(TIB);
    let cap = TIB / 512;
    let mut p = rw10(0x34, 0, 256);
    p[1] = 0x02; // IMMED
    p[6] = 3; // group
    assert_eq!(e.execute(&p, 0, 0, Data::None), Completion { status: GOOD, sense: None, bytes: 0 });
    assert_eq!(e.execute(&rw16(0x90, cap - 1, 1), 0, 0, Data::None).status, GOOD);
    assert_eq!(e.execute(&rw16(0x90, cap - 1, 0), 0, 0, Data::None).status, GOOD, "to the end");
    assert_eq!(sense_of(&e.execute(&rw16(0x90, cap - 1, 2), 0, 0, Data::None)).1, 0x21);
    assert_eq!(sense_of(&e.execute(&rw16(0x90, u64::MAX, 1), 0, 0, Data::None)).1, 0x21);
    p[1] = 0x01;
    assert_eq!(sense_of(&e.execute(&p, 0, 0, Data::None)).3, [0xC8, 0, 1], "reserved bit");
}

#[test]
fn compare_and_write_compares_then_writes() {
    let mut storage = vec![0u8; 512 * 64];
    let mut e = ram(&mut storage);
    let mut caw = [0u8; 16];
    caw[0] = 0x89;
    caw[2..10].copy_from_slice(&8u64.to_be_bytes());
    caw[13] = 2;
    let mut data = vec![0u8; 2048];
    data[1024..].fill(b'B');
    // The blocks hold zeros: the compare half matches, the write half lands.
    let c = e.execute(&caw, 0, 2048, Data::Out(&data));
    assert_eq!((c.status, c.bytes), (GOOD, 2048));
    let mut out = vec![0u8; 1024];
    e.execute(&rw10(0x28, 8, 2), 0, 1024, Data::In(&mut out));
    assert_eq!(out, vec![b'B'; 1024]);
    // Now a miscompare: nothing written, INFORMATION = the offset of the first differing byte.
    let mut data2 = vec![b'B'; 2048];
    data2[700] = b'X';
    data2[1024..].fill(b'C');
    let c = e.execute(&caw, 0, 2048, Data::Out(&data2));
    let s = c.sense.unwrap().to_fixed();
    assert_eq!(
        (s[0], s[2], s[12], u32::from_be_bytes([s[3], s[4], s[5], s[6]])),
        (0xF0, 0x0E, 0x1D, 700)
    );
    e.execute(&rw10(0x28, 8, 2), 0, 1024, Data::In(&mut out));
    assert_eq!(out, vec![b'B'; 1024], "a miscompare writes nothing");
    // FUA is accepted; the data-out must be exactly twice the blocks.
    caw[1] = 0x18;
    data2[700] = b'B';
    assert_eq!(e.execute(&caw, 0, 2048, Data::Out(&data2)).status, GOOD);
    assert_eq!(sense_of(&e.execute(&caw, 0, 1024, Data::Out(&data2[..1024]))).3, [0xC0, 0, 13]);
    assert_eq!(sense_of(&e.execute(&caw, 0, 4096, Data::Out(&[0u8; 4096]))).3, [0xC0, 0, 13]);
    // Past the end; 0 blocks is no operation.
    caw[2..10].copy_from_slice(&63u64.to_be_bytes());
    assert_eq!(sense_of(&e.execute(&caw, 0, 2048, Data::Out(&data2))).1, 0x21);
    caw[13] = 0;
    assert_eq!(e.execute(&caw, 0, 0, Data::None).status, GOOD);
    // WRPROTECT.
    caw[1] = 0x40;
    assert_eq!(sense_of(&e.execute(&caw, 0, 0, Data::None)).3, [0xCE, 0, 1]);
}

#[test]
fn write_same_on_a_fully_provisioned_medium() {
    let mut e = fake(TIB);
    // VPD B0h: WSNZ, MAXIMUM COMPARE AND WRITE LENGTH, MAXIMUM WRITE SAME LENGTH.
    let (_, b0) = data_in(&mut e, &[0x12, 1, 0xB0, 0, 64, 0], 64);
    assert_eq!((b0[4], b0[5]), (1, 255));
    assert_eq!(u64::from_be_bytes(b0[36..44].try_into().unwrap()), 1 << 22);
    assert_eq!(&b0[20..28], &[0; 8], "no UNMAP limits without thin provisioning");
    let mut ws = rw10(0x41, 0, 0);
    assert_eq!(sense_of(&e.execute(&ws, 0, 512, Data::Out(&[0; 512]))).3, [0xC0, 0, 7], "WSNZ");
    ws[1] = 0x08;
    ws[8] = 1;
    assert_eq!(sense_of(&e.execute(&ws, 0, 512, Data::Out(&[0; 512]))).3, [0xCB, 0, 1], "UNMAP");
    // On storage that keeps data: the pattern lands in every block.
    let mut storage = vec![0u8; 4096 * 64];
    let mut r = Emulator::new(
        Ram::new(&mut storage, 4096).unwrap(),
        Identity::dkraid(b"RAM", 1),
        Limits::default(),
    );
    r.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None);
    let block: Vec<u8> = (0..4096).map(|i| (i * 7) as u8).collect();
    let c = r.execute(&rw16(0x93, 3, 9), 0, 4096, Data::Out(&block));
    assert_eq!((c.status, c.bytes), (GOOD, 4096));
    let mut out = vec![0u8; 4096 * 11];
    r.execute(&rw10(0x28, 2, 11), 0, out.len() as u64, Data::In(&mut out));
    assert_eq!(&out[..4096], &[0u8; 4096][..], "the block before is untouched");
    for b in out[4096..4096 * 10].chunks_exact(4096) {
        assert_eq!(b, &block[..]);
    }
    assert_eq!(&out[4096 * 10..], &[0u8; 4096][..], "the block after is untouched");
    assert_eq!(sense_of(&r.execute(&rw16(0x93, 60, 5), 0, 4096, Data::Out(&block))).1, 0x21);
}

#[test]
fn get_lba_status_on_a_fully_provisioned_medium() {
    let mut e = fake(TIB);
    let mut g = [0u8; 16];
    g[0] = 0x9E;
    g[1] = 0x12;
    g[2..10].copy_from_slice(&100u64.to_be_bytes());
    g[13] = 24;
    let (c, d) = data_in(&mut e, &g, 24);
    assert_eq!(c.status, GOOD);
    assert_eq!(&d[0..4], &20u32.to_be_bytes());
    assert_eq!(u64::from_be_bytes(d[8..16].try_into().unwrap()), 100);
    assert_eq!(u32::from_be_bytes(d[16..20].try_into().unwrap()), (TIB / 512 - 100) as u32);
    assert_eq!(d[20], 0, "mapped");
    g[2..10].copy_from_slice(&(TIB / 512).to_be_bytes());
    assert_eq!(sense_of(&data_in(&mut e, &g, 24).0).1, 0x21);
    // More than 2^32 - 1 blocks left: capped.
    let mut big = fake(1 << 50);
    g[2..10].copy_from_slice(&0u64.to_be_bytes());
    let (_, d) = data_in(&mut big, &g, 24);
    assert_eq!(u32::from_be_bytes(d[16..20].try_into().unwrap()), u32::MAX);
    // With thin provisioning the device cannot say which blocks are deallocated: refused.
    let mut storage = vec![0u8; 512 * 64];
    let mut r = ram(&mut storage);
    g[2..10].copy_from_slice(&0u64.to_be_bytes());
    assert_eq!(sense_of(&data_in(&mut r, &g, 24).0).1, 0x24);
}

#[test]
fn fua_read_and_write_reach_the_medium() {
    /// Counts flushes.
    struct Counting(u32);
    impl BlockBackend for Counting {
        fn block_size(&self) -> u32 {
            512
        }
        fn capacity_blocks(&self) -> u64 {
            64
        }
        fn read(&mut self, _lba: u64, data: &mut [u8]) -> Result<(), BackendError> {
            data.fill(0);
            Ok(())
        }
        fn write(&mut self, _lba: u64, _data: &[u8]) -> Result<(), BackendError> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), BackendError> {
            self.0 += 1;
            Ok(())
        }
    }
    let mut e = Emulator::new(Counting(0), Identity::dkraid(b"c", 0), Limits::default());
    e.execute(&[0, 0, 0, 0, 0, 0], 0, 0, Data::None);
    let mut buf = [0u8; 512];
    let mut cdb = rw10(0x28, 0, 1);
    e.execute(&cdb, 0, 512, Data::In(&mut buf));
    assert_eq!(e.backend().0, 0, "a plain read may come from the cache");
    cdb[1] = 0x08;
    e.execute(&cdb, 0, 512, Data::In(&mut buf));
    assert_eq!(e.backend().0, 1, "FUA read: the cache's writes reach the medium first");
    let mut w = rw16(0x8A, 0, 1);
    w[1] = 0x18;
    e.execute(&w, 0, 512, Data::Out(&buf));
    assert_eq!(e.backend().0, 2, "FUA write");
    e.execute(&rw10(0x2E, 0, 1), 0, 512, Data::Out(&buf));
    assert_eq!(e.backend().0, 3, "WRITE AND VERIFY verifies the medium");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any CDB, any lengths: no panic, data never longer than what the host allows, sense
    /// always fixed format.
    #[test]
    fn any_cdb_is_answered(
        cdb in proptest::collection::vec(any::<u8>(), 0..=16),
        opcode in prop_oneof![
            Just(0x00u8), Just(0x03), Just(0x08), Just(0x0A), Just(0x12), Just(0x15), Just(0x1A),
            Just(0x1B), Just(0x1E), Just(0x25), Just(0x28), Just(0x2A), Just(0x2F), Just(0x35),
            Just(0x41), Just(0x42), Just(0x55), Just(0x5A), Just(0x88), Just(0x8A), Just(0x8F),
            Just(0x91), Just(0x93), Just(0x9E), Just(0xA0), Just(0xA8), Just(0xAA), Just(0x2E),
            Just(0x34), Just(0x89), Just(0x8E), Just(0x90), Just(0xA3), Just(0xAE), Just(0xAF),
            any::<u8>()
        ],
        requested in 0u64..70_000,
        buffer in 0usize..70_000,
        lun in 0u64..3,
        out in any::<bool>(),
        use_ram in any::<bool>(),
    ) {
        let mut cdb = cdb;
        if let Some(first) = cdb.first_mut() {
            *first = opcode;
        }
        let mut storage = vec![0u8; 512 * 256];
        let mut buf = vec![0u8; buffer];
        let c = if use_ram {
            let mut e = Emulator::new(Ram::new(&mut storage, 512).unwrap(), Identity::dkraid(b"p", 2), Limits::default());
            e.execute(&cdb, lun, requested, if out { Data::Out(&buf) } else { Data::In(&mut buf) })
        } else {
            let mut e = Emulator::new(FakeBlock::new(4096, 1 << 30), Identity::dkraid(b"p", 2), Limits::default());
            e.execute(&cdb, lun, requested, if out { Data::Out(&buf) } else { Data::In(&mut buf) })
        };
        prop_assert!(c.bytes <= requested, "{} bytes moved, {} requested", c.bytes, requested);
        prop_assert!(c.bytes <= buffer as u64);
        match c.status {
            GOOD => prop_assert!(c.sense.is_none()),
            CHECK_CONDITION => {
                let s = c.sense.unwrap().to_fixed();
                prop_assert!(s[0] & 0x7F == 0x70);
                prop_assert_eq!(s[7], 10);
                prop_assert_eq!(c.bytes, 0);
            }
            other => prop_assert!(false, "status {other:#x}"),
        }
    }
}
