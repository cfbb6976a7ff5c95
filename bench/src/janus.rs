//! Janus 1.1.2 (Debian's `janus`) as the SFU under load: the videoroom plugin over the
//! HTTP transport, on loopback only, with nothing else loaded (no nanomsg or other
//! transports, no streaming plugin and so none of its demo mountpoints). A participant
//! has one peer connection to publish and one to subscribe, as Janus's own clients do.
//!
//! Janus gathers ICE candidates with libnice, which skips loopback interfaces: a Janus
//! told to use `lo` offers the machine's public address instead. So media goes over a
//! host-only interface the bench makes, a veth pair with 10.255.254.1/32 and no route
//! anywhere (packets to a local address never leave the host); signaling stays on
//! 127.0.0.1.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::child;
use crate::peer::{Participant, Peer, PeerSpec, RunShared, SigIn, SigOut};
use crate::scenario::{Phase, Role};

const ROOM: u64 = 1234;
/// The host-only interface and address Janus's media uses.
const IFACE: &str = "cauhop-lb0";
pub const MEDIA_IP: [u8; 4] = [10, 255, 254, 1];

/// Make the host-only interface unless it is there (needs root, like `ip netns`).
fn host_only_interface() -> anyhow::Result<()> {
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let addr = format!("{}/32", std::net::Ipv4Addr::from(MEDIA_IP));
    let shown = std::process::Command::new("ip")
        .args(["-br", "addr", "show", IFACE])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(addr.trim_end_matches("/32")))
        .unwrap_or(false);
    if shown {
        return Ok(());
    }
    let ok = (ip(&["link", "show", IFACE])
        || ip(&[
            "link",
            "add",
            IFACE,
            "type",
            "veth",
            "peer",
            "name",
            "cauhop-lb1",
        ]))
        && ip(&["addr", "replace", &addr, "dev", IFACE])
        && ip(&["link", "set", IFACE, "up"])
        && ip(&["link", "set", "cauhop-lb1", "up"]);
    if !ok {
        bail!("could not make the host-only interface {IFACE} for Janus's media (run as root)");
    }
    Ok(())
}
const PLUGINS: &str = "/usr/lib/x86_64-linux-gnu/janus";

/// Every plugin and transport Debian ships but the two the bench uses.
const OTHER_PLUGINS: &[&str] = &[
    "audiobridge",
    "duktape",
    "echotest",
    "lua",
    "nosip",
    "recordplay",
    "sip",
    "streaming",
    "textroom",
    "videocall",
    "voicemail",
];
const OTHER_TRANSPORTS: &[&str] = &["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"];

/// Write a configuration folder for a loopback-only Janus on `http_port`.
pub fn write_config(dir: &Path, http_port: u16) -> anyhow::Result<()> {
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("libjanus_{n}.so"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let main = format!(
        r#"general: {{
  configs_folder = "{dir}"
  plugins_folder = "{PLUGINS}/plugins"
  transports_folder = "{PLUGINS}/transports"
  events_folder = "{PLUGINS}/events"
  loggers_folder = "{PLUGINS}/loggers"
  debug_level = 3
  session_timeout = 120
}}
media: {{ rtp_port_range = "30000-39999" }}
nat: {{ ice_enforce_list = "{IFACE}" ignore_mdns = true }}
plugins: {{ disable = "{plugins}" }}
transports: {{ disable = "{transports}" }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
events: {{ broadcast = false }}
"#,
        dir = dir.display(),
        plugins = list(OTHER_PLUGINS),
        transports = list(OTHER_TRANSPORTS),
    );
    std::fs::write(dir.join("janus.jcfg"), main)?;
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!(
            "general: {{ base_path = \"/janus\" http = true port = {http_port} ip = \"127.0.0.1\" https = false }}\n\
             admin: {{ admin_http = false }}\n"
        ),
    )?;
    // No bitrate cap and no periodic keyframe requests: forward what is published.
    std::fs::write(
        dir.join("janus.plugin.videoroom.jcfg"),
        format!(
            "general: {{ }}\nroom-{ROOM}: {{ description = \"cauhop-load\" publishers = 1000 \
             bitrate = 0 fir_freq = 0 audiocodec = \"opus\" videocodec = \"vp8\" }}\n"
        ),
    )?;
    Ok(())
}

