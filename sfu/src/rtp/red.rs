//! RFC 2198 redundancy for audio towards subscribers that lose packets.
//!
//! A commune on 3G loses a few percent of packets in bursts of two or three. Opus's
//! in-band FEC covers a single loss, and so does RED with one previous frame: measured on
//! `3g-commune`, that left 1.5 % of frames lost. Two previous frames repair any burst of
//! up to two audio packets, but triple the audio rate, and pricing that in raised the
//! audio-only floor above what a 3G link often measures (the commune lost its picture).
//! So the allocation prices RED at one repeat, and the second repeat is sent only when
//! the estimate has that much to spare after the allocation: spare capacity goes to the
//! audio first. RED is sent only to subscribers whose measured loss asks for it, and
//! stopped once their link has been clean for a while. Publishers' RED is stripped on
//! the way in: every subscriber gets plain Opus or the SFU's own RED. Pure: samples and
//! time are passed in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::rtp::{RedDecoder, RedEncoder, RedundantBlock};

/// Loss (fraction, TWCC over the last second) that turns RED on.
pub const ON_LOSS: f32 = 0.02;
/// RED goes off after the loss stayed below this for [`OFF_AFTER`].
pub const OFF_LOSS: f32 = 0.005;
pub const OFF_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct RedSwitch {
    on: bool,
    clean_since: Option<Instant>,
}

impl RedSwitch {
    pub fn on(&self) -> bool {
        self.on
    }

    /// One loss sample. Returns the new state when it changes.
    pub fn sample(&mut self, now: Instant, loss: Option<f32>) -> Option<bool> {
        let loss = loss?;
        if loss >= ON_LOSS {
            self.clean_since = None;
            if !self.on {
                self.on = true;
                return Some(true);
            }
            return None;
        }
        if loss < OFF_LOSS {
            let since = *self.clean_since.get_or_insert(now);
            if self.on && now.saturating_duration_since(since) >= OFF_AFTER {
                self.on = false;
                return Some(false);
            }
        } else {
            self.clean_since = None;
        }
        None
    }
}

/// The primary block of a RED payload (the publisher's own redundancy is not forwarded).
pub fn primary(payload: &[u8]) -> Option<Arc<[u8]>> {
    let blocks = RedDecoder::decode(payload).ok()?;
    blocks
        .into_iter()
        .find(|b| b.is_primary)
        .map(|b| Arc::from(b.payload))
}

/// The most previous frames a RED packet repeats.
pub const MAX_DISTANCE: usize = 2;

/// What RED with one repeat costs in the allocation, in plain audio streams: the repeat
/// adds the payload again (about 3/4 of a plain packet's size), not the headers.
pub fn price(streams: usize) -> usize {
    (streams * 7).div_ceil(4)
}

/// How many previous frames to repeat: two when the allocation left room for the second
/// repeat of every forwarded voice, else one.
pub fn distance(budget_bps: u32, allocated_bps: u32, voices: usize, voice_bps: u32) -> usize {
    let extra = u64::from(voice_bps) * 3 / 4 * voices as u64;
    if u64::from(budget_bps.saturating_sub(allocated_bps)) >= extra {
        MAX_DISTANCE
    } else {
        1
    }
}

/// The frames a subscriber's RED packets can repeat: the last [`MAX_DISTANCE`] sent on one
/// track, as (input timestamp, payload), oldest first.
#[derive(Debug, Default)]
pub struct History {
    frames: std::collections::VecDeque<(u32, Arc<[u8]>)>,
}

impl History {
    pub fn push(&mut self, timestamp: u32, payload: Arc<[u8]>) {
        if self.frames.len() == MAX_DISTANCE {
            self.frames.pop_front();
        }
        self.frames.push_back((timestamp, payload));
    }

