//! Keyframe request throttling.
//!
//! Every subscriber that loses a packet or joins late may ask for a keyframe; a meeting
//! of 300 sites must not turn that into 300 PLIs a second at a 3G publisher, whose
//! uplink would then carry nothing but keyframes. One request per interval reaches the
//! publisher; the rest are absorbed because the keyframe they want is already coming.

use std::time::{Duration, Instant};

/// Default spacing of keyframe requests to one publisher track.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    interval: Duration,
    last: Option<Instant>,
}

impl KeyframeThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// True if a request may be sent now; records it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

impl Default for KeyframeThrottle {
    fn default() -> Self {
        Self::new(KEYFRAME_REQUEST_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        assert!(t.allow(t0));
        assert!(!t.allow(t0 + Duration::from_millis(10)));
        assert!(!t.allow(t0 + Duration::from_millis(499)));
        assert!(t.allow(t0 + Duration::from_millis(500)));
        // 300 subscribers asking within one second produce two requests.
        let mut t = KeyframeThrottle::default();
        let sent = (0..300)
            .filter(|i| t.allow(t0 + Duration::from_micros(i * 3300)))
            .count();
        assert_eq!(sent, 2);
    }
}
