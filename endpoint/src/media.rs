//! The agent's WebRTC side (the `webrtc` crate): one peer connection per meeting session,
//! publishing the room's audio and video and handing what it receives to a local player.
//!
//! Sources: the built-in test source (an IVF loop and an Opus beep), an IVF file, or RTP
//! on a local UDP port from a capture pipeline. Sinks: RTP to local UDP ports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{info, warn};
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_connection_state::RTCIceConnectionState;
use webrtc::interceptor::registry::Registry;
use webrtc::media::Sample;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::stats::StatsReportType;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::util::Marshal;

use crate::ivf::Ivf;
use crate::mixer::Mixer;
use cauhop_audio::tone::Tone;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoIn {
    /// The built-in moving test pattern (a pre-encoded VP8 loop).
    TestPattern,
    /// A VP8 IVF file, looped.
    Ivf(PathBuf),
    /// VP8 RTP arriving on this local UDP port (from ffmpeg or gst-launch).
    Rtp(u16),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioIn {
    /// A 440 Hz beep each second, encoded with opus-rs.
    Tone,
    /// Opus RTP arriving on this local UDP port.
    Rtp(u16),
    None,
}

#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub video_in: VideoIn,
    pub audio_in: AudioIn,
    /// Where received audio goes: every far site mixed into one Opus RTP stream.
    pub audio_out: Option<SocketAddr>,
    /// Where received video RTP goes (VP8).
    pub video_out: Option<SocketAddr>,
    /// Send media to this UDP address instead of the bridge's advertised one: a site's
    /// UDP relay, or the link emulator in tests.
    pub media_via: Option<SocketAddr>,
    /// Carry media over TCP to this address (the bridge's HTTPS port, which takes ICE
    /// over TCP): a room whose network lets only web traffic out (`tcp_tunnel.rs`).
    pub media_tcp: Option<SocketAddr>,
    /// Gather loopback candidates only (a bridge on this machine).
    pub loopback_only: bool,
    /// A silent path is "interrupted" after this, and "failed" (time for an ICE
    /// restart) after `ice_failed_after`. The bridge keeps a silent session for 30 s.
    pub ice_disconnected_after: Duration,
    pub ice_failed_after: Duration,
    /// How long a new session (or an ICE restart) may take to get media flowing before
    /// it is given up and the meeting joined afresh.
    pub connect_timeout: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            video_in: VideoIn::TestPattern,
            audio_in: AudioIn::Tone,
            audio_out: None,
            video_out: None,
            media_via: None,
            media_tcp: None,
            loopback_only: false,
            ice_disconnected_after: Duration::from_secs(4),
            ice_failed_after: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(20),
        }
    }
}

/// Packet and byte counts, for the health report and tests.
#[derive(Debug, Default)]
pub struct MediaCounters {
    pub audio_sent: AtomicU64,
    pub video_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub audio_received: AtomicU64,
    pub video_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub keyframe_requests: AtomicU64,
}

/// Link figures for the health report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFigures {
    /// Round trip to the bridge, from signaling ping/pong: webrtc-rs reports no ICE RTT,
    /// and its RTCP-based figure was found wrong by hundreds of ms on loopback.
    pub rtt_ms: Option<f64>,
    /// Fraction of what we send that the bridge reports lost (0..1).
    pub loss: Option<f64>,
}

pub struct MediaSession {
    pc: Arc<RTCPeerConnection>,
    pub counters: Arc<MediaCounters>,
    state: watch::Receiver<RTCPeerConnectionState>,
    media_via: Option<SocketAddr>,
    /// Media over TCP, when configured: lives as long as the session.
    pub tunnel: Option<crate::tcp_tunnel::TcpTunnel>,
    pub connect_timeout: Duration,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let pc = self.pc.clone();
        tokio::spawn(async move {
            let _ = pc.close().await;
        });
    }
}

