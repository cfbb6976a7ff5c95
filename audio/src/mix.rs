//! The sum of many voices: each source's Opus is decoded (opus-rs) into a queue of its
//! own, and every 20 ms one frame of each source that has one is summed. The room agent
//! plays the sum on its loudspeaker; the bridge writes it to the meeting's record. Pure:
//! packets in, one [`Mix::tick`] per 20 ms of the caller's clock.

use std::collections::{HashMap, VecDeque};

use opus_rs::OpusDecoder;

use crate::{FRAME, SAMPLE_RATE};

/// Longest a source's audio may queue before its oldest samples are dropped: more means
/// that voice is heard late.
const MAX_QUEUE: usize = 10 * FRAME;
/// A source silent for this many ticks is forgotten (it left, or muted).
const FORGET_AFTER: u32 = 250;
/// Most sources decoded at once: a room's audio slots carry at most three voices, and a
/// hostile stream of fresh ids must not grow the decoders without bound.
const MAX_SOURCES: usize = 64;

struct Source {
    decoder: OpusDecoder,
    queue: VecDeque<f32>,
    idle_ticks: u32,
}

pub struct Mix {
    sources: HashMap<u64, Source>,
    pcm: Vec<f32>,
    scratch: Vec<f32>,
    /// Packets that could not be decoded, or came from one source too many (counted,
    /// not fatal).
    pub bad_packets: u64,
}

impl Default for Mix {
    fn default() -> Self {
        Self::new()
    }
}

impl Mix {
    pub fn new() -> Self {
        Self {
            sources: HashMap::new(),
            pcm: vec![0.0; FRAME],
            // Opus packets carry at most 120 ms.
            scratch: vec![0.0; 6 * FRAME],
            bad_packets: 0,
        }
    }

    /// Sources heard in the last few seconds.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// One Opus packet from `source`.
    pub fn push(&mut self, source: u64, opus: &[u8]) {
        if opus.is_empty() {
            return;
        }
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_SOURCES {
            self.bad_packets += 1;
            return;
        }
        let s = match self.sources.entry(source) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let Ok(decoder) = OpusDecoder::new(SAMPLE_RATE as i32, 1) else {
                    self.bad_packets += 1;
                    return;
                };
                v.insert(Source {
                    decoder,
                    queue: VecDeque::with_capacity(MAX_QUEUE),
                    idle_ticks: 0,
                })
            }
        };
        match s
            .decoder
            .decode(opus, self.scratch.len(), &mut self.scratch)
        {
            Ok(n) => {
                s.queue.extend(&self.scratch[..n.min(self.scratch.len())]);
                let excess = s.queue.len().saturating_sub(MAX_QUEUE);
                s.queue.drain(..excess);
                s.idle_ticks = 0;
            }
            Err(_) => self.bad_packets += 1,
        }
    }

    /// The next 20 ms of the sum (soft-limited, so two loud voices do not wrap around),
    /// or `None` when no source had a frame.
    pub fn tick(&mut self) -> Option<&[f32]> {
        self.pcm.iter_mut().for_each(|s| *s = 0.0);
        let mut any = false;
        for s in self.sources.values_mut() {
            if s.queue.len() < FRAME {
                s.idle_ticks += 1;
                continue;
            }
            any = true;
            for (out, x) in self.pcm.iter_mut().zip(s.queue.drain(..FRAME)) {
                *out += x;
            }
        }
        self.sources.retain(|_, s| s.idle_ticks < FORGET_AFTER);
        if !any {
            return None;
        }
        for s in &mut self.pcm {
            *s = s.tanh();
        }
        Some(&self.pcm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{Tone, power_at};

    #[test]
    fn two_voices_are_summed_and_told_apart() {
        let (mut a, mut b) = (
            Tone::steady(440.0).expect("a"),
            Tone::steady(660.0).expect("b"),
        );
        let mut m = Mix::new();
        let mut out = Vec::new();
        for i in 0..100 {
            m.push(1, a.next_packet().expect("a"));
            if i < 50 {
                m.push(2, b.next_packet().expect("b"));
            }
            out.push(m.tick().expect("a frame each tick").to_vec());
        }
        assert_eq!(m.sources(), 2);
        let both: Vec<f32> = out[10..40].concat();
        let one: Vec<f32> = out[60..90].concat();
        assert!(power_at(&both, 660.0) > 1e-3 && power_at(&both, 440.0) > 1e-3);
        assert!(
            power_at(&one, 660.0) < power_at(&both, 660.0) / 100.0,
            "b stopped"
        );
        assert!(m.tick().is_none(), "nobody speaks: nothing");
    }

    proptest::proptest! {
        /// Whatever a hostile publisher sends as Opus, the mix counts it and goes on.
        #[test]
        fn garbage_is_counted_not_fatal(
            packets in proptest::collection::vec(
                (0u64..100, proptest::collection::vec(proptest::num::u8::ANY, 0..200)),
                0..40,
            )
        ) {
            let mut m = Mix::new();
            for (source, p) in &packets {
                m.push(*source, p);
                let _ = m.tick();
            }
            proptest::prop_assert!(m.sources() <= MAX_SOURCES);
        }
    }
}
