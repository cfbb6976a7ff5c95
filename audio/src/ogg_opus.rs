//! Ogg/Opus files (RFC 7845): the meeting's audio record, which any player opens
//! (browsers, VLC, ffmpeg, GStreamer).
//!
//! The writer ends a page every second and hands it to the file at once, so a bridge
//! that crashes leaves a file readable up to its last second: Ogg readers take a stream
//! without its last page (the end-of-stream flag only says nothing follows).

use std::io::{self, Read, Seek, Write};

use ogg::{PacketReader, PacketWriteEndInfo, PacketWriter};
use opus_rs::OpusDecoder;

use crate::{FRAME, SAMPLE_RATE};

/// Frames per Ogg page: a page (and so what a crash can lose) is one second.
pub const FRAMES_PER_PAGE: u32 = 50;
/// Samples the decoder drops at the start (the encoder's lookahead): RFC 7845's usual
/// 3.75 ms plus Opus's 2.5 ms, as libopus writes it.
pub const PRE_SKIP: u16 = 312;

#[derive(Debug, thiserror::Error)]
pub enum OggOpusError {
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    #[error("not an Ogg stream: {0}")]
    Ogg(#[from] ogg::OggReadError),
    #[error("not an Opus stream (no OpusHead)")]
    NotOpus,
    #[error("Opus decoder: {0}")]
    Decoder(&'static str),
}

/// Writes 20 ms mono Opus frames into an Ogg stream.
pub struct OggOpusWriter<W: Write> {
    pages: PacketWriter<'static, W>,
    serial: u32,
    /// Samples written, after the pre-skip.
    samples: u64,
    in_page: u32,
}

impl<W: Write> OggOpusWriter<W> {
    /// Start the stream: its two header pages, `tags` as Vorbis comments
    /// (`TITLE=...`).
    pub fn new(out: W, serial: u32, vendor: &str, tags: &[String]) -> io::Result<Self> {
        let mut pages = PacketWriter::new(out);
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // mono
        head.extend_from_slice(&PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // mapping family 0: mono or stereo, no table
        pages.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        let mut comments = Vec::new();
        comments.extend_from_slice(b"OpusTags");
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        comments.extend_from_slice(&len(vendor.len()));
        comments.extend_from_slice(vendor.as_bytes());
        comments.extend_from_slice(&len(tags.len()));
        for t in tags {
            comments.extend_from_slice(&len(t.len()));
            comments.extend_from_slice(t.as_bytes());
        }
        pages.write_packet(comments, serial, PacketWriteEndInfo::EndPage, 0)?;
        pages.inner_mut().flush()?;
        Ok(Self {
            pages,
            serial,
            samples: 0,
            in_page: 0,
        })
    }

    /// One 20 ms frame; a page is ended, and flushed, every [`FRAMES_PER_PAGE`].
    pub fn write(&mut self, opus: &[u8]) -> io::Result<()> {
        self.in_page += 1;
        let end = if self.in_page >= FRAMES_PER_PAGE {
            self.in_page = 0;
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        self.put(opus, end)
    }

    /// The last frame, ending the stream; returns the output.
    pub fn finish(mut self, opus: &[u8]) -> io::Result<W> {
        self.put(opus, PacketWriteEndInfo::EndStream)?;
        Ok(self.pages.into_inner())
    }

    /// How long the stream is so far.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.samples * 1_000_000 / u64::from(SAMPLE_RATE))
    }

    fn put(&mut self, opus: &[u8], end: PacketWriteEndInfo) -> io::Result<()> {
        self.samples += FRAME as u64;
        let granule = self.samples + u64::from(PRE_SKIP);
        let flush = end != PacketWriteEndInfo::NormalPacket;
        self.pages
            .write_packet(opus.to_vec(), self.serial, end, granule)?;
        if flush {
            self.pages.inner_mut().flush()?;
        }
        Ok(())
    }
}

/// A decoded Ogg/Opus stream: its samples (pre-skip removed), its tags, and whether it
/// ended with its end-of-stream page or was cut short (a crash).
#[derive(Debug, Default)]
pub struct Decoded {
    pub pcm: Vec<f32>,
    pub tags: Vec<String>,
    pub complete: bool,
}

impl Decoded {
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.pcm.len() as f64 / f64::from(SAMPLE_RATE))
    }
}

/// Decode a whole Ogg/Opus stream. A stream cut short (no end-of-stream page, a last page
/// half written) decodes up to its last whole page.
pub fn decode<R: Read + Seek>(input: R) -> Result<Decoded, OggOpusError> {
    let mut pages = PacketReader::new(input);
    let head = pages.read_packet()?.ok_or(OggOpusError::NotOpus)?;
    if !head.data.starts_with(b"OpusHead") || head.data.len() < 19 {
        return Err(OggOpusError::NotOpus);
    }
    let pre_skip = usize::from(u16::from_le_bytes([head.data[10], head.data[11]]));
    let mut out = Decoded::default();
    let mut decoder = OpusDecoder::new(SAMPLE_RATE as i32, 1).map_err(OggOpusError::Decoder)?;
    let mut pcm = vec![0f32; 6 * FRAME];
    loop {
        let packet = match pages.read_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A page cut off by a crash: what came before stands.
            Err(ogg::OggReadError::ReadError(_)) => break,
            Err(e) => return Err(e.into()),
        };
        if packet.data.starts_with(b"OpusTags") {
            out.tags = tags(&packet.data);
            continue;
        }
        out.complete |= packet.last_in_stream();
        match decoder.decode(&packet.data, pcm.len(), &mut pcm) {
            Ok(n) => out.pcm.extend_from_slice(&pcm[..n.min(pcm.len())]),
            // A frame that does not decode is a gap of its length, not the end.
            Err(_) => out.pcm.extend(std::iter::repeat_n(0.0, FRAME)),
        }
    }
    out.pcm.drain(..pre_skip.min(out.pcm.len()));
    Ok(out)
}

