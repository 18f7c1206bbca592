//! Hand-off throughput of the deterministic scheduler (`dkraid_testbed::sched`),
//! with an OS-thread baton (Mutex + Condvar) for contrast.
//!
//! `cargo bench -p dkraid-testbed --bench handoff`
//!
//! * `sched_yield/N`: N simulated threads loop calling `yield_now`; one element
//!   is one scheduling point. The PRNG picks the same thread again 1/N of the
//!   time (no stack switch then), so the bench also prints how many real
//!   switches the points caused.
//! * `sched_ping_pong`: two threads pass a ball with `wake` + `block`; every
//!   element (one `block`) is a real switch to the other thread.
//! * `corosensei_resume_suspend/K`: the floor, K bare coroutines resumed and
//!   suspended round-robin (two stack switches per element, what one
//!   scheduler hand-off costs at least).
//! * `os_thread_baton`: two OS threads pass a baton through a Mutex/Condvar;
//!   one element is one hand-off.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use corosensei::Coroutine;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dkraid_testbed::sched::{self, Outcome, Scheduler, ThreadId, WaitFor};

/// Scheduling points per criterion iteration.
const POINTS: u64 = 10_000;

/// A scheduler with `threads` threads that together pass `total` scheduling
/// points; threads are spawned (stacks allocated) before it is returned.
fn yielders(threads: u64, total: u64) -> Scheduler {
    let mut s = Scheduler::new(0x5eed);
    for i in 0..threads {
        let n = total / threads + u64::from(i < total % threads);
        s.spawn(&format!("t{i}"), move || {
            for _ in 0..n {
                sched::yield_now("bench");
            }
        });
    }
    s
}

fn ping_pong(rounds: u64) -> Scheduler {
    let mut s = Scheduler::new(0x5eed);
    for (me, other) in [(0u32, 1u32), (1, 0)] {
        s.spawn(if me == 0 { "ping" } else { "pong" }, move || {
            let other = ThreadId(other);
            for _ in 0..rounds {
                sched::wake(other);
                sched::block("ball", WaitFor::Thread(other));
            }
            sched::wake(other);
        });
    }
    s
}

/// Runs `s` and returns the wall-clock time of `run()` alone.
fn timed_run(mut s: Scheduler) -> Duration {
    let t0 = Instant::now();
    let outcome = s.run();
    let elapsed = t0.elapsed();
    assert_eq!(outcome, Outcome::Finished);
    elapsed
}

fn print_switch_ratio() {
    for threads in [1u64, 2, 8, 64] {
        let mut s = yielders(threads, 1_000_000);
        assert_eq!(s.run(), Outcome::Finished);
        println!(
            "sched_yield/{threads}: {} scheduling points caused {} switches ({:.3} per point)",
            s.scheduling_points(),
            s.switches(),
            s.switches() as f64 / s.scheduling_points() as f64
        );
    }
    let mut s = ping_pong(500_000);
    assert_eq!(s.run(), Outcome::Finished);
    println!("sched_ping_pong: {} blocks caused {} switches", s.scheduling_points(), s.switches());
}

fn bench_sched(c: &mut Criterion) {
    print_switch_ratio();

    let mut g = c.benchmark_group("sched_yield");
    g.throughput(Throughput::Elements(POINTS));
    for threads in [1u64, 2, 8, 64] {
        g.bench_with_input(BenchmarkId::from_parameter(threads), &threads, |b, &threads| {
            b.iter_custom(|iters| {
                // One scheduler per sample: spawning (stack allocation) is
                // not timed, only the scheduling.
                timed_run(yielders(threads, iters * POINTS))
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sched_ping_pong");
    g.throughput(Throughput::Elements(POINTS));
    g.bench_function("2", |b| b.iter_custom(|iters| timed_run(ping_pong(iters * POINTS / 2))));
    g.finish();

    let mut g = c.benchmark_group("corosensei_resume_suspend");
    g.throughput(Throughput::Elements(POINTS));
    for k in [1usize, 2, 8] {
        g.bench_with_input(BenchmarkId::from_parameter(k), &k, |b, &k| {
            b.iter_custom(|iters| raw_coroutines(k, iters * POINTS))
        });
    }
    g.finish();
}

/// The floor: `k` bare corosensei coroutines that suspend in a loop, resumed
/// round-robin `n` times in all. One element is a resume + suspend pair, the
/// two stack switches every scheduler hand-off needs (the scheduler's
/// coroutines are asymmetric: thread -> run loop -> next thread). With one
/// coroutine the CPU predicts every switch; with several it cannot.
fn raw_coroutines(k: usize, n: u64) -> Duration {
    let mut cos: Vec<Coroutine<(), (), ()>> = (0..k)
        .map(|_| {
            Coroutine::new(|y, ()| loop {
                y.suspend(());
            })
        })
        .collect();
    let t0 = Instant::now();
    let mut i = 0;
    for _ in 0..n {
        std::hint::black_box(cos[i].resume(()));
        i += 1;
        if i == k {
            i = 0;
        }
    }
    t0.elapsed()
}

/// Two OS threads alternate strictly: each waits for its turn, flips it.
fn os_baton(handoffs: u64) -> Duration {
    let pair = Arc::new((Mutex::new(0u8), Condvar::new()));
    let rounds = handoffs / 2;
    let other = {
        let pair = Arc::clone(&pair);
        std::thread::spawn(move || {
            let (m, cv) = &*pair;
            for _ in 0..rounds {
                let mut turn = cv.wait_while(m.lock().unwrap(), |t| *t != 1).unwrap();
                *turn = 0;
                cv.notify_one();
            }
        })
    };
    let (m, cv) = &*pair;
    let t0 = Instant::now();
    for _ in 0..rounds {
        let mut turn = cv.wait_while(m.lock().unwrap(), |t| *t != 0).unwrap();
        *turn = 1;
        cv.notify_one();
    }
    drop(cv.wait_while(m.lock().unwrap(), |t| *t != 0).unwrap());
    let elapsed = t0.elapsed();
    other.join().unwrap();
    elapsed
}

fn bench_os_threads(c: &mut Criterion) {
    const HANDOFFS: u64 = 1_000;
    let mut g = c.benchmark_group("os_thread_baton");
    g.throughput(Throughput::Elements(HANDOFFS));
    g.bench_function("2", |b| b.iter_custom(|iters| os_baton(iters * HANDOFFS)));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_sched, bench_os_threads
}
criterion_main!(benches);
