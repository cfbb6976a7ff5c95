//! What a subscriber's reception looked like, from the arrivals a [`SimPeer`] recorded:
//! audio frames on time, concealment, video freezes, layer changes. Pure functions over
//! recorded arrivals, so the weak-link benchmark and the tests compute the same figures.
//!
//! [`SimPeer`]: crate::sim_peer::SimPeer

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::profiles::profile;
use crate::sim_peer::{AudioArrival, VideoArrival, epoch};
use cauhop_sfu::vp8_shape;

/// One publisher's audio as one subscriber heard it, over a window of send times.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct AudioFigures {
    /// 20 ms frames the publisher sent in the window.
    pub expected: u64,
    /// Arrived within the jitter budget of the path's lowest delay.
    pub on_time: u64,
    /// Arrived, but after the budget: the decoder had to conceal them anyway.
    pub late: u64,
}

impl AudioFigures {
    pub fn on_time_pct(&self) -> f64 {
        if self.expected == 0 {
            return 0.0;
        }
        100.0 * self.on_time as f64 / self.expected as f64
    }

    /// Milliseconds of audio the receiver had to make up (loss concealment), per minute.
    pub fn concealed_ms_per_min(&self) -> f64 {
        let minutes = self.expected as f64 * 0.02 / 60.0;
        if minutes == 0.0 {
            return 0.0;
        }
        (self.expected - self.on_time) as f64 * 20.0 / minutes
    }

    pub fn add(&mut self, o: AudioFigures) {
        self.expected += o.expected;
        self.on_time += o.on_time;
        self.late += o.late;
    }
}

fn sent_at(us: u64) -> Instant {
    epoch() + Duration::from_micros(us)
}

/// Frames are numbered consecutively by the sender, so the frames it sent in the window
/// are those between the first and last received there (edges aside).
pub fn audio_figures(
    arrivals: &[AudioArrival],
    from: Instant,
    to: Instant,
    budget: Duration,
) -> AudioFigures {
    let timed: Vec<(u32, Instant, Instant)> = arrivals
        .iter()
        .map(|a| (a.seq, sent_at(a.sent_us), a.at))
        .collect();
    audio_figures_timed(&timed, from, to, budget)
}

/// The same from (frame number, sent, arrived), as the simulated meeting records them.
pub fn audio_figures_timed(
    arrivals: &[(u32, Instant, Instant)],
    from: Instant,
    to: Instant,
    budget: Duration,
) -> AudioFigures {
    let Some(base) = arrivals
        .iter()
        .map(|(_, sent, at)| at.saturating_duration_since(*sent))
        .min()
    else {
        return AudioFigures::default();
    };
    let mut first: BTreeMap<u32, Duration> = BTreeMap::new();
    for (seq, sent, at) in arrivals {
        if *sent < from || *sent >= to {
            continue;
        }
        first
            .entry(*seq)
            .or_insert(at.saturating_duration_since(*sent));
    }
    let (Some((lo, _)), Some((hi, _))) = (first.first_key_value(), first.last_key_value()) else {
        return AudioFigures::default();
    };
    let expected = u64::from(hi - lo) + 1;
    let on_time = first.values().filter(|d| **d <= base + budget).count() as u64;
    AudioFigures {
        expected,
        on_time,
        late: first.len() as u64 - on_time,
    }
}

/// One publisher's video as one subscriber saw it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VideoFigures {
    /// Complete frames shown in the window.
    pub frames: u64,
    /// Gaps between shown frames longer than max(3 × frame interval, interval + 150 ms),
    /// outside the periods the subscriber was told it gets audio only.
    /// Where each began and how long it lasted: which part of a run they come from.
    pub freeze_list: Vec<(Instant, Duration)>,
    /// Times the shown layer changed.
    pub layer_changes: u64,
}

impl VideoFigures {
    pub fn freezes(&self) -> u64 {
        self.freeze_list.len() as u64
    }

    pub fn add(&mut self, o: VideoFigures) {
        self.frames += o.frames;
        self.freeze_list.extend(o.freeze_list);
        self.layer_changes += o.layer_changes;
    }
}

