//! The room core: every peer on this SFU, grouped in rooms, as a sans-IO state machine
//! in the manner of str0m's `Rtc`. Input goes in through methods that take `now` (a
//! datagram: [`Rooms::receive`]; a command: `join`, `offer`, `view`, ...; time:
//! [`Rooms::handle_timeout`]); output comes out of [`Rooms::poll_output`] (datagrams to
//! send, events for a participant, and the next time to wake), drained until it says
//! `Timeout`. No tokio, no channel and no clock read in here: `io/driver.rs` moves bytes
//! and timers, `sim.rs` drives the same core on a simulated clock.
//!
//! A publisher's packet is routed through a table per room (which subscribers' slots
//! take packets from which source), so its cost is the subscribers that receive it, not
//! the size of the room. Every [`ALLOCATE_EVERY`] each room's speaker, slots and each
//! subscriber's allocation are decided again, and the table rebuilt.
//!
//! The sessions due at one moment are polled on worker threads (`set_workers`), each
//! session always on the same one; everything that crosses sessions stays on the
//! calling thread, so the core behaves the same with one thread or several.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::Ssrc;
use tracing::{debug, info};

use crate::SfuError;
use crate::fixed_hash::{FixedMap, FixedSet};
use crate::ice_ufrag;
use crate::peer::{Candidates, Peer, Propagated, PublishedLayers, SlotChoice};
use crate::policy::allocator::{Layer, Priority, VideoSource, encoding_top, layer_for_tile};
use crate::policy::budget::site_shares;
use crate::policy::frame_rate;
use crate::policy::slots::{self, SlotInputs};
use crate::policy::speaker::{SpeakerConfig, SpeakerDetector};
use crate::types::{
    JoinOptions, OfferOutcome, ParticipantId, PeerStats, Recorded, RecordedAudio, RecordedVideo,
    SfuEvent, TrackKey, ViewHints,
};

/// How often every subscriber's slots and allocation and every room's speaker are
/// re-evaluated. A capacity drop must be acted on well within half a second.
pub const ALLOCATE_EVERY: Duration = Duration::from_millis(100);
/// A view change is decided at once (the user sees their own choice take effect) at most
/// this often per participant, and not when the room was decided less than
/// [`VIEW_ROOM_GAP`] ago; other view changes wait for the next room tick
/// ([`ALLOCATE_EVERY`]). A client sending views as fast as it can then costs its room at
/// most one extra decision a second, not one per message.
pub const VIEW_DECIDE_EVERY: Duration = Duration::from_secs(1);
pub const VIEW_ROOM_GAP: Duration = Duration::from_millis(50);
/// How often uplink grades are sampled (str0m's stats interval).
const QUALITY_EVERY: Duration = Duration::from_secs(1);
/// Fewer sessions to poll than this are polled on the calling thread: waking the
/// workers costs about as much as polling a handful of sessions.
const PARALLEL_FROM: usize = 64;

/// What the core asks of its driver.
pub enum Output {
    /// A datagram to send (str0m's own buffer: no copy on the way out).
    Transmit(Transmit),
    /// Something to tell one participant's signaling session.
    Event(ParticipantId, SfuEvent),
    /// A packet of a room being recorded (`set_recording`): a voice everyone hears, or
    /// the floor holder's camera.
    Record(Arc<str>, Recorded),
    /// Nothing more until this instant, or until the next input.
    Timeout(Instant),
}

/// One meeting's media room.
struct Room {
    members: Vec<ParticipantId>,
    speaker: SpeakerDetector<ParticipantId>,
    /// Participants by how recently they were the active speaker, most recent first.
    recent: Vec<ParticipantId>,
    floor: Option<ParticipantId>,
    /// Which subscribers' slots take packets from each source: (subscriber, slot).
    routes: FixedMap<TrackKey, Vec<(ParticipantId, usize)>>,
    /// When slots and allocation were last decided.
    decided_at: Option<Instant>,
    /// While recorded: the floor holder's camera encoding copied to the record, the
    /// next sequence number expected of it, and when a keyframe was last asked for it.
    record_video: Option<(TrackKey, Ssrc)>,
    record_seq: Option<u64>,
    record_pli: Option<Instant>,
}

impl Room {
    fn new() -> Self {
        Self {
            members: Vec::new(),
            speaker: SpeakerDetector::new(SpeakerConfig::default()),
            recent: Vec::new(),
            floor: None,
            routes: Default::default(),
            decided_at: None,
            record_video: None,
            record_seq: None,
            record_pli: None,
        }
    }
}

/// Every peer and room on this SFU.
pub struct Rooms {
    pub(crate) peers: FixedMap<ParticipantId, Peer>,
    rooms: FixedMap<Arc<str>, Room>,
    pub(crate) dirty: FixedSet<ParticipantId>,
    by_addr: HashMap<SocketAddr, ParticipantId>,
    /// Each session's ICE ufrag: how a STUN check from a new address finds its session.
    by_ufrag: HashMap<String, ParticipantId>,
    /// How many times a session was asked whether a datagram is its own (a hostile
    /// sender must not make this grow with the number of sessions).
    asked: u64,
    /// Publishers whose audio is silent now and not forwarded (`SpeakerDetector::audible`).
    silent: FixedSet<ParticipantId>,
    /// Publishers whose microphone (`held_audio`) or camera (`held_video`) the chair
    /// stopped: nothing of it is forwarded or heard by the speaker detector, whatever
    /// the publisher's page does (`hold`).
    held_audio: FixedSet<ParticipantId>,
    held_video: FixedSet<ParticipantId>,
    /// Per publisher, how often its audio resumed: each resumption is a new source to the
    /// subscribers' rewriters, so their sequence numbers run on without a gap.
    audio_epoch: FixedMap<ParticipantId, u64>,
    candidates: Candidates,
    next_allocate: Option<Instant>,
    next_quality: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(ParticipantId, SfuEvent)>,
    /// The counts of sessions that ended (`Totals`): metrics' counters never go back.
    departed: crate::types::Totals,
    /// Rooms whose voices are copied out for the meeting's record, and the copies.
    recording: FixedSet<Arc<str>>,
    recorded: VecDeque<(Arc<str>, Recorded)>,
    /// `drain`'s work lists, reused so a forwarded packet allocates none.
    props: Vec<(ParticipantId, Propagated)>,
    batch: Vec<ParticipantId>,
    /// Worker threads that poll many sessions at once (`set_workers`); `None`: all on
    /// the calling thread.
    pool: Option<rayon::ThreadPool>,
    /// Sessions ever joined: the next one's shard.
    joined: usize,
    /// When each participant's view change was last decided at once (`view`).
    view_decided: FixedMap<ParticipantId, Instant>,
    /// Room decisions made (slots and allocation), for tests of what input costs.
    decisions: u64,
    /// Fewer sessions due at once than this are polled on the calling thread.
    parallel_from: usize,
    /// Choose temporal layers as well as simulcast layers (`rtp/temporal.rs`); off only
    /// to compare.
    temporal: bool,
}

