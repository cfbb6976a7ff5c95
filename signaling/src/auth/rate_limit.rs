//! Token buckets per key (a client address, a username), with time passed in: login and
//! join attempts.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    burst: f64,
    per_sec: f64,
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `burst` attempts at once, refilled at `per_minute`.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst),
            per_sec: f64::from(per_minute) / 60.0,
            buckets: HashMap::new(),
        }
    }

    /// `burst` at once, refilled at `per_hour` (for things a device does a few times an
    /// hour, such as link checks).
    pub fn per_hour(burst: u32, per_hour: u32) -> Self {
        Self {
            burst: f64::from(burst),
            per_sec: f64::from(per_hour) / 3600.0,
            buckets: HashMap::new(),
        }
    }

    /// Take one attempt for `key`, or say how long to wait.
    pub fn check(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() > 100_000 {
            // Bound memory under a spray of addresses: full buckets carry no information.
            let (burst, rate) = (self.burst, self.per_sec);
            self.buckets
                .retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = self.buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_address() {
        let mut r: RateLimiter = RateLimiter::new(3, 60);
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(r.check(a, t0).is_ok());
        }
        let wait = r.check(a, t0).expect_err("limited");
        assert!(wait <= Duration::from_secs(1));
        assert!(r.check(b, t0).is_ok(), "other address unaffected");
        assert!(r.check(a, t0 + Duration::from_secs(1)).is_ok(), "refilled");
    }
}
