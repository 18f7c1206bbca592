//! The core's SCSI emulation path per command — decode, checks, backend, response, sense — for
//! READ(10)/WRITE(10) of one 512-byte block on the fake block device and on a RAM disk.
//! Budget (issue 5): under 100 ns per command, no allocation. Results: docs/PERFORMANCE.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dkraid_core::scsi::{Data, Emulator, FakeBlock, Identity, Limits, Ram};

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scsi_emulation");
    g.throughput(Throughput::Elements(1));
    let read = rw10(0x28, 4096, 1);
    let write = rw10(0x2A, 4096, 1);
    let mut buf = vec![0u8; 512];

    let mut fake = Emulator::new(
        FakeBlock::new(512, 1 << 31),
        Identity::dkraid(b"bench", 0),
        Limits::default(),
    );
    fake.execute(&[0; 6], 0, 0, Data::None); // the power-on unit attention
    g.bench_function("fake_block/read10_medium_error", |b| {
        b.iter(|| {
            let c = fake.execute(black_box(&read), 0, 512, Data::In(&mut buf));
            // Laying out the sense data is part of the path.
            black_box(c.sense.map(|s| s.to_fixed()))
        })
    });
    g.bench_function("fake_block/write10", |b| {
        b.iter(|| black_box(fake.execute(black_box(&write), 0, 512, Data::Out(&buf))))
    });

    let mut storage = vec![0u8; 8 << 20];
    let mut ram = Emulator::new(
        Ram::new(&mut storage, 512).unwrap(),
        Identity::dkraid(b"bench", 1),
        Limits::default(),
    );
    ram.execute(&[0; 6], 0, 0, Data::None);
    g.bench_function("ram/read10", |b| {
        b.iter(|| black_box(ram.execute(black_box(&read), 0, 512, Data::In(&mut buf))))
    });
    g.bench_function("ram/write10", |b| {
        b.iter(|| black_box(ram.execute(black_box(&write), 0, 512, Data::Out(&buf))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