/// A frame as the receiver assembles it: complete when every part arrived.
#[derive(Debug, Clone, Copy)]
pub struct FrameDone {
    pub at: Instant,
    pub layer: u8,
    pub frame: u32,
    /// Its place after the last keyframe (0: the keyframe).
    pub since_key: u32,
}

/// The frames a decoder shows, from frames completed (in any order): a frame is decoded
/// once it and every frame it refers to (Chrome's temporal pattern) are, and shown then
/// unless a newer frame of its layer was already shown. Returns (when, layer, frame),
/// in order.
pub fn shown_frames(mut done: Vec<FrameDone>) -> Vec<(Instant, u8, u32)> {
    done.sort_by_key(|f| (f.at, f.layer, f.frame));
    let mut decoded: HashSet<(u8, u32)> = HashSet::new();
    let mut waiting: BTreeMap<(u8, u32), u32> = BTreeMap::new();
    let mut newest: HashMap<u8, u32> = HashMap::new();
    let mut shown = Vec::new();
    for f in done {
        waiting.insert((f.layer, f.frame), f.since_key);
        loop {
            let ready: Vec<(u8, u32)> = waiting
                .iter()
                .filter(|((layer, frame), k)| {
                    *layer == f.layer
                        && vp8_shape::chrome_refs(**k).iter().all(|r| {
                            let back = **k - r;
                            frame
                                .checked_sub(back)
                                .is_some_and(|x| decoded.contains(&(*layer, x)))
                        })
                })
                .map(|(key, _)| *key)
                .collect();
            if ready.is_empty() {
                break;
            }
            for key in ready {
                waiting.remove(&key);
                decoded.insert(key);
                let n = newest.entry(key.0).or_insert(key.1);
                if key.1 >= *n {
                    *n = key.1;
                    shown.push((f.at, key.0, key.1));
                }
            }
        }
        // Frames far behind what was shown will never be: a keyframe came since.
        if let Some(n) = newest.get(&f.layer) {
            waiting.retain(|(l, fr), _| *l != f.layer || fr + 64 > *n);
        }
    }
    shown
}

/// Frames whose every part arrived, from the arrivals.
pub fn completed(arrivals: &[VideoArrival]) -> Vec<FrameDone> {
    let mut parts: HashMap<(u8, u32), (u8, u8, Instant, u32)> = HashMap::new();
    for v in arrivals {
        let e = parts
            .entry((v.layer, v.frame))
            .or_insert((0, v.parts, v.at, v.since_key));
        e.0 = e.0.saturating_add(1);
        e.2 = e.2.max(v.at);
    }
    parts
        .into_iter()
        .filter(|(_, (got, of, _, _))| got >= of)
        .map(|((layer, frame), (_, _, at, since_key))| FrameDone {
            at,
            layer,
            frame,
            since_key,
        })
        .collect()
}

/// `paused`: audio-only periods (no freeze counted). A freeze is a gap between shown
/// frames longer than max(3 × the mean of the last 30 gaps, that mean + 150 ms), as a
/// browser counts it (`freezeCount`), so a lower frame rate the SFU chose is no freeze.
pub fn video_figures(
    arrivals: &[VideoArrival],
    from: Instant,
    to: Instant,
    paused: &[(Instant, Instant)],
) -> VideoFigures {
    let shown = shown_frames(completed(arrivals));
    frame_figures(&shown, from, to, paused)
}

/// The same from frames already known to be shown.
pub fn frame_figures(
    shown: &[(Instant, u8, u32)],
    from: Instant,
    to: Instant,
    paused: &[(Instant, Instant)],
) -> VideoFigures {
    let in_window: Vec<&(Instant, u8, u32)> = shown
        .iter()
        .filter(|(at, _, _)| *at >= from && *at < to)
        .collect();
    let mut f = VideoFigures {
        frames: in_window.len() as u64,
        ..Default::default()
    };
    let mut recent: VecDeque<Duration> = VecDeque::new();
    for w in in_window.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.1 != b.1 {
            f.layer_changes += 1;
        }
        let gap = b.0.saturating_duration_since(a.0);
        let was_paused = paused.iter().any(|(s, e)| *s < b.0 && *e > a.0);
        if !recent.is_empty() && !was_paused {
            let mean = recent.iter().sum::<Duration>() / recent.len() as u32;
            let limit = (mean * 3).max(mean + Duration::from_millis(150));
            if gap > limit {
                f.freeze_list.push((a.0, gap));
            }
        }
        if !was_paused {
            recent.push_back(gap);
            if recent.len() > 30 {
                recent.pop_front();
            }
        }
    }
    f
}