impl Rooms {
    /// `candidates`: the addresses clients send media to (ICE host candidates).
    pub fn new(candidates: Vec<SocketAddr>) -> Self {
        Self {
            peers: Default::default(),
            rooms: Default::default(),
            dirty: Default::default(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            asked: 0,
            silent: Default::default(),
            held_audio: Default::default(),
            held_video: Default::default(),
            audio_epoch: Default::default(),
            candidates: Candidates {
                udp: candidates,
                tcp: Vec::new(),
            },
            next_allocate: None,
            next_quality: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            departed: Default::default(),
            recording: Default::default(),
            recorded: VecDeque::new(),
            props: Vec::new(),
            batch: Vec::new(),
            pool: None,
            joined: 0,
            view_decided: Default::default(),
            decisions: 0,
            parallel_from: PARALLEL_FROM,
            temporal: true,
        }
    }

    /// Whether subscribers get a lower frame rate before a lower resolution (on by
    /// default; `[sfu] temporal_layers`).
    pub fn set_temporal_layers(&mut self, on: bool) {
        self.temporal = on;
    }

    /// Poll sessions on `workers` threads (1: on the calling thread only).
    ///
    /// Nearly all of the core's time is str0m's work inside one session (its timers,
    /// pacer and SRTP), and sessions share nothing, while what crosses sessions (routing
    /// a packet into slots, the room's decisions) is a small part. So the sessions due at
    /// one moment (the 270 subscribers of one voice packet, the peers whose timers
    /// fired) are polled in parallel, and the room applies what they produced on the
    /// calling thread, in one place, as before: a publisher's packet is decrypted once
    /// and every subscriber's copy is written from it.
    pub fn set_workers(&mut self, workers: usize) -> Result<(), SfuError> {
        // The calling thread is one of the workers.
        self.pool = if workers > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers - 1)
                .thread_name(|i| format!("cauhop-sfu-{i}"))
                .build()
                .map_err(|e| SfuError::Workers(e.to_string()))?;
            Some(pool)
        } else {
            None
        };
        Ok(())
    }

    /// Use the worker threads from this many sessions due at once (tests: small rooms
    /// through the parallel path).
    #[cfg(any(test, feature = "bench"))]
    pub fn set_parallel_from(&mut self, sessions: usize) {
        self.parallel_from = sessions.max(1);
    }

    /// How many threads poll sessions.
    pub fn workers(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(1, |p| p.current_num_threads() + 1)
    }

    /// A new participant. Its slots are offered after its first offer (or `ready`);
    /// nobody else in the room is renegotiated.
    pub fn join(
        &mut self,
        now: Instant,
        room: &str,
        participant: ParticipantId,
        options: JoinOptions,
    ) -> Result<(), SfuError> {
        if self.peers.contains_key(&participant) {
            return Err(SfuError::AlreadyJoined(participant.to_string()));
        }
        let name: Arc<str> = match self.rooms.get_key_value(room) {
            Some((k, _)) => k.clone(),
            None => room.into(),
        };
        let mut peer = Peer::new(
            participant,
            name.clone(),
            options,
            self.candidates.clone(),
            now,
        );
        peer.shard = self.joined;
        self.joined += 1;
        self.by_ufrag.insert(peer.local_ufrag(), participant);
        self.rooms
            .entry(name)
            .or_insert_with(Room::new)
            .members
            .push(participant);
        info!(%participant, site = %peer.options.name, %room, "joined media room");
        self.peers.insert(participant, peer);
        self.dirty.insert(participant);
        self.next_allocate.get_or_insert(now);
        self.next_quality.get_or_insert(now);
        Ok(())
    }

    pub fn offer(
        &mut self,
        participant: ParticipantId,
        sdp: &str,
    ) -> Result<OfferOutcome, SfuError> {
        let p = self
            .peers
            .get_mut(&participant)
            .ok_or_else(|| SfuError::UnknownParticipant(participant.to_string()))?;
        let result = p.handle_offer(sdp);
        if matches!(result, Ok(OfferOutcome::Answer(_))) {
            self.dirty.insert(participant);
            self.refresh_ufrag(participant);
        }
        result
    }

    /// Re-read a session's ICE ufrag after a negotiation (an ICE restart changes it).
    fn refresh_ufrag(&mut self, participant: ParticipantId) {
        let Some(p) = self.peers.get_mut(&participant) else {
            return;
        };
        let ufrag = p.local_ufrag();
        if self.by_ufrag.get(&ufrag) != Some(&participant) {
            self.by_ufrag.retain(|_, id| *id != participant);
            self.by_ufrag.insert(ufrag, participant);
        }
    }

    pub fn answer(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        sdp: &str,
    ) -> Result<(), SfuError> {
        let p = self
            .peers
            .get_mut(&participant)
            .ok_or_else(|| SfuError::UnknownParticipant(participant.to_string()))?;
        let result = p.handle_answer(now, sdp);
        self.dirty.insert(participant);
        self.refresh_ufrag(participant);
        result
    }

    /// The client publishes nothing yet: its slots may be offered now. `red`: it said
    /// it decodes RED-wrapped Opus.
    pub fn ready(&mut self, participant: ParticipantId, red: bool) {
        if let Some(p) = self.peers.get_mut(&participant) {
            p.set_ready(red);
            self.refresh_ufrag(participant);
            self.dirty.insert(participant);
        }
    }

    /// What the subscriber shows; applied at once, not at the next tick: a user who
    /// chose audio only should see the video stop now.
    pub fn view(&mut self, now: Instant, participant: ParticipantId, hints: ViewHints) {
        let Some(p) = self.peers.get_mut(&participant) else {
            return;
        };
        debug!(%participant, ?hints, "view changed");
        p.set_view(hints, now);
        let room = p.room.clone();
        let mine_recently = self
            .view_decided
            .get(&participant)
            .is_some_and(|t| now.saturating_duration_since(*t) < VIEW_DECIDE_EVERY);
        let room_recently = self
            .rooms
            .get(&room)
            .and_then(|r| r.decided_at)
            .is_some_and(|t| now.saturating_duration_since(t) < VIEW_ROOM_GAP);
        // Otherwise the next room tick (within ALLOCATE_EVERY) applies it.
        if !mine_recently && !room_recently {
            self.view_decided.insert(participant, now);
            self.decide_room(now, &room);
        }
    }

    /// Who holds the floor in `room` (`None`: nobody in particular).
    pub fn floor(&mut self, now: Instant, room: &str, participant: Option<ParticipantId>) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.floor = participant;
        let name: Arc<str> = room.into();
        self.decide_room(now, &name);
    }

    /// The chair stops (`true`) or lets through (`false`) participants' microphones and
    /// cameras. Enforced here, not in the page: a held voice is neither forwarded nor
    /// heard by the speaker detector (so it never takes a slot), a held camera leaves
    /// every slot and, unwatched, its layers are paused at the publisher.
    pub fn hold(&mut self, now: Instant, holds: &[(ParticipantId, bool, bool)]) {
        // A chair's "mute all" in a 270-site meeting is 269 holds: the room is decided
        // once for all of them, not once each.
        let mut rooms: Vec<Arc<str>> = Vec::new();
        for &(participant, audio, video) in holds {
            if let Some(room) = self.set_hold(participant, audio, video)
                && !rooms.contains(&room)
            {
                rooms.push(room);
            }
        }
        for room in rooms {
            self.decide_room(now, &room);
        }
    }

    /// Record one hold; the participant's room when it changed.
    fn set_hold(
        &mut self,
        participant: ParticipantId,
        audio: bool,
        video: bool,
    ) -> Option<Arc<str>> {
        let room = self.peers.get(&participant).map(|p| p.room.clone())?;
        let was = (
            self.held_audio.contains(&participant),
            self.held_video.contains(&participant),
        );
        if was == (audio, video) {
            return None;
        }
        for (held, on) in [(&mut self.held_audio, audio), (&mut self.held_video, video)] {
            if on {
                held.insert(participant);
            } else {
                held.remove(&participant);
            }
        }
        if audio && !was.0 {
            if let Some(r) = self.rooms.get_mut(&room) {
                r.speaker.remove(participant);
            }
        } else if !audio && was.0 {
            // A new source to the subscribers' rewriters: no gap in their sequence.
            *self.audio_epoch.entry(participant).or_default() += 1;
        }
        debug!(%participant, audio, video, "held by the chair");
        Some(room)
    }

    /// Copy the voices `room`'s subscribers are forwarded, and the floor holder's camera,
    /// out as [`Output::Record`] (`true`), or stop.
    pub fn set_recording(&mut self, room: &str, on: bool) {
        let room: Arc<str> = room.into();
        if on {
            self.recording.insert(room);
        } else {
            self.recording.remove(&room);
        }
    }

    pub fn leave(&mut self, now: Instant, participant: ParticipantId) {
        self.remove_peer(now, participant);
    }

    /// Counts over the server's life: ended sessions and the live ones.
    pub fn totals(&self) -> crate::types::Totals {
        let mut t = self.departed;
        for p in self.peers.values() {
            t.add(&p.stats());
        }
        t
    }

    pub fn stats(&self) -> Vec<PeerStats> {
        let mut peers: Vec<_> = self.peers.values().map(|p| p.stats()).collect();
        peers.sort_by(|a, b| a.participant.cmp(&b.participant));
        peers
    }

    /// How many participants are on this core.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether `participant` is on this core.
    pub fn has(&self, participant: ParticipantId) -> bool {
        self.peers.contains_key(&participant)
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Room decisions made so far.
    #[cfg(test)]
    pub(crate) fn decisions(&self) -> u64 {
        self.decisions
    }

    /// Times a session was asked whether a datagram was its own.
    #[cfg(test)]
    pub(crate) fn asked(&self) -> u64 {
        self.asked
    }

    /// The ICE ufrag a session's checks name.
    #[cfg(test)]
    pub(crate) fn ufrag_of(&self, participant: ParticipantId) -> Option<String> {
        self.by_ufrag
            .iter()
            .find(|(_, id)| **id == participant)
            .map(|(u, _)| u.clone())
    }

    /// Passive ICE-TCP candidates (RFC 6544) for sessions that start from now on: the
    /// HTTPS port, where clients behind a web-only firewall carry their media.
    pub fn set_tcp_candidates(&mut self, addrs: Vec<SocketAddr>) {
        self.candidates.tcp = addrs;
    }

    /// Hand a datagram to the peer it belongs to; `false` if nobody claims it. As with
    /// str0m, drain [`Rooms::poll_output`] before the next input: a peer's output left
    /// unpolled is lost.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        self.receive_on(now, Protocol::Udp, source, destination, data)
    }

    /// The same for a packet that came over `proto` (an RFC 4571 frame of an ICE-TCP
    /// connection: `source` is the client's end of that connection). Its answers leave
    /// as `Transmit`s with the same protocol, to the same connection.
    pub fn receive_on(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(contents) = data.try_into() else {
            // Not STUN, DTLS or (S)RTP: someone else's traffic on our port.
            return false;
        };
        let receive = Receive {
            proto,
            source,
            destination,
            contents,
        };
        let input = str0m::Input::Receive(now, receive);
        // Remember which peer owns a remote address, so the per-packet lookup is one hash
        // probe; `accepts` still confirms it. A new address is admitted only by a STUN
        // check naming a session's ufrag (`ice_ufrag.rs`): ICE sends one before any media,
        // and junk from strangers then costs one lookup, not a question to every session.
        let known = self.by_addr.get(&source).copied();
        // A STUN check names its session outright (an address can pass from an ended
        // session to a new one behind the same NAT); anything else goes by the address.
        let named = ice_ufrag::local_ufrag(data)
            .and_then(|u| self.by_ufrag.get(u))
            .copied();
        let Some(id) = named.or(known) else {
            return false;
        };
        self.asked += 1;
        if !self.peers.get(&id).is_some_and(|p| p.accepts(&input)) {
            return false;
        }
        if known != Some(id) {
            self.by_addr.insert(source, id);
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        let str0m::Input::Receive(_, receive) = input else {
            return false;
        };
        peer.handle_receive(now, receive);
        self.dirty.insert(id);
        true
    }

    /// Every peer whose timer is due, and the room ticks that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = self
            .peers
            .values()
            .filter(|p| p.next_timeout <= now)
            .count();
        match &self.pool {
            Some(pool) if due >= self.parallel_from => {
                let due: Vec<&mut Peer> = self
                    .peers
                    .values_mut()
                    .filter(|p| p.next_timeout <= now)
                    .collect();
                for p in on_shards(pool, due, |p| p.handle_timeout(now)) {
                    self.dirty.insert(p.id);
                }
            }
            // A small round on the calling thread builds no list: it allocates nothing.
            _ => {
                for p in self.peers.values_mut() {
                    if p.next_timeout <= now {
                        p.handle_timeout(now);
                        self.dirty.insert(p.id);
                    }
                }
            }
        }
        if self.next_allocate.is_some_and(|t| t <= now) {
            self.next_allocate = (!self.peers.is_empty()).then_some(now + ALLOCATE_EVERY);
            let names: Vec<Arc<str>> = self.rooms.keys().cloned().collect();
            for room in names {
                self.tick_speaker(now, &room);
                self.decide_room(now, &room);
            }
        }
        if self.next_quality.is_some_and(|t| t <= now) {
            self.next_quality = (!self.peers.is_empty()).then_some(now + QUALITY_EVERY);
            self.sample_quality();
        }
    }

    /// The next output: datagrams and events first, then the time to wake. Call until it
    /// returns `Timeout`.
    pub fn poll_output(&mut self, now: Instant) -> Output {
        loop {
            if let Some(t) = self.transmits.pop_front() {
                return Output::Transmit(t);
            }
            if let Some((p, e)) = self.events.pop_front() {
                return Output::Event(p, e);
            }
            if let Some((room, a)) = self.recorded.pop_front() {
                return Output::Record(room, a);
            }
            if self.dirty.is_empty() {
                return Output::Timeout(
                    self.next_timeout().unwrap_or(now + Duration::from_secs(1)),
                );
            }
            self.drain(now);
        }
    }

    /// The earliest peer timer or room tick.
    fn next_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .map(|p| p.next_timeout)
            .chain(self.next_allocate)
            .chain(self.next_quality)
            .min()
    }

    /// Poll every touched peer until nothing is left to do.
    fn drain(&mut self, now: Instant) {
        // Buffers kept between calls: this runs for every datagram received.
        let mut props = std::mem::take(&mut self.props);
        let mut batch = std::mem::take(&mut self.batch);
        while !self.dirty.is_empty() {
            match &self.pool {
                Some(pool) if self.dirty.len() >= self.parallel_from => {
                    let dirty = &self.dirty;
                    let due: Vec<&mut Peer> = self
                        .peers
                        .values_mut()
                        .filter(|p| dirty.contains(&p.id))
                        .collect();
                    for p in on_shards(pool, due, |p| p.poll_own(now)) {
                        self.transmits.extend(p.own_transmits.drain(..));
                        props.append(&mut p.own_props);
                        p.take_events(&mut self.events);
                    }
                    self.dirty.clear();
                }
                _ => {
                    batch.extend(self.dirty.drain());
                    for id in batch.drain(..) {
                        if let Some(p) = self.peers.get_mut(&id) {
                            p.poll(now, &mut self.transmits, &mut props);
                            p.take_events(&mut self.events);
                        }
                    }
                }
            }
            for (from, prop) in props.drain(..) {
                self.propagate(from, prop, now);
            }
        }
        self.props = props;
        self.batch = batch;
    }

    fn remove_peer(&mut self, now: Instant, participant: ParticipantId) {
        let Some(peer) = self.peers.remove(&participant) else {
            return;
        };
        self.departed.add(&peer.stats());
        info!(%participant, site = %peer.options.name, room = %peer.room, "left media room");
        self.by_addr.retain(|_, id| *id != participant);
        self.by_ufrag.retain(|_, id| *id != participant);
        self.view_decided.remove(&participant);
        self.silent.remove(&participant);
        self.held_audio.remove(&participant);
        self.held_video.remove(&participant);
        self.audio_epoch.remove(&participant);
        self.dirty.remove(&participant);
        let mut empty = false;
        if let Some(r) = self.rooms.get_mut(&*peer.room) {
            r.members.retain(|m| *m != participant);
            r.recent.retain(|m| *m != participant);
            r.speaker.remove(participant);
            if r.floor == Some(participant) {
                r.floor = None;
            }
            empty = r.members.is_empty();
        }
        if empty {
            self.rooms.remove(&*peer.room);
        } else {
            // Its slots elsewhere are re-pointed now, not at the next tick.
            self.decide_room(now, &peer.room);
        }
    }

    fn propagate(&mut self, from: ParticipantId, prop: Propagated, now: Instant) {
        // An Arc clone, not a String: this runs once per forwarded packet.
        let Some(room) = self.peers.get(&from).map(|p| p.room.clone()) else {
            return;
        };
        match prop {
            Propagated::Rtp {
                key,
                params,
                packet,
            } => {
                let audio = params.spec().codec.is_audio();
                let held = if audio {
                    &self.held_audio
                } else {
                    &self.held_video
                };
                if held.contains(&from) {
                    return;
                }
                // Silent voices are not forwarded: on a 3G link, fifty muted sites'
                // comfort noise would cost more than the speaker's video.
                if audio && self.silent.contains(&from) {
                    // A silent voice that starts speaking is forwarded from this packet
                    // (if fewer than the cap are speaking), not from the next tick.
                    let starts = packet.header.ext_vals.audio_level.is_some_and(|l| {
                        self.rooms.get(&room).is_some_and(|r| {
                            r.speaker.is_speech(l.unsigned_abs()) && r.speaker.room_for(from, now)
                        })
                    });
                    if !starts {
                        return;
                    }
                    self.silent.remove(&from);
                    *self.audio_epoch.entry(from).or_default() += 1;
                    if let Some(r) = self.rooms.get_mut(&room) {
                        // Its level now, so the slots see it among the audible.
                        if let Some(l) = packet.header.ext_vals.audio_level {
                            r.speaker.on_level(from, l.unsigned_abs().min(127), now);
                        }
                    }
                    self.assign_slots(now, &room);
                }
                // Nothing recorded (the usual case): no lookup on the per-packet path.
                let recording = !self.recording.is_empty() && self.recording.contains(&room);
                if audio && recording {
                    self.recorded.push_back((
                        room.clone(),
                        Recorded::Audio(RecordedAudio {
                            from,
                            seq: *packet.seq_no,
                            opus: packet.payload.clone(),
                        }),
                    ));
                }
                if !audio && recording {
                    self.record_video(now, &room, from, key, &packet);
                }
                let epoch = self.audio_epoch.get(&from).copied().unwrap_or(0);
                let Some(r) = self.rooms.get(&room) else {
                    return;
                };
                let Some(routes) = r.routes.get(&key) else {
                    return;
                };
                let mut wants_keyframe: Option<(crate::types::TrackKey, Ssrc)> = None;
                for (sub, slot) in routes {
                    if let Some(p) = self.peers.get_mut(sub) {
                        if let Some(k) = p.forward(*slot, key, &params, &packet, epoch, now) {
                            wants_keyframe = Some(k);
                        }
                        self.dirty.insert(*sub);
                    }
                }
                if let Some((k, layer)) = wants_keyframe
                    && let Some(p) = self.peers.get_mut(&k.participant)
                {
                    p.request_keyframe(k.mid, Some(layer), KeyframeRequestKind::Pli, now);
                    self.dirty.insert(k.participant);
                }
            }
            Propagated::TracksChanged => {
                // A source appeared or went: the slots follow now.
                self.decide_room(now, &room);
            }
            Propagated::KeyframeRequest(key, layer, kind) => {
                if let Some(p) = self.peers.get_mut(&key.participant) {
                    p.request_keyframe(key.mid, layer, kind, now);
                    self.dirty.insert(key.participant);
                }
            }
            Propagated::AudioLevel(level) => {
                if self.held_audio.contains(&from) {
                    return;
                }
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.speaker.on_level(from, level, now);
                }
            }
            Propagated::Dead => {
                info!(participant = %from, "media session ended");
                self.remove_peer(now, from);
            }
        }
    }

    /// Re-evaluate a room's speaker and audible voices; tell the room when the active
    /// speaker changes.
    fn tick_speaker(&mut self, now: Instant, room: &Arc<str>) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let before = r.speaker.dominant();
        r.speaker.tick(now);
        let audible = r.speaker.audible(now);
        for m in &r.members {
            let silent = r.speaker.knows(*m) && !audible.contains(m);
            if silent {
                self.silent.insert(*m);
            } else if self.silent.remove(m) {
                *self.audio_epoch.entry(*m).or_default() += 1;
            }
        }
        let after = r.speaker.dominant();
        if before == after {
            return;
        }
        debug!(%room, speaker = ?after, "active speaker");
        if let Some(s) = after {
            r.recent.retain(|m| *m != s);
            r.recent.insert(0, s);
        }
        for m in &r.members {
            if let Some(p) = self.peers.get_mut(m) {
                p.send_event(SfuEvent::Speaker { participant: after });
                self.dirty.insert(*m);
            }
        }
    }

    /// Slots, allocation, routes and publishers' layers of one room, decided now.
    fn decide_room(&mut self, now: Instant, room: &Arc<str>) {
        self.decisions += 1;
        if let Some(r) = self.rooms.get_mut(room) {
            r.decided_at = Some(now);
        }
        self.assign_slots(now, room);
        // Measured once per decision: the allocation prices them, the publishers are
        // told which of them anyone uses.
        let published = self.published_layers(now, room);
        self.choose_record_video(now, room, &published);
        self.allocate(now, room, &published);
        self.rebuild_routes(room);
        self.update_layer_use(now, room, &published);
    }

    /// While `room` is recorded, the floor holder's camera encoding nearest 360 lines
    /// goes to the record (a picture to see who speaks, not an archive in HD); a new
    /// choice asks its publisher for a keyframe to start from.
    fn choose_record_video(
        &mut self,
        now: Instant,
        room: &Arc<str>,
        published: &[PublishedLayers],
    ) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let want = r
            .floor
            .filter(|_| self.recording.contains(room))
            .and_then(|holder| {
                let p = self.peers.get(&holder)?;
                let (camera, _, _) = p
                    .published()
                    .find(|(_, kind, screen)| *kind == MediaKind::Video && !*screen)?;
                let t = published.iter().find(|t| t.key == camera)?;
                t.layers
                    .iter()
                    .min_by_key(|l| (i32::from(l.2.height) - 360).abs())
                    .map(|l| (camera, l.0))
            });
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if r.record_video == want {
            return;
        }
        r.record_video = want;
        r.record_seq = None;
        if let Some((key, ssrc)) = want
            && let Some(p) = self.peers.get_mut(&key.participant)
        {
            r.record_pli = Some(now);
            p.request_keyframe(key.mid, Some(ssrc), KeyframeRequestKind::Pli, now);
            self.dirty.insert(key.participant);
        }
    }

    /// Copy a packet of the recorded encoding out; a gap in it asks for a keyframe (at
    /// most one a second), since the record drops frames until the next one.
    fn record_video(
        &mut self,
        now: Instant,
        room: &Arc<str>,
        from: ParticipantId,
        key: TrackKey,
        packet: &str0m::rtp::RtpPacket,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if r.record_video != Some((key, packet.header.ssrc)) {
            return;
        }
        let seq = *packet.seq_no;
        let gap = r.record_seq.is_some_and(|next| seq > next);
        r.record_seq = Some(r.record_seq.map_or(seq + 1, |n| n.max(seq + 1)));
        if gap
            && r.record_pli
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            r.record_pli = Some(now);
            if let Some(p) = self.peers.get_mut(&key.participant) {
                p.request_keyframe(
                    key.mid,
                    Some(packet.header.ssrc),
                    KeyframeRequestKind::Pli,
                    now,
                );
                self.dirty.insert(key.participant);
            }
        }
        self.recorded.push_back((
            room.clone(),
            Recorded::Video(RecordedVideo {
                from,
                seq,
                rtp_ts: packet.header.timestamp,
                marker: packet.header.marker,
                payload: packet.payload.clone(),
            }),
        ));
    }

    /// Every video track the room's publishers send, with its layers now.
    fn published_layers(&mut self, now: Instant, room: &Arc<str>) -> Vec<PublishedLayers> {
        let mut published = Vec::new();
        let temporal = self.temporal;
        if let Some(r) = self.rooms.get(room) {
            for m in &r.members {
                if let Some(p) = self.peers.get_mut(m) {
                    p.published_layers(now, temporal, &mut published);
                }
            }
        }
        published
    }

    /// Point every subscriber's slots at the sources the slot policy chooses
    /// (`policy/slots.rs`).
    fn assign_slots(&mut self, now: Instant, room: &Arc<str>) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let mut cameras: Vec<(ParticipantId, TrackKey)> = Vec::new();
        let mut voices: Vec<(ParticipantId, TrackKey)> = Vec::new();
        let mut screen: Option<(ParticipantId, TrackKey)> = None;
        let mut chair = None;
        for m in &r.members {
            let Some(p) = self.peers.get(m) else { continue };
            if p.options.chair && chair.is_none() {
                chair = Some(*m);
            }
            let (no_voice, no_camera) = (self.held_audio.contains(m), self.held_video.contains(m));
            for (key, kind, is_screen) in p.published() {
                match (kind, is_screen) {
                    (MediaKind::Audio, _) if no_voice => {}
                    (MediaKind::Video, _) if no_camera => {}
                    (MediaKind::Audio, _) => voices.push((*m, key)),
                    (MediaKind::Video, false) if !cameras.iter().any(|c| c.0 == *m) => {
                        cameras.push((*m, key));
                    }
                    // The latest share wins: members are in join order, so a later
                    // sharer's screen replaces an earlier one.
                    (MediaKind::Video, true) => screen = Some((*m, key)),
                    _ => {}
                }
            }
        }
        let audible: Vec<ParticipantId> = {
            let mut a = r.speaker.audible(now);
            a.retain(|k| !self.silent.contains(k));
            a.sort_by(|x, y| r.speaker.loudness(*y).total_cmp(&r.speaker.loudness(*x)));
            // A voice without level headers cannot be judged: it stays eligible, after
            // the audible ones (it is never in `silent` either).
            a.extend(voices.iter().map(|v| v.0).filter(|k| !r.speaker.knows(*k)));
            a
        };
        let voice_ids: Vec<ParticipantId> = voices.iter().map(|v| v.0).collect();
        let speaker = r.speaker.dominant();
        let (floor, recent) = (r.floor, r.recent.clone());
        let members = r.members.clone();
        for m in members {
            // A publish-only participant (WHIP) holds no slots to fill.
            let Some(p) = self.peers.get_mut(&m).filter(|p| p.has_slots()) else {
                continue;
            };
            let inputs = SlotInputs {
                me: m,
                pinned: p.view.pinned,
                floor,
                speaker,
                chair,
                recent: &recent,
                cameras: &cameras,
                screen,
                audible: &audible,
                voices: &voice_ids,
            };
            let mut audio = p.audio_slots();
            slots::audio(&inputs, &mut audio);
            let voices_out: Vec<Option<TrackKey>> = audio
                .iter()
                .map(|a| a.and_then(|k| voices.iter().find(|v| v.0 == k).map(|v| v.1)))
                .collect();
            let mut video = p.video_sources();
            let shown = p.shown_video_slots().min(video.len());
            let main = slots::main_source(&inputs);
            if shown > 0 {
                video[0] = main;
                slots::thumbnails(&inputs, main, &mut video[1..shown]);
            }
            for v in video.iter_mut().skip(shown.max(1)) {
                *v = None;
            }
            if shown == 0 {
                video[0] = None;
            }
            let choices: Vec<Option<SlotChoice>> = video
                .iter()
                .map(|v| {
                    v.map(|source| SlotChoice {
                        source,
                        screen: screen.is_some_and(|(_, s)| s == source),
                    })
                })
                .collect();
            p.assign(&voices_out, &choices);
            self.dirty.insert(m);
        }
    }

    /// Share every subscriber's link among what its slots could carry (`allocator.rs`).
    fn allocate(&mut self, now: Instant, room: &Arc<str>, published: &[PublishedLayers]) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let members = r.members.clone();
        let by_key: HashMap<TrackKey, &PublishedLayers> =
            published.iter().map(|p| (p.key, p)).collect();
        // A site's configured downlink is shared by everyone at the site (`budget.rs`).
        let shares = site_shares(members.iter().filter_map(|m| {
            let p = self.peers.get(m)?;
            Some((p.id, p.options.site.as_ref()?))
        }));
        for m in &members {
            let Some(p) = self.peers.get_mut(m) else {
                continue;
            };
            let voices = p
                .audio_slots()
                .iter()
                .flatten()
                .filter(|k| !self.silent.contains(k))
                .count();
            // What the tiles could use; the peer adds its audio.
            let mut wanted = 0u64;
            let mut sources: Vec<VideoSource<TrackKey>> = Vec::new();
            // The steps this subscriber may be given, per source (its allocation's
            // indices point into these).
            let mut offered: Vec<PublishedLayers> = Vec::new();
            let repair_ms = p.repair_frame_ms(now);
            for (i, key) in p.video_sources().into_iter().enumerate() {
                let Some(key) = key else { continue };
                let mut steps = by_key
                    .get(&key)
                    .map(|l| l.layers.clone())
                    .unwrap_or_default();
                if p.view.low_data {
                    // The lowest encoding, at its full frame rate.
                    let all: Vec<Layer> = steps.iter().map(|x| x.2).collect();
                    if !all.is_empty() {
                        steps.truncate(encoding_top(&all, 0) + 1);
                    }
                }
                if i > 0 {
                    // A thumbnail runs at its encoding's full rate or not at all (the
                    // page labels a stopped one): a browser counts a sudden fall in
                    // frame rate as a freeze, and a small tile's smoothness is not
                    // worth the main picture's frames.
                    let all: Vec<Layer> = steps.iter().map(|x| x.2).collect();
                    let mut k = 0;
                    steps.retain(|_| {
                        let top = encoding_top(&all, k) == k;
                        k += 1;
                        top
                    });
                    // Each kept step is a whole encoding now: every frame of it (or the
                    // ladder would read the next encoding as its higher frame rate).
                    for x in &mut steps {
                        x.2.temporal = None;
                    }
                }
                if let Some(ms) = repair_ms {
                    frame_rate::keep_repairable(&mut steps, |x| &x.2, ms);
                }
                let layers: Vec<Layer> = steps.iter().map(|x| x.2).collect();
                offered.push(PublishedLayers { key, layers: steps });
                let max_height = slot_height(&p.view, i, key.participant);
                if let Some(j) = layer_for_tile(&layers, max_height) {
                    wanted += u64::from(layers[j].bps);
                }
                sources.push(VideoSource {
                    key,
                    // The main slot comes first; the thumbnails are the rest.
                    priority: if i == 0 {
                        Priority::Chair
                    } else {
                        Priority::Other
                    },
                    layers,
                    max_height,
                });
            }
            let Some(mut budget) = p.estimate_bps(now) else {
                continue;
            };
            if let Some(share) = shares.get(&p.id) {
                budget = budget.min(*share);
            }
            let wanted = wanted.min(u64::from(u32::MAX)) as u32;
            let offered: HashMap<TrackKey, &PublishedLayers> =
                offered.iter().map(|o| (o.key, o)).collect();
            p.allocate(now, budget, voices, &sources, &offered, wanted);
            self.dirty.insert(p.id);
        }
    }

    /// Which subscribers' slots take packets from which source, from the slots as they
    /// are now. Rebuilt each decision; the forwarding path only reads it.
    fn rebuild_routes(&mut self, room: &Arc<str>) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        for v in r.routes.values_mut() {
            v.clear();
        }
        for m in &r.members {
            let Some(p) = self.peers.get(m) else { continue };
            for (i, s) in p.slots.iter().enumerate() {
                for key in s.routes() {
                    r.routes.entry(key).or_default().push((*m, i));
                }
            }
        }
        r.routes.retain(|_, v| !v.is_empty());
    }

    /// Tell each publisher which of its layers anyone receives (`policy/layers.rs`).
    fn update_layer_use(&mut self, now: Instant, room: &Arc<str>, published: &[PublishedLayers]) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let mut in_use: HashMap<TrackKey, Vec<Ssrc>> = HashMap::new();
        for m in &r.members {
            if let Some(p) = self.peers.get(m) {
                for (key, ssrc) in p.layers_in_use() {
                    in_use.entry(key).or_default().push(ssrc);
                }
            }
        }
        // The record watches the floor holder's camera too: never paused under it.
        if let Some((key, ssrc)) = r.record_video {
            in_use.entry(key).or_default().push(ssrc);
        }
        for t in published {
            let Some(p) = self.peers.get_mut(&t.key.participant) else {
                continue;
            };
            let mut layers: Vec<Ssrc> = t.layers.iter().map(|l| l.0).collect();
            // One entry per encoding, not per frame-rate step.
            layers.dedup();
            let used = in_use.get(&t.key).map(Vec::as_slice).unwrap_or(&[]);
            p.update_layer_use(now, t.key.mid, &layers, used);
            self.dirty.insert(t.key.participant);
        }
    }

    /// Grade every publisher's uplink; tell its room when a grade changes.
    fn sample_quality(&mut self) {
        let mut changed = Vec::new();
        for p in self.peers.values_mut() {
            if let Some(g) = p.uplink_quality() {
                info!(participant = %p.id, site = %p.options.name, quality = g.as_str(), "uplink grade changed");
                changed.push((p.id, p.room.clone(), g));
            }
        }
        for (who, room, quality) in changed {
            let Some(r) = self.rooms.get(&room) else {
                continue;
            };
            for m in &r.members {
                if let Some(p) = self.peers.get_mut(m) {
                    p.send_event(SfuEvent::LinkQuality {
                        participant: who,
                        quality,
                    });
                    self.dirty.insert(*m);
                }
            }
        }
    }
}

