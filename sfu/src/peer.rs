//! One participant's WebRTC session: a str0m `Rtc` in RTP mode plus the bookkeeping of
//! what it publishes (tracks in) and what it is subscribed to (tracks out).
//!
//! A `Peer` never touches another peer: everything that crosses participants (a packet to
//! forward, a keyframe request for a publisher, a track that opened) comes out of
//! [`Peer::poll`] as a [`Propagated`] value, and the driver applies it to the others. That
//! keeps the borrow of one `Rtc` at a time and makes the fan-out explicit in one place.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::Receive;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::handle::{OfferOutcome, PeerStats, SfuEvent, TrackKind};
use crate::keyframe::{VideoCodec, is_keyframe_start};
use crate::rewrite::StreamRewriter;
use crate::throttle::KeyframeThrottle;
use crate::{ParticipantId, SfuError};

/// A publisher's track, named across the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// A subscriber wants a keyframe of this publisher track.
    KeyframeRequest(TrackKey, KeyframeRequestKind),
    /// The media connection died; the driver removes the peer.
    Dead,
}

struct TrackIn {
    mid: Mid,
    kind: MediaKind,
    throttle: KeyframeThrottle,
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
    /// Video is started only on a keyframe: a decoder cannot use what comes before.
    waiting_keyframe: bool,
    /// Publisher PT -> our PT, learnt on the first packet of each codec.
    pt_map: Vec<(u8, u8)>,
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
}

/// How long a participant whose media path went silent keeps its session. Browsers and
/// webrtc-rs declare ICE failed after ~25-30 s; the agent restarts ICE before that.
pub(crate) const MEDIA_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Per incoming SSRC: the last seen PT and its codec, so the codec lookup runs once.
#[derive(Clone, Copy)]
struct PayloadParamsCache {
    pt: u8,
    params: Option<PayloadParams>,
}

pub(crate) fn new_rtc(now: Instant, candidates: &[SocketAddr]) -> Rtc {
    let mut rtc = RtcConfig::new()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .set_stats_interval(Some(std::time::Duration::from_secs(1)))
        // TWCC-based estimate of what each subscriber's link carries, starting low: a
        // commune on 3G must not be flooded while the estimate finds its level.
        .enable_bwe(Some(Bitrate::kbps(300)))
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
        }
    }

    pub(crate) fn accepts(&self, input: &Input) -> bool {
        self.rtc.accepts(input)
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
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
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
            Event::RtpPacket(packet) => self.handle_rtp(packet, out),
            Event::KeyframeRequest(req) => {
                self.stats.keyframe_requests_received += 1;
                let source = self
                    .tracks_out
                    .iter()
                    .find(|t| matches!(t.state, OutState::Open(m) if m == req.mid))
                    .map(|t| t.source);
                if let Some(source) = source {
                    out.push((self.id, Propagated::KeyframeRequest(source, req.kind)));
                }
            }
            Event::MediaIngressStats(s) => {
                self.stats.loss_up = s.loss.or(self.stats.loss_up);
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
            throttle: KeyframeThrottle::default(),
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

    fn handle_rtp(&mut self, packet: RtpPacket, out: &mut Vec<(ParticipantId, Propagated)>) {
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
                let params = self.rtc.codec_config().find(|p| *p.pt() == pt).cloned();
                let e = (mid, PayloadParamsCache { pt, params });
                self.ssrc_mid.insert(ssrc, e);
                e
            }
        };
        let (mid, cache) = entry;
        let Some(params) = cache.params else { return };
        if !self.tracks_in.iter().any(|t| t.mid == mid) {
            return;
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
    pub(crate) fn request_keyframe(&mut self, mid: Mid, kind: KeyframeRequestKind, now: Instant) {
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        if !track.throttle.allow(now) {
            return;
        }
        let mut api = self.rtc.direct_api();
        let Some(rx) = api.stream_rx_by_mid(mid, None) else {
            return;
        };
        rx.request_keyframe(kind);
        self.stats.keyframe_requests_sent += 1;
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
            waiting_keyframe: kind == MediaKind::Video,
            pt_map: Vec::new(),
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
        self.tracks_in.clear();
        for t in &mut self.tracks_out {
            t.state = OutState::ToOpen;
        }
        self.pending = None;
        self.may_offer = false;
        self.ssrc_mid.clear();
    }

    /// Forward one publisher packet to this subscriber. Returns true if the subscriber
    /// waits for a keyframe of that track (the driver then asks the publisher).
    pub(crate) fn forward(
        &mut self,
        key: TrackKey,
        params: &PayloadParams,
        packet: &RtpPacket,
        now: Instant,
    ) -> bool {
        let Some(t) = self.tracks_out.iter_mut().find(|t| t.source == key) else {
            return false;
        };
        let OutState::Open(mid) = t.state else {
            return false;
        };
        let is_video = t.kind == MediaKind::Video;
        if is_video && t.waiting_keyframe {
            if !is_keyframe_start(video_codec(params), &packet.payload) {
                return true;
            }
            t.waiting_keyframe = false;
        }
        let in_pt = *params.pt();
        let pt = match t.pt_map.iter().find(|(i, _)| *i == in_pt) {
            Some((_, o)) => *o,
            None => {
                let Some(local) = self.rtc.codec_config().match_params(*params) else {
                    return false;
                };
                let o = *local.pt();
                t.pt_map.push((in_pt, o));
                o
            }
        };
        let source_id = (key.participant.0 << 32) ^ u64::from(*packet.header.ssrc);
        let Some(rw) = t
            .rewriter
            .rewrite(source_id, *packet.seq_no, packet.header.timestamp, now)
        else {
            return false;
        };
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        tx.write_rtp(
            RtpWrite::new(
                pt.into(),
                rw.seq.into(),
                rw.timestamp,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(ext)
            .nackable(is_video),
        );
        self.stats.rtp_forwarded += 1;
        false
    }
}
