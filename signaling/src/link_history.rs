//! Each participant's link during meetings, sampled every few seconds and kept in the
//! store (`cauhop_store::link_history`), for the meeting report and a site's link over
//! the weeks: what an IT officer looks at instead of waiting for a phone call.
//!
//! [`Sampler`] is the plain part (counters in, samples and full chunks out, the time
//! passed in); [`run`] is the task that feeds it from the media server every
//! [`HistoryOptions::sample_every`], writes what it gives, and prunes old samples.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cauhop_sfu::PeerStats;
use cauhop_store::Instant;
use cauhop_store::link_history::{Grade, LinkChunk, LinkSample};
use tracing::{info, warn};

use crate::AppState;

/// How the bridge keeps link history (`[history]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// One sample per participant this often.
    pub sample_every: Duration,
    /// Samples older than this many days are pruned (0: kept for ever).
    pub keep_days: u32,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        Self {
            sample_every: Duration::from_secs(10),
            keep_days: 90,
        }
    }
}

/// Who a media session is, for its samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub attendance_id: i64,
    pub meeting_id: i64,
    pub site_id: Option<i64>,
    /// The site's name, for the metrics' label (sites of the tree only).
    pub site: Option<String>,
}

/// What a participant's session had counted at the last sample.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: std::time::Instant,
    bytes_in: u64,
    bytes_out: u64,
    audio_in: u64,
}

/// Turns the media server's counters into samples, and samples into chunks of about a
/// minute (what one store row holds).
#[derive(Debug)]
pub struct Sampler {
    step_s: u8,
    per_chunk: usize,
    tracked: HashMap<String, Tracked>,
    last: HashMap<String, Counters>,
    open: HashMap<String, LinkChunk>,
    /// Chunks complete (full, or their participant gone), not yet taken.
    ready: Vec<LinkChunk>,
}

/// kbit/s from `bytes` over `secs`, rounded up: any byte at all reads as at least 1, so
/// that 0 means that nothing came.
fn kbps(bytes: u64, secs: f64) -> u32 {
    if bytes == 0 || secs <= 0.0 {
        return 0;
    }
    ((bytes as f64 * 8.0 / 1000.0 / secs).ceil() as u64).min(u64::from(u32::MAX)) as u32
}

impl Sampler {
    pub fn new(step: Duration) -> Self {
        let step_s = step.as_secs().clamp(1, 255) as u8;
        Self {
            step_s,
            // About a minute a row; at least one sample.
            per_chunk: (60 / usize::from(step_s)).max(1),
            tracked: HashMap::new(),
            last: HashMap::new(),
            open: HashMap::new(),
            ready: Vec::new(),
        }
    }

    /// `participant` (its id as the protocol writes it) is sampled from now on.
    pub fn track(&mut self, participant: &str, who: Tracked) {
        self.tracked.insert(participant.to_owned(), who);
    }

    /// `participant` left: what was sampled of it is ready to keep.
    pub fn untrack(&mut self, participant: &str) {
        self.tracked.remove(participant);
        self.last.remove(participant);
        if let Some(c) = self.open.remove(participant) {
            self.ready.push(c);
        }
    }

