//! The built-in audio test source: a 440 Hz beep (200 ms each second) encoded as Opus by
//! the pure-Rust `opus-rs`, so a room can be checked end to end without a microphone.

use std::f32::consts::TAU;

use opus_rs::{Application, OpusEncoder};

pub const SAMPLE_RATE: u32 = 48_000;
/// 20 ms: the frame size browsers use.
pub const FRAME: usize = 960;

pub struct Tone {
    encoder: OpusEncoder,
    phase: f32,
    frame_no: u64,
    pcm: Vec<f32>,
    out: Vec<u8>,
}

impl Tone {
    pub fn new() -> Result<Self, &'static str> {
        let mut encoder = OpusEncoder::new(SAMPLE_RATE as i32, 1, Application::Voip)?;
        encoder.bitrate_bps = 24_000;
        encoder.use_inband_fec = true;
        encoder.packet_loss_perc = 5;
        Ok(Self {
            encoder,
            phase: 0.0,
            frame_no: 0,
            pcm: vec![0.0; FRAME],
            out: vec![0u8; 1500],
        })
    }

    /// The next 20 ms as one Opus packet.
    pub fn next_packet(&mut self) -> Result<&[u8], &'static str> {
        // 10 of every 50 frames (200 ms per second) carry the beep.
        let on = self.frame_no % 50 < 10;
        let step = TAU * 440.0 / SAMPLE_RATE as f32;
        for s in &mut self.pcm {
            *s = if on { 0.1 * self.phase.sin() } else { 0.0 };
            self.phase = (self.phase + step) % TAU;
        }
        self.frame_no += 1;
        let n = self.encoder.encode(&self.pcm, FRAME, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_beep_decodes_back_to_a_tone() {
        let mut tone = Tone::new().expect("encoder");
        let mut dec = opus_rs::OpusDecoder::new(SAMPLE_RATE as i32, 1).expect("decoder");
        let mut pcm = vec![0f32; FRAME];
        let mut energy = Vec::new();
        for _ in 0..50 {
            let pkt = tone.next_packet().expect("encode").to_vec();
            assert!(!pkt.is_empty() && pkt.len() < 400, "{} bytes", pkt.len());
            let n = dec.decode(&pkt, FRAME, &mut pcm).expect("decode");
            assert_eq!(n, FRAME);
            energy.push(pcm.iter().map(|s| s * s).sum::<f32>() / FRAME as f32);
        }
        // Loud while beeping, near silence after.
        let beep = energy[3..10].iter().sum::<f32>() / 7.0;
        let quiet = energy[15..50].iter().sum::<f32>() / 35.0;
        assert!(
            beep > 1e-3 && quiet < beep / 100.0,
            "beep {beep} quiet {quiet}"
        );
    }
}
