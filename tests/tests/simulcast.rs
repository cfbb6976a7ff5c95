//! Issue 4's scenario, with real peers through the link emulator: a publisher sends three
//! simulcast layers (str0m, as Chrome does); a subscriber on fibre gets the 720p layer
//! while, at the same time, a subscriber on a commune's 3G settles on the 180p layer and
//! keeps its audio. When the commune's link steps down to 100 kbit/s it is told it gets
//! audio only, and the video stops while the audio goes on; when the link recovers the
//! video comes back by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cauhop_protocol::ServerMsg;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::emulator::{LinkParams, Schedule};
use cauhop_tests::link::Link;
use cauhop_tests::profiles::{Profile, profile};
use cauhop_tests::sim_peer::{SimConfig, SimPeer};
use cauhop_tests::wait_for;

fn bandwidth_notices(sub: &SimPeer) -> Vec<bool> {
    sub.messages()
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Bandwidth { audio_only, .. } => Some(audio_only),
            _ => None,
        })
        .collect()
}

/// 3g-commune, whose downlink steps to 100 kbit/s at `drop_at` and back at `back_at`.
fn stepping_commune(drop_at: Duration, back_at: Duration) -> anyhow::Result<Profile> {
    let mut p = profile("3g-commune")?;
    let normal = *p.down.at(Duration::ZERO);
    let starved = LinkParams {
        rate_kbps: 100,
        ..normal
    };
    p.down = Schedule {
        steps: vec![
            (Duration::ZERO, normal),
            (drop_at, starved),
            (back_at, normal),
        ],
    };
    Ok(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscriber_gets_the_layer_its_link_carries() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start().await?;
    let url = bridge.ws_url();
    let (drop_at, back_at) = (Duration::from_secs(20), Duration::from_secs(32));
    let fibre = Arc::new(Link::start_profile(bridge.media_addr(), &profile("fibre")?, 1).await?);
    let g3 = Arc::new(
        Link::start_profile(bridge.media_addr(), &stepping_commune(drop_at, back_at)?, 2).await?,
    );
    let t0 = Instant::now();
    // The 720p layer lighter than Chrome's 1.2 Mbit/s: debug-built peers on two loaded
    // cores carry about 1.3 Mbit/s, and at Chrome's rate the hall fell back to 360p in
    // a CI run (its estimate read 1.33 Mbit/s where 720p needs 1.55 with headroom).
    // What is tested, the commune on 180p and the hall on 720p at once, is unchanged:
    // 360p (500 kbit/s) still does not fit the commune's 384 kbit/s.
    let mut cfg = SimConfig::new("simulcast", "Tỉnh");
    cfg.layers[2].kbps = 700;
    let publisher = SimPeer::join(&url, cfg).await?;
    let mut cfg = SimConfig::watcher("simulcast", "Huyện");
    cfg.link = Some(fibre.clone());
    let hall = SimPeer::join(&url, cfg).await?;
    let mut cfg = SimConfig::watcher("simulcast", "Xã");
    cfg.link = Some(g3.clone());
    let commune = SimPeer::join(&url, cfg).await?;

    // The commune's estimate and allocation over time, printed at the end.
    let sampler = {
        let sfu = bridge.sfu.clone();
        let who = commune.id.clone();
        tokio::spawn(async move {
            let mut rows = Vec::new();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Ok(st) = sfu.stats().await else { break };
                if let Some(p) = st.peers.iter().find(|p| p.participant == who) {
                    rows.push(format!(
                        "{:5.1} s  estimate {:>5} (raw {:>5}{}) kbit/s  allocated {:>4} kbit/s  {}",
                        t0.elapsed().as_secs_f64(),
                        p.bwe_kbps.unwrap_or(0),
                        p.bwe_raw_kbps.unwrap_or(0),
                        if p.congested { ", congested" } else { "" },
                        p.allocated_kbps,
                        if p.audio_only {
                            "audio only".to_string()
                        } else {
                            format!("{:?}", p.forwarding.first().and_then(|f| f.height))
                        }
                    ));
                }
                if rows.len() > 200 {
                    break;
                }
                println!("{}", rows[rows.len() - 1]);
            }
        })
    };
    let window = Duration::from_millis(1500);
    // Both settle before the commune's link drops.
    wait_for("fibre on the 720p layer", drop_at, || {
        hall.recent_layer(&publisher, window) == Some(2)
    })
    .await?;
    let fibre_at = t0.elapsed();
    wait_for("the commune on the 180p layer", drop_at, || {
        commune.recent_layer(&publisher, window) == Some(0)
    })
    .await?;
    // The commune may spend a moment on audio only while the first keyframes inflate the
    // layer's price, and the hall a moment on 360p when its first measured estimate
    // replaces str0m's starting guess; both must hold at once before the drop.
    for _ in 0..40 {
        let st = bridge.sfu.stats().await?;
        let height = |id: &str| {
            st.peers
                .iter()
                .find(|p| p.participant == id)
                .and_then(|p| p.forwarding.first().and_then(|f| f.height))
        };
        if height(&commune.id) == Some(180) && height(&hall.id) == Some(720) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stats = bridge.sfu.stats().await?;
    for p in &stats.peers {
        println!(
            "{}: estimate {:?} kbit/s, allocated {} kbit/s, {:?}",
            p.participant, p.bwe_kbps, p.allocated_kbps, p.forwarding
        );
    }
    let fwd = |id: &str| {
        stats
            .peers
            .iter()
            .find(|p| p.participant == id)
            .map(|p| p.forwarding.clone())
            .unwrap_or_default()
    };
    assert_eq!(fwd(&hall.id)[0].rid.as_deref(), Some("f"));
    assert_eq!(fwd(&hall.id)[0].height, Some(720));
    assert_eq!(fwd(&commune.id)[0].height, Some(180));
    // Until the drop the commune stays on the low layer (never a larger one) with its
    // audio, and fibre on the large one.
    let until = drop_at.saturating_sub(t0.elapsed() + Duration::from_secs(1));
    let settled = Instant::now();
    tokio::time::sleep(until).await;
    let layers_since = |sub: &SimPeer| -> Vec<u8> {
        sub.from(&publisher)
            .video
            .iter()
            .filter(|v| v.at >= settled)
            .map(|v| v.layer)
            .collect()
    };
    let c = layers_since(&commune);
    let on_low = c.iter().filter(|l| **l == 0).count();
    println!(
        "commune before the drop: {on_low} of {} video packets on 180p",
        c.len()
    );
    assert!(c.iter().all(|l| *l == 0), "the commune got a larger layer");
    assert!(
        on_low >= 100,
        "the commune's video stalled: {on_low} packets"
    );
    assert!(layers_since(&hall).iter().rev().take(100).all(|l| *l == 2));
    assert!(commune.recent_audio(&publisher, Duration::from_secs(1)) >= 40);
    println!("fibre reached 720p at {:.1} s", fibre_at.as_secs_f64());

    // 100 kbit/s: audio only, said so, and the audio goes on.
    let before_drop = bandwidth_notices(&commune).len();
    wait_for("an audio-only notice", Duration::from_secs(6), || {
        bandwidth_notices(&commune).last() == Some(&true)
    })
    .await?;
    let audio_only_at = t0.elapsed();
    // What was already queued (the link's 500 ms buffer, str0m's pacer now pacing at
    // the lowered estimate, resends asked for before the switch) drains in ~2 s.
    let drained = wait_for("the video to stop", Duration::from_secs(6), || {
        commune
            .recent_layer(&publisher, Duration::from_secs(1))
            .is_none()
    })
    .await;
    let now_us = cauhop_tests::sim_peer::epoch().elapsed().as_micros() as u64;
    for v in commune.from(&publisher).video.iter().rev().take(5) {
        println!(
            "late video: frame {} part {}/{} sent {} ms ago, arrived {} ms ago",
            v.frame,
            v.part,
            v.parts,
            (now_us - v.sent_us) / 1000,
            v.at.elapsed().as_millis()
        );
    }
    drained?;
    println!(
        "video stopped {:.1} s after the audio-only notice",
        (t0.elapsed() - audio_only_at).as_secs_f64() - 1.0
    );
    let audio = commune.recent_audio(&publisher, Duration::from_secs(2));
    assert!(audio >= 85, "{audio} audio packets in 2 s on 100 kbit/s");
    let red = commune
        .shared
        .red_received
        .load(std::sync::atomic::Ordering::Relaxed);
    println!("RED packets to the commune so far: {red}");
    // The hall did not notice: its video kept flowing, on 720p nearly all the time (its
    // own estimate on a loaded CI machine may dip to 360p for a moment).
    let around_drop: Vec<u8> = hall
        .from(&publisher)
        .video
        .iter()
        .filter(|v| v.at >= settled)
        .map(|v| v.layer)
        .collect();
    let top = around_drop.iter().filter(|l| **l == 2).count();
    println!(
        "fibre since both settled (through the drop): {top} of {} video packets on 720p",
        around_drop.len()
    );
    assert!(top * 10 >= around_drop.len() * 8, "the hall lost its 720p");
    assert!(hall.recent_layer(&publisher, window).is_some());

    // Back to 384 kbit/s: video returns by itself.
    wait_for(
        "video back after the link recovered",
        Duration::from_secs(25),
        || {
            bandwidth_notices(&commune).last() == Some(&false)
                && commune.recent_layer(&publisher, window) == Some(0)
        },
    )
    .await?;
    let back = t0.elapsed();
    println!("bandwidth notices to the commune before its link dropped: {before_drop}");
    println!(
        "audio only at {:.1} s (link dropped at {:.0} s); video back at {:.1} s (link back at {:.0} s)",
        audio_only_at.as_secs_f64(),
        drop_at.as_secs_f64(),
        back.as_secs_f64(),
        back_at.as_secs_f64()
    );
    assert_eq!(
        hall.shared
            .own_received
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    sampler.abort();
    Ok(())
}
