//! A test participant on str0m (the same stack as the SFU, on the other side): joins
//! through the real WebSocket protocol, publishes Opus-shaped audio and **three simulcast
//! VP8-shaped layers** the way Chrome does (one SSRC per rid, RID header extension,
//! keyframes on request), and records every packet it receives with its send time.
//!
//! Payloads are not decodable, but everything the SFU reads is real: the VP8 payload
//! descriptor with 15-bit PictureID and TL0PICIDX, the keyframe bit, the keyframe header's
//! frame size, the RFC 6464 audio level. After the codec headers each packet carries a
//! marker the subscriber reads: who sent it, which layer, which frame, and when (µs since
//! a process-wide epoch, so sender and receiver in one process share the clock).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use cauhop_protocol::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::media::{Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RedDecoder, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::link::Link;
use crate::signal;
use cauhop_sfu::vp8_shape::{self, Vp8Shape};

/// One simulcast layer to publish.
#[derive(Debug, Clone, Copy)]
pub struct SimLayer {
    pub rid: &'static str,
    pub width: u16,
    pub height: u16,
    pub kbps: u32,
    pub fps: u32,
}

/// Chrome's three layers for a 720p camera, at the rates it settles on.
pub const CAMERA_LAYERS: [SimLayer; 3] = [
    SimLayer {
        rid: "q",
        width: 320,
        height: 180,
        kbps: 150,
        fps: 15,
    },
    SimLayer {
        rid: "h",
        width: 640,
        height: 360,
        kbps: 500,
        fps: 30,
    },
    SimLayer {
        rid: "f",
        width: 1280,
        height: 720,
        kbps: 1200,
        fps: 30,
    },
];

#[derive(Clone)]
pub struct SimConfig {
    pub name: String,
    pub meeting: String,
    /// Video layers to publish; empty: no video.
    pub layers: Vec<SimLayer>,
    pub audio: bool,
    /// RFC 6464 level of the published audio (0 loudest .. 127 silence).
    pub audio_level: u8,
    /// Keyframe interval when nobody asks for one.
    pub keyframe_every: Duration,
    pub link: Option<Arc<Link>>,
    /// The address to send media from (default 127.0.0.1).
    pub bind: Option<std::net::IpAddr>,
    /// Publish real Opus (a steady tone of this pitch) instead of marked payloads: what
    /// a record must hear. Receivers then cannot tell its packets' send times.
    pub tone_hz: Option<f32>,
    /// A join link's token, for a scheduled meeting (`meeting` is then its number).
    pub token: Option<String>,
}

impl SimConfig {
    pub fn new(meeting: &str, name: &str) -> Self {
        Self {
            name: name.into(),
            meeting: meeting.into(),
            layers: CAMERA_LAYERS.to_vec(),
            audio: true,
            audio_level: 40,
            keyframe_every: Duration::from_secs(5),
            link: None,
            bind: None,
            tone_hz: None,
            token: None,
        }
    }

    /// A subscriber only: publishes nothing, receives everything.
    pub fn watcher(meeting: &str, name: &str) -> Self {
        Self {
            layers: Vec::new(),
            audio: false,
            ..Self::new(meeting, name)
        }
    }
}

/// One received audio packet.
#[derive(Debug, Clone, Copy)]
pub struct AudioArrival {
    pub at: Instant,
    pub seq: u32,
    pub sent_us: u64,
}

/// One received video packet.
#[derive(Debug, Clone, Copy)]
pub struct VideoArrival {
    pub at: Instant,
    pub layer: u8,
    pub frame: u32,
    pub part: u8,
    pub parts: u8,
    pub key: bool,
    pub sent_us: u64,
    pub bytes: usize,
    /// The frame's temporal layer, and its place after the last keyframe (Chrome's
    /// pattern, `vp8_shape::chrome_refs` names what it refers to).
    pub tid: u8,
    pub since_key: u32,
}

#[derive(Debug, Default, Clone)]
pub struct Received {
    pub audio: Vec<AudioArrival>,
    pub video: Vec<VideoArrival>,
}

