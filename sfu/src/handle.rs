//! The seam between signaling and the media server: commands in, per-participant events out.

use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::SfuError;

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
        quality: crate::quality::Grade,
    },
}

/// How a participant joins the media room.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// The chair's site: its video comes first in every subscriber's allocation.
    pub chair: bool,
    /// The site this participant is at and the site's configured downlink: everything
    /// sent to participants at one site shares it (a room PC and two laptops behind one
    /// 3G link).
    pub site: Option<(String, u32)>,
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
    /// A publisher the user pinned: ranked after the chair and the speaker.
    pub pinned: Option<ParticipantId>,
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
    pub rtp_forwarded: u64,
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
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SfuStats {
    pub peers: Vec<PeerStats>,
    /// Datagrams no participant claimed (stray traffic, late packets of a gone peer).
    pub unclaimed_datagrams: u64,
    /// Datagrams dropped because the socket's send buffer was full.
    pub send_drops: u64,
    /// Link-check datagrams refused (no valid token, wrong source).
    pub probes_refused: u64,
}

pub(crate) enum Command {
    Join {
        room: String,
        participant: ParticipantId,
        options: JoinOptions,
        events: mpsc::UnboundedSender<SfuEvent>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Offer {
        participant: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<OfferOutcome, SfuError>>,
    },
    Answer {
        participant: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Ready {
        participant: ParticipantId,
    },
    Leave {
        participant: ParticipantId,
    },
    View {
        participant: ParticipantId,
        hints: ViewHints,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
    AllowProbe {
        token: crate::probe::Token,
        ttl: std::time::Duration,
    },
    Stop,
}

/// Cheap to clone; every clone talks to the same SFU task.
#[derive(Clone)]
pub struct SfuHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) media_addrs: Vec<SocketAddr>,
}

impl SfuHandle {
    /// Addresses advertised to clients as ICE candidates.
    pub fn media_addrs(&self) -> &[SocketAddr] {
        &self.media_addrs
    }

    pub async fn join(
        &self,
        room: &str,
        participant: ParticipantId,
    ) -> Result<mpsc::UnboundedReceiver<SfuEvent>, SfuError> {
        self.join_with(room, participant, JoinOptions::default())
            .await
    }

    pub async fn join_with(
        &self,
        room: &str,
        participant: ParticipantId,
        options: JoinOptions,
    ) -> Result<mpsc::UnboundedReceiver<SfuEvent>, SfuError> {
        let (events, rx) = mpsc::unbounded_channel();
        let (reply, done) = oneshot::channel();
        self.send(Command::Join {
            room: room.to_owned(),
            participant,
            options,
            events,
            reply,
        })
        .await?;
        done.await.map_err(|_| SfuError::Stopped)??;
        Ok(rx)
    }

    pub async fn offer(
        &self,
        participant: ParticipantId,
        sdp: String,
    ) -> Result<OfferOutcome, SfuError> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Offer {
            participant,
            sdp,
            reply,
        })
        .await?;
        done.await.map_err(|_| SfuError::Stopped)?
    }

    pub async fn answer(&self, participant: ParticipantId, sdp: String) -> Result<(), SfuError> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Answer {
            participant,
            sdp,
            reply,
        })
        .await?;
        done.await.map_err(|_| SfuError::Stopped)?
    }

    /// The client publishes nothing yet: the SFU may offer subscriptions right away.
    pub async fn ready(&self, participant: ParticipantId) -> Result<(), SfuError> {
        self.send(Command::Ready { participant }).await
    }

    /// What the subscriber's client shows; the allocator sends nothing larger.
    pub async fn view(&self, participant: ParticipantId, hints: ViewHints) -> Result<(), SfuError> {
        self.send(Command::View { participant, hints }).await
    }

    pub async fn leave(&self, participant: ParticipantId) {
        // A stopped SFU has no state for the participant left to clean.
        let _ = self.send(Command::Leave { participant }).await;
    }

    pub async fn stats(&self) -> Result<SfuStats, SfuError> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Stats { reply }).await?;
        done.await.map_err(|_| SfuError::Stopped)
    }

    /// Let a link check with `token` use the media port for `ttl` (signaling has checked
    /// the device's key).
    pub async fn allow_probe(
        &self,
        token: crate::probe::Token,
        ttl: std::time::Duration,
    ) -> Result<(), SfuError> {
        self.send(Command::AllowProbe { token, ttl }).await
    }

    /// Close the media sockets and end every session (a restart binds the port again).
    pub async fn stop(&self) {
        let _ = self.send(Command::Stop).await;
    }

    async fn send(&self, cmd: Command) -> Result<(), SfuError> {
        self.tx.send(cmd).await.map_err(|_| SfuError::Stopped)
    }
}
