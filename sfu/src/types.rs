//! The SFU's vocabulary: who is who, what the core tells signaling, what a subscriber
//! shows. Plain data with no IO, so the room core and the tokio edge (`io/`) both use it
//! and the arrows point down: `io` imports the core, never the other way round.

use std::fmt;

use serde::Serialize;

/// A participant as the SFU knows it. Signaling allocates these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
}

/// One voice packet of a recorded room (`SfuHandle::record`): what the room's
/// subscribers are forwarded (never a held or silent voice), Opus as the publisher sent
/// it (RED already stripped), for the meeting's record.
#[derive(Debug, Clone)]
pub struct RecordedAudio {
    pub from: ParticipantId,
    pub seq: u64,
    /// The packet's own payload buffer, shared, not copied.
    pub opus: std::sync::Arc<[u8]>,
}

/// One video packet of a recorded room: the floor holder's camera, one simulcast
/// encoding (the one nearest 360 lines), as the publisher sent it.
#[derive(Debug, Clone)]
pub struct RecordedVideo {
    pub from: ParticipantId,
    pub seq: u64,
    pub rtp_ts: u32,
    pub marker: bool,
    pub payload: std::sync::Arc<[u8]>,
}

/// What a recorded room copies out to its recorder.
#[derive(Debug, Clone)]
pub enum Recorded {
    Audio(RecordedAudio),
    Video(RecordedVideo),
}

/// Counts over the media server's life (ended sessions included), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub sessions: u64,
    pub rtp_in: u64,
    pub rtp_forwarded: u64,
    pub nacks_sent: u64,
    pub nacks_received: u64,
    pub keyframe_requests_received: u64,
    pub keyframe_requests_sent: u64,
    pub layer_changes: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, p: &PeerStats) {
        self.sessions += 1;
        self.rtp_in += p.rtp_in;
        self.rtp_forwarded += p.rtp_forwarded;
        self.nacks_sent += p.nacks_sent;
        self.nacks_received += p.nacks_received;
        self.keyframe_requests_received += p.keyframe_requests_received;
        self.keyframe_requests_sent += p.keyframe_requests_sent;
        self.layer_changes += p.layer_changes;
    }
}

/// What the SFU tells signaling about one participant.
#[derive(Debug, Clone, PartialEq)]
pub enum SfuEvent {
    /// A server-initiated offer to send to the client (subscriptions changed).
    Offer(String),
    /// A track this participant publishes reached the SFU.
    Published { mid: String, kind: TrackKind },
    /// A track this participant published stopped (m-line inactive or removed).
    Unpublished { mid: String, kind: TrackKind },
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The media path went silent; the session is kept for a while (the client's ICE
    /// consent may resume, or it restarts ICE with a new offer).
    Interrupted,
    /// The media path is back after `after` without it.
    Resumed { after: std::time::Duration },
    /// The media connection is gone (silent past the grace period); the client should
    /// rejoin.
    Disconnected { reason: String },
    /// This participant's link cannot carry video now (`audio_only`), or can again. Sent
    /// on change only, with the estimate that decided it.
    Bandwidth {
        audio_only: bool,
        estimate_kbps: u32,
    },
    /// The room's active speaker changed (`None`: nobody is speaking).
    Speaker { participant: Option<ParticipantId> },
    /// A publisher's uplink, as the SFU receives it, changed grade.
    LinkQuality {
        participant: ParticipantId,
        quality: crate::policy::quality::Grade,
    },
    /// Who this subscriber sees and hears in each of its slots now (sent on change). A
    /// video slot names the source whose picture it carries, from the first keyframe
    /// of that source on, so a tile's label never runs ahead of its picture.
    Slots(SlotMap),
    /// To a publisher: the simulcast layers (rids) of its video track `mid` that some
    /// subscriber receives, or may soon. The others are not forwarded to anyone, so the
    /// publisher stops sending them (a commune's 3G uplink carries one small layer).
    Layers { mid: String, active: Vec<String> },
}

/// The media a subscriber receives arrives in a fixed set of slots, each one m-line and
/// one continuous RTP stream whose source the SFU re-points: a site joining or leaving
/// renegotiates nobody. The msid stream id of audio slot `i` is `a{i}`, of video slot
/// `i` is `v{i}`; video slot 0 is the main picture, the rest are thumbnails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMap {
    pub audio: Vec<Option<ParticipantId>>,
    pub video: Vec<Option<VideoSlot>>,
}

/// The source a video slot carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSlot {
    pub participant: ParticipantId,
    /// The participant's shared screen rather than its camera.
    pub screen: bool,
}

/// Audio slots per subscriber: the loudest voices, the floor holder (or the chair)
/// always among them. More than three voices at once is not intelligible anyway.
pub const AUDIO_SLOTS: usize = 3;
/// Video slots per subscriber by default: the main picture and six thumbnails.
pub const VIDEO_SLOTS: usize = 7;

/// A publisher's track, named across the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TrackKey {
    pub(crate) participant: ParticipantId,
    pub(crate) mid: str0m::media::Mid,
}

