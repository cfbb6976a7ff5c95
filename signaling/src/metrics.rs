//! Prometheus metrics at `/metrics` (OpenMetrics text, `prometheus-client`), for the IT
//! officer's Grafana (`deploy/grafana-dashboard.json`).
//!
//! Two kinds: counters the code bumps as things happen (joins by kind, refusals by
//! reason, signaling errors by code, chair actions), and a sampler that every 10 s reads
//! the media server's sessions, the meetings, the store's latency and the process's own
//! CPU and memory into gauges and histograms. Labels are bounded: error codes, refusal
//! reasons, participant kinds, districts (the sites tree), never a participant id.
//!
//! Who may read it: with `[http] metrics_token` set, a scraper that sends it as a bearer
//! token; without one, only clients on the bridge's own machine (loopback).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

type Labels = Vec<(&'static str, String)>;

/// The chair's actions as the protocol names them (`chair_actions`' labels).
const CHAIR_ACTIONS: &[&str] = &[
    "grant_floor",
    "mute_participant",
    "unmute_participant",
    "mute_all",
    "unmute_all",
    "stop_camera",
    "remove",
    "lock",
    "self_unmute",
    "name_secretary",
    "lower_hand",
    "roll_call",
    "extend",
    "end_meeting",
];

/// How often the sampler reads the media server and the process.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub struct Metrics {
    registry: Registry,
    pub joins: Family<Labels, Counter>,
    pub joins_refused: Family<Labels, Counter>,
    pub signaling_errors: Family<Labels, Counter>,
    pub chair_actions: Family<Labels, Counter>,
    pub websockets: Gauge,
    meetings_open: Gauge,
    participants: Family<Labels, Gauge>,
    audio_only: Gauge,
    congested: Gauge,
    estimate_kbps: Gauge<f64, AtomicU64>,
    loss_up: Histogram,
    loss_down: Histogram,
    rtt: Histogram,
    rtp_in: Counter,
    rtp_forwarded: Counter,
    nacks_sent: Counter,
    nacks_received: Counter,
    keyframe_requests: Counter,
    layer_changes: Counter,
    sessions: Counter,
    send_drops: Counter,
    store_latency: Histogram,
    cpu_seconds: Counter<f64, AtomicU64>,
    resident_bytes: Gauge,
    recordings: Gauge,
    /// Per site of the sites tree (a bounded set; guests without a site are not
    /// labelled): loss of what it sends and receives at the last sample, and the seconds
    /// it spent cut off, not heard with its microphone open, or on audio only.
    site_loss_up: Family<Labels, Gauge<f64, AtomicU64>>,
    site_loss_down: Family<Labels, Gauge<f64, AtomicU64>>,
    site_seconds: Family<Labels, Counter<f64, AtomicU64>>,
    /// The media server's totals at the last sample: counters grow by the difference.
    last: std::sync::Mutex<cauhop_sfu::Totals>,
    last_drops: std::sync::Mutex<u64>,
    last_cpu: std::sync::Mutex<f64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn fraction_buckets() -> Histogram {
    Histogram::new([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5])
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("cauhop"),
            joins: Family::default(),
            joins_refused: Family::default(),
            signaling_errors: Family::default(),
            chair_actions: Family::default(),
            websockets: Gauge::default(),
            meetings_open: Gauge::default(),
            participants: Family::default(),
            audio_only: Gauge::default(),
            congested: Gauge::default(),
            estimate_kbps: Gauge::default(),
            loss_up: fraction_buckets(),
            loss_down: fraction_buckets(),
            rtt: Histogram::new(exponential_buckets(0.01, 2.0, 9)),
            rtp_in: Counter::default(),
            rtp_forwarded: Counter::default(),
            nacks_sent: Counter::default(),
            nacks_received: Counter::default(),
            keyframe_requests: Counter::default(),
            layer_changes: Counter::default(),
            sessions: Counter::default(),
            send_drops: Counter::default(),
            store_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 12)),
            cpu_seconds: Counter::default(),
            resident_bytes: Gauge::default(),
            recordings: Gauge::default(),
            site_loss_up: Family::default(),
            site_loss_down: Family::default(),
            site_seconds: Family::default(),
            last: Default::default(),
            last_drops: Default::default(),
            last_cpu: Default::default(),
        };
        let r = &mut m.registry;
        r.register(
            "joins",
            "Participants admitted, by kind (browser, kiosk, agent, whip, whep)",
            m.joins.clone(),
        );
        r.register(
            "joins_refused",
            "Joins refused, by reason (the protocol's error code)",
            m.joins_refused.clone(),
        );
        r.register(
            "signaling_errors",
            "Error replies to clients, by code",
            m.signaling_errors.clone(),
        );
        r.register(
            "chair_actions",
            "The chair's actions, by type",
            m.chair_actions.clone(),
        );
        r.register(
            "websockets",
            "WebSocket connections open",
            m.websockets.clone(),
        );
        r.register(
            "meetings_open",
            "Meetings with anyone in them",
            m.meetings_open.clone(),
        );
        r.register(
            "participants",
            "Participants connected, by district",
            m.participants.clone(),
        );
        r.register(
            "subscribers_audio_only",
            "Sessions getting audio only (their link cannot carry video)",
            m.audio_only.clone(),
        );
        r.register(
            "subscribers_congested",
            "Sessions whose path shows congestion",
            m.congested.clone(),
        );
        r.register(
            "estimates_kbps",
            "Bandwidth estimates of all sessions together (kbit/s)",
            m.estimate_kbps.clone(),
        );
        r.register(
            "loss_up_ratio",
            "Each session's uplink loss at each sample",
            m.loss_up.clone(),
        );
        r.register(
            "loss_down_ratio",
            "Each session's downlink loss at each sample",
            m.loss_down.clone(),
        );
        r.register(
            "rtt_seconds",
            "Each session's round trip at each sample",
            m.rtt.clone(),
        );
        r.register(
            "rtp_received",
            "RTP packets received from publishers",
            m.rtp_in.clone(),
        );
        r.register(
            "rtp_forwarded",
            "RTP packets forwarded to subscribers",
            m.rtp_forwarded.clone(),
        );
        r.register(
            "nacks_sent",
            "NACKs the bridge sent to publishers",
            m.nacks_sent.clone(),
        );
        r.register(
            "nacks_received",
            "NACKs subscribers sent the bridge",
            m.nacks_received.clone(),
        );
        r.register(
            "keyframe_requests",
            "Keyframe requests (PLI/FIR) subscribers sent",
            m.keyframe_requests.clone(),
        );
        r.register(
            "layer_changes",
            "Simulcast layer switches of subscribers (allocator decisions)",
            m.layer_changes.clone(),
        );
        r.register(
            "media_sessions",
            "Media sessions opened",
            m.sessions.clone(),
        );
        r.register(
            "send_drops",
            "Datagrams dropped because the socket's buffer was full",
            m.send_drops.clone(),
        );
        r.register(
            "store_latency_seconds",
            "A probe query's time in the store",
            m.store_latency.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "CPU time the bridge used",
            m.cpu_seconds.clone(),
        );
        r.register(
            "process_resident_bytes",
            "Memory the bridge holds (RSS)",
            m.resident_bytes.clone(),
        );
        r.register(
            "recordings",
            "Meetings being recorded",
            m.recordings.clone(),
        );
        r.register(
            "site_loss_up_ratio",
            "Loss of what a site sends, at its last sample (sites of the tree)",
            m.site_loss_up.clone(),
        );
        r.register(
            "site_loss_down_ratio",
            "Loss of what a site receives, as it reports it, at its last sample",
            m.site_loss_down.clone(),
        );
        r.register(
            "site_link_seconds",
            "Seconds a site spent cut off, unheard with its microphone open, or on audio only",
            m.site_seconds.clone(),
        );
        // Counters start at zero for every label they can take that is known up front:
        // a rate() over a series that appears only at its first event misses that event.
        for kind in ["link", "room_device", "ad_hoc", "whip", "whep"] {
            m.joins
                .get_or_create(&vec![("kind", kind.to_owned())])
                .inc_by(0);
        }
        for action in CHAIR_ACTIONS {
            m.chair_actions
                .get_or_create(&vec![("action", (*action).to_owned())])
                .inc_by(0);
        }
        m
    }

    /// One site's link sample, `step` seconds long (`link_history.rs`).
    pub(crate) fn observe_site(
        &self,
        site: &str,
        s: &cauhop_store::link_history::LinkSample,
        step: f64,
    ) {
        let label = vec![("site", site.to_owned())];
        if let Some(l) = s.loss_up {
            self.site_loss_up.get_or_create(&label).set(f64::from(l));
        }
        if let Some(l) = s.loss_down {
            self.site_loss_down.get_or_create(&label).set(f64::from(l));
        }
        let cut_off = s.cut_off();
        for (state, on) in [
            ("cut_off", cut_off),
            ("unheard", !cut_off && !s.muted && !s.heard),
            ("audio_only", !cut_off && s.audio_only),
        ] {
            let c = self.site_seconds.get_or_create(&vec![
                ("site", site.to_owned()),
                ("state", state.to_owned()),
            ]);
            if on {
                c.inc_by(step);
            }
        }
    }

    /// Count one occurrence in `family` with a single label.
    pub fn inc(family: &Family<Labels, Counter>, key: &'static str, value: &str) {
        family.get_or_create(&vec![(key, value.to_owned())]).inc();
    }

    /// The text a scraper gets.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// One sample of the media server, the meetings, the store and the process.
    pub async fn sample(&self, state: &AppState) {
        if let Ok(stats) = state.sfu.stats().await {
            let (mut audio_only, mut congested, mut estimate) = (0i64, 0i64, 0f64);
            for p in &stats.peers {
                audio_only += i64::from(p.audio_only);
                congested += i64::from(p.congested);
                estimate += p.bwe_kbps.unwrap_or(0) as f64;
                if let Some(l) = p.loss_up {
                    self.loss_up.observe(f64::from(l));
                }
                if let Some(l) = p.loss_down {
                    self.loss_down.observe(f64::from(l));
                }
                if let Some(r) = p.rtt_ms {
                    self.rtt.observe(r / 1000.0);
                }
            }
            self.audio_only.set(audio_only);
            self.congested.set(congested);
            self.estimate_kbps.set(estimate);
            let t = stats.totals;
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let grow = |c: &Counter, now: u64, before: u64| {
                c.inc_by(now.saturating_sub(before));
            };
            grow(&self.rtp_in, t.rtp_in, last.rtp_in);
            grow(&self.rtp_forwarded, t.rtp_forwarded, last.rtp_forwarded);
            grow(&self.nacks_sent, t.nacks_sent, last.nacks_sent);
            grow(&self.nacks_received, t.nacks_received, last.nacks_received);
            grow(
                &self.keyframe_requests,
                t.keyframe_requests_received,
                last.keyframe_requests_received,
            );
            grow(&self.layer_changes, t.layer_changes, last.layer_changes);
            grow(&self.sessions, t.sessions, last.sessions);
            *last = t;
            let mut drops = self.last_drops.lock().unwrap_or_else(|e| e.into_inner());
            self.send_drops
                .inc_by(stats.send_drops.saturating_sub(*drops));
            *drops = stats.send_drops;
        }
        let by_district = state.registry.districts();
        self.meetings_open
            .set(i64::try_from(state.registry.meetings()).unwrap_or(i64::MAX));
        self.participants.clear();
        for (district, n) in by_district {
            let name = if district.is_empty() {
                "—".to_owned()
            } else {
                district
            };
            self.participants
                .get_or_create(&vec![("district", name)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.recordings
            .set(i64::try_from(state.recorders.count()).unwrap_or(i64::MAX));
        let t0 = Instant::now();
        if state.store.count_people().await.is_ok() {
            self.store_latency.observe(t0.elapsed().as_secs_f64());
        }
        if let Some((cpu, rss)) = process_usage() {
            let mut last = self.last_cpu.lock().unwrap_or_else(|e| e.into_inner());
            if cpu > *last {
                self.cpu_seconds.inc_by(cpu - *last);
                *last = cpu;
            }
            self.resident_bytes
                .set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
    }
}

/// CPU seconds and resident bytes of this process (Linux `/proc`; `None` elsewhere).
fn process_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) closing ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 after ')'.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Linux's clock tick and page size on every platform the bridge is packaged for.
    Some((ticks / 100.0, pages * 4096))
}

/// Sample every [`SAMPLE_EVERY`] for as long as the bridge runs.
pub async fn run(state: Arc<AppState>) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = every.tick() => state.metrics.sample(&state).await,
            _ = shutdown.changed() => return,
        }
    }
}
