//! Jittered exponential backoff: a commune's 3G drop must not turn 300 rooms into a
//! reconnect storm against the bridge, and a wrong key must not hammer it.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The wait before the next attempt. `jitter` in `[0, 1)` (from the caller's RNG, so
    /// tests are exact) spreads it over 50-150 % of the nominal delay.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let nominal = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
    }

    /// After a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let waits: Vec<u64> = (0..8).map(|_| b.next(0.5).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.next(0.5), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn waits_stay_within_half_and_one_and_a_half_of_nominal(jitters in proptest::collection::vec(0.0f64..1.0, 1..40)) {
            let max = Duration::from_secs(60);
            let mut b = Backoff::new(Duration::from_millis(500), max);
            let mut prev_nominal = Duration::ZERO;
            for (i, j) in jitters.iter().enumerate() {
                let w = b.next(*j);
                let nominal = Duration::from_millis(500).saturating_mul(1 << i.min(16)).min(max);
                prop_assert!(w >= nominal / 2 && w <= nominal.mul_f64(1.5));
                prop_assert!(nominal >= prev_nominal);
                prev_nominal = nominal;
            }
        }
    }
}