async fn new_pc(
    cfg: &MediaConfig,
    ice_servers: &[cauhop_protocol::IceServer],
    tunnelled: bool,
) -> anyhow::Result<Arc<RTCPeerConnection>> {
    let mut m = MediaEngine::default();
    m.register_default_codecs()?;
    // RTX for VP8. Without it the bridge NACKs nothing from the room, and pads its
    // bandwidth probes on SSRC 0, which webrtc-rs drops before its TWCC feedback sees
    // them: the bridge then reads the probes as lost and estimates the room's link at a
    // fraction of what it carries (video paused on a LAN).
    m.register_codec(
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: "video/rtx".to_owned(),
                clock_rate: 90000,
                sdp_fmtp_line: "apt=96".to_owned(),
                ..Default::default()
            },
            payload_type: 97,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut m)?;
    let mut s = SettingEngine::default();
    s.set_ice_timeouts(
        Some(cfg.ice_disconnected_after),
        Some(cfg.ice_failed_after),
        Some(Duration::from_secs(1)),
    );
    s.set_network_types(vec![NetworkType::Udp4]);
    // Through the TCP tunnel the only path is loopback to the tunnel's socket.
    if cfg.loopback_only || tunnelled {
        s.set_include_loopback_candidate(true);
        s.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    }
    let api = APIBuilder::new()
        .with_media_engine(m)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build();
    // TURN from the bridge (webrtc-rs relays over UDP TURN only: `turns:` and
    // `?transport=tcp` entries are left out rather than failing the session).
    let ice_servers = ice_servers
        .iter()
        .map(|s| webrtc::ice_transport::ice_server::RTCIceServer {
            urls: s
                .urls
                .iter()
                .filter(|u| u.starts_with("turn:") && !u.contains("transport=tcp"))
                .cloned()
                .collect(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        })
        .filter(|s| !s.urls.is_empty())
        .collect();
    Ok(Arc::new(
        api.new_peer_connection(RTCConfiguration {
            ice_servers,
            ..Default::default()
        })
        .await?,
    ))
}

fn opus() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1;usedtx=1".to_owned(),
        ..Default::default()
    }
}

fn vp8() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        ..Default::default()
    }
}

