//! Three real WebRTC peers (the `webrtc` crate) meet through the str0m SFU over UDP with
//! DTLS-SRTP, signaled through the real WebSocket protocol; each receives the others in
//! its fixed slots, and one leaving renegotiates nobody.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cauhop_tests::bridge::Bridge;
use cauhop_tests::peer::TestPeer;
use cauhop_tests::{init_log, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_exchange_audio_and_video() -> anyhow::Result<()> {
    init_log();
    let bridge = Bridge::start().await?;
    let url = bridge.ws_url();
    let a = TestPeer::join(&url, "giao-ban", "Tỉnh", None).await?;
    let b = TestPeer::join(&url, "giao-ban", "Huyện", None).await?;
    let c = TestPeer::join(&url, "giao-ban", "Xã", None).await?;
    let peers = [&a, &b, &c];

    // Everyone receives both others' audio and video.
    wait_for("all streams flowing", Duration::from_secs(30), || {
        peers.iter().all(|p| {
            peers.iter().filter(|q| q.id != p.id).all(|q| {
                let got = p.from(&q.id);
                got.audio.len() >= 50 && got.video.len() >= 30
            })
        })
    })
    .await?;

    // What arrives is exactly what was sent: every payload byte-identical to one the
    // publisher wrote, none from a stranger, none from oneself.
    let mut forwarded_checked = 0usize;
    for p in peers {
        assert!(p.from(&p.id).audio.is_empty(), "{} got its own audio", p.id);
        for q in peers.iter().filter(|q| q.id != p.id) {
            let got = p.from(&q.id);
            let sent_a = q.shared.sent_audio.lock().expect("lock").clone();
            let sent_v = q.shared.sent_video.lock().expect("lock").clone();
            for x in &got.audio {
                assert!(
                    sent_a.contains(x),
                    "{} got audio {} never sent by {}",
                    p.id,
                    String::from_utf8_lossy(&x[..16]),
                    q.id
                );
            }
            for x in &got.video {
                assert!(
                    sent_v.contains(x),
                    "{} got video never sent by {}",
                    p.id,
                    q.id
                );
            }
            // Video starts on a keyframe: the first packet has S=1 and a key frame tag.
            assert_eq!(
                &got.video[0][..2],
                &[0x10, 0x00],
                "first video packet is not a keyframe start"
            );
            forwarded_checked += got.audio.len() + got.video.len();
        }
    }

    // A keyframe request from a subscriber reaches the publisher (after the throttle
    // window of the subscription's own initial request).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = b.shared.plis_received.load(Ordering::Relaxed);
    a.request_keyframe(&b.id).await?;
    wait_for("PLI from A reaching B", Duration::from_secs(3), || {
        b.shared.plis_received.load(Ordering::Relaxed) > before
    })
    .await?;

    let stats = bridge.sfu.stats().await?;
    let forwarded: u64 = stats.peers.iter().map(|s| s.rtp_forwarded).sum();
    let received_in: u64 = stats.peers.iter().map(|s| s.rtp_in).sum();

    // Media arrives in fixed slots: A was offered them once, and C leaving
    // renegotiates nobody; A's slot map stops naming C instead.
    let c_id = c.id.clone();
    let offers = |p: &TestPeer| p.shared.server_offers.lock().expect("lock").len();
    assert_eq!(offers(&a), 1, "A was offered its slots once");
    let names_c = |p: &TestPeer| {
        p.shared
            .messages
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find_map(|m| match m {
                cauhop_protocol::ServerMsg::Slots { audio, video } => Some(
                    audio.iter().flatten().any(|x| *x == c_id)
                        || video.iter().flatten().any(|v| v.participant == c_id),
                ),
                _ => None,
            })
            .unwrap_or(false)
    };
    assert!(names_c(&a), "A's slots never named C");
    c.leave().await?;
    wait_for("A's slots without C", Duration::from_secs(5), || {
        !names_c(&a)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(offers(&a), 1, "C leaving renegotiated A");
    assert_eq!(offers(&b), 1, "C leaving renegotiated B");
    // A's own view: the participant_left message arrived.
    wait_for("participant_left at A", Duration::from_secs(3), || {
        a.shared.messages.lock().expect("lock").iter().any(|m| {
            matches!(m,
            cauhop_protocol::ServerMsg::ParticipantLeft { participant, .. } if *participant == c_id)
        })
    })
    .await?;

    println!(
        "forwarding: {received_in} RTP packets into the SFU, {forwarded} forwarded, {forwarded_checked} payloads checked byte-for-byte, {} PLIs reached B",
        b.shared.plis_received.load(Ordering::Relaxed)
    );
    Ok(())
}
