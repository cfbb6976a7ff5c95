//! 10 % random loss in both directions on one peer's link: video still recovers through
//! NACK and retransmission (counted), and through keyframes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cauhop_tests::bridge::Bridge;
use cauhop_tests::link::{Link, LinkProfile};
use cauhop_tests::peer::TestPeer;
use cauhop_tests::{init_log, wait_for};

/// The RTX payload type the SFU offered for video, from the SDP it sent.
fn rtx_pt(sdp: &str) -> Option<u8> {
    sdp.lines()
        .find(|l| l.starts_with("a=rtpmap:") && l.contains(" rtx/90000"))
        .and_then(|l| l["a=rtpmap:".len()..].split(' ').next())
        .and_then(|pt| pt.parse().ok())
}

fn distinct_frames(packets: &[Vec<u8>]) -> usize {
    let mut ids: Vec<&[u8]> = packets.iter().map(|p| &p[2..p.len().min(24)]).collect();
    ids.sort();
    ids.dedup();
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_recovers_through_ten_percent_loss() -> anyhow::Result<()> {
    init_log();
    let bridge = Bridge::start().await?;
    let url = bridge.ws_url();
    let link = Arc::new(
        Link::start(
            bridge.media_addr(),
            LinkProfile {
                loss_up: 0.10,
                loss_down: 0.10,
                seed: 7,
            },
        )
        .await?,
    );
    let a = TestPeer::join(&url, "loss", "A", None).await?;
    let _b = TestPeer::join(&url, "loss", "B", None).await?;
    let lossy = TestPeer::join(&url, "loss", "C (3G)", Some(link.clone())).await?;
    // A shows only C, large: the allocator then gives A's link to C's video alone, and
    // what is measured is repair, not how A's estimate shares two cameras.
    a.send(cauhop_protocol::ClientMsg::View {
        audio_only: false,
        low_data: false,
        hidden: false,
        tiles: vec![cauhop_protocol::TileView {
            participant: lossy.id.clone(),
            height: 720,
        }],
        pinned: None,
        slots: Vec::new(),
    })?;

    wait_for(
        "media flowing through the lossy link",
        Duration::from_secs(30),
        || lossy.from(&a.id).video.len() > 30 && a.from(&lossy.id).video.len() > 30,
    )
    .await?;
    // Measure over a fixed window after start-up.
    let c_sent_before = lossy.shared.sent_video.lock().expect("lock").len();
    let a_got_before = a.from(&lossy.id).video.len();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let c_sent = lossy.shared.sent_video.lock().expect("lock").len() - c_sent_before;
    let a_got = a.from(&lossy.id).video.len() - a_got_before;
    let up_ratio = a_got as f64 / c_sent as f64;

    let stats = bridge.sfu.stats().await?;
    let c_stats = stats
        .peers
        .iter()
        .find(|p| p.participant == lossy.id)
        .cloned()
        .unwrap_or_default();
    let offer = lossy
        .shared
        .server_offers
        .lock()
        .expect("lock")
        .iter()
        .find_map(|o| rtx_pt(o));
    let rtx_sent_to_c = offer.map_or(0, |pt| link.stats.down_rtp(pt));
    let dropped_up = link.stats.up_dropped.load(Ordering::Relaxed);
    let dropped_down = link.stats.down_dropped.load(Ordering::Relaxed);
    let frames_at_c = distinct_frames(&lossy.from(&a.id).video);

    println!(
        "loss 10%: link dropped {dropped_up} up / {dropped_down} down; SFU sent {} NACKs to C, got {} NACKs from C; \
         {rtx_sent_to_c} RTX packets sent to C; A received {:.1}% of C's video packets (vs ~90% without repair); \
         C sent {} keyframes on {} PLIs; C saw {frames_at_c} distinct frames of A's video",
        c_stats.nacks_sent,
        c_stats.nacks_received,
        up_ratio * 100.0,
        lossy.shared.keyframes_sent.load(Ordering::Relaxed),
        lossy.shared.plis_received.load(Ordering::Relaxed),
    );

    assert!(
        dropped_up > 20 && dropped_down > 20,
        "the link did not drop packets"
    );
    // Upstream: str0m NACKs C, C's stack resends, A sees nearly everything.
    assert!(
        c_stats.nacks_sent > 0,
        "SFU never NACKed the lossy publisher"
    );
    assert!(
        up_ratio > 0.97,
        "only {:.1}% of C's video reached A",
        up_ratio * 100.0
    );
    // Downstream: C NACKs the SFU and the SFU answers with RTX.
    assert!(c_stats.nacks_received > 0, "lossy subscriber never NACKed");
    assert!(rtx_sent_to_c > 0, "SFU sent no RTX to the lossy subscriber");
    assert!(frames_at_c > 100, "C's video from A stalled");
    Ok(())
}
