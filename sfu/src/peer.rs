//! One participant's WebRTC session: a str0m `Rtc` in RTP mode plus the bookkeeping of
//! what it publishes (tracks in) and what it is subscribed to (tracks out).
//!
//! A `Peer` never touches another peer: everything that crosses participants (a packet to
//! forward, a keyframe request for a publisher, a track that opened) comes out of
//! [`Peer::poll`] as a [`Propagated`] value, and the driver applies it to the others. That
//! keeps the borrow of one `Rtc` at a time and makes the fan-out explicit in one place.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::Receive;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::allocator::{AllocConfig, Allocator, Layer};
use crate::congestion::CongestionDetector;
use crate::handle::{
    Forwarding, JoinOptions, OfferOutcome, PeerStats, SfuEvent, TrackKind, ViewHints,
};
use crate::keyframe::{VideoCodec, is_keyframe_start};
use crate::quality::QualityTracker;
use crate::rate::RateMeter;
use crate::red::{self, RedSwitch};
use crate::rewrite::StreamRewriter;
use crate::throttle::KeyframeThrottle;
use crate::vp8::{self, Vp8Rewriter};
use crate::{ParticipantId, SfuError};

/// A publisher's track, named across the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TrackKey {
    pub(crate) participant: ParticipantId,
    pub(crate) mid: Mid,
}

/// Something one peer produced that other peers must act on.
// The RTP variant is large, but boxing it would allocate once per forwarded packet; the
// queue these live in is reused, so the size costs nothing per packet.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Propagated {
    TrackOpened(TrackKey, MediaKind),
    TrackClosed(TrackKey),
    Rtp {
        key: TrackKey,
        params: PayloadParams,
        packet: RtpPacket,
    },
    /// A subscriber wants a keyframe of this publisher track (of one simulcast layer,
    /// named by its SSRC, or of all).
    KeyframeRequest(TrackKey, Option<Ssrc>, KeyframeRequestKind),
    /// An audio packet's RFC 6464 level (0 = loudest, 127 = silence), for the room's
    /// speaker detector.
    AudioLevel(u8),
    /// The media connection died; the driver removes the peer.
    Dead,
}

/// One incoming encoding of a track: the only one, or one simulcast layer.
struct LayerIn {
    ssrc: Ssrc,
    rid: Option<str0m::media::Rid>,
    /// From the last VP8 keyframe; H.264 layers are ranked by bitrate alone.
    height: Option<u16>,
    meter: RateMeter,
    throttle: KeyframeThrottle,
}

struct TrackIn {
    mid: Mid,
    kind: MediaKind,
    layers: Vec<LayerIn>,
}

/// A publisher track's layers as the allocator sees them, ascending, with their SSRCs.
pub(crate) struct PublishedLayers {
    pub(crate) key: TrackKey,
    pub(crate) layers: Vec<(Ssrc, Option<str0m::media::Rid>, Layer)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
}

struct TrackOut {
    source: TrackKey,
    kind: MediaKind,
    state: OutState,
    rewriter: StreamRewriter,
    /// Video: the incoming layer the allocator chose (`None`: send no video).
    target: Option<Ssrc>,
    /// Video: the layer being forwarded. A switch to `target` happens only on one of
    /// its keyframes, since a decoder cannot use what comes before.
    current: Option<Ssrc>,
    vp8: Vp8Rewriter,
    /// Publisher PT -> our PT, learnt on the first packet of each codec.
    pt_map: Vec<(u8, u8)>,
    /// Audio: the RED payload type this subscriber accepted on this track (learnt on the
    /// first packet), and the previous frames to repeat.
    red_pt: Option<Option<u8>>,
    last_audio: red::History,
}

pub(crate) struct Peer {
    pub(crate) id: ParticipantId,
    pub(crate) room: std::sync::Arc<str>,
    rtc: Rtc,
    events: mpsc::UnboundedSender<SfuEvent>,
    tracks_in: Vec<TrackIn>,
    tracks_out: Vec<TrackOut>,
    pending: Option<SdpPendingOffer>,
    /// The server offers only after the client's first offer (or `ready`), so a client's
    /// opening offer never collides with ours.
    may_offer: bool,
    ssrc_mid: HashMap<Ssrc, (Mid, PayloadParamsCache)>,
    pub(crate) next_timeout: Instant,
    stats: PeerStats,
    candidates: Vec<SocketAddr>,
    /// When ICE lost the client. A 3G link that drops for a few seconds comes back to the
    /// same session (ICE consent resumes, or the client restarts ICE), so the session is
    /// only ended after [`MEDIA_GRACE`] without media.
    disconnected_at: Option<Instant>,
    pub(crate) options: JoinOptions,
    pub(crate) view: ViewHints,
    allocator: Allocator<TrackKey>,
    /// The last audio-only state told to the client.
    audio_only: bool,
    uplink: QualityTracker,
    /// Uplink samples since the last stats tick: (loss, jitter ms) of each incoming stream.
    uplink_sample: Option<(f32, f64)>,
    connected_at: Option<Instant>,
    /// str0m's unsmoothed estimate, from its peer stats.
    raw_estimate: Option<u64>,
    congestion: CongestionDetector,
    /// The estimate (bit/s) when the user paused the video, and when.
    paused_with: Option<(u64, Instant)>,
    /// Whether this subscriber's audio goes out with RED (`red.rs`), and how many
    /// previous frames each packet repeats.
    red: RedSwitch,
    red_distance: usize,
}

