//! Whole VP8 frames out of RTP packets (RFC 7741 4.5), for the record, which writes
//! frames into WebM as they were encoded. A frame with a packet missing is dropped, and
//! so is every frame after it until the next keyframe (they refer to what was lost), so
//! a player shows a still picture rather than a smeared one. Pure: packets in, frames out.

use super::vp8::{descriptor, descriptor_len, keyframe_size};

/// One complete frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub data: Vec<u8>,
    pub key: bool,
    pub rtp_ts: u32,
    /// A keyframe's picture size.
    pub size: Option<(u16, u16)>,
}

#[derive(Debug, Default)]
pub struct Vp8Frames {
    data: Vec<u8>,
    ts: Option<u32>,
    key: bool,
    size: Option<(u16, u16)>,
    /// The frame in hand lost a packet (or has no start).
    broken: bool,
    next_seq: Option<u64>,
    /// Frames are dropped until a keyframe.
    need_key: bool,
    /// Frames dropped since the start.
    pub dropped: u64,
}

/// Largest frame kept (a 1080p keyframe is a few hundred kB): bounds what a hostile
/// stream of packets without a marker can make us hold.
const MAX_FRAME: usize = 4 << 20;

impl Vp8Frames {
    pub fn new() -> Self {
        Self {
            need_key: true,
            ..Self::default()
        }
    }

    /// Frames wait for a keyframe: the caller should ask the publisher for one.
    pub fn wants_keyframe(&self) -> bool {
        self.need_key
    }

    /// One packet, in arrival order; a frame when this packet completed one.
    pub fn push(&mut self, seq: u64, rtp_ts: u32, marker: bool, payload: &[u8]) -> Option<Frame> {
        if let Some(next) = self.next_seq {
            if seq < next {
                // A late or repeated packet: its frame was already judged.
                return None;
            }
            if seq > next {
                self.lose();
            }
        }
        self.next_seq = Some(seq + 1);
        let (Some(d), Some(at)) = (descriptor(payload), descriptor_len(payload)) else {
            self.lose();
            return None;
        };
        if d.start {
            if !self.data.is_empty() && !self.broken {
                // A new frame before the last one's marker: the marker packet was lost.
                self.dropped += 1;
            }
            self.data.clear();
            self.ts = Some(rtp_ts);
            self.key = d.key;
            self.size = if d.key { keyframe_size(payload) } else { None };
            self.broken = self.need_key && !d.key;
        } else if self.ts != Some(rtp_ts) {
            self.broken = true;
        }
        if !self.broken {
            self.data.extend_from_slice(&payload[at..]);
            if self.data.len() > MAX_FRAME {
                self.lose();
            }
        }
        if !marker {
            return None;
        }
        let done = !self.broken && self.ts == Some(rtp_ts) && !self.data.is_empty();
        let frame = done.then(|| Frame {
            data: std::mem::take(&mut self.data),
            key: self.key,
            rtp_ts,
            size: self.size,
        });
        match &frame {
            Some(f) if f.key => self.need_key = false,
            Some(_) => {}
            None => self.dropped += 1,
        }
        self.data.clear();
        self.ts = None;
        self.broken = false;
        frame
    }

    fn lose(&mut self) {
        self.broken = true;
        self.need_key = true;
        self.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of `parts` packets: descriptor (S on the first), then bytes; a keyframe
    /// carries the 640x360 header.
    fn packets(key: bool, parts: usize, fill: u8) -> Vec<(bool, Vec<u8>)> {
        (0..parts)
            .map(|i| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                if i == 0 {
                    let tag = if key { 0x00 } else { 0x01 };
                    p.extend_from_slice(&[tag, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
                }
                p.extend(std::iter::repeat_n(fill, 100));
                (i + 1 == parts, p)
            })
            .collect()
    }

    fn feed(
        f: &mut Vp8Frames,
        seq: &mut u64,
        ts: u32,
        pk: &[(bool, Vec<u8>)],
        skip: Option<usize>,
    ) -> Vec<Frame> {
        let mut out = Vec::new();
        for (i, (marker, p)) in pk.iter().enumerate() {
            *seq += 1;
            if Some(i) == skip {
                continue;
            }
            out.extend(f.push(*seq, ts, *marker, p));
        }
        out
    }

    #[test]
    fn frames_come_whole_and_a_loss_waits_for_the_next_keyframe() {
        let mut f = Vp8Frames::new();
        let mut seq = 100;
        // A delta frame before any keyframe: nothing to start from.
        assert!(feed(&mut f, &mut seq, 0, &packets(false, 2, 1), None).is_empty());
        let key = feed(&mut f, &mut seq, 3000, &packets(true, 3, 2), None);
        assert_eq!(key.len(), 1);
        assert!(key[0].key);
        assert_eq!(key[0].size, Some((640, 360)));
        assert_eq!(
            key[0].data.len(),
            10 + 300,
            "descriptors stripped, bytes in order"
        );
        assert_eq!(
            feed(&mut f, &mut seq, 6000, &packets(false, 2, 3), None).len(),
            1
        );
        // A packet lost in the middle of a frame: that frame and the next are dropped.
        assert!(feed(&mut f, &mut seq, 9000, &packets(false, 3, 4), Some(1)).is_empty());
        assert!(f.wants_keyframe());
        assert!(feed(&mut f, &mut seq, 12000, &packets(false, 2, 5), None).is_empty());
        let again = feed(&mut f, &mut seq, 15000, &packets(true, 2, 6), None);
        assert_eq!(again.len(), 1);
        assert!(!f.wants_keyframe());
    }

    proptest::proptest! {
        /// Whatever arrives, nothing panics and no frame is larger than what came in.
        #[test]
        fn any_packets_are_taken_safely(
            pkts in proptest::collection::vec(
                (0u64..50, proptest::num::u32::ANY, proptest::bool::ANY,
                 proptest::collection::vec(proptest::num::u8::ANY, 0..60)),
                0..80,
            )
        ) {
            let mut f = Vp8Frames::new();
            let total: usize = pkts.iter().map(|p| p.3.len()).sum();
            for (seq, ts, marker, p) in &pkts {
                if let Some(frame) = f.push(*seq, *ts, *marker, p) {
                    proptest::prop_assert!(frame.data.len() <= total);
                }
            }
        }
    }
}
