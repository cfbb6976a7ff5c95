//! What the meeting's record costs: decode the voices the room hears, mix them every
//! 20 ms and encode the mix, for one hour of meeting, as the recorder does. A 270-site
//! province meeting has at most three voices in its audio slots (and the silent ones are
//! not forwarded at all), so three voices is its case; one and six for comparison.
//!
//! `cargo bench -p cauhop-audio --bench record` prints CPU seconds per hour of meeting,
//! the share of one core, and the file's size per hour (tones are harder to compress
//! than speech: a bound, not the typical size). Under `cargo test` (no `--bench`) a
//! short smoke run.

use std::time::{Duration, Instant};

use cauhop_audio::FRAME;
use cauhop_audio::mix::Mix;
use cauhop_audio::ogg_opus::OggOpusWriter;
use cauhop_audio::tone::Tone;
use opus_rs::{Application, OpusEncoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Simulated meeting length per row (the figures are scaled to an hour).
    let seconds: u64 = if std::env::args().any(|a| a == "--bench") {
        120
    } else {
        5
    };
    let frames = seconds * 50;
    println!("record cost per hour of meeting ({seconds} s simulated per row)");
    println!(
        "{:>7} {:>14} {:>12} {:>12}",
        "voices", "CPU s / hour", "core share", "MB / hour"
    );
    for voices in [0usize, 1, 3, 6] {
        // The publishers' packets, made beforehand: their cost is the sites', not ours.
        let mut tones: Vec<Tone> = (0..voices)
            .map(|i| Tone::steady(300.0 + 110.0 * i as f32))
            .collect::<Result<_, _>>()?;
        let packets: Vec<Vec<Vec<u8>>> = tones
            .iter_mut()
            .map(|t| {
                (0..frames)
                    .map(|_| t.next_packet().map(<[u8]>::to_vec))
                    .collect::<Result<_, _>>()
            })
            .collect::<Result<_, _>>()?;
        let mut encoder = OpusEncoder::new(48_000, 1, Application::Voip)?;
        encoder.bitrate_bps = 24_000;
        let mut out = OggOpusWriter::new(Vec::new(), 1, "cauhop", &[])?;
        let mut mix = Mix::new();
        let mut buf = vec![0u8; 1500];
        let silence = vec![0f32; FRAME];
        let start = Instant::now();
        for f in 0..frames as usize {
            for (v, p) in packets.iter().enumerate() {
                mix.push(v as u64, &p[f]);
            }
            let pcm = mix.tick().unwrap_or(&silence);
            let n = encoder.encode(pcm, FRAME, &mut buf)?;
            out.write(&buf[..n])?;
        }
        let spent = start.elapsed();
        let bytes = out.finish(&buf[..1])?.len();
        let per_hour = |x: f64| x * 3600.0 / seconds as f64;
        println!(
            "{voices:>7} {:>14.1} {:>11.2}% {:>12.1}",
            per_hour(spent.as_secs_f64()),
            100.0 * spent.as_secs_f64() / Duration::from_secs(seconds).as_secs_f64(),
            per_hour(bytes as f64) / 1e6
        );
    }
    Ok(())
}
