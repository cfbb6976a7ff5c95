//! The room's loudspeaker hears every site at once: each far site's Opus is decoded
//! (opus-rs), the sites are summed every 20 ms and the sum is encoded again as one Opus
//! stream, so a plain RTP player on the room PC plays the whole meeting. Pure: packets in,
//! packets out, one `tick` per 20 ms of the caller's clock.

use std::collections::{HashMap, VecDeque};

use opus_rs::{Application, OpusDecoder, OpusEncoder};

use crate::tone::{FRAME, SAMPLE_RATE};

/// Longest a site's audio may queue before its oldest samples are dropped: more means
/// the room hears that site late.
const MAX_QUEUE: usize = 10 * FRAME;
/// A site silent for this many ticks is forgotten (it left, or muted).
const FORGET_AFTER: u32 = 250;

struct Site {
    decoder: OpusDecoder,
    queue: VecDeque<f32>,
    idle_ticks: u32,
}

pub struct Mixer {
    sites: HashMap<u32, Site>,
    encoder: OpusEncoder,
    pcm: Vec<f32>,
    scratch: Vec<f32>,
    out: Vec<u8>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// Packets that could not be decoded (counted, not fatal).
    pub bad_packets: u64,
}

/// The RTP payload type the mixed stream carries (the usual one for Opus).
pub const PAYLOAD_TYPE: u8 = 111;

impl Mixer {
    pub fn new(ssrc: u32) -> Result<Self, &'static str> {
        let mut encoder = OpusEncoder::new(SAMPLE_RATE as i32, 1, Application::Voip)?;
        encoder.bitrate_bps = 32_000;
        Ok(Self {
            sites: HashMap::new(),
            encoder,
            pcm: vec![0.0; FRAME],
            scratch: vec![0.0; 6 * FRAME],
            out: vec![0u8; 1500],
            ssrc,
            seq: 0,
            timestamp: 0,
            bad_packets: 0,
        })
    }

    /// Sites heard in the last few seconds.
    pub fn sites(&self) -> usize {
        self.sites.len()
    }

    /// One Opus packet from the far site sending on `ssrc`.
    pub fn push(&mut self, ssrc: u32, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let site = match self.sites.entry(ssrc) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let Ok(decoder) = OpusDecoder::new(SAMPLE_RATE as i32, 1) else {
                    self.bad_packets += 1;
                    return;
                };
                v.insert(Site {
                    decoder,
                    queue: VecDeque::with_capacity(MAX_QUEUE),
                    idle_ticks: 0,
                })
            }
        };
        match site
            .decoder
            .decode(payload, self.scratch.len(), &mut self.scratch)
        {
            Ok(n) => {
                site.queue
                    .extend(&self.scratch[..n.min(self.scratch.len())]);
                let excess = site.queue.len().saturating_sub(MAX_QUEUE);
                site.queue.drain(..excess);
                site.idle_ticks = 0;
            }
            Err(_) => self.bad_packets += 1,
        }
    }

    /// The next 20 ms of the mix as a complete RTP packet, or `None` when no site is
    /// heard (nothing to play).
    pub fn tick(&mut self) -> Option<Vec<u8>> {
        self.pcm.iter_mut().for_each(|s| *s = 0.0);
        let mut any = false;
        for site in self.sites.values_mut() {
            if site.queue.len() < FRAME {
                site.idle_ticks += 1;
                continue;
            }
            any = true;
            for (out, s) in self.pcm.iter_mut().zip(site.queue.drain(..FRAME)) {
                *out += s;
            }
        }
        self.sites.retain(|_, s| s.idle_ticks < FORGET_AFTER);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        if !any {
            return None;
        }
        // Two loud sites can exceed full scale: a soft limit instead of wrap-around.
        for s in &mut self.pcm {
            *s = s.tanh();
        }
        let n = self.encoder.encode(&self.pcm, FRAME, &mut self.out).ok()?;
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

    fn tone_packets(freq: f32, frames: usize) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(SAMPLE_RATE as i32, 1, Application::Voip).expect("enc");
        let mut out = vec![0u8; 1500];
        let mut phase = 0f32;
        (0..frames)
            .map(|_| {
                let pcm: Vec<f32> = (0..FRAME)
                    .map(|_| {
                        phase += std::f32::consts::TAU * freq / SAMPLE_RATE as f32;
                        0.2 * phase.sin()
                    })
                    .collect();
                let n = enc.encode(&pcm, FRAME, &mut out).expect("encode");
                out[..n].to_vec()
            })
            .collect()
    }

    fn energy(pkt: &[u8], dec: &mut OpusDecoder) -> f32 {
        let mut pcm = vec![0f32; FRAME];
        let n = dec.decode(&pkt[12..], FRAME, &mut pcm).expect("decode");
        pcm[..n].iter().map(|s| s * s).sum::<f32>() / n as f32
    }

    #[test]
    fn two_sites_become_one_stream_and_a_silent_site_is_no_gap() {
        let mut m = Mixer::new(42).expect("mixer");
        let (a, b) = (tone_packets(440.0, 100), tone_packets(660.0, 50));
        let mut dec = OpusDecoder::new(SAMPLE_RATE as i32, 1).expect("dec");
        let mut out = Vec::new();
        for i in 0..100 {
            m.push(1, &a[i]);
            if i < 50 {
                m.push(2, &b[i]);
            }
            if let Some(p) = m.tick() {
                out.push(p);
            }
        }
        assert_eq!(out.len(), 100, "one packet per 20 ms while anyone is heard");
        assert_eq!(m.sites(), 2);
        // One stream: one SSRC, consecutive sequence numbers, 960-sample steps.
        for w in out.windows(2) {
            assert_eq!(&w[0][8..12], &42u32.to_be_bytes());
            let s = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
            assert_eq!(s(&w[1]), s(&w[0]).wrapping_add(1));
        }
        let both: f32 = out[10..40].iter().map(|p| energy(p, &mut dec)).sum::<f32>() / 30.0;
        let one: f32 = out[60..90].iter().map(|p| energy(p, &mut dec)).sum::<f32>() / 30.0;
        assert!(one > 1e-3, "the remaining site is heard: {one}");
        assert!(
            both > one * 1.4,
            "two sites louder than one: {both} vs {one}"
        );
        // Nobody speaks: nothing to send.
        assert!(m.tick().is_none());
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut m = Mixer::new(1).expect("mixer");
        m.push(5, &[0xff; 3]);
        m.push(5, &[]);
        assert!(m.tick().is_none() || m.bad_packets > 0);
    }
}
