//! The room agent against a real bridge: it joins its room's meeting when the lobby opens
//! with no other input and leaves when the meeting closes; a revoked key is refused with
//! growing waits instead of hammering the bridge. (Media comes with the WebRTC engine.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as Wall};

use cauhop_endpoint::agent::{AgentConfig, AgentStatus, run};
use cauhop_signaling::{Options, room_of};
use cauhop_store::Instant;
use cauhop_store::model::*;
use cauhop_store::schedule::ScheduleConfig;
use cauhop_tests::bridge::Bridge;

fn fast(bridge: &Bridge, key: &str) -> AgentConfig {
    AgentConfig {
        poll: Duration::from_millis(300),
        health_every: Duration::from_millis(500),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..AgentConfig::new(&bridge.url(""), key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_follows_its_schedule_and_backs_off_on_a_revoked_key() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options {
        schedule: ScheduleConfig {
            lobby_before_secs: 1,
            warn_before_secs: 1,
            grace_secs: 1,
        },
        ..Options::default()
    })
    .await?;
    let store = &bridge.store;
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
    let start = Instant(Instant::now().0 + 3);
    let m = store
        .create_meeting(
            &NewMeeting {
                title: "Giao ban".into(),
                agenda: String::new(),
                starts_at: start,
                ends_at: start.plus(3),
                rrule: None,
                chair_site_id: p.id,
                roster: vec![],
            },
            None,
        )
        .await?;

    let (tx, rx) = tokio::sync::watch::channel(false);
    let status = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(fast(&bridge, &room.key), status.clone(), rx));
    let lobby = Wall::now() + Duration::from_secs_f64((start.0 - 1 - Instant::now().0) as f64);
    // In the room from the lobby on, never before it.
    let mut joined_at = None;
    let mut left_at = None;
    let t0 = Wall::now();
    while t0.elapsed() < Duration::from_secs(15) {
        let inside = !bridge.state.registry.members(&room_of(m.id)).is_empty();
        if inside && joined_at.is_none() {
            joined_at = Some(Wall::now());
        }
        if !inside && joined_at.is_some() {
            left_at = Some(Wall::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let joined_at = joined_at.ok_or_else(|| {
        anyhow::anyhow!(
            "the agent never joined: {:?}",
            status.lock().map(|s| s.clone())
        )
    })?;
    assert!(
        joined_at + Duration::from_millis(1100) >= lobby,
        "joined before the lobby opened"
    );
    let left_at = left_at.ok_or_else(|| anyhow::anyhow!("the agent did not leave at the end"))?;
    println!(
        "agent joined {:.1} s after the lobby opened, left {:.1} s after the start",
        joined_at.saturating_duration_since(lobby).as_secs_f64(),
        left_at
            .saturating_duration_since(lobby + Duration::from_secs(1))
            .as_secs_f64()
    );
    let rows = store.attendance(m.id).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].endpoint_id, Some(room.endpoint.id));
    assert_eq!(rows[0].display_name, "Phòng họp tỉnh");
    // Its health reports reached the bridge.
    let e = store.endpoint(room.endpoint.id).await?;
    assert!(e.last_seen.is_some() && e.health.is_some(), "{e:?}");

    // The key is revoked: the agent is refused and waits longer each time.
    store.revoke_endpoint(room.endpoint.id).await?;
    let t1 = Wall::now();
    while t1.elapsed() < Duration::from_secs(6)
        && status.lock().map(|s| s.key_refusals).unwrap_or(0) < 4
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = status.lock().map(|s| s.clone()).unwrap_or_default();
    println!(
        "revoked key: {} refusals in {:.1} s, waits {:?}",
        s.key_refusals,
        t1.elapsed().as_secs_f64(),
        s.waits
    );
    assert!(s.key_refusals >= 3 && s.state == "refused", "{s:?}");
    // Nominal waits double from 200 ms; with ±50 % jitter the third is always longer
    // than the first.
    let (first, last) = (s.waits[0], s.waits[s.waits.len() - 1]);
    assert!(last > first, "waits grow: {:?}", s.waits);
    assert!(
        s.key_refusals < 12,
        "no hammering: {} refusals in 6 s",
        s.key_refusals
    );
    let _ = tx.send(true);
    let _ = agent.await;
    Ok(())
}
