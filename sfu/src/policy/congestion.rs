//! Is a subscriber's path congested right now? Decides whether str0m's raw bandwidth
//! estimate, which sees a capacity drop within a few hundred milliseconds, is trusted over
//! the 3 s average str0m reports as its event.
//!
//! The raw estimate also dips on noise (a busy receiver's feedback timing, a loss burst on
//! a 3G link); acting on every dip would flap layers. A real drop into a modem's queue
//! shows on the path itself: the round trip (from TWCC feedback, so it includes the queue)
//! rises well above its recent floor, or packets are lost at a rate no random-loss 3G
//! link in our profiles has. Only then is the raw estimate used. Pure: samples and time
//! are passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Queueing delay above the path's floor that means the queue is filling.
pub const QUEUE_DELAY: Duration = Duration::from_millis(150);
/// TWCC-reported loss over the last second that means congestion, not random loss.
pub const LOSS: f32 = 0.10;
/// How long the round-trip floor is remembered (a route change resets it after this).
const FLOOR_WINDOW: Duration = Duration::from_secs(10);
/// A path stays "congested" this long after its last sign: on a link at the edge of its
/// capacity the signs come and go, and each gap would otherwise let the averaged (higher)
/// estimate bring the video back into a queue that is still full.
pub const HOLD: Duration = Duration::from_secs(4);

#[derive(Debug, Default)]
pub struct CongestionDetector {
    /// (when, rtt) with rtt ascending from front to back: a monotonic queue whose front is
    /// the minimum over the window.
    floor: VecDeque<(Instant, Duration)>,
    congested: bool,
    /// The last sample showed a queue (no hold): the sender should drain it.
    queueing: bool,
    last_sign: Option<Instant>,
}

impl CongestionDetector {
    /// One sample of str0m's peer stats. Returns whether the path is congested now.
    pub fn sample(&mut self, now: Instant, rtt: Option<Duration>, loss: Option<f32>) -> bool {
        if let Some(rtt) = rtt {
            while self.floor.back().is_some_and(|(_, r)| *r >= rtt) {
                self.floor.pop_back();
            }
            self.floor.push_back((now, rtt));
            while self
                .floor
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > FLOOR_WINDOW)
            {
                self.floor.pop_front();
            }
        }
        let queueing = match (rtt, self.floor.front()) {
            (Some(r), Some((_, min))) => r.saturating_sub(*min) >= QUEUE_DELAY,
            _ => false,
        };
        if rtt.is_some() {
            self.queueing = queueing;
        }
        if queueing || loss.is_some_and(|l| l >= LOSS) {
            self.last_sign = Some(now);
        }
        self.congested = self
            .last_sign
            .is_some_and(|t| now.saturating_duration_since(t) < HOLD);
        self.congested
    }

    /// The lowest round trip of the last ten seconds: the path's own, without a queue.
    pub fn floor_rtt(&self) -> Option<Duration> {
        self.floor.front().map(|(_, r)| *r)
    }

    pub fn congested(&self) -> bool {
        self.congested
    }

    /// A queue has built up on the path right now (the round trip is still
    /// [`QUEUE_DELAY`] above its floor). It drains only while less than the link's rate
    /// is sent, which sending at the estimate does not do.
    pub fn queueing(&self) -> bool {
        self.queueing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_filling_queue_or_heavy_loss_is_congestion_noise_is_not() {
        let t0 = Instant::now();
        let mut d = CongestionDetector::default();
        // A 3G path: 300 ms round trip, ±30 ms, 3 % loss.
        for i in 0..50u64 {
            let rtt = ms(300 + (i * 7) % 30);
            assert!(
                !d.sample(t0 + ms(200 * i), Some(rtt), Some(0.03)),
                "sample {i}"
            );
        }
        // The capacity drops: the queue fills.
        assert!(d.sample(t0 + ms(10_200), Some(ms(550)), Some(0.03)));
        assert!(d.queueing());
        // Heavy loss alone.
        assert!(d.sample(t0 + ms(10_400), Some(ms(310)), Some(0.2)));
        assert!(!d.queueing(), "loss is not a queue");
        // Held for a while after the last sign, then clear.
        assert!(d.sample(t0 + ms(10_600), Some(ms(310)), Some(0.02)));
        assert!(!d.sample(t0 + ms(14_600), Some(ms(310)), Some(0.02)));
    }

    #[test]
    fn the_floor_is_forgotten_after_its_window() {
        let t0 = Instant::now();
        let mut d = CongestionDetector::default();
        d.sample(t0, Some(ms(20)), None);
        // The route changed to a longer one: congested at first, then the new normal.
        assert!(d.sample(t0 + ms(1000), Some(ms(300)), None));
        for i in 0..80u64 {
            d.sample(t0 + ms(2000 + 200 * i), Some(ms(300)), None);
        }
        assert!(!d.congested());
    }
}