/// A Janus session with the videoroom, and the events of its handles.
pub struct JanusTarget {
    pub pid: u32,
    base: String,
    http: reqwest::Client,
    session: u64,
    handles: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>,
    /// Our participant number -> Janus feed id.
    feeds: Mutex<HashMap<u32, u64>>,
    poller: tokio::task::JoinHandle<()>,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for JanusTarget {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

fn txn() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("t{}", N.fetch_add(1, Ordering::Relaxed))
}

impl JanusTarget {
    pub async fn spawn(binary: &str, cpus: Option<&str>) -> anyhow::Result<Self> {
        host_only_interface()?;
        let dir = tempfile::tempdir()?;
        let port = child::free_tcp_port()?;
        write_config(dir.path(), port)?;
        let cfg = dir.path().join("janus.jcfg");
        let mut cmd = child::command(binary, cpus);
        // Janus logs to stdout; keep it when asked (CAUHOP_LOAD_JANUS_LOG=FILE).
        let log = match std::env::var_os("CAUHOP_LOAD_JANUS_LOG") {
            Some(f) => Stdio::from(std::fs::File::create(f)?),
            None => Stdio::null(),
        };
        cmd.arg("-F")
            .arg(dir.path())
            .arg("-C")
            .arg(&cfg)
            .stdout(log)
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {binary} (apt-get install janus)"))?;
        let pid = child.id().context("janus exited at once")?;
        let base = format!("http://127.0.0.1:{port}/janus");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        let mut session = None;
        for _ in 0..100 {
            if let Ok(r) = post(&http, &base, json!({"janus": "create"})).await {
                session = r["data"]["id"].as_u64();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let session = session.context("janus did not create a session within 10 s")?;
        let handles: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>> = Arc::default();
        let poller = tokio::spawn(long_poll(
            http.clone(),
            format!("{base}/{session}"),
            handles.clone(),
        ));
        Ok(Self {
            pid,
            base,
            http,
            session,
            handles,
            feeds: Mutex::default(),
            poller,
            _child: child,
            _dir: dir,
        })
    }

    async fn attach(&self) -> anyhow::Result<(u64, mpsc::UnboundedReceiver<Value>)> {
        let r = post(
            &self.http,
            &format!("{}/{}", self.base, self.session),
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )
        .await?;
        let handle = r["data"]["id"].as_u64().context("attach: no handle id")?;
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut h) = self.handles.lock() {
            h.insert(handle, tx);
        }
        Ok((handle, rx))
    }

    async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> anyhow::Result<()> {
        let mut m = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        post(
            &self.http,
            &format!("{}/{}/{handle}", self.base, self.session),
            m,
        )
        .await?;
        Ok(())
    }

    async fn trickle_done(&self, handle: u64) -> anyhow::Result<()> {
        post(
            &self.http,
            &format!("{}/{}/{handle}", self.base, self.session),
            json!({"janus": "trickle", "candidate": {"completed": true}}),
        )
        .await?;
        Ok(())
    }

    /// Who a subscriber of `role` receives: the feeds of the publishers it follows.
    fn feeds_for(&self, role: &Role) -> Vec<u64> {
        let feeds = self.feeds.lock().map(|f| f.clone()).unwrap_or_default();
        role.follows
            .iter()
            .filter_map(|n| feeds.get(n).copied())
            .collect()
    }

    /// Publish (`Phase::Publish`) or subscribe to the feeds a participant follows
    /// (`Phase::Subscribe`, once every publisher's media is up).
    pub async fn connect(
        &self,
        role: &Role,
        phase: Phase,
        me: Arc<Participant>,
        run: Arc<RunShared>,
        ip: IpAddr,
    ) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, u64)> {
        let mut tasks = Vec::new();
        let mut pcs = 0;
        if phase == Phase::Publish && role.publishes() {
            let (handle, mut events) = self.attach().await?;
            let (out_tx, mut out_rx) = mpsc::unbounded_channel();
            let (in_tx, in_rx) = mpsc::unbounded_channel();
            let peer = Peer::start(ip, role.spec.clone(), me.clone(), run.clone(), &out_tx).await?;
            let Some(SigOut::Offer(sdp)) = out_rx.recv().await else {
                bail!("publisher made no offer");
            };
            self.message(
                handle,
                json!({"request": "joinandconfigure", "room": ROOM, "ptype": "publisher",
                       "display": format!("load {}", role.number), "audio": true, "video": true}),
                Some(json!({"type": "offer", "sdp": sdp})),
            )
            .await?;
            self.trickle_done(handle).await?;
            let (feed, answer) = loop {
                let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
                    .await
                    .context("janus: no answer to publish within 10 s")?
                    .context("janus: event stream ended")?;
                let data = &ev["plugindata"]["data"];
                if let Some(err) = data["error"].as_str() {
                    bail!("janus refused the publisher: {err}");
                }
                if data["videoroom"] == "joined"
                    && let Some(sdp) = ev["jsep"]["sdp"].as_str()
                {
                    tracing::debug!("janus answer:\n{sdp}");
                    break (data["id"].as_u64().context("no feed id")?, sdp.to_string());
                }
            };
            if let Ok(mut f) = self.feeds.lock() {
                f.insert(role.number, feed);
            }
            in_tx.send(SigIn::Answer(answer))?;
            tasks.push(tokio::spawn(peer.run(in_rx, out_tx)));
            // Keep the channel open: Janus may renegotiate (it does not here).
            tasks.push(tokio::spawn(async move {
                let _keep = in_tx;
                while out_rx.recv().await.is_some() {}
            }));
            pcs += 1;
        }
        let feeds = self.feeds_for(role);
        if phase == Phase::Subscribe && role.subscribes() && !feeds.is_empty() {
            let (handle, mut events) = self.attach().await?;
            let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
            self.message(
                handle,
                json!({"request": "join", "room": ROOM, "ptype": "subscriber", "streams": streams}),
                None,
            )
            .await?;
            let (offer, attached) = loop {
                let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
                    .await
                    .context("janus: no subscriber offer within 10 s")?
                    .context("janus: event stream ended")?;
                if let Some(err) = ev["plugindata"]["data"]["error"].as_str() {
                    bail!("janus refused the subscriber: {err}");
                }
                if let Some(sdp) = ev["jsep"]["sdp"].as_str() {
                    break (sdp.to_string(), ev["plugindata"]["data"]["streams"].clone());
                }
            };
            // Thumbnails: the lowest substream of every video not shown large (Janus
            // numbers substreams by the offer's rid order, highest first, so 2 is the
            // top layer and its default).
            let feeds = self.feeds.lock().map(|f| f.clone()).unwrap_or_default();
            let large: Vec<u64> = role
                .large
                .iter()
                .filter_map(|n| feeds.get(n).copied())
                .collect();
            let thumbnails: Vec<Value> = attached
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .filter(|s| s["type"] == "video")
                .filter(|s| s["feed_id"].as_u64().is_some_and(|f| !large.contains(&f)))
                .filter_map(|s| s["mid"].as_str())
                .map(|mid| json!({"mid": mid, "substream": 0}))
                .collect();
            let (out_tx, mut out_rx) = mpsc::unbounded_channel();
            let (in_tx, in_rx) = mpsc::unbounded_channel();
            let receiver = PeerSpec::default();
            let peer = Peer::start(ip, receiver, me, run, &out_tx).await?;
            in_tx.send(SigIn::Offer(offer))?;
            tasks.push(tokio::spawn(peer.run(in_rx, out_tx)));
            let answer = loop {
                match out_rx.recv().await {
                    Some(SigOut::Answer(sdp)) => break sdp,
                    Some(_) => {}
                    None => bail!("subscriber peer ended before answering"),
                }
            };
            self.message(
                handle,
                json!({"request": "start", "room": ROOM}),
                Some(json!({"type": "answer", "sdp": answer})),
            )
            .await?;
            self.trickle_done(handle).await?;
            if !thumbnails.is_empty() {
                self.message(
                    handle,
                    json!({"request": "configure", "streams": thumbnails}),
                    None,
                )
                .await?;
            }
            tasks.push(tokio::spawn(async move {
                let _keep = in_tx;
                while out_rx.recv().await.is_some() {}
            }));
            pcs += 1;
        }
        Ok((tasks, pcs))
    }
}

async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> anyhow::Result<Value> {
    body["transaction"] = json!(txn());
    let r: Value = http.post(url).json(&body).send().await?.json().await?;
    if r["janus"] == "error" {
        bail!("janus: {}", r["error"]["reason"]);
    }
    Ok(r)
}

/// Janus's HTTP transport delivers events by long poll: hand each to its handle.
async fn long_poll(
    http: reqwest::Client,
    url: String,
    handles: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>,
) {
    let url = format!("{url}?maxev=50");
    loop {
        let Ok(resp) = http.get(&url).send().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let Ok(v) = resp.json::<Value>().await else {
            continue;
        };
        let events = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        for ev in events {
            if let Some(sender) = ev["sender"].as_u64()
                && let Ok(h) = handles.lock()
                && let Some(tx) = h.get(&sender)
            {
                let _ = tx.send(ev);
            }
        }
    }
}