#[derive(Default)]
pub struct SimShared {
    /// By sender (participant number from the payload marker).
    pub received: Mutex<HashMap<u64, Received>>,
    pub messages: Mutex<Vec<ServerMsg>>,
    /// Packets and keyframes sent per layer index; audio packets sent.
    pub video_sent: [AtomicU64; 3],
    pub keyframes_sent: [AtomicU64; 3],
    pub audio_sent: AtomicU64,
    /// Packets received from our own participant number (must stay 0).
    pub own_received: AtomicU64,
    /// RED-wrapped audio packets received.
    pub red_received: AtomicU64,
    /// ICE and DTLS are up.
    pub connected: std::sync::atomic::AtomicBool,
    /// Which join attempt connected (1 = the first).
    pub attempts: AtomicU64,
    /// The bridge's audio-only notices as they arrived: (when, audio only).
    pub bandwidth: Mutex<Vec<(Instant, bool)>>,
    pub bytes_received: AtomicU64,
    /// The published audio's RFC 6464 level now (`SimPeer::set_level`); the config's
    /// until set.
    pub level: std::sync::atomic::AtomicU8,
}

pub struct SimPeer {
    pub id: String,
    pub number: u64,
    pub shared: Arc<SimShared>,
    ws_tx: mpsc::UnboundedSender<ClientMsg>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SimPeer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The clock every sim peer's send times are measured on.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_micros() as u64
}

const MARK_AUDIO: u8 = b'A';
const ICE_RETRY: Duration = Duration::from_secs(6);
const JOIN_ATTEMPTS: u64 = 4;
const CONNECT_WITHIN: Duration = Duration::from_secs(12);
const MARK_VIDEO: u8 = b'V';

/// What the signaling task hands the media task.
enum Sig {
    Answer(String),
    Offer(String),
}

