//! A simulated meeting: the room core ([`Rooms`]), many str0m clients and a link model
//! per client, on one simulated clock, deterministic from a seed. DTLS-SRTP, TWCC, the
//! allocator, the slots and the pacer all run as in production; only the kernel, tokio
//! and the wall clock are left out, so a 270-site join wave or a 3G commune's step runs
//! in seconds of real time and gives the same answer twice.
//!
//! Clients publish Opus-shaped audio with an RFC 6464 level and VP8-shaped video (real
//! descriptors and keyframe headers, simulcast by rid when asked), each payload marked
//! with its sender, so a test can tell who it receives in which slot. They answer the
//! SFU's offers at once, as a browser does, and stop the layers the SFU pauses.
//!
//! Built for the SFU's own tests and with the `bench` feature (benchmarks, profiles).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::room::{Output as CoreOutput, Rooms};
use crate::types::{JoinOptions, OfferOutcome, ParticipantId, SfuEvent, SlotMap, ViewHints};
use crate::vp8_shape::{self, Vp8Shape};

/// One simulcast layer a simulated publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct LayerSpec {
    pub rid: &'static str,
    pub height: u16,
    pub kbps: u32,
    pub fps: u32,
}

/// Chrome's three layers as the page asks for them (180p/360p/720p).
pub const CAMERA: [LayerSpec; 3] = [
    LayerSpec {
        rid: "q",
        height: 180,
        kbps: 150,
        fps: 15,
    },
    LayerSpec {
        rid: "h",
        height: 360,
        kbps: 500,
        fps: 30,
    },
    LayerSpec {
        rid: "f",
        height: 720,
        kbps: 1200,
        fps: 30,
    },
];

/// A link between a client and the SFU, each way: rate, one-way delay, random loss.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    pub down_kbps: u32,
    pub up_kbps: u32,
    pub delay: Duration,
    pub loss: f64,
    /// How long a packet may wait in the link's queue; a fuller queue drops it (the
    /// link emulator's `queue_ms`, 500 ms by default).
    pub queue: Duration,
}

impl LinkSpec {
    pub const FIBRE: LinkSpec = LinkSpec {
        down_kbps: 100_000,
        up_kbps: 100_000,
        delay: Duration::from_millis(5),
        loss: 0.0,
        queue: Duration::from_millis(500),
    };
}

/// A link model in place of a client's [`LinkSpec`], one per direction: the test kit's
/// link emulator (jitter, loss bursts, capacity steps, the profiles of the real-UDP
/// runs) plugs in here.
pub trait LinkModel: Send {
    /// A datagram of `bytes` enters the link `elapsed` after the simulation started:
    /// when it arrives (also since the start), or `None` if the link drops it.
    fn offer(&mut self, elapsed: Duration, bytes: usize) -> Option<Duration>;
}

/// What one simulated site is and does.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub room: String,
    pub chair: bool,
    /// Publishes audio; `level` is its RFC 6464 level (0 loud, 127 silence). A silent
    /// microphone sends as Chrome does with DTX: a packet every 400 ms.
    pub audio: bool,
    pub level: u8,
    /// The camera's layers (empty: no camera).
    pub layers: Vec<LayerSpec>,
    pub link: LinkSpec,
    pub view: Option<ViewHints>,
    /// Joins publish-only, as a WHIP encoder does.
    pub publish_only: bool,
    /// Keep every audio and video packet it receives ([`Client::log`]), for the
    /// reception figures of a weak-link run; off for the many sites of a province run.
    pub record: bool,
}

impl ClientSpec {
    pub fn site(room: &str) -> Self {
        Self {
            room: room.into(),
            chair: false,
            audio: true,
            level: 127,
            layers: vec![CAMERA[0]],
            link: LinkSpec::FIBRE,
            view: None,
            publish_only: false,
            record: false,
        }
    }
}

