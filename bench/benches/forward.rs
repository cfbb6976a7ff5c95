//! The SFU's cost per forwarded datagram, without sockets, in simulated meetings of 10 to
//! 1000 sites (`cauhop_sfu::sim`: the room core and real str0m clients on a simulated
//! clock; DTLS-SRTP, TWCC, slots, allocation and pacing all running). Only the time
//! inside the room core is counted, and the heap allocations it makes per datagram out
//! (a counting allocator, switched on around the core's calls).
//!
//! Each meeting: the chair and two more speakers with cameras, everyone else a silent
//! microphone (DTX) and a small camera; every site receives its slots as the page does.
//!
//! `cargo bench -p cauhop-bench --bench forward` (10, 30, 100, 300, 1000 sites, each
//! with the sessions polled on 1 and on 2 worker threads: `Rooms::set_workers`; the time
//! counted is the core's elapsed time, so with 2 workers it shows what a second core
//! buys); under `cargo test` only 10 and 30 sites run, briefly, and media must have
//! flowed.

// A counting allocator has to implement GlobalAlloc; it only forwards to System.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cauhop_sfu::sim::{CAMERA, ClientSpec, CorePhase, LayerSpec, Sim};

/// Counts allocations per phase of the room core while one is running.
struct Counting;

/// 0: outside the core; 1 + `CorePhase` index inside it.
static PHASE: AtomicU8 = AtomicU8::new(0);
static ALLOCS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn count_one() {
    let p = PHASE.load(Ordering::Relaxed);
    if p > 0 {
        ALLOCS[usize::from(p - 1)].fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count(phase: Option<CorePhase>) {
    let p = match phase {
        None => 0,
        Some(CorePhase::Receive) => 1,
        Some(CorePhase::Timeout) => 2,
        Some(CorePhase::Output) => 3,
    };
    PHASE.store(p, Ordering::Relaxed);
}

struct Figures {
    sites: usize,
    workers: usize,
    datagrams: u64,
    datagrams_in: u64,
    core: Duration,
    /// Receive, timeouts, output.
    phases: [Duration; 3],
    /// Receive, timeouts, output.
    allocs: [u64; 3],
    real: Duration,
}

fn run(sites: usize, workers: usize, seconds: u64) -> Figures {
    let real = Instant::now();
    let mut s = Sim::new(sites as u64);
    s.core
        .set_workers(workers)
        .expect("worker threads for the room core");
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
    let (d0, i0, c0, p0) = (
        s.sfu_datagrams,
        s.sfu_datagrams_in,
        s.core_busy,
        s.core_phases,
    );
    for a in &ALLOCS {
        a.store(0, Ordering::Relaxed);
    }
    s.core_hook = Some(count);
    s.run(Duration::from_secs(seconds));
    s.core_hook = None;
    Figures {
        sites,
        workers,
        datagrams: s.sfu_datagrams - d0,
        datagrams_in: s.sfu_datagrams_in - i0,
        core: s.core_busy - c0,
        phases: [0, 1, 2].map(|i| s.core_phases[i] - p0[i]),
        allocs: ALLOCS.each_ref().map(|a| a.load(Ordering::Relaxed)),
        real: real.elapsed(),
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (mut sizes, seconds): (Vec<usize>, u64) = if full {
        (vec![10, 30, 100, 300, 1000], 5)
    } else {
        (vec![10, 30], 1)
    };
    // CAUHOP_BENCH_SITES=300 (or 10,300): other room sizes, e.g. for a profile.
    if let Some(list) = env_list("CAUHOP_BENCH_SITES") {
        sizes = list;
    }
    // CAUHOP_BENCH_WORKERS=1,2: threads polling sessions (default: 1 and 2 with
    // --bench, 1 and 2 briefly under `cargo test`, so the parallel path is exercised).
    let workers = env_list("CAUHOP_BENCH_WORKERS").unwrap_or_else(|| vec![1, 2]);
    println!(
        "| sites | workers | datagrams in/s | out/s | core µs per datagram out | vs 10 sites, 1 worker | allocations per datagram in (receive) | per datagram out (output) | timers per datagram out | core busy s/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut base = None;
    for &n in &sizes {
        for &w in &workers {
            let f = run(n, w, seconds);
            assert!(f.datagrams > 0, "{n} sites: nothing was forwarded");
            report(&f, seconds, &mut base);
        }
    }
}

fn env_list(name: &str) -> Option<Vec<usize>> {
    let list = std::env::var(name).ok()?;
    Some(
        list.split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
    )
}

fn report(f: &Figures, seconds: u64, base: &mut Option<f64>) {
    let per = f.core.as_secs_f64() * 1e6 / f.datagrams as f64;
    let b = *base.get_or_insert(per);
    let out = f.datagrams as f64;
    println!(
        "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2}× | {:.2} | {:.2} | {:.2} | {:.3} |",
        f.sites,
        f.workers,
        f.datagrams_in as f64 / seconds as f64,
        out / seconds as f64,
        per,
        per / b,
        f.allocs[0] as f64 / f.datagrams_in.max(1) as f64,
        f.allocs[2] as f64 / out,
        f.allocs[1] as f64 / out,
        f.core.as_secs_f64() / seconds as f64,
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6 / out;
    eprintln!(
        "  ({} sites, {} workers: {:.1} s of real time; µs per datagram out in receive {:.2}, timers {:.2}, output {:.2})",
        f.sites,
        f.workers,
        f.real.as_secs_f64(),
        us(f.phases[0]),
        us(f.phases[1]),
        us(f.phases[2]),
    );
}
