//! What a subscriber's client says it shows decides what it is sent (`view` messages:
//! tile sizes, audio only, hidden page), the room is told who speaks (RFC 6464 levels),
//! and a publisher's lossy uplink is graded for everyone's tile.

use std::sync::Arc;
use std::time::Duration;

use cauhop_protocol::{ClientMsg, ServerMsg, TileView};
use cauhop_tests::bridge::Bridge;
use cauhop_tests::link::{Link, LinkProfile};
use cauhop_tests::sim_peer::{SimConfig, SimPeer};
use cauhop_tests::wait_for;

fn view(tiles: Vec<(String, u16)>, audio_only: bool, hidden: bool) -> ClientMsg {
    ClientMsg::View {
        audio_only,
        low_data: false,
        hidden,
        tiles: tiles
            .into_iter()
            .map(|(participant, height)| TileView {
                participant,
                height,
            })
            .collect(),
        pinned: None,
        slots: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_speaker_and_uplink_grade_reach_the_right_places() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start().await?;
    let url = bridge.ws_url();
    // The speaker publishes three layers and talks (-30 dBov); a quiet site publishes
    // through a lossy uplink.
    let mut cfg = SimConfig::new("view", "Tỉnh");
    cfg.audio_level = 30;
    // At a third of Chrome's rates: what is tested is which layer a view asks for, and
    // a debug build's peers on a loaded two-core machine carry about 1 Mbit/s (str0m's
    // probes to 2-4 Mbit/s read loss there), so 720p at 1.2 Mbit/s came back after a
    // pause in some runs and not in others (about one run in four failed at "720p again").
    for l in &mut cfg.layers {
        l.kbps /= 3;
    }
    let speaker = SimPeer::join(&url, cfg).await?;
    let lossy = Arc::new(
        Link::start(
            bridge.media_addr(),
            LinkProfile {
                loss_up: 0.15,
                loss_down: 0.0,
                seed: 3,
            },
        )
        .await?,
    );
    let mut cfg = SimConfig::new("view", "Xã xa");
    cfg.audio_level = 127;
    cfg.layers.truncate(1);
    cfg.link = Some(lossy.clone());
    let quiet = SimPeer::join(&url, cfg).await?;
    let watcher = SimPeer::join(&url, SimConfig::watcher("view", "Sở")).await?;
    let window = Duration::from_millis(800);

    // No view yet: the speaker's largest layer on loopback.
    wait_for("the 720p layer", Duration::from_secs(15), || {
        watcher.recent_layer(&speaker, window) == Some(2)
    })
    .await?;
    // Who speaks is announced.
    let speaker_id = speaker.id.clone();
    wait_for("the speaker announced", Duration::from_secs(5), || {
        watcher
            .messages()
            .iter()
            .any(|m| matches!(m, ServerMsg::Speaker { participant: Some(p) } if *p == speaker_id))
    })
    .await?;

    // A 200-pixel tile: nothing taller than 180p is sent.
    watcher.send(view(
        vec![(speaker.id.clone(), 200), (quiet.id.clone(), 200)],
        false,
        false,
    ))?;
    wait_for("180p for a small tile", Duration::from_secs(5), || {
        watcher.recent_layer(&speaker, window) == Some(0)
    })
    .await?;
    // Audio only by choice: no video, and no "your link is weak" notice for it.
    watcher.send(view(vec![], true, false))?;
    wait_for("no video when audio only", Duration::from_secs(5), || {
        watcher.recent_layer(&speaker, window).is_none()
    })
    .await?;
    let audio = watcher.from(&speaker).audio.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        watcher.from(&speaker).audio.len() >= audio + 40,
        "audio goes on"
    );
    assert!(
        !watcher
            .messages()
            .iter()
            .any(|m| matches!(m, ServerMsg::Bandwidth { .. })),
        "a chosen audio-only is not a weak-link notice"
    );
    // A hidden page gets no video either; visible again with a large tile, 720p again.
    watcher.send(view(vec![(speaker.id.clone(), 1080)], false, true))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(watcher.recent_layer(&speaker, window).is_none());
    watcher.send(view(vec![(speaker.id.clone(), 1080)], false, false))?;
    // Back from a pause the picture restarts at the bottom and climbs a layer per
    // 4 s dwell while the estimate recovers: 8 s was too tight for a loaded run.
    wait_for("720p again", Duration::from_secs(15), || {
        watcher.recent_layer(&speaker, window) == Some(2)
    })
    .await?;
    // The quiet site is silent: its audio is not forwarded at all.
    assert!(
        watcher.from(&quiet).audio.len() < 20,
        "silent audio forwarded: {}",
        watcher.from(&quiet).audio.len()
    );
    // Its 15 % uplink loss shows on its tile, for everyone.
    let quiet_id = quiet.id.clone();
    wait_for("the lossy uplink graded", Duration::from_secs(10), || {
        watcher.messages().iter().any(|m| {
            matches!(m, ServerMsg::LinkQuality { participant, quality }
                if *participant == quiet_id && quality == "bad")
        })
    })
    .await?;
    // Nonsense in a view is refused with a reason; the session goes on.
    watcher.send(view(vec![("nobody".into(), 100)], false, false))?;
    wait_for("the refusal", Duration::from_secs(3), || {
        watcher.messages().iter().any(|m| {
            matches!(m, ServerMsg::Error { message, .. } if message.contains("not a participant id"))
        })
    })
    .await?;
    Ok(())
}
