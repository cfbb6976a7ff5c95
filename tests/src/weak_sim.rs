//! The weak-link scenario of `benches/weaklink.rs` in the simulated meeting
//! (`cauhop_sfu::sim`): the same three publishers (each Opus-shaped audio and three VP8
//! simulcast layers in three temporal layers; the first speaks), one subscriber behind a
//! link profile and one on fibre, the links of `link-profiles.toml` through the same
//! emulator channels as the real-UDP runs. On a simulated clock from a seed: a run gives
//! the same figures twice, and ten seeds of a 30 s profile take seconds.
//!
//! The figures are those of the real-UDP bench (`reception.rs`), with one more step of
//! truth: a video frame counts as shown only when every frame it refers to was decoded
//! (Chrome's temporal pattern), as a decoder would.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cauhop_sfu::sim::{Arrival, CAMERA, ClientSpec, LinkModel, Sim};

use crate::emulator::Channel;
use crate::profiles::profile;
use crate::reception::{
    AudioFigures, Step, VideoFigures, audio_figures_timed, completed, frame_figures,
    paused_periods, shown_frames, step_figures,
};
use crate::sim_peer::VideoArrival;

impl LinkModel for Channel {
    fn offer(&mut self, elapsed: Duration, bytes: usize) -> Option<Duration> {
        Channel::offer(self, elapsed, bytes).ok()
    }
}

/// Excluded from the figures: joining, ICE, the estimate's first ramp.
pub const WARMUP: Duration = Duration::from_secs(5);
/// Audio frames within this of the path's lowest delay are on time.
pub const AUDIO_BUDGET: Duration = Duration::from_millis(200);

/// One subscriber's figures over the measured window.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub audio: AudioFigures,
    /// Over every publisher's video.
    pub video: VideoFigures,
    pub minutes: f64,
    pub audio_only: Duration,
    /// What the SFU sent towards the subscriber.
    pub kbps: f64,
    /// The speaker's video (the main slot): frames shown per second, their mean height,
    /// and the longest time without a new frame outside audio-only periods.
    pub main_fps: f64,
    pub main_height: f64,
    pub longest_gap: Duration,
    /// Per half second of the run: (seconds from the start, frames shown, tallest height)
    /// of the speaker's video.
    pub timeline: Vec<(f64, u32, u16)>,
}

impl Figures {
    pub fn freezes_per_min(&self) -> f64 {
        if self.minutes == 0.0 {
            return 0.0;
        }
        self.video.freezes() as f64 / self.minutes
    }
}

pub struct Run {
    pub weak: Figures,
    pub fibre: Figures,
    pub step: Option<Step>,
    /// What the SFU counted for the weak subscriber at the end.
    pub sfu_view: Option<cauhop_sfu::PeerStats>,
}

/// Run profile `name` for `secs` of simulated time from `seed`; `temporal`: the SFU
/// chooses temporal layers (its default) or only simulcast layers.
pub fn run(name: &str, seed: u64, secs: u64, temporal: bool) -> anyhow::Result<Run> {
    let weak_profile = profile(name)?;
    let fibre_profile = profile("fibre")?;
    let mut s = Sim::new(seed.wrapping_mul(0x9e37_79b9).wrapping_add(1));
    s.core.set_temporal_layers(temporal);
    let room = "weak";
    let mut pubs = Vec::new();
    for i in 0..3 {
        let c = s
            .join(ClientSpec {
                layers: CAMERA.to_vec(),
                // The province speaks; the districts listen (silent, but sending).
                level: if i == 0 { 30 } else { 127 },
                ..ClientSpec::site(room)
            })
            .map_err(anyhow::Error::msg)?;
        pubs.push(c);
    }
    let watcher = ClientSpec {
        audio: false,
        layers: Vec::new(),
        record: true,
        ..ClientSpec::site(room)
    };
    let weak = s.join(watcher.clone()).map_err(anyhow::Error::msg)?;
    s.set_link_model(
        weak,
        Box::new(Channel::new(weak_profile.up.clone(), seed * 2 + 7)),
        Box::new(Channel::new(weak_profile.down.clone(), seed * 2 + 8)),
    );
    let hall = s.join(watcher).map_err(anyhow::Error::msg)?;
    s.set_link_model(
        hall,
        Box::new(Channel::new(fibre_profile.up.clone(), seed * 2 + 9)),
        Box::new(Channel::new(fibre_profile.down.clone(), seed * 2 + 10)),
    );
    let start = s.now;
    let mut samples = Vec::new();
    while s.elapsed() < Duration::from_secs(secs) {
        s.run(Duration::from_millis(50));
        samples.push((s.now, s.clients[weak].down_offered));
    }
    let from = start + WARMUP;
    let to = s.now - Duration::from_secs(1);
    let ids: Vec<u64> = pubs.iter().map(|p| s.clients[*p].id.0).collect();
    let mut weak_row = figures(&s, weak, &ids, start, from, to);
    weak_row.kbps = crate::reception::rate(&samples, from, to).unwrap_or(0.0);
    let fibre_row = figures(&s, hall, &ids, start, from, to);
    let weak_id = s.clients[weak].id.to_string();
    let sfu_view = s
        .core
        .stats()
        .into_iter()
        .find(|p| p.participant == weak_id);
    Ok(Run {
        sfu_view,
        weak: weak_row,
        fibre: fibre_row,
        step: step_figures(&samples, start, name),
    })
}

