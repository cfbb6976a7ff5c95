//! The bridge under a flood, as its own process (so its memory is its own): while a
//! meeting of real str0m peers runs, a few seconds of junk datagrams from 200 loopback
//! addresses hit the media port (STUN checks naming sessions that do not exist,
//! truncated DTLS, RTP and RTCP with random SSRCs, random bytes) and junk WebSocket
//! clients hit the signaling port (ones that never read while provoking answers, 64 KiB
//! garbage frames, ones that never join). The bridge stays up, the meeting's media keeps
//! flowing (counted before and after), and its resident memory comes back to within 10 %
//! of what it was before the flood.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cauhop_tests::sim_peer::{CAMERA_LAYERS, SimConfig, SimPeer};
use futures_util::SinkExt;
use rand::Rng;
use tokio_tungstenite::tungstenite::Message;

const PEERS: usize = 3;
const SOURCES: u8 = 200;
const FLOOD: Duration = Duration::from_secs(4);
/// Datagrams a second, all sources together: a few hundred times a meeting's own rate,
/// and what one client core of this machine sends without starving the meeting's peers.
const FLOOD_RATE: u64 = 20_000;
const WINDOW: Duration = Duration::from_secs(3);

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))
}

/// A UDP port free now (the bridge binds it a moment later).
fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Media packets the peers have received so far.
fn received(peers: &[SimPeer]) -> usize {
    peers
        .iter()
        .map(|p| {
            p.shared
                .received
                .lock()
                .map(|r| {
                    r.values()
                        .map(|x| x.audio.len() + x.video.len())
                        .sum::<usize>()
                })
                .unwrap_or(0)
        })
        .sum()
}

/// One junk datagram of each kind a hostile host might send.
fn junk(rng: &mut impl Rng, n: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(1200);
    match n % 5 {
        // A STUN binding request naming a session that does not exist, with a
        // plausible USERNAME, PRIORITY and a MESSAGE-INTEGRITY of random bytes.
        0 => {
            let user = format!("{:08x}:{:08x}", rng.random::<u32>(), rng.random::<u32>());
            let mut attrs = Vec::new();
            let mut attr = |t: u16, v: &[u8]| {
                attrs.extend_from_slice(&t.to_be_bytes());
                attrs.extend_from_slice(&(v.len() as u16).to_be_bytes());
                attrs.extend_from_slice(v);
                attrs.resize(attrs.len().div_ceil(4) * 4, 0);
            };
            attr(0x0006, user.as_bytes());
            attr(0x0024, &rng.random::<u32>().to_be_bytes());
            attr(0x0008, &rng.random::<[u8; 20]>());
            p.extend_from_slice(&0x0001u16.to_be_bytes());
            p.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
            p.extend_from_slice(&0x2112_A442u32.to_be_bytes());
            p.extend_from_slice(&rng.random::<[u8; 12]>());
            p.extend_from_slice(&attrs);
        }
        // A DTLS 1.2 handshake record cut short: the header promises more than comes.
        1 => {
            p.extend_from_slice(&[22, 0xfe, 0xfd, 0, 0]);
            p.extend_from_slice(&rng.random::<[u8; 6]>());
            p.extend_from_slice(&[0x01, 0x00]);
            let len = rng.random_range(1..40);
            p.extend((0..len).map(|_| rng.random::<u8>()));
        }
        // RTP (VP8 or Opus payload types) with a random SSRC and sequence.
        2 => {
            p.push(0x80);
            p.push(if rng.random() { 96 } else { 111 });
            p.extend_from_slice(&rng.random::<[u8; 10]>());
            let len = rng.random_range(20..1100);
            p.extend((0..len).map(|_| rng.random::<u8>()));
        }
        // RTCP: a receiver report and a NACK for SSRCs nobody has.
        3 => {
            p.extend_from_slice(&[0x81, 201, 0, 7]);
            p.extend((0..28).map(|_| rng.random::<u8>()));
            p.extend_from_slice(&[0x81, 205, 0, 3]);
            p.extend((0..12).map(|_| rng.random::<u8>()));
        }
        _ => {
            let len = rng.random_range(1..1400);
            p.extend((0..len).map(|_| rng.random::<u8>()));
        }
    }
    p
}

