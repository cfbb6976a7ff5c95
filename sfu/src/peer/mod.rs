//! One participant's WebRTC session: a str0m `Rtc` in RTP mode, and what it publishes
//! (`publish.rs`), what it is sent in its fixed slots (`subscribe.rs`: negotiation and
//! the allocation's outcome; `forward.rs`: one packet into one slot).
//!
//! A `Peer` never touches another peer: everything that crosses participants (a packet to
//! forward, a keyframe request for a publisher, a track that opened) comes out of
//! [`Peer::poll`] as a [`Propagated`] value, and the room applies it to the others. What
//! it tells its own participant (an offer, a slot change) waits in its outbox for the
//! room's `poll_output`. No channel, no socket, no clock: time is passed in.

mod forward;
mod publish;
mod subscribe;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpPendingOffer;
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind};
use str0m::net::{Receive, Transmit};
use str0m::rtp::{RtpPacket, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tracing::{debug, info, warn};

pub(crate) use forward::Slot;
pub(crate) use publish::PublishedLayers;
use publish::TrackIn;
pub(crate) use subscribe::SlotChoice;

use crate::ParticipantId;
use crate::policy::allocator::{AllocConfig, Allocator};
use crate::policy::congestion::CongestionDetector;
use crate::policy::quality::QualityTracker;
use crate::rtp::keyframe::VideoCodec;
use crate::rtp::red::RedSwitch;
use crate::types::{JoinOptions, PeerStats, SfuEvent, SlotMap, TrackKey, TrackKind, ViewHints};

/// Something one peer produced that other peers must act on.
// The RTP variant is large, but boxing it would allocate once per forwarded packet; the
// queue these live in is reused, so the size costs nothing per packet.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Propagated {
    /// A track opened or closed: the room's slots follow.
    TracksChanged,
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
    /// The media connection died; the room removes the peer.
    Dead,
}

pub(crate) struct Peer {
    pub(crate) id: ParticipantId,
    /// Which worker thread polls this session (modulo their number): always the same
    /// one, so its state stays in that core's cache.
    pub(crate) shard: usize,
    pub(crate) room: std::sync::Arc<str>,
    rtc: Rtc,
    /// What this participant is told, until the room's `poll_output` takes it.
    outbox: VecDeque<SfuEvent>,
    // What it publishes.
    tracks_in: Vec<TrackIn>,
    ssrc_mid: HashMap<Ssrc, (str0m::media::Mid, PayloadParamsCache)>,
    uplink: QualityTracker,
    /// Uplink samples since the last stats tick: (loss, jitter ms) of each incoming stream.
    uplink_sample: Option<(f32, f64)>,
    // What it is sent.
    /// Audio slots first, then video slots (main first): fixed for the session.
    pub(crate) slots: Vec<Slot>,
    pending: Option<SdpPendingOffer>,
    /// When the server may offer its slots (`subscribe.rs`), and whether it has.
    offer_when: subscribe::OfferWhen,
    slots_offered: bool,
    /// After an answer was refused, no new offer before this (no offer storm towards a
    /// client whose answers keep failing).
    offer_after: Option<Instant>,
    /// A slot's source changed since the map was last told.
    slots_changed: bool,
    told_slots: SlotMap,
    // The session.
    pub(crate) next_timeout: Instant,
    stats: PeerStats,
    candidates: Candidates,
    /// Whether this session offers RED-wrapped Opus, and when it was built. str0m lists
    /// `red/48000/2` before `opus/48000/2` (libwebrtc uses RED only then), so an answerer
    /// that takes the first codec it knows but cannot decode RED (GStreamer's
    /// `webrtcbin`) answers RED and hears nothing. A session starts with RED (browsers,
    /// nearly everyone) and is rebuilt without it, before anything was negotiated, for a
    /// client whose first offer does not list RED or whose `ready` does not claim it.
    red_offered: bool,
    rtc_built: Instant,
    /// When ICE lost the client. A 3G link that drops for a few seconds comes back to the
    /// same session (ICE consent resumes, or the client restarts ICE), so the session is
    /// only ended after [`MEDIA_GRACE`] without media.
    disconnected_at: Option<Instant>,
    /// When authenticated media last arrived from the client (RTP it published, or
    /// RTCP receiver reports). The ICE-lite side sees only the client's
    /// checks, and a client may keep its path with binding indications instead (libnice
    /// in GStreamer's `webrtcbin`): what arrives decrypted on the pair is evidence of the
    /// path too, so a session ends only when neither has come for [`MEDIA_GRACE`].
    media_in_at: Option<Instant>,
    connected_at: Option<Instant>,
    pub(crate) options: JoinOptions,
    pub(crate) view: ViewHints,
    // Its downlink.
    allocator: Allocator<TrackKey>,
    /// The last audio-only state told to the client.
    audio_only: bool,
    /// str0m's unsmoothed estimate, from its peer stats.
    raw_estimate: Option<u64>,
    congestion: CongestionDetector,
    /// The estimate (bit/s) when the user paused the video, and when.
    paused_with: Option<(u64, Instant)>,
    /// The frame rate its path repairs in time (`policy/frame_rate.rs`), held.
    pub(crate) repair_limit: crate::policy::frame_rate::RepairLimit,
    /// Whether this subscriber's audio goes out with RED (`red.rs`), and how many
    /// previous frames each packet repeats.
    red: RedSwitch,
    red_distance: usize,
    /// Send base-layer frame tails twice (a slowly repairing path), and the copies due:
    /// (when, m-line, outgoing sequence number).
    pub(crate) protect_tails: bool,
    pub(crate) tail_copies: std::collections::VecDeque<(Instant, str0m::media::Mid, u64)>,
    /// What [`Peer::poll_own`] produced on a worker thread, until the room gathers it.
    /// Kept between polls so a forwarded packet allocates none.
    pub(crate) own_transmits: VecDeque<Transmit>,
    pub(crate) own_props: Vec<(ParticipantId, Propagated)>,
}