/// Run `work` on each peer of `due`, every peer on its shard's thread: shard 0 on the
/// calling thread, the others on the pool's (a pool as large as the cores would leave
/// the caller fighting its own workers for a core). Returns the peers for the room to
/// gather what they produced.
fn on_shards<'a>(
    pool: &rayon::ThreadPool,
    due: Vec<&'a mut Peer>,
    work: impl Fn(&mut Peer) + Sync,
) -> Vec<&'a mut Peer> {
    let n = pool.current_num_threads() + 1;
    let mut shards: Vec<Vec<&'a mut Peer>> = (0..n).map(|_| Vec::new()).collect();
    for p in due {
        let s = p.shard % n;
        shards[s].push(p);
    }
    let work = &work;
    let mut rest = shards.split_off(1);
    let mut first = shards;
    pool.in_place_scope(|scope| {
        for shard in rest.iter_mut() {
            scope.spawn(move |_| shard.iter_mut().for_each(|p| work(p)));
        }
        first.iter_mut().flatten().for_each(|p| work(p));
    });
    first.into_iter().chain(rest).flatten().collect()
}

/// How tall a subscriber shows video slot `slot`, now carrying `publisher`; 0 = not at
/// all.
pub(crate) fn slot_height(view: &ViewHints, slot: usize, publisher: ParticipantId) -> u16 {
    if view.audio_only || view.hidden {
        return 0;
    }
    if !view.slots.is_empty() {
        return view.slots.get(slot).copied().unwrap_or(0);
    }
    if view.tiles.is_empty() {
        return u16::MAX;
    }
    view.tiles
        .iter()
        .find(|(p, _)| *p == publisher)
        .map_or(0, |(_, h)| *h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_as_tall_as_its_tile_and_nothing_while_paused() {
        let p = ParticipantId(7);
        let mut v = ViewHints::default();
        assert_eq!(slot_height(&v, 0, p), u16::MAX, "no layout yet: anything");
        v.tiles = vec![(p, 360)];
        assert_eq!(
            slot_height(&v, 3, p),
            360,
            "by participant, from an older page"
        );
        v.slots = vec![720, 180];
        assert_eq!(slot_height(&v, 0, p), 720);
        assert_eq!(slot_height(&v, 1, p), 180);
        assert_eq!(slot_height(&v, 2, p), 0, "a slot the page has no tile for");
        v.hidden = true;
        assert_eq!(slot_height(&v, 0, p), 0);
    }
}

#[cfg(test)]
mod offer_tests {
    use std::net::{IpAddr, Ipv4Addr};

    use str0m::RtcConfig;
    use str0m::change::SdpOffer;

    use super::*;

    /// A client whose every answer is refused (webrtc-rs once answered each offer as an
    /// ICE restart) was offered the slots again at once, 20 times a second for good;
    /// now a refused answer pauses the offers for a second.
    #[test]
    fn refused_answers_are_not_followed_by_an_offer_storm() {
        let t0 = Instant::now();
        let sfu = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000);
        let mut core = Rooms::new(vec![sfu]);
        let p = ParticipantId(1);
        core.join(t0, "r", p, JoinOptions::default()).expect("join");
        core.ready(p, true);
        let mut offers = 0;
        let mut now = t0;
        while now < t0 + Duration::from_secs(5) {
            core.handle_timeout(now);
            let mut answers = Vec::new();
            loop {
                match core.poll_output(now) {
                    Output::Event(_, SfuEvent::Offer(sdp)) => {
                        offers += 1;
                        // A fresh stack each time answers, and drops the last m-line.
                        let mut client = RtcConfig::new().set_rtp_mode(true).build(now);
                        let offer = SdpOffer::from_sdp_string(&sdp).expect("offer parses");
                        let answer = client.sdp_api().accept_offer(offer).expect("answer");
                        let text = answer.to_sdp_string();
                        let cut = text.rfind("m=").expect("m-lines");
                        answers.push(text[..cut].to_owned());
                    }
                    Output::Timeout(_) => break,
                    _ => {}
                }
            }
            for a in answers {
                assert!(
                    core.answer(now, p, &a).is_err(),
                    "a short answer is refused"
                );
            }
            now += Duration::from_millis(20);
        }
        assert!(
            (2..=7).contains(&offers),
            "{offers} offers in 5 s to a client whose answers are all refused"
        );
    }
}

