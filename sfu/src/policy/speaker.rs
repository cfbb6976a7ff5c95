//! Who is speaking: the dominant speaker from the RFC 6464 audio-level header extension,
//! which every browser sends on its audio packets, so the SFU needs no decoder.
//!
//! Levels are smoothed per participant (exponential, time-constant [`SpeakerConfig::tau`]);
//! the dominant speaker changes only when another participant has been clearly louder
//! (by [`SpeakerConfig::margin_db`]) for [`SpeakerConfig::switch_after`], or when the
//! dominant one has been quiet for [`SpeakerConfig::silence_after`] while another speaks.
//! A cough or a door slam does not move the camera. Pure: time is passed in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct SpeakerConfig {
    /// Smoothing time constant.
    pub tau: Duration,
    /// Loudness (dB above -127 dBov) over which a participant counts as speaking: 77 is
    /// -50 dBov, above a quiet room's noise and below speech at a desk microphone.
    pub speech_db: f32,
    /// How much louder a challenger must be than the dominant speaker.
    pub margin_db: f32,
    pub switch_after: Duration,
    pub silence_after: Duration,
    /// A participant whose audio stopped arriving (muted, DTX) counts as silent after this.
    pub stale_after: Duration,
    /// A voice stays audible this long after it last spoke (pauses between sentences).
    pub hangover: Duration,
    /// At most this many voices are audible at once: a 300-site meeting must not send
    /// 300 audio streams to a commune's 3G link, and more than three people talking at
    /// once is not intelligible anyway.
    pub max_audible: usize,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        Self {
            tau: Duration::from_millis(300),
            speech_db: 77.0,
            margin_db: 6.0,
            switch_after: Duration::from_millis(800),
            silence_after: Duration::from_millis(1500),
            stale_after: Duration::from_millis(500),
            hangover: Duration::from_millis(1500),
            max_audible: 3,
        }
    }
}

#[derive(Debug, Clone)]
struct Voice {
    /// Smoothed loudness, dB above -127 dBov (0 = silence, 127 = full scale).
    loudness: f32,
    last: Instant,
    /// Since when it has out-shouted the dominant speaker (or spoken while they were
    /// quiet).
    challenging_since: Option<Instant>,
    quiet_since: Option<Instant>,
    /// When it was last above the speech threshold.
    spoke: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct SpeakerDetector<K> {
    cfg: SpeakerConfig,
    voices: HashMap<K, Voice>,
    dominant: Option<K>,
}

impl<K: Copy + Eq + Hash + Ord> SpeakerDetector<K> {
    pub fn new(cfg: SpeakerConfig) -> Self {
        Self {
            cfg,
            voices: HashMap::new(),
            dominant: None,
        }
    }

    pub fn dominant(&self) -> Option<K> {
        self.dominant
    }

    /// Smoothed loudness of `who` (0..127), for the client's level meters.
    pub fn loudness(&self, who: K) -> f32 {
        self.voices.get(&who).map_or(0.0, |v| v.loudness)
    }

    /// One audio packet's level: `level` is the RFC 6464 value, 0..=127 meaning -level dBov.
    pub fn on_level(&mut self, who: K, level: u8, now: Instant) {
        let loud = 127.0 - f32::from(level.min(127));
        let tau = self.cfg.tau.as_secs_f32().max(1e-3);
        let v = self.voices.entry(who).or_insert(Voice {
            loudness: 0.0,
            last: now,
            challenging_since: None,
            quiet_since: Some(now),
            spoke: None,
        });
        let dt = now.saturating_duration_since(v.last).as_secs_f32();
        let a = 1.0 - (-dt / tau).exp();
        // The first packet after a gap has dt large: it takes the new level almost fully.
        v.loudness += a.max(0.05) * (loud - v.loudness);
        v.last = now;
        // Speech counts from its first packet: waiting for the smoothed loudness (about
        // half a second from silence) clipped the first words of every utterance (the
        // load generator's ledger showed 25 packets missing at each onset).
        if loud >= self.cfg.speech_db {
            v.spoke = Some(now);
        }
    }

    /// Whether a voice that just started speaking may be forwarded before the next
    /// [`tick`](Self::tick): fewer than `max_audible` others are audible now.
    pub fn room_for(&self, who: K, now: Instant) -> bool {
        let others = self
            .voices
            .iter()
            .filter(|(k, v)| {
                **k != who
                    && (self.dominant == Some(**k)
                        || v.spoke
                            .is_some_and(|t| now.saturating_duration_since(t) <= self.cfg.hangover))
            })
            .count();
        others < self.cfg.max_audible
    }

