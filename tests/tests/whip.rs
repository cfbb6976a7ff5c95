//! WHIP ingest (RFC 9725) and WHEP egress.
//!
//! WHIP: a studio encoder publishes into a scheduled meeting with one
//! HTTP POST, authenticated by its room device key; a page in the meeting hears and sees
//! it, it is on the roster under the device's name, and DELETE takes it off at once.
//! Wrong or missing keys, a meeting that is over and one that does not exist are refused
//! with the status RFC 9725 and HTTP name, and a reason.

use std::time::Duration;

use cauhop_protocol::ServerMsg;
use cauhop_signaling::Options;
use cauhop_signaling::auth::{JoinKeys, JoinTokens};
use cauhop_store::Instant;
use cauhop_store::model::{MeetingRole, NewEndpoint, PersonRole};
use cauhop_tests::api::Api;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, issued_link, issued_link_as, open_meeting, province_tree};
use cauhop_tests::peer::{Credentials, TestPeer, WhepReceiver, WhipPublisher, whip_post};
use cauhop_tests::{init_log, wait_for};

const ENCODER: &str = "Hội trường B (bộ mã hoá)";
const TURN_URL: &str = "turns:turn.example.gov.vn:443?transport=tcp";
const TURN_SECRET: &str = "bi-mat-chung-voi-coturn";

/// A bridge whose join-link keys the test holds, to sign links as the bridge does.
async fn bridge() -> anyhow::Result<(Bridge, JoinKeys)> {
    init_log();
    let keys = JoinKeys::ephemeral();
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        turn: Some(cauhop_signaling::turn::Turn {
            urls: vec![TURN_URL.into()],
            secret: TURN_SECRET.into(),
            ttl: std::time::Duration::from_secs(3600),
        }),
        ..Options::default()
    })
    .await?;
    Ok((bridge, keys))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_encoder_publishes_into_a_scheduled_meeting() -> anyhow::Result<()> {
    let (bridge, keys) = bridge().await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A", "B"]).await?;
    let (a, b) = (tree.communes[0], tree.communes[1]);
    let m = store
        .create_meeting(
            &open_meeting(
                "Giao ban",
                tree.province,
                vec![invite(a, None), invite(b, None)],
            ),
            None,
        )
        .await?;
    let over = store
        .create_meeting(
            &open_meeting("Họp đã xong", tree.province, vec![invite(b, None)]),
            None,
        )
        .await?;
    store.end_meeting(over.id, Instant::now()).await?;
    let encoder = store
        .create_endpoint(&NewEndpoint {
            site_id: b,
            name: ENCODER.into(),
        })
        .await?;
    let token = issued_link(&store, &JoinTokens::new(&keys), "jti-a", m.id, a, None).await?;
    let meeting = m.id.to_string();
    let page = TestPeer::join_with(
        &bridge.ws_url(),
        &meeting,
        "Xã A",
        Credentials::Token(token),
        None,
    )
    .await?;
    let base = bridge.url("");

    // Refused, each with its status and a reason.
    let offer = "v=0\r\n";
    let r = whip_post(&base, &meeting, None, offer).await?;
    assert_eq!(r.status, 401, "no key: {}", r.body);
    let r = whip_post(&base, &meeting, Some("chd_not-a-key"), offer).await?;
    assert_eq!(r.status, 401, "a wrong key: {}", r.body);
    assert!(r.body.contains("unknown or revoked"), "{}", r.body);
    let r = whip_post(&base, &over.id.to_string(), Some(&encoder.key), offer).await?;
    assert_eq!(r.status, 403, "a meeting that is over: {}", r.body);
    let r = whip_post(&base, "987654", Some(&encoder.key), offer).await?;
    assert_eq!(r.status, 404, "no such meeting: {}", r.body);
    let r = whip_post(&base, &meeting, Some(&encoder.key), "not an SDP").await?;
    assert_eq!(r.status, 400, "a bad offer: {}", r.body);

    // Published: the page hears and sees it, under the device's name.
    assert!(r.links.is_empty(), "TURN credentials for a refused request");
    let whip = WhipPublisher::publish(&base, &meeting, &encoder.key, "whip").await?;
    // The TURN server for later ICE restarts (RFC 9725 4.6), with a credential coturn
    // accepts for the shared secret.
    let link = whip.links.first().cloned().unwrap_or_default();
    assert!(
        link.starts_with(&format!("<{TURN_URL}>; rel=\"ice-server\"")),
        "{:?}",
        whip.links
    );
    let field = |name: &str| {
        link.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        field("credential"),
        cauhop_signaling::turn::credential(TURN_SECRET, &field("username"))
    );
    wait_for(
        "the page to hear and see the encoder",
        Duration::from_secs(20),
        || {
            let got = page.from("whip");
            got.audio.len() >= 50 && got.video.len() >= 30
        },
    )
    .await?;
    let joined = page.messages().into_iter().find_map(|m| match m {
        ServerMsg::ParticipantJoined { participant } if participant.name == ENCODER => {
            Some(participant)
        }
        _ => None,
    });
    let joined = joined.expect("the encoder on the page's roster under the device's name");
    assert_eq!(joined.site, "B");

    // DELETE: off the roster at once; a second DELETE finds nothing.
    let status = whip.delete().await?;
    assert_eq!(status, 200);
    let left = |m: &ServerMsg| matches!(m, ServerMsg::ParticipantLeft { participant, .. } if *participant == joined.id);
    wait_for(
        "the encoder to leave the page's roster",
        Duration::from_secs(2),
        || page.messages().iter().any(left),
    )
    .await?;
    assert_eq!(whip.delete().await?, 404);
    assert_eq!(bridge.state.whip.len(), 0);

    // A replaced device key ends a WHIP session as it ends the room's agent.
    let again = WhipPublisher::publish(&base, &meeting, &encoder.key, "whip-2").await?;
    wait_for(
        "the encoder's second session",
        Duration::from_secs(20),
        || page.from("whip-2").audio.len() >= 10,
    )
    .await?;
    let pw = "mật-khẩu-dài-2026";
    let hash = cauhop_signaling::auth::hash_password(pw).map_err(anyhow::Error::msg)?;
    store
        .create_person(
            "tinh",
            "Quản trị tỉnh",
            PersonRole::ProvinceAdmin,
            None,
            Some(&hash),
        )
        .await?;
    let api = Api::new(bridge.url(""));
    let admin = api.login("tinh", pw).await?;
    let (s, _) = api
        .post(
            &admin,
            &format!("/api/v1/endpoints/{}/key", encoder.endpoint.id),
            &serde_json::json!({}),
        )
        .await?;
    assert_eq!(s, 200);
    wait_for(
        "the session of the replaced key to end",
        Duration::from_secs(2),
        || bridge.state.whip.is_empty(),
    )
    .await?;
    assert_eq!(again.delete().await?, 404);
    Ok(())
}