#[cfg(test)]
mod publish_cap_tests {
    use std::net::{IpAddr, Ipv4Addr};

    use str0m::RtcConfig;
    use str0m::media::{Direction, MediaKind};

    use super::*;

    /// A client offering more tracks than a participant may publish is refused with a
    /// reason, before any of them costs the bridge a stream; four are accepted.
    #[test]
    fn a_participant_publishes_at_most_four_tracks() {
        let now = Instant::now();
        let sfu = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000);
        let mut core = Rooms::new(vec![sfu]);
        let offer_of = |tracks: usize| {
            let mut client = RtcConfig::new().build(now);
            let mut api = client.sdp_api();
            for i in 0..tracks {
                let kind = if i % 2 == 0 {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                api.add_media(kind, Direction::SendOnly, None, None, None);
            }
            let (offer, _) = api.apply().expect("an offer");
            offer.to_sdp_string()
        };
        core.join(now, "r", ParticipantId(1), JoinOptions::default())
            .expect("join");
        match core.offer(ParticipantId(1), &offer_of(40)) {
            Err(SfuError::BadSdp(why)) => assert!(why.contains("at most 4"), "{why}"),
            other => panic!("40 tracks accepted: {other:?}"),
        }
        core.join(now, "r", ParticipantId(2), JoinOptions::default())
            .expect("join");
        assert!(matches!(
            core.offer(ParticipantId(2), &offer_of(4)),
            Ok(OfferOutcome::Answer(_))
        ));
    }
}