/// Replace the bridge's advertised address in its SDP with `via`, so ICE goes through it.
pub fn rewrite_candidates(sdp: &str, via: SocketAddr) -> String {
    sdp.lines()
        .map(|line| {
            let Some(rest) = line.strip_prefix("a=candidate:") else {
                return line.to_owned();
            };
            // foundation component transport priority address port typ ...
            let mut f: Vec<&str> = rest.split(' ').collect();
            if f.len() >= 6 && f[2].eq_ignore_ascii_case("udp") {
                let ip = via.ip().to_string();
                let port = via.port().to_string();
                f[4] = &ip;
                f[5] = &port;
                format!("a=candidate:{}", f.join(" "))
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

impl MediaSession {
    /// A peer connection publishing the configured sources, with its sources running.
    pub async fn start(
        cfg: &MediaConfig,
        stream_id: &str,
        ice_servers: &[cauhop_protocol::IceServer],
    ) -> anyhow::Result<Self> {
        let tunnel = match cfg.media_tcp {
            Some(bridge) => Some(
                crate::tcp_tunnel::TcpTunnel::start(bridge)
                    .await
                    .with_context(|| format!("cannot reach the bridge's TCP port {bridge}"))?,
            ),
            None => None,
        };
        let pc = new_pc(cfg, ice_servers, tunnel.is_some()).await?;
        let counters = Arc::new(MediaCounters::default());
        let mut tasks = Vec::new();
        let keyframe_wanted = Arc::new(AtomicBool::new(false));

        let audio: Option<Arc<dyn TrackLocal + Send + Sync>> = match &cfg.audio_in {
            AudioIn::None => None,
            AudioIn::Tone => {
                let t = Arc::new(TrackLocalStaticSample::new(
                    opus(),
                    "audio".into(),
                    stream_id.into(),
                ));
                let mut tone = Tone::new().map_err(|e| anyhow::anyhow!("opus encoder: {e}"))?;
                tasks.push(tokio::spawn(tone_loop(t.clone(), counters.clone(), {
                    move || tone.next_packet().map(<[u8]>::to_vec)
                })));
                Some(t)
            }
            AudioIn::Rtp(port) => {
                let (t, task) = rtp_input(opus(), "audio", stream_id, *port, &counters).await?;
                tasks.push(task);
                Some(t)
            }
        };
        let video: Option<Arc<dyn TrackLocal + Send + Sync>> = match &cfg.video_in {
            VideoIn::None => None,
            VideoIn::TestPattern | VideoIn::Ivf(_) => {
                let ivf = match &cfg.video_in {
                    VideoIn::Ivf(path) => {
                        let bytes = std::fs::read(path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        Ivf::parse(&bytes).with_context(|| format!("{}", path.display()))?
                    }
                    _ => Ivf::test_pattern(),
                };
                let t = Arc::new(TrackLocalStaticSample::new(
                    vp8(),
                    "video".into(),
                    stream_id.into(),
                ));
                tasks.push(tokio::spawn(ivf_loop(
                    t.clone(),
                    ivf,
                    counters.clone(),
                    keyframe_wanted.clone(),
                )));
                Some(t)
            }
            VideoIn::Rtp(port) => {
                let (t, task) = rtp_input(vp8(), "video", stream_id, *port, &counters).await?;
                tasks.push(task);
                Some(t)
            }
        };
        for (track, kind) in [(audio, RTPCodecType::Audio), (video, RTPCodecType::Video)] {
            let Some(track) = track else {
                // Still receive this kind from the others.
                pc.add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
                continue;
            };
            let tr = pc
                .add_transceiver_from_track(
                    track,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
            let sender = tr.sender().await;
            let (wanted, c) = (keyframe_wanted.clone(), counters.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok((packets, _)) = sender.read_rtcp().await {
                    for p in packets {
                        let any = p.as_any();
                        if any.downcast_ref::<PictureLossIndication>().is_some()
                            || any.downcast_ref::<FullIntraRequest>().is_some()
                        {
                            c.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                            wanted.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }

        let out = Arc::new(OutPorts::bind(cfg).await?);
        if let Some(mix) = out.mix_loop() {
            tasks.push(tokio::spawn(mix));
        }
        let c = counters.clone();
        pc.on_track(Box::new(move |track, _, _| {
            let (c, out) = (c.clone(), out.clone());
            Box::pin(async move {
                let is_video = track.kind() == RTPCodecType::Video;
                info!(
                    stream = %track.stream_id(),
                    kind = if is_video { "video" } else { "audio" },
                    "receiving a track"
                );
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(1500);
                    while let Ok((pkt, _)) = track.read_rtp().await {
                        let counter = if is_video {
                            &c.video_received
                        } else {
                            &c.audio_received
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        c.bytes_received
                            .fetch_add(pkt.payload.len() as u64 + 12, Ordering::Relaxed);
                        out.send(is_video, &pkt, &mut buf).await;
                    }
                });
            })
        }));

        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        pc.on_peer_connection_state_change(Box::new(move |s| {
            info!("media connection {s}");
            let _ = state_tx.send(s);
            Box::pin(async {})
        }));
        Ok(Self {
            pc,
            counters,
            state,
            media_via: tunnel.as_ref().map(|t| t.local).or(cfg.media_via),
            tunnel,
            connect_timeout: cfg.connect_timeout,
            tasks,
        })
    }

    fn inbound(&self, sdp: &str) -> String {
        match self.media_via {
            Some(via) => rewrite_candidates(sdp, via),
            None => sdp.to_owned(),
        }
    }

    /// Our offer (with every candidate gathered: the bridge does not trickle).
    pub async fn offer(&self, ice_restart: bool) -> anyhow::Result<String> {
        let offer = self
            .pc
            .create_offer(Some(RTCOfferOptions {
                ice_restart,
                ..Default::default()
            }))
            .await?;
        let mut gathered = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(offer).await?;
        let _ = gathered.recv().await;
        Ok(self
            .pc
            .local_description()
            .await
            .context("no local description")?
            .sdp)
    }

    pub async fn apply_answer(&self, sdp: &str) -> anyhow::Result<()> {
        let d = RTCSessionDescription::answer(self.inbound(sdp))?;
        self.pc.set_remote_description(d).await?;
        // webrtc-rs hands the bridge's ICE credentials to its ICE agent in a spawned task;
        // an offer processed before that looks like an ICE restart to it, and it answers
        // with new credentials the bridge rightly refuses. Wait for the agent to start.
        let t0 = tokio::time::Instant::now();
        while self.pc.ice_connection_state() == RTCIceConnectionState::New
            && t0.elapsed() < Duration::from_secs(2)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Answer a server offer (new subscriptions).
    pub async fn answer(&self, sdp: &str) -> anyhow::Result<String> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(self.inbound(sdp))?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        let mut gathered = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(answer).await?;
        let _ = gathered.recv().await;
        Ok(self
            .pc
            .local_description()
            .await
            .context("no local answer")?
            .sdp)
    }

    pub fn state(&self) -> watch::Receiver<RTCPeerConnectionState> {
        self.state.clone()
    }

    pub async fn link(&self) -> LinkFigures {
        let mut f = LinkFigures::default();
        let report = self.pc.get_stats().await;
        for r in report.reports.values() {
            if let StatsReportType::RemoteInboundRTP(s) = r {
                f.loss = Some(f.loss.unwrap_or(0.0).max(s.fraction_lost));
            }
        }
        f
    }
}

async fn bind_input(port: u16) -> anyhow::Result<UdpSocket> {
    // Loopback only: the capture pipeline runs on this PC, and nobody else may inject.
    UdpSocket::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen for RTP on 127.0.0.1:{port}"))
}

struct OutPorts {
    socket: Option<Arc<UdpSocket>>,
    audio: Option<SocketAddr>,
    video: Option<SocketAddr>,
    /// Every far site's audio mixed into one stream for the room's player.
    mixer: Option<Arc<std::sync::Mutex<Mixer>>>,
}

impl OutPorts {
    async fn bind(cfg: &MediaConfig) -> anyhow::Result<Self> {
        let socket = if cfg.audio_out.is_some() || cfg.video_out.is_some() {
            Some(Arc::new(UdpSocket::bind("127.0.0.1:0").await?))
        } else {
            None
        };
        let mixer = match cfg.audio_out {
            Some(_) => Some(Arc::new(std::sync::Mutex::new(
                Mixer::new(rand::random()).map_err(|e| anyhow::anyhow!("opus: {e}"))?,
            ))),
            None => None,
        };
        Ok(Self {
            socket,
            audio: cfg.audio_out,
            video: cfg.video_out,
            mixer,
        })
    }

    /// Send the mix every 20 ms (runs for the session's life).
    fn mix_loop(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let (mixer, sock, to) = (self.mixer.clone()?, self.socket.clone()?, self.audio?);
        Some(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let pkt = mixer.lock().ok().and_then(|mut m| m.tick());
                if let Some(p) = pkt {
                    let _ = sock.send_to(&p, to).await;
                }
            }
        })
    }

    async fn send(&self, video: bool, pkt: &webrtc::rtp::packet::Packet, buf: &mut Vec<u8>) {
        if !video && let Some(m) = &self.mixer {
            if let Ok(mut m) = m.lock() {
                m.push(pkt.header.ssrc, &pkt.payload);
            }
            return;
        }
        let (Some(sock), Some(to)) = (&self.socket, if video { self.video } else { self.audio })
        else {
            return;
        };
        buf.clear();
        if let Ok(b) = pkt.marshal() {
            buf.extend_from_slice(&b);
            // A player that is not running yet refuses the datagram: that is fine.
            let _ = sock.send_to(buf, to).await;
        }
    }
}

async fn tone_loop(
    track: Arc<TrackLocalStaticSample>,
    counters: Arc<MediaCounters>,
    mut next: impl FnMut() -> Result<Vec<u8>, &'static str> + Send + 'static,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let data = match next() {
            Ok(d) => d,
            Err(e) => {
                warn!("test tone: {e}");
                return;
            }
        };
        counters.audio_sent.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_sent
            .fetch_add(data.len() as u64 + 12, Ordering::Relaxed);
        let _ = track
            .write_sample(&Sample {
                data: data.into(),
                duration: Duration::from_millis(20),
                ..Default::default()
            })
            .await;
    }
}

async fn ivf_loop(
    track: Arc<TrackLocalStaticSample>,
    ivf: Ivf,
    counters: Arc<MediaCounters>,
    keyframe_wanted: Arc<AtomicBool>,
) {
    if ivf.frames.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(ivf.frame_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut i = 0;
    let mut last_jump = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        // A receiver needs a keyframe: jump to the next one in the file (at most twice a
        // second, so a burst of requests does not freeze the loop on keyframes).
        if keyframe_wanted.swap(false, Ordering::Relaxed)
            && last_jump.elapsed() >= Duration::from_millis(500)
        {
            i = ivf.next_keyframe(i);
            last_jump = tokio::time::Instant::now();
        }
        let f = &ivf.frames[i];
        counters.video_sent.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_sent
            .fetch_add(f.data.len() as u64, Ordering::Relaxed);
        let _ = track
            .write_sample(&Sample {
                data: f.data.clone().into(),
                duration: ivf.frame_interval,
                ..Default::default()
            })
            .await;
        i = (i + 1) % ivf.frames.len();
    }
}

/// A track fed by RTP from a local capture pipeline on `port`, and the task feeding it.
async fn rtp_input(
    codec: RTCRtpCodecCapability,
    kind: &str,
    stream_id: &str,
    port: u16,
    counters: &Arc<MediaCounters>,
) -> anyhow::Result<(Arc<TrackLocalStaticRTP>, tokio::task::JoinHandle<()>)> {
    let video = kind == "video";
    let t = Arc::new(TrackLocalStaticRTP::new(
        codec,
        kind.into(),
        stream_id.into(),
    ));
    let sock = bind_input(port).await?;
    let task = tokio::spawn(rtp_in(sock, t.clone(), counters.clone(), video));
    Ok((t, task))
}

/// Forward RTP from a local capture pipeline; the track rewrites SSRC and payload type.
async fn rtp_in(
    sock: UdpSocket,
    track: Arc<TrackLocalStaticRTP>,
    counters: Arc<MediaCounters>,
    video: bool,
) {
    let mut buf = vec![0u8; 1600];
    let mut warned = false;
    let mut warned_size = false;
    let mut rebase = Rebaser::new(if video { 3000 } else { 960 });
    loop {
        let Ok((n, _)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        // RTP version 2 with a full header; anything else is not for us.
        if n < 12 || buf[0] >> 6 != 2 {
            if !warned {
                warn!("ignoring a non-RTP datagram on the media input port");
                warned = true;
            }
            continue;
        }
        if n > 1200 && !warned_size {
            warn!(
                "RTP packets of {n} bytes on the media input; use ffmpeg's -pkt_size 1200 (or gst mtu=1200): larger ones may not survive the path to the bridge"
            );
            warned_size = true;
        }
        rebase.apply(&mut buf[..n]);
        let c = if video {
            &counters.video_sent
        } else {
            &counters.audio_sent
        };
        c.fetch_add(1, Ordering::Relaxed);
        counters.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
        let _ = track.write(&buf[..n]).await;
    }
}

/// Keeps an RTP stream from a capture pipeline continuous across the pipeline's restarts
/// (new SSRC, sequence and timestamp): the bridge and the far end see one stream whose
/// sequence numbers run on and whose timestamps step forward by one frame.
#[derive(Debug, Clone)]
pub struct Rebaser {
    /// Timestamp step assumed across a discontinuity (one frame).
    step: u32,
    last_in: Option<(u32, u16, u32)>,
    seq: u16,
    ts_offset: u32,
    last_out_ts: u32,
}

impl Rebaser {
    pub fn new(step: u32) -> Self {
        Self {
            step,
            last_in: None,
            seq: 0,
            ts_offset: 0,
            last_out_ts: 0,
        }
    }

    /// Rewrite the header of `pkt` (an RTP packet, at least 12 bytes) in place.
    pub fn apply(&mut self, pkt: &mut [u8]) {
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let restarted = match self.last_in {
            None => true,
            Some((s, q, _)) => {
                s != ssrc || seq.wrapping_sub(q) > 1000 && q.wrapping_sub(seq) > 1000
            }
        };
        if restarted {
            // Continue one frame after the last timestamp sent.
            let next = if self.last_in.is_some() {
                self.last_out_ts.wrapping_add(self.step)
            } else {
                ts
            };
            self.ts_offset = next.wrapping_sub(ts);
        }
        if restarted
            || self
                .last_in
                .is_some_and(|(_, q, _)| seq.wrapping_sub(q) < 0x8000)
        {
            // In order (or a fresh start): the next number. A late packet keeps its
            // distance from the newest, so reordering survives.
            let advance = match self.last_in {
                Some((_, q, _)) if !restarted => seq.wrapping_sub(q),
                _ => 1,
            };
            self.seq = self.seq.wrapping_add(advance);
            self.last_in = Some((ssrc, seq, ts));
            pkt[2..4].copy_from_slice(&self.seq.to_be_bytes());
        } else if let Some((_, q, _)) = self.last_in {
            let back = q.wrapping_sub(seq);
            pkt[2..4].copy_from_slice(&self.seq.wrapping_sub(back).to_be_bytes());
        }
        let out_ts = ts.wrapping_add(self.ts_offset);
        if out_ts.wrapping_sub(self.last_out_ts) < 0x8000_0000 {
            self.last_out_ts = out_ts;
        }
        pkt[4..8].copy_from_slice(&out_ts.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.push(0);
        p
    }

    fn seq_ts(p: &[u8]) -> (u16, u32) {
        (
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        )
    }

    #[test]
    fn a_restarted_pipeline_continues_the_stream() {
        let mut r = Rebaser::new(3000);
        let mut out = Vec::new();
        for (ssrc, seq, ts) in [
            (1, 100, 9000),
            (1, 101, 12000),
            (1, 103, 15000),
            (1, 102, 12000), // late
            (7, 40000, 500), // the pipeline restarted
            (7, 40001, 3500),
        ] {
            let mut p = rtp(ssrc, seq, ts);
            r.apply(&mut p);
            out.push(seq_ts(&p));
        }
        assert_eq!(
            out,
            [
                (1, 9000),
                (2, 12000),
                (4, 15000),
                (3, 12000),
                (5, 18000),
                (6, 21000)
            ]
        );
    }

    #[test]
    fn candidates_are_pointed_at_the_relay() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=mid:0\r\n";
        let out = rewrite_candidates(sdp, "127.0.0.1:40000".parse().expect("addr"));
        assert_eq!(
            out,
            "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=mid:0\r\n"
        );
    }
}
