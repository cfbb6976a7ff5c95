//! The publishing side of a peer: the tracks it sends, their simulcast layers with a
//! rate meter each, keyframe requests towards it, its uplink's grade, and which layers
//! it should send at all (`policy/layers.rs`).

use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::rtp::{RtpPacket, Ssrc};
use tracing::{debug, info};

use super::{PayloadParamsCache, Peer, Propagated, track_kind, video_codec};
use crate::ParticipantId;
use crate::policy::allocator::Layer;
use crate::policy::layers::LayerPause;
use crate::policy::rate::RateMeter;
use crate::policy::throttle::KeyframeThrottle;
use crate::rtp::keyframe::VideoCodec;
use crate::types::{SfuEvent, TrackKey};

/// One incoming encoding of a track: the only one, or one simulcast layer.
pub(super) struct LayerIn {
    ssrc: Ssrc,
    rid: Option<str0m::media::Rid>,
    /// From the last VP8 keyframe; H.264 layers are ranked by bitrate alone.
    height: Option<u16>,
    meter: RateMeter,
    /// The last rate measured while it was sent: the price of a paused layer.
    last_bps: u32,
    throttle: KeyframeThrottle,
    /// VP8 temporal layers: a meter per TID, when each was last seen, and (as
    /// `last_bps`) the rates last measured while the layer was sent.
    temporal: Box<[TemporalIn; MAX_TID]>,
    /// We had paused it when last priced: on resuming, its meters start afresh.
    was_paused: bool,
    /// Frame starts (VP8), for the encoding's frame interval, and its last full reading.
    frames: RateMeter,
    last_frames: u32,
}

/// Temporal layers told apart (the descriptor's TID has two bits).
const MAX_TID: usize = 4;

/// A temporal layer counts while frames of it arrived this recently: long enough for a
/// 7.5 fps base layer, short enough that a publisher that stops sending it is believed.
const TEMPORAL_SEEN: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
struct TemporalIn {
    meter: RateMeter,
    /// Counts frames (one "byte" per frame start), for the step's frame rate.
    frames: RateMeter,
    seen: Option<Instant>,
    last_bps: u32,
    /// The frame rate (frames × 8 per second) last measured while sent in full.
    last_frames: u32,
}

pub(super) struct TrackIn {
    pub(super) mid: Mid,
    pub(super) kind: MediaKind,
    /// A second video track: a shared screen.
    pub(super) screen: bool,
    layers: Vec<LayerIn>,
    pause: LayerPause<Ssrc>,
}

/// A publisher track's layers as the allocator sees them, ascending, with their SSRCs.
#[derive(Clone)]
pub(crate) struct PublishedLayers {
    pub(crate) key: TrackKey,
    pub(crate) layers: Vec<(Ssrc, Option<str0m::media::Rid>, Layer)>,
}