#[cfg(test)]
mod red_offer_tests {
    use std::net::{IpAddr, Ipv4Addr};

    use str0m::change::SdpOffer;
    use str0m::media::{Direction, MediaKind};
    use str0m::{Rtc, RtcConfig};

    use super::*;

    /// The bridge's slot offer to participant `p`, after its first offer or `ready`.
    fn slot_offer(core: &mut Rooms, now: Instant, p: ParticipantId) -> String {
        core.handle_timeout(now);
        loop {
            match core.poll_output(now) {
                Output::Event(who, SfuEvent::Offer(sdp)) if who == p => return sdp,
                Output::Timeout(_) => panic!("no offer to {p}"),
                _ => {}
            }
        }
    }

    /// The payload types of the first audio m-line, in order, as codec names.
    fn audio_codecs(sdp: &str) -> Vec<String> {
        let m = sdp
            .split("m=")
            .find(|m| m.starts_with("audio"))
            .expect("an audio m-line");
        let pts: Vec<&str> = m
            .lines()
            .next()
            .expect("m-line")
            .split(' ')
            .skip(3)
            .collect();
        pts.iter()
            .filter_map(|pt| {
                m.lines()
                    .find_map(|l| l.strip_prefix(&format!("a=rtpmap:{pt} ")))
                    .map(|c| c.split('/').next().unwrap_or_default().to_lowercase())
            })
            .collect()
    }

