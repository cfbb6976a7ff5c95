//! A subscriber whose handshake takes seconds (a long path: a commune at the edge of a 3G
//! cell) must not be sent, once it connects, the media that piled up meanwhile. str0m
//! queues what it is given before DTLS is up and sends it all at once: on 3g-bad that was
//! up to 4.8 s of stale audio in one burst, which filled the link's queue. Every frame the
//! subscriber gets must be about as old as the path is long, no older.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cauhop_tests::bridge::Bridge;
use cauhop_tests::emulator::{LinkParams, Schedule};
use cauhop_tests::link::Link;
use cauhop_tests::profiles::Profile;
use cauhop_tests::sim_peer::{SimConfig, SimPeer, epoch};
use cauhop_tests::wait_for;

/// One way; ICE and the DTLS handshake then take several seconds.
const PATH: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handshake_is_not_sent_a_burst_of_stale_audio() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start().await?;
    let url = bridge.ws_url();
    let slow = LinkParams {
        delay_ms: PATH.as_millis() as u32,
        ..Default::default()
    };
    let path = Profile {
        name: "long-path".into(),
        description: "700 ms each way, no loss".into(),
        up: Schedule::constant(slow),
        down: Schedule::constant(slow),
    };
    let link = Arc::new(Link::start_profile(bridge.media_addr(), &path, 5).await?);
    let mut cfg = SimConfig::new("stale", "Tỉnh");
    cfg.audio_level = 30;
    let speaker = SimPeer::join(&url, cfg).await?;
    let mut cfg = SimConfig::watcher("stale", "Xã");
    cfg.link = Some(link.clone());
    let joining = Instant::now();
    let commune = SimPeer::join(&url, cfg).await?;
    let handshake = joining.elapsed();
    wait_for(
        "100 audio frames at the commune",
        Duration::from_secs(20),
        || commune.from(&speaker).audio.len() >= 100,
    )
    .await?;
    let ages: Vec<Duration> = commune
        .from(&speaker)
        .audio
        .iter()
        .map(|a| {
            a.at.saturating_duration_since(epoch())
                .saturating_sub(Duration::from_micros(a.sent_us))
        })
        .collect();
    let worst = ages.iter().max().copied().unwrap_or_default();
    println!(
        "connected after {:.1} s; {} frames, the oldest {} ms old on a {} ms path",
        handshake.as_secs_f64(),
        ages.len(),
        worst.as_millis(),
        PATH.as_millis()
    );
    // The test means something only if the speaker talked for a while before the
    // commune's session was up.
    assert!(
        handshake >= 3 * PATH,
        "the handshake took only {handshake:?}"
    );
    assert!(
        worst < PATH + Duration::from_millis(500),
        "a frame arrived {} ms old on a {} ms path: media queued before the handshake",
        worst.as_millis(),
        PATH.as_millis()
    );
    Ok(())
}