/// One packet a recording client received (`ClientSpec::record`), as its sender marked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Audio {
        at: Instant,
        sender: u64,
        /// The sender's frame number and when it was sent.
        n: u64,
        sent: Instant,
    },
    Video {
        at: Instant,
        sender: u64,
        /// The sender's simulcast layer, its frame number on it, the frame's place after
        /// the last keyframe (Chrome's temporal pattern, `vp8_shape`), and this packet's
        /// part of the frame.
        layer: u8,
        frame: u32,
        since_key: u32,
        tid: u8,
        part: u8,
        parts: u8,
        key: bool,
        sent: Instant,
        height: u16,
        bytes: usize,
    },
}

/// What a client received in one slot from one sender.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotCount {
    pub packets: u64,
    pub last: Option<Instant>,
    /// Video: the sender's layer index of the last packet.
    pub layer: u8,
}

pub struct Client {
    pub id: ParticipantId,
    pub spec: ClientSpec,
    rtc: Rtc,
    addr: SocketAddr,
    pub connected: Option<Instant>,
    pending: Option<SdpPendingOffer>,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    /// Slot name (`a0`, `v0`, ...) per m-line the SFU offered.
    slot_of: HashMap<Mid, String>,
    /// Per slot name, per sender participant: what arrived.
    pub received: BTreeMap<String, BTreeMap<u64, SlotCount>>,
    /// Per slot name: the last video sequence number seen, and gaps found.
    pub seq_gaps: u64,
    last_seq: HashMap<String, u64>,
    pub offers: u32,
    /// When the SFU's first offer (of the slots) arrived.
    pub first_offer: Option<Instant>,
    pub slots: Option<SlotMap>,
    /// The rids the SFU last asked this publisher to send (`None`: all).
    pub active_layers: Option<Vec<String>>,
    pub layer_messages: u32,
    /// Per layer: a keyframe was asked for.
    key_wanted: Vec<bool>,
    /// The session ended by the SFU, and why.
    pub ended: Option<String>,
    /// Its STUN to the SFU is lost on the way (a peer that keeps its path alive with
    /// binding indications, which str0m's ICE-lite side does not count).
    pub stun_lost: bool,
    frame: Vec<u32>,
    since_key: Vec<u32>,
    tl0: Vec<u8>,
    next_frame: Vec<Instant>,
    /// What it received, when `spec.record`.
    pub log: Vec<Arrival>,
    next_audio: Instant,
    audio_seq: u64,
    video_seq: Vec<u64>,
    up_free: Instant,
    down_free: Instant,
    /// Link models that replace `spec.link` ([`Sim::set_link_model`]): up, down.
    models: Option<(Box<dyn LinkModel>, Box<dyn LinkModel>)>,
    /// Bytes the SFU sent towards this client (before its link's losses), and the
    /// audio-only notices it got: (when, audio only).
    pub down_offered: u64,
    pub bandwidth: Vec<(Instant, bool)>,
    /// Every slot map it was sent, when `spec.record` (a page labels a tile whose video
    /// the SFU stopped instead of showing it frozen).
    pub slot_history: Vec<(Instant, SlotMap)>,
}

struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
    /// The client at the far end, and whether it travels towards the SFU.
    client: usize,
    up: bool,
}

/// Which of the room core's entry points is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorePhase {
    /// `receive`: a datagram in (decrypt, feedback, the publisher's bookkeeping).
    Receive,
    /// `handle_timeout`: str0m's timers, and every 100 ms the slots and allocation.
    Timeout,
    /// `poll_output`: forwarding into slots, encrypting, pacing, datagrams out.
    Output,
}

