//! The agent's control loop: follow the schedule, hold the meeting's signaling session,
//! report health, back off on every failure. (Media comes with the WebRTC engine.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cauhop_protocol::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::bridge::{BridgeClient, BridgeError};
use crate::follower::{Action, decide};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub bridge: String,
    pub key: String,
    /// How often the schedule is fetched while all is well.
    pub poll: Duration,
    pub health_every: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl AgentConfig {
    pub fn new(bridge: &str, key: &str) -> Self {
        Self {
            bridge: bridge.to_owned(),
            key: key.to_owned(),
            poll: Duration::from_secs(10),
            health_every: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// What the agent is doing, for its health report, its log and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    pub state: &'static str,
    pub meeting: Option<i64>,
    /// Times the bridge refused the key (wrong or revoked); each is followed by a backoff.
    pub key_refusals: u32,
    pub waits: Vec<Duration>,
    pub last_error: Option<String>,
}

struct Session {
    meeting: i64,
    tx: mpsc::UnboundedSender<ClientMsg>,
    ended: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    fn leave(self) {
        let _ = self.tx.send(ClientMsg::Leave);
        // The writer sends `leave` and closes; give it a moment, then stop the task.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.task.abort();
        });
    }
}

async fn join(client: &BridgeClient, meeting: i64) -> anyhow::Result<Session> {
    let (ws, _) = tokio_tungstenite::connect_async(client.ws_url()).await?;
    let (mut sink, mut stream) = ws.split();
    let join = ClientMsg::Join {
        v: PROTOCOL_VERSION,
        meeting: meeting.to_string(),
        name: "endpoint".into(),
        site: String::new(),
        token: None,
        key: Some(client.key().to_owned()),
    };
    sink.send(Message::Text(serde_json::to_string(&join)?.into()))
        .await?;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .map_err(|_| anyhow::anyhow!("no answer to join"))?;
    match first {
        Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMsg>(&t)? {
            ServerMsg::Welcome { .. } => {}
            ServerMsg::Error { code, message, .. } => {
                anyhow::bail!("join refused ({code:?}): {message}")
            }
            other => anyhow::bail!("unexpected first message {other:?}"),
        },
        other => anyhow::bail!("connection closed during join: {other:?}"),
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<ClientMsg>();
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    let task = tokio::spawn(async move {
        let mut ping = tokio::time::interval(Duration::from_secs(20));
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    let leaving = msg == ClientMsg::Leave;
                    if let Ok(text) = serde_json::to_string(&msg) {
                        let _ = sink.send(Message::Text(text.into())).await;
                    }
                    if leaving {
                        let _ = sink.close().await;
                        break;
                    }
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Ok(ServerMsg::MeetingEnded { reason }) = serde_json::from_str::<ServerMsg>(&t) {
                            info!(meeting, %reason, "meeting ended");
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                _ = ping.tick() => {
                    let _ = sink.send(Message::Text(r#"{"type":"ping"}"#.into())).await;
                }
            }
        }
        flag.store(true, Ordering::Relaxed);
    });
    Ok(Session {
        meeting,
        tx,
        ended,
        task,
    })
}

fn set(status: &Mutex<AgentStatus>, f: impl FnOnce(&mut AgentStatus)) {
    let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut s);
}

/// Run until `shutdown` flips to true.
pub async fn run(
    cfg: AgentConfig,
    status: Arc<Mutex<AgentStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = BridgeClient::new(&cfg.bridge, &cfg.key);
    let mut backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
    let mut session: Option<Session> = None;
    let mut last_health = tokio::time::Instant::now() - cfg.health_every;
    set(&status, |s| s.state = "starting");
    loop {
        if session
            .as_ref()
            .is_some_and(|s| s.ended.load(Ordering::Relaxed))
        {
            if let Some(s) = session.take() {
                info!(
                    meeting = s.meeting,
                    "left the meeting (closed by the bridge or the link)"
                );
            }
            set(&status, |s| {
                s.state = "idle";
                s.meeting = None;
            });
        }
        let wait = match client.schedule().await {
            Ok(list) => {
                backoff.reset();
                let slots: Vec<_> = list.iter().map(|m| m.slot()).collect();
                let mut wait = cfg.poll;
                match decide(session.as_ref().map(|s| s.meeting), &slots) {
                    Action::Stay => {
                        if session.is_none() {
                            set(&status, |s| s.state = "idle");
                        }
                    }
                    Action::Leave => {
                        if let Some(s) = session.take() {
                            info!(meeting = s.meeting, "meeting closed: leaving");
                            s.leave();
                        }
                        set(&status, |s| {
                            s.state = "idle";
                            s.meeting = None;
                        });
                    }
                    Action::Join(id) => {
                        set(&status, |s| s.state = "joining");
                        match join(&client, id).await {
                            Ok(s) => {
                                info!(meeting = id, "joined the meeting");
                                session = Some(s);
                                set(&status, |st| {
                                    st.state = "in_meeting";
                                    st.meeting = Some(id);
                                });
                            }
                            Err(e) => {
                                warn!(meeting = id, "cannot join: {e:#}");
                                wait = backoff.next(rand::random());
                                set(&status, |s| s.last_error = Some(format!("{e:#}")));
                            }
                        }
                    }
                }
                wait
            }
            Err(BridgeError::Unauthorized) => {
                error!(
                    "the bridge refused this device's key; ask the district IT officer for a new one"
                );
                let w = backoff.next(rand::random());
                set(&status, |s| {
                    s.state = "refused";
                    s.key_refusals += 1;
                    s.waits.push(w);
                    s.last_error = Some(BridgeError::Unauthorized.to_string());
                });
                w
            }
            Err(e) => {
                warn!("{e}");
                let w = backoff.next(rand::random());
                set(&status, |s| {
                    s.state = "offline";
                    s.waits.push(w);
                    s.last_error = Some(e.to_string());
                });
                w
            }
        };
        if last_health.elapsed() >= cfg.health_every {
            last_health = tokio::time::Instant::now();
            let report = {
                let s = status.lock().unwrap_or_else(|e| e.into_inner());
                serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "state": s.state, "meeting": s.meeting})
            };
            if let Err(e) = client.health(&report).await {
                warn!("health report not delivered: {e}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait.min(cfg.health_every)) => {}
            _ = shutdown.changed() => {
                if let Some(s) = session.take() {
                    s.leave();
                }
                return;
            }
        }
    }
}
