//! The IO edge of the SFU: sockets, timers and commands, in one tokio task.
//!
//! The task owns every `Peer` (no locks on the forwarding path). Receive tasks, one per
//! local address, hand datagrams over a channel; the driver feeds them to the peer that
//! `accepts` them, drains that peer, and applies what it propagated to the other peers of
//! its room, which are drained in turn. Only peers touched since the last drain are
//! polled, so an idle meeting of 300 sites costs nothing per packet of another meeting.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::KeyframeRequestKind;
use str0m::net::{Protocol, Receive};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::allocator::{Priority, VideoSource};
use crate::budget::site_shares;
use crate::handle::{Command, OfferOutcome, SfuEvent, SfuHandle, SfuStats, ViewHints};
use crate::peer::{Peer, Propagated, PublishedLayers, TrackKey};
use crate::probe::{self, ProbeServer};
use crate::speaker::{SpeakerConfig, SpeakerDetector};
use crate::{ParticipantId, SfuConfig, SfuError};

/// Largest datagram we read; WebRTC keeps packets under the 1200-byte MTU target.
const RECV_BUF: usize = 2048;

/// How often every subscriber's allocation and every room's speaker are re-evaluated. A
/// capacity drop must be acted on well within half a second.
const ALLOCATE_EVERY: Duration = Duration::from_millis(100);
/// How often uplink grades are sampled (str0m's stats interval).
const QUALITY_EVERY: Duration = Duration::from_secs(1);

struct Datagram {
    socket: usize,
    source: SocketAddr,
    data: Vec<u8>,
}

struct MediaSocket {
    socket: Arc<UdpSocket>,
    /// The address ICE sees: the public IP when configured, else the local one.
    advertised: SocketAddr,
}

/// Bind the media sockets and start the SFU task.
pub async fn start(config: &SfuConfig) -> Result<SfuHandle, SfuError> {
    let ips = if config.listen_ips.is_empty() {
        local_ipv4_addresses()
    } else {
        config.listen_ips.clone()
    };
    if ips.is_empty() {
        return Err(SfuError::NoAddress);
    }
    let mut sockets = Vec::new();
    let mut port = config.port;
    for ip in ips {
        let addr = SocketAddr::new(ip, port);
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| SfuError::Bind { addr, source })?;
        let local = socket
            .local_addr()
            .map_err(|source| SfuError::Bind { addr, source })?;
        // Port 0 means "pick one": the first socket picks, the rest share its number.
        port = local.port();
        let advertised = match config.public_ip {
            Some(public) if !ip.is_loopback() => SocketAddr::new(public, port),
            _ => local,
        };
        info!(%local, %advertised, "media socket open");
        sockets.push(MediaSocket {
            socket: Arc::new(socket),
            advertised,
        });
    }
    let media_addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.advertised).collect();
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (net_tx, net_rx) = mpsc::channel(4096);
    let receivers = sockets
        .iter()
        .enumerate()
        .map(|(index, s)| tokio::spawn(receive_loop(index, s.socket.clone(), net_tx.clone())))
        .collect();
    let driver = Driver {
        sockets,
        candidates: media_addrs.clone(),
        state: Rooms::default(),
        next_allocate: Instant::now(),
        next_quality: Instant::now(),
        unclaimed: 0,
        send_drops: 0,
        receivers,
        probes: ProbeServer::default(),
    };
    tokio::spawn(driver.run(cmd_rx, net_rx));
    Ok(SfuHandle {
        tx: cmd_tx,
        media_addrs,
    })
}

fn local_ipv4_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| ip.is_ipv4())
            .collect(),
        Err(e) => {
            warn!("cannot list network interfaces: {e}");
            Vec::new()
        }
    };
    if !ips.iter().any(|ip| ip.is_loopback()) {
        ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    ips.sort();
    ips.dedup();
    ips
}

async fn receive_loop(index: usize, socket: Arc<UdpSocket>, tx: mpsc::Sender<Datagram>) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                let d = Datagram {
                    socket: index,
                    source,
                    data: buf[..n].to_vec(),
                };
                if tx.send(d).await.is_err() {
                    return;
                }
            }
            // ICMP port unreachable from a departed client surfaces here on Linux; the
            // socket itself is fine.
            Err(e) => debug!("media socket receive error: {e}"),
        }
    }
}

struct Driver {
    sockets: Vec<MediaSocket>,
    candidates: Vec<SocketAddr>,
    state: Rooms,
    unclaimed: u64,
    send_drops: u64,
    receivers: Vec<tokio::task::JoinHandle<()>>,
    probes: ProbeServer,
    next_allocate: Instant,
    next_quality: Instant,
}

