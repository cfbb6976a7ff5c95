//! The room agent through faults, with real WebRTC over real UDP: its media path is cut
//! for 10 s by the link emulator mid-meeting, then the bridge restarts. Each time the agent
//! must be back in the meeting with media reaching another room, on its own; the recovery
//! times are printed (the issue asks for ≤ 5 s after the link returns).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as Wall};

use cauhop_endpoint::agent::{AgentConfig, AgentStatus, run};
use cauhop_signaling::Options;
use cauhop_store::Instant;
use cauhop_store::model::*;
use cauhop_store::schedule::ScheduleConfig;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::link::Link;
use cauhop_tests::peer::{Credentials, TestPeer};
use cauhop_tests::profiles::{Profile, blackout};

const BLACKOUT_AT: Duration = Duration::from_secs(8);
const BLACKOUT_FOR: Duration = Duration::from_secs(10);

fn blackout_profile() -> Profile {
    blackout(BLACKOUT_AT, BLACKOUT_FOR)
}

/// Audio packets the watcher has received from anyone but itself (the agent is the only
/// other publisher; a rejoined agent has a new participant id).
fn audio_from_agent(w: &TestPeer) -> usize {
    w.shared
        .received
        .lock()
        .map(|r| r.values().map(|p| p.audio.len()).sum())
        .unwrap_or(0)
}

