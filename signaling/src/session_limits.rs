//! What one WebSocket connection may cost the server: how many messages a second it may
//! send, how long it may stay without joining, and how much of the log its errors may
//! take. Pure, with time passed in.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A connection that has not joined by then is closed: an idle socket costs a task.
pub const JOIN_WITHIN: Duration = Duration::from_secs(10);
/// Messages a client may send at once, and per second after that. A page sends a few a
/// second at most (view changes on resize, mute, pings, negotiation).
pub const MESSAGE_BURST: u32 = 60;
pub const MESSAGES_PER_SEC: u32 = 20;
/// Dropped messages after which the connection is closed: a flood, not a burst.
pub const DROPS_TO_CLOSE: u32 = 200;
/// Errors logged at `warn` per connection; the rest are counted and summed up at close.
pub const LOGGED_ERRORS: u32 = 10;
/// Longest text of a client's that an error message repeats.
pub const ECHO_CHARS: usize = 80;

/// A token bucket for one connection's messages.
#[derive(Debug)]
pub struct MessageRate {
    tokens: f64,
    at: Instant,
    dropped: u32,
}

/// What to do with one incoming message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Handle,
    /// Over the rate: drop it (and say so).
    Drop,
    /// A flood: close the connection.
    Close,
}

impl MessageRate {
    pub fn new(now: Instant) -> Self {
        Self {
            tokens: f64::from(MESSAGE_BURST),
            at: now,
            dropped: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> Verdict {
        let refill = now.duration_since(self.at).as_secs_f64() * f64::from(MESSAGES_PER_SEC);
        self.tokens = (self.tokens + refill).min(f64::from(MESSAGE_BURST));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Handle;
        }
        self.dropped += 1;
        if self.dropped >= DROPS_TO_CLOSE {
            Verdict::Close
        } else {
            Verdict::Drop
        }
    }
}

/// How many of a connection's errors reach the log.
#[derive(Debug, Default)]
pub struct LogBudget {
    // Atomic only so the session future stays `Send`; one task uses it.
    seen: AtomicU32,
}

impl LogBudget {
    /// Count one error; true if it should be logged.
    pub fn allow(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        n <= LOGGED_ERRORS
    }

    /// Errors counted but not logged.
    pub fn suppressed(&self) -> u32 {
        self.seen
            .load(Ordering::Relaxed)
            .saturating_sub(LOGGED_ERRORS)
    }
}

/// Longest error message sent or logged for a connection.
pub const MESSAGE_CHARS: usize = 200;

/// A client's text as an error message may repeat it: at most [`ECHO_CHARS`] characters,
/// no control characters (no forged log lines, no megabyte echoed back).
pub fn clip(text: &str) -> String {
    clip_to(text, ECHO_CHARS)
}

/// `text` cut to `max` characters, control characters blanked.
pub fn clip_to(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_a_flood_is_dropped_then_closed() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(t0);
        for _ in 0..MESSAGE_BURST {
            assert_eq!(r.take(t0), Verdict::Handle);
        }
        assert_eq!(r.take(t0), Verdict::Drop);
        // A second later, a second's worth passes again.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..MESSAGES_PER_SEC {
            assert_eq!(r.take(t1), Verdict::Handle);
        }
        let mut last = Verdict::Drop;
        for _ in 0..DROPS_TO_CLOSE {
            last = r.take(t1);
        }
        assert_eq!(last, Verdict::Close);
    }

    #[test]
    fn the_log_takes_the_first_errors_and_counts_the_rest() {
        let b = LogBudget::default();
        let logged = (0..LOGGED_ERRORS + 5).filter(|_| b.allow()).count();
        assert_eq!(logged as u32, LOGGED_ERRORS);
        assert_eq!(b.suppressed(), 5);
    }

    #[test]
    fn echoed_text_is_short_and_has_no_control_characters() {
        assert_eq!(clip("abc"), "abc");
        assert_eq!(clip("a\nb\u{1b}[31m"), "a b [31m");
        let long = "đ".repeat(1000);
        let c = clip(&long);
        assert_eq!(c.chars().count(), ECHO_CHARS + 1);
        assert!(c.ends_with('…'));
    }
}
