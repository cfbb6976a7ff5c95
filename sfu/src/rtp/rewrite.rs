//! Per-subscriber RTP rewriting: one continuous outgoing stream over changing sources.
//!
//! A subscriber's outgoing stream may be fed by different incoming streams over its life
//! (a publisher rejoins, a simulcast layer switch, a screen share replaced). The receiver
//! must see one stream whose sequence numbers never repeat or go backwards and whose
//! timestamps advance with wall time, or its jitter buffer and SRTP replay window break.
//!
//! Contract: within one source, output = input + offset, so reordering and gaps in the
//! source are preserved as they are (the receiver's NACKs then name real holes). When the
//! source changes, the new source starts right after the highest sequence number sent so
//! far, and any packet that would map at or below that floor (one from before the switch)
//! is dropped. A packet of another source *is* a switch: the caller (the layer selector)
//! feeds only the source it chose. Packets the caller chooses not to forward (frames of
//! a temporal layer this subscriber does not get) are [`StreamRewriter::skip`]ped: the
//! ones after them close the gap, so the receiver never NACKs what was never meant for
//! it. Pure: time is passed in.

use std::time::Instant;

use super::vp8::Skips;

/// Identifies an incoming stream; any value unique per publisher track and SSRC works.
pub type SourceId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended outgoing sequence number (ROC in the upper bits).
    pub seq: u64,
    pub timestamp: u32,
}

#[derive(Debug)]
pub struct StreamRewriter {
    clock_rate: u32,
    current: Option<Current>,
    /// Highest sequence number sent, over all sources.
    max_out: Option<u64>,
    /// Timestamp and wall time of the newest packet sent, to place a new source in time.
    last_ts: Option<(u32, Instant)>,
    /// The current source's packets not forwarded, and its newest forwarded.
    skipped: Skips,
    newest_in: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    source: SourceId,
    seq_offset: u64,
    ts_offset: u32,
    /// Outgoing packets of this source must be above this.
    floor: Option<u64>,
}

