//! What a subscriber's reception looked like, from the arrivals a [`SimPeer`] recorded:
//! audio frames on time, concealment, video freezes, layer changes. Pure functions over
//! recorded arrivals, so the weak-link benchmark and the tests compute the same figures.
//!
//! [`SimPeer`]: crate::sim_peer::SimPeer

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::sim_peer::{AudioArrival, VideoArrival, epoch};

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
    let Some(base) = arrivals
        .iter()
        .map(|a| a.at.saturating_duration_since(sent_at(a.sent_us)))
        .min()
    else {
        return AudioFigures::default();
    };
    let mut first: BTreeMap<u32, Duration> = BTreeMap::new();
    for a in arrivals {
        let sent = sent_at(a.sent_us);
        if sent < from || sent >= to {
            continue;
        }
        first
            .entry(a.seq)
            .or_insert(a.at.saturating_duration_since(sent));
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

/// `fps[layer]`: each layer's frame rate; `paused`: audio-only periods (no freeze counted).
pub fn video_figures(
    arrivals: &[VideoArrival],
    from: Instant,
    to: Instant,
    fps: &[u32],
    paused: &[(Instant, Instant)],
) -> VideoFigures {
    // A frame is shown when its last part arrives (all parts, resends included).
    let mut parts: HashMap<(u8, u32), (u8, u8, Instant)> = HashMap::new();
    for v in arrivals {
        let e = parts
            .entry((v.layer, v.frame))
            .or_insert((0, v.parts, v.at));
        e.0 = e.0.saturating_add(1);
        e.2 = e.2.max(v.at);
    }
    let mut shown: Vec<(Instant, u8, u32)> = parts
        .iter()
        .filter(|(_, (got, of, _))| got >= of)
        .map(|((layer, frame), (_, _, at))| (*at, *layer, *frame))
        .collect();
    shown.sort();
    // A frame completed after a newer one of its layer was shown is not shown.
    let mut newest: HashMap<u8, u32> = HashMap::new();
    shown.retain(|(_, layer, frame)| {
        let n = newest.entry(*layer).or_insert(*frame);
        if *frame < *n {
            return false;
        }
        *n = *frame;
        true
    });
    let in_window: Vec<&(Instant, u8, u32)> = shown
        .iter()
        .filter(|(at, _, _)| *at >= from && *at < to)
        .collect();
    let mut f = VideoFigures {
        frames: in_window.len() as u64,
        ..Default::default()
    };
    for w in in_window.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.1 != b.1 {
            f.layer_changes += 1;
        }
        let interval = Duration::from_secs(1) / fps.get(usize::from(a.1)).copied().unwrap_or(30);
        let limit = (interval * 3).max(interval + Duration::from_millis(150));
        let gap = b.0.saturating_duration_since(a.0);
        let was_paused = paused.iter().any(|(s, e)| *s < b.0 && *e > a.0);
        if gap > limit && !was_paused {
            f.freeze_list.push((a.0, gap));
        }
    }
    f
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
                key: false,
                sent_us: 0,
                bytes: 1000,
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
        let f = video_figures(&v, t(0), t(10_000), &[15, 30, 30], &[]);
        assert_eq!(f.frames, 70);
        assert_eq!(f.freezes(), 1);
        assert_eq!(f.layer_changes, 1);
        // The same gap inside an audio-only period is not a freeze.
        let f = video_figures(&v, t(0), t(10_000), &[15, 30, 30], &[(t(1990), t(2600))]);
        assert_eq!(f.freezes(), 0);
    }

    #[test]
    fn notices_become_periods() {
        let t = |ms: u64| epoch() + Duration::from_millis(ms);
        let p = paused_periods(&[(t(1), true), (t(5), false), (t(8), true)], t(10));
        assert_eq!(p, [(t(1), t(5)), (t(8), t(10))]);
    }
}