const STATS_INTERVAL: Duration = Duration::from_millis(200);

/// str0m's resend cache for video towards subscribers (its defaults are 1024 packets
/// and 0.15; the age is ours): a resend later than a second misses the receiver's jitter
/// buffer and only costs the link.
pub(super) const RTX_PACKETS: usize = 1024;
pub(super) const RTX_MAX_AGE: Duration = Duration::from_millis(1000);
pub(super) const RTX_RATIO_CAP: f32 = 0.15;
/// The same for a subscriber whose base-layer frame tails go twice (`forward.rs`): the
/// copies are about a third of a 3G commune's video.
pub(super) const RTX_RATIO_CAP_PROTECTED: f32 = 0.6;

/// How long a participant whose media path went silent keeps its session. Browsers and
/// webrtc-rs declare ICE failed after ~25-30 s; the agent restarts ICE before that.
pub(crate) const MEDIA_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Per incoming SSRC: the last seen PT and its codec, so the codec lookup runs once.
#[derive(Clone, Copy)]
pub(super) struct PayloadParamsCache {
    pt: u8,
    params: Option<PayloadParams>,
    rid: Option<str0m::media::Rid>,
    /// The packets are RED-wrapped (`params` is the codec inside).
    red: bool,
}

/// How long a paused view's estimate is trusted when the video is wanted again.
pub(super) const PAUSE_REMEMBERED: Duration = Duration::from_secs(120);

/// Where str0m's estimate starts, low: a commune on 3G must not be flooded while the
/// estimate finds its level.
pub(super) const START_BWE: Bitrate = Bitrate::kbps(300);

/// Where clients reach the SFU: UDP host candidates (the media port), and passive TCP
/// ones (RFC 6544, on the HTTPS port) for networks that let only web traffic out. TCP
/// host candidates have a lower type preference (90 against 126), so UDP wins where it
/// works.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates {
    pub(crate) udp: Vec<SocketAddr>,
    pub(crate) tcp: Vec<SocketAddr>,
}

