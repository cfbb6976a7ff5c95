//! One meeting session: the signaling WebSocket and the WebRTC peer connection, held
//! until the meeting ends or the session is lost. A silent media path is first given a
//! chance to come back, then an ICE restart (the bridge keeps the session for 30 s);
//! only a lost WebSocket or a failed restart ends the session, and the agent rejoins.

use std::sync::Arc;
use std::time::Duration;

use cauhop_protocol::{ClientMsg, ErrorCode, PROTOCOL_VERSION, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::{info, warn};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState as Pc;

use crate::media::{LinkFigures, MediaConfig, MediaCounters, MediaSession};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The bridge closed the meeting (or is shutting down): follow the schedule.
    MeetingEnded(String),
    /// We left (the schedule said so, or shutdown).
    Left,
    /// The connection was lost: rejoin.
    Lost(String),
}

/// What the control loop and the health report see of a running session.
#[derive(Debug, Clone, Default)]
pub struct SessionView {
    pub participant: String,
    /// `connecting`, `connected`, `interrupted`, `restarting`.
    pub media: &'static str,
    pub ice_restarts: u32,
    pub link: LinkFigures,
    pub end: Option<End>,
}

pub struct Session {
    pub meeting: i64,
    tx: mpsc::UnboundedSender<ClientMsg>,
    pub view: watch::Receiver<SessionView>,
    pub counters: Arc<MediaCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    pub fn ended(&self) -> Option<End> {
        self.view.borrow().end.clone()
    }

    pub fn leave(self) {
        let _ = self.tx.send(ClientMsg::Leave);
        // The task sends `leave` and closes; give it a moment, then stop it.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.task.abort();
        });
    }
}