/// A deterministic random source (xorshift64*): no dependency, same run from a seed.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub struct Sim {
    pub core: Rooms,
    pub now: Instant,
    pub start: Instant,
    pub clients: Vec<Client>,
    wire: Vec<InFlight>,
    rng: Rng,
    next_core: Instant,
    /// Datagrams the SFU sent, and received.
    pub sfu_datagrams: u64,
    pub sfu_datagrams_in: u64,
    /// Voice packets copied out for a record (`record`): who, and its sequence number.
    pub recorded: Vec<(ParticipantId, u64)>,
    /// Video packets copied out for a record: who, and its sequence number.
    pub recorded_video: Vec<(ParticipantId, u64)>,
    /// Real (wall-clock) time spent inside the room core: the SFU's CPU cost; and by
    /// phase (receive, timeouts, output).
    pub core_busy: Duration,
    pub core_phases: [Duration; 3],
    phase: usize,
    /// Called with the phase on entering the room core and `None` on leaving it (a
    /// benchmark counts the core's own allocations per phase with it).
    pub core_hook: Option<fn(Option<CorePhase>)>,
}

const MARK_AUDIO: u8 = b'A';
const MARK_VIDEO: u8 = b'V';
const STEP: Duration = Duration::from_millis(2);
const SFU_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000);