/// Every peer, grouped in rooms, and which of them need polling. No sockets and no
/// clock: the driver (and the forwarding benchmark's in-memory harness) feed it
/// datagrams and time.
#[derive(Default)]
pub(crate) struct Rooms {
    pub(crate) peers: HashMap<ParticipantId, Peer>,
    pub(crate) rooms: HashMap<String, Vec<ParticipantId>>,
    pub(crate) dirty: HashSet<ParticipantId>,
    pub(crate) by_addr: HashMap<SocketAddr, ParticipantId>,
    /// Per room: who holds the floor, from their audio levels.
    pub(crate) speakers: HashMap<Arc<str>, SpeakerDetector<ParticipantId>>,
    /// Publishers whose audio is silent now and not forwarded (`SpeakerDetector::audible`).
    pub(crate) silent: HashSet<ParticipantId>,
    /// Per publisher, how often its audio resumed: each resumption is a new source to the
    /// subscribers' rewriters, so their sequence numbers run on without a gap.
    pub(crate) audio_epoch: HashMap<ParticipantId, u64>,
    /// `drain`'s work lists, reused so a forwarded packet allocates none.
    props: Vec<(ParticipantId, Propagated)>,
    batch: Vec<ParticipantId>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut net: mpsc::Receiver<Datagram>,
    ) {
        loop {
            let deadline = self
                .state
                .next_timeout()
                .into_iter()
                .chain(self.probes.next_timeout())
                .chain([self.next_allocate, self.next_quality])
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else {
                        info!("SFU handle dropped; media server stopping");
                        return;
                    };
                    if matches!(cmd, Command::Stop) {
                        info!("media server stopping");
                        for r in &self.receivers {
                            r.abort();
                        }
                        return;
                    }
                    self.handle_command(cmd, Instant::now());
                }
                Some(d) = net.recv() => {
                    self.handle_datagram(d, Instant::now());
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    self.send_probe_trains(now);
                    if now >= self.next_allocate {
                        self.next_allocate = now + ALLOCATE_EVERY;
                        self.state.tick_speakers(now);
                        self.state.allocate(now);
                    }
                    if now >= self.next_quality {
                        self.next_quality = now + QUALITY_EVERY;
                        self.state.sample_quality();
                    }
                    self.state.handle_timeouts(now);
                }
            }
            self.drain(Instant::now());
        }
    }

    fn send_probe_trains(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.probes.poll(now, &mut out);
        for (socket, to, data) in out {
            if let Some(s) = self.sockets.get(socket)
                && s.socket.try_send_to(&data, to).is_err()
            {
                self.send_drops += 1;
            }
        }
    }

    fn handle_datagram(&mut self, d: Datagram, now: Instant) {
        let Some(sock) = self.sockets.get(d.socket) else {
            return;
        };
        if probe::is_probe(&d.data) {
            let refused = self.probes.refused;
            if let Some((socket, to, reply)) = self.probes.handle(now, d.socket, d.source, &d.data)
                && let Some(s) = self.sockets.get(socket)
            {
                let _ = s.socket.try_send_to(&reply, to);
            }
            if self.probes.refused > refused && self.probes.refused.is_power_of_two() {
                // Logged at 1, 2, 4, 8 ... refusals: visible, but no log flood from a scan.
                info!(source = %d.source, refused = self.probes.refused, "link-check probe refused (no valid token)");
            }
            return;
        }
        if !self.state.receive(now, d.source, sock.advertised, &d.data) {
            self.unclaimed += 1;
        }
    }

    fn handle_command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Join {
                room,
                participant,
                options,
                events,
                reply,
            } => {
                let r = self.state.join(
                    &room,
                    participant,
                    options,
                    events,
                    self.candidates.clone(),
                    now,
                );
                let _ = reply.send(r);
            }
            Command::Offer {
                participant,
                sdp,
                reply,
            } => {
                let result = match self.state.peers.get_mut(&participant) {
                    Some(p) => p.handle_offer(&sdp),
                    None => Err(SfuError::UnknownParticipant(participant.to_string())),
                };
                if matches!(result, Ok(OfferOutcome::Answer(_))) {
                    self.state.dirty.insert(participant);
                }
                let _ = reply.send(result);
            }
            Command::Answer {
                participant,
                sdp,
                reply,
            } => {
                let result = match self.state.peers.get_mut(&participant) {
                    Some(p) => p.handle_answer(&sdp),
                    None => Err(SfuError::UnknownParticipant(participant.to_string())),
                };
                self.state.dirty.insert(participant);
                let result = result.map(|opened| {
                    // A new subscriber cannot decode until a keyframe: ask now, not at
                    // the publisher's next periodic keyframe seconds later.
                    for key in opened {
                        if let Some(p) = self.state.peers.get_mut(&key.participant) {
                            p.request_keyframe(key.mid, None, KeyframeRequestKind::Pli, now);
                            self.state.dirty.insert(key.participant);
                        }
                    }
                });
                let _ = reply.send(result);
            }
            Command::Ready { participant } => {
                if let Some(p) = self.state.peers.get_mut(&participant) {
                    p.set_ready();
                    self.state.dirty.insert(participant);
                }
            }
            Command::Leave { participant } => self.state.remove_peer(participant),
            Command::View { participant, hints } => {
                if let Some(p) = self.state.peers.get_mut(&participant) {
                    debug!(%participant, ?hints, "view changed");
                    p.set_view(hints, now);
                }
                // Applied at once, not at the next tick: a user who chose audio only
                // should see the video stop now.
                self.state.allocate(now);
            }
            Command::Stop => {}
            Command::AllowProbe { token, ttl } => self.probes.allow(token, now + ttl, now),
            Command::Stats { reply } => {
                let mut peers: Vec<_> = self.state.peers.values().map(|p| p.stats()).collect();
                peers.sort_by(|a, b| a.participant.cmp(&b.participant));
                let _ = reply.send(SfuStats {
                    peers,
                    unclaimed_datagrams: self.unclaimed,
                    send_drops: self.send_drops,
                    probes_refused: self.probes.refused,
                });
            }
        }
    }

    /// Poll every touched peer until nothing is left to do.
    fn drain(&mut self, now: Instant) {
        let sockets = &self.sockets;
        let send_drops = &mut self.send_drops;
        self.state.drain(now, |source, dest, data| {
            let sock = sockets
                .iter()
                .find(|s| s.advertised == source)
                .or_else(|| sockets.first());
            if let Some(s) = sock {
                // Media is real-time: a full send buffer means the packet is late anyway.
                if s.socket.try_send_to(data, dest).is_err() {
                    *send_drops += 1;
                }
            }
        });
    }
}