pub async fn join(
    ws_url: &str,
    key: &str,
    meeting: i64,
    media: &MediaConfig,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> anyhow::Result<Session> {
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(ws_url, None, false, Some(connector)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no WebSocket connection within 10 s"))??;
    let (mut sink, mut stream) = ws.split();
    let join = ClientMsg::Join {
        v: PROTOCOL_VERSION,
        meeting: meeting.to_string(),
        name: "endpoint".into(),
        site: String::new(),
        token: None,
        key: Some(key.to_owned()),
    };
    sink.send(Message::Text(serde_json::to_string(&join)?.into()))
        .await?;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .map_err(|_| anyhow::anyhow!("no answer to join"))?;
    let (participant, ice_servers) = match first {
        Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMsg>(&t)? {
            ServerMsg::Welcome {
                participant,
                ice_servers,
                ..
            } => (participant, ice_servers),
            ServerMsg::Error { code, message, .. } => {
                anyhow::bail!("join refused ({code:?}): {message}")
            }
            other => anyhow::bail!("unexpected first message {other:?}"),
        },
        other => anyhow::bail!("connection closed during join: {other:?}"),
    };
    let pc = MediaSession::start(media, &participant, &ice_servers).await?;
    let offer = pc.offer(false).await?;
    send(&mut sink, &ClientMsg::Offer { sdp: offer })
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let counters = pc.counters.clone();
    let (tx, rx) = mpsc::unbounded_channel::<ClientMsg>();
    let (view_tx, view) = watch::channel(SessionView {
        participant: participant.clone(),
        media: "connecting",
        ..Default::default()
    });
    let task = tokio::spawn(async move {
        let end = run(meeting, pc, sink, stream, rx, &view_tx).await;
        match &end {
            End::Lost(why) => warn!(meeting, "session lost: {why}"),
            End::MeetingEnded(reason) => info!(meeting, %reason, "meeting ended"),
            End::Left => info!(meeting, "left the meeting"),
        }
        view_tx.send_modify(|v| v.end = Some(end));
    });
    Ok(Session {
        meeting,
        tx,
        view,
        counters,
        task,
    })
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;
type Stream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

fn ufrag(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap_or("-")
}

async fn send(sink: &mut Sink, msg: &ClientMsg) -> Result<(), End> {
    match msg {
        ClientMsg::Offer { sdp } => {
            tracing::debug!(ufrag = ufrag(sdp), len = sdp.len(), "sending offer")
        }
        ClientMsg::Answer { sdp } => {
            tracing::debug!(ufrag = ufrag(sdp), len = sdp.len(), "sending answer")
        }
        _ => {}
    }
    let text = serde_json::to_string(msg).map_err(|e| End::Lost(e.to_string()))?;
    sink.send(Message::Text(text.into()))
        .await
        .map_err(|e| End::Lost(format!("WebSocket: {e}")))
}

/// Offer new ICE credentials to the bridge, over the still-open signaling socket.
async fn restart_ice(pc: &MediaSession, sink: &mut Sink) -> Result<(), End> {
    let sdp = pc
        .offer(true)
        .await
        .map_err(|e| End::Lost(format!("ICE restart offer: {e:#}")))?;
    send(sink, &ClientMsg::Offer { sdp }).await
}

async fn run(
    meeting: i64,
    pc: MediaSession,
    mut sink: Sink,
    mut stream: Stream,
    mut rx: mpsc::UnboundedReceiver<ClientMsg>,
    view: &watch::Sender<SessionView>,
) -> End {
    let mut state = pc.state();
    let mut ping = tokio::time::interval(Duration::from_secs(5));
    let mut ping_sent: Option<tokio::time::Instant> = None;
    let mut rtt_ms: Option<f64> = None;
    let mut stats = tokio::time::interval(Duration::from_secs(2));
    let mut connected_once = false;
    let started = tokio::time::Instant::now();
    // An ICE restart we still owe the bridge (our offer lost a glare and was rolled back).
    let mut restart_owed = false;
    let mut offer_outstanding = true;
    let mut restart_started: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return End::Left };
                let leaving = msg == ClientMsg::Leave;
                let _ = send(&mut sink, &msg).await;
                if leaving {
                    let _ = sink.close().await;
                    return End::Left;
                }
            }
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => return End::Lost("the bridge closed the WebSocket".into()),
                    Some(Err(e)) => return End::Lost(format!("WebSocket: {e}")),
                    Some(Ok(_)) => continue,
                };
                let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
                    warn!("unreadable message from the bridge");
                    continue;
                };
                if let ServerMsg::Offer { sdp } | ServerMsg::Answer { sdp } = &msg {
                    tracing::debug!(ufrag = ufrag(sdp), kind = if matches!(msg, ServerMsg::Offer { .. }) { "offer" } else { "answer" }, offer_outstanding, "from the bridge");
                }
                match msg {
                    ServerMsg::Answer { sdp } => {
                        offer_outstanding = false;
                        if let Err(e) = pc.apply_answer(&sdp).await {
                            return End::Lost(format!("bridge answer not usable: {e:#}"));
                        }
                        // The path failed while our first offer was out: restart now.
                        if restart_owed {
                            restart_owed = false;
                            if let Err(e) = restart_ice(&pc, &mut sink).await {
                                return e;
                            }
                            offer_outstanding = true;
                        }
                    }
                    ServerMsg::Offer { sdp } => {
                        if offer_outstanding {
                            // The bridge offered at the same time and wins (it ignores our
                            // offer). webrtc-rs cannot roll back a local offer, so the
                            // session is started afresh; this only happens when an ICE
                            // restart crosses a change in who publishes.
                            return End::Lost("offers crossed during an ICE restart".into());
                        }
                        match pc.answer(&sdp).await {
                            Ok(answer) => {
                                if let Err(e) = send(&mut sink, &ClientMsg::Answer { sdp: answer }).await {
                                    return e;
                                }
                            }
                            Err(e) => return End::Lost(format!("bridge offer not usable: {e:#}")),
                        }
                    }
                    ServerMsg::Pong => {
                        if let Some(t) = ping_sent.take() {
                            rtt_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                    // A restart, not the end of the meeting: come back at the rejoin pace.
                    ServerMsg::MeetingEnded { reason } if reason == "server_shutdown" => {
                        return End::Lost("the bridge is restarting".into());
                    }
                    ServerMsg::MeetingEnded { reason } => return End::MeetingEnded(reason),
                    // Removed by the chair: not a lost link to hurry back over (the bridge
                    // refuses this device for the rest of the meeting's session).
                    ServerMsg::Error { code: ErrorCode::Removed, message, .. } => {
                        return End::MeetingEnded(format!("removed by the chair: {message}"));
                    }
                    ServerMsg::Error { code, message, fatal: true, .. } => {
                        return End::Lost(format!("bridge error {code:?}: {message}"));
                    }
                    ServerMsg::Error { code, message, .. } => warn!(meeting, ?code, "bridge: {message}"),
                    ServerMsg::MuteRequest { .. } => info!(meeting, "the chair muted this room"),
                    ServerMsg::Floor { participant: Some(p), .. } if p == view.borrow().participant => {
                        info!(meeting, "this room has the floor");
                    }
                    _ => {}
                }
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return End::Lost("media engine stopped".into());
                }
                let s = *state.borrow_and_update();
                match s {
                    Pc::Connected => {
                        if let Some(t) = restart_started.take() {
                            info!(meeting, "media back after an ICE restart ({:.1} s)", t.elapsed().as_secs_f64());
                        } else if connected_once {
                            info!(meeting, "media path back");
                        }
                        connected_once = true;
                        view.send_modify(|v| v.media = "connected");
                    }
                    Pc::Disconnected => {
                        warn!(meeting, "media path silent; waiting for it to come back");
                        view.send_modify(|v| v.media = "interrupted");
                    }
                    Pc::Failed => {
                        // A restart made while the link is still down fails too (its checks
                        // run out); try again until the bridge's grace is nearly over.
                        if restart_started.is_some_and(|t| t.elapsed() > pc.connect_timeout) {
                            return End::Lost("ICE restarts did not bring media back".into());
                        }
                        warn!(meeting, "media path failed; restarting ICE");
                        restart_started.get_or_insert_with(tokio::time::Instant::now);
                        view.send_modify(|v| { v.media = "restarting"; v.ice_restarts += 1; });
                        if offer_outstanding {
                            restart_owed = true;
                        } else {
                            if let Err(e) = restart_ice(&pc, &mut sink).await {
                                return e;
                            }
                            offer_outstanding = true;
                        }
                    }
                    Pc::Closed => return End::Lost("media connection closed".into()),
                    _ => {}
                }
            }
            _ = ping.tick() => {
                ping_sent = Some(tokio::time::Instant::now());
                if let Err(e) = send(&mut sink, &ClientMsg::Ping).await {
                    return e;
                }
            }
            _ = stats.tick() => {
                if !connected_once && started.elapsed() > pc.connect_timeout {
                    return End::Lost(format!("no media within {} s", pc.connect_timeout.as_secs()));
                }
                if restart_started.is_some_and(|t| t.elapsed() > pc.connect_timeout) {
                    return End::Lost("ICE restart did not bring media back".into());
                }
                let mut link = pc.link().await;
                link.rtt_ms = rtt_ms;
                view.send_modify(|v| v.link = link);
            }
        }
    }
}