fn client_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::from(0x0a01_0000 + i as u32 + 10);
    SocketAddr::new(IpAddr::V4(ip), 5000)
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        // str0m's SSRCs, ids and the order of what it keeps by them come from this
        // thread's fastrand: seeded, a run is the same twice.
        fastrand::seed(seed);
        dimpl::set_thread_rng_seed(Some(seed));
        let now = Instant::now();
        Self {
            core: Rooms::new(vec![SFU_ADDR]),
            now,
            start: now,
            clients: Vec::new(),
            wire: Vec::new(),
            rng: Rng(seed.max(1)),
            next_core: now,
            sfu_datagrams: 0,
            sfu_datagrams_in: 0,
            recorded: Vec::new(),
            recorded_video: Vec::new(),
            core_busy: Duration::ZERO,
            core_phases: [Duration::ZERO; 3],
            phase: 0,
            core_hook: None,
        }
    }

    /// Where client `i` sends from (tests inject datagrams "from" it).
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        client_addr(i)
    }

    /// The SFU's media address in the simulation.
    pub fn sfu_addr(&self) -> SocketAddr {
        SFU_ADDR
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// A site joins now: it offers what it publishes (or says `ready`) and is answered.
    pub fn join(&mut self, spec: ClientSpec) -> Result<usize, String> {
        let i = self.clients.len();
        let id = ParticipantId(i as u64 + 1);
        let options = JoinOptions {
            chair: spec.chair,
            publish_only: spec.publish_only,
            ..Default::default()
        };
        self.core
            .join(self.now, &spec.room, id, options)
            .map_err(|e| e.to_string())?;
        if let Some(v) = &spec.view {
            self.core.view(self.now, id, v.clone());
        }
        let addr = client_addr(i);
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, true)
            .enable_vp8(true)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").map_err(|e| e.to_string())?);
        let mut api = rtc.sdp_api();
        let audio_mid = spec
            .audio
            .then(|| api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let video_mid = (!spec.layers.is_empty()).then(|| {
            let mut sim = Simulcast::new();
            for l in &spec.layers {
                sim.add_send_layer(SimulcastLayer::new(l.rid));
            }
            let sim = (spec.layers.len() > 1).then_some(sim);
            api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim)
        });
        let mut pending = None;
        if api.has_changes() {
            let (offer, p) = api.apply().ok_or("no offer")?;
            match self
                .core
                .offer(id, &offer.to_sdp_string())
                .map_err(|e| e.to_string())?
            {
                OfferOutcome::Answer(sdp) => {
                    let answer = SdpAnswer::from_sdp_string(&sdp).map_err(|e| e.to_string())?;
                    rtc.sdp_api()
                        .accept_answer(p, answer)
                        .map_err(|e| e.to_string())?;
                }
                OfferOutcome::Ignored => pending = Some(p),
            }
        } else {
            self.core.ready(id, true);
        }
        let n = spec.layers.len();
        self.clients.push(Client {
            id,
            spec,
            rtc,
            addr,
            connected: None,
            pending,
            audio_mid,
            video_mid,
            slot_of: HashMap::new(),
            received: BTreeMap::new(),
            seq_gaps: 0,
            last_seq: HashMap::new(),
            offers: 0,
            first_offer: None,
            slots: None,
            active_layers: None,
            layer_messages: 0,
            key_wanted: vec![true; n],
            frame: vec![0; n],
            since_key: vec![0; n],
            tl0: vec![0; n],
            next_frame: vec![self.now; n],
            log: Vec::new(),
            next_audio: self.now,
            audio_seq: 0,
            video_seq: vec![0; n],
            up_free: self.now,
            ended: None,
            stun_lost: false,
            down_free: self.now,
            models: None,
            down_offered: 0,
            bandwidth: Vec::new(),
            slot_history: Vec::new(),
        });
        Ok(i)
    }

    /// A client changes what it shows.
    pub fn set_view(&mut self, i: usize, view: ViewHints) {
        let id = self.clients[i].id;
        self.core.view(self.now, id, view);
        self.drain_core();
    }

    /// A client's microphone level from now on (0 loud, 127 silent).
    pub fn set_level(&mut self, i: usize, level: u8) {
        self.clients[i].spec.level = level;
    }

    /// A client's link from now on.
    /// Client `i`'s link follows these models from now on (up, down), not its spec.
    pub fn set_link_model(&mut self, i: usize, up: Box<dyn LinkModel>, down: Box<dyn LinkModel>) {
        if let Some(c) = self.clients.get_mut(i) {
            c.models = Some((up, down));
        }
    }

    pub fn set_link(&mut self, i: usize, link: LinkSpec) {
        self.clients[i].spec.link = link;
    }

    /// The chair gives the floor.
    pub fn floor(&mut self, room: &str, who: Option<usize>) {
        let p = who.map(|i| self.clients[i].id);
        self.core.floor(self.now, room, p);
        self.drain_core();
    }

    /// Copy `room`'s forwarded voices out (into `recorded`), or stop.
    pub fn record(&mut self, room: &str, on: bool) {
        self.core.set_recording(room, on);
    }

    /// The chair holds (or lets through) clients' microphones and cameras: (client,
    /// audio, video).
    pub fn hold(&mut self, holds: &[(usize, bool, bool)]) {
        let holds: Vec<_> = holds
            .iter()
            .map(|&(i, a, v)| (self.clients[i].id, a, v))
            .collect();
        self.core.hold(self.now, &holds);
        self.drain_core();
    }

    /// Run the world for `d` of simulated time.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Run until `done` holds or `limit` passes; the simulated time it took.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let end = self.now + limit;
        while self.now < end {
            self.step();
            if done(self) {
                return Some(self.now - start);
            }
        }
        None
    }

    fn step(&mut self) {
        self.deliver();
        for i in 0..self.clients.len() {
            self.send_media(i);
            self.poll_client(i);
        }
        if self.now >= self.next_core {
            let t = self.enter(CorePhase::Timeout);
            self.core.handle_timeout(self.now);
            self.leave(t);
        }
        self.drain_core();
        self.now += STEP;
    }

    fn enter(&mut self, phase: CorePhase) -> Instant {
        if let Some(h) = self.core_hook {
            h(Some(phase));
        }
        self.phase = phase as usize;
        Instant::now()
    }

    fn leave(&mut self, t: Instant) {
        let spent = t.elapsed();
        self.core_busy += spent;
        self.core_phases[self.phase] += spent;
        if let Some(h) = self.core_hook {
            h(None);
        }
    }

    /// Put a datagram on the wire through the client's link.
    fn transmit(
        &mut self,
        client: usize,
        up: bool,
        from: SocketAddr,
        to: SocketAddr,
        data: Vec<u8>,
    ) {
        let now = self.now;
        if !up {
            self.clients[client].down_offered += data.len() as u64;
        }
        let elapsed = now.saturating_duration_since(self.start);
        let size = wire_size(&data);
        let stun = up && self.clients[client].stun_lost && data.first().is_some_and(|b| *b < 4);
        if let Some((up_model, down_model)) = self.clients[client].models.as_mut() {
            let model = if up { up_model } else { down_model };
            if let Some(arrive) = model.offer(elapsed, size).filter(|_| !stun) {
                self.wire.push(InFlight {
                    at: self.start + arrive.max(elapsed),
                    from,
                    to,
                    data,
                    client,
                    up,
                });
            }
            return;
        }
        let lost = {
            let loss = self.clients[client].spec.link.loss;
            let stun = up && self.clients[client].stun_lost && data.first().is_some_and(|b| *b < 4);
            stun || (loss > 0.0 && self.rng.next_f64() < loss)
        };
        let c = &mut self.clients[client];
        let link = c.spec.link;
        let (free, kbps) = if up {
            (&mut c.up_free, link.up_kbps)
        } else {
            (&mut c.down_free, link.down_kbps)
        };
        if lost || (*free).saturating_duration_since(now) > link.queue {
            return;
        }
        let serialise =
            Duration::from_micros((size as u64 + 28) * 8 * 1000 / u64::from(kbps.max(1)));
        let depart = (*free).max(now) + serialise;
        *free = depart;
        self.wire.push(InFlight {
            at: depart + link.delay,
            from,
            to,
            data,
            client,
            up,
        });
    }

    fn deliver(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        let mut k = 0;
        while k < self.wire.len() {
            if self.wire[k].at <= now {
                due.push(self.wire.swap_remove(k));
            } else {
                k += 1;
            }
        }
        due.sort_by_key(|d| d.at);
        for d in due {
            let c = &mut self.clients[d.client];
            if d.up {
                self.sfu_datagrams_in += 1;
                let t = self.enter(CorePhase::Receive);
                self.core.receive(now, d.from, d.to, &d.data);
                self.leave(t);
                // str0m wants its output drained before the next input.
                self.drain_core();
            } else {
                let Ok(contents) = d.data.as_slice().try_into() else {
                    continue;
                };
                let input = Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: d.from,
                        destination: d.to,
                        contents,
                    },
                );
                if c.rtc.accepts(&input) {
                    let _ = c.rtc.handle_input(input);
                    self.poll_client(d.client);
                }
            }
        }
    }

    fn drain_core(&mut self) {
        loop {
            let t = self.enter(CorePhase::Output);
            let out = self.core.poll_output(self.now);
            self.leave(t);
            match out {
                CoreOutput::Transmit(t) => {
                    self.sfu_datagrams += 1;
                    let Some(i) = self.clients.iter().position(|c| c.addr == t.destination) else {
                        continue;
                    };
                    self.transmit(i, false, t.source, t.destination, t.contents.to_vec());
                }
                CoreOutput::Event(p, e) => self.signal(p, e),
                CoreOutput::Record(_, crate::Recorded::Audio(a)) => {
                    self.recorded.push((a.from, a.seq))
                }
                CoreOutput::Record(_, crate::Recorded::Video(v)) => {
                    self.recorded_video.push((v.from, v.seq));
                }
                CoreOutput::Timeout(t) => {
                    self.next_core = t;
                    return;
                }
            }
        }
    }

    /// What the page would do with a signaling message.
    fn signal(&mut self, p: ParticipantId, e: SfuEvent) {
        let Some(i) = self.clients.iter().position(|c| c.id == p) else {
            return;
        };
        match e {
            SfuEvent::Offer(sdp) => {
                let now = self.now;
                let c = &mut self.clients[i];
                c.offers += 1;
                c.first_offer.get_or_insert(now);
                c.pending = None;
                let mut mid = None;
                for line in sdp.lines() {
                    if let Some(m) = line.strip_prefix("a=mid:") {
                        mid = Some(Mid::from(m.trim()));
                    } else if let Some(rest) = line.strip_prefix("a=msid:")
                        && let (Some(m), Some(name)) = (mid, rest.split_whitespace().next())
                    {
                        c.slot_of.insert(m, name.to_owned());
                    }
                }
                let Ok(offer) = SdpOffer::from_sdp_string(&sdp) else {
                    return;
                };
                let Ok(answer) = c.rtc.sdp_api().accept_offer(offer) else {
                    return;
                };
                let _ = self.core.answer(self.now, p, &answer.to_sdp_string());
            }
            SfuEvent::Slots(map) => {
                let now = self.now;
                let c = &mut self.clients[i];
                if c.spec.record {
                    c.slot_history.push((now, map.clone()));
                }
                c.slots = Some(map);
            }
            SfuEvent::Bandwidth { audio_only, .. } => {
                let now = self.now;
                self.clients[i].bandwidth.push((now, audio_only));
            }
            SfuEvent::Disconnected { reason } => self.clients[i].ended = Some(reason),
            SfuEvent::Layers { active, .. } => {
                let c = &mut self.clients[i];
                c.layer_messages += 1;
                c.active_layers = Some(active);
            }
            _ => {}
        }
    }

    fn send_media(&mut self, i: usize) {
        let now = self.now;
        let c = &mut self.clients[i];
        if c.connected.is_none() {
            return;
        }
        if let Some(mid) = c.audio_mid
            && now >= c.next_audio
        {
            let silent = c.spec.level >= 127;
            c.next_audio = now
                + if silent {
                    Duration::from_millis(400)
                } else {
                    Duration::from_millis(20)
                };
            let seq = c.audio_seq;
            c.audio_seq += 1;
            let mut payload = vec![MARK_AUDIO];
            payload.extend_from_slice(&c.id.0.to_be_bytes());
            payload.extend_from_slice(&seq.to_be_bytes());
            payload.extend_from_slice(&micros(self.start, now).to_be_bytes());
            payload.resize(if silent { 25 } else { 80 }, 0x55);
            let pt = c
                .rtc
                .codec_config()
                .iter()
                .find(|p| p.spec().codec == Codec::Opus)
                .map(|p| p.pt());
            if let Some(pt) = pt
                && let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None)
            {
                let ext = ExtensionValues {
                    audio_level: Some(-(c.spec.level.min(127) as i8)),
                    voice_activity: Some(!silent),
                    ..Default::default()
                };
                tx.write_rtp(
                    RtpWrite::new(pt, seq.into(), (seq as u32).wrapping_mul(960), now, payload)
                        .ext_vals(ext),
                );
            }
        }
        let Some(mid) = c.video_mid else { return };
        let Some(pt) = c
            .rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == Codec::Vp8)
            .map(|p| p.pt())
        else {
            return;
        };
        let simulcast = c.spec.layers.len() > 1;
        for (l, layer) in c.spec.layers.clone().iter().enumerate() {
            if now < c.next_frame[l] {
                continue;
            }
            c.next_frame[l] = now + Duration::from_micros(1_000_000 / u64::from(layer.fps.max(1)));
            if let Some(active) = &c.active_layers
                && simulcast
                && !active.iter().any(|r| r == layer.rid)
            {
                continue;
            }
            let frame = c.frame[l];
            c.frame[l] += 1;
            let key = c.key_wanted[l] || frame.is_multiple_of((layer.fps * 4).max(1));
            c.key_wanted[l] = false;
            if key {
                c.since_key[l] = 0;
            }
            let since_key = c.since_key[l];
            c.since_key[l] += 1;
            // Three temporal layers, as Chrome sends each simulcast encoding.
            let temporal = vp8_shape::chrome_temporal(since_key);
            if temporal.tid == 0 {
                c.tl0[l] = c.tl0[l].wrapping_add(1);
            }
            let mut bytes = (f64::from(layer.kbps) * 1000.0 / 8.0 / f64::from(layer.fps.max(1))
                * vp8_shape::chrome_weight(temporal.tid)) as usize;
            if key {
                bytes *= 3;
            }
            let parts = bytes.div_ceil(1100).clamp(1, 40);
            let per = (bytes / parts).max(40);
            let rid = simulcast.then(|| Rid::from(layer.rid));
            let ts = frame.wrapping_mul(90_000 / layer.fps.max(1));
            let picture_id = (frame & 0x7fff) as u16;
            let mut api = c.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, rid) else {
                continue;
            };
            for part in 0..parts {
                let start = part == 0;
                let mut p = Vec::with_capacity(per + 24);
                Vp8Shape {
                    picture_id,
                    tl0: c.tl0[l],
                    start,
                    key,
                    width: layer.height * 16 / 9,
                    height: layer.height,
                    temporal: Some(temporal),
                }
                .write_header(&mut p);
                p.push(MARK_VIDEO);
                p.extend_from_slice(&c.id.0.to_be_bytes());
                p.push(l as u8);
                p.extend_from_slice(&frame.to_be_bytes());
                p.extend_from_slice(&since_key.to_be_bytes());
                p.push(temporal.tid);
                p.push(part as u8);
                p.push(parts as u8);
                p.extend_from_slice(&micros(self.start, now).to_be_bytes());
                p.extend_from_slice(&layer.height.to_be_bytes());
                p.resize(per.max(p.len()), 0x55);
                let seq = c.video_seq[l];
                c.video_seq[l] += 1;
                tx.write_rtp(
                    RtpWrite::new(pt, seq.into(), ts, now, p)
                        .marker(part + 1 == parts)
                        .nackable(true),
                );
            }
        }
    }

    fn poll_client(&mut self, i: usize) {
        let now = self.now;
        let _ = self.clients[i].rtc.handle_input(Input::Timeout(now));
        loop {
            let c = &mut self.clients[i];
            let o = match c.rtc.poll_output() {
                Ok(o) => o,
                Err(_) => break,
            };
            match o {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    let (from, to) = (c.addr, t.destination);
                    let data = t.contents.to_vec();
                    self.transmit(i, true, from, to, data);
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        c.connected.get_or_insert(now);
                    }
                    Event::KeyframeRequest(req) => {
                        // The layer asked for; all of them if it is not named.
                        for (l, spec) in c.spec.layers.iter().enumerate() {
                            if req.rid.is_none_or(|r| r.to_string() == spec.rid) {
                                c.key_wanted[l] = true;
                            }
                        }
                    }
                    Event::RtpPacket(pkt) => {
                        let Some(mid) = c
                            .rtc
                            .direct_api()
                            .stream_rx(&pkt.header.ssrc)
                            .map(|r| r.mid())
                        else {
                            continue;
                        };
                        let Some(slot) = c.slot_of.get(&mid) else {
                            continue;
                        };
                        let slot = slot.clone();
                        let seq = *pkt.seq_no;
                        if let Some(last) = c.last_seq.insert(slot.clone(), seq)
                            && slot.starts_with('v')
                            && seq > last + 1
                        {
                            c.seq_gaps += seq - last - 1;
                        }
                        // The SFU's RED (RFC 2198) towards a lossy subscriber: the
                        // previous frames again, then this one; a frame whose own
                        // packet was lost arrives here.
                        let blocks: Vec<Vec<u8>> =
                            if slot.starts_with('a') && pkt.payload.first() != Some(&MARK_AUDIO) {
                                str0m::rtp::RedDecoder::decode(&pkt.payload)
                                    .map(|b| b.into_iter().map(|b| b.payload.to_vec()).collect())
                                    .unwrap_or_default()
                            } else {
                                vec![pkt.payload.to_vec()]
                            };
                        if c.spec.record {
                            for b in &blocks {
                                if let Some(a) = arrival(b, self.start, now) {
                                    c.log.push(a);
                                }
                            }
                        }
                        if let Some((sender, layer)) = blocks.last().and_then(|b| sender_of(b)) {
                            let e = c
                                .received
                                .entry(slot)
                                .or_default()
                                .entry(sender)
                                .or_default();
                            e.packets += 1;
                            e.last = Some(now);
                            e.layer = layer;
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    /// The sender (participant number) client `i` received in `slot` within `within`
    /// (the most recent one), and its layer index.
    pub fn in_slot(&self, i: usize, slot: &str, within: Duration) -> Option<(u64, u8)> {
        let c = &self.clients[i];
        c.received
            .get(slot)?
            .iter()
            .filter(|(_, n)| {
                n.last
                    .is_some_and(|t| self.now.saturating_duration_since(t) <= within)
            })
            .max_by_key(|(_, n)| n.last)
            .map(|(s, n)| (*s, n.layer))
    }

    /// Everyone client `i` heard within `within`, across its audio slots.
    pub fn heard(&self, i: usize, within: Duration) -> Vec<u64> {
        let c = &self.clients[i];
        let mut v: Vec<u64> = c
            .received
            .iter()
            .filter(|(s, _)| s.starts_with('a'))
            .flat_map(|(_, m)| m.iter())
            .filter(|(_, n)| {
                n.last
                    .is_some_and(|t| self.now.saturating_duration_since(t) <= within)
            })
            .map(|(s, _)| *s)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The m-lines of client `i`'s session (its own and the SFU's slots).
    pub fn m_lines(&self, i: usize) -> usize {
        self.clients[i].slot_of.len()
    }
}

/// The size a link model is told a datagram has. DTLS handshake records carry ECDSA
/// signatures whose length varies with the signer's random nonce (a byte or two); on a
/// rate-limited link that moved every later packet by microseconds, and the run apart
/// from the same seed. They count as one fixed size; everything else as it is.
fn wire_size(data: &[u8]) -> usize {
    match data.first() {
        Some(20..=63) => 600,
        _ => data.len(),
    }
}

fn micros(start: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(start).as_micros() as u64
}

fn be<const N: usize>(p: &[u8], at: usize) -> Option<[u8; N]> {
    p.get(at..at + N)?.try_into().ok()
}

/// What a recording client keeps of a payload the simulated publishers wrote.
fn arrival(p: &[u8], start: Instant, at: Instant) -> Option<Arrival> {
    let time = |us: [u8; 8]| start + Duration::from_micros(u64::from_be_bytes(us));
    if p.first() == Some(&MARK_AUDIO) {
        return Some(Arrival::Audio {
            at,
            sender: u64::from_be_bytes(be(p, 1)?),
            n: u64::from_be_bytes(be(p, 9)?),
            sent: time(be(p, 17)?),
        });
    }
    let d = crate::rtp::vp8::descriptor(p)?;
    let m = vp8_shape::header_len(p)?;
    if *p.get(m)? != MARK_VIDEO {
        return None;
    }
    Some(Arrival::Video {
        at,
        sender: u64::from_be_bytes(be(p, m + 1)?),
        layer: *p.get(m + 9)?,
        frame: u32::from_be_bytes(be(p, m + 10)?),
        since_key: u32::from_be_bytes(be(p, m + 14)?),
        tid: *p.get(m + 18)?,
        part: *p.get(m + 19)?,
        parts: *p.get(m + 20)?,
        key: d.key,
        sent: time(be(p, m + 21)?),
        height: u16::from_be_bytes(be(p, m + 29)?),
        bytes: p.len(),
    })
}

/// Who sent a payload the simulated publishers wrote, and (video) which layer.
fn sender_of(p: &[u8]) -> Option<(u64, u8)> {
    let at = if p.first() == Some(&MARK_AUDIO) {
        0
    } else {
        vp8_shape::header_len(p)?
    };
    let mark = *p.get(at)?;
    let id = u64::from_be_bytes(p.get(at + 1..at + 9)?.try_into().ok()?);
    let layer = if mark == MARK_VIDEO {
        *p.get(at + 9)?
    } else {
        0
    };
    (mark == MARK_AUDIO || mark == MARK_VIDEO).then_some((id, layer))
}
