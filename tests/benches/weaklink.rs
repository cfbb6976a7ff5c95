//! Weak-link benchmark (issue 4): three publishers (each Opus-shaped audio and three
//! simulcast layers; the first one speaks, so it is the active speaker and gets the big
//! tile), one subscriber behind the link emulator with each profile in turn, and one
//! subscriber on fibre in the same room at the same time, whose figures must not move.
//!
//! Printed per profile: audio frames on time (within 200 ms of the path's lowest delay),
//! concealment (ms of audio made up per minute), video freezes per minute (gaps over
//! max(3 × frame interval, interval + 150 ms), not counting announced audio-only periods),
//! time spent audio only, layer changes per minute, and for the step profile the time
//! from the capacity drop until the SFU sends under the new capacity and from the
//! recovery until it uses ≥ 85 % of what it used before the drop.
//!
//! `cargo bench -p cauhop-tests --bench weaklink` runs every profile for 30 s;
//! `-- PROFILE...` picks some; without `--bench` (under `cargo test`) a 10 s smoke run of
//! 3g-commune. Figures are printed, never asserted: they depend on the machine.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cauhop_tests::bridge::Bridge;
use cauhop_tests::link::Link;
use cauhop_tests::profiles::profile;
use cauhop_tests::reception::{
    AudioFigures, Step, VideoFigures, audio_figures, paused_periods, rate, step_figures,
    video_figures,
};
use cauhop_tests::sim_peer::{SimConfig, SimPeer};

/// Figures of one subscriber over the measured window.
#[derive(Default)]
struct Row {
    audio: AudioFigures,
    video: VideoFigures,
    minutes: f64,
    audio_only: Duration,
    kbps: f64,
    /// Which join attempt got media through (the DTLS handshake can lose to 3g-bad).
    attempts: u64,
    /// RED packets received (the SFU adds redundancy on lossy links).
    red: u64,
}

/// Warm-up excluded from the figures: joining, ICE, the estimate's first ramp.
const WARMUP: Duration = Duration::from_secs(5);
const AUDIO_BUDGET: Duration = Duration::from_millis(200);

fn figures(sub: &SimPeer, pubs: &[SimPeer], from: Instant, to: Instant) -> Row {
    let notices = sub
        .shared
        .bandwidth
        .lock()
        .map(|n| n.clone())
        .unwrap_or_default();
    let paused = paused_periods(&notices, to);
    let mut row = Row {
        minutes: to.duration_since(from).as_secs_f64() / 60.0,
        ..Default::default()
    };
    for (s, e) in &paused {
        let (s, e) = ((*s).max(from), (*e).min(to));
        if e > s {
            row.audio_only += e - s;
        }
    }
    for p in pubs {
        let r = sub.from(p);
        row.audio
            .add(audio_figures(&r.audio, from, to, AUDIO_BUDGET));
        row.video.add(video_figures(&r.video, from, to, &paused));
    }
    row
}

