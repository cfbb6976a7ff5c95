//! Forwarding delay, shared by every subscriber of a run: fixed buckets, atomics, no
//! allocation per sample. 1 µs resolution to 2 ms (where an SFU's own delay lives),
//! 100 µs to 100 ms, 10 ms beyond.

use std::sync::atomic::{AtomicU64, Ordering};

const FINE: u64 = 2_000;
const MID: u64 = 100_000;
const COARSE: u64 = 10_000_000;
const MID_STEP: u64 = 100;
const COARSE_STEP: u64 = 10_000;
const BUCKETS: usize = (FINE + (MID - FINE) / MID_STEP + (COARSE - MID) / COARSE_STEP) as usize + 1;

pub struct Histogram {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

fn bucket(us: u64) -> usize {
    let b = if us < FINE {
        us
    } else if us < MID {
        FINE + (us - FINE) / MID_STEP
    } else if us < COARSE {
        FINE + (MID - FINE) / MID_STEP + (us - MID) / COARSE_STEP
    } else {
        BUCKETS as u64 - 1
    };
    b as usize
}

/// The lower edge of a bucket, in µs.
fn value(b: usize) -> u64 {
    let b = b as u64;
    let mid_start = FINE;
    let coarse_start = FINE + (MID - FINE) / MID_STEP;
    if b < mid_start {
        b
    } else if b < coarse_start {
        FINE + (b - mid_start) * MID_STEP
    } else {
        MID + (b - coarse_start) * COARSE_STEP
    }
}

impl Histogram {
    pub fn record(&self, us: u64) {
        if let Some(b) = self.buckets.get(bucket(us)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The value below which `q` (0..=1) of the samples lie; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(value(i));
            }
        }
        Some(self.max())
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn clear(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.max.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_values_agree_at_every_scale() {
        for us in [
            0, 1, 57, 1999, 2000, 2099, 2100, 55_555, 99_999, 100_000, 3_456_789,
        ] {
            let v = value(bucket(us));
            assert!(v <= us, "{us} -> {v}");
            let step = if us < FINE {
                1
            } else if us < MID {
                MID_STEP
            } else {
                COARSE_STEP
            };
            assert!(us - v < step, "{us} -> {v}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=100 {
            h.record(us);
        }
        h.record(50_000);
        assert_eq!(h.quantile(0.5), Some(51));
        assert_eq!(h.quantile(0.99), Some(100));
        assert_eq!(h.quantile(1.0), Some(50_000));
        assert_eq!(h.max(), 50_000);
        h.clear();
        assert_eq!(h.count(), 0);
    }
}