/// WHEP: a hall display with a viewer link receives the meeting's voice and picture on
/// the two m-lines it offered; it is never on the attendance list, a participant's link
/// is refused (403), and DELETE ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_display_receives_the_meeting() -> anyhow::Result<()> {
    let (bridge, keys) = bridge().await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A", "C"]).await?;
    let (a, c) = (tree.communes[0], tree.communes[1]);
    let mut display = invite(c, None);
    display.role = MeetingRole::Viewer;
    let m = store
        .create_meeting(
            &open_meeting("Giao ban", tree.province, vec![invite(a, None), display]),
            None,
        )
        .await?;
    let tokens = JoinTokens::new(&keys);
    let meeting = m.id.to_string();
    let speaker_link = issued_link(&store, &tokens, "jti-a", m.id, a, None).await?;
    let viewer_link = issued_link_as(
        &store,
        &tokens,
        "jti-c",
        (m.id, c, None),
        MeetingRole::Viewer,
    )
    .await?;
    let speaker = TestPeer::join_with(
        &bridge.ws_url(),
        &meeting,
        "Xã A",
        Credentials::Token(speaker_link.clone()),
        None,
    )
    .await?;
    let base = bridge.url("");

    // A participant's link does not make a display.
    let (r, _) = WhepReceiver::receive(&base, &meeting, "not-a-token").await?;
    assert_eq!(r.status, 401, "{}", r.body);
    let other = issued_link(&store, &tokens, "jti-a2", m.id, a, None).await?;
    let (r, _) = WhepReceiver::receive(&base, &meeting, &other).await?;
    assert_eq!(r.status, 403, "a participant's link: {}", r.body);
    assert!(r.body.contains("viewer"), "{}", r.body);

    let (r, display) = WhepReceiver::receive(&base, &meeting, &viewer_link).await?;
    let display =
        display.ok_or_else(|| anyhow::anyhow!("WHEP refused: {} {}", r.status, r.body))?;
    wait_for(
        "the display to hear and see the speaker",
        Duration::from_secs(20),
        || {
            let got = display.from(&speaker.id);
            got.audio.len() >= 50 && got.video.len() >= 30
        },
    )
    .await?;
    // On the roster as a display, never in the attendance record.
    let attendance = store.attendance(m.id).await?;
    assert!(
        attendance.iter().all(|row| row.site_id != Some(c)),
        "the display was recorded as attending: {attendance:?}"
    );
    assert!(attendance.iter().any(|row| row.site_id == Some(a)));
    let status = reqwest::Client::new()
        .delete(format!("{base}{}", display.location))
        .bearer_auth(&viewer_link)
        .send()
        .await?
        .status()
        .as_u16();
    assert_eq!(status, 200);
    assert!(bridge.state.whip.is_empty());
    Ok(())
}
