//! The VP8 framing every simulated publisher writes (the simulated meeting [`crate::sim`],
//! the str0m test peer in `tests/` and the load generator): a payload descriptor with
//! PictureID, TL0PICIDX and, as Chrome sends them, the temporal layer and its layer-sync
//! bit; on a frame's first packet the frame tag, which on a keyframe carries the start
//! code and size, so an SFU sees real keyframes, heights and temporal layers. What
//! follows is each tool's own marker; the payload is not decodable, which no SFU needs.
//!
//! [`chrome_temporal`], [`chrome_weight`] and [`chrome_refs`] are Chrome's three-layer
//! pattern (libwebrtc's default temporal layers for VP8 simulcast), so a simulated
//! receiver can also tell which frames it could decode.

/// Length of the payload descriptor written here without temporal layers (X, PictureID
/// (15 bit), TL0PICIDX); one more with them.
pub const DESCRIPTOR: usize = 5;

/// One frame's temporal layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    pub tid: u8,
    /// Refers to the base layer alone: a receiver may start this layer here.
    pub sync: bool,
}

/// One packet's VP8 header fields.
#[derive(Debug, Clone, Copy)]
pub struct Vp8Shape {
    pub picture_id: u16,
    pub tl0: u8,
    /// The frame's first packet.
    pub start: bool,
    pub key: bool,
    pub width: u16,
    pub height: u16,
    /// `None`: a stream without temporal layers (no T bit).
    pub temporal: Option<Temporal>,
}

impl Vp8Shape {
    /// Append the descriptor and, on a frame's first packet, the frame tag.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        out.push(0x80 | if self.start { 0x10 } else { 0 });
        out.push(if self.temporal.is_some() { 0xe0 } else { 0xc0 });
        out.push(0x80 | (self.picture_id >> 8) as u8 & 0x7f);
        out.push(self.picture_id as u8);
        out.push(self.tl0);
        if let Some(t) = self.temporal {
            out.push((t.tid & 0x03) << 6 | if t.sync { 0x20 } else { 0 });
        }
        if self.start {
            if self.key {
                out.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
                out.extend_from_slice(&self.width.to_le_bytes());
                out.extend_from_slice(&self.height.to_le_bytes());
            } else {
                out.extend_from_slice(&[0x11, 0x02, 0x00]);
            }
        }
    }
}

/// Where the marker starts in a packet written by [`Vp8Shape::write_header`]: after the
/// descriptor and, on a frame's first packet, the 3-byte tag (10 on a keyframe).
pub fn header_len(payload: &[u8]) -> Option<usize> {
    let b0 = *payload.first()?;
    let x = *payload.get(1)?;
    let mut i = DESCRIPTOR + usize::from(x & 0x20 != 0);
    if b0 & 0x10 != 0 {
        let tag = *payload.get(i)?;
        i += if tag & 0x01 == 0 { 10 } else { 3 };
    }
    Some(i)
}

/// The temporal layer of frame `k`, counted from the last keyframe (frame 0), in
/// Chrome's pattern 0 2 1 2 0 2 1 2: frames 1 (T2) and 2 (T1) of each eight are syncs.
pub fn chrome_temporal(k: u32) -> Temporal {
    Temporal {
        tid: [0, 2, 1, 2, 0, 2, 1, 2][(k % 8) as usize],
        sync: matches!(k % 8, 1 | 2),
    }
}

/// A frame's size against the encoding's average frame: libwebrtc gives T0 40 % of the
/// rate, T1 20 % and T2 40 %, over two, two and four frames of each eight.
pub fn chrome_weight(tid: u8) -> f64 {
    if tid == 0 { 1.6 } else { 0.8 }
}

/// The frames (counted from the keyframe) frame `k` refers to: T0 the previous T0
/// ("last"); T1 "last" and, unless a sync, the previous T1 ("golden"); T2 "last" and,
/// unless a sync, the latest T1.
pub fn chrome_refs(k: u32) -> Vec<u32> {
    if k == 0 {
        return Vec::new();
    }
    let r: &[u32] = match k % 8 {
        0 | 4 => &[4],
        1 => &[1],
        2 => &[2],
        3 | 7 => &[3, 1],
        5 => &[1, 3],
        _ => &[2, 4],
    };
    r.iter().filter(|d| **d <= k).map(|d| k - d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_len_finds_the_end_of_every_kind_of_header() {
        for temporal in [None, Some(chrome_temporal(1))] {
            let t = usize::from(temporal.is_some());
            for (start, key, len) in [(false, false, 5), (true, false, 8), (true, true, 15)] {
                let mut p = Vec::new();
                Vp8Shape {
                    picture_id: 0x1234,
                    tl0: 3,
                    start,
                    key,
                    width: 640,
                    height: 360,
                    temporal,
                }
                .write_header(&mut p);
                assert_eq!(p.len(), len + t);
                assert_eq!(header_len(&p), Some(len + t));
                let d = crate::rtp::vp8::descriptor(&p).expect("descriptor");
                assert_eq!(d.tid, temporal.map(|t| t.tid));
                assert_eq!(d.sync, temporal.is_some_and(|t| t.sync));
            }
        }
        assert_eq!(header_len(&[]), None);
        assert_eq!(header_len(&[0x90]), None);
    }

    #[test]
    fn the_pattern_refers_only_down_or_across_and_weighs_to_one() {
        let mut total = 0.0;
        for k in 1..64 {
            let t = chrome_temporal(k);
            total += chrome_weight(t.tid);
            for r in chrome_refs(k) {
                let rt = if r == 0 { 0 } else { chrome_temporal(r).tid };
                assert!(r < k);
                assert!(rt <= t.tid, "frame {k} (T{}) refers to T{rt}", t.tid);
                if t.sync {
                    assert_eq!(rt, 0, "a sync refers to the base layer alone");
                }
            }
        }
        assert!((total / 63.0 - 1.0).abs() < 0.05);
    }
}