impl SimPeer {
    /// Join and wait until the media is connected. A DTLS handshake that a lossy link
    /// defeated (the flights are retried a few times, then the session is dead) is
    /// joined afresh, as the web client does when its connection fails; up to
    /// [`JOIN_ATTEMPTS`] times.
    pub async fn join(ws_url: &str, cfg: SimConfig) -> anyhow::Result<Self> {
        let mut last = None;
        for attempt in 1..=JOIN_ATTEMPTS {
            let peer = Self::join_once(ws_url, cfg.clone()).await?;
            let shared = peer.shared.clone();
            let up = crate::wait_for("media connected", CONNECT_WITHIN, || {
                shared.connected.load(Ordering::Relaxed)
            })
            .await;
            match up {
                Ok(()) => {
                    peer.shared.attempts.store(attempt, Ordering::Relaxed);
                    return Ok(peer);
                }
                Err(e) => {
                    tracing::warn!("sim peer {}: attempt {attempt}: {e}", cfg.name);
                    let _ = peer.ws_tx.send(ClientMsg::Leave);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
    }

    async fn join_once(ws_url: &str, cfg: SimConfig) -> anyhow::Result<Self> {
        epoch();
        let joined = signal::join(
            ws_url,
            ClientMsg::Join {
                v: PROTOCOL_VERSION,
                meeting: cfg.meeting.clone(),
                name: cfg.name.clone(),
                site: "sim".into(),
                token: cfg.token.clone(),
                key: None,
            },
        )
        .await?;
        let (id, ws_tx, mut ws_stream) = (joined.participant, joined.tx, joined.rx);
        let mut tasks = vec![joined.writer];
        let number: u64 = id
            .strip_prefix('p')
            .and_then(|n| n.parse().ok())
            .context("participant id")?;

        let ip = cfg.bind.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let socket = UdpSocket::bind((ip, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            // RED accepted, as Chrome does: the SFU sends it when this link loses packets.
            .enable_opus(true, true)
            .enable_vp8(true)
            .build(Instant::now());
        let red_pt = rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus)
            .and_then(|p| p.red());
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let mut api = rtc.sdp_api();
        let audio_mid = cfg
            .audio
            .then(|| api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let video_mid = (!cfg.layers.is_empty()).then(|| {
            let mut sim = Simulcast::new();
            for l in &cfg.layers {
                sim.add_send_layer(SimulcastLayer::new(l.rid));
            }
            let sim = (cfg.layers.len() > 1).then_some(sim);
            api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim)
        });
        let pending = if api.has_changes() {
            let (offer, pending) = api.apply().context("offer")?;
            ws_tx.send(ClientMsg::Offer {
                sdp: offer.to_sdp_string(),
            })?;
            Some(pending)
        } else {
            // Its str0m unwraps RED (`enable_opus(true, true)` below).
            ws_tx.send(ClientMsg::Ready { red: true })?;
            None
        };

        let shared = Arc::new(SimShared::default());
        let (sig_tx, sig_rx) = mpsc::unbounded_channel::<Sig>();
        let (sh, link) = (shared.clone(), cfg.link.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok(msg) = signal::next_msg(&mut ws_stream).await {
                if let Ok(mut m) = sh.messages.lock() {
                    m.push(msg.clone());
                }
                if let ServerMsg::Bandwidth { audio_only, .. } = &msg
                    && let Ok(mut b) = sh.bandwidth.lock()
                {
                    b.push((Instant::now(), *audio_only));
                }
                let rewrite = |s: String| link.as_ref().map_or(s.clone(), |l| l.rewrite_sdp(&s));
                let _ = match msg {
                    ServerMsg::Answer { sdp } => sig_tx.send(Sig::Answer(rewrite(sdp))),
                    ServerMsg::Offer { sdp } => sig_tx.send(Sig::Offer(rewrite(sdp))),
                    _ => Ok(()),
                };
            }
        }));
        shared.level.store(cfg.audio_level, Ordering::Relaxed);
        let tone = match cfg.tone_hz {
            Some(hz) => Some(cauhop_audio::tone::Tone::steady(hz).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let media = Media {
            tone,
            rtc,
            socket,
            local,
            cfg,
            number,
            shared: shared.clone(),
            pending,
            audio_mid,
            video_mid,
            red_pt,
            ws_tx: ws_tx.clone(),
        };
        tasks.push(tokio::spawn(media.run(sig_rx)));
        Ok(Self {
            id,
            number,
            shared,
            ws_tx,
            tasks,
        })
    }

    /// What this peer received from `publisher` so far.
    pub fn from(&self, publisher: &SimPeer) -> Received {
        self.shared
            .received
            .lock()
            .ok()
            .and_then(|r| r.get(&publisher.number).cloned())
            .unwrap_or_default()
    }

    /// The largest layer of `publisher`'s video that arrived within `within` (None: no
    /// video lately).
    pub fn recent_layer(&self, publisher: &SimPeer, within: Duration) -> Option<u8> {
        let now = Instant::now();
        self.from(publisher)
            .video
            .iter()
            .rev()
            .take_while(|v| now.duration_since(v.at) < within)
            .map(|v| v.layer)
            .max()
    }

    /// Audio packets from `publisher` that arrived within `within`.
    pub fn recent_audio(&self, publisher: &SimPeer, within: Duration) -> usize {
        let now = Instant::now();
        self.from(publisher)
            .audio
            .iter()
            .rev()
            .take_while(|a| now.duration_since(a.at) < within)
            .count()
    }

    pub fn messages(&self) -> Vec<ServerMsg> {
        self.shared
            .messages
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Speak (a low level, e.g. 30) or fall silent (127): the bridge forwards only
    /// voices whose level says speech.
    pub fn set_level(&self, level: u8) {
        self.shared.level.store(level, Ordering::Relaxed);
    }

    pub fn send(&self, msg: ClientMsg) -> anyhow::Result<()> {
        self.ws_tx.send(msg)?;
        Ok(())
    }
}

/// Per layer: where the numbering is and whether a keyframe is owed.
#[derive(Default, Clone, Copy)]
struct LayerState {
    seq: u16,
    picture_id: u16,
    tl0: u8,
    frame: u32,
    /// Frames since the last keyframe: the frame's place in Chrome's temporal pattern.
    since_key: u32,
    next_frame: Option<Instant>,
    key_wanted: bool,
    last_key: Option<Instant>,
}

struct Media {
    tone: Option<cauhop_audio::tone::Tone>,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    cfg: SimConfig,
    number: u64,
    shared: Arc<SimShared>,
    pending: Option<SdpPendingOffer>,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    red_pt: Option<str0m::media::Pt>,
    ws_tx: mpsc::UnboundedSender<ClientMsg>,
}

impl Media {
    async fn run(mut self, mut sig: mpsc::UnboundedReceiver<Sig>) {
        let mut buf = vec![0u8; 2048];
        let mut layers = vec![LayerState::default(); self.cfg.layers.len()];
        let (mut aseq, mut audio_n) = (0u16, 0u32);
        let start = Instant::now();
        let mut next_audio = start;
        let mut connected = false;
        // A handshake whose packets a lossy link ate is not retried by ICE itself; like
        // the web client, restart ICE while the media never came up.
        let mut next_restart = start + ICE_RETRY;
        loop {
            if !connected && Instant::now() >= next_restart {
                next_restart = Instant::now() + ICE_RETRY;
                self.restart_ice();
            }
            let timeout = match self.drain(&mut layers, &mut connected) {
                Some(t) => t,
                None => return,
            };
            let mut wake = timeout;
            if !connected {
                wake = wake.min(next_restart);
            }
            if connected {
                wake = wake.min(next_audio);
                for l in &layers {
                    wake = wake.min(l.next_frame.unwrap_or(start));
                }
            }
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = r else { continue };
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    });
                    if self.rtc.accepts(&input) {
                        let _ = self.rtc.handle_input(input);
                    }
                }
                s = sig.recv() => {
                    let Some(s) = s else { return };
                    self.signal(s);
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    let _ = self.rtc.handle_input(Input::Timeout(now));
                    if connected {
                        if self.cfg.audio && now >= next_audio {
                            self.send_audio(aseq, audio_n, now);
                            aseq = aseq.wrapping_add(1);
                            audio_n += 1;
                            next_audio += Duration::from_millis(20);
                            if next_audio < now {
                                next_audio = now + Duration::from_millis(20);
                            }
                        }
                        for (i, st) in layers.iter_mut().enumerate() {
                            let due = st.next_frame.unwrap_or(now);
                            if now >= due {
                                self.send_frame(i, st, now);
                                let step = Duration::from_secs(1) / self.cfg.layers[i].fps.max(1);
                                let mut next = due + step;
                                if next < now {
                                    next = now + step;
                                }
                                st.next_frame = Some(next);
                            }
                        }
                    }
                }
            }
        }
    }

    fn restart_ice(&mut self) {
        // An offer the bridge set aside (glare) gets no answer: start over.
        self.pending = None;
        let mut api = self.rtc.sdp_api();
        api.ice_restart(true);
        if let Some((offer, pending)) = api.apply() {
            tracing::info!("sim peer: no media yet; restarting ICE");
            self.pending = Some(pending);
            let _ = self.ws_tx.send(ClientMsg::Offer {
                sdp: offer.to_sdp_string(),
            });
        }
    }

    fn signal(&mut self, s: Sig) {
        match s {
            Sig::Answer(sdp) => {
                let (Some(pending), Ok(answer)) =
                    (self.pending.take(), SdpAnswer::from_sdp_string(&sdp))
                else {
                    return;
                };
                if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
                    tracing::warn!("sim peer: answer refused: {e}");
                }
            }
            Sig::Offer(sdp) => {
                if self.pending.is_some() {
                    // Glare: the server is impolite; drop ours and offer again later.
                    self.pending = None;
                }
                let Ok(offer) = SdpOffer::from_sdp_string(&sdp) else {
                    return;
                };
                match self.rtc.sdp_api().accept_offer(offer) {
                    Ok(answer) => {
                        let _ = self.ws_tx.send(ClientMsg::Answer {
                            sdp: answer.to_sdp_string(),
                        });
                    }
                    Err(e) => tracing::warn!("sim peer: offer refused: {e}"),
                }
            }
        }
    }