/// Mean rate (kbit/s) of `samples` (time, cumulative bytes) over `[from, to)`.
pub fn rate(samples: &[(Instant, u64)], from: Instant, to: Instant) -> Option<f64> {
    let a = samples.iter().find(|s| s.0 >= from)?;
    let b = samples.iter().rev().find(|s| s.0 <= to)?;
    let secs = b.0.checked_duration_since(a.0)?.as_secs_f64();
    (secs > 0.0).then(|| (b.1 - a.1) as f64 * 8.0 / secs / 1000.0)
}

/// How fast the SFU followed a downlink that stepped down and back up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Step {
    /// From the drop until it sent under the new capacity (over 500 ms).
    pub drop_to_under: Option<Duration>,
    /// From the recovery until it sent 85 % of what it sent before the drop.
    pub recover_to_85: Option<Duration>,
}

/// For a profile whose downlink steps down and back up: how fast the SFU followed.
/// `samples`: (when, bytes sent towards the subscriber so far).
pub fn step_figures(samples: &[(Instant, u64)], start: Instant, name: &str) -> Option<Step> {
    let p = profile(name).ok()?;
    let steps = &p.down.steps;
    if steps.len() < 3 {
        return None;
    }
    let (drop_at, low) = (start + steps[1].0, f64::from(steps[1].1.rate_kbps));
    let back_at = start + steps[2].0;
    let window = Duration::from_millis(500);
    let before = rate(samples, drop_at - Duration::from_secs(4), drop_at)?;
    let first_after = |from: Instant, ok: &dyn Fn(f64) -> bool| {
        samples
            .iter()
            .filter(|s| s.0 >= from + window)
            .find(|s| rate(samples, s.0 - window, s.0).is_some_and(ok))
            .map(|s| s.0 - window - from)
    };
    Some(Step {
        drop_to_under: first_after(drop_at, &|r| r <= low),
        recover_to_85: first_after(back_at, &|r| r >= 0.85 * before),
    })
}