    fn publisher(now: Instant, red: bool) -> (Rtc, String) {
        let mut client = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, red)
            .enable_vp8(true)
            .build(now);
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, _) = api.apply().expect("an offer");
        (client, offer.to_sdp_string())
    }

    /// An answerer that takes the first codec it knows (GStreamer's `webrtcbin`) answered
    /// the RED the bridge listed first and heard nothing. RED now goes only to a client
    /// that listed it in its own offer or said so in `ready`.
    #[test]
    fn red_is_offered_only_to_clients_that_showed_they_decode_it() {
        let now = Instant::now();
        let sfu = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000);
        let mut core = Rooms::new(vec![sfu]);
        let mut offered = Vec::new();
        for (i, red) in [false, true].into_iter().enumerate() {
            // A publisher: its offer decides.
            let p = ParticipantId(i as u64 * 2 + 1);
            core.join(now, "r", p, JoinOptions::default())
                .expect("join");
            let (_client, offer) = publisher(now, red);
            assert!(
                matches!(core.offer(p, &offer), Ok(OfferOutcome::Answer(_))),
                "offer refused"
            );
            // Its slots are offered once it is connected, from this session.
            assert_eq!(
                core.peers[&p].session_offers_red(),
                red,
                "publisher, red {red}"
            );
            // A subscriber: its `ready` decides.
            let s = ParticipantId(i as u64 * 2 + 2);
            core.join(now, "r", s, JoinOptions::default())
                .expect("join");
            core.ready(s, red);
            let sdp = slot_offer(&mut core, now, s);
            let codecs = audio_codecs(&sdp);
            offered.push((red, codecs.clone()));
            assert_eq!(
                codecs.first().map(String::as_str),
                Some(if red { "red" } else { "opus" }),
                "{sdp}"
            );
            assert_eq!(codecs.contains(&"red".into()), red, "{sdp}");
            // A default answerer takes the first codec: Opus for the one without RED.
            let mut answerer = RtcConfig::new().set_rtp_mode(true).build(now);
            let answer = answerer
                .sdp_api()
                .accept_offer(SdpOffer::from_sdp_string(&sdp).expect("offer parses"))
                .expect("answer");
            core.answer(now, s, &answer.to_sdp_string())
                .expect("answer accepted");
        }
        eprintln!("audio codecs offered: {offered:?}");
    }
}