const STATS_INTERVAL: Duration = Duration::from_millis(200);

/// str0m's resend cache for video towards subscribers (its defaults are 1024 packets
/// and 0.15; the age is ours): a resend later than a second misses the receiver's jitter
/// buffer and only costs the link.
const RTX_PACKETS: usize = 1024;
const RTX_MAX_AGE: Duration = Duration::from_millis(1000);
const RTX_RATIO_CAP: f32 = 0.15;

/// What a subscriber that gives no bandwidth feedback at all (no TWCC, no REMB) is
/// assumed to carry after [`UNMEASURED_AFTER`]: audio and one small picture.
const UNMEASURED_BPS: u32 = 300_000;
const UNMEASURED_AFTER: Duration = Duration::from_secs(10);

/// How long a participant whose media path went silent keeps its session. Browsers and
/// webrtc-rs declare ICE failed after ~25-30 s; the agent restarts ICE before that.
pub(crate) const MEDIA_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Per incoming SSRC: the last seen PT and its codec, so the codec lookup runs once.
#[derive(Clone, Copy)]
struct PayloadParamsCache {
    pt: u8,
    params: Option<PayloadParams>,
    rid: Option<str0m::media::Rid>,
    /// The packets are RED-wrapped (`params` is the codec inside).
    red: bool,
}

/// How long a paused view's estimate is trusted when the video is wanted again.
const PAUSE_REMEMBERED: Duration = Duration::from_secs(120);

/// Where str0m's estimate starts, low: a commune on 3G must not be flooded while the
/// estimate finds its level.
const START_BWE: Bitrate = Bitrate::kbps(300);

pub(crate) fn new_rtc(now: Instant, candidates: &[SocketAddr]) -> Rtc {
    let mut rtc = crate::codecs::with_codecs(RtcConfig::new())
        .set_ice_lite(true)
        .set_rtp_mode(true)
        // 200 ms: the peer stats carry str0m's raw bandwidth estimate, which sees a
        // capacity drop long before the 3 s average it emits as an event does.
        .set_stats_interval(Some(STATS_INTERVAL))
        // TWCC-based estimate of what each subscriber's link carries, starting low: a
        // commune on 3G must not be flooded while the estimate finds its level.
        .enable_bwe(Some(START_BWE))
        .build(now);
    for addr in candidates {
        match Candidate::host(*addr, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => warn!(%addr, "cannot use address as ICE candidate: {e}"),
        }
    }
    rtc
}