impl Peer {
    /// What this participant publishes: each track, its kind, and whether it is a screen.
    pub(crate) fn published(&self) -> impl Iterator<Item = (TrackKey, MediaKind, bool)> + '_ {
        self.tracks_in.iter().map(|t| {
            (
                TrackKey {
                    participant: self.id,
                    mid: t.mid,
                },
                t.kind,
                t.screen,
            )
        })
    }

    pub(super) fn open_track_in(
        &mut self,
        mid: Mid,
        kind: MediaKind,
        out: &mut Vec<(ParticipantId, Propagated)>,
    ) {
        if self.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        // A second video track is a shared screen (the page adds it beside the camera).
        let screen =
            kind == MediaKind::Video && self.tracks_in.iter().any(|t| t.kind == MediaKind::Video);
        info!(participant = %self.id, site = %self.options.name, %mid, ?kind, screen, "track published");
        self.tracks_in.push(TrackIn {
            mid,
            kind,
            screen,
            layers: Vec::new(),
            pause: LayerPause::default(),
        });
        self.send_event(SfuEvent::Published {
            mid: mid.to_string(),
            kind: track_kind(kind),
        });
        out.push((self.id, Propagated::TracksChanged));
    }

    pub(super) fn close_track_in(&mut self, mid: Mid, out: &mut Vec<(ParticipantId, Propagated)>) {
        let Some(pos) = self.tracks_in.iter().position(|t| t.mid == mid) else {
            return;
        };
        let t = self.tracks_in.remove(pos);
        info!(participant = %self.id, site = %self.options.name, %mid, "track unpublished");
        self.send_event(SfuEvent::Unpublished {
            mid: mid.to_string(),
            kind: track_kind(t.kind),
        });
        out.push((self.id, Propagated::TracksChanged));
    }

    pub(super) fn handle_rtp(
        &mut self,
        mut packet: RtpPacket,
        now: Instant,
        out: &mut Vec<(ParticipantId, Propagated)>,
    ) {
        self.stats.rtp_in += 1;
        let ssrc = packet.header.ssrc;
        let pt = *packet.header.payload_type;
        let entry = match self.ssrc_mid.get(&ssrc) {
            Some(e) if e.1.pt == pt => *e,
            _ => {
                let mut api = self.rtc.direct_api();
                let Some(rx) = api.stream_rx(&ssrc) else {
                    return;
                };
                let mid = rx.mid();
                // str0m NACKs only publishers that negotiated RTX; senders without it
                // (webrtc-rs, some room systems) still answer NACKs on the main SSRC,
                // and on a 3G uplink that repair is worth more than the saved bytes.
                if self
                    .tracks_in
                    .iter()
                    .any(|t| t.mid == mid && t.kind == MediaKind::Video)
                {
                    rx.suppress_nack(false);
                }
                let rid = rx.rid();
                // RED (RFC 2198) is folded into its codec's params in str0m.
                let red_pt = str0m::media::Pt::from(pt);
                let found = self
                    .rtc
                    .codec_config()
                    .find(|p| *p.pt() == pt || p.red() == Some(red_pt))
                    .cloned();
                let red = found.is_some_and(|p| *p.pt() != pt);
                let e = (
                    mid,
                    PayloadParamsCache {
                        pt,
                        params: found,
                        rid,
                        red,
                    },
                );
                self.ssrc_mid.insert(ssrc, e);
                e
            }
        };
        let (mid, cache) = entry;
        let Some(params) = cache.params else { return };
        if cache.red {
            // Subscribers get plain Opus, or the SFU's own RED if their link needs it.
            let Some(primary) = crate::rtp::red::primary(&packet.payload) else {
                return;
            };
            packet.payload = primary;
            packet.header.payload_type = params.pt();
        }
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        if track.kind == MediaKind::Audio {
            self.stats.audio_rtp_in += 1;
        }
        let layer = match track.layers.iter().position(|l| l.ssrc == ssrc) {
            Some(i) => &mut track.layers[i],
            None => {
                debug!(participant = %self.id, site = %self.options.name, %mid, rid = ?cache.rid, %ssrc, "new incoming layer");
                track.layers.push(LayerIn {
                    ssrc,
                    rid: cache.rid,
                    height: None,
                    meter: RateMeter::default(),
                    last_bps: 0,
                    throttle: KeyframeThrottle::default(),
                    temporal: Box::default(),
                    was_paused: false,
                    frames: RateMeter::default(),
                    last_frames: 0,
                });
                let last = track.layers.len() - 1;
                &mut track.layers[last]
            }
        };
        // What the layer costs on a subscriber's link: payload, RTP header, SRTP tag, UDP
        // and IP headers.
        let wire = packet.payload.len() + 12 + 10 + 28;
        layer.meter.add(now, wire);
        if track.kind == MediaKind::Video {
            if video_codec(&params) == VideoCodec::Vp8 {
                if let Some((_, h)) = crate::rtp::vp8::keyframe_size(&packet.payload) {
                    layer.height = Some(h);
                }
                let d = crate::rtp::vp8::descriptor(&packet.payload);
                if let Some(d) = d
                    && let Some(t) = d.tid
                    && let Some(tl) = layer.temporal.get_mut(usize::from(t))
                {
                    tl.meter.add(now, wire);
                    tl.seen = Some(now);
                    if d.start {
                        tl.frames.add(now, 1);
                    }
                }
                if d.is_some_and(|d| d.start) {
                    layer.frames.add(now, 1);
                }
            }
        } else if let Some(level) = packet.header.ext_vals.audio_level {
            out.push((
                self.id,
                Propagated::AudioLevel(level.unsigned_abs().min(127)),
            ));
        }
        let key = TrackKey {
            participant: self.id,
            mid,
        };
        out.push((
            self.id,
            Propagated::Rtp {
                key,
                params,
                packet,
            },
        ));
    }

    /// A subscriber (or the SFU itself) wants a keyframe of one of our tracks.
    /// `layer`: the SSRC of one simulcast layer; `None` asks every layer.
    pub(crate) fn request_keyframe(
        &mut self,
        mid: Mid,
        layer: Option<Ssrc>,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        let mut api = self.rtc.direct_api();
        if track.layers.is_empty() {
            // Nothing received yet: ask the track's main stream, if str0m knows it.
            if let Some(rx) = api.stream_rx_by_mid(mid, None) {
                rx.request_keyframe(kind);
                self.stats.keyframe_requests_sent += 1;
            }
            return;
        }
        for l in &mut track.layers {
            if layer.is_some_and(|s| s != l.ssrc) || !l.throttle.allow(now) {
                continue;
            }
            if let Some(rx) = api.stream_rx(&l.ssrc) {
                rx.request_keyframe(kind);
                self.stats.keyframe_requests_sent += 1;
            }
        }
    }

    /// Every published video track's layers, ascending: the encodings by frame height
    /// when every one's is known, else by bitrate; with `temporal`, each VP8 encoding
    /// that sends temporal layers as one step per frame rate (`allocator::Layer`). A
    /// layer counts when it was sent within the last second, or when we paused it
    /// (priced at its last rate: it resumes on demand).
    pub(crate) fn published_layers(
        &mut self,
        now: Instant,
        temporal: bool,
        out: &mut Vec<PublishedLayers>,
    ) {
        type Encoding = (
            Ssrc,
            Option<str0m::media::Rid>,
            u16,
            u32,
            Vec<(Option<u8>, u32, u16)>,
        );
        for t in &mut self.tracks_in {
            if t.kind != MediaKind::Video {
                continue;
            }
            let pause = &t.pause;
            let mut encodings: Vec<Encoding> = t
                .layers
                .iter_mut()
                .filter_map(|l| {
                    let paused = pause.paused(l.ssrc);
                    if l.was_paused && !paused {
                        // Resumed: what the meters hold is the decay of the pause.
                        l.meter = RateMeter::default();
                        l.frames = RateMeter::default();
                        for t in l.temporal.iter_mut() {
                            t.meter = RateMeter::default();
                            t.frames = RateMeter::default();
                        }
                    }
                    l.was_paused = paused;
                    let bps = held(&mut l.meter, &mut l.last_bps, paused, now);
                    if bps == 0 {
                        return None;
                    }
                    let steps = if temporal {
                        temporal_steps(&mut l.temporal, now, paused, bps)
                    } else {
                        Vec::new()
                    };
                    // A paused layer keeps the frame rate it had, as its price (a layer
                    // of unknown rate passes any frame-rate limit).
                    let frames = held(&mut l.frames, &mut l.last_frames, paused, now);
                    let steps = if steps.is_empty() {
                        vec![(None, bps, frame_ms(frames))]
                    } else {
                        steps
                    };
                    Some((l.ssrc, l.rid, l.height.unwrap_or(0), bps, steps))
                })
                .collect();
            if encodings.iter().all(|e| e.2 > 0) {
                encodings.sort_by_key(|e| (e.2, e.3));
            } else {
                encodings.sort_by_key(|e| e.3);
            }
            let layers = encodings
                .into_iter()
                .flat_map(|(ssrc, rid, height, _, steps)| {
                    steps.into_iter().map(move |(temporal, bps, frame_ms)| {
                        (
                            ssrc,
                            rid,
                            Layer {
                                height,
                                bps,
                                temporal,
                                frame_ms,
                            },
                        )
                    })
                })
                .collect();
            out.push(PublishedLayers {
                key: TrackKey {
                    participant: self.id,
                    mid: t.mid,
                },
                layers,
            });
        }
    }

    /// Tell the publisher which layers of `mid` to send: `layers` ascending (the
    /// allocator's view), `in_use` those some subscriber receives or waits for.
    pub(crate) fn update_layer_use(
        &mut self,
        now: Instant,
        mid: Mid,
        layers: &[Ssrc],
        in_use: &[Ssrc],
    ) {
        let Some(t) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        // Only simulcast layers can be switched off; a single stream is what it is.
        if t.layers.len() < 2 || t.layers.iter().any(|l| l.rid.is_none()) {
            return;
        }
        let Some(active) = t.pause.update(now, layers, in_use) else {
            return;
        };
        let active: Vec<String> = t
            .layers
            .iter()
            .filter(|l| active.contains(&l.ssrc))
            .filter_map(|l| l.rid.map(|r| r.to_string()))
            .collect();
        debug!(participant = %self.id, site = %self.options.name, %mid, ?active, "layers to send");
        self.send_event(SfuEvent::Layers {
            mid: mid.to_string(),
            active,
        });
    }

    /// Our uplink's grade, from the last second's stats; `Some` when it changed.
    pub(crate) fn uplink_quality(&mut self) -> Option<crate::policy::quality::Grade> {
        let (loss, jitter) = self.uplink_sample.take()?;
        let rtt = self.stats.rtt_ms.unwrap_or(0.0);
        let g = self.uplink.sample(loss, rtt, jitter);
        self.stats.uplink = self.uplink.grade().as_str();
        if let Some(g) = g {
            // What the grade was read from, for the IT officer's log.
            info!(participant = %self.id, site = %self.options.name, grade = g.as_str(), loss, rtt_ms = rtt, jitter_ms = jitter, "uplink grade");
        }
        g
    }
}

