//! The bitrate of one incoming stream over the last two seconds, in 100 ms bins.
//!
//! The allocator prices each simulcast layer at what the publisher actually sends on it
//! (a camera in a dark room sends far less than the nominal rate, a screen share spikes),
//! and a layer that sent nothing for two seconds is not offered at all: the publisher's
//! own estimate has turned it off. Two seconds, not one: the keyframes every new
//! subscriber asks for would otherwise price a 150 kbit/s layer at twice that for a moment
//! (measured: a commune put on audio only at the start of a meeting). Pure: time is
//! passed in.

use std::time::{Duration, Instant};

const BINS: usize = 20;
const BIN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct RateMeter {
    bins: [u32; BINS],
    /// Start of the bin `current` counts into.
    bin_start: Option<Instant>,
    current: usize,
    /// The first byte counted: a meter younger than its window divides by its age, or
    /// a layer read half its rate in its first second (and looked affordable).
    first: Option<Instant>,
}

impl Default for RateMeter {
    fn default() -> Self {
        Self {
            bins: [0; BINS],
            bin_start: None,
            current: 0,
            first: None,
        }
    }
}

impl RateMeter {
    fn advance(&mut self, now: Instant) {
        let Some(start) = self.bin_start else {
            self.bin_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        let steps = (elapsed.as_millis() / BIN.as_millis()) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(BINS) {
            self.current = (self.current + 1) % BINS;
            self.bins[self.current] = 0;
        }
        self.bin_start = Some(start + BIN * steps as u32);
    }

    pub fn add(&mut self, now: Instant, bytes: usize) {
        self.first.get_or_insert(now);
        self.advance(now);
        let b = &mut self.bins[self.current];
        *b = b.saturating_add(bytes as u32);
    }

    /// Whether the meter has counted for its whole window since it (re)started: before
    /// that its figure rests on a few frames (a keyframe, a burst) and is a guess.
    pub fn settled(&self, now: Instant) -> bool {
        self.first
            .is_some_and(|f| now.saturating_duration_since(f) >= BIN * BINS as u32)
    }

    /// Bits per second over the last two seconds.
    pub fn bps(&mut self, now: Instant) -> u32 {
        self.advance(now);
        let bytes: u64 = self.bins.iter().map(|b| u64::from(*b)).sum();
        let full = BIN * BINS as u32;
        let age = self
            .first
            .map_or(full, |f| now.saturating_duration_since(f) + BIN);
        let window = age.min(full).as_secs_f64();
        ((bytes * 8) as f64 / window).min(f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_stream_reads_its_rate_and_silence_reads_zero() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 500 kbit/s: 1250-byte packets every 20 ms, for 3 s.
        for i in 0..150u32 {
            m.add(t0 + Duration::from_millis(20) * i, 1250);
        }
        let r = m.bps(t0 + Duration::from_secs(3));
        assert!((450_000..=550_000).contains(&r), "{r}");
        assert_eq!(m.bps(t0 + Duration::from_millis(5100)), 0);
        // And it starts again.
        m.add(t0 + Duration::from_secs(10), 1000);
        assert_eq!(m.bps(t0 + Duration::from_secs(10)), 4000);
    }

    #[test]
    fn a_young_meter_reads_the_rate_not_half_of_it() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 500 kbit/s for 1 s.
        for i in 0..50u32 {
            m.add(t0 + Duration::from_millis(20) * i, 1250);
        }
        let r = m.bps(t0 + Duration::from_secs(1));
        assert!((450_000..=550_000).contains(&r), "{r}");
    }
}
