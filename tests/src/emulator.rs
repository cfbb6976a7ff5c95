//! The link model behind the emulator, free of IO: one direction of a link as a rate
//! limit with a bounded queue, delay, jitter, random and burst (Gilbert-Elliott) loss, and
//! scripted changes over time. The relay in `link.rs` asks [`Channel::offer`] what to do
//! with each datagram; tests drive the same code with simulated time.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

/// Gilbert-Elliott burst loss: a good and a bad state, each with its own loss rate.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GilbertElliott {
    /// Per packet, probability of going from good to bad.
    pub p_good_to_bad: f64,
    /// Per packet, probability of going from bad back to good (1 / mean burst length).
    pub p_bad_to_good: f64,
    /// Loss probability while bad.
    #[serde(default = "one")]
    pub loss_bad: f64,
    /// Loss probability while good.
    #[serde(default)]
    pub loss_good: f64,
}

fn one() -> f64 {
    1.0
}

impl GilbertElliott {
    /// Long-run loss rate.
    pub fn mean_loss(&self) -> f64 {
        let bad = self.p_good_to_bad / (self.p_good_to_bad + self.p_bad_to_good);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// One direction's conditions.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkParams {
    /// Bottleneck rate, kbit/s; 0 = unlimited.
    #[serde(default)]
    pub rate_kbps: u32,
    /// Packets that would wait longer than this in the bottleneck queue are dropped
    /// (drop-tail), as a real modem buffer overflows.
    #[serde(default = "default_queue_ms")]
    pub queue_ms: u32,
    /// One-way propagation delay.
    #[serde(default)]
    pub delay_ms: u32,
    /// Extra delay, uniform in 0..jitter_ms (order kept, as on a real path).
    #[serde(default)]
    pub jitter_ms: u32,
    /// Independent random loss.
    #[serde(default)]
    pub loss: f64,
    /// Burst loss, on top of `loss`.
    #[serde(default)]
    pub burst: Option<GilbertElliott>,
    /// Drop everything (a cut cable, a dead 3G cell).
    #[serde(default)]
    pub blackout: bool,
}

fn default_queue_ms() -> u32 {
    500
}

impl Default for LinkParams {
    fn default() -> Self {
        Self {
            rate_kbps: 0,
            queue_ms: default_queue_ms(),
            delay_ms: 0,
            jitter_ms: 0,
            loss: 0.0,
            burst: None,
            blackout: false,
        }
    }
}

/// Conditions that change at scripted offsets from the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// `(from, params)`, sorted by `from`; the first starts at zero.
    pub steps: Vec<(Duration, LinkParams)>,
}

impl Schedule {
    pub fn constant(p: LinkParams) -> Self {
        Self {
            steps: vec![(Duration::ZERO, p)],
        }
    }

    pub fn at(&self, elapsed: Duration) -> &LinkParams {
        self.steps
            .iter()
            .rev()
            .find(|(from, _)| *from <= elapsed)
            .or(self.steps.first())
            .map(|(_, p)| p)
            .unwrap_or(&DEFAULT)
    }
}

static DEFAULT: LinkParams = LinkParams {
    rate_kbps: 0,
    queue_ms: 500,
    delay_ms: 0,
    jitter_ms: 0,
    loss: 0.0,
    burst: None,
    blackout: false,
};

/// Why a packet did not make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    Random,
    Burst,
    QueueFull,
    Blackout,
}

/// One direction of the link. Time is "elapsed since the link started".
#[derive(Debug)]
pub struct Channel {
    schedule: Schedule,
    rng: StdRng,
    bad: bool,
    /// When the bottleneck finishes sending what is queued.
    busy_until: Duration,
    /// Delivery time of the last packet (keeps order under jitter).
    last_delivery: Duration,
}

impl Channel {
    pub fn new(schedule: Schedule, seed: u64) -> Self {
        Self {
            schedule,
            rng: StdRng::seed_from_u64(seed),
            bad: false,
            busy_until: Duration::ZERO,
            last_delivery: Duration::ZERO,
        }
    }

    pub fn params(&self, now: Duration) -> LinkParams {
        *self.schedule.at(now)
    }

