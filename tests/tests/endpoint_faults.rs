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
use cauhop_tests::emulator::{LinkParams, Schedule};
use cauhop_tests::link::Link;
use cauhop_tests::peer::{Credentials, TestPeer};
use cauhop_tests::profiles::Profile;

const BLACKOUT_AT: Duration = Duration::from_secs(8);
const BLACKOUT_FOR: Duration = Duration::from_secs(10);

fn blackout_profile() -> Profile {
    let clear = LinkParams {
        delay_ms: 20,
        ..Default::default()
    };
    let dark = LinkParams {
        blackout: true,
        ..clear
    };
    let s = Schedule {
        steps: vec![
            (Duration::ZERO, clear),
            (BLACKOUT_AT, dark),
            (BLACKOUT_AT + BLACKOUT_FOR, clear),
        ],
    };
    Profile {
        name: "blackout-10s".into(),
        description: "a 3G cell that goes dark for 10 s".into(),
        up: s.clone(),
        down: s,
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_survives_a_10s_blackout_and_a_bridge_restart() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let mut bridge = Bridge::start_with(Options {
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

    // The agent's media goes through the emulated 3G link; signaling goes direct (the
    // blackout is of the media path, as when a 3G cell drops UDP but the TCP session
    // survives its retransmissions).
    let link = Link::start_profile(bridge.media_addr(), &blackout_profile(), 7).await?;
    let link_started = Wall::now();
    let mut cfg = AgentConfig {
        poll: Duration::from_millis(300),
        health_every: Duration::from_millis(500),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..AgentConfig::new(&bridge.url(""), &room.key)
    };
    cfg.media.media_via = Some(link.addr);
    cfg.media.loopback_only = true;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let status = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(cfg, status.clone(), rx));
    let snapshot = || status.lock().map(|s| s.clone()).unwrap_or_default();

    let w = watcher(&bridge, m.id, &watch_room.key).await?;
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
    let w = watcher(&bridge, m.id, &watch_room.key).await?;
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
