//! The room's loudspeaker hears every site at once: the far sites' Opus is summed
//! (`cauhop_audio::mix`) and encoded again as one Opus stream, so a plain RTP player on
//! the room PC plays the whole meeting. Pure: packets in, RTP packets out, one `tick` per
//! 20 ms of the caller's clock.

use cauhop_audio::FRAME;
use cauhop_audio::mix::Mix;
use opus_rs::{Application, OpusEncoder};

pub struct Mixer {
    mix: Mix,
    encoder: OpusEncoder,
    out: Vec<u8>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
}

/// The RTP payload type the mixed stream carries (the usual one for Opus).
pub const PAYLOAD_TYPE: u8 = 111;

impl Mixer {
    pub fn new(ssrc: u32) -> Result<Self, &'static str> {
        let mut encoder = OpusEncoder::new(cauhop_audio::SAMPLE_RATE as i32, 1, Application::Voip)?;
        encoder.bitrate_bps = 32_000;
        Ok(Self {
            mix: Mix::new(),
            encoder,
            out: vec![0u8; 1500],
            ssrc,
            seq: 0,
            timestamp: 0,
        })
    }

    /// Sites heard in the last few seconds.
    pub fn sites(&self) -> usize {
        self.mix.sources()
    }

    /// Packets that could not be decoded (counted, not fatal).
    pub fn bad_packets(&self) -> u64 {
        self.mix.bad_packets
    }

    /// One Opus packet from the far site sending on `ssrc`.
    pub fn push(&mut self, ssrc: u32, payload: &[u8]) {
        self.mix.push(u64::from(ssrc), payload);
    }

    /// The next 20 ms of the mix as a complete RTP packet, or `None` when no site is
    /// heard (nothing to play).
    pub fn tick(&mut self) -> Option<Vec<u8>> {
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        let pcm = self.mix.tick()?;
        let n = self.encoder.encode(pcm, FRAME, &mut self.out).ok()?;
        let mut pkt = Vec::with_capacity(12 + n);
        pkt.extend_from_slice(&[0x80, PAYLOAD_TYPE]);
        pkt.extend_from_slice(&self.seq.to_be_bytes());
        pkt.extend_from_slice(&self.timestamp.to_be_bytes());
        pkt.extend_from_slice(&self.ssrc.to_be_bytes());
        pkt.extend_from_slice(&self.out[..n]);
        self.seq = self.seq.wrapping_add(1);
        Some(pkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cauhop_audio::tone::Tone;

    #[test]
    fn two_sites_become_one_rtp_stream() {
        let mut m = Mixer::new(42).expect("mixer");
        let (mut a, mut b) = (
            Tone::steady(440.0).expect("a"),
            Tone::steady(660.0).expect("b"),
        );
        let mut out = Vec::new();
        for _ in 0..50 {
            m.push(1, a.next_packet().expect("a"));
            m.push(2, b.next_packet().expect("b"));
            out.extend(m.tick());
        }
        assert_eq!(out.len(), 50, "one packet per 20 ms while anyone is heard");
        assert_eq!(m.sites(), 2);
        // One stream: one SSRC, consecutive sequence numbers, 960-sample steps.
        for w in out.windows(2) {
            assert_eq!(&w[0][8..12], &42u32.to_be_bytes());
            let s = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
            let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
            assert_eq!(s(&w[1]), s(&w[0]).wrapping_add(1));
            assert_eq!(ts(&w[1]), ts(&w[0]).wrapping_add(960));
        }
        assert!(m.tick().is_none(), "nobody speaks: nothing to send");
        m.push(5, &[0xff; 3]);
        assert!(m.tick().is_none() || m.bad_packets() > 0);
    }
}