    /// Whether one packet's RFC 6464 level is speech.
    pub fn is_speech(&self, level: u8) -> bool {
        127.0 - f32::from(level.min(127)) >= self.cfg.speech_db
    }

    /// Whether `who` sends audio levels at all. A participant that does not (an old
    /// client, a room system) cannot be judged silent and is always audible.
    pub fn knows(&self, who: K) -> bool {
        self.voices.contains_key(&who)
    }

    /// The voices worth forwarding now (as of the last [`tick`](Self::tick)): the
    /// dominant speaker and whoever spoke within the hangover, loudest first, at most
    /// [`SpeakerConfig::max_audible`].
    pub fn audible(&self, now: Instant) -> Vec<K> {
        let mut v: Vec<(K, f32)> = self
            .voices
            .iter()
            .filter(|(k, v)| {
                self.dominant == Some(**k)
                    || v.spoke
                        .is_some_and(|t| now.saturating_duration_since(t) <= self.cfg.hangover)
            })
            .map(|(k, v)| (*k, v.loudness))
            .collect();
        v.sort_by(|a, b| {
            let dom = |k: &K| self.dominant != Some(*k);
            dom(&a.0)
                .cmp(&dom(&b.0))
                .then(b.1.total_cmp(&a.1))
                .then(a.0.cmp(&b.0))
        });
        v.truncate(self.cfg.max_audible);
        v.into_iter().map(|(k, _)| k).collect()
    }

    pub fn remove(&mut self, who: K) {
        self.voices.remove(&who);
        if self.dominant == Some(who) {
            self.dominant = None;
        }
    }

    /// Re-evaluate at `now` (every 100 ms or so); `Some` when the dominant speaker changed.
    pub fn tick(&mut self, now: Instant) -> Option<K> {
        let cfg = self.cfg;
        let speech = cfg.speech_db;
        // Silence for anyone whose packets stopped.
        for v in self.voices.values_mut() {
            if now.saturating_duration_since(v.last) > cfg.stale_after {
                v.loudness = 0.0;
            }
            if v.loudness < speech {
                v.quiet_since.get_or_insert(now);
            } else {
                v.quiet_since = None;
                v.spoke = Some(now);
            }
        }
        let dom = self
            .dominant
            .and_then(|d| self.voices.get(&d).map(|v| (d, v.clone())));
        let Some((dom_id, dom_v)) = dom else {
            // Nobody holds the floor: the loudest speaker takes it at once.
            let loudest = self
                .voices
                .iter()
                .filter(|(_, v)| v.loudness >= speech)
                .max_by(|a, b| a.1.loudness.total_cmp(&b.1.loudness).then(b.0.cmp(a.0)))
                .map(|(k, _)| *k);
            if loudest.is_some() {
                self.dominant = loudest;
                for v in self.voices.values_mut() {
                    v.challenging_since = None;
                }
            }
            return loudest;
        };
        let dom_quiet_long = dom_v
            .quiet_since
            .is_some_and(|t| now.saturating_duration_since(t) >= cfg.silence_after);
        let mut winner: Option<(K, f32)> = None;
        for (k, v) in self.voices.iter_mut() {
            if *k == dom_id {
                v.challenging_since = None;
                continue;
            }
            let challenging = v.loudness >= speech
                && (v.loudness >= dom_v.loudness + cfg.margin_db || dom_v.loudness < speech);
            if !challenging {
                v.challenging_since = None;
                continue;
            }
            let since = *v.challenging_since.get_or_insert(now);
            let held = now.saturating_duration_since(since);
            let wins = held >= cfg.switch_after
                || (dom_quiet_long && held >= cfg.switch_after.min(Duration::from_millis(300)));
            if wins && winner.is_none_or(|(_, l)| v.loudness > l) {
                winner = Some((*k, v.loudness));
            }
        }
        let (k, _) = winner?;
        self.dominant = Some(k);
        for v in self.voices.values_mut() {
            v.challenging_since = None;
        }
        Some(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_voices_are_not_audible_and_at_most_three_are() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let ms = |v: u64| t0 + Duration::from_millis(v);
        // Participant 9 is silent (level 127); 1..=4 speak, 4 loudest.
        for i in 0..50u64 {
            let t = ms(i * 20);
            d.on_level(9, 127, t);
            for who in 1..=4u32 {
                d.on_level(who, 40 - who as u8 * 5, t);
            }
            d.tick(t);
        }
        let a = d.audible(ms(1000));
        assert_eq!(a.len(), 3);
        assert_eq!(a[0], d.dominant().expect("someone dominant"));
        assert!(!a.contains(&9) && d.knows(9) && !d.knows(77));
        // Speakers stay audible through a pause shorter than the hangover ...
        for i in 50..100u64 {
            d.on_level(9, 127, ms(i * 20));
            d.tick(ms(i * 20));
        }
        assert_eq!(d.audible(ms(2000)).len(), 3);
        // ... and not after it (the dominant one keeps its place).
        for i in 100..200u64 {
            d.on_level(9, 127, ms(i * 20));
            d.tick(ms(i * 20));
        }
        assert!(d.audible(ms(4000)).len() <= 1);
    }

    /// Feed 50 packets/s for `ms` from each (participant, level) and tick every 100 ms;
    /// return the dominant speaker changes with their times (ms from `t0`).
    fn run(
        d: &mut SpeakerDetector<u32>,
        t0: Instant,
        from_ms: u64,
        ms: u64,
        who: &[(u32, u8)],
    ) -> Vec<(u64, u32)> {
        let mut changes = Vec::new();
        let mut t = from_ms;
        while t < from_ms + ms {
            let now = t0 + Duration::from_millis(t);
            for &(k, level) in who {
                d.on_level(k, level, now);
            }
            if t.is_multiple_of(100)
                && let Some(k) = d.tick(now)
            {
                changes.push((t, k));
            }
            t += 20;
        }
        changes
    }

    #[test]
    fn the_first_voice_takes_the_floor_and_a_cough_does_not_move_it() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        // Chair (1) speaks at -20 dBov, others hum at -90.
        let c = run(&mut d, t0, 0, 3000, &[(1, 20), (2, 90), (3, 90)]);
        assert_eq!(c.first().map(|x| x.1), Some(1));
        assert!(c[0].0 <= 500, "took the floor at {} ms", c[0].0);
        // Participant 2 coughs for 300 ms much louder: no switch.
        let c = run(&mut d, t0, 3000, 300, &[(1, 20), (2, 5), (3, 90)]);
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(d.dominant(), Some(1));
    }

