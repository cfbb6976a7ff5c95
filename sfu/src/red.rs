//! RFC 2198 redundancy for audio towards subscribers that lose packets.
//!
//! A commune on 3G loses a few percent of packets in bursts; Opus's in-band FEC covers a
//! single loss, RED (each packet also carrying the previous frame) covers one more, at the
//! cost of roughly doubling the audio rate (~30 kbit/s). So it is sent only to subscribers
//! whose measured loss asks for it, and stopped once their link has been clean for a
//! while. Publishers' RED is stripped on the way in: every subscriber gets plain Opus or
//! the SFU's own RED. Pure: samples and time are passed in.

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

/// `primary` with the previous frame as one redundant block, when it fits RFC 2198's
/// fields (14-bit timestamp offset, 10-bit length).
pub fn encode(
    pt: u8,
    primary: &[u8],
    timestamp: u32,
    previous: Option<&(u32, Arc<[u8]>)>,
) -> Arc<[u8]> {
    let redundant: Vec<RedundantBlock> = previous
        .map(|(ts, p)| RedundantBlock {
            pt,
            timestamp_offset: timestamp.wrapping_sub(*ts),
            payload: p.to_vec(),
        })
        .into_iter()
        .collect();
    RedEncoder::encode(pt, primary, &redundant).into()
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
    fn encoded_red_decodes_to_both_frames_and_strips_to_the_primary() {
        let prev: (u32, Arc<[u8]>) = (960, Arc::from(&[1u8, 2, 3][..]));
        let red = encode(111, &[4, 5], 1920, Some(&prev));
        let blocks = RedDecoder::decode(&red).expect("valid RED");
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].pt, blocks[0].timestamp_offset), (111, 960));
        assert_eq!(blocks[0].payload, &[1, 2, 3]);
        assert_eq!(&*primary(&red).expect("primary"), &[4, 5]);
        // Without a previous frame: a RED packet with the primary only.
        assert_eq!(
            &*primary(&encode(111, &[9], 0, None)).expect("primary"),
            &[9]
        );
        assert!(primary(&[0x80]).is_none(), "truncated header");
    }
}