    /// `primary` with up to `distance` remembered frames that belong just before it as
    /// redundant blocks: no older than `distance` frames plus one missing (a stale block,
    /// from before a gap or a source switch, would be played in the wrong place), and
    /// within RFC 2198's fields (14-bit timestamp offset, 10-bit length).
    pub fn encode(&self, pt: u8, primary: &[u8], timestamp: u32, distance: usize) -> Arc<[u8]> {
        const FRAME: u32 = 960;
        let distance = distance.min(MAX_DISTANCE);
        let redundant: Vec<RedundantBlock> = self
            .frames
            .iter()
            .skip(self.frames.len().saturating_sub(distance))
            .filter(|(ts, p)| {
                let off = timestamp.wrapping_sub(*ts);
                off > 0 && off <= (distance as u32 + 1) * FRAME && p.len() < 1024
            })
            .map(|(ts, p)| RedundantBlock {
                pt,
                timestamp_offset: timestamp.wrapping_sub(*ts),
                payload: p.to_vec(),
            })
            .collect();
        RedEncoder::encode(pt, primary, &redundant).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_turns_on_with_loss_and_off_after_a_clean_while() {
        let t0 = Instant::now();
        let mut r = RedSwitch::default();
        assert_eq!(r.sample(t0, Some(0.0)), None);
        assert_eq!(r.sample(t0, Some(0.03)), Some(true));
        // 1 % loss neither turns it off nor counts as clean.
        assert_eq!(r.sample(t0 + Duration::from_secs(5), Some(0.01)), None);
        for s in 6..15 {
            assert_eq!(
                r.sample(t0 + Duration::from_secs(s), Some(0.0)),
                None,
                "{s}"
            );
        }
        assert_eq!(
            r.sample(t0 + Duration::from_secs(16), Some(0.0)),
            Some(false)
        );
        assert!(!r.on());
    }

    #[test]
    fn encoded_red_carries_the_two_previous_frames_and_strips_to_the_primary() {
        let mut h = History::default();
        let red = h.encode(111, &[9], 0, 2);
        assert_eq!(
            &*primary(&red).expect("primary"),
            &[9],
            "nothing to repeat yet"
        );
        h.push(0, Arc::from(&[9u8][..]));
        h.push(960, Arc::from(&[1u8, 2, 3][..]));
        h.push(1920, Arc::from(&[7u8][..]));
        let red = h.encode(111, &[4, 5], 2880, 2);
        let blocks = RedDecoder::decode(&red).expect("valid RED");
        assert_eq!(blocks.len(), 3, "two repeats and the primary");
        assert_eq!((blocks[0].pt, blocks[0].timestamp_offset), (111, 1920));
        assert_eq!(blocks[0].payload, &[1, 2, 3]);
        assert_eq!(blocks[1].timestamp_offset, 960);
        assert_eq!(blocks[1].payload, &[7]);
        assert_eq!(&*primary(&red).expect("primary"), &[4, 5]);
        assert!(primary(&[0x80]).is_none(), "truncated header");
        // One repeat: the frame just before only.
        let red = h.encode(111, &[4], 2880, 1);
        let blocks = RedDecoder::decode(&red).expect("RED");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].payload, &[7]);
        // A frame missing: with one repeat, the frame two back still belongs.
        assert_eq!(
            RedDecoder::decode(&h.encode(111, &[4], 3840, 1))
                .expect("RED")
                .len(),
            2
        );
    }

    #[test]
    fn frames_from_before_a_gap_are_not_repeated() {
        let mut h = History::default();
        h.push(0, Arc::from(&[1u8][..]));
        h.push(960, Arc::from(&[2u8][..]));
        // One frame missing (lost upstream): both are still repeated.
        let blocks = RedDecoder::decode(&h.encode(111, &[3], 2880, 2))
            .expect("RED")
            .len();
        assert_eq!(blocks, 3);
        // Two missing: the frame four back is too old, the one three back is not.
        let blocks = RedDecoder::decode(&h.encode(111, &[3], 3840, 2))
            .expect("RED")
            .len();
        assert_eq!(blocks, 2);
        // After a pause (a held-back voice coming back) nothing is repeated.
        let blocks = RedDecoder::decode(&h.encode(111, &[3], 96_000, 2))
            .expect("RED")
            .len();
        assert_eq!(blocks, 1);
    }

    #[test]
    fn the_second_repeat_only_from_what_the_allocation_left() {
        assert_eq!(price(0), 0);
        assert_eq!(price(1), 2, "7/4 of a plain stream, rounded up");
        assert_eq!(price(3), 6);
        // A 3G commune: 290 kbit/s measured, one voice with RED and 180p allocated.
        assert_eq!(distance(290_000, 80_000 + 150_000, 1, 40_000), 2);
        // The estimate dips: the picture stays, the second repeat goes.
        assert_eq!(distance(240_000, 80_000 + 150_000, 1, 40_000), 1);
        // Audio only on a poor link: three voices, 200 kbit/s.
        assert_eq!(distance(200_000, 240_000, 3, 40_000), 1);
        assert_eq!(distance(400_000, 240_000, 3, 40_000), 2);
    }
}
