//! The room agent against a real bridge: it joins its room's meeting when the lobby opens
//! with no other input, publishes audio and video that another participant receives,
//! plays what it receives to local RTP ports, and leaves when the meeting closes; a
//! revoked key is refused with growing waits instead of hammering the bridge.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as Wall};

use cauhop_endpoint::agent::{AgentConfig, AgentStatus, run};
use cauhop_signaling::{Options, room_of};
use cauhop_store::Instant;
use cauhop_store::model::*;
use cauhop_store::schedule::ScheduleConfig;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::peer::{Credentials, TestPeer};

fn fast(bridge: &Bridge, key: &str) -> AgentConfig {
    AgentConfig {
        poll: Duration::from_millis(300),
        health_every: Duration::from_millis(500),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        check_plan: cauhop_endpoint::check::Plan::quick(),
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
    let other_room = store
        .create_endpoint(&NewEndpoint {
            site_id: p.id,
            name: "Phòng họp 2".into(),
        })
        .await?;
    let third_room = store
        .create_endpoint(&NewEndpoint {
            site_id: p.id,
            name: "Phòng họp 3".into(),
        })
        .await?;
    let start = Instant(Instant::now().0 + 3);
    let m = store
        .create_meeting(
            &NewMeeting {
                title: "Giao ban".into(),
                agenda: String::new(),
                starts_at: start,
                ends_at: start.plus(6),
                rrule: None,
                chair_site_id: p.id,
                roster: vec![],
            },
            None,
        )
        .await?;

    // The agent plays what it receives to local ports, as it would to a player. A second
    // agent in another room sends real Opus and VP8, so the mix is of decodable audio.
    let mut cfg = fast(&bridge, &room.key);
    let played = player(&mut cfg).await?;
    let mut cfg3 = fast(&bridge, &third_room.key);
    let played3 = player(&mut cfg3).await?;
    let (tx3, rx3) = tokio::sync::watch::channel(false);
    let agent3 = tokio::spawn(run(cfg3, Arc::new(Mutex::new(AgentStatus::default())), rx3));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let status = Arc::new(Mutex::new(AgentStatus::default()));
    let agent = tokio::spawn(run(cfg, status.clone(), rx));
    let lobby = Wall::now() + Duration::from_secs_f64((start.0 - 1 - Instant::now().0) as f64);
    // In the room from the lobby on, never before it.
    let mut joined_at = None;
    let mut left_at = None;
    let mut other: Option<TestPeer> = None;
    let seen_media: Mutex<Option<serde_json::Value>> = Mutex::new(None);
    let t0 = Wall::now();
    while t0.elapsed() < Duration::from_secs(20) {
        let members = bridge.state.registry.members(&room_of(m.id));
        let inside = !members.is_empty();
        if inside && joined_at.is_none() {
            joined_at = Some(Wall::now());
            // A second room joins with its own key and watches what the agent sends.
            other = Some(
                TestPeer::join_with(
                    &bridge.ws_url(),
                    &m.id.to_string(),
                    "Phòng họp 2",
                    Credentials::DeviceKey(other_room.key.clone()),
                    None,
                )
                .await?,
            );
        }
        if let Ok(e) = store.endpoint(room.endpoint.id).await
            && let Some(h) = e.health
            && h["media"]["send_kbps"].as_u64().unwrap_or(0) > 0
            && h["link_check"]["verdict"].is_string()
        {
            *seen_media.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
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
    // What the agent published reached the other room: Opus, and VP8 from a keyframe on.
    let other = other.ok_or_else(|| anyhow::anyhow!("second room never joined"))?;
    let me = status
        .lock()
        .ok()
        .and_then(|s| s.participant.clone())
        .ok_or_else(|| anyhow::anyhow!("the agent has no participant id"))?;
    let got = other.from(&me);
    let (a, v) = (&got.audio, &got.video);
    println!(
        "the other room got {} audio and {} video packets from the agent; the agent played {:?} (audio, video) packets",
        a.len(),
        v.len(),
        played.lock().map(|p| (p.0, p.1)).unwrap_or_default()
    );
    // The other agent decoded and mixed this one's Opus for its loudspeaker.
    let (pa3, _, _) = played3
        .lock()
        .map(|p| (p.0, p.1, p.2.len()))
        .unwrap_or_default();
    println!("the second agent played {pa3} mixed audio packets");
    assert!(pa3 >= 50, "the second agent's mix: {pa3}");
    let _ = tx3.send(true);
    let _ = agent3.await;
    assert!(a.len() >= 50, "audio from the agent: {}", a.len());
    assert!(v.len() >= 20, "video from the agent: {}", v.len());
    // The first VP8 packet forwarded starts a keyframe (descriptor S bit, then P bit 0).
    let first = &v[0];
    assert!(
        first[0] & 0x10 != 0 && first[vp8_descriptor_len(first)] & 1 == 0,
        "starts on a keyframe"
    );
    let (pa, pv, ssrcs) = played
        .lock()
        .map(|p| (p.0, p.1, p.2.len()))
        .unwrap_or_default();
    assert!(pa >= 50 && pv >= 50, "played audio {pa}, video {pv}");
    assert_eq!(ssrcs, 1, "the room's speaker gets one mixed stream");
    println!(
        "agent joined {:.1} s after the lobby opened, left {:.1} s after the start",
        joined_at.saturating_duration_since(lobby).as_secs_f64(),
        left_at
            .saturating_duration_since(lobby + Duration::from_secs(1))
            .as_secs_f64()
    );
    let rows = store.attendance(m.id).await?;
    let mine: Vec<_> = rows
        .iter()
        .filter(|r| r.endpoint_id == Some(room.endpoint.id))
        .collect();
    assert_eq!(mine.len(), 1, "{rows:?}");
    assert_eq!(mine[0].display_name, "Phòng họp tỉnh");
    assert!(mine[0].left_at.is_some());
    // Its health reports reached the bridge, with media figures from the meeting.
    let e = store.endpoint(room.endpoint.id).await?;
    assert!(e.last_seen.is_some() && e.health.is_some(), "{e:?}");
    println!(
        "health report in the meeting: {}",
        seen_media
            .lock()
            .map(|s| s.clone().unwrap_or_default())
            .unwrap_or_default()
    );
    let seen = seen_media
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default()
        .ok_or_else(|| anyhow::anyhow!("no health report with media figures and a link check"))?;
    // The link check ran before the meeting, on loopback: go.
    assert_eq!(seen["link_check"]["verdict"], "go", "{seen}");

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

/// Length of a VP8 RTP payload descriptor (RFC 7741 §4.2).
fn vp8_descriptor_len(b: &[u8]) -> usize {
    if b[0] & 0x80 == 0 {
        return 1;
    }
    let x = b[1];
    let mut i = 2;
    if x & 0x80 != 0 {
        i += if b[i] & 0x80 != 0 { 2 } else { 1 };
    }
    if x & 0x40 != 0 {
        i += 1;
    }
    if x & 0x30 != 0 {
        i += 1;
    }
    i
}

type Played = Arc<Mutex<(u32, u32, std::collections::HashSet<u32>)>>;

/// Local "player" ports for an agent: counts the RTP it plays, audio SSRCs apart.
async fn player(cfg: &mut AgentConfig) -> anyhow::Result<Played> {
    let audio_out = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let video_out = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    cfg.media.audio_out = Some(audio_out.local_addr()?);
    cfg.media.video_out = Some(video_out.local_addr()?);
    let played: Played = Arc::new(Mutex::new((0, 0, std::collections::HashSet::new())));
    for (sock, video) in [(audio_out, false), (video_out, true)] {
        let played = played.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok(n) = sock.recv(&mut buf).await {
                // RTP version 2 with a payload.
                if n > 12 && buf[0] >> 6 == 2 {
                    let mut p = played.lock().unwrap_or_else(|e| e.into_inner());
                    if video {
                        p.1 += 1
                    } else {
                        p.0 += 1;
                        // The mix: one stream, Opus payload type.
                        p.2.insert(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
                        assert_eq!(buf[1] & 0x7f, 111);
                    }
                }
            }
        });
    }
    Ok(played)
}
