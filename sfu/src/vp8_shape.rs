//! The VP8 framing every simulated publisher writes (the simulated meeting [`crate::sim`],
//! the str0m test peer in `tests/` and the load generator): a payload descriptor with PictureID and TL0PICIDX, and on a frame's first
//! packet the frame tag, which on a keyframe carries the start code and size, so an SFU
//! sees real keyframes and heights. What follows is each tool's own marker; the
//! payload is not decodable, which no SFU needs.

/// Length of the payload descriptor written here (X, PictureID (15 bit), TL0PICIDX).
pub const DESCRIPTOR: usize = 5;

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
}

impl Vp8Shape {
    /// Append the descriptor and, on a frame's first packet, the frame tag.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        out.push(0x80 | if self.start { 0x10 } else { 0 });
        out.push(0xc0);
        out.push(0x80 | (self.picture_id >> 8) as u8 & 0x7f);
        out.push(self.picture_id as u8);
        out.push(self.tl0);
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
    let mut i = DESCRIPTOR;
    if b0 & 0x10 != 0 {
        let tag = *payload.get(i)?;
        i += if tag & 0x01 == 0 { 10 } else { 3 };
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_len_finds_the_end_of_every_kind_of_header() {
        for (start, key, len) in [(false, false, 5), (true, false, 8), (true, true, 15)] {
            let mut p = Vec::new();
            Vp8Shape {
                picture_id: 0x1234,
                tl0: 3,
                start,
                key,
                width: 640,
                height: 360,
            }
            .write_header(&mut p);
            assert_eq!(p.len(), len);
            assert_eq!(header_len(&p), Some(len));
        }
        assert_eq!(header_len(&[]), None);
        assert_eq!(header_len(&[0x90]), None);
    }
}
