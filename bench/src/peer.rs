//! One load peer connection: a str0m client over real UDP (ICE, DTLS-SRTP, TWCC feedback
//! from str0m's receiver side) that publishes Opus-shaped audio and simulcast VP8-shaped
//! video and/or receives what the SFU forwards, keeping its ledger per publisher stream.
//!
//! Signaling is not here: the peer hands its SDP to whichever SFU adapter drives it
//! (cauhop's WebSocket, Janus's HTTP API) through channels, so the same media code runs
//! against both SFUs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::book::StreamBook;
use crate::histogram::Histogram;
use crate::stamp::{AUDIO, Stamp, Vp8Shape, vp8_shape, write_vp8};

/// One simulcast layer.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    pub rid: &'static str,
    pub width: u16,
    pub height: u16,
    pub kbps: u32,
    pub fps: u32,
}

/// Chrome's three layers for a 720p camera, at the rates it settles on.
pub const CAMERA: [Layer; 3] = [
    Layer {
        rid: "q",
        width: 320,
        height: 180,
        kbps: 150,
        fps: 15,
    },
    Layer {
        rid: "h",
        width: 640,
        height: 360,
        kbps: 500,
        fps: 30,
    },
    Layer {
        rid: "f",
        width: 1280,
        height: 720,
        kbps: 1200,
        fps: 30,
    },
];

/// Opus at ~32 kbit/s: 80 bytes every 20 ms.
const AUDIO_BYTES: usize = 80;
const AUDIO_EVERY: Duration = Duration::from_millis(20);
/// A keyframe is several delta frames; the encoder pays for it over the next frames.
const KEYFRAME_FACTOR: usize = 4;
/// Browsers packetise under the MTU.
const MAX_PACKET: usize = 1100;

/// What a run shares between all its peers: the clock, the switches, the totals.
pub struct RunShared {
    pub epoch: Instant,
    /// Packets count towards the figures only while this is set (after warm-up).
    pub measuring: AtomicBool,
    pub publishing: AtomicBool,
    pub delay: Histogram,
    /// The same, audio only: str0m paces video at the SFU, never audio, so this is the
    /// forwarding path without the pacer's queue.
    pub audio_delay: Histogram,
    /// Video only (paced by the SFU's pacer).
    pub video_delay: Histogram,
    /// The most m-lines any subscriber's session was offered.
    pub m_lines: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub stop: watch::Sender<bool>,
}

impl RunShared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            measuring: AtomicBool::new(false),
            publishing: AtomicBool::new(true),
            delay: Histogram::default(),
            audio_delay: Histogram::default(),
            video_delay: Histogram::default(),
            m_lines: AtomicU64::new(0),
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            stop: watch::channel(false).0,
        })
    }

    fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64
    }
}

/// One participant's books, shared by its peer connections (Janus gives a participant
/// one to publish and one to subscribe; cauhop one for both).
#[derive(Default)]
pub struct Participant {
    pub number: u32,
    /// Packets published per stream (audio, then layers lowest first).
    pub sent: [AtomicU64; 4],
    pub books: Mutex<HashMap<(u32, u8), StreamBook>>,
    /// Packets of its own media it was sent back: must stay 0.
    pub own: AtomicU64,
    /// Received packets without a stamp (not ours): must stay 0.
    pub foreign: AtomicU64,
    /// Send time (µs since the run's epoch) of the newest packet per stream.
    pub last_sent_us: [AtomicU64; 4],
    /// Peer connections up.
    pub connected: AtomicU64,
    /// Peer connections that died before they were up (a DTLS handshake that timed out).
    pub never_up: AtomicU64,
    pub failed: AtomicBool,
}

/// What a peer connection publishes and whether it receives.
#[derive(Debug, Clone, Default)]
pub struct PeerSpec {
    /// RFC 6464 level of the published audio (0 loud .. 127 silent); `None`: no audio.
    pub audio: Option<u8>,
    pub layers: Vec<Layer>,
    /// Speaks (at `audio`'s level) only in turn `k` of `m` turns of [`TURN`], silent
    /// otherwise: speakers taking the floor one after another.
    pub turn: Option<(u32, u32)>,
    /// A silent microphone sends as Chrome does with DTX: a packet every 400 ms.
    pub dtx: bool,
    /// The `view` a page would send: tile heights per video slot (cauhop only).
    pub view: Vec<u16>,
}

