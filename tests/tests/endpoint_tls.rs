//! The room agent over HTTPS and WSS (rustls): it joins its meeting through a TLS front
//! whose certificate a CA of the province's own signed, when given that CA's file; it
//! cannot reach the same bridge without it (the certificate is not trusted); and it
//! refuses plain http:// to a bridge on another machine.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as Wall};

use cauhop_endpoint::agent::{AgentConfig, AgentStatus, run};
use cauhop_endpoint::settings::{FileSettings, Overrides, resolve};
use cauhop_signaling::{Options, room_of};
use cauhop_store::Instant;
use cauhop_store::model::*;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::tls_front::TlsFront;

fn config(url: &str, key: &str) -> AgentConfig {
    AgentConfig {
        poll: Duration::from_millis(300),
        health_every: Duration::from_millis(500),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(1),
        link_check: false,
        ..AgentConfig::new(url, key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_joins_over_https_with_the_provinces_ca_and_not_without() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let dir = tempfile::tempdir()?;
    let front = TlsFront::start(bridge.http, dir.path()).await?;
    let (room, m) = scheduled_room(&bridge.store).await?;

    // Without the province's CA: the certificate is refused, nothing joins.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let untrusting = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(
        config(&front.url, &room.key),
        untrusting.clone(),
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let _ = agent.await;
    let s = untrusting
        .lock()
        .map(|s| s.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(
        bridge.state.registry.members(&room_of(m.id)).is_empty(),
        "joined through an untrusted certificate"
    );
    let why = s.last_error.unwrap_or_default();
    eprintln!("without the CA: {why}");
    assert!(!why.is_empty(), "no error reported without the CA");

    // With it: the device API and the WebSocket both go over TLS, and the room joins.
    let joined = join_over(&bridge, &front.url, &room.key, &front.ca_file, m.id).await?;
    eprintln!("joined over HTTPS after {joined:?}");

    // Plain http:// to another machine is refused before anything is sent.
    let refused = resolve(
        FileSettings::default(),
        Overrides {
            bridge: Some("http://192.0.2.10:8080".into()),
            key: Some(room.key.clone()),
            ..Default::default()
        },
    )
    .expect_err("http:// to another machine");
    assert!(refused.to_string().contains("in clear"), "{refused}");
    Ok(())
}

/// A province site with a room endpoint, and a meeting of it that has started.
async fn scheduled_room(store: &cauhop_store::Store) -> anyhow::Result<(EndpointWithKey, Meeting)> {
    let p = store
        .create_site(&NewSite {
            code: "P".into(),
            name: "Tỉnh".into(),
            kind: SiteKind::Province,
            parent_id: None,
            down_kbps: 10_000,
            up_kbps: 10_000,
        })
        .await?;
    let room = store
        .create_endpoint(&NewEndpoint {
            site_id: p.id,
            name: "Phòng họp tỉnh".into(),
        })
        .await?;
    let start = Instant::now().plus(-30);
    let m = store
        .create_meeting(
            &NewMeeting {
                title: "Giao ban".into(),
                agenda: String::new(),
                starts_at: start,
                ends_at: start.plus(600),
                rrule: None,
                chair_site_id: p.id,
                roster: vec![],
            },
            None,
        )
        .await?;
    Ok((room, m))
}

/// Run the agent against `url` trusting `ca_file` until its room is in the meeting.
async fn join_over(
    bridge: &Bridge,
    url: &str,
    key: &str,
    ca_file: &std::path::Path,
    meeting: i64,
) -> anyhow::Result<std::time::Duration> {
    let mut cfg = config(url, key);
    cfg.tls = Some(cauhop_endpoint::tls::client_config(Some(ca_file))?);
    cfg.media.loopback_only = true;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let status = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(cfg, status.clone(), stop_rx));
    let t0 = Wall::now();
    let mut joined = false;
    while t0.elapsed() < Duration::from_secs(15) {
        if !bridge.state.registry.members(&room_of(meeting)).is_empty() {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = t0.elapsed();
    let _ = stop_tx.send(true);
    let _ = agent.await;
    anyhow::ensure!(
        joined,
        "the agent did not join over HTTPS: {:?}",
        status.lock().map(|s| s.clone())
    );
    Ok(took)
}

/// RTP packets the bridge received from the room in meeting `meeting`, waiting up to
/// `within` for 50 of them; and how long that took.
async fn media_at_bridge(
    bridge: &Bridge,
    meeting: i64,
    within: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let t0 = Wall::now();
    let mut media_in = 0;
    while t0.elapsed() < within && media_in < 50 {
        if let Some(p) = bridge.state.registry.members(&room_of(meeting)).first() {
            let id = p.id.clone();
            media_in = bridge
                .sfu
                .stats()
                .await?
                .peers
                .iter()
                .find(|s| s.participant == id)
                .map_or(0, |s| s.rtp_in);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((media_in, t0.elapsed()))
}

/// The bridge's own HTTPS on a loopback port, with the self-signed certificate it makes
/// on first run (in `dir`), and ICE over TCP on that port when `ice_tcp`: its address,
/// the certificate file, and the server task.
async fn builtin_https(
    bridge: &Bridge,
    dir: &std::path::Path,
    ice_tcp: bool,
) -> anyhow::Result<(
    std::net::SocketAddr,
    std::path::PathBuf,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    use cauhop_signaling::https::{Certificates, Source};
    let cert = dir.join("cauhop-tls.crt");
    let certs = Certificates::open(Source::SelfSigned {
        cert: cert.clone(),
        key: dir.join("cauhop-tls.key"),
        names: vec![],
    })?;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let sfu = if ice_tcp {
        bridge.sfu.offer_ice_tcp(addr.port()).await?;
        Some(bridge.sfu.clone())
    } else {
        None
    };
    let app = cauhop_signaling::app(bridge.state.clone());
    let server = tokio::spawn(async move {
        cauhop_signaling::https::serve(tcp, &certs, app, sfu, std::future::pending()).await
    });
    Ok((addr, cert, server))
}

/// The bridge's own HTTPS (issue 16) with the self-signed certificate it makes on first
/// run: a room agent given that certificate file as its CA joins through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_joins_the_bridges_own_https_given_its_self_signed_certificate()
-> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let dir = tempfile::tempdir()?;
    let (https, cert, server) = builtin_https(&bridge, dir.path(), false).await?;
    let url = format!("https://localhost:{}", https.port());
    let (room, m) = scheduled_room(&bridge.store).await?;
    let joined = join_over(&bridge, &url, &room.key, &cert, m.id).await?;
    eprintln!("joined the built-in HTTPS after {joined:?}");
    server.abort();
    Ok(())
}

/// A room whose network lets only web traffic out (issue 16): the agent carries its
/// media over TCP to the bridge's HTTPS port (`media_tcp`), where the bridge takes ICE
/// over TCP. Every UDP candidate of the bridge is rewritten to the agent's tunnel, so
/// media that reaches the bridge came over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_carries_its_media_over_tcp_to_the_https_port() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let dir = tempfile::tempdir()?;
    let (https, cert, server) = builtin_https(&bridge, dir.path(), true).await?;
    let (room, m) = scheduled_room(&bridge.store).await?;
    let url = format!("https://localhost:{}", https.port());
    let mut cfg = config(&url, &room.key);
    cfg.tls = Some(cauhop_endpoint::tls::client_config(Some(&cert))?);
    cfg.media.loopback_only = true;
    cfg.media.media_tcp = Some(https);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let status = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(cfg, status.clone(), stop_rx));
    let (media_in, took) = media_at_bridge(&bridge, m.id, Duration::from_secs(20)).await?;
    let _ = stop_tx.send(true);
    let _ = agent.await;
    server.abort();
    assert!(
        media_in >= 50,
        "the room's media did not reach the bridge over TCP ({media_in} packets): {:?}",
        status.lock().map(|s| s.clone())
    );
    eprintln!("the room's media over TCP after {took:?}");
    Ok(())
}

/// The same room left to find it out by itself: its UDP goes nowhere (sent into a port
/// nobody listens on), so its first sessions get no media; after two of them the agent
/// carries its media over TCP to the bridge's HTTPS port, and it reaches the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_turns_to_tcp_when_udp_never_gets_through() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let dir = tempfile::tempdir()?;
    let (https, cert, server) = builtin_https(&bridge, dir.path(), true).await?;
    let (room, m) = scheduled_room(&bridge.store).await?;
    let url = format!("https://localhost:{}", https.port());
    let mut cfg = config(&url, &room.key);
    cfg.tls = Some(cauhop_endpoint::tls::client_config(Some(&cert))?);
    cfg.media.loopback_only = true;
    // UDP into a port nobody listens on: as if the office's firewall dropped it.
    let nowhere = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    cfg.media.media_via = Some(nowhere);
    cfg.media.connect_timeout = Duration::from_secs(3);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let status = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(cfg, status.clone(), stop_rx));
    let (media_in, took) = media_at_bridge(&bridge, m.id, Duration::from_secs(40)).await?;
    let s = status
        .lock()
        .map(|s| s.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = stop_tx.send(true);
    let _ = agent.await;
    server.abort();
    assert_eq!(s.media_over, "tcp", "{s:?}");
    assert!(
        media_in >= 50,
        "no media over TCP after the switch ({media_in} packets): {s:?}"
    );
    eprintln!("media over TCP after {took:?} and {} rejoins", s.rejoins);
    Ok(())
}