fn figures(
    s: &Sim,
    i: usize,
    senders: &[u64],
    start: Instant,
    from: Instant,
    to: Instant,
) -> Figures {
    let c = &s.clients[i];
    let paused = paused_periods(&c.bandwidth, to);
    let mut f = Figures {
        minutes: to.saturating_duration_since(from).as_secs_f64() / 60.0,
        ..Default::default()
    };
    for (a, b) in &paused {
        let (a, b) = ((*a).max(from), (*b).min(to));
        if b > a {
            f.audio_only += b - a;
        }
    }
    for (n, sender) in senders.iter().enumerate() {
        let mut audio = Vec::new();
        let mut video = Vec::new();
        let mut heights: HashMap<(u8, u32), u16> = HashMap::new();
        for a in &c.log {
            match *a {
                Arrival::Audio {
                    at,
                    sender: who,
                    n,
                    sent,
                } if who == *sender => audio.push((n as u32, sent, at)),
                Arrival::Video {
                    at,
                    sender: who,
                    layer,
                    frame,
                    since_key,
                    tid,
                    part,
                    parts,
                    key,
                    height,
                    bytes,
                    ..
                } if who == *sender => {
                    heights.insert((layer, frame), height);
                    video.push(VideoArrival {
                        at,
                        layer,
                        frame,
                        part,
                        parts,
                        key,
                        sent_us: 0,
                        bytes,
                        tid,
                        since_key,
                    });
                }
                _ => {}
            }
        }
        if std::env::var_os("CAUHOP_BENCH_VERBOSE").is_some() && n == 0 {
            verbose_audio(i, &audio, start);
        }
        f.audio
            .add(audio_figures_timed(&audio, from, to, AUDIO_BUDGET));
        // A tile whose video the SFU stopped is labelled on the page, not frozen.
        let mut off = paused.clone();
        off.extend(unshown_periods(&c.slot_history, *sender, to));
        let shown = shown_frames(completed(&video));
        let ff = frame_figures(&shown, from, to, &off);
        if std::env::var_os("CAUHOP_BENCH_VERBOSE").is_some() && !ff.freeze_list.is_empty() {
            eprintln!(
                "client {i} sender {sender}: freezes {:?}",
                ff.freeze_list
                    .iter()
                    .map(|(a, d)| format!(
                        "{:.2}s/{}ms",
                        a.duration_since(start).as_secs_f64(),
                        d.as_millis()
                    ))
                    .collect::<Vec<_>>()
            );
        }
        f.video.add(ff);
        if n == 0 {
            main_video(&mut f, &shown, &heights, &paused, start, from, to);
        }
    }
    f
}

/// The speaker's one-way audio delay per second of sending (worst, in ms), and the
/// frames missing: where late audio comes from.
fn verbose_audio(client: usize, audio: &[(u32, Instant, Instant)], start: Instant) {
    let mut per_s: std::collections::BTreeMap<u64, (u128, u32)> = Default::default();
    let mut seen = std::collections::HashSet::new();
    for (n, sent, at) in audio {
        if !seen.insert(*n) {
            continue;
        }
        let e = per_s
            .entry(sent.saturating_duration_since(start).as_secs())
            .or_default();
        e.0 = e.0.max(at.saturating_duration_since(*sent).as_millis());
        e.1 += 1;
    }
    eprintln!(
        "client {client}: speaker audio, worst delay ms/frames per second: {}",
        per_s
            .iter()
            .map(|(s, (ms, k))| format!("{s}:{ms}/{k}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// When `sender` was in none of the subscriber's video slots, by the slot maps it was
/// sent: periods closed at `end`.
fn unshown_periods(
    history: &[(Instant, cauhop_sfu::SlotMap)],
    sender: u64,
    end: Instant,
) -> Vec<(Instant, Instant)> {
    let notices: Vec<(Instant, bool)> = history
        .iter()
        .map(|(at, map)| {
            let shown = map
                .video
                .iter()
                .flatten()
                .any(|v| v.participant.0 == sender);
            (*at, !shown)
        })
        .collect();
    paused_periods(&notices, end)
}

/// The speaker's video: rate, height, longest gap, and its timeline.
fn main_video(
    f: &mut Figures,
    shown: &[(Instant, u8, u32)],
    heights: &HashMap<(u8, u32), u16>,
    paused: &[(Instant, Instant)],
    start: Instant,
    from: Instant,
    to: Instant,
) {
    let window: Vec<&(Instant, u8, u32)> = shown
        .iter()
        .filter(|(at, _, _)| *at >= from && *at < to)
        .collect();
    let secs = to.saturating_duration_since(from).as_secs_f64();
    if secs > 0.0 {
        f.main_fps = window.len() as f64 / secs;
    }
    let hs: Vec<f64> = window
        .iter()
        .filter_map(|(_, l, n)| heights.get(&(*l, *n)).map(|h| f64::from(*h)))
        .collect();
    if !hs.is_empty() {
        f.main_height = hs.iter().sum::<f64>() / hs.len() as f64;
    }
    let mut last = from;
    for (at, _, _) in &window {
        let was_paused = paused.iter().any(|(s, e)| *s < *at && *e > last);
        if !was_paused {
            f.longest_gap = f.longest_gap.max(at.saturating_duration_since(last));
        }
        last = *at;
    }
    let half = Duration::from_millis(500);
    let mut bins: Vec<(f64, u32, u16)> = Vec::new();
    for (at, l, n) in shown {
        let k = (at.saturating_duration_since(start).as_millis() / half.as_millis()) as usize;
        while bins.len() <= k {
            bins.push((bins.len() as f64 * half.as_secs_f64(), 0, 0));
        }
        bins[k].1 += 1;
        bins[k].2 = bins[k].2.max(heights.get(&(*l, *n)).copied().unwrap_or(0));
    }
    f.timeline = bins;
}
