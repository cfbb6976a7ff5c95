//! cauhop as the SFU under load: the `cauhop` binary as a child process (so /proc shows
//! its CPU and memory alone), or a bridge already running (the smoke tests run one in
//! process). Each participant joins over the WebSocket with one peer connection for
//! sending and receiving, as the web client does.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cauhop_protocol::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use cauhop_tests::signal;
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::child;
use crate::peer::{Participant, Peer, RunShared, SigIn, SigOut};
use crate::scenario::Role;

pub struct CauhopTarget {
    pub ws_url: String,
    pub meeting: String,
    /// The process whose CPU and memory are the SFU's.
    pub pid: u32,
    _child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl CauhopTarget {
    /// Start `binary` on loopback with a fresh SQLite file and ad-hoc rooms, optionally
    /// pinned to `cpus` (taskset list), and wait until it answers.
    pub async fn spawn(binary: &Path, cpus: Option<&str>) -> anyhow::Result<Self> {
        if !binary.exists() {
            bail!(
                "{} not found: build it first (cargo build --release)",
                binary.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let http = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), child::free_tcp_port()?);
        let media = child::free_udp_port()?;
        let db = format!("sqlite://{}", dir.path().join("cauhop.db").display());
        let mut cmd = child::command(binary, cpus);
        cmd.args(["--listen", &http.to_string()])
            .args(["--media-port", &media.to_string()])
            .args(["--media-ip", "127.0.0.1"])
            .args(["--database-url", &db])
            .arg("--ad-hoc")
            .env("RUST_LOG", "warn")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd.spawn().context("starting cauhop")?;
        let pid = child.id().context("cauhop exited at once")?;
        let health = format!("http://{http}/healthz");
        let client = reqwest::Client::new();
        let mut up = false;
        for _ in 0..100 {
            if client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !up {
            bail!("cauhop did not answer on {health} within 10 s");
        }
        Ok(Self {
            ws_url: format!("ws://{http}/ws"),
            meeting: "load".into(),
            pid,
            _child: Some(child),
            _dir: Some(dir),
        })
    }

    /// A bridge that is already running in process `pid`.
    pub fn running(ws_url: String, meeting: &str, pid: u32) -> Self {
        Self {
            ws_url,
            meeting: meeting.into(),
            pid,
            _child: None,
            _dir: None,
        }
    }

    /// Join one participant; returns its tasks and how many peer connections it has.
    pub async fn connect(
        &self,
        role: &Role,
        me: Arc<Participant>,
        run: Arc<RunShared>,
        ip: IpAddr,
    ) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, u64)> {
        let joined = signal::join_from(
            Some(ip),
            &self.ws_url,
            ClientMsg::Join {
                v: PROTOCOL_VERSION,
                meeting: self.meeting.clone(),
                name: format!("load {}", role.number),
                site: "load".into(),
                token: None,
                key: None,
            },
        )
        .await?;
        let (ws_tx, mut ws_rx) = (joined.tx, joined.rx);
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let peer = Peer::start(ip, role.spec.clone(), me, run, &out_tx).await?;
        if !role.spec.view.is_empty() {
            // What a page of this size shows, as it tells the bridge after joining.
            let _ = ws_tx.send(ClientMsg::View {
                audio_only: false,
                low_data: false,
                hidden: false,
                tiles: Vec::new(),
                pinned: None,
                slots: role.spec.view.clone(),
            });
        }
        let mut tasks = vec![joined.writer];
        tasks.push(tokio::spawn(async move {
            while let Ok(msg) = signal::next_msg(&mut ws_rx).await {
                let _ = match msg {
                    ServerMsg::Offer { sdp } => in_tx.send(SigIn::Offer(sdp)),
                    ServerMsg::Answer { sdp } => in_tx.send(SigIn::Answer(sdp)),
                    ServerMsg::Layers { active, .. } => in_tx.send(SigIn::Layers(active)),
                    _ => Ok(()),
                };
            }
        }));
        tasks.push(tokio::spawn(async move {
            while let Some(o) = out_rx.recv().await {
                let msg = match o {
                    SigOut::Offer(sdp) => ClientMsg::Offer { sdp },
                    SigOut::Answer(sdp) => ClientMsg::Answer { sdp },
                    // Its str0m does not decode RED (`peer.rs`).
                    SigOut::Ready => ClientMsg::Ready { red: false },
                };
                if ws_tx.send(msg).is_err() {
                    return;
                }
            }
        }));
        tasks.push(tokio::spawn(peer.run(in_rx, out_tx)));
        Ok((tasks, 1))
    }
}