async fn run(name: &str, secs: u64) -> anyhow::Result<(Row, Row, Option<Step>, u64)> {
    let bridge = Bridge::start().await?;
    let url = bridge.ws_url();
    let room = format!("weak-{name}");
    let mut pubs = Vec::new();
    for (i, who) in ["Tỉnh", "Huyện A", "Huyện B"].iter().enumerate() {
        let mut cfg = SimConfig::new(&room, who);
        // The province speaks; the districts listen (silent, but sending audio).
        cfg.audio_level = if i == 0 { 30 } else { 127 };
        pubs.push(SimPeer::join(&url, cfg).await?);
    }
    let weak = Arc::new(Link::start_profile(bridge.media_addr(), &profile(name)?, 7).await?);
    let start = Instant::now();
    let fibre = Arc::new(Link::start_profile(bridge.media_addr(), &profile("fibre")?, 8).await?);
    let mut cfg = SimConfig::watcher(&room, "Xã");
    cfg.link = Some(weak.clone());
    let commune = SimPeer::join(&url, cfg).await?;
    let mut cfg = SimConfig::watcher(&room, "Sở");
    cfg.link = Some(fibre.clone());
    let hall = SimPeer::join(&url, cfg).await?;

    let mut samples = Vec::new();
    let mut sfu_view = Vec::new();
    let end = start + Duration::from_secs(secs);
    let mut next_view = Instant::now();
    while Instant::now() < end {
        samples.push((
            Instant::now(),
            weak.stats.down_bytes_offered.load(Ordering::Relaxed),
        ));
        if Instant::now() >= next_view {
            next_view += Duration::from_secs(2);
            // What the SFU thought of the weak subscriber, every 2 s.
            if let Ok(st) = bridge.sfu.stats().await
                && let Some(p) = st.peers.iter().find(|p| p.participant == commune.id)
            {
                sfu_view.push(format!(
                    "{:.0}s est {}/{} kbit/s{}{} alloc {}{}",
                    start.elapsed().as_secs_f64(),
                    p.bwe_kbps.map_or("-".into(), |v| v.to_string()),
                    p.bwe_raw_kbps.map_or("-".into(), |v| v.to_string()),
                    if p.congested { " congested" } else { "" },
                    if p.red { " red" } else { "" },
                    p.allocated_kbps,
                    if p.audio_only { " audio-only" } else { "" },
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if std::env::var_os("CAUHOP_BENCH_VERBOSE").is_some() {
        println!("{name}: {}", sfu_view.join(" | "));
        // One-way audio delay from the speaker, after warm-up: where late frames come from.
        let r = commune.from(&pubs[0]);
        // (second of arrival, ms) per frame.
        let delays: Vec<(u64, u64)> = r
            .audio
            .iter()
            .filter(|a| a.at >= start + WARMUP)
            .map(|a| {
                let ms =
                    a.at.saturating_duration_since(cauhop_tests::sim_peer::epoch())
                        .as_millis() as u64
                        - a.sent_us / 1000;
                (a.at.duration_since(start).as_secs(), ms)
            })
            .collect();
        // Per second of arrival: the worst delay, to tell a start-up transient from a
        // steady state.
        let mut per_s: std::collections::BTreeMap<u64, (u64, usize)> = Default::default();
        for (s, ms) in &delays {
            let e = per_s.entry(*s).or_default();
            e.0 = e.0.max(*ms);
            e.1 += 1;
        }
        println!(
            "{name}: worst speaker audio delay per second (s: ms/frames): {}",
            per_s
                .iter()
                .map(|(s, (ms, n))| format!("{s}:{ms}/{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut d: Vec<u64> = delays.iter().map(|(_, ms)| *ms).collect();
        d.sort_unstable();
        let q = |f: f64| {
            d.get(((d.len() as f64 - 1.0) * f) as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "{name}: speaker audio delay ms p0 {} p50 {} p90 {} p99 {} max {} ({} frames)",
            q(0.0),
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0),
            d.len()
        );
    }
    let from = start + WARMUP;
    let to = Instant::now() - Duration::from_secs(1);
    let mut weak_row = figures(&commune, &pubs, from, to);
    if std::env::var_os("CAUHOP_BENCH_VERBOSE").is_some() {
        let mut f = weak_row.video.freeze_list.clone();
        f.sort();
        println!(
            "{name}: freezes (at s, for ms): {}",
            f.iter()
                .map(|(at, d)| format!(
                    "{:.1}/{}",
                    at.duration_since(start).as_secs_f64(),
                    d.as_millis()
                ))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    weak_row.kbps = rate(&samples, from, to).unwrap_or(0.0);
    let hall_row = figures(&hall, &pubs, from, to);
    let step = step_figures(&samples, start, name);
    let own = commune.shared.own_received.load(Ordering::Relaxed)
        + hall.shared.own_received.load(Ordering::Relaxed);
    weak_row.attempts = commune.shared.attempts.load(Ordering::Relaxed);
    weak_row.red = commune.shared.red_received.load(Ordering::Relaxed);
    Ok((weak_row, hall_row, step, own))
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let mut names: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let secs = if full { 30 } else { 10 };
    if names.is_empty() {
        names = if full {
            ["fibre", "adsl", "4g", "3g-commune", "3g-bad", "step"]
                .map(String::from)
                .to_vec()
        } else {
            vec!["3g-commune".into()]
        };
    }
    cauhop_tests::init_log();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "| profile | subscriber | audio on time | concealed ms/min | freezes/min | audio only | layer changes/min | kbit/s sent | drop → under | recovery → 85 % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for name in &names {
        let (weak, hall, step, own) = rt.block_on(run(name, secs))?;
        for (who, r) in [(name.as_str(), &weak), ("fibre, same run", &hall)] {
            let (drop, rec) = match (&step, who == name.as_str()) {
                (Some(s), true) => (fmt_opt(s.drop_to_under), fmt_opt(s.recover_to_85)),
                _ => ("".into(), "".into()),
            };
            println!(
                "| {name} | {who} | {:.2} % | {:.0} | {:.2} | {:.1} s | {:.2} | {} | {drop} | {rec} |",
                r.audio.on_time_pct(),
                r.audio.concealed_ms_per_min(),
                r.video.freezes() as f64 / r.minutes,
                r.audio_only.as_secs_f64(),
                r.video.layer_changes as f64 / r.minutes,
                if r.kbps > 0.0 {
                    format!("{:.0}", r.kbps)
                } else {
                    "".into()
                },
            );
        }
        if own > 0 {
            println!("!! {own} packets of a subscriber's own media came back to it");
        }
        notes.push(format!(
            "{name}: joined on attempt {}; {} audio packets with RED; {:.0} kbit/s sent towards the {name} subscriber",
            weak.attempts, weak.red, weak.kbps
        ));
    }
    println!();
    for n in notes {
        println!("{n}");
    }
    Ok(())
}