    /// A datagram of `bytes` arrives at `now`: when is it delivered, or why is it lost?
    pub fn offer(&mut self, now: Duration, bytes: usize) -> Result<Duration, Drop> {
        let p = *self.schedule.at(now);
        if p.blackout {
            return Err(Drop::Blackout);
        }
        if let Some(ge) = p.burst {
            let flip = if self.bad {
                ge.p_bad_to_good
            } else {
                ge.p_good_to_bad
            };
            if self.rng.random::<f64>() < flip {
                self.bad = !self.bad;
            }
            let l = if self.bad { ge.loss_bad } else { ge.loss_good };
            if self.rng.random::<f64>() < l {
                return Err(Drop::Burst);
            }
        }
        if p.loss > 0.0 && self.rng.random::<f64>() < p.loss {
            return Err(Drop::Random);
        }
        let leave_queue = if p.rate_kbps == 0 {
            now
        } else {
            let start = self.busy_until.max(now);
            if start - now > Duration::from_millis(p.queue_ms.into()) {
                return Err(Drop::QueueFull);
            }
            let tx =
                Duration::from_secs_f64((bytes as f64 * 8.0) / (f64::from(p.rate_kbps) * 1000.0));
            self.busy_until = start + tx;
            self.busy_until
        };
        let jitter = if p.jitter_ms > 0 {
            Duration::from_micros(self.rng.random_range(0..u64::from(p.jitter_ms) * 1000))
        } else {
            Duration::ZERO
        };
        let at = (leave_queue + Duration::from_millis(p.delay_ms.into()) + jitter)
            .max(self.last_delivery);
        self.last_delivery = at;
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Offer `n` packets of `bytes` every `every`; returns (delivered, drops, last delivery).
    fn run(
        ch: &mut Channel,
        n: usize,
        bytes: usize,
        every: Duration,
    ) -> (Vec<Duration>, Vec<Drop>) {
        let (mut ok, mut lost) = (Vec::new(), Vec::new());
        for i in 0..n {
            match ch.offer(every * i as u32, bytes) {
                Ok(t) => ok.push(t),
                Err(d) => lost.push(d),
            }
        }
        (ok, lost)
    }

    #[test]
    fn rate_limit_caps_throughput_and_the_queue_overflows() {
        // 1 Mbit/s offered into 384 kbit/s for 10 s.
        let p = LinkParams {
            rate_kbps: 384,
            queue_ms: 300,
            ..Default::default()
        };
        let mut ch = Channel::new(Schedule::constant(p), 1);
        let (ok, lost) = run(&mut ch, 1000, 1250, 10 * MS);
        let delivered_bits = ok.len() as f64 * 1250.0 * 8.0;
        let span = ok.last().copied().unwrap_or_default().as_secs_f64();
        let kbps = delivered_bits / span / 1000.0;
        assert!(
            (370.0..=390.0).contains(&kbps),
            "{kbps} kbit/s through a 384 kbit/s link"
        );
        assert!(
            lost.iter().all(|d| *d == Drop::QueueFull) && lost.len() > 500,
            "{}",
            lost.len()
        );
        // Nobody waits longer than the queue bound plus one packet's transmission.
        for (i, t) in ok.iter().enumerate().take(50) {
            let _ = i;
            assert!(*t <= Duration::from_secs(11));
        }
    }

    #[test]
    fn delay_and_jitter_keep_order() {
        let p = LinkParams {
            delay_ms: 150,
            jitter_ms: 40,
            ..Default::default()
        };
        let mut ch = Channel::new(Schedule::constant(p), 2);
        let (ok, lost) = run(&mut ch, 500, 200, 20 * MS);
        assert!(lost.is_empty());
        assert!(ok.windows(2).all(|w| w[0] <= w[1]), "in order");
        for (i, t) in ok.iter().enumerate() {
            let sent = 20 * MS * i as u32;
            let d = *t - sent;
            assert!(d >= 150 * MS && d < 230 * MS, "packet {i}: {d:?}");
        }
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts_at_its_mean_rate() {
        let ge = GilbertElliott {
            p_good_to_bad: 0.01,
            p_bad_to_good: 0.3,
            loss_bad: 0.9,
            loss_good: 0.0,
        };
        let mut ch = Channel::new(
            Schedule::constant(LinkParams {
                burst: Some(ge),
                ..Default::default()
            }),
            3,
        );
        let n = 200_000;
        let mut lost_flags = Vec::with_capacity(n);
        for i in 0..n {
            lost_flags.push(ch.offer(MS * i as u32, 100).is_err());
        }
        let rate = lost_flags.iter().filter(|l| **l).count() as f64 / n as f64;
        assert!(
            (rate - ge.mean_loss()).abs() < 0.005,
            "{rate} vs {}",
            ge.mean_loss()
        );
        // Bursty: a loss is followed by another far more often than the mean rate.
        let after_loss = lost_flags.windows(2).filter(|w| w[0]).count() as f64;
        let both = lost_flags.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        assert!(
            both / after_loss > 0.5,
            "P(loss | loss) = {}",
            both / after_loss
        );
    }

    #[test]
    fn scripted_steps_switch_conditions_on_time() {
        let fast = LinkParams {
            rate_kbps: 2000,
            ..Default::default()
        };
        let slow = LinkParams {
            rate_kbps: 300,
            ..Default::default()
        };
        let sched = Schedule {
            steps: vec![
                (Duration::ZERO, fast),
                (Duration::from_secs(10), slow),
                (Duration::from_secs(20), fast),
            ],
        };
        assert_eq!(sched.at(Duration::from_secs(9)).rate_kbps, 2000);
        assert_eq!(sched.at(Duration::from_secs(10)).rate_kbps, 300);
        assert_eq!(sched.at(Duration::from_secs(25)).rate_kbps, 2000);
        let black = Schedule {
            steps: vec![
                (Duration::ZERO, LinkParams::default()),
                (
                    Duration::from_secs(1),
                    LinkParams {
                        blackout: true,
                        ..Default::default()
                    },
                ),
            ],
        };
        let mut ch = Channel::new(black, 4);
        assert!(ch.offer(Duration::from_millis(999), 100).is_ok());
        assert_eq!(ch.offer(Duration::from_secs(2), 100), Err(Drop::Blackout));
    }

    #[test]
    fn same_seed_same_fate() {
        let p = LinkParams {
            loss: 0.1,
            jitter_ms: 30,
            ..Default::default()
        };
        let a = run(&mut Channel::new(Schedule::constant(p), 9), 1000, 100, MS);
        let b = run(&mut Channel::new(Schedule::constant(p), 9), 1000, 100, MS);
        assert_eq!(a, b);
    }
}