    /// One tick at `now` (`wall`: the same moment as the store keeps it): a sample of
    /// each tracked participant from its session's counters (`muted`: whose microphone
    /// is off, by itself or by the chair). A participant's first tick only notes its
    /// counters. Returns each sample taken, with who it is.
    pub fn tick(
        &mut self,
        now: std::time::Instant,
        wall: Instant,
        peers: &[PeerStats],
        muted: &HashSet<String>,
    ) -> Vec<(Tracked, LinkSample)> {
        let mut taken = Vec::new();
        for p in peers {
            let Some(who) = self.tracked.get(&p.participant) else {
                continue;
            };
            let now_counters = Counters {
                at: now,
                bytes_in: p.bytes_in,
                bytes_out: p.bytes_out,
                audio_in: p.audio_rtp_in,
            };
            let Some(before) = self.last.insert(p.participant.clone(), now_counters) else {
                continue;
            };
            let secs = now.saturating_duration_since(before.at).as_secs_f64();
            let sample = LinkSample {
                at: wall,
                down_kbps: kbps(p.bytes_out.saturating_sub(before.bytes_out), secs),
                up_kbps: kbps(p.bytes_in.saturating_sub(before.bytes_in), secs),
                loss_down: p.loss_down,
                loss_up: p.loss_up,
                rtt_ms: p
                    .rtt_ms
                    .map(|r| r.round().clamp(0.0, f64::from(u32::MAX)) as u32),
                jitter_ms: p
                    .jitter_up_ms
                    .map(|j| j.round().clamp(0.0, f64::from(u32::MAX)) as u32),
                height: p
                    .forwarding
                    .iter()
                    .filter_map(|f| f.height)
                    .max()
                    .unwrap_or(0),
                audio_only: p.audio_only,
                muted: muted.contains(&p.participant),
                heard: p.audio_rtp_in > before.audio_in,
                connected: p.connected,
                uplink: Grade::parse(p.uplink),
            };
            let chunk = self
                .open
                .entry(p.participant.clone())
                .or_insert_with(|| LinkChunk {
                    attendance_id: who.attendance_id,
                    meeting_id: who.meeting_id,
                    site_id: who.site_id,
                    step_s: self.step_s,
                    samples: Vec::with_capacity(self.per_chunk),
                });
            chunk.samples.push(sample.clone());
            if chunk.samples.len() >= self.per_chunk
                && let Some(full) = self.open.remove(&p.participant)
            {
                self.ready.push(full);
            }
            taken.push((who.clone(), sample));
        }
        taken
    }

    /// The chunks complete since the last call.
    pub fn take_ready(&mut self) -> Vec<LinkChunk> {
        std::mem::take(&mut self.ready)
    }

    /// `meeting_id`'s samples not in the store yet (a report made during the meeting
    /// reaches up to now).
    pub fn pending(&self, meeting_id: i64) -> Vec<LinkChunk> {
        self.ready
            .iter()
            .chain(self.open.values())
            .filter(|c| c.meeting_id == meeting_id)
            .cloned()
            .collect()
    }

    /// Every chunk, complete or not (the bridge is stopping).
    pub fn take_all(&mut self) -> Vec<LinkChunk> {
        let mut all = self.take_ready();
        all.extend(self.open.drain().map(|(_, c)| c));
        all
    }
}

/// The bridge's sampler, shared by the sessions (which track and untrack) and [`run`].
pub struct Links {
    sampler: Mutex<Sampler>,
}