/// How long a speaker's turn lasts.
pub const TURN: Duration = Duration::from_secs(20);
/// A DTX packet's interval while silent.
const DTX_EVERY: Duration = Duration::from_millis(400);

/// From the SFU adapter to the peer.
#[derive(Debug)]
pub enum SigIn {
    Answer(String),
    Offer(String),
    /// Send only these simulcast layers (rids), as the page does on cauhop's `layers`.
    Layers(Vec<String>),
}

/// From the peer to the SFU adapter.
#[derive(Debug)]
pub enum SigOut {
    Offer(String),
    Answer(String),
    /// Nothing to offer: the SFU offers when it has media for us (cauhop `ready`).
    Ready,
}

#[derive(Default, Clone, Copy)]
struct LayerState {
    n: u32,
    picture_id: u16,
    tl0: u8,
    frame: u32,
    /// Frames since the last keyframe: where in Chrome's temporal pattern this one is.
    since_key: u32,
    next_frame: Option<Instant>,
    key_wanted: bool,
}

pub struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    spec: PeerSpec,
    me: Arc<Participant>,
    run: Arc<RunShared>,
    pending: Option<SdpPendingOffer>,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    audio_n: u32,
    layers: Vec<LayerState>,
    /// The rids the SFU asked for (`None`: all).
    active: Option<Vec<String>>,
    connected: bool,
    /// When the datagram being handled arrived: the receive time of its packets.
    rx_at: Instant,
    buf: Vec<u8>,
}