/// Send junk to `to` from 127.0.0.2..=127.0.0.201 (all of 127/8 is this machine's) at
/// about FLOOD_RATE for FLOOD; returns how many datagrams went out.
fn udp_flood(to: SocketAddr) -> anyhow::Result<u64> {
    let sockets: Vec<UdpSocket> = (2..2 + SOURCES)
        .map(|i| UdpSocket::bind((Ipv4Addr::new(127, 0, 0, i), 0)))
        .collect::<Result<_, _>>()?;
    let mut rng = rand::rng();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < FLOOD {
        for s in &sockets {
            if s.send_to(&junk(&mut rng, sent), to).is_ok() {
                sent += 1;
            }
        }
        // Pace: sleep until the schedule catches up with what was sent.
        let due = Duration::from_secs_f64(sent as f64 / FLOOD_RATE as f64);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    Ok(sent)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Junk WebSocket clients until `stop`: returns how many the bridge let in and how many
/// it refused. Half come straight from 127.0.0.1, one address holding all it can; the
/// other half come through "the proxy" (loopback, trusted as deployed) naming a
/// different client address in `X-Forwarded-For` each time, as a botnet behind the
/// proxy would.
async fn ws_junk(url: String, stop: Arc<AtomicBool>) -> (u64, u64) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let connected = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..48u32 {
        let (url, stop) = (url.clone(), stop.clone());
        let (connected, refused) = (connected.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut held: Vec<Ws> = Vec::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let Ok(mut request) = url.as_str().into_client_request() else {
                    return;
                };
                if i % 2 == 1 {
                    let [a, b] = (n as u16).to_be_bytes();
                    let forwarded = format!("198.18.{a}.{b}, 10.{}.0.1", i % 256);
                    if let Ok(v) = forwarded.parse() {
                        request.headers_mut().insert("x-forwarded-for", v);
                    }
                }
                let mut ws = match tokio_tungstenite::connect_async(request).await {
                    Ok((ws, _)) => ws,
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                connected.fetch_add(1, Ordering::Relaxed);
                match (i / 2) % 3 {
                    // Provokes answers (a pong each) it never reads, without joining.
                    0 => {
                        for _ in 0..500 {
                            let ping = Message::Text(r#"{"type":"ping"}"#.into());
                            if ws.send(ping).await.is_err() {
                                break;
                            }
                        }
                        held.push(ws);
                    }
                    // 64 KiB of garbage, text and binary, until the server has had enough.
                    1 => {
                        let garbage: String = (0..65_536)
                            .map(|n| char::from(b'!' + (n % 90) as u8))
                            .collect();
                        for _ in 0..8 {
                            let text = Message::Text(garbage.clone().into());
                            let binary = Message::Binary(vec![0xAB; 65_536].into());
                            if ws.send(text).await.is_err() || ws.send(binary).await.is_err() {
                                break;
                            }
                        }
                    }
                    // Connects and says nothing (the server ends it after 10 s).
                    _ => held.push(ws),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drop(held);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        connected.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_junk_does_not_stop_a_meeting_or_keep_memory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("cauhop.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\njoin_key_file = \"{}\"\n",
            dir.path().join("join.key").display()
        ),
    )?;
    let media_port = free_udp_port()?;
    let mut bridge = Killed(
        Command::new(env!("CARGO_BIN_EXE_cauhop"))
            .args(["--listen", "127.0.0.1:0", "--media-ip", "127.0.0.1"])
            .args(["--media-port", &media_port.to_string(), "--ad-hoc"])
            .arg("--database-url")
            .arg(format!("sqlite://{}/cauhop.db", dir.path().display()))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn,cauhop_signaling=error")
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let pid = bridge.0.id();
    let stdout = bridge
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("stdout"))?;
    // Read its stdout to the end (a closed pipe would fail the bridge's next line), and
    // learn the HTTP port from it.
    let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line
                .split("http://localhost:")
                .nth(1)
                .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            {
                let _ = port_tx.send(port);
            }
        }
    });
    let port = tokio::task::spawn_blocking(move || port_rx.recv_timeout(Duration::from_secs(60)))
        .await?
        .map_err(|_| anyhow::anyhow!("the bridge did not say where it listens"))?;
    let ws_url = format!("ws://127.0.0.1:{port}/ws");

    // The meeting: three sites with a camera and a microphone.
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let mut cfg = SimConfig::new("flood", &format!("Xã {}", i + 1));
        cfg.layers = CAMERA_LAYERS[..1].to_vec();
        peers.push(SimPeer::join(&ws_url, cfg).await?);
    }
    // Let buffers and caches reach their working size before the baseline.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = {
        let a = received(&peers);
        tokio::time::sleep(WINDOW).await;
        received(&peers) - a
    };
    let rss_before = rss_kib(pid)?;

    let stop = Arc::new(AtomicBool::new(false));
    let clients = tokio::spawn(ws_junk(ws_url.clone(), stop.clone()));
    let during_from = received(&peers);
    let media = SocketAddr::from((Ipv4Addr::LOCALHOST, media_port));
    let datagrams = tokio::task::spawn_blocking(move || udp_flood(media)).await??;
    stop.store(true, Ordering::Relaxed);
    let (junk_clients, junk_refused) = clients.await?;
    let during = received(&peers) - during_from;
    let rss_peak = rss_kib(pid)?;

    assert!(
        bridge.0.try_wait()?.is_none(),
        "the bridge exited under the flood"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await?;
    assert!(health.status().is_success(), "healthz: {}", health.status());

    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = {
        let a = received(&peers);
        tokio::time::sleep(WINDOW).await;
        received(&peers) - a
    };
    // Memory: junk sockets the server has not closed yet go within its limits (a silent
    // one after 10 s); give it that long.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rss_after = rss_kib(pid)?;
    while rss_after as f64 > rss_before as f64 * 1.10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_after = rss_kib(pid)?;
    }

    eprintln!(
        "flood: {datagrams} datagrams from {SOURCES} addresses in {FLOOD:?}; {junk_clients} junk \
         WebSocket clients let in, {junk_refused} refused; media packets: {before} in the \
         {WINDOW:?} before, {during} in the {FLOOD:?} of the flood, {after} in the {WINDOW:?} \
         after; RSS KiB before {rss_before}, at the end of the flood {rss_peak}, after \
         {rss_after}"
    );
    assert!(before > 300, "the meeting was not flowing before: {before}");
    // Generous margins: the flood's senders share this machine's two cores with the
    // meeting's peers, so the rate during the flood says little beyond "it flowed".
    assert!(
        during * 2 >= before,
        "media during the flood {during} vs before {before}"
    );
    assert!(
        after * 2 >= before,
        "media after the flood {after} vs before {before}"
    );
    assert!(
        peers
            .iter()
            .all(|p| p.shared.connected.load(Ordering::Relaxed)),
        "a peer lost its session"
    );
    assert!(
        rss_after as f64 <= rss_before as f64 * 1.10,
        "RSS {rss_after} KiB after vs {rss_before} KiB before"
    );
    Ok(())
}
