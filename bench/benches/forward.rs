//! The SFU's cost per forwarded datagram, without sockets, in simulated meetings of 10 to
//! 1000 sites (`cauhop_sfu::sim`: the room core and real str0m clients on a simulated
//! clock; DTLS-SRTP, TWCC, slots, allocation and pacing all running). Only the time
//! inside the room core is counted, and the heap allocations it makes per datagram out
//! (a counting allocator, switched on around the core's calls).
//!
//! Each meeting: the chair and two more speakers with cameras, everyone else a silent
//! microphone (DTX) and a small camera; every site receives its slots as the page does.
//!
//! `cargo bench -p cauhop-bench --bench forward` (10, 30, 100, 300, 1000 sites; also
//! 1 vs 2 shards once the core is sharded); under `cargo test` only 10 and 30 sites run,
//! briefly, and media must have flowed.

// A counting allocator has to implement GlobalAlloc; it only forwards to System.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cauhop_sfu::sim::{CAMERA, ClientSpec, LayerSpec, Sim};

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

fn count(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

struct Figures {
    sites: usize,
    datagrams: u64,
    core: Duration,
    allocs: u64,
    real: Duration,
}

fn run(sites: usize, seconds: u64) -> Figures {
    let real = Instant::now();
    let mut s = Sim::new(sites as u64);
    let room = "bench";
    let thumb = LayerSpec {
        fps: 15,
        ..CAMERA[0]
    };
    for i in 0..sites {
        let speaking = i < 3;
        let spec = ClientSpec {
            chair: i == 0,
            level: if speaking { 30 } else { 127 },
            layers: if speaking {
                CAMERA.to_vec()
            } else {
                vec![thumb]
            },
            ..ClientSpec::site(room)
        };
        if s.join(spec).is_err() {
            break;
        }
        if i % 10 == 9 {
            s.run(Duration::from_millis(100));
        }
    }
    // Settle: everyone connected, estimates and slots found.
    s.run(Duration::from_secs(5));
    let (d0, c0) = (s.sfu_datagrams, s.core_busy);
    ALLOCS.store(0, Ordering::Relaxed);
    s.core_hook = Some(count);
    s.run(Duration::from_secs(seconds));
    s.core_hook = None;
    Figures {
        sites,
        datagrams: s.sfu_datagrams - d0,
        core: s.core_busy - c0,
        allocs: ALLOCS.load(Ordering::Relaxed),
        real: real.elapsed(),
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (sizes, seconds): (&[usize], u64) = if full {
        (&[10, 30, 100, 300, 1000], 5)
    } else {
        (&[10, 30], 1)
    };
    println!("sites  datagrams out/s  core µs/datagram  allocs/datagram  core CPU s/s  (real s)");
    let mut base = None;
    for &n in sizes {
        let f = run(n, seconds);
        assert!(f.datagrams > 0, "{n} sites: nothing was forwarded");
        let per = f.core.as_secs_f64() * 1e6 / f.datagrams as f64;
        let b = *base.get_or_insert(per);
        println!(
            "{:>5}  {:>16.0}  {:>10.2} ({:.2}×)  {:>15.2}  {:>12.3}  ({:.1})",
            f.sites,
            f.datagrams as f64 / seconds as f64,
            per,
            per / b,
            f.allocs as f64 / f.datagrams as f64,
            f.core.as_secs_f64() / seconds as f64,
            f.real.as_secs_f64(),
        );
    }
}