impl Rooms {
    /// A new participant, subscribed to everything its room already publishes.
    pub(crate) fn join(
        &mut self,
        room: &str,
        participant: ParticipantId,
        options: crate::JoinOptions,
        events: mpsc::UnboundedSender<crate::SfuEvent>,
        candidates: Vec<SocketAddr>,
        now: Instant,
    ) -> Result<(), SfuError> {
        if self.peers.contains_key(&participant) {
            return Err(SfuError::AlreadyJoined(participant.to_string()));
        }
        let mut peer = Peer::new(participant, room.into(), events, candidates, now);
        peer.options = options;
        let members = self.rooms.entry(room.to_string()).or_default();
        for other in members.iter() {
            if let Some(o) = self.peers.get(other) {
                for (key, kind) in o.published() {
                    peer.add_subscription(key, kind);
                }
            }
        }
        members.push(participant);
        info!(%participant, %room, "joined media room");
        self.peers.insert(participant, peer);
        self.dirty.insert(participant);
        Ok(())
    }

    /// Every peer whose timer is due, and every 100 ms the speakers and allocation.
    pub(crate) fn handle_timeouts(&mut self, now: Instant) {
        for p in self.peers.values_mut() {
            if p.next_timeout <= now {
                p.handle_timeout(now);
                self.dirty.insert(p.id);
            }
        }
    }

    /// The earliest peer timer.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.peers.values().map(|p| p.next_timeout).min()
    }

    /// Hand a datagram to the peer it belongs to; `false` if nobody claims it.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(contents) = data.try_into() else {
            // Not STUN, DTLS or (S)RTP: someone else's traffic on our port.
            return false;
        };
        let receive = Receive {
            proto: Protocol::Udp,
            source,
            destination,
            contents,
        };
        let input = str0m::Input::Receive(now, receive);
        // Remember which peer owns a remote address, so the per-packet lookup is one hash
        // probe instead of asking every peer on the server; `accepts` still confirms it.
        let cached = self
            .by_addr
            .get(&source)
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.accepts(&input)));
        let id = match cached {
            Some(id) => id,
            None => {
                let Some(id) = self
                    .peers
                    .values()
                    .find(|p| p.accepts(&input))
                    .map(|p| p.id)
                else {
                    return false;
                };
                self.by_addr.insert(source, id);
                id
            }
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        let str0m::Input::Receive(_, receive) = input else {
            return false;
        };
        peer.handle_receive(now, receive);
        self.dirty.insert(peer.id);
        true
    }

    /// Poll every touched peer until nothing is left to do; datagrams go to `transmit`.
    pub(crate) fn drain(
        &mut self,
        now: Instant,
        mut transmit: impl FnMut(SocketAddr, SocketAddr, &[u8]),
    ) {
        // Buffers kept between calls: this runs for every datagram received.
        let mut props = std::mem::take(&mut self.props);
        let mut batch = std::mem::take(&mut self.batch);
        while !self.dirty.is_empty() {
            batch.extend(self.dirty.drain());
            for id in batch.drain(..) {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.negotiate();
                    p.poll(now, &mut transmit, &mut props);
                }
            }
            for (from, prop) in props.drain(..) {
                self.propagate(from, prop, now);
            }
        }
        self.props = props;
        self.batch = batch;
    }
}