impl StreamRewriter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            current: None,
            max_out: None,
            last_ts: None,
            skipped: Skips::default(),
            newest_in: None,
        }
    }

    /// A packet of `source` the caller does not forward. If nothing after it was sent yet
    /// the stream closes the gap; otherwise its number stays a hole (a NACK for it finds
    /// nothing, and the frame it belonged to was not meant to be decoded).
    pub fn skip(&mut self, source: SourceId, seq: u64) {
        if self.source() != Some(source) {
            return;
        }
        if self.newest_in.is_none_or(|n| seq > n) {
            self.skipped.insert(seq);
        }
    }

    /// The current source, if any packet was forwarded yet.
    pub fn source(&self) -> Option<SourceId> {
        self.current.map(|c| c.source)
    }

    /// The stream stops for a while (a slot paused its video, or a voice left the
    /// slot): whatever comes next, even the same source, starts right after what was
    /// sent, so the receiver sees no hole to NACK for the packets it was never meant to
    /// get.
    pub fn pause(&mut self) {
        self.current = None;
    }

    /// Map one incoming packet. `None` means drop it (it belongs before a source switch).
    pub fn rewrite(
        &mut self,
        source: SourceId,
        seq: u64,
        timestamp: u32,
        now: Instant,
    ) -> Option<Rewritten> {
        let current = match self.current {
            Some(c) if c.source == source => c,
            _ => {
                let c = self.start_source(source, seq, timestamp, now);
                self.current = Some(c);
                self.skipped.clear();
                self.newest_in = None;
                c
            }
        };
        let out_seq = seq
            .wrapping_add(current.seq_offset)
            .wrapping_sub(self.skipped.below(seq));
        if let Some(floor) = current.floor {
            // Wrapping subtraction read as signed: at or below the floor means "before".
            if (out_seq.wrapping_sub(floor) as i64) <= 0 {
                return None;
            }
        }
        if self.newest_in.is_none_or(|n| seq > n) {
            self.newest_in = Some(seq);
        }
        let out_ts = timestamp.wrapping_add(current.ts_offset);
        if self
            .max_out
            .is_none_or(|m| (out_seq.wrapping_sub(m) as i64) > 0)
        {
            self.max_out = Some(out_seq);
            self.last_ts = Some((out_ts, now));
        }
        Some(Rewritten {
            seq: out_seq,
            timestamp: out_ts,
        })
    }

    fn start_source(&self, source: SourceId, seq: u64, timestamp: u32, now: Instant) -> Current {
        let Some(max_out) = self.max_out else {
            // First source ever: keep its low 16 bits so the receiver's ROC starts at 0
            // (SRTP needs sender and receiver to agree on it without signalling).
            return Current {
                source,
                seq_offset: (seq & 0xffff).wrapping_sub(seq),
                ts_offset: 0,
                floor: None,
            };
        };
        let next = max_out.wrapping_add(1);
        let ts_offset = match self.last_ts {
            Some((last_ts, at)) => {
                let elapsed = now.saturating_duration_since(at);
                let ticks = (elapsed.as_secs_f64() * f64::from(self.clock_rate)) as u64;
                // At least one tick, so two frames never share a timestamp across the switch.
                let ticks = ticks.clamp(1, u64::from(u32::MAX / 2)) as u32;
                last_ts.wrapping_add(ticks).wrapping_sub(timestamp)
            }
            None => 0,
        };
        Current {
            source,
            seq_offset: next.wrapping_sub(seq),
            ts_offset,
            floor: Some(max_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn first_source_keeps_low_bits_and_offsets() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(90_000);
        let a = r.rewrite(1, 70_000, 1000, t0).expect("first packet");
        assert_eq!(a.seq, 70_000 & 0xffff);
        assert_eq!(a.timestamp, 1000);
        let b = r.rewrite(1, 70_002, 4000, t0).expect("gap is kept");
        assert_eq!(b.seq, a.seq + 2);
        // Reordered packet inside the same source is passed through at its place.
        let c = r.rewrite(1, 70_001, 2500, t0).expect("reordered");
        assert_eq!(c.seq, a.seq + 1);
    }

    #[test]
    fn switch_continues_after_highest_and_advances_time() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(90_000);
        r.rewrite(1, 10, 100, t0);
        let last = r.rewrite(1, 11, 3100, t0).expect("same source");
        let t1 = t0 + Duration::from_millis(100);
        let first_b = r.rewrite(2, 50_000, 777, t1).expect("new source");
        assert_eq!(first_b.seq, last.seq + 1);
        assert_eq!(first_b.timestamp, 3100 + 9000);
        // Switching back to a source starts it afresh above the floor.
        let again = r.rewrite(1, 13, 9100, t1).expect("back to source 1");
        assert_eq!(again.seq, first_b.seq + 1);
        // A packet of source 1 from before the switch back is dropped.
        assert_eq!(r.rewrite(1, 12, 6100, t1), None);
    }

    #[test]
    fn after_a_pause_the_same_source_runs_on_without_a_hole() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(90_000);
        let a = r.rewrite(1, 100, 0, t0).expect("first");
        r.pause();
        // 50 packets were not forwarded while paused.
        let b = r.rewrite(1, 151, 9000, t0).expect("resumed");
        assert_eq!(
            b.seq,
            a.seq + 1,
            "no hole for what was never meant to be sent"
        );
        let c = r.rewrite(1, 152, 9000, t0).expect("next");
        assert_eq!(c.seq, b.seq + 1);
        assert_eq!(
            r.rewrite(1, 150, 9000, t0),
            None,
            "a packet from the pause is dropped"
        );
    }

    #[test]
    fn skipped_packets_leave_no_hole_unless_something_after_them_was_sent() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(90_000);
        let a = r.rewrite(1, 10, 0, t0).expect("first");
        r.skip(1, 11);
        r.skip(1, 12);
        let b = r.rewrite(1, 13, 0, t0).expect("after two skips");
        assert_eq!(b.seq, a.seq + 1);
        // 15 arrives before 14, which is then skipped: 14's number stays a hole.
        let d = r.rewrite(1, 15, 0, t0).expect("15");
        r.skip(1, 14);
        assert_eq!(d.seq, b.seq + 2);
        assert_eq!(r.rewrite(1, 16, 0, t0).expect("16").seq, d.seq + 1);
        // A skip of another source changes nothing.
        r.skip(2, 17);
        assert_eq!(r.rewrite(1, 17, 0, t0).expect("17").seq, d.seq + 2);
    }

    #[test]
    fn packets_before_the_new_source_start_are_dropped() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(48_000);
        r.rewrite(1, 500, 0, t0);
        r.rewrite(2, 900, 0, t0).expect("switch");
        assert_eq!(r.rewrite(2, 899, 0, t0), None);
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Next packet of a source: advance its sequence number by this much (>= 1).
        Packet { source: u8, advance: u16 },
        /// Reorder: resend a packet a few numbers behind the source's newest.
        Late { source: u8, behind: u8 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (0u8..3, 1u16..40).prop_map(|(source, advance)| Step::Packet { source, advance }),
            1 => (0u8..3, 1u8..20).prop_map(|(source, behind)| Step::Late { source, behind }),
        ]
    }

    proptest! {
        /// The property the receiver depends on: output sequence numbers never repeat,
        /// and after a source change they never go back below what was already sent.
        #[test]
        fn output_never_repeats_or_goes_back_across_switches(
            starts in proptest::collection::vec(any::<u32>(), 3),
            steps in proptest::collection::vec(step(), 1..400),
        ) {
            let t0 = Instant::now();
            let mut r = StreamRewriter::new(90_000);
            let mut newest: Vec<u64> = starts.iter().map(|s| u64::from(*s)).collect();
            let mut sent_in: Vec<std::collections::HashSet<u64>> = vec![Default::default(); 3];
            let mut seen = std::collections::HashSet::new();
            let mut max_before_switch: Option<u64> = None;
            let mut max_out: Option<u64> = None;
            let mut current: Option<u8> = None;
            for (i, s) in steps.iter().enumerate() {
                let now = t0 + Duration::from_millis(i as u64 * 20);
                let (source, seq) = match *s {
                    Step::Packet { source, advance } => {
                        newest[source as usize] += u64::from(advance);
                        (source, newest[source as usize])
                    }
                    Step::Late { source, behind } => {
                        let seq = newest[source as usize].saturating_sub(u64::from(behind));
                        (source, seq)
                    }
                };
                // Duplicates of one source are removed before rewriting (str0m does it).
                if !sent_in[source as usize].insert(seq) {
                    continue;
                }
                if current != Some(source) {
                    max_before_switch = max_out;
                }
                let Some(out) = r.rewrite(u64::from(source), seq, 0, now) else { continue };
                current = Some(source);
                prop_assert!(seen.insert(out.seq), "sequence number {} repeated", out.seq);
                if let Some(floor) = max_before_switch {
                    prop_assert!(out.seq > floor, "{} went back below {}", out.seq, floor);
                }
                max_out = Some(max_out.map_or(out.seq, |m| m.max(out.seq)));
            }
        }
    }
}