/// Join as the watching room, retrying while the bridge is (re)starting.
async fn watcher(bridge: &Bridge, meeting: i64, key: &str) -> anyhow::Result<TestPeer> {
    let t0 = Wall::now();
    loop {
        match TestPeer::join_with(
            &bridge.ws_url(),
            &meeting.to_string(),
            "Phòng theo dõi",
            Credentials::DeviceKey(key.to_owned()),
            None,
        )
        .await
        {
            Ok(p) => return Ok(p),
            Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                tracing::debug!("watcher not in yet: {e:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Wait until the watcher's count from the agent grows past `from`; the time it did.
async fn first_growth(w: &TestPeer, from: usize, within: Duration) -> Option<Wall> {
    let t0 = Wall::now();
    while t0.elapsed() < within {
        if audio_from_agent(w) > from {
            return Some(Wall::now());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// A bridge, a commune with two rooms (the agent's and a watching one), and a meeting
/// that opens now and lasts two minutes.
async fn setup() -> anyhow::Result<(Bridge, i64, String, String)> {
    let bridge = Bridge::start_with(Options {
        schedule: ScheduleConfig {
            lobby_before_secs: 1,
            warn_before_secs: 10,
            grace_secs: 1,
        },
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let site = store
        .create_site(&NewSite {
            code: "X".into(),
            name: "Xã Bản Khoang".into(),
            kind: SiteKind::Province,
            parent_id: None,
            down_kbps: 384,
            up_kbps: 128,
        })
        .await?;
    let room = store
        .create_endpoint(&NewEndpoint {
            site_id: site.id,
            name: "Phòng họp xã".into(),
        })
        .await?;
    let watch_room = store
        .create_endpoint(&NewEndpoint {
            site_id: site.id,
            name: "Phòng theo dõi".into(),
        })
        .await?;
    let start = Instant(Instant::now().0 + 1);
    let m = store
        .create_meeting(
            &NewMeeting {
                title: "Họp trực tuyến".into(),
                agenda: String::new(),
                starts_at: start,
                ends_at: start.plus(120),
                rrule: None,
                chair_site_id: site.id,
                roster: vec![],
            },
            None,
        )
        .await?;

    Ok((bridge, m.id, room.key, watch_room.key))
}

fn agent_config(bridge: &Bridge, key: &str, via: std::net::SocketAddr) -> AgentConfig {
    let mut cfg = AgentConfig {
        poll: Duration::from_millis(300),
        health_every: Duration::from_millis(500),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        // The emulated link relays one peer's socket; the check uses its own.
        link_check: false,
        ..AgentConfig::new(&bridge.url(""), key)
    };
    cfg.media.media_via = Some(via);
    cfg.media.loopback_only = true;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_survives_a_10s_blackout_and_a_bridge_restart() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let (mut bridge, meeting, room_key, watch_key) = setup().await?;

    // The agent's media goes through the emulated 3G link; signaling goes direct (the
    // blackout is of the media path, as when a 3G cell drops UDP but the TCP session
    // survives its retransmissions).
    let link = Link::start_profile(bridge.media_addr(), &blackout_profile(), 7).await?;
    let link_started = Wall::now();
    let cfg = agent_config(&bridge, &room_key, link.addr);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let status = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(cfg, status.clone(), rx));
    let snapshot = || status.lock().map(|s| s.clone()).unwrap_or_default();

    let w = watcher(&bridge, meeting, &watch_key).await?;
    let flowing = first_growth(&w, 10, Duration::from_secs(8)).await;
    assert!(
        flowing.is_some(),
        "agent media never reached the watcher: {:?}",
        snapshot()
    );
    println!(
        "agent media flowing {:.1} s after the link started",
        link_started.elapsed().as_secs_f64()
    );

    // The blackout: nothing gets through, then it must come back by itself.
    let dark_from = link_started + BLACKOUT_AT;
    let light_from = dark_from + BLACKOUT_FOR;
    tokio::time::sleep_until((dark_from + Duration::from_millis(700)).into()).await;
    let during = audio_from_agent(&w);
    tokio::time::sleep_until((light_from - Duration::from_millis(300)).into()).await;
    assert!(
        audio_from_agent(&w) <= during + 2,
        "the blackout let media through"
    );
    let before = audio_from_agent(&w);
    let back = first_growth(&w, before, Duration::from_secs(20))
        .await
        .ok_or_else(|| {
            anyhow::anyhow!("no media 20 s after the link returned: {:?}", snapshot())
        })?;
    let blackout_recovery = back.saturating_duration_since(light_from);
    let s = snapshot();
    println!(
        "blackout of {} s: agent media back {:.2} s after the link returned (state {}, {} ICE restarts, {} rejoins; link dropped {} up / {} down)",
        BLACKOUT_FOR.as_secs(),
        blackout_recovery.as_secs_f64(),
        s.state,
        s.ice_restarts,
        s.rejoins,
        link.stats
            .up_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        link.stats
            .down_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(
        blackout_recovery <= Duration::from_secs(5),
        "back within 5 s of the link returning: {blackout_recovery:?}"
    );

    // The bridge restarts (1 s down). The agent rejoins on its own.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(w);
    let down_at = Wall::now();
    bridge.restart(Duration::from_secs(1)).await?;
    let up_at = Wall::now();
    let w = watcher(&bridge, meeting, &watch_key).await?;
    let back = first_growth(&w, 0, Duration::from_secs(20))
        .await
        .ok_or_else(|| anyhow::anyhow!("no media 20 s after the restart: {:?}", snapshot()))?;
    let s = snapshot();
    println!(
        "bridge restart (down {:.1} s): agent media at a new watcher {:.2} s after the bridge was back ({} rejoins, state {})",
        up_at.duration_since(down_at).as_secs_f64(),
        back.saturating_duration_since(up_at).as_secs_f64(),
        s.rejoins,
        s.state
    );
    assert!(s.rejoins >= 1, "the agent rejoined: {s:?}");

    let _ = stop.send(true);
    let _ = agent.await;
    Ok(())
}

/// A blackout longer than the agent's patience: its ICE fails, it restarts ICE over the
/// still-open signaling session, and the bridge (which keeps a silent session for 30 s)
/// accepts the new credentials; media comes back in the same session. The agent's failure
/// timeout is shortened to 3 s (15 s in service) to keep the test short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restarts_ice_when_its_path_fails() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let (bridge, meeting, room_key, watch_key) = setup().await?;
    let (at, length) = (Duration::from_secs(4), Duration::from_secs(6));
    let link = Link::start_profile(bridge.media_addr(), &blackout(at, length), 3).await?;
    let link_started = Wall::now();
    let mut cfg = agent_config(&bridge, &room_key, link.addr);
    cfg.media.ice_disconnected_after = Duration::from_secs(2);
    cfg.media.ice_failed_after = Duration::from_secs(3);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let status = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(cfg, status.clone(), rx));
    let snapshot = || status.lock().map(|s| s.clone()).unwrap_or_default();
    let w = watcher(&bridge, meeting, &watch_key).await?;
    assert!(
        first_growth(&w, 10, Duration::from_secs(4)).await.is_some(),
        "agent media never reached the watcher: {:?}",
        snapshot()
    );
    let light_from = link_started + at + length;
    tokio::time::sleep_until((light_from - Duration::from_millis(300)).into()).await;
    let before = audio_from_agent(&w);
    let back = first_growth(&w, before, Duration::from_secs(15))
        .await
        .ok_or_else(|| anyhow::anyhow!("no media after the link returned: {:?}", snapshot()))?;
    // Let the status catch up with the session's view.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = snapshot();
    let participants = w.shared.received.lock().map(|r| r.len()).unwrap_or(0);
    println!(
        "blackout of {} s with a 3 s ICE failure timeout: media back {:.2} s after the link returned ({} ICE restarts, {} rejoins, state {})",
        length.as_secs(),
        back.saturating_duration_since(light_from).as_secs_f64(),
        s.ice_restarts,
        s.rejoins,
        s.state
    );
    assert_eq!(s.rejoins, 0, "recovered inside the session: {s:?}");
    assert!(s.ice_restarts >= 1, "by an ICE restart: {s:?}");
    assert_eq!(participants, 1, "the same participant, not a new one");
    assert!(
        back.saturating_duration_since(light_from) <= Duration::from_secs(5),
        "back within 5 s"
    );
    let _ = stop.send(true);
    let _ = agent.await;
    Ok(())
}