impl Peer {
    /// Bind a socket on `ip` and make the first offer (or say `Ready`).
    pub async fn start(
        ip: std::net::IpAddr,
        spec: PeerSpec,
        me: Arc<Participant>,
        run: Arc<RunShared>,
        out: &mpsc::UnboundedSender<SigOut>,
    ) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let mut api = rtc.sdp_api();
        let audio_mid = spec
            .audio
            .map(|_| api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let video_mid = (!spec.layers.is_empty()).then(|| {
            let sim = (spec.layers.len() > 1).then(|| {
                // Highest first, as janus.js orders its encodings: Janus numbers its
                // substreams by this order (cauhop ranks layers by what they carry).
                let mut sim = Simulcast::new();
                for l in spec.layers.iter().rev() {
                    sim.add_send_layer(SimulcastLayer::new(l.rid));
                }
                sim
            });
            api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim)
        });
        let pending = match api.apply() {
            Some((offer, pending)) => {
                out.send(SigOut::Offer(offer.to_sdp_string()))?;
                Some(pending)
            }
            None => {
                out.send(SigOut::Ready)?;
                None
            }
        };
        let layers = vec![LayerState::default(); spec.layers.len()];
        Ok(Self {
            rtc,
            socket,
            local,
            spec,
            me,
            run,
            pending,
            audio_mid,
            video_mid,
            audio_n: 0,
            layers,
            active: None,
            connected: false,
            rx_at: Instant::now(),
            buf: Vec::with_capacity(MAX_PACKET + 64),
        })
    }

    /// Run until the run stops or the session dies.
    pub async fn run(
        mut self,
        mut sig: mpsc::UnboundedReceiver<SigIn>,
        out: mpsc::UnboundedSender<SigOut>,
    ) {
        let mut stop = self.run.stop.subscribe();
        let mut rx = vec![0u8; 2048];
        let mut next_audio = Instant::now();
        loop {
            let Some(timeout) = self.drain() else {
                self.me.failed.store(true, Ordering::Relaxed);
                if !self.connected {
                    self.me.never_up.fetch_add(1, Ordering::Relaxed);
                }
                return;
            };
            let mut wake = timeout;
            if self.connected {
                if self.spec.audio.is_some() {
                    wake = wake.min(next_audio);
                }
                for l in &self.layers {
                    wake = wake.min(l.next_frame.unwrap_or(wake));
                }
            }
            tokio::select! {
                r = self.socket.recv_from(&mut rx) => {
                    let Ok((n, source)) = r else { continue };
                    self.rx_at = Instant::now();
                    let Ok(contents) = rx[..n].try_into() else { continue };
                    let input = Input::Receive(self.rx_at, Receive {
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
                    self.signal(s, &out);
                }
                _ = stop.changed() => return,
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    let _ = self.rtc.handle_input(Input::Timeout(now));
                    if self.connected && self.run.publishing.load(Ordering::Relaxed) {
                        if self.spec.audio.is_some() && now >= next_audio {
                                let level = self.level(now);
                            self.send_audio(now, level);
                            let every = if self.spec.dtx && level >= 127 { DTX_EVERY } else { AUDIO_EVERY };
                            next_audio = (next_audio + every).max(now);
                        }
                        for i in 0..self.layers.len() {
                            let due = self.layers[i].next_frame.unwrap_or(now);
                            if now >= due {
                                let rid = self.spec.layers[i].rid;
                                let paused = self.spec.layers.len() > 1
                                    && self.active.as_ref().is_some_and(|a| !a.iter().any(|r| r == rid));
                                if !paused {
                                    self.send_frame(i, now);
                                }
                                let step = Duration::from_secs(1) / self.spec.layers[i].fps.max(1);
                                self.layers[i].next_frame = Some((due + step).max(now));
                            }
                        }
                    }
                }
            }
        }
    }

    /// The microphone's level now: a speaker in turn is silent outside its turn.
    fn level(&self, now: Instant) -> u8 {
        let level = self.spec.audio.unwrap_or(127);
        match self.spec.turn {
            Some((k, m)) => {
                let t = now.saturating_duration_since(self.run.epoch).as_secs() / TURN.as_secs();
                if t % u64::from(m.max(1)) == u64::from(k) {
                    level
                } else {
                    127
                }
            }
            None => level,
        }
    }

    fn signal(&mut self, s: SigIn, out: &mpsc::UnboundedSender<SigOut>) {
        match s {
            SigIn::Layers(active) => {
                // A layer coming back starts with a keyframe, as an encoder does.
                for (i, l) in self.spec.layers.iter().enumerate() {
                    let was = self
                        .active
                        .as_ref()
                        .is_none_or(|a| a.iter().any(|r| r == l.rid));
                    if !was && active.iter().any(|r| r == l.rid) {
                        self.layers[i].key_wanted = true;
                    }
                }
                self.active = Some(active);
            }
            SigIn::Answer(sdp) => {
                let (Some(pending), Ok(answer)) =
                    (self.pending.take(), SdpAnswer::from_sdp_string(&sdp))
                else {
                    tracing::warn!("load peer: unusable answer");
                    return;
                };
                if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
                    tracing::warn!("load peer: answer refused: {e}");
                }
            }
            SigIn::Offer(sdp) => {
                // Glare: the server's offer wins; ours is dropped.
                self.pending = None;
                let m_lines = sdp.matches("\nm=").count() as u64;
                self.run.m_lines.fetch_max(m_lines, Ordering::Relaxed);
                let offer = match SdpOffer::from_sdp_string(&sdp) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!("load peer: unusable offer: {e}");
                        return;
                    }
                };
                match self.rtc.sdp_api().accept_offer(offer) {
                    Ok(answer) => {
                        let _ = out.send(SigOut::Answer(answer.to_sdp_string()));
                    }
                    Err(e) => tracing::warn!("load peer: offer refused: {e}"),
                }
            }
        }
    }

    /// Drain str0m; `None` when the session is over.
    fn drain(&mut self) -> Option<Instant> {
        // str0m asks for a timeout "now" after new media is written; sleeping for it
        // would cost up to a millisecond (tokio's timer granularity) on every packet.
        let mut due_now = 0;
        loop {
            if !self.rtc.is_alive() {
                return None;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    let now = Instant::now();
                    if t <= now && due_now < 4 {
                        due_now += 1;
                        let _ = self.rtc.handle_input(Input::Timeout(now));
                        continue;
                    }
                    return Some(t);
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.me.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::KeyframeRequest(req) if Some(req.mid) == self.video_mid => {
                        for (i, l) in self.spec.layers.iter().enumerate() {
                            if req.rid.is_none_or(|r| r == Rid::from(l.rid)) {
                                self.layers[i].key_wanted = true;
                            }
                        }
                    }
                    Event::RtpPacket(p) => self.record(&p.payload),
                    _ => {}
                },
                Err(e) => {
                    tracing::warn!("load peer: {e}");
                    return None;
                }
            }
        }
    }

    fn record(&self, payload: &[u8]) {
        let Some(s) = Stamp::find(payload) else {
            self.me.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if s.sender == self.me.number {
            self.me.own.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut books) = self.me.books.lock() {
            books
                .entry((s.sender, s.stream))
                .or_default()
                .on_packet(s.n, s.sent_us);
        }
        if self.run.measuring.load(Ordering::Relaxed) {
            let at = self.run.micros(self.rx_at);
            let d = at.saturating_sub(s.sent_us);
            self.run.delay.record(d);
            if s.stream == AUDIO {
                self.run.audio_delay.record(d);
            } else {
                self.run.video_delay.record(d);
            }
            self.run.rx_packets.fetch_add(1, Ordering::Relaxed);
            self.run
                .rx_bytes
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
        }
    }

    fn params(&self, codec: Codec) -> Option<PayloadParams> {
        self.rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == codec)
            .copied()
    }

    fn send_audio(&mut self, now: Instant, level: u8) {
        let (Some(mid), Some(params)) = (self.audio_mid, self.params(Codec::Opus)) else {
            return;
        };
        let n = self.audio_n;
        self.buf.clear();
        Stamp {
            sender: self.me.number,
            stream: AUDIO,
            n,
            sent_us: self.run.micros(now),
        }
        .write(&mut self.buf);
        // A DTX packet is Opus's few bytes of comfort noise, not a 20 ms frame.
        let bytes = if self.spec.dtx && level >= 127 {
            24
        } else {
            AUDIO_BYTES
        };
        self.buf.resize(bytes.max(self.buf.len()), 0xaa);
        let payload = self.buf.clone();
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
                u64::from(n).into(),
                n.wrapping_mul(960),
                now,
                payload,
            )
            .ext_vals(ext),
        );
        self.audio_n += 1;
        self.me.sent[0].fetch_add(1, Ordering::Relaxed);
        self.me.last_sent_us[0].store(self.run.micros(now), Ordering::Relaxed);
    }

    fn send_frame(&mut self, i: usize, now: Instant) {
        let (Some(mid), Some(params)) = (self.video_mid, self.params(Codec::Vp8)) else {
            return;
        };
        let layer = self.spec.layers[i];
        let simulcast = self.spec.layers.len() > 1;
        let st = &mut self.layers[i];
        let key = st.key_wanted || st.frame == 0;
        st.key_wanted = false;
        if key {
            st.since_key = 0;
        }
        // Three temporal layers, as Chrome sends each simulcast encoding.
        let temporal = vp8_shape::chrome_temporal(st.since_key);
        let mut bytes = (layer.kbps as f64 * 1000.0 / 8.0 / f64::from(layer.fps.max(1))
            * vp8_shape::chrome_weight(temporal.tid)) as usize;
        if key {
            bytes *= KEYFRAME_FACTOR;
        }
        let parts = bytes.div_ceil(MAX_PACKET).clamp(1, 60);
        let per = bytes / parts;
        let ts = st.frame.wrapping_mul(90_000 / layer.fps.max(1));
        if temporal.tid == 0 {
            st.tl0 = st.tl0.wrapping_add(1);
        }
        let mut state = *st;
        let sent_us = self.run.micros(now);
        let rid = simulcast.then(|| Rid::from(layer.rid));
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, rid) else {
            return;
        };
        for part in 0..parts {
            let mut p = Vec::with_capacity(per.max(40));
            write_vp8(
                &Vp8Shape {
                    picture_id: state.picture_id,
                    tl0: state.tl0,
                    start: part == 0,
                    key,
                    width: layer.width,
                    height: layer.height,
                    temporal: Some(temporal),
                },
                &Stamp {
                    sender: self.me.number,
                    stream: i as u8 + 1,
                    n: state.n,
                    sent_us,
                },
                per,
                &mut p,
            );
            tx.write_rtp(
                RtpWrite::new(params.pt(), u64::from(state.n).into(), ts, now, p)
                    .marker(part + 1 == parts)
                    .nackable(true),
            );
            state.n = state.n.wrapping_add(1);
        }
        state.picture_id = (state.picture_id + 1) & 0x7fff;
        state.frame += 1;
        state.since_key += 1;
        self.layers[i] = state;
        self.me.sent[i + 1].fetch_add(parts as u64, Ordering::Relaxed);
        self.me.last_sent_us[i + 1].store(sent_us, Ordering::Relaxed);
    }
}
