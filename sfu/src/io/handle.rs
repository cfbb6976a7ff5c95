//! The seam between signaling and the media server: commands in, per-participant events out.

use std::net::SocketAddr;

use tokio::sync::{mpsc, oneshot};

use crate::SfuError;
use crate::types::{JoinOptions, OfferOutcome, ParticipantId, SfuEvent, SfuStats, ViewHints};

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
        red: bool,
    },
    Leave {
        participant: ParticipantId,
    },
    View {
        participant: ParticipantId,
        hints: ViewHints,
    },
    /// The chair gave the floor to `participant` (`None`: took it back).
    Floor {
        room: String,
        participant: Option<ParticipantId>,
    },
    /// Copy `room`'s forwarded voices to `to` (`None`: stop).
    Record {
        room: String,
        to: Option<mpsc::Sender<crate::Recorded>>,
    },
    /// The chair stopped (or let through) participants' microphones or cameras:
    /// (participant, audio held, video held).
    Hold {
        holds: Vec<(ParticipantId, bool, bool)>,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
    AllowProbe {
        token: crate::probe::Token,
        ttl: std::time::Duration,
    },
    Stop,
    TcpClosed {
        peer: SocketAddr,
    },
    TcpCandidates {
        addrs: Vec<SocketAddr>,
    },
}

/// Cheap to clone; every clone talks to the same SFU task.
#[derive(Clone)]
pub struct SfuHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    /// Where ICE-TCP connections put the frames they read (the UDP receivers' queue).
    pub(crate) net: mpsc::Sender<super::driver::Datagram>,
    /// ICE-TCP connections open at once, over all clients (`MAX_TCP_CONNECTIONS`).
    pub(crate) tcp_slots: std::sync::Arc<tokio::sync::Semaphore>,
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
    /// The client publishes nothing yet (`red`: it decodes RED-wrapped Opus).
    pub async fn ready(&self, participant: ParticipantId, red: bool) -> Result<(), SfuError> {
        self.send(Command::Ready { participant, red }).await
    }

    /// What the subscriber's client shows; the allocator sends nothing larger.
    pub async fn view(&self, participant: ParticipantId, hints: ViewHints) -> Result<(), SfuError> {
        self.send(Command::View { participant, hints }).await
    }

    /// Who holds the floor in `room`: their picture takes the main slot and their voice
    /// an audio slot for everyone.
    pub async fn floor(
        &self,
        room: &str,
        participant: Option<ParticipantId>,
    ) -> Result<(), SfuError> {
        self.send(Command::Floor {
            room: room.to_owned(),
            participant,
        })
        .await
    }

    /// Send every voice packet `room`'s subscribers are forwarded, and the floor
    /// holder's camera, to `to`, from now on (`None`: stop). A full `to` loses packets rather than slowing the media path.
    pub async fn record(
        &self,
        room: &str,
        to: Option<mpsc::Sender<crate::Recorded>>,
    ) -> Result<(), SfuError> {
        self.send(Command::Record {
            room: room.to_owned(),
            to,
        })
        .await
    }

    /// Stop (`true`) or let through participants' microphones and cameras (participant,
    /// audio, video), whatever their pages do: the bridge forwards nothing of what is
    /// held. One command for many: the room is decided once.
    pub async fn hold(&self, holds: Vec<(ParticipantId, bool, bool)>) -> Result<(), SfuError> {
        self.send(Command::Hold { holds }).await
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

    /// Offer passive ICE-TCP candidates on `port` (the HTTPS port) at the media
    /// addresses, to every session that starts from now on.
    pub async fn offer_ice_tcp(&self, port: u16) -> Result<(), SfuError> {
        let addrs = self
            .media_addrs
            .iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect();
        self.send(Command::TcpCandidates { addrs }).await
    }

    /// Carry the ICE-TCP connection `stream` from `peer` (its first bytes were an RFC
    /// 4571 frame with STUN, `classify`) until either side ends it.
    pub fn serve_ice_tcp(&self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let Ok(local) = stream.local_addr() else {
            return;
        };
        // Each connection costs a task and its buffers: a flood of them is refused
        // beyond what the largest meetings need, never queued.
        let Ok(slot) = self.tcp_slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "ICE-TCP connection refused: {} open already", super::tcp::MAX_CONNECTIONS);
            return;
        };
        let (net, commands) = (self.net.clone(), self.tx.clone());
        tokio::spawn(async move {
            super::tcp::connection(stream, peer, local, net, commands).await;
            drop(slot);
        });
    }

    /// Close the media sockets and end every session (a restart binds the port again).
    pub async fn stop(&self) {
        let _ = self.send(Command::Stop).await;
    }

    async fn send(&self, cmd: Command) -> Result<(), SfuError> {
        self.tx.send(cmd).await.map_err(|_| SfuError::Stopped)
    }
}