impl Rooms {
    fn remove_peer(&mut self, participant: ParticipantId) {
        let Some(peer) = self.peers.remove(&participant) else {
            return;
        };
        info!(%participant, room = %peer.room, "left media room");
        self.by_addr.retain(|_, id| *id != participant);
        if let Some(d) = self.speakers.get_mut(&peer.room) {
            d.remove(participant);
        }
        self.silent.remove(&participant);
        self.audio_epoch.remove(&participant);
        if let Some(members) = self.rooms.get_mut(&*peer.room) {
            members.retain(|m| *m != participant);
            for m in members.iter() {
                if let Some(o) = self.peers.get_mut(m) {
                    o.remove_subscriptions_from(participant);
                    self.dirty.insert(*m);
                }
            }
            if members.is_empty() {
                self.rooms.remove(&*peer.room);
                self.speakers.remove(&peer.room);
            }
        }
        self.dirty.remove(&participant);
    }

    fn propagate(&mut self, from: ParticipantId, prop: Propagated, now: Instant) {
        // An Arc clone, not a String: this runs once per forwarded packet.
        let Some(room) = self.peers.get(&from).map(|p| p.room.clone()) else {
            return;
        };
        let members: &[ParticipantId] = self.rooms.get(&*room).map(Vec::as_slice).unwrap_or(&[]);
        match prop {
            Propagated::Rtp {
                key,
                params,
                packet,
            } => {
                // Silent voices are not forwarded: on a 3G link, fifty muted sites'
                // comfort noise would cost more than the speaker's video.
                if params.spec().codec.is_audio() && self.silent.contains(&from) {
                    // A silent voice that starts speaking is forwarded from this packet
                    // (if fewer than the cap are speaking), not from the next tick.
                    let starts = packet.header.ext_vals.audio_level.is_some_and(|l| {
                        self.speakers
                            .get(&room)
                            .is_some_and(|d| d.is_speech(l.unsigned_abs()) && d.room_for(from, now))
                    });
                    if !starts {
                        return;
                    }
                    self.silent.remove(&from);
                    *self.audio_epoch.entry(from).or_default() += 1;
                }
                let epoch = self.audio_epoch.get(&from).copied().unwrap_or(0);
                let mut wants_keyframe = None;
                for m in members {
                    if *m == from {
                        continue;
                    }
                    if let Some(p) = self.peers.get_mut(m) {
                        if let Some(layer) = p.forward(key, &params, &packet, epoch, now) {
                            wants_keyframe = Some(layer);
                        }
                        self.dirty.insert(*m);
                    }
                }
                if let Some(layer) = wants_keyframe
                    && let Some(p) = self.peers.get_mut(&from)
                {
                    p.request_keyframe(key.mid, Some(layer), KeyframeRequestKind::Pli, now);
                }
            }
            Propagated::TrackOpened(key, kind) => {
                for m in members {
                    if let Some(p) = self.peers.get_mut(m) {
                        p.add_subscription(key, kind);
                        self.dirty.insert(*m);
                    }
                }
            }
            Propagated::TrackClosed(key) => {
                for m in members {
                    if let Some(p) = self.peers.get_mut(m) {
                        p.remove_subscription(key);
                        self.dirty.insert(*m);
                    }
                }
            }
            Propagated::KeyframeRequest(key, layer, kind) => {
                if let Some(p) = self.peers.get_mut(&key.participant) {
                    p.request_keyframe(key.mid, layer, kind, now);
                    self.dirty.insert(key.participant);
                }
            }
            Propagated::AudioLevel(level) => {
                self.speakers
                    .entry(room)
                    .or_insert_with(|| SpeakerDetector::new(SpeakerConfig::default()))
                    .on_level(from, level, now);
            }
            Propagated::Dead => {
                info!(participant = %from, "media session ended");
                self.remove_peer(from);
            }
        }
    }
}