/// How a participant joins the media room.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// What the media server's log lines call this participant besides its id: its site,
    /// or its own name (a commune's story is then one `grep` away).
    pub name: String,
    /// The chair's site: its video comes first in every subscriber's allocation.
    pub chair: bool,
    /// The site this participant is at and the site's configured downlink: everything
    /// sent to participants at one site shares it (a room PC and two laptops behind one
    /// 3G link).
    pub site: Option<(String, u32)>,
    /// Video slots this subscriber's session holds (main plus thumbnails); `None`:
    /// [`VIDEO_SLOTS`]. Fixed for the session, so the SDP never grows with the room.
    pub video_slots: Option<usize>,
    /// The client only publishes and cannot take an offer from the bridge (a WHIP
    /// encoder: RFC 9725 has no server-initiated renegotiation): no slots, no offer.
    pub publish_only: bool,
    /// The client offers the m-lines it receives on (WHEP): its receiving audio and
    /// video m-lines become its slots, in order, and the bridge never offers.
    pub slots_from_offer: bool,
}

/// What a subscriber shows, from its client: nobody is sent more than it displays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewHints {
    /// The user chose audio only.
    pub audio_only: bool,
    /// The user chose low data: the lowest layer of everything.
    pub low_data: bool,
    /// The page is not visible (hidden tab, minimised).
    pub hidden: bool,
    /// Tile heights in device pixels by publisher; a publisher not listed is not shown
    /// when the list is non-empty. Empty: no hint yet, everything may be sent.
    pub tiles: Vec<(ParticipantId, u16)>,
    /// A publisher the user pinned: it takes this user's main slot.
    pub pinned: Option<ParticipantId>,
    /// Tile height per video slot (index 0 is the main tile); a slot past the end of
    /// the list is not shown and gets no source. Empty: the page laid out no slots
    /// yet, and every slot may be filled (its tile size from `tiles`, else unlimited).
    pub slots: Vec<u16>,
}

/// Result of a client offer.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferOutcome {
    Answer(String),
    /// The server had its own offer outstanding (glare). The server is the impolite side:
    /// the client rolls back, answers the server's offer, and offers again.
    Ignored,
}

/// Counters for one participant, for operators and tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerStats {
    pub participant: String,
    pub room: String,
    pub connected: bool,
    pub rtp_in: u64,
    /// Audio RTP packets from this participant: none for a while from a site whose
    /// microphone is open means nobody hears it.
    pub audio_rtp_in: u64,
    pub rtp_forwarded: u64,
    /// Every byte to and from this participant's address (media, RTCP, STUN, DTLS):
    /// what its link carries. From str0m's peer stats, a few times a second.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Video packets not sent to this subscriber: frames of temporal layers its link
    /// does not carry.
    pub rtp_skipped: u64,
    /// Second copies of base-layer frame tails sent (a slowly repairing path).
    pub tail_copies: u64,
    /// NACKs the SFU sent to this participant as publisher (from str0m's ingress stats).
    pub nacks_sent: u64,
    /// NACKs this participant sent to the SFU as subscriber.
    pub nacks_received: u64,
    /// PLI/FIR this participant sent as subscriber.
    pub keyframe_requests_received: u64,
    /// Keyframe requests the SFU sent to this participant as publisher.
    pub keyframe_requests_sent: u64,
    pub rtt_ms: Option<f64>,
    /// Loss fraction reported by the participant for what the SFU sends it (0..1).
    pub loss_down: Option<f32>,
    /// Loss fraction the SFU measures on what the participant sends (0..1).
    pub loss_up: Option<f32>,
    /// The bandwidth estimate towards this participant (TWCC; REMB from old clients).
    pub bwe_kbps: Option<u64>,
    /// str0m's unsmoothed estimate (its event is a 3 s average); the allocator uses the
    /// lower of the two.
    pub bwe_raw_kbps: Option<u64>,
    /// The path towards this participant shows congestion (queueing delay or heavy loss
    /// in TWCC feedback): the raw estimate is in force.
    pub congested: bool,
    /// This subscriber's audio is sent with RED (its link loses packets).
    pub red: bool,
    /// Previous frames each RED packet repeats (0 without RED): two when the estimate
    /// has room for it after the allocation.
    pub red_distance: u8,
    /// The rate str0m pads up to (capped by its estimate) while this subscriber is on
    /// audio only because of its link, so the estimate can follow the link back up.
    pub padding_kbps: u64,
    /// Interarrival jitter of this participant's uplink (largest stream, last report).
    pub jitter_up_ms: Option<f64>,
    /// This participant's uplink grade: `good`, `weak` or `bad`.
    pub uplink: &'static str,
    /// What the allocator gives this subscriber (audio and chosen layers).
    pub allocated_kbps: u64,
    /// The allocator left this subscriber audio only.
    pub audio_only: bool,
    /// How often a video track's chosen layer changed.
    pub layer_changes: u64,
    /// The layer chosen per publisher whose video this subscriber gets.
    pub forwarding: Vec<Forwarding>,
}

/// One video track a subscriber is sent, and which layer of it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Forwarding {
    pub publisher: String,
    /// The simulcast layer's rid; `None` for a single-layer publisher.
    pub rid: Option<String>,
    /// Frame height of the layer, when known (VP8 keyframes carry it).
    pub height: Option<u16>,
    /// The highest temporal layer sent (0: a quarter of the frame rate, 1: half, 2:
    /// all, for Chrome's three); `None`: every frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporal: Option<u8>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SfuStats {
    pub peers: Vec<PeerStats>,
    /// Since the media server started, sessions gone included: counters for metrics.
    pub totals: Totals,
    /// Datagrams no participant claimed (stray traffic, late packets of a gone peer).
    pub unclaimed_datagrams: u64,
    /// Datagrams dropped because the socket's send buffer was full.
    pub send_drops: u64,
    /// Link-check datagrams refused (no valid token, wrong source).
    pub probes_refused: u64,
}