    /// Drain str0m; `None` when the session is over.
    fn drain(&mut self, layers: &mut [LayerState], connected: &mut bool) -> Option<Instant> {
        loop {
            if !self.rtc.is_alive() {
                return None;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        *connected = true;
                        self.shared.connected.store(true, Ordering::Relaxed);
                    }
                    Event::KeyframeRequest(req) if Some(req.mid) == self.video_mid => {
                        for (i, l) in self.cfg.layers.iter().enumerate() {
                            if req.rid.is_none_or(|r| r == Rid::from(l.rid))
                                && let Some(s) = layers.get_mut(i)
                            {
                                s.key_wanted = true;
                            }
                        }
                        let _ = req.kind == KeyframeRequestKind::Fir;
                    }
                    Event::RtpPacket(p) if Some(p.header.payload_type) == self.red_pt => {
                        // A RED packet: the previous frame again, then this one. A frame
                        // whose own packet was lost is recovered here.
                        if let Ok(blocks) = RedDecoder::decode(&p.payload) {
                            self.shared.red_received.fetch_add(1, Ordering::Relaxed);
                            for b in blocks {
                                self.record(b.payload);
                            }
                        }
                    }
                    Event::RtpPacket(p) => self.record(&p.payload),
                    _ => {}
                },
                Err(e) => {
                    tracing::warn!("sim peer: {e}");
                    return None;
                }
            }
        }
    }

    fn pt(&self, codec: Codec) -> Option<str0m::format::PayloadParams> {
        self.rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == codec)
            .copied()
    }

    fn send_audio(&mut self, seq: u16, n: u32, now: Instant) {
        let (Some(mid), Some(params)) = (self.audio_mid, self.pt(Codec::Opus)) else {
            return;
        };
        let level = self.shared.level.load(Ordering::Relaxed);
        let payload = match self.tone.as_mut().map(|t| {
            // A silent microphone sends silence, at the level that says so.
            t.mute(level >= 127);
            t.next_packet().map(<[u8]>::to_vec)
        }) {
            Some(Ok(opus)) => opus,
            Some(Err(_)) => return,
            None => {
                // ~32 kbit/s Opus: 80 bytes per 20 ms.
                let mut payload = Vec::with_capacity(80);
                payload.push(MARK_AUDIO);
                payload.extend_from_slice(&self.number.to_be_bytes());
                payload.extend_from_slice(&n.to_be_bytes());
                payload.extend_from_slice(&micros(now).to_be_bytes());
                payload.resize(80, 0xaa);
                payload
            }
        };
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        let ext = ExtensionValues {
            audio_level: Some(-(level.min(127) as i8)),
            voice_activity: Some(level < 60),
            ..Default::default()
        };
        tx.write_rtp(
            RtpWrite::new(
                params.pt(),
                u64::from(seq).into(),
                n.wrapping_mul(960),
                now,
                payload,
            )
            .ext_vals(ext),
        );
        self.shared.audio_sent.fetch_add(1, Ordering::Relaxed);
    }

    fn send_frame(&mut self, i: usize, st: &mut LayerState, now: Instant) {
        let (Some(mid), Some(params)) = (self.video_mid, self.pt(Codec::Vp8)) else {
            return;
        };
        let layer = self.cfg.layers[i];
        let key = st.key_wanted
            || st
                .last_key
                .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.keyframe_every);
        if key {
            st.key_wanted = false;
            st.last_key = Some(now);
            if let Some(c) = self.shared.keyframes_sent.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        if key {
            st.since_key = 0;
        }
        // Three temporal layers, as Chrome sends each simulcast encoding.
        let temporal = vp8_shape::chrome_temporal(st.since_key);
        let mut bytes = (f64::from(layer.kbps) * 1000.0 / 8.0 / f64::from(layer.fps.max(1))
            * vp8_shape::chrome_weight(temporal.tid)) as usize;
        if key {
            // Keyframes are several times a delta frame; the encoder's rate control pays
            // for them over the following frames, which the average keeps.
            bytes *= 4;
        }
        let parts = bytes.div_ceil(1100).clamp(1, 60);
        let per = bytes / parts;
        let rid = (self.cfg.layers.len() > 1).then(|| Rid::from(layer.rid));
        let ts = st.frame.wrapping_mul(90_000 / layer.fps.max(1));
        if temporal.tid == 0 {
            st.tl0 = st.tl0.wrapping_add(1);
        }
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, rid) else {
            return;
        };
        for part in 0..parts {
            let start = part == 0;
            let mut p = Vec::with_capacity(per + 32);
            Vp8Shape {
                picture_id: st.picture_id,
                tl0: st.tl0,
                start,
                key,
                width: layer.width,
                height: layer.height,
                temporal: Some(temporal),
            }
            .write_header(&mut p);
            p.push(MARK_VIDEO);
            p.extend_from_slice(&self.number.to_be_bytes());
            p.push(i as u8);
            p.extend_from_slice(&st.frame.to_be_bytes());
            p.push(part as u8);
            p.push(parts as u8);
            p.push(u8::from(key));
            p.extend_from_slice(&micros(now).to_be_bytes());
            p.push(temporal.tid);
            p.extend_from_slice(&st.since_key.to_be_bytes());
            p.resize(per.max(p.len()), 0x55);
            tx.write_rtp(
                RtpWrite::new(params.pt(), u64::from(st.seq).into(), ts, now, p)
                    .marker(part + 1 == parts)
                    .nackable(true),
            );
            st.seq = st.seq.wrapping_add(1);
            if let Some(c) = self.shared.video_sent.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        st.picture_id = (st.picture_id + 1) & 0x7fff;
        st.frame += 1;
        st.since_key += 1;
    }

    fn record(&self, payload: &[u8]) {
        let now = Instant::now();
        self.shared
            .bytes_received
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let Some(m) = parse_marker(payload) else {
            return;
        };
        if m.sender() == self.number {
            self.shared.own_received.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(mut r) = self.shared.received.lock() else {
            return;
        };
        match m {
            Marker::Audio { sender, n, sent_us } => {
                r.entry(sender).or_default().audio.push(AudioArrival {
                    at: now,
                    seq: n,
                    sent_us,
                });
            }
            Marker::Video {
                sender,
                layer,
                frame,
                part,
                parts,
                key,
                sent_us,
                tid,
                since_key,
            } => r.entry(sender).or_default().video.push(VideoArrival {
                at: now,
                layer,
                frame,
                part,
                parts,
                key,
                sent_us,
                bytes: payload.len(),
                tid,
                since_key,
            }),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Marker {
    Audio {
        sender: u64,
        n: u32,
        sent_us: u64,
    },
    Video {
        sender: u64,
        layer: u8,
        frame: u32,
        part: u8,
        parts: u8,
        key: bool,
        sent_us: u64,
        tid: u8,
        since_key: u32,
    },
}

impl Marker {
    fn sender(&self) -> u64 {
        match self {
            Marker::Audio { sender, .. } | Marker::Video { sender, .. } => *sender,
        }
    }
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn parse_marker(p: &[u8]) -> Option<Marker> {
    if p.first() == Some(&MARK_AUDIO) {
        return Some(Marker::Audio {
            sender: be_u64(&p[1..])?,
            n: be_u32(p.get(9..)?)?,
            sent_us: be_u64(p.get(13..)?)?,
        });
    }
    let m = p.get(vp8_shape::header_len(p)?..)?;
    if m.first() != Some(&MARK_VIDEO) {
        return None;
    }
    Some(Marker::Video {
        sender: be_u64(&m[1..])?,
        layer: *m.get(9)?,
        frame: be_u32(m.get(10..)?)?,
        part: *m.get(14)?,
        parts: *m.get(15)?,
        key: *m.get(16)? == 1,
        sent_us: be_u64(m.get(17..)?)?,
        tid: *m.get(25)?,
        since_key: be_u32(m.get(26..)?)?,
    })
}
