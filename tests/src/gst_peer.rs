//! A GStreamer `webrtcbin` peer (`tests/gst/webrtc_peer.py`, run by Debian's Python with
//! its GObject bindings) joined through the bridge's WebSocket protocol. The script
//! keeps webrtcbin's defaults: an RSA certificate, libnice's keepalives (binding
//! indications), its own transceivers. This side relays descriptions between the
//! bridge and the script and keeps the script's counters.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use cauhop_protocol::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::signal;

/// Debian's interpreter: it has the `gi` bindings a pyenv or venv Python lacks.
const PYTHON: &str = "/usr/bin/python3";

/// What the script reported last, and what went wrong.
#[derive(Debug, Default, Clone)]
pub struct GstState {
    pub version: String,
    pub connection: String,
    pub video_frames: u64,
    pub audio_buffers: u64,
    pub errors: Vec<String>,
    /// What the bridge said that a test may want to see (errors, disconnects).
    pub bridge_said: Vec<String>,
}

pub struct GstPeer {
    pub id: String,
    pub state: Arc<Mutex<GstState>>,
    child: Child,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for GstPeer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Whether this machine can run the peer; the error says what to install.
pub fn check_installed() -> anyhow::Result<()> {
    let out = std::process::Command::new(PYTHON)
        .args([
            "-c",
            "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstWebRTC','1.0'); \
             from gi.repository import Gst; Gst.init(None); \
             assert Gst.ElementFactory.find('webrtcbin') and Gst.ElementFactory.find('nicesrc') \
             and Gst.ElementFactory.find('vp8enc') and Gst.ElementFactory.find('opusenc')",
        ])
        .output()
        .context("running /usr/bin/python3")?;
    if !out.status.success() {
        bail!(
            "GStreamer's webrtcbin is not usable here (apt-get install gstreamer1.0-plugins-bad \
             gstreamer1.0-plugins-good gstreamer1.0-plugins-base gstreamer1.0-nice \
             gir1.2-gst-plugins-bad-1.0 python3-gi): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("gst/webrtc_peer.py")
}

async fn write_line(stdin: &mut ChildStdin, v: Value) -> anyhow::Result<()> {
    stdin.write_all(format!("{v}\n").as_bytes()).await?;
    stdin.flush().await?;
    Ok(())
}

impl GstPeer {
    /// Join `meeting` as `name`; `publish` sends a test pattern and a tone, otherwise
    /// the peer only receives (it says `ready` and answers the bridge's offer).
    pub async fn join(
        ws_url: &str,
        meeting: &str,
        name: &str,
        publish: bool,
    ) -> anyhow::Result<Self> {
        let joined = signal::join(
            ws_url,
            ClientMsg::Join {
                v: PROTOCOL_VERSION,
                meeting: meeting.into(),
                name: name.into(),
                site: "gstreamer".into(),
                token: None,
                key: None,
            },
        )
        .await?;
        let (id, ws_tx, mut ws_rx) = (joined.participant, joined.tx, joined.rx);
        let mut child = Command::new(PYTHON)
            .arg(script())
            .arg(if publish { "publish" } else { "subscribe" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the GStreamer peer")?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let state = Arc::new(Mutex::new(GstState::default()));
        let mut tasks = vec![joined.writer];
        if !publish {
            // A receive-only client that says nothing about RED: the bridge must offer
            // Opus alone.
            ws_tx.send(ClientMsg::Ready { red: false })?;
        }

        // Script → bridge.
        let (to_script, mut script_in) = mpsc::unbounded_channel::<Value>();
        let (st, tx) = (state.clone(), ws_tx.clone());
        tasks.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let sdp = v["sdp"].as_str().unwrap_or_default().to_string();
                match v["type"].as_str() {
                    Some("offer") => {
                        let _ = tx.send(ClientMsg::Offer { sdp });
                    }
                    Some("answer") => {
                        let _ = tx.send(ClientMsg::Answer { sdp });
                    }
                    Some("started") => {
                        if let Ok(mut s) = st.lock() {
                            s.version = v["gstreamer"].as_str().unwrap_or_default().into();
                        }
                    }
                    Some("stats") => {
                        if let Ok(mut s) = st.lock() {
                            s.connection = v["connection"].as_str().unwrap_or_default().into();
                            s.video_frames = v["video_frames"].as_u64().unwrap_or(0);
                            s.audio_buffers = v["audio_buffers"].as_u64().unwrap_or(0);
                        }
                    }
                    Some("error") => {
                        eprintln!("gstreamer peer error: {}", v["message"]);
                        if let Ok(mut s) = st.lock() {
                            s.errors.push(v["message"].to_string());
                        }
                    }
                    _ => {}
                }
            }
        }));
        // Bridge → script.
        let (st, tx_script) = (state.clone(), to_script.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok(msg) = signal::next_msg(&mut ws_rx).await {
                match msg {
                    ServerMsg::Answer { sdp } => {
                        let _ = tx_script.send(serde_json::json!({"type": "answer", "sdp": sdp}));
                    }
                    ServerMsg::Offer { sdp } => {
                        let _ = tx_script.send(serde_json::json!({"type": "offer", "sdp": sdp}));
                    }
                    ServerMsg::Pong => {}
                    other => {
                        let text = serde_json::to_string(&other).unwrap_or_default();
                        if text.contains("error")
                            || text.contains("disconnect")
                            || text.contains("ended")
                        {
                            eprintln!("bridge said to a gstreamer peer: {text}");
                            if let Ok(mut s) = st.lock() {
                                s.bridge_said.push(text);
                            }
                        }
                    }
                }
            }
            if let Ok(mut s) = st.lock() {
                s.bridge_said.push("websocket closed".into());
            }
        }));
        tasks.push(tokio::spawn(async move {
            while let Some(v) = script_in.recv().await {
                if write_line(&mut stdin, v).await.is_err() {
                    break;
                }
            }
        }));
        // Keep the signaling socket alive as a page does.
        let tx = ws_tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                if tx.send(ClientMsg::Ping).is_err() {
                    break;
                }
            }
        }));
        Ok(Self {
            id,
            state,
            child,
            tasks,
        })
    }

    pub fn state(&self) -> GstState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
