//! A publisher's uplink graded good / weak / bad, for the tile every other site shows.
//!
//! The thresholds are the link check's (`cauhop-endpoint check`): good is what carries
//! video comfortably, bad is what even audio struggles on. A grade changes only after the
//! new one held for [`HOLD`] samples in a row, so a single lossy second does not paint a
//! tile red and back. Pure: samples are passed in.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Good,
    Weak,
    Bad,
}

impl Grade {
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Good => "good",
            Grade::Weak => "weak",
            Grade::Bad => "bad",
        }
    }

    /// `loss` as a fraction, round trip and interarrival jitter in milliseconds.
    pub fn of(loss: f32, rtt_ms: f64, jitter_ms: f64) -> Grade {
        if loss > 0.10 || rtt_ms > 700.0 || jitter_ms > 100.0 {
            Grade::Bad
        } else if loss > 0.02 || rtt_ms > 250.0 || jitter_ms > 30.0 {
            Grade::Weak
        } else {
            Grade::Good
        }
    }
}

/// Samples a new grade must hold before it is reported.
pub const HOLD: u32 = 3;

#[derive(Debug, Clone)]
pub struct QualityTracker {
    grade: Grade,
    candidate: Grade,
    held: u32,
}

impl Default for QualityTracker {
    fn default() -> Self {
        Self {
            grade: Grade::Good,
            candidate: Grade::Good,
            held: 0,
        }
    }
}

impl QualityTracker {
    pub fn grade(&self) -> Grade {
        self.grade
    }

    /// One sample (str0m's stats, once a second). Returns the new grade when it changes.
    pub fn sample(&mut self, loss: f32, rtt_ms: f64, jitter_ms: f64) -> Option<Grade> {
        let g = Grade::of(loss, rtt_ms, jitter_ms);
        if g == self.grade {
            self.held = 0;
            return None;
        }
        if g == self.candidate {
            self.held += 1;
        } else {
            self.candidate = g;
            self.held = 1;
        }
        if self.held >= HOLD {
            self.grade = g;
            self.held = 0;
            return Some(g);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_follow_the_link_check_thresholds() {
        assert_eq!(Grade::of(0.0, 20.0, 2.0), Grade::Good);
        assert_eq!(Grade::of(0.03, 20.0, 2.0), Grade::Weak);
        assert_eq!(Grade::of(0.0, 350.0, 2.0), Grade::Weak);
        assert_eq!(Grade::of(0.0, 20.0, 60.0), Grade::Weak);
        assert_eq!(Grade::of(0.12, 20.0, 2.0), Grade::Bad);
        assert_eq!(Grade::of(0.0, 800.0, 2.0), Grade::Bad);
    }

    #[test]
    fn one_bad_second_does_not_change_the_tile() {
        let mut q = QualityTracker::default();
        assert_eq!(q.sample(0.2, 50.0, 5.0), None);
        assert_eq!(q.sample(0.0, 50.0, 5.0), None);
        assert_eq!(q.sample(0.2, 50.0, 5.0), None);
        assert_eq!(q.grade(), Grade::Good);
        // Three in a row do.
        assert_eq!(q.sample(0.2, 50.0, 5.0), None);
        assert_eq!(q.sample(0.2, 50.0, 5.0), Some(Grade::Bad));
        // Alternating weak and bad never settles on either.
        for i in 0..10 {
            let loss = if i % 2 == 0 { 0.05 } else { 0.0 };
            assert_eq!(q.sample(loss, 50.0, 5.0), None, "sample {i}");
        }
    }
}