impl Rooms {
    /// Re-evaluate every room's speaker; tell the room when the floor changes.
    pub(crate) fn tick_speakers(&mut self, now: Instant) {
        for (room, d) in self.speakers.iter_mut() {
            let before = d.dominant();
            d.tick(now);
            let audible = d.audible(now);
            for m in self.rooms.get(&**room).map(Vec::as_slice).unwrap_or(&[]) {
                let silent = d.knows(*m) && !audible.contains(m);
                if silent {
                    self.silent.insert(*m);
                } else if self.silent.remove(m) {
                    *self.audio_epoch.entry(*m).or_default() += 1;
                }
            }
            let after = d.dominant();
            if before == after {
                continue;
            }
            debug!(%room, speaker = ?after, "active speaker");
            for m in self.rooms.get(&**room).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(p) = self.peers.get(m) {
                    p.send_event(SfuEvent::Speaker { participant: after });
                }
            }
        }
    }

    /// Share every subscriber's link among what it could receive (`allocator.rs`).
    pub(crate) fn allocate(&mut self, now: Instant) {
        let mut published = Vec::new();
        for p in self.peers.values_mut() {
            p.published_layers(now, &mut published);
        }
        let by_key: HashMap<TrackKey, &PublishedLayers> =
            published.iter().map(|p| (p.key, p)).collect();
        let chairs: HashSet<ParticipantId> = self
            .peers
            .values()
            .filter(|p| p.options.chair)
            .map(|p| p.id)
            .collect();
        // A site's configured downlink is shared by everyone at the site (`budget.rs`).
        let shares = site_shares(
            self.peers
                .values()
                .filter_map(|p| Some((p.id, p.options.site.as_ref()?))),
        );
        for p in self.peers.values_mut() {
            let (audio, video) = p.subscribed();
            let audio = audio
                .iter()
                .filter(|k| !self.silent.contains(&k.participant))
                .count();
            let speaker = self.speakers.get(&p.room).and_then(|d| d.dominant());
            // What the tiles could use; the peer adds its audio.
            let mut wanted = 0u64;
            let sources: Vec<VideoSource<TrackKey>> = video
                .iter()
                .map(|k| {
                    let mut layers: Vec<_> = by_key
                        .get(k)
                        .map(|l| l.layers.iter().map(|x| x.2).collect())
                        .unwrap_or_default();
                    if p.view.low_data {
                        layers.truncate(1);
                    }
                    let max_height = tile_height(&p.view, k.participant);
                    if max_height > 0 {
                        wanted += layers
                            .iter()
                            .rev()
                            .find(|l| l.height <= max_height)
                            .or(layers.first())
                            .map_or(0, |l| u64::from(l.bps));
                    }
                    let priority = if chairs.contains(&k.participant) {
                        Priority::Chair
                    } else if speaker == Some(k.participant) {
                        Priority::Speaker
                    } else if p.view.pinned == Some(k.participant) {
                        Priority::Pinned
                    } else {
                        Priority::Other
                    };
                    VideoSource {
                        key: *k,
                        priority,
                        layers,
                        max_height,
                    }
                })
                .collect();
            let Some(mut budget) = p.estimate_bps(now) else {
                continue;
            };
            if let Some(share) = shares.get(&p.id) {
                budget = budget.min(*share);
            }
            let wanted = wanted.min(u64::from(u32::MAX)) as u32;
            p.allocate(now, budget, audio, &sources, &by_key, wanted);
            self.dirty.insert(p.id);
        }
    }

    /// Grade every publisher's uplink; tell its room when a grade changes.
    fn sample_quality(&mut self) {
        let mut changed = Vec::new();
        for p in self.peers.values_mut() {
            if let Some(g) = p.uplink_quality() {
                changed.push((p.id, p.room.clone(), g));
            }
        }
        for (who, room, quality) in changed {
            info!(participant = %who, quality = quality.as_str(), "uplink grade changed");
            for m in self.rooms.get(&*room).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(p) = self.peers.get(m) {
                    p.send_event(SfuEvent::LinkQuality {
                        participant: who,
                        quality,
                    });
                }
            }
        }
    }
}

/// How tall a subscriber shows a publisher's video; 0 = not at all.
fn tile_height(view: &ViewHints, publisher: ParticipantId) -> u16 {
    if view.audio_only || view.hidden {
        return 0;
    }
    if view.tiles.is_empty() {
        return u16::MAX;
    }
    view.tiles
        .iter()
        .find(|(p, _)| *p == publisher)
        .map_or(0, |(_, h)| *h)
}
