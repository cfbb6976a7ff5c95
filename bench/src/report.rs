//! What a run measured, printed as rows of one table, and the ratio of two rows.

use crate::book::Tally;

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub sfu: String,
    pub scenario: String,
    /// Length of the measured window.
    pub secs: f64,
    pub setup_secs: f64,
    /// Packets and payload bytes the subscribers received in the window.
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    /// CPU seconds of the SFU process in the window.
    pub sfu_cpu_secs: f64,
    /// CPU seconds of the load generator in the window (it shares the machine).
    pub generator_cpu_secs: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: u64,
    /// Audio only (not paced by the SFU): p50, p99, max.
    pub audio_us: (Option<u64>, Option<u64>, u64),
    /// Video only: p50, p99, max.
    pub video_us: (Option<u64>, Option<u64>, u64),
    /// The most m-lines a subscriber's session was offered (0: not counted).
    pub m_lines: u64,
    /// Packets published over the whole run, all streams.
    pub published: u64,
    /// Over the whole run: the subscribers' ledgers, closed against the publishers.
    pub total: Tally,
    pub audio: Tally,
    pub video: Tally,
    pub own: u64,
    pub foreign: u64,
    /// The stream with the most losses (subscriber, publisher/stream) and its tally.
    pub worst: (String, Tally),
    /// Bookkeeping that did not add up; empty in a sound run.
    pub problems: Vec<String>,
}

impl Report {
    pub fn pps(&self) -> f64 {
        self.forwarded_packets as f64 / self.secs.max(1e-9)
    }

    pub fn mbps(&self) -> f64 {
        self.forwarded_bytes as f64 * 8.0 / self.secs.max(1e-9) / 1e6
    }

    /// CPU seconds per second: 1.0 is one core busy.
    pub fn cpu(&self) -> f64 {
        self.sfu_cpu_secs / self.secs.max(1e-9)
    }

    /// Forwarded packets per CPU-second of the SFU: the efficiency figure.
    pub fn pps_per_cpu(&self) -> f64 {
        self.forwarded_packets as f64 / self.sfu_cpu_secs.max(0.01)
    }

    pub fn loss_pct(&self) -> f64 {
        100.0 * self.total.lost as f64 / self.total.expected.max(1) as f64
    }

    pub fn header() -> String {
        format!(
            "| {:<11} | {:<22} | {:>9} | {:>7} | {:>8} | {:>11} | {:>8} | {:>7} | {:>8} | {:>8} | {:>8} | {:>9} |",
            "SFU",
            "scenario",
            "fwd pkt/s",
            "Mbit/s",
            "CPU s/s",
            "pkt/CPU-s",
            "RSS MiB",
            "loss %",
            "p50 µs",
            "p99 µs",
            "max µs",
            "gen CPU",
        ) + "\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    }

    pub fn row(&self) -> String {
        let us = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        format!(
            "| {:<11} | {:<22} | {:>9.0} | {:>7.1} | {:>8.3} | {:>11.0} | {:>8.1} | {:>7.3} | {:>8} | {:>8} | {:>8} | {:>9.2} |",
            self.sfu,
            self.scenario,
            self.pps(),
            self.mbps(),
            self.cpu(),
            self.pps_per_cpu(),
            self.rss_kib as f64 / 1024.0,
            self.loss_pct(),
            us(self.p50_us),
            us(self.p99_us),
            self.max_us,
            self.generator_cpu_secs / self.secs.max(1e-9),
        )
    }

    /// `self` over `other`, figure by figure: how many times better (>1) `self` is
    /// (packets per CPU-second higher; delay and memory lower).
    pub fn ratio_row(&self, other: &Report) -> String {
        let r = |a: f64, b: f64| {
            if b > 0.0 && a > 0.0 {
                format!("{:.2}×", a / b)
            } else {
                "-".into()
            }
        };
        let inv = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if a > 0 => format!("{:.2}×", b as f64 / a as f64),
            _ => "-".into(),
        };
        format!(
            "| {:<11} | {:<22} | {:>9} | {:>7} | {:>8} | {:>11} | {:>8} | {:>7} | {:>8} | {:>8} | {:>8} | {:>9} |",
            format!("{}/{}", short(&self.sfu), short(&other.sfu)),
            "ratio (>1: first better)",
            r(self.pps(), other.pps()),
            r(self.mbps(), other.mbps()),
            r(other.cpu(), self.cpu()),
            r(self.pps_per_cpu(), other.pps_per_cpu()),
            r(other.rss_kib as f64, self.rss_kib as f64),
            "",
            inv(self.p50_us, other.p50_us),
            inv(self.p99_us, other.p99_us),
            inv(Some(self.max_us), Some(other.max_us)),
            "",
        )
    }

    /// The bookkeeping, in one line (and the worst stream when anything was lost).
    pub fn ledger(&self) -> String {
        let worst = if self.worst.1.lost > 0 {
            format!(
                "\n  most lost: {}: {} of {} in {} spans",
                self.worst.0, self.worst.1.lost, self.worst.1.expected, self.worst.1.spans
            )
        } else {
            String::new()
        };
        format!(
            "{} {}: published {} packets; subscribers expected {} (audio {}, video {}), received {}, lost {} ({:.3} %), duplicates {}; own media back {}; setup {:.1} s; audio delay p50 {} / p99 {} / max {} µs; video delay p50 {} / p99 {} / max {} µs; m-lines per subscriber at most {}{}",
            self.sfu,
            self.scenario,
            self.published,
            self.total.expected,
            self.audio.expected,
            self.video.expected,
            self.total.received,
            self.total.lost,
            self.loss_pct(),
            self.total.duplicates,
            self.own,
            self.setup_secs,
            self.audio_us.0.map_or("-".into(), |v| v.to_string()),
            self.audio_us.1.map_or("-".into(), |v| v.to_string()),
            self.audio_us.2,
            self.video_us.0.map_or("-".into(), |v| v.to_string()),
            self.video_us.1.map_or("-".into(), |v| v.to_string()),
            self.video_us.2,
            self.m_lines,
            worst,
        )
    }
}

fn short(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_and_ratios() {
        let a = Report {
            sfu: "cauhop".into(),
            secs: 10.0,
            forwarded_packets: 100_000,
            sfu_cpu_secs: 2.0,
            rss_kib: 10 * 1024,
            p50_us: Some(50),
            p99_us: Some(500),
            max_us: 900,
            ..Report::default()
        };
        let b = Report {
            sfu: "janus 1.1.2".into(),
            sfu_cpu_secs: 6.0,
            rss_kib: 40 * 1024,
            p50_us: Some(100),
            ..a.clone()
        };
        assert_eq!(a.pps(), 10_000.0);
        assert_eq!(a.pps_per_cpu(), 50_000.0);
        assert!((a.cpu() - 0.2).abs() < 1e-9);
        let ratio = a.ratio_row(&b);
        assert!(ratio.starts_with("| cauhop/janus"), "{ratio}");
        // 3× the packets per CPU-second, 4× less memory, half the median delay.
        assert!(ratio.contains("3.00×") && ratio.contains("4.00×") && ratio.contains("2.00×"));
        assert_eq!(Report::header().lines().count(), 2);
    }
}