    #[test]
    fn a_sustained_louder_voice_takes_over_after_the_switch_delay() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        run(&mut d, t0, 0, 2000, &[(1, 30), (2, 90)]);
        let c = run(&mut d, t0, 2000, 3000, &[(1, 40), (2, 15)]);
        assert_eq!(c.len(), 1, "{c:?}");
        let (at, who) = c[0];
        assert_eq!(who, 2);
        assert!((2800..=3300).contains(&at), "switched at {at} ms");
    }

    #[test]
    fn when_the_speaker_stops_the_next_one_takes_over_quickly() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        run(&mut d, t0, 0, 2000, &[(1, 25), (2, 100)]);
        // 1 stops sending (muted): 2 starts speaking at a similar level.
        let c = run(&mut d, t0, 2000, 4000, &[(2, 28)]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].1, 2);
        assert!(c[0].0 <= 4200, "took over at {} ms", c[0].0);
    }

    #[test]
    fn alternating_similar_voices_do_not_flap() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        // Two people talking over each other, levels crossing every 200 ms by 3 dB.
        let mut changes = 0;
        for i in 0..50u64 {
            let (a, b) = if i % 2 == 0 { (30, 33) } else { (33, 30) };
            changes += run(&mut d, t0, i * 200, 200, &[(1, a), (2, b)]).len();
        }
        assert_eq!(changes, 1, "only the first floor-taking");
    }

    #[test]
    fn speech_is_audible_from_its_first_packet_within_the_cap() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // Four sites, silent for two seconds.
        for i in 0..100 {
            for who in 1..=4u32 {
                d.on_level(who, 127, ms(i * 20));
            }
            if i % 5 == 0 {
                d.tick(ms(i * 20));
            }
        }
        assert!(d.audible(ms(2000)).is_empty());
        assert!(d.is_speech(30) && !d.is_speech(127));
        // Site 1 starts speaking: audible at the next tick, not after the smoothed
        // loudness catches up half a second later.
        d.on_level(1, 30, ms(2000));
        assert!(d.room_for(1, ms(2000)));
        d.tick(ms(2000));
        assert_eq!(d.audible(ms(2000)), vec![1]);
        // Three more start at once: only two fit beside site 1.
        for who in 2..=4u32 {
            d.on_level(who, 30, ms(2020));
        }
        assert!(!d.room_for(4, ms(2020)), "1, 2 and 3 are speaking");
        d.tick(ms(2020));
        assert_eq!(d.audible(ms(2020)).len(), 3);
    }
}