/// A meter's reading to price a layer by. Learnt into `last` only once the meter has a
/// whole window of the layer sent in full: once paused, a meter decays towards zero, and
/// a 720p layer priced at what trickled in last was chosen on a 250 kbit/s link (the
/// testkit); just resumed, it read a fraction of its rate, and a 384 kbit/s commune was
/// given 720p (the weak-link simulation). Paused or unsettled: the last full reading.
fn held(meter: &mut RateMeter, last: &mut u32, paused: bool, now: Instant) -> u32 {
    let measured = meter.bps(now);
    let settled = meter.settled(now);
    if !paused && settled && measured > 0 {
        *last = measured;
    }
    if paused || !settled {
        (*last).max(measured)
    } else {
        measured
    }
}

/// A frame meter's reading (frames × 8 per second) as the mean interval in ms.
fn frame_ms(meter_bps: u32) -> u16 {
    let fps = f64::from(meter_bps) / 8.0;
    if fps < 0.5 {
        return 0;
    }
    (1000.0 / fps).round().min(f64::from(u16::MAX)) as u16
}

/// One encoding's frame-rate steps: for each temporal layer 0..=n seen lately, what it
/// and those below it cost (a share of `total`, the encoding's measured rate, so the
/// steps and the encoding agree) and their frame interval. Empty when the encoding has
/// no temporal layers.
fn temporal_steps(
    layers: &mut [TemporalIn; MAX_TID],
    now: Instant,
    paused: bool,
    total: u32,
) -> Vec<(Option<u8>, u32, u16)> {
    let recent = |l: &TemporalIn| {
        l.seen
            .is_some_and(|at| now.saturating_duration_since(at) < TEMPORAL_SEEN)
    };
    let top = layers
        .iter()
        .rposition(|l| if paused { l.last_bps > 0 } else { recent(l) });
    let Some(top) = top.filter(|t| *t > 0) else {
        return Vec::new();
    };
    let mut rates = [0u32; MAX_TID];
    for (i, l) in layers.iter_mut().enumerate().take(top + 1) {
        rates[i] = held(&mut l.meter, &mut l.last_bps, paused, now);
    }
    let sum: u64 = rates.iter().map(|r| u64::from(*r)).sum();
    if sum == 0 {
        return Vec::new();
    }
    let (mut acc, mut frames) = (0u64, 0u32);
    (0..=top)
        .map(|i| {
            acc += u64::from(rates[i]);
            let l = &mut layers[i];
            frames = frames.saturating_add(held(&mut l.frames, &mut l.last_frames, paused, now));
            let bps = (u64::from(total) * acc / sum).max(1);
            (
                Some(i as u8),
                bps.min(u64::from(u32::MAX)) as u32,
                frame_ms(frames),
            )
        })
        .collect()
}
