//! One floor turn's picture and voice as a WebM file, as the floor holder sent them: its
//! camera's VP8 frames (one simulcast encoding, whole frames from `Vp8Frames`) and its
//! own Opus packets, muxed by libwebm (the `webm` crate) in live mode, so a file cut off
//! by a crash still plays up to its last cluster.
//!
//! libwebm's segment cannot cross threads, and muxing must never hold up the recorder's
//! 20 ms mix: each turn gets a thread of its own, fed through a bounded queue (a turn
//! whose thread falls behind loses frames, the meeting's audio record does not wait).
//! The file starts at the turn's first keyframe (its size names the video track); the
//! holder's voice before it is left out. Dropping the [`TurnWriter`] finishes the file.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use cauhop_sfu::rtp::vp8_frames::Frame;
use tracing::{info, warn};
use webm::mux::{AudioCodecId, SegmentBuilder, SegmentMode, VideoCodecId, Writer};

/// Frames and packets waiting for the turn's thread: a few seconds of both.
const QUEUE: usize = 512;

enum Media {
    Video(Frame, Duration),
    Audio(Vec<u8>, Duration),
}

/// The recorder's end of one turn's file.
pub(crate) struct TurnWriter {
    tx: SyncSender<Media>,
}

impl TurnWriter {
    /// Start the turn's thread; `since` is the recorder's clock now (the turn's start).
    pub(crate) fn start(path: PathBuf, since: Duration) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let name = path.display().to_string();
        let spawned = std::thread::Builder::new()
            .name("cauhop-record-turn".into())
            .spawn(move || write_turn(&path, since, &rx));
        if let Err(e) = spawned {
            warn!(file = %name, "the turn's video is not recorded: no thread ({e})");
        }
        Self { tx }
    }

    /// A complete frame of the holder's camera, at `at` on the recorder's clock.
    pub(crate) fn video(&self, frame: Frame, at: Duration) {
        self.send(Media::Video(frame, at));
    }

    /// One of the holder's Opus packets, at `at`.
    pub(crate) fn audio(&self, opus: &[u8], at: Duration) {
        self.send(Media::Audio(opus.to_vec(), at));
    }

    fn send(&self, m: Media) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(m) {
            // Counted by the thread as a gap in its frames; never waited for.
        }
    }
}

/// OpusHead (RFC 7845 5.1) as WebM's CodecPrivate: mono, no pre-skip (the packets are
/// the publisher's own, from their first).
fn opus_head() -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1);
    h.push(1);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

fn write_turn(path: &std::path::Path, since: Duration, rx: &Receiver<Media>) {
    // Wait for the first keyframe: it says the picture's size, and a player starts there.
    let (first, first_at) = loop {
        match rx.recv() {
            Ok(Media::Video(f, at)) if f.key && f.size.is_some() => break (f, at),
            Ok(_) => continue,
            // The turn ended before any picture: no file.
            Err(_) => return,
        }
    };
    let Some((w, h)) = first.size else { return };
    let file = match std::fs::File::create_new(path) {
        Ok(f) => f,
        Err(e) => {
            warn!(file = %path.display(), "the turn's video is not recorded: {e}");
            return;
        }
    };
    let built = SegmentBuilder::new(Writer::new(file))
        .and_then(|b| b.set_mode(SegmentMode::Live))
        .and_then(|b| b.set_writing_app("cauhop"))
        .and_then(|b| b.add_video_track(u32::from(w), u32::from(h), VideoCodecId::VP8, None))
        .and_then(|(b, video)| {
            let (b, audio) = b.add_audio_track(48_000, 1, AudioCodecId::Opus, None)?;
            let b = b.set_codec_private(audio, &opus_head())?;
            Ok((b.build(), video, audio))
        });
    let (mut segment, video, audio) = match built {
        Ok(x) => x,
        Err(e) => {
            warn!(file = %path.display(), "the turn's video is not recorded: {e:?}");
            return;
        }
    };
    // Times from the first keyframe; never backwards across tracks (libwebm's rule).
    let mut last_ns = 0u64;
    let mut stamp = |at: Duration| {
        let ns = u64::try_from(at.saturating_sub(first_at).as_nanos()).unwrap_or(u64::MAX);
        last_ns = last_ns.max(ns);
        last_ns
    };
    let (mut frames, mut packets, mut refused) = (0u64, 0u64, 0u64);
    let mut put = |segment: &mut webm::mux::Segment<_>, m: Media| {
        let ok = match m {
            Media::Video(f, at) => {
                frames += 1;
                segment.add_frame(video, &f.data, stamp(at), f.key).is_ok()
            }
            Media::Audio(p, at) if at >= first_at => {
                packets += 1;
                segment.add_frame(audio, &p, stamp(at), true).is_ok()
            }
            Media::Audio(..) => true,
        };
        if !ok {
            refused += 1;
        }
    };
    put(&mut segment, Media::Video(first, first_at));
    while let Ok(m) = rx.recv() {
        put(&mut segment, m);
    }
    let seconds = last_ns as f64 / 1e9;
    if segment.finalize(None).is_err() {
        warn!(file = %path.display(), "the turn's video was not finished cleanly; it plays up to its last cluster");
    }
    info!(file = %path.display(), frames, packets, refused, seconds, started_after_s = since.as_secs_f64(), "turn's video written");
}
