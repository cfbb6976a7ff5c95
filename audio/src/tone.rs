//! A test source: a tone encoded as Opus by the pure-Rust `opus-rs`, so a room can be
//! checked end to end without a microphone (the agent's 440 Hz beep, 200 ms each second)
//! and a record can be checked for who spoke when (a steady tone per speaker); and
//! [`power_at`], which tells one tone from another in decoded audio.

use std::f32::consts::TAU;

use opus_rs::{Application, OpusEncoder};

use crate::{FRAME, SAMPLE_RATE};

pub struct Tone {
    encoder: OpusEncoder,
    phase: f32,
    frame_no: u64,
    hz: f32,
    /// Frames of each 50 (one second) that carry the tone.
    on_frames: u64,
    /// Silence instead of the tone (a muted microphone still sends frames).
    muted: bool,
    pcm: Vec<f32>,
    out: Vec<u8>,
}

impl Tone {
    /// The agent's beep: 440 Hz, 200 ms of each second.
    pub fn new() -> Result<Self, &'static str> {
        Self::with(440.0, 10)
    }

    /// A steady tone of `hz`.
    pub fn steady(hz: f32) -> Result<Self, &'static str> {
        Self::with(hz, 50)
    }

    fn with(hz: f32, on_frames: u64) -> Result<Self, &'static str> {
        let mut encoder = OpusEncoder::new(SAMPLE_RATE as i32, 1, Application::Voip)?;
        encoder.bitrate_bps = 24_000;
        encoder.use_inband_fec = true;
        encoder.packet_loss_perc = 5;
        Ok(Self {
            encoder,
            phase: 0.0,
            frame_no: 0,
            hz,
            on_frames,
            muted: false,
            pcm: vec![0.0; FRAME],
            out: vec![0u8; 1500],
        })
    }

    /// Send silence (`true`) or the tone.
    pub fn mute(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// The next 20 ms as one Opus packet.
    pub fn next_packet(&mut self) -> Result<&[u8], &'static str> {
        let on = !self.muted && self.frame_no % 50 < self.on_frames;
        let step = TAU * self.hz / SAMPLE_RATE as f32;
        for s in &mut self.pcm {
            *s = if on { 0.1 * self.phase.sin() } else { 0.0 };
            self.phase = (self.phase + step) % TAU;
        }
        self.frame_no += 1;
        let n = self.encoder.encode(&self.pcm, FRAME, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

/// The power of `hz` in `pcm` (Goertzel), normalised so a full-scale sine reads 0.5.
pub fn power_at(pcm: &[f32], hz: f32) -> f32 {
    if pcm.is_empty() {
        return 0.0;
    }
    let w = TAU * hz / SAMPLE_RATE as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in pcm {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (pcm.len() as f32 * pcm.len() as f32)
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

#[cfg(test)]
mod power_tests {
    use super::*;

    #[test]
    fn a_steady_tone_is_told_from_another() {
        let mut tone = Tone::steady(880.0).expect("encoder");
        let mut dec = opus_rs::OpusDecoder::new(SAMPLE_RATE as i32, 1).expect("decoder");
        let mut pcm = vec![0f32; FRAME];
        let mut all = Vec::new();
        for _ in 0..25 {
            let pkt = tone.next_packet().expect("encode").to_vec();
            let n = dec.decode(&pkt, FRAME, &mut pcm).expect("decode");
            all.extend_from_slice(&pcm[..n]);
        }
        let (at880, at440) = (power_at(&all[4800..], 880.0), power_at(&all[4800..], 440.0));
        assert!(at880 > 100.0 * at440, "880 Hz {at880}, 440 Hz {at440}");
    }
}
