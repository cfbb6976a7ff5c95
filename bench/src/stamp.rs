//! What every load packet carries after its codec header: who sent it, on which stream,
//! its number on that stream and when it was sent. The subscriber's bookkeeping and the
//! forwarding delay come from this, so neither depends on the SFU's own counters (Janus
//! has none we could compare).

/// First byte of a stamp.
const MARK: u8 = b'L';
/// Bytes a stamp takes.
pub const STAMP_LEN: usize = 1 + 4 + 1 + 4 + 8;

pub use cauhop_tests::vp8_shape;
pub use cauhop_tests::vp8_shape::Vp8Shape;

/// Stream 0 is audio; 1..=3 are the simulcast layers, lowest first.
pub const AUDIO: u8 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub stream: u8,
    /// Packet number on this stream, from 0, one per packet.
    pub n: u32,
    /// Send time in µs since the generator's epoch.
    pub sent_us: u64,
}

impl Stamp {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(MARK);
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.push(self.stream);
        out.extend_from_slice(&self.n.to_be_bytes());
        out.extend_from_slice(&self.sent_us.to_be_bytes());
    }

    /// Read a stamp at the start of `b`.
    pub fn read(b: &[u8]) -> Option<Self> {
        let b = b.get(..STAMP_LEN)?;
        if b[0] != MARK {
            return None;
        }
        Some(Self {
            sender: u32::from_be_bytes(b[1..5].try_into().ok()?),
            stream: b[5],
            n: u32::from_be_bytes(b[6..10].try_into().ok()?),
            sent_us: u64::from_be_bytes(b[10..18].try_into().ok()?),
        })
    }

    /// The stamp in a received payload: audio carries it first; VP8 after the header
    /// [`Vp8Shape`] writes.
    pub fn find(payload: &[u8]) -> Option<Self> {
        if payload.first() == Some(&MARK) {
            return Self::read(payload);
        }
        Self::read(payload.get(vp8_shape::header_len(payload)?..)?)
    }
}

/// A VP8-shaped packet: the shared VP8 header, the stamp, padding to `len`.
pub fn write_vp8(shape: &Vp8Shape, stamp: &Stamp, len: usize, out: &mut Vec<u8>) {
    out.clear();
    shape.write_header(out);
    stamp.write(out);
    if out.len() < len {
        out.resize(len, 0x55);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Stamp = Stamp {
        sender: 7,
        stream: 2,
        n: 123_456,
        sent_us: 9_876_543_210,
    };

    #[test]
    fn audio_round_trip() {
        let mut p = Vec::new();
        S.write(&mut p);
        p.resize(80, 0);
        assert_eq!(Stamp::find(&p), Some(S));
    }

    #[test]
    fn vp8_round_trip_on_every_kind_of_packet() {
        for (start, key) in [(false, false), (true, false), (true, true)] {
            let mut p = Vec::new();
            let shape = Vp8Shape {
                picture_id: 0x1234,
                tl0: 9,
                start,
                key,
                width: 1280,
                height: 720,
                temporal: key.then_some(vp8_shape::chrome_temporal(3)),
            };
            write_vp8(&shape, &S, 1100, &mut p);
            assert_eq!(p.len(), 1100);
            assert_eq!(Stamp::find(&p), Some(S), "start {start} key {key}");
        }
    }

    #[test]
    fn short_or_foreign_payloads_are_not_stamps() {
        assert_eq!(Stamp::find(&[]), None);
        assert_eq!(Stamp::find(&[b'L', 0, 0]), None);
        assert_eq!(Stamp::find(&[0x90, 0xc0, 0x80, 0, 0, 0x10]), None);
        assert_eq!(Stamp::find(&[0u8; 40]), None);
    }
}
