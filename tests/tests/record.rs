//! The meeting's audio record (issue 20): a recorded meeting with two speakers in turn
//! (real Opus tones from str0m peers over UDP through the bridge) yields an Ogg/Opus file
//! that decodes to the meeting's length and holds each speaker's tone in its turn; every
//! page is told the record is on; the chapters name the floor turns; only the chairing
//! office's admins list and download it; a disk with too little room stops it with a
//! notice.

use std::time::{Duration, Instant as Clock};

use cauhop_audio::ogg_opus;
use cauhop_audio::tone::power_at;
use cauhop_protocol::{ClientMsg, ServerMsg};
use cauhop_signaling::Options;
use cauhop_signaling::auth::{JoinKeys, JoinTokens};
use cauhop_signaling::record::{RecordInfo, RecordOptions};
use cauhop_store::model::{MeetingRole, MeetingSettings};
use cauhop_tests::api::Api;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, issued_link_as, office_admins, open_meeting, province_tree};
use cauhop_tests::signal::{self, Joined};
use cauhop_tests::sim_peer::{SimConfig, SimPeer};

const PW: &str = "mật-khẩu-dài-2026";
const SPEAK: u8 = 25;
const SILENT: u8 = 127;

async fn until(
    s: &mut Joined,
    what: &str,
    want: impl Fn(&ServerMsg) -> bool,
) -> anyhow::Result<ServerMsg> {
    signal::until(s, what, Duration::from_secs(10), want).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_in_turn_are_in_the_record_at_their_times() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let keys = JoinKeys::ephemeral();
    let records = tempfile::tempdir()?;
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        records: Some(RecordOptions {
            dir: records.path().to_owned(),
            keep_days: 0,
            min_free_bytes: 0,
        }),
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A", "B"]).await?;
    let (a, b) = (tree.communes[0], tree.communes[1]);
    let m = store
        .create_meeting(
            &open_meeting(
                "Giao ban ghi âm",
                tree.province,
                vec![invite(a, None), invite(b, None)],
            ),
            None,
        )
        .await?;
    store
        .put_meeting_settings(
            m.id,
            &MeetingSettings {
                record: true,
                ..MeetingSettings::default()
            },
        )
        .await?;
    let tokens = JoinTokens::new(&keys);
    let link = |jti: &'static str, site: i64, role: MeetingRole| {
        let (store, tokens) = (store.clone(), &tokens);
        async move { issued_link_as(&store, tokens, jti, (m.id, site, None), role).await }
    };
    let chair_link = link("jti-chair", tree.province, MeetingRole::Chair).await?;
    let mut chair = signal::join(
        &bridge.ws_url(),
        signal::join_link(m.id, &chair_link, "Chủ trì"),
    )
    .await?;
    let on = until(&mut chair, "the recording notice", |m| {
        matches!(m, ServerMsg::Recording { on: true, .. })
    })
    .await?;
    eprintln!("{on:?}");
    let started = Clock::now();
    let speaker = |name: &'static str, hz: f32, token: String| {
        let cfg = SimConfig {
            audio_level: SILENT,
            tone_hz: Some(hz),
            token: Some(token),
            ..SimConfig::new(&m.id.to_string(), name)
        };
        let url = bridge.ws_url();
        async move { SimPeer::join(&url, cfg).await }
    };
    let site_a = speaker(
        "Xã A",
        440.0,
        link("jti-a", a, MeetingRole::Participant).await?,
    )
    .await?;
    let site_b = speaker(
        "Xã B",
        880.0,
        link("jti-b", b, MeetingRole::Participant).await?,
    )
    .await?;
    // The pages that joined later are told too.
    assert!(
        site_a
            .messages()
            .iter()
            .any(|m| matches!(m, ServerMsg::Recording { on: true, .. })),
        "A's page was not told the meeting is recorded"
    );

    // A speaks for 3 s with the floor, then B for 3 s.
    let turn_a = started.elapsed();
    chair.tx.send(ClientMsg::GrantFloor {
        participant: Some(site_a.id.clone()),
    })?;
    site_a.set_level(SPEAK);
    tokio::time::sleep(Duration::from_secs(3)).await;
    site_a.set_level(SILENT);
    // What a crash now would leave: the bytes on disk so far (a killed process loses
    // nothing it wrote). They decode, to within the last page or two of now.
    let dir = records.path().join(m.id.to_string());
    let live = std::fs::read_dir(&dir)?
        .flatten()
        .find(|f| f.path().extension().is_some_and(|e| e == "ogg"))
        .ok_or_else(|| anyhow::anyhow!("no .ogg while recording"))?
        .path();
    let crashed = ogg_opus::decode(std::io::Cursor::new(std::fs::read(&live)?))?;
    let behind = started.elapsed().as_secs_f64() - crashed.duration().as_secs_f64();
    eprintln!("a crash now would lose the last {behind:.2} s");
    assert!(
        !crashed.complete && (0.0..2.5).contains(&behind),
        "{behind:.2} s behind"
    );
    let turn_b = started.elapsed();
    chair.tx.send(ClientMsg::GrantFloor {
        participant: Some(site_b.id.clone()),
    })?;
    site_b.set_level(SPEAK);
    tokio::time::sleep(Duration::from_secs(3)).await;
    site_b.set_level(SILENT);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Everyone leaves: the record ends with the room.
    drop(site_a);
    drop(site_b);
    chair.tx.send(ClientMsg::Leave)?;
    let length = started.elapsed();
    let mut info: Option<RecordInfo> = None;
    let deadline = Clock::now() + Duration::from_secs(15);
    while Clock::now() < deadline {
        if let Some(json) = std::fs::read_dir(&dir)?
            .flatten()
            .find(|f| f.path().extension().is_some_and(|e| e == "json"))
        {
            let i: RecordInfo = serde_json::from_slice(&std::fs::read(json.path())?)?;
            if i.stopped.is_some() {
                info = Some(i);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info = info.ok_or_else(|| anyhow::anyhow!("the record did not stop with the room"))?;
    assert_eq!(info.stopped.as_deref(), Some("ended"));
    assert_eq!(info.title, "Giao ban ghi âm");
    let turns: Vec<Option<&str>> = info.turns.iter().map(|t| t.who.as_deref()).collect();
    assert_eq!(turns, [Some("Xã A — A"), Some("Xã B — B")], "{info:?}");
    // Each turn's picture, as its holder sent it, in a WebM file of its own that
    // GStreamer demuxes: about 3 s of the 360-line encoding (30 fps) each.
    for t in &info.turns {
        let name = t
            .video
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no video for {t:?}"))?;
        let path = dir.join(name);
        anyhow::ensure!(path.exists(), "{name} was not written");
        match cauhop_tests::webm_frames::webm_frames(&path, false)? {
            Some(n) => {
                eprintln!(
                    "{name}: {n} frames, {} bytes",
                    std::fs::metadata(&path)?.len()
                );
                assert!(n >= 30, "{name}: {n} frames for a turn of 3 s");
            }
            None => eprintln!("gst-launch-1.0 not installed: {name} not read"),
        }
    }

    let ogg = std::fs::read_dir(&dir)?
        .flatten()
        .find(|f| f.path().extension().is_some_and(|e| e == "ogg"))
        .ok_or_else(|| anyhow::anyhow!("no .ogg"))?
        .path();
    let decoded = ogg_opus::decode(std::fs::File::open(&ogg)?)?;
    assert!(decoded.complete, "the stream was finished");
    let secs = decoded.duration().as_secs_f64();
    eprintln!(
        "record {secs:.2} s, meeting {:.2} s, {} bytes",
        length.as_secs_f64(),
        std::fs::metadata(&ogg)?.len()
    );
    assert!(
        (secs - length.as_secs_f64()).abs() < 1.0,
        "record {secs:.2} s for a meeting of {:.2} s",
        length.as_secs_f64()
    );
    // Each speaker's tone in its turn (the middle second of each, well inside the
    // start-up and switch margins), and not in the other's.
    let second = |at: Duration| {
        let from = ((at.as_secs_f64() + 1.0) * 48_000.0) as usize;
        decoded
            .pcm
            .get(from..from + 48_000)
            .unwrap_or_default()
            .to_vec()
    };
    let (in_a, in_b) = (second(turn_a), second(turn_b));
    let db = |x: f32| 10.0 * x.max(1e-12).log10();
    eprintln!(
        "turn A: 440 Hz {:.1} dB, 880 Hz {:.1} dB; turn B: 440 Hz {:.1} dB, 880 Hz {:.1} dB",
        db(power_at(&in_a, 440.0)),
        db(power_at(&in_a, 880.0)),
        db(power_at(&in_b, 440.0)),
        db(power_at(&in_b, 880.0))
    );
    assert!(
        power_at(&in_a, 440.0) > 100.0 * power_at(&in_a, 880.0),
        "A's turn holds A's tone only"
    );
    assert!(
        power_at(&in_b, 880.0) > 100.0 * power_at(&in_b, 440.0),
        "B's turn holds B's tone only"
    );
    assert!(power_at(&in_a, 440.0) > 1e-4, "A is audible in the record");

    // Only the chairing office's admins list and download it.
    office_admins(&store, &tree, PW).await?;
    let api = Api::new(bridge.url(""));
    let (tinh, huyen) = (api.login("tinh", PW).await?, api.login("huyen", PW).await?);
    let (status, list) = api
        .get(&tinh, &format!("/api/v1/meetings/{}/records", m.id))
        .await?;
    assert_eq!(status, 200, "{list}");
    let file = list[0]["file"].as_str().unwrap_or_default().to_owned();
    assert!(file.ends_with(".ogg"), "{list}");
    let (status, body) = api
        .get(&tinh, &format!("/api/v1/meetings/{}/records/{file}", m.id))
        .await?;
    assert_eq!(status, 200);
    assert!(
        body.as_str().is_some_and(|b| b.starts_with("OggS")),
        "not an Ogg file"
    );
    for path in [
        format!("/api/v1/meetings/{}/records", m.id),
        format!("/api/v1/meetings/{}/records/{file}", m.id),
    ] {
        let (status, _) = api.get(&huyen, &path).await?;
        assert_eq!(
            status, 403,
            "a district admin whose commune was only invited: {path}"
        );
    }
    let (status, _) = api
        .get(
            &tinh,
            &format!("/api/v1/meetings/{}/records/..%2Fcauhop.db", m.id),
        )
        .await?;
    assert_eq!(status, 404);
    Ok(())
}

/// A disk with less free space than the minimum: the record stops at once, cleanly, and
/// every page (the chair's with it) is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_stops_the_record_with_a_notice() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let keys = JoinKeys::ephemeral();
    let records = tempfile::tempdir()?;
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        records: Some(RecordOptions {
            dir: records.path().to_owned(),
            keep_days: 0,
            // More than any disk has.
            min_free_bytes: u64::MAX,
        }),
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A"]).await?;
    let m = store
        .create_meeting(
            &open_meeting(
                "Giao ban",
                tree.province,
                vec![invite(tree.communes[0], None)],
            ),
            None,
        )
        .await?;
    store
        .put_meeting_settings(
            m.id,
            &MeetingSettings {
                record: true,
                ..MeetingSettings::default()
            },
        )
        .await?;
    let tokens = JoinTokens::new(&keys);
    let token = issued_link_as(
        &store,
        &tokens,
        "jti-chair",
        (m.id, tree.province, None),
        MeetingRole::Chair,
    )
    .await?;
    let mut chair =
        signal::join(&bridge.ws_url(), signal::join_link(m.id, &token, "Chủ trì")).await?;
    let stopped = until(&mut chair, "the record's stop", |m| {
        matches!(m, ServerMsg::Recording { on: false, .. })
    })
    .await?;
    assert!(
        matches!(&stopped, ServerMsg::Recording { reason: Some(r), .. } if r == "disk_full"),
        "{stopped:?}"
    );
    assert!(
        !bridge
            .state
            .recorders
            .is_on(&cauhop_signaling::room_of(m.id))
    );
    Ok(())
}

/// A hall's encoder publishing alone over WHIP opens the meeting's record too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_encoder_alone_opens_the_record() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let records = tempfile::tempdir()?;
    let bridge = Bridge::start_with(Options {
        records: Some(RecordOptions {
            dir: records.path().to_owned(),
            keep_days: 0,
            min_free_bytes: 0,
        }),
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A"]).await?;
    let m = store
        .create_meeting(
            &open_meeting(
                "Hội nghị",
                tree.province,
                vec![invite(tree.communes[0], None)],
            ),
            None,
        )
        .await?;
    store
        .put_meeting_settings(
            m.id,
            &MeetingSettings {
                record: true,
                ..MeetingSettings::default()
            },
        )
        .await?;
    let encoder = store
        .create_endpoint(&cauhop_store::model::NewEndpoint {
            site_id: tree.province,
            name: "Bộ mã hoá hội trường".into(),
        })
        .await?;
    let _whip = cauhop_tests::peer::WhipPublisher::publish(
        &bridge.url(""),
        &m.id.to_string(),
        &encoder.key,
        "whip",
    )
    .await?;
    let room = cauhop_signaling::room_of(m.id);
    cauhop_tests::wait_for("the record", Duration::from_secs(5), || {
        bridge.state.recorders.is_on(&room)
    })
    .await?;
    Ok(())
}
