//! The SFU's hot path without sockets: one packet in from the publisher, decrypted,
//! chosen, rewritten, encrypted and sent to 1 or 50 subscribers (`cauhop_sfu::harness`:
//! real str0m sessions on a simulated clock, TWCC feedback and allocation running).
//! Also counts heap allocations per forwarded packet with a counting allocator.
//!
//! `cargo bench -p cauhop-bench --bench forward`; under `cargo test` each case runs once
//! and the allocation count still prints (and media must have reached the subscribers).

// A counting allocator has to implement GlobalAlloc; it only forwards to System.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cauhop_sfu::harness::Harness;
use criterion::Criterion;

/// Counts allocations while `COUNTING` is set (around `Harness::forward` only).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const AUDIO_EVERY: Duration = Duration::from_millis(20);

#[derive(Clone, Copy)]
enum Media {
    Audio,
    Video,
}

/// One packet through the SFU; returns the time the SFU took and datagrams it sent.
fn one(h: &mut Harness, media: Media) -> (Duration, usize) {
    let dgs = match media {
        Media::Audio => vec![h.publish_audio()],
        Media::Video => h.publish_video_frame(),
    };
    let mut took = Duration::ZERO;
    let mut sent = 0;
    for dg in &dgs {
        let t = Instant::now();
        sent += black_box(h.forward(black_box(dg)));
        took += t.elapsed();
    }
    // The rest of the world (delivery, feedback, timers) is not the packet's cost.
    h.step(AUDIO_EVERY);
    (took, sent)
}

fn harness(subscribers: usize) -> Harness {
    let h = Harness::new(subscribers, Duration::from_secs(4)).expect("harness");
    let got = h.received();
    assert!(
        got.iter().all(|&n| n > 0),
        "every subscriber must receive media after the warm-up: {got:?}"
    );
    h
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for subs in [1usize, 50] {
        for (name, media) in [("audio", Media::Audio), ("video", Media::Video)] {
            let mut h = harness(subs);
            g.bench_function(format!("{name} to {subs}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += one(&mut h, media).0;
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

/// Allocations per forwarded packet, in steady state.
fn allocations(packets: usize) {
    println!(
        "\nheap allocations in the SFU per forwarded packet (steady state, {packets} packets in):"
    );
    for subs in [1usize, 50] {
        for (name, media) in [("audio", Media::Audio), ("video", Media::Video)] {
            let mut h = harness(subs);
            let (mut sent, mut allocs, mut bytes) = (0u64, 0u64, 0u64);
            let mut took = Duration::ZERO;
            for _ in 0..packets {
                let dgs = match media {
                    Media::Audio => vec![h.publish_audio()],
                    Media::Video => h.publish_video_frame(),
                };
                for dg in &dgs {
                    ALLOCS.store(0, Ordering::Relaxed);
                    BYTES.store(0, Ordering::Relaxed);
                    let t = Instant::now();
                    COUNTING.store(true, Ordering::Relaxed);
                    sent += h.forward(dg) as u64;
                    COUNTING.store(false, Ordering::Relaxed);
                    took += t.elapsed();
                    allocs += ALLOCS.load(Ordering::Relaxed);
                    bytes += BYTES.load(Ordering::Relaxed);
                }
                h.step(AUDIO_EVERY);
            }
            assert!(sent > 0, "{name} to {subs}: nothing forwarded");
            println!(
                "  {name} to {subs:>2}: {:>6} datagrams out, {:>5.2} allocations and {:>6.0} bytes per datagram out, {:>6.2} µs per datagram out",
                sent,
                allocs as f64 / sent as f64,
                bytes as f64 / sent as f64,
                took.as_secs_f64() * 1e6 / sent as f64,
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    let full = std::env::args().any(|a| a == "--bench");
    allocations(if full { 1000 } else { 50 });
}