impl Links {
    pub fn new(step: Duration) -> Self {
        Self {
            sampler: Mutex::new(Sampler::new(step)),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Sampler> {
        // Every operation leaves the maps whole: a panic elsewhere does not matter here.
        self.sampler.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn track(&self, participant: &str, who: Tracked) {
        self.lock().track(participant, who);
    }

    pub fn untrack(&self, participant: &str) {
        self.lock().untrack(participant);
    }

    pub fn pending(&self, meeting_id: i64) -> Vec<LinkChunk> {
        self.lock().pending(meeting_id)
    }
}

async fn keep(state: &AppState, chunks: Vec<LinkChunk>) {
    if chunks.is_empty() {
        return;
    }
    if let Err(e) = state.store.put_link_chunks(&chunks).await {
        warn!(rows = chunks.len(), "link samples not kept: {e}");
    }
}

/// One tick: sample, count the sites' figures in the metrics, keep what is complete.
pub async fn sample(state: &AppState) {
    let stats = match state.sfu.stats().await {
        Ok(s) => s,
        Err(e) => {
            warn!("no link samples this time: {e}");
            return;
        }
    };
    let muted = state.registry.muted();
    let step = state.options.history.sample_every.as_secs_f64();
    let (taken, ready) = {
        let mut s = state.links.lock();
        let taken = s.tick(
            std::time::Instant::now(),
            Instant::now(),
            &stats.peers,
            &muted,
        );
        (taken, s.take_ready())
    };
    for (who, sample) in &taken {
        if let Some(site) = &who.site {
            state.metrics.observe_site(site, sample, step);
        }
    }
    keep(state, ready).await;
}

/// Sample for as long as the bridge runs; prune once an hour; keep what is open when it
/// stops.
pub async fn run(state: Arc<AppState>) {
    let opts = state.options.history;
    let mut every = tokio::time::interval(opts.sample_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = every.tick() => sample(&state).await,
            _ = prune.tick(), if opts.keep_days > 0 => {
                let before = Instant(Instant::now().0 - i64::from(opts.keep_days) * 86_400);
                match state.store.prune_link_history(before).await {
                    Ok(0) => {}
                    Ok(n) => info!(rows = n, days = opts.keep_days, "old link samples pruned"),
                    Err(e) => warn!("link samples not pruned: {e}"),
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    let open = state.links.lock().take_all();
    keep(&state, open).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, bytes_in: u64, bytes_out: u64, audio_in: u64) -> PeerStats {
        PeerStats {
            participant: id.into(),
            connected: true,
            bytes_in,
            bytes_out,
            audio_rtp_in: audio_in,
            loss_up: Some(0.02),
            rtt_ms: Some(312.4),
            uplink: "weak",
            ..PeerStats::default()
        }
    }

    fn who(attendance_id: i64) -> Tracked {
        Tracked {
            attendance_id,
            meeting_id: 9,
            site_id: Some(attendance_id * 10),
            site: Some(format!("Xã {attendance_id}")),
        }
    }

    #[test]
    fn rates_come_from_the_counters_difference_and_silence_from_no_audio_packets() {
        let t0 = std::time::Instant::now();
        let mut s = Sampler::new(Duration::from_secs(10));
        s.track("p1", who(1));
        let none = HashSet::new();
        // The first tick only notes where the counters stand.
        assert!(
            s.tick(t0, Instant(1000), &[peer("p1", 5_000, 9_000, 10)], &none)
                .is_empty()
        );
        // 10 s later: 12 500 bytes in (10 kbit/s), 1 000 000 out (800 kbit/s), audio.
        let t1 = t0 + Duration::from_secs(10);
        let got = s.tick(
            t1,
            Instant(1010),
            &[peer("p1", 17_500, 1_009_000, 510)],
            &none,
        );
        assert_eq!(got.len(), 1);
        let x = &got[0].1;
        assert_eq!((x.up_kbps, x.down_kbps), (10, 800));
        assert!(x.heard && x.connected && !x.muted && !x.cut_off());
        assert_eq!((x.rtt_ms, x.uplink), (Some(312), Some(Grade::Weak)));
        // Then nothing from it for 10 s: cut off, unheard; muted it would not be a fault.
        let t2 = t1 + Duration::from_secs(10);
        let muted: HashSet<String> = ["p1".to_owned()].into();
        let got = s.tick(
            t2,
            Instant(1020),
            &[peer("p1", 17_500, 1_500_000, 510)],
            &muted,
        );
        let x = &got[0].1;
        assert!(x.cut_off() && !x.heard && x.muted);
        assert_eq!(x.up_kbps, 0);
        // A single byte is "something came".
        assert_eq!(kbps(1, 10.0), 1);
    }

    #[test]
    fn chunks_are_a_minute_long_and_a_participant_s_last_one_is_kept_when_it_leaves() {
        let t0 = std::time::Instant::now();
        let mut s = Sampler::new(Duration::from_secs(10));
        s.track("p1", who(1));
        s.track("p2", who(2));
        // An untracked session (a WHEP viewer, a guest of an ad-hoc room) is not sampled.
        let mut b = 0;
        for i in 0..=9u64 {
            b += 10_000;
            let peers = [
                peer("p1", b, b, i),
                peer("p2", b, b, i),
                peer("p3", b, b, i),
            ];
            s.tick(
                t0 + Duration::from_secs(10 * i),
                Instant(10 * i as i64),
                &peers,
                &HashSet::new(),
            );
        }
        // Nine samples each: one full chunk of six each so far; a report sees all nine.
        let pending = s.pending(9);
        assert_eq!(pending.iter().map(|c| c.samples.len()).sum::<usize>(), 18);
        assert!(s.pending(8).is_empty());
        let ready = s.take_ready();
        assert_eq!(ready.len(), 2);
        assert!(ready.iter().all(|c| c.samples.len() == 6 && c.step_s == 10));
        s.untrack("p2");
        let ready = s.take_ready();
        assert_eq!(ready.len(), 1);
        assert_eq!((ready[0].attendance_id, ready[0].samples.len()), (2, 3));
        assert_eq!(ready[0].site_id, Some(20));
        // Stopping: p1's open chunk too.
        let all = s.take_all();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].attendance_id, 1);
    }
}
