//! One slot of a subscriber, and one publisher packet into it. A slot is one m-line and
//! one continuous RTP stream: whichever source it carries, the subscriber sees the same
//! SSRC with sequence numbers, timestamps and VP8 PictureID/TL0PICIDX running on
//! (`rtp/rewrite.rs`, `rtp/vp8.rs`). A video slot moves to another source, or another
//! layer of the same source, only on a keyframe of the new one, since a decoder cannot
//! use what comes before it; until then it keeps forwarding what it had. Within a VP8
//! layer, only the frame rates the allocation chose pass (`rtp/temporal.rs`).

use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};

use super::{Peer, video_codec};
use crate::rtp::keyframe::{VideoCodec, is_keyframe_start};
use crate::rtp::red;
use crate::rtp::rewrite::StreamRewriter;
use crate::rtp::temporal::{FramePacket, TemporalFilter};
use crate::rtp::vp8::{self, Vp8Rewriter};
use crate::types::TrackKey;

/// How long after a base-layer frame's last packet its copy goes (`Peer::forward`):
/// longer than a 3G link's typical loss burst of a few packets.
const TAIL_COPY_AFTER: std::time::Duration = std::time::Duration::from_millis(40);
/// Copies waiting at most: a few frames' worth.
const MAX_TAIL_COPIES: usize = 16;

pub(crate) struct Slot {
    pub(crate) kind: MediaKind,
    /// Its position among the slots of its kind (`a{index}`, `v{index}`).
    pub(crate) index: usize,
    /// The m-line, once offered; `open` once the subscriber's answer accepted it.
    pub(super) mid: Option<Mid>,
    pub(super) open: bool,
    /// Audio: the voice this slot carries.
    pub(crate) voice: Option<TrackKey>,
    /// Video: the source and layer the allocation aims at (`None`: no video).
    pub(crate) target: Option<(TrackKey, Ssrc)>,
    /// Video: the source and layer forwarded now.
    pub(crate) current: Option<(TrackKey, Ssrc)>,
    /// Video: the source the slot policy put here (its layer is the allocator's).
    pub(crate) source: Option<TrackKey>,
    pub(crate) screen: bool,
    /// Video: which frame rates of the forwarded layer pass (the allocation's choice).
    pub(crate) temporal: TemporalFilter,
    /// Video: the frame rate to take up when the slot reaches its target layer; until
    /// then a slot going down keeps its old layer at the lowest frame rate, so the link
    /// is relieved at once instead of after the new layer's keyframe.
    pub(crate) temporal_next: Option<Option<u8>>,
    /// Video: the allocator's step for this slot's source (its ladder index).
    pub(crate) step: Option<usize>,
    rewriter: StreamRewriter,
    vp8: Vp8Rewriter,
    /// Publisher PT -> our PT, learnt on the first packet of each codec.
    pt_map: Vec<(u8, u8)>,
    /// Audio: the RED payload type this subscriber accepted on this slot (learnt on the
    /// first packet), and the previous frames to repeat.
    red_pt: Option<Option<u8>>,
    last_audio: red::History,
}

impl Slot {
    pub(super) fn new(kind: MediaKind, index: usize) -> Self {
        let clock = match kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        };
        Self {
            kind,
            index,
            mid: None,
            open: false,
            voice: None,
            target: None,
            current: None,
            source: None,
            screen: false,
            temporal: TemporalFilter::default(),
            temporal_next: None,
            step: None,
            rewriter: StreamRewriter::new(clock),
            vp8: Vp8Rewriter::default(),
            pt_map: Vec::new(),
            red_pt: None,
            last_audio: red::History::default(),
        }
    }

    /// Stop the video; `true` if it was forwarding something (the page's label changes).
    /// Whatever comes next continues the stream without a hole (`StreamRewriter::pause`).
    pub(super) fn stop_video(&mut self) -> bool {
        self.rewriter.pause();
        self.current.take().is_some()
    }

    /// Put another voice (or none) in this audio slot; `true` if it changed.
    pub(super) fn set_voice(&mut self, voice: Option<TrackKey>) -> bool {
        if self.voice == voice {
            return false;
        }
        self.voice = voice;
        self.rewriter.pause();
        true
    }

    /// The sources this slot may take packets from now (the room's routing table).
    pub(crate) fn routes(&self) -> impl Iterator<Item = TrackKey> + '_ {
        let (a, b) = match self.kind {
            MediaKind::Audio => (self.voice, None),
            MediaKind::Video => (self.current.map(|c| c.0), self.target.map(|t| t.0)),
        };
        a.into_iter().chain(b.filter(|b| Some(*b) != a))
    }
}