fn tags(data: &[u8]) -> Vec<String> {
    let u32_at = |i: usize| {
        data.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let mut out = Vec::new();
    let Some(vendor) = u32_at(8) else { return out };
    let mut i = 12 + vendor;
    let Some(n) = u32_at(i) else { return out };
    i += 4;
    for _ in 0..n.min(1000) {
        let Some(len) = u32_at(i) else { break };
        let Some(t) = data.get(i + 4..i + 4 + len) else {
            break;
        };
        out.push(String::from_utf8_lossy(t).into_owned());
        i += 4 + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::tone::{Tone, power_at};

    fn write_tones(frames: usize, finish: bool) -> Vec<u8> {
        let mut w = OggOpusWriter::new(
            Cursor::new(Vec::new()),
            7,
            "cauhop",
            &["TITLE=Giao ban".into()],
        )
        .expect("header");
        let (mut a, mut b) = (
            Tone::steady(440.0).expect("a"),
            Tone::steady(880.0).expect("b"),
        );
        for i in 0..frames {
            let t = if i < frames / 2 { &mut a } else { &mut b };
            let p = t.next_packet().expect("encode").to_vec();
            w.write(&p).expect("write");
        }
        if finish {
            let p = a.next_packet().expect("encode").to_vec();
            w.finish(&p).expect("finish").into_inner()
        } else {
            w.pages.into_inner().into_inner()
        }
    }

    #[test]
    fn a_written_stream_decodes_to_its_length_with_each_tone_in_its_half() {
        let bytes = write_tones(200, true);
        let d = decode(Cursor::new(bytes)).expect("decode");
        assert!(d.complete);
        assert_eq!(d.tags, ["TITLE=Giao ban"]);
        // 201 frames of 20 ms, less the pre-skip.
        let want = 201 * FRAME - usize::from(PRE_SKIP);
        assert_eq!(d.pcm.len(), want);
        let first = &d.pcm[FRAME * 20..FRAME * 80];
        let second = &d.pcm[FRAME * 120..FRAME * 180];
        assert!(power_at(first, 440.0) > 100.0 * power_at(first, 880.0));
        assert!(power_at(second, 880.0) > 100.0 * power_at(second, 440.0));
    }

    #[test]
    fn a_stream_cut_short_by_a_crash_decodes_up_to_its_last_page() {
        // 180 frames written, never finished: three whole pages reached the file.
        let bytes = write_tones(180, false);
        let d = decode(Cursor::new(bytes.clone())).expect("an unfinished stream decodes");
        assert!(!d.complete);
        let secs = |d: &Decoded| d.duration().as_secs_f64();
        assert!((2.9..=3.0).contains(&secs(&d)), "{}", secs(&d));
        // And the last of them torn in half by the crash: the two before it stand.
        let mut torn = bytes;
        torn.truncate(torn.len() - 37);
        let d = decode(Cursor::new(torn)).expect("a torn stream decodes");
        assert!((1.9..=2.0).contains(&secs(&d)), "{}", secs(&d));
    }

    #[test]
    fn what_is_not_ogg_opus_is_refused() {
        assert!(decode(Cursor::new(b"not a file".to_vec())).is_err());
    }
}