fn track_kind(kind: MediaKind) -> TrackKind {
    match kind {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}

fn video_codec(params: &PayloadParams) -> VideoCodec {
    use str0m::format::Codec;
    match params.spec().codec {
        Codec::Vp8 => VideoCodec::Vp8,
        Codec::H264 => VideoCodec::H264,
        _ => VideoCodec::Other,
    }
}

impl Peer {
    pub(crate) fn new(
        id: ParticipantId,
        room: std::sync::Arc<str>,
        events: mpsc::UnboundedSender<SfuEvent>,
        candidates: Vec<SocketAddr>,
        now: Instant,
    ) -> Self {
        let rtc = new_rtc(now, &candidates);
        let stats = PeerStats {
            participant: id.to_string(),
            room: room.to_string(),
            ..Default::default()
        };
        Self {
            id,
            room,
            rtc,
            events,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            pending: None,
            may_offer: false,
            ssrc_mid: HashMap::new(),
            next_timeout: now,
            stats,
            candidates,
            disconnected_at: None,
            options: JoinOptions::default(),
            view: ViewHints::default(),
            allocator: Allocator::new(AllocConfig::default()),
            audio_only: false,
            uplink: QualityTracker::default(),
            uplink_sample: None,
            connected_at: None,
            raw_estimate: None,
            congestion: CongestionDetector::default(),
            red: RedSwitch::default(),
            red_distance: 1,
            paused_with: None,
        }
    }

    pub(crate) fn accepts(&self, input: &Input) -> bool {
        self.rtc.accepts(input)
    }

    pub(crate) fn send_event(&self, e: SfuEvent) {
        let _ = self.events.send(e);
    }

    pub(crate) fn stats(&self) -> PeerStats {
        self.stats.clone()
    }

    pub(crate) fn published(&self) -> impl Iterator<Item = (TrackKey, MediaKind)> + '_ {
        self.tracks_in.iter().map(|t| {
            (
                TrackKey {
                    participant: self.id,
                    mid: t.mid,
                },
                t.kind,
            )
        })
    }

    pub(crate) fn handle_receive(&mut self, now: Instant, receive: Receive<'_>) {
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, receive)) {
            // A packet str0m cannot use (bad SRTP, malformed RTCP) is the sender's problem;
            // the session stays up.
            debug!(participant = %self.id, "input rejected: {e}");
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            warn!(participant = %self.id, "timeout handling failed: {e}");
            self.rtc.disconnect();
        }
        if let Some(since) = self.disconnected_at
            && now.saturating_duration_since(since) >= MEDIA_GRACE
        {
            warn!(participant = %self.id, "no media path for {} s: ending the session", MEDIA_GRACE.as_secs());
            let _ = self.events.send(SfuEvent::Disconnected {
                reason: "ice_disconnected".into(),
            });
            self.rtc.disconnect();
        }
    }

    /// Drain str0m's output: datagrams go to `transmit`, cross-peer work to `out`.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        transmit: &mut impl FnMut(SocketAddr, SocketAddr, &[u8]),
        out: &mut Vec<(ParticipantId, Propagated)>,
    ) {
        loop {
            if !self.rtc.is_alive() {
                out.push((self.id, Propagated::Dead));
                self.next_timeout = now + std::time::Duration::from_secs(3600);
                return;
            }
            let output = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    warn!(participant = %self.id, "media session failed: {e}");
                    self.rtc.disconnect();
                    continue;
                }
            };
            match output {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return;
                }
                Output::Transmit(t) => transmit(t.source, t.destination, &t.contents),
                Output::Event(e) => self.handle_event(e, now, out),
            }
        }
    }

    fn handle_event(&mut self, e: Event, now: Instant, out: &mut Vec<(ParticipantId, Propagated)>) {
        match e {
            Event::Connected => {
                info!(participant = %self.id, room = %self.room, "media connected");
                self.stats.connected = true;
                self.connected_at.get_or_insert(now);
                // Probe towards what the best layers would need; padding fills in while
                // media sends less, capped by the estimate itself.
                self.rtc
                    .bwe()
                    .set_bitrate(Bitrate::kbps(50), Bitrate::kbps(2500));
                let _ = self.events.send(SfuEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.disconnected_at.is_none() =>
            {
                info!(participant = %self.id, "ICE disconnected; keeping the session for {} s", MEDIA_GRACE.as_secs());
                self.disconnected_at = Some(now);
                self.stats.connected = false;
                let _ = self.events.send(SfuEvent::Interrupted);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => {
                if let Some(since) = self.disconnected_at.take() {
                    let gap = now.saturating_duration_since(since);
                    info!(participant = %self.id, "media path back after {:.1} s", gap.as_secs_f64());
                    self.stats.connected = true;
                    let _ = self.events.send(SfuEvent::Resumed { after: gap });
                }
            }
            // str0m's first event repeats the starting value it was configured with, not
            // a measurement: taken as one, it started the picture on a 200 kbit/s link
            // and held the audio 0.9 s late for 3 s (3g-bad). Wait for a real one.
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })
                if self.stats.bwe_kbps.is_some() || estimate != START_BWE =>
            {
                self.stats.bwe_kbps = Some(estimate.as_u64() / 1000);
            }
            // Old clients: their own estimate, used when there is no TWCC one.
            Event::EgressBitrateEstimate(BweKind::Remb { estimate, .. })
                if self.stats.bwe_kbps.is_none() =>
            {
                self.stats.bwe_kbps = Some(estimate.as_u64() / 1000);
            }
            Event::MediaAdded(m) => {
                if matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) {
                    self.open_track_in(m.mid, m.kind, out);
                }
            }
            Event::MediaChanged(m) => {
                let receiving = matches!(m.direction, Direction::RecvOnly | Direction::SendRecv);
                let known = self.tracks_in.iter().any(|t| t.mid == m.mid);
                if receiving && !known {
                    if let Some(kind) = self.rtc.media(m.mid).map(|md| md.kind()) {
                        self.open_track_in(m.mid, kind, out);
                    }
                } else if !receiving && known {
                    self.close_track_in(m.mid, out);
                }
            }
            Event::RtpPacket(packet) => self.handle_rtp(packet, now, out),
            Event::KeyframeRequest(req) => {
                self.stats.keyframe_requests_received += 1;
                let source = self
                    .tracks_out
                    .iter()
                    .find(|t| matches!(t.state, OutState::Open(m) if m == req.mid))
                    .map(|t| (t.source, t.current));
                if let Some((source, layer)) = source {
                    out.push((
                        self.id,
                        Propagated::KeyframeRequest(source, layer, req.kind),
                    ));
                }
            }
            Event::PeerStats(s) => {
                self.raw_estimate = s.bwe_tx.map(|b| b.as_u64());
                self.stats.bwe_raw_kbps = self.raw_estimate.map(|b| b / 1000);
                let was = self.stats.congested;
                self.stats.congested = self.congestion.sample(now, s.rtt, s.egress_loss_fraction);
                if let Some(on) = self.red.sample(now, s.egress_loss_fraction) {
                    info!(participant = %self.id, loss = ?s.egress_loss_fraction, "audio redundancy (RED): {on}");
                    self.stats.red = on;
                }
                if was != self.stats.congested {
                    debug!(
                        participant = %self.id,
                        rtt = ?s.rtt,
                        loss = ?s.egress_loss_fraction,
                        raw_kbps = ?self.stats.bwe_raw_kbps,
                        "path congested: {}", self.stats.congested
                    );
                }
            }
            Event::MediaIngressStats(s) => {
                self.stats.loss_up = s.loss.or(self.stats.loss_up);
                // Jitter in RTP clock units: 90 kHz for video, 48 kHz for audio.
                let clock = match self.tracks_in.iter().find(|t| t.mid == s.mid) {
                    Some(t) if t.kind == MediaKind::Audio => 48.0,
                    _ => 90.0,
                };
                let jitter_ms = f64::from(s.jitter) / clock;
                let (loss, jitter) = self.uplink_sample.unwrap_or((0.0, 0.0));
                self.uplink_sample = Some((loss.max(s.loss.unwrap_or(0.0)), jitter.max(jitter_ms)));
                self.stats.jitter_up_ms = Some(jitter_ms);
                // str0m reports per-stream cumulative counts; keep the largest seen.
                self.stats.nacks_sent = self.stats.nacks_sent.max(s.nacks);
            }
            Event::MediaEgressStats(s) => {
                self.stats.loss_down = s.loss.or(self.stats.loss_down);
                self.stats.nacks_received = self.stats.nacks_received.max(s.nacks);
                if let Some(rtt) = s.rtt {
                    self.stats.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                }
            }
            _ => {}
        }
    }

    fn open_track_in(
        &mut self,
        mid: Mid,
        kind: MediaKind,
        out: &mut Vec<(ParticipantId, Propagated)>,
    ) {
        if self.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        info!(participant = %self.id, %mid, ?kind, "track published");
        self.tracks_in.push(TrackIn {
            mid,
            kind,
            layers: Vec::new(),
        });
        let _ = self.events.send(SfuEvent::Published {
            mid: mid.to_string(),
            kind: track_kind(kind),
        });
        let key = TrackKey {
            participant: self.id,
            mid,
        };
        out.push((self.id, Propagated::TrackOpened(key, kind)));
    }

    fn close_track_in(&mut self, mid: Mid, out: &mut Vec<(ParticipantId, Propagated)>) {
        let Some(pos) = self.tracks_in.iter().position(|t| t.mid == mid) else {
            return;
        };
        let t = self.tracks_in.remove(pos);
        info!(participant = %self.id, %mid, "track unpublished");
        let _ = self.events.send(SfuEvent::Unpublished {
            mid: mid.to_string(),
            kind: track_kind(t.kind),
        });
        out.push((
            self.id,
            Propagated::TrackClosed(TrackKey {
                participant: self.id,
                mid,
            }),
        ));
    }

    fn handle_rtp(
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
            let Some(primary) = red::primary(&packet.payload) else {
                return;
            };
            packet.payload = primary;
            packet.header.payload_type = params.pt();
        }
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        let layer = match track.layers.iter().position(|l| l.ssrc == ssrc) {
            Some(i) => &mut track.layers[i],
            None => {
                debug!(participant = %self.id, %mid, rid = ?cache.rid, %ssrc, "new incoming layer");
                track.layers.push(LayerIn {
                    ssrc,
                    rid: cache.rid,
                    height: None,
                    meter: RateMeter::default(),
                    throttle: KeyframeThrottle::default(),
                });
                let last = track.layers.len() - 1;
                &mut track.layers[last]
            }
        };
        // What the layer costs on a subscriber's link: payload, RTP header, SRTP tag, UDP
        // and IP headers.
        layer.meter.add(now, packet.payload.len() + 12 + 10 + 28);
        if track.kind == MediaKind::Video {
            if video_codec(&params) == VideoCodec::Vp8
                && let Some((_, h)) = vp8::keyframe_size(&packet.payload)
            {
                layer.height = Some(h);
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

    /// Every published video track's live layers (sent within the last second),
    /// ascending: by frame height when every layer's is known, else by bitrate.
    pub(crate) fn published_layers(&mut self, now: Instant, out: &mut Vec<PublishedLayers>) {
        for t in &mut self.tracks_in {
            if t.kind != MediaKind::Video {
                continue;
            }
            let mut layers: Vec<(Ssrc, Option<str0m::media::Rid>, Layer)> = t
                .layers
                .iter_mut()
                .filter_map(|l| {
                    let bps = l.meter.bps(now);
                    (bps > 0).then_some((
                        l.ssrc,
                        l.rid,
                        Layer {
                            height: l.height.unwrap_or(0),
                            bps,
                        },
                    ))
                })
                .collect();
            if layers.iter().all(|l| l.2.height > 0) {
                layers.sort_by_key(|l| (l.2.height, l.2.bps));
            } else {
                layers.sort_by_key(|l| l.2.bps);
            }
            out.push(PublishedLayers {
                key: TrackKey {
                    participant: self.id,
                    mid: t.mid,
                },
                layers,
            });
        }
    }

    /// Our uplink's grade, from the last second's stats; `Some` when it changed.
    pub(crate) fn uplink_quality(&mut self) -> Option<crate::quality::Grade> {
        let (loss, jitter) = self.uplink_sample.take()?;
        let rtt = self.stats.rtt_ms.unwrap_or(0.0);
        let g = self.uplink.sample(loss, rtt, jitter);
        self.stats.uplink = self.uplink.grade().as_str();
        g
    }

    /// The audio and the video tracks this subscriber receives.
    pub(crate) fn subscribed(&self) -> (Vec<TrackKey>, Vec<TrackKey>) {
        let mut audio = Vec::new();
        let mut video = Vec::new();
        for t in &self.tracks_out {
            if !matches!(t.state, OutState::Open(_)) {
                continue;
            }
            match t.kind {
                MediaKind::Audio => audio.push(t.source),
                MediaKind::Video => video.push(t.source),
            }
        }
        (audio, video)
    }

    /// The user's view changed. A pause the user chose (audio only, a hidden page)
    /// leaves only the audio on the link, and str0m's estimate sinks to 1.5 × that; when
    /// the video is wanted again it had to climb back through probes while each layer
    /// waited a dwell, and 720p took over 15 s on loopback (`view.rs`). So the estimate
    /// from before a short pause is restored when it ends: the link is most likely the
    /// one it was a minute ago, and if not, congestion shows within a second.
    pub(crate) fn set_view(&mut self, view: ViewHints, now: Instant) {
        let paused = |v: &ViewHints| v.audio_only || v.hidden;
        match (paused(&self.view), paused(&view)) {
            (false, true) => {
                self.paused_with = self.stats.bwe_kbps.map(|k| (k * 1000, now));
            }
            (true, false) => {
                if let Some((bps, at)) = self.paused_with.take()
                    && now.saturating_duration_since(at) <= PAUSE_REMEMBERED
                    && self.stats.bwe_kbps.is_some_and(|k| k * 1000 < bps)
                {
                    debug!(participant = %self.id, kbps = bps / 1000, "estimate from before the pause restored");
                    self.rtc.bwe().reset(Bitrate::bps(bps));
                    self.stats.bwe_kbps = Some(bps / 1000);
                    self.raw_estimate = Some(bps);
                }
            }
            _ => {}
        }
        self.view = view;
    }

    /// The estimate the allocator shares out: str0m's once its first feedback came. A
    /// client that sends neither TWCC nor REMB cannot be measured; after a few seconds it
    /// is assumed to take [`UNMEASURED_BPS`]. `None`: too early to decide anything.
    pub(crate) fn estimate_bps(&self, now: Instant) -> Option<u32> {
        let smoothed = self.stats.bwe_kbps.map(|k| k * 1000);
        // On a congested path the lower of the raw estimate and the event's 3 s average,
        // because a late downgrade costs everyone on the link; otherwise the average: the
        // raw estimate dips on noise and overshoots after every probe, and following
        // either flaps layers (measured: a 200 kbit/s link left audio-only on each
        // probe's overshoot and flooded). The average also lags a loss burst on a
        // lossy link: it read 187 kbit/s for a second while the raw value and the path
        // said a 3G commune's 384 kbit/s link was fine, and the commune lost its
        // picture. So off congestion a higher raw value may lift it by a quarter, no
        // more (an overshoot cannot buy an upgrade, whose headroom is that quarter).
        let bps = match (self.raw_estimate, smoothed) {
            (Some(r), Some(s)) if self.congestion.congested() => Some(r.min(s)),
            (Some(r), Some(s)) => Some(r.min(s * 5 / 4).max(s)),
            (_, Some(s)) => Some(s),
            // Before the first estimate the raw value is only str0m's starting guess: on a
            // 200 kbit/s link whose feedback is slow to come through it sent video into
            // a full queue for 8 s (measured). No video until the link has been measured.
            (_, None) => None,
        };
        // While a queue stands on the path, share out 0.85 of the estimate so that it
        // drains: on the step profile (2 Mbit/s to 300 kbit/s) the allocation sat at the
        // estimate and the audio waited 0.4-0.5 s in the full queue for 7 s.
        let bps = if self.congestion.queueing() {
            bps.map(|b| b * 85 / 100)
        } else {
            bps
        };
        if let Some(bps) = bps {
            return Some(bps.min(u64::from(u32::MAX)) as u32);
        }
        let since = self.connected_at?;
        (now.saturating_duration_since(since) >= UNMEASURED_AFTER).then_some(UNMEASURED_BPS)
    }

    /// Run the allocator and apply its choice: each video track's layer, audio only, and
    /// what str0m should probe for. `voices`: audio streams forwarded to us;
    /// `wanted_bps`: what the video tiles could use (the audio, priced with RED when it
    /// is on, is added here).
    pub(crate) fn allocate(
        &mut self,
        now: Instant,
        budget_bps: u32,
        voices: usize,
        sources: &[crate::allocator::VideoSource<TrackKey>],
        layers: &std::collections::HashMap<TrackKey, &PublishedLayers>,
        wanted_bps: u32,
    ) {
        let audio_streams = if self.red.on() {
            red::price(voices)
        } else {
            voices
        };
        let congested = self.congestion.congested();
        let a = self
            .allocator
            .allocate_on(now, budget_bps, audio_streams, sources, congested);
        // A queue that has built up drains only if less than the link's rate is sent:
        // no second repeat while the path shows congestion (measured on the step
        // profile: with it, a 500 ms queue took 7 s to drain).
        let distance = if congested {
            1
        } else {
            red::distance(budget_bps, a.total_bps, voices, self.allocator.audio_bps())
        };
        if self.red.on() && distance != self.red_distance {
            debug!(participant = %self.id, distance, "RED repeats");
        }
        self.red_distance = distance;
        self.stats.red_distance = if self.red.on() { distance as u8 } else { 0 };
        let forced = a.audio_only && !self.view.audio_only;
        if forced != self.audio_only {
            self.audio_only = forced;
            info!(
                participant = %self.id,
                budget_kbps = budget_bps / 1000,
                smoothed_kbps = ?self.stats.bwe_kbps,
                raw_kbps = ?self.stats.bwe_raw_kbps,
                loss = ?self.stats.loss_down,
                "audio only: {forced}"
            );
            let _ = self.events.send(SfuEvent::Bandwidth {
                audio_only: forced,
                estimate_kbps: budget_bps / 1000,
            });
        }
        self.stats.audio_only = a.audio_only;
        self.stats.allocated_kbps = u64::from(a.total_bps / 1000);
        self.stats.forwarding.clear();
        for (key, choice) in &a.layers {
            let chosen = choice
                .and_then(|i| layers.get(key).and_then(|p| p.layers.get(i)))
                .map(|l| (l.0, l.1, l.2.height));
            let Some(t) = self.tracks_out.iter_mut().find(|t| t.source == *key) else {
                continue;
            };
            let target = chosen.map(|c| c.0);
            if t.target != target {
                self.stats.layer_changes += 1;
                t.target = target;
                if target.is_none() {
                    t.current = None;
                    // Resends of a paused video only compete with the audio on a link
                    // that is already too slow: replacing the cache drops them.
                    if let OutState::Open(mid) = t.state
                        && let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(mid, None)
                    {
                        tx.set_rtx_cache(RTX_PACKETS, RTX_MAX_AGE, Some(RTX_RATIO_CAP));
                    }
                }
            }
            if let Some((_, rid, height)) = chosen {
                self.stats.forwarding.push(Forwarding {
                    publisher: key.participant.to_string(),
                    rid: rid.map(|r| r.to_string()),
                    height: (height > 0).then_some(height),
                });
            }
        }
        // Probe towards what the tiles could use plus the upgrade headroom, so an upgrade
        // has an estimate to go on, and no further: a probe far above a 3G link's capacity
        // fills its queue, delays the audio and reads as loss.
        let wanted =
            u64::from(wanted_bps) + audio_streams as u64 * u64::from(self.allocator.audio_bps());
        let desired = (wanted * 3 / 2).max(300_000);
        // Put on audio only by its link, a subscriber's estimate cannot climb back by
        // itself: str0m raises it to at most 1.5× what the link was seen to carry (the
        // audio), and on a lossy link its probe controller stays loss-limited and never
        // probes. Measured: a 3G commune stuck at 148 kbit/s for 13 s after its link
        // recovered. So media and padding together are kept up to the rate at which
        // video resumes, but no higher than 0.85 × the estimate (str0m's own cap is the
        // estimate itself, and padding at it kept a 200 kbit/s link's queue full: 3g-bad
        // audio on time fell from 95 % to 87 %), and not while the path shows
        // congestion. The estimate can still climb: str0m allows 1.5 × what it saw.
        let minimum = match a.resume_bps {
            Some(r) if forced && !congested => u64::from(r)
                .min(desired)
                .min(u64::from(budget_bps) * 85 / 100),
            _ => 0,
        };
        self.stats.padding_kbps = minimum / 1000;
        self.rtc
            .bwe()
            .set_bitrate(Bitrate::bps(minimum), Bitrate::bps(desired));
    }

    /// Offer to subscribe us to a publisher track (negotiated on the next `negotiate`).
    pub(crate) fn add_subscription(&mut self, source: TrackKey, kind: MediaKind) {
        if source.participant == self.id || self.tracks_out.iter().any(|t| t.source == source) {
            return;
        }
        let clock = match kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        };
        self.tracks_out.push(TrackOut {
            source,
            kind,
            state: OutState::ToOpen,
            rewriter: StreamRewriter::new(clock),
            target: None,
            current: None,
            vp8: Vp8Rewriter::default(),
            pt_map: Vec::new(),
            red_pt: None,
            last_audio: red::History::default(),
        });
    }

    pub(crate) fn remove_subscription(&mut self, source: TrackKey) {
        self.tracks_out.retain_mut(|t| {
            if t.source != source {
                return true;
            }
            match t.state {
                OutState::ToOpen => false,
                OutState::Open(m) | OutState::Negotiating(m) => {
                    t.state = OutState::ToStop(m);
                    true
                }
                OutState::ToStop(_) | OutState::NegotiatingStop(_) => true,
            }
        });
    }

    pub(crate) fn remove_subscriptions_from(&mut self, participant: ParticipantId) {
        let keys: Vec<TrackKey> = self
            .tracks_out
            .iter()
            .filter(|t| t.source.participant == participant)
            .map(|t| t.source)
            .collect();
        for k in keys {
            self.remove_subscription(k);
        }
    }

    /// Send a server offer if subscriptions changed and no negotiation is under way.
    pub(crate) fn negotiate(&mut self) {
        if !self.may_offer || self.pending.is_some() || !self.rtc.is_alive() {
            return;
        }
        let mut api = self.rtc.sdp_api();
        for t in &mut self.tracks_out {
            match t.state {
                OutState::ToOpen => {
                    let stream_id = t.source.participant.to_string();
                    let track_id = format!("{}-{}", t.source.participant, t.source.mid);
                    let mid = api.add_media(
                        t.kind,
                        Direction::SendOnly,
                        Some(stream_id),
                        Some(track_id),
                        None,
                    );
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    api.stop_media(mid);
                    t.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        if !api.has_changes() {
            return;
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        self.pending = Some(pending);
        debug!(participant = %self.id, "sending server offer");
        let _ = self.events.send(SfuEvent::Offer(offer.to_sdp_string()));
    }

    pub(crate) fn handle_offer(&mut self, sdp: &str) -> Result<OfferOutcome, SfuError> {
        if self.pending.is_some() {
            info!(participant = %self.id, "client offer ignored: server offer outstanding (glare)");
            return Ok(OfferOutcome::Ignored);
        }
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        // str0m tears the session down on an offer without a fingerprint; refuse it first
        // so a client's mistake costs it one error message, not its connection.
        if !sdp.contains("a=fingerprint:") {
            return Err(SfuError::BadSdp("missing a=fingerprint".into()));
        }
        let result = self.rtc.sdp_api().accept_offer(offer);
        match result {
            Ok(answer) => {
                self.may_offer = true;
                Ok(OfferOutcome::Answer(answer.to_sdp_string()))
            }
            Err(e) => {
                if !self.rtc.is_alive() {
                    self.reset();
                }
                Err(SfuError::BadSdp(e.to_string()))
            }
        }
    }

    pub(crate) fn handle_answer(&mut self, sdp: &str) -> Result<Vec<TrackKey>, SfuError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let Some(pending) = self.pending.take() else {
            return Err(SfuError::NoOfferPending);
        };
        if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
            // Roll our view back; the next negotiate() offers the same changes again.
            for t in &mut self.tracks_out {
                t.state = match t.state {
                    OutState::Negotiating(_) => OutState::ToOpen,
                    OutState::NegotiatingStop(m) => OutState::ToStop(m),
                    s => s,
                };
            }
            if !self.rtc.is_alive() {
                self.reset();
            }
            return Err(SfuError::BadSdp(e.to_string()));
        }
        let mut opened_video = Vec::new();
        for t in &mut self.tracks_out {
            if let OutState::Negotiating(m) = t.state {
                t.state = OutState::Open(m);
                if t.kind == MediaKind::Video {
                    opened_video.push(t.source);
                    if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(m, None) {
                        tx.set_rtx_cache(RTX_PACKETS, RTX_MAX_AGE, Some(RTX_RATIO_CAP));
                    }
                }
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, OutState::NegotiatingStop(_)));
        Ok(opened_video)
    }

    pub(crate) fn set_ready(&mut self) {
        self.may_offer = true;
    }

    /// A session str0m gave up on (bad remote SDP) is replaced by a fresh one, so the
    /// client can try again on the same signaling connection.
    fn reset(&mut self) {
        warn!(participant = %self.id, "media session reset after a fatal SDP error");
        self.rtc = new_rtc(Instant::now(), &self.candidates);
        self.connected_at = None;
        self.tracks_in.clear();
        for t in &mut self.tracks_out {
            t.state = OutState::ToOpen;
            t.current = None;
        }
        self.pending = None;
        self.may_offer = false;
        self.ssrc_mid.clear();
    }

    /// Forward one publisher packet to this subscriber. Returns the layer (SSRC) this
    /// subscriber waits for a keyframe of, if any (the driver then asks the publisher).
    pub(crate) fn forward(
        &mut self,
        key: TrackKey,
        params: &PayloadParams,
        packet: &RtpPacket,
        epoch: u64,
        now: Instant,
    ) -> Option<Ssrc> {
        // Before DTLS is up str0m queues what it is given and sends it all at once when
        // the session connects: on 3g-bad, whose handshake takes seconds, that was up to
        // 4.8 s of stale audio in one burst, filling the link's queue (measured).
        self.connected_at?;
        let t = self.tracks_out.iter_mut().find(|t| t.source == key)?;
        let OutState::Open(mid) = t.state else {
            return None;
        };
        let is_video = t.kind == MediaKind::Video;
        let ssrc = packet.header.ssrc;
        if is_video {
            let target = t.target?;
            if ssrc == target && t.current != Some(target) {
                if !is_keyframe_start(video_codec(params), &packet.payload) {
                    return Some(target);
                }
                t.current = Some(target);
            } else if t.current != Some(ssrc) {
                // Another layer; or the old one, forwarded until the target's keyframe.
                return None;
            }
        }
        let in_pt = *params.pt();
        let pt = match t.pt_map.iter().find(|(i, _)| *i == in_pt) {
            Some((_, o)) => *o,
            None => {
                let local = self.rtc.codec_config().match_params(*params)?;
                let o = *local.pt();
                t.pt_map.push((in_pt, o));
                o
            }
        };
        // A new epoch (the publisher's audio resumed after silence) is a new source: the
        // rewriter continues the sequence numbers after the gap instead of leaving one.
        let source_id =
            ((key.participant.0 << 32) ^ u64::from(*packet.header.ssrc)).wrapping_add(epoch << 48);
        let rw = t
            .rewriter
            .rewrite(source_id, *packet.seq_no, packet.header.timestamp, now)?;
        let mut payload = packet.payload.clone();
        let mut pt = pt;
        if is_video {
            if video_codec(params) == VideoCodec::Vp8
                && let Some(p) = t.vp8.rewrite_shared(source_id, &payload)
            {
                payload = p;
            }
        } else {
            // str0m keeps RED on a codec's params only if the remote accepted it.
            let red_pt = *t.red_pt.get_or_insert_with(|| {
                let red = self.rtc.codec_config().match_params(*params)?.red()?;
                Some(*red)
            });
            let ts = packet.header.timestamp;
            if self.red.on()
                && let Some(red_pt) = red_pt
            {
                let red = t
                    .last_audio
                    .encode(pt, &packet.payload, ts, self.red_distance);
                t.last_audio.push(ts, payload);
                payload = red;
                pt = red_pt;
            } else {
                t.last_audio.push(ts, payload.clone());
            }
        }
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let mut api = self.rtc.direct_api();
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