/// A session for one participant; `red`: offer RED-wrapped Opus (see `Peer::red_offered`).
pub(crate) fn new_rtc(now: Instant, candidates: &Candidates, red: bool) -> Rtc {
    let mut rtc = crate::rtp::codecs::with_codecs(RtcConfig::new(), red)
        .set_ice_lite(true)
        .set_rtp_mode(true)
        // 200 ms: the peer stats carry str0m's raw bandwidth estimate, which sees a
        // capacity drop long before the 3 s average it emits as an event does.
        .set_stats_interval(Some(STATS_INTERVAL))
        // TWCC-based estimate of what each subscriber's link carries, starting low: a
        // commune on 3G must not be flooded while the estimate finds its level.
        .enable_bwe(Some(START_BWE))
        .build(now);
    for addr in &candidates.udp {
        match Candidate::host(*addr, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => warn!(%addr, "cannot use address as ICE candidate: {e}"),
        }
    }
    for addr in &candidates.tcp {
        let c = Candidate::builder()
            .tcp()
            .host(*addr)
            .tcptype(str0m::net::TcpType::Passive)
            .build();
        match c {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => warn!(%addr, "cannot use address as ICE-TCP candidate: {e}"),
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
        options: JoinOptions,
        candidates: Candidates,
        now: Instant,
    ) -> Self {
        let rtc = new_rtc(now, &candidates, true);
        let stats = PeerStats {
            participant: id.to_string(),
            room: room.to_string(),
            ..Default::default()
        };
        let slots = if options.publish_only {
            Vec::new()
        } else {
            subscribe::fixed_slots(options.video_slots)
        };
        Self {
            id,
            shard: 0,
            room,
            rtc,
            outbox: VecDeque::new(),
            tracks_in: Vec::new(),
            ssrc_mid: HashMap::new(),
            uplink: QualityTracker::default(),
            uplink_sample: None,
            slots,
            pending: None,
            offer_when: if options.publish_only || options.slots_from_offer {
                subscribe::OfferWhen::Never
            } else {
                subscribe::OfferWhen::NotYet
            },
            slots_offered: false,
            offer_after: None,
            slots_changed: false,
            told_slots: SlotMap::default(),
            next_timeout: now,
            stats,
            candidates,
            red_offered: true,
            rtc_built: now,
            disconnected_at: None,
            media_in_at: None,
            connected_at: None,
            options,
            view: ViewHints::default(),
            allocator: Allocator::new(AllocConfig::default()),
            audio_only: false,
            raw_estimate: None,
            congestion: CongestionDetector::default(),
            paused_with: None,
            repair_limit: Default::default(),
            red: RedSwitch::default(),
            red_distance: 1,
            protect_tails: false,
            tail_copies: Default::default(),
            own_transmits: VecDeque::new(),
            own_props: Vec::new(),
        }
    }

    /// [`Peer::poll`] into this peer's own buffers: what a worker thread runs, since it
    /// cannot reach the room's queues.
    pub(crate) fn poll_own(&mut self, now: Instant) {
        let mut transmits = std::mem::take(&mut self.own_transmits);
        let mut props = std::mem::take(&mut self.own_props);
        self.poll(now, &mut transmits, &mut props);
        self.own_transmits = transmits;
        self.own_props = props;
    }

    pub(crate) fn accepts(&self, input: &Input) -> bool {
        self.rtc.accepts(input)
    }

    /// Our ICE ufrag for this session: the name its STUN checks carry. It changes when
    /// the client restarts ICE (a new offer), so the room re-reads it after negotiating.
    pub(crate) fn local_ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    pub(crate) fn send_event(&mut self, e: SfuEvent) {
        self.outbox.push_back(e);
    }

    /// Move what this participant is to be told to the room's queue.
    pub(crate) fn take_events(&mut self, to: &mut VecDeque<(ParticipantId, SfuEvent)>) {
        to.extend(self.outbox.drain(..).map(|e| (self.id, e)));
    }

    pub(crate) fn stats(&self) -> PeerStats {
        self.stats.clone()
    }

    pub(crate) fn handle_receive(&mut self, now: Instant, receive: Receive<'_>) {
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, receive)) {
            // A packet str0m cannot use (bad SRTP, malformed RTCP) is the sender's problem;
            // the session stays up.
            debug!(participant = %self.id, site = %self.options.name, "input rejected: {e}");
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            warn!(participant = %self.id, site = %self.options.name, "timeout handling failed: {e}");
            self.rtc.disconnect();
        }
        if let Some(since) = self.disconnected_at
            && now.saturating_duration_since(self.media_in_at.map_or(since, |t| t.max(since)))
                >= MEDIA_GRACE
        {
            warn!(participant = %self.id, site = %self.options.name, "no media path for {} s: ending the session", MEDIA_GRACE.as_secs());
            self.send_event(SfuEvent::Disconnected {
                reason: "ice_disconnected".into(),
            });
            self.rtc.disconnect();
        }
    }

    fn note_media_in(&mut self, now: Instant) {
        // The first media since ICE went: say once why the session stays.
        if let Some(gone) = self.disconnected_at
            && self.media_in_at.is_none_or(|t| t < gone)
        {
            info!(participant = %self.id, site = %self.options.name, "ICE checks stopped but media keeps arriving on the path: keeping the session");
        }
        self.media_in_at = Some(now);
    }

    /// Drain str0m's output: datagrams to `transmit`, cross-peer work to `out`.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        transmit: &mut VecDeque<Transmit>,
        out: &mut Vec<(ParticipantId, Propagated)>,
    ) {
        self.negotiate(now);
        if self.slots_changed {
            self.slots_changed = false;
            let map = self.slot_map();
            if map != self.told_slots {
                self.told_slots = map.clone();
                self.send_event(SfuEvent::Slots(map));
            }
        }
        loop {
            if !self.rtc.is_alive() {
                out.push((self.id, Propagated::Dead));
                self.next_timeout = now + std::time::Duration::from_secs(3600);
                return;
            }
            let output = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    warn!(participant = %self.id, site = %self.options.name, "media session failed: {e}");
                    self.rtc.disconnect();
                    continue;
                }
            };
            match output {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return;
                }
                Output::Transmit(t) => transmit.push_back(t),
                Output::Event(e) => self.handle_event(e, now, out),
            }
        }
    }

    fn handle_event(&mut self, e: Event, now: Instant, out: &mut Vec<(ParticipantId, Propagated)>) {
        match e {
            Event::Connected => {
                info!(participant = %self.id, site = %self.options.name, room = %self.room, "media connected");
                self.stats.connected = true;
                self.connected_at.get_or_insert(now);
                // A client that offered first gets its slots now (`OfferWhen`).
                self.negotiate(now);
                // Probe towards what the best layers would need; padding fills in while
                // media sends less, capped by the estimate itself.
                self.rtc
                    .bwe()
                    .set_bitrate(Bitrate::kbps(50), Bitrate::kbps(2500));
                self.send_event(SfuEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.disconnected_at.is_none() =>
            {
                info!(participant = %self.id, site = %self.options.name, "ICE disconnected; keeping the session for {} s", MEDIA_GRACE.as_secs());
                self.disconnected_at = Some(now);
                self.stats.connected = false;
                self.send_event(SfuEvent::Interrupted);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => {
                if let Some(since) = self.disconnected_at.take() {
                    let gap = now.saturating_duration_since(since);
                    info!(participant = %self.id, site = %self.options.name, "media path back after {:.1} s", gap.as_secs_f64());
                    self.stats.connected = true;
                    self.send_event(SfuEvent::Resumed { after: gap });
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
            Event::RtpPacket(packet) => {
                self.note_media_in(now);
                self.handle_rtp(packet, now, out);
            }
            Event::KeyframeRequest(req) => {
                self.stats.keyframe_requests_received += 1;
                // A slot's decoder wants a keyframe of what the slot carries now.
                if let Some((source, layer)) = self.slot_by_mid(req.mid).and_then(|s| s.current) {
                    out.push((
                        self.id,
                        Propagated::KeyframeRequest(source, Some(layer), req.kind),
                    ));
                }
            }
            Event::PeerStats(s) => {
                self.stats.bytes_in = s.peer_bytes_rx;
                self.stats.bytes_out = s.peer_bytes_tx;
                self.raw_estimate = s.bwe_tx.map(|b| b.as_u64());
                self.stats.bwe_raw_kbps = self.raw_estimate.map(|b| b / 1000);
                let was = self.stats.congested;
                self.stats.congested = self.congestion.sample(now, s.rtt, s.egress_loss_fraction);
                if let Some(on) = self.red.sample(now, s.egress_loss_fraction) {
                    info!(participant = %self.id, site = %self.options.name, loss = ?s.egress_loss_fraction, "audio redundancy (RED): {on}");
                    self.stats.red = on;
                }
                if was != self.stats.congested {
                    debug!(
                        participant = %self.id, site = %self.options.name,
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
                let audio = self
                    .tracks_in
                    .iter()
                    .find(|t| t.mid == s.mid)
                    .is_some_and(|t| t.kind == MediaKind::Audio);
                let jitter_ms = f64::from(s.jitter) / if audio { 48.0 } else { 90.0 };
                // The grade's jitter is the voice's when there is one: a video layer's
                // jitter leaps when a paused simulcast layer resumes (the floor moved) and
                // with every keyframe's burst, and read 100-140 ms on loopback, a "bad"
                // link for a site that was fine. Loss counts from every stream.
                let sends_audio = self.tracks_in.iter().any(|t| t.kind == MediaKind::Audio);
                let counted = if audio || !sends_audio {
                    jitter_ms
                } else {
                    0.0
                };
                let (loss, jitter) = self.uplink_sample.unwrap_or((0.0, 0.0));
                self.uplink_sample = Some((loss.max(s.loss.unwrap_or(0.0)), jitter.max(counted)));
                self.stats.jitter_up_ms = Some(jitter_ms);
                // str0m reports per-stream cumulative counts; keep the largest seen.
                self.stats.nacks_sent = self.stats.nacks_sent.max(s.nacks);
            }
            Event::MediaEgressStats(s) => {
                // A receiver report came, decrypted, since the last stats (`loss` is
                // `None` otherwise): a client that only receives sends nothing else.
                if s.loss.is_some() {
                    self.note_media_in(now);
                }
                self.stats.loss_down = s.loss.or(self.stats.loss_down);
                self.stats.nacks_received = self.stats.nacks_received.max(s.nacks);
                if let Some(rtt) = s.rtt {
                    self.stats.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                }
            }
            _ => {}
        }
    }
}