/// Audio-only periods from the bridge's notices, closed at `end`.
pub fn paused_periods(notices: &[(Instant, bool)], end: Instant) -> Vec<(Instant, Instant)> {
    let mut out = Vec::new();
    let mut since = None;
    for (at, audio_only) in notices {
        match (audio_only, since) {
            (true, None) => since = Some(*at),
            (false, Some(s)) => {
                out.push((s, *at));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        out.push((s, end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(n: u32, sent_ms: u64, delay_ms: u64) -> AudioArrival {
        let sent_us = sent_ms * 1000;
        AudioArrival {
            at: sent_at(sent_us) + Duration::from_millis(delay_ms),
            seq: n,
            sent_us,
        }
    }

    #[test]
    fn audio_counts_lost_and_late_frames() {
        let t = |ms: u64| sent_at(ms * 1000);
        // 100 frames, 20 ms apart, 50 ms path; frames 10-14 lost, 20 late by 300 ms.
        let mut a: Vec<AudioArrival> = (0..100u32)
            .filter(|n| !(10..15).contains(n))
            .map(|n| audio(n, 1000 + u64::from(n) * 20, if n == 20 { 350 } else { 50 }))
            .collect();
        a.push(audio(21, 1000 + 21 * 20, 60)); // a duplicate: counted once
        let f = audio_figures(&a, t(1000), t(3000), Duration::from_millis(200));
        assert_eq!(
            f,
            AudioFigures {
                expected: 100,
                on_time: 94,
                late: 1
            }
        );
        assert!((f.on_time_pct() - 94.0).abs() < 1e-9);
        // 6 frames of 20 ms concealed in 2 s of audio: 3.6 s per minute.
        assert!((f.concealed_ms_per_min() - 3600.0).abs() < 1e-6);
    }

    fn frame(layer: u8, n: u32, at_ms: u64, parts: u8) -> Vec<VideoArrival> {
        (0..parts)
            .map(|p| VideoArrival {
                at: epoch() + Duration::from_millis(at_ms),
                layer,
                frame: n,
                part: p,
                parts,
                key: n == 0,
                sent_us: 0,
                bytes: 1000,
                tid: vp8_shape::chrome_temporal(n).tid,
                since_key: n,
            })
            .collect()
    }

    #[test]
    fn freezes_are_long_gaps_outside_audio_only_periods() {
        let t = |ms: u64| epoch() + Duration::from_millis(ms);
        let mut v = Vec::new();
        // 30 fps on layer 2 for 1 s, a 500 ms gap, 1 s more, then a switch to layer 0.
        for i in 0..30 {
            v.extend(frame(2, i, 1000 + u64::from(i) * 33, 2));
        }
        for i in 30..60 {
            v.extend(frame(2, i, 1500 + u64::from(i) * 33, 2));
        }
        // An incomplete frame is not shown (one part of two).
        v.extend(frame(2, 60, 3500, 2).into_iter().take(1));
        for i in 0..10 {
            v.extend(frame(0, i, 3600 + u64::from(i) * 66, 1));
        }
        let f = video_figures(&v, t(0), t(10_000), &[]);
        assert_eq!(f.frames, 70);
        assert_eq!(f.freezes(), 1);
        assert_eq!(f.layer_changes, 1);
        // The same gap inside an audio-only period is not a freeze.
        let f = video_figures(&v, t(0), t(10_000), &[(t(1990), t(2600))]);
        assert_eq!(f.freezes(), 0);
    }

    #[test]
    fn a_lost_top_layer_frame_costs_a_frame_a_lost_base_frame_a_freeze() {
        let t = |ms: u64| epoch() + Duration::from_millis(ms);
        let at = |i: u32| 1000 + u64::from(i) * 33;
        // 30 fps for 4 s; frame 21 (T2, nothing refers to it) lost.
        let v: Vec<VideoArrival> = (0..120)
            .filter(|i| *i != 21)
            .flat_map(|i| frame(1, i, at(i), 2))
            .collect();
        let f = video_figures(&v, t(0), t(10_000), &[]);
        assert_eq!((f.frames, f.freezes()), (119, 0));
        // Frame 20 (T0) lost: 21-27 refer to it (directly or through 22 and 24), and
        // so on up the T0 chain until the stream's end: one long freeze.
        let v: Vec<VideoArrival> = (0..120)
            .filter(|i| *i != 20)
            .flat_map(|i| frame(1, i, at(i), 2))
            .collect();
        let f = video_figures(&v, t(0), t(10_000), &[]);
        assert_eq!(f.frames, 20);
        // A keyframe brings the picture back.
        let mut v: Vec<VideoArrival> = (0..60)
            .filter(|i| *i != 20)
            .flat_map(|i| frame(1, i, at(i), 2))
            .collect();
        v.extend(
            (0..60)
                .flat_map(|i| frame(1, 60 + i, at(60 + i), 2))
                .map(|mut a| {
                    a.since_key -= 60;
                    a
                }),
        );
        let f = video_figures(&v, t(0), t(10_000), &[]);
        assert_eq!(f.frames, 80);
        assert_eq!(f.freezes(), 1);
        // Only the base layer (every fourth frame), steadily: 7.5 fps, no freeze.
        let v: Vec<VideoArrival> = (0..120)
            .filter(|i| i % 4 == 0)
            .flat_map(|i| frame(1, i, at(i), 2))
            .collect();
        let f = video_figures(&v, t(0), t(10_000), &[]);
        assert_eq!((f.frames, f.freezes()), (30, 0));
    }

    #[test]
    fn notices_become_periods() {
        let t = |ms: u64| epoch() + Duration::from_millis(ms);
        let p = paused_periods(&[(t(1), true), (t(5), false), (t(8), true)], t(10));
        assert_eq!(p, [(t(1), t(5)), (t(8), t(10))]);
    }
}