impl Peer {
    /// Forward one publisher packet into slot `slot`. Returns the layer this slot waits
    /// for a keyframe of, if any (the room then asks the publisher).
    pub(crate) fn forward(
        &mut self,
        slot: usize,
        key: TrackKey,
        params: &PayloadParams,
        packet: &RtpPacket,
        epoch: u64,
        now: Instant,
    ) -> Option<(TrackKey, Ssrc)> {
        // Before DTLS is up str0m queues what it is given and sends it all at once when
        // the session connects: on 3g-bad, whose handshake takes seconds, that was up to
        // 4.8 s of stale audio in one burst, filling the link's queue (measured).
        self.connected_at?;
        let s = self.slots.get_mut(slot)?;
        if !s.open {
            return None;
        }
        let mid = s.mid?;
        let is_video = s.kind == MediaKind::Video;
        let ssrc = packet.header.ssrc;
        if is_video {
            let here = Some((key, ssrc));
            let target = s.target?;
            if here == Some(target) && s.current != here {
                if !is_keyframe_start(video_codec(params), &packet.payload) {
                    return Some(target);
                }
                if s.current.map(|c| c.0) != Some(key) {
                    // A new source in this slot: the page relabels the tile now.
                    self.slots_changed = true;
                }
                s.current = here;
                s.temporal.restart();
                if let Some(t) = s.temporal_next.take() {
                    s.temporal.set_target(t);
                }
            } else if s.current != here {
                // Another layer; or the old one, forwarded until the target's keyframe.
                return None;
            }
        } else if s.voice != Some(key) {
            return None;
        }
        let in_pt = *params.pt();
        let pt = match s.pt_map.iter().find(|(i, _)| *i == in_pt) {
            Some((_, o)) => *o,
            None => {
                let local = self.rtc.codec_config().match_params(*params)?;
                let o = *local.pt();
                s.pt_map.push((in_pt, o));
                o
            }
        };
        // A new epoch (the publisher's audio resumed after silence) is a new source: the
        // rewriter continues the sequence numbers after the gap instead of leaving one.
        let source_id =
            ((key.participant.0 << 32) ^ u64::from(*packet.header.ssrc)).wrapping_add(epoch << 48);
        let desc = if is_video && video_codec(params) == VideoCodec::Vp8 {
            vp8::descriptor(&packet.payload)
        } else {
            None
        };
        if let Some(d) = desc
            && !s.temporal.admit(FramePacket {
                picture: d.picture_id,
                start: d.start,
                key: d.key,
                tid: d.tid,
                sync: d.sync,
            })
        {
            // A frame of a temporal layer this subscriber does not get: the numbers
            // after it close the gap, so its decoder sees nothing missing.
            s.rewriter.skip(source_id, *packet.seq_no);
            s.vp8.skip(source_id, &packet.payload);
            self.stats.rtp_skipped += 1;
            return None;
        }
        let rw = s
            .rewriter
            .rewrite(source_id, *packet.seq_no, packet.header.timestamp, now)?;
        let mut payload = packet.payload.clone();
        let mut pt = pt;
        if is_video {
            if video_codec(params) == VideoCodec::Vp8
                && let Some(p) = s.vp8.rewrite_shared(source_id, &payload)
            {
                payload = p;
            }
        } else {
            // str0m keeps RED on a codec's params only if the remote accepted it.
            let rtc = &self.rtc;
            let red_pt = *s.red_pt.get_or_insert_with(|| {
                let red = rtc.codec_config().match_params(*params)?.red()?;
                Some(*red)
            });
            let ts = packet.header.timestamp;
            if self.red.on()
                && let Some(red_pt) = red_pt
            {
                let red = s
                    .last_audio
                    .encode(pt, &packet.payload, ts, self.red_distance);
                s.last_audio.push(ts, payload);
                payload = red;
                pt = red_pt;
            } else {
                s.last_audio.push(ts, payload.clone());
            }
        }
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        // The subscriber's clock to now, so the packet leaves on the next poll with the
        // right send time (patched str0m, third_party/README.md).
        self.rtc.advance_time(now);
        let mut api = self.rtc.direct_api();
        // Second copies of base-layer frame tails that are due (see below).
        while let Some(&(due, m, seq)) = self.tail_copies.front() {
            if due > now {
                break;
            }
            self.tail_copies.pop_front();
            if let Some(tx) = api.stream_tx_by_mid(m, None)
                && tx.resend(seq.into(), now)
            {
                self.stats.tail_copies += 1;
            }
        }
        // On a path that repairs slowly (`policy/frame_rate.rs`), the last packet of a
        // base-layer frame goes out twice, the copy a little later (past a loss burst):
        // a frame whose tail was lost is noticed from the copy, not from the next frame
        // a quarter of a second later, and is repaired before it becomes a freeze.
        if self.protect_tails && packet.header.marker && desc.is_some_and(|d| d.tid == Some(0)) {
            if self.tail_copies.len() >= MAX_TAIL_COPIES {
                self.tail_copies.pop_front();
            }
            self.tail_copies
                .push_back((now + TAIL_COPY_AFTER, mid, rw.seq));
        }
        let tx = api.stream_tx_by_mid(mid, None)?;
        tx.write_rtp(
            RtpWrite::new(
                pt.into(),
                rw.seq.into(),
                rw.timestamp,
                packet.timestamp,
                payload,
            )
            .marker(packet.header.marker)
            .ext_vals(ext)
            .nackable(is_video),
        );
        self.stats.rtp_forwarded += 1;
        None
    }
}
