//! The chair runs a scheduled meeting through the bridge (issue 20): the queue and the
//! floor, mute-all that a site cannot lift itself, a secretary whose powers survive its
//! reconnect, the floor and queue surviving the chair's own reconnect, the lock, and a
//! removal the removed link cannot undo by rejoining; each action in the audit log with
//! who did it. Real bridge, real SQLite store, the WebSocket protocol as a page speaks it.
//! (That held media is not forwarded, whatever the page does, is the room core's test:
//! `sim_tests::held_sites_reach_nobody_and_the_floor_holder_reaches_everyone`.)

use std::time::Duration;

use cauhop_protocol::{ClientMsg, ErrorCode, RollCallCount, ServerMsg};
use cauhop_signaling::Options;
use cauhop_signaling::auth::{JoinKeys, JoinTokens};
use cauhop_store::AuditFilter;
use cauhop_store::model::{AuditAction, MeetingRole, Page, PersonRole};
use cauhop_tests::api::Api;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, issued_link_as, open_meeting, province_tree};
use cauhop_tests::signal::{self, Joined};

const WAIT: Duration = Duration::from_secs(5);

fn join_msg(meeting: i64, token: &str, name: &str) -> ClientMsg {
    signal::join_link(meeting, token, name)
}

/// The first message `want` accepts, within [`WAIT`].
async fn until(
    s: &mut Joined,
    what: &str,
    want: impl Fn(&ServerMsg) -> bool,
) -> anyhow::Result<ServerMsg> {
    signal::until(s, what, WAIT, want).await
}

fn held(p: &str, audio: bool, video: bool) -> impl Fn(&ServerMsg) -> bool + '_ {
    move |m| match m {
        ServerMsg::Held {
            participant,
            audio: a,
            video: v,
            ..
        } => participant == p && *a == audio && *v == video,
        ServerMsg::HeldAll {
            audio: a, video: v, ..
        } => a.iter().any(|x| x == p) == audio && v.iter().any(|x| x == p) == video,
        _ => false,
    }
}

fn error(code: ErrorCode) -> impl Fn(&ServerMsg) -> bool {
    move |m| matches!(m, ServerMsg::Error { code: c, .. } if *c == code)
}

/// A bridge with a province meeting: the province chairs, communes A, B and C are
/// invited; the chair's link and one link per commune.
struct Province {
    bridge: Bridge,
    tree: cauhop_tests::fixture::Tree,
    m: cauhop_store::model::Meeting,
    chair_link: String,
    links: [String; 3],
}

async fn province() -> anyhow::Result<Province> {
    cauhop_tests::init_log();
    let keys = JoinKeys::ephemeral();
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A", "B", "C"]).await?;
    let (a, b, c) = (tree.communes[0], tree.communes[1], tree.communes[2]);
    let m = store
        .create_meeting(
            &open_meeting(
                "Giao ban tỉnh",
                tree.province,
                vec![invite(a, None), invite(b, None), invite(c, None)],
            ),
            None,
        )
        .await?;
    let tokens = JoinTokens::new(&keys);
    let link = |jti: &'static str, site: i64, role: MeetingRole| {
        let (store, tokens) = (store.clone(), &tokens);
        async move { issued_link_as(&store, tokens, jti, (m.id, site, None), role).await }
    };
    let chair_link = link("jti-chair", tree.province, MeetingRole::Chair).await?;
    let links = [
        link("jti-a", a, MeetingRole::Participant).await?,
        link("jti-b", b, MeetingRole::Participant).await?,
        link("jti-c", c, MeetingRole::Participant).await?,
    ];
    Ok(Province {
        bridge,
        tree,
        m,
        chair_link,
        links,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chair_runs_the_meeting_and_every_action_is_enforced_and_recorded() -> anyhow::Result<()>
{
    let Province {
        bridge,
        tree,
        m,
        chair_link,
        links: [link_a, link_b, link_c],
    } = province().await?;
    let store = bridge.store.clone();
    let url = bridge.ws_url();
    let mut chair = signal::join(&url, join_msg(m.id, &chair_link, "Chủ trì")).await?;
    let mut site_a = signal::join(&url, join_msg(m.id, &link_a, "Xã A")).await?;
    let mut site_b = signal::join(&url, join_msg(m.id, &link_b, "Xã B")).await?;
    let (pa, pb) = (site_a.participant.clone(), site_b.participant.clone());

    // A site cannot act as the chair.
    site_a.tx.send(ClientMsg::GrantFloor {
        participant: Some(pa.clone()),
    })?;
    until(
        &mut site_a,
        "a forbidden floor",
        error(ErrorCode::Forbidden),
    )
    .await?;

    // Two hands, in the order raised; everyone muted but the chair.
    site_a.tx.send(ClientMsg::RaiseHand)?;
    until(
        &mut chair,
        "A's hand",
        |m| matches!(m, ServerMsg::Hands { queue } if *queue == [pa.clone()]),
    )
    .await?;
    site_b.tx.send(ClientMsg::RaiseHand)?;
    until(
        &mut chair,
        "the queue A, B",
        |m| matches!(m, ServerMsg::Hands { queue } if *queue == [pa.clone(), pb.clone()]),
    )
    .await?;
    chair.tx.send(ClientMsg::MuteAll)?;
    until(&mut site_a, "A muted", held(&pa, true, false)).await?;
    until(&mut site_b, "B muted", held(&pb, true, false)).await?;
    // A page that tries to unmute itself is refused (the meeting does not allow it).
    site_a.tx.send(ClientMsg::Mute {
        audio: false,
        video: false,
    })?;
    until(&mut site_a, "a refused unmute", error(ErrorCode::Forbidden)).await?;

    // The floor to the first hand: out of the queue, heard again, its turn timed.
    chair.tx.send(ClientMsg::GrantFloor {
        participant: Some(pa.clone()),
    })?;
    let floor = until(
        &mut site_b,
        "A's floor",
        |m| matches!(m, ServerMsg::Floor { participant: Some(p), .. } if *p == pa),
    )
    .await?;
    assert!(
        matches!(floor, ServerMsg::Floor { since: Some(_), .. }),
        "{floor:?}"
    );
    until(
        &mut site_b,
        "the queue B",
        |m| matches!(m, ServerMsg::Hands { queue } if *queue == [pb.clone()]),
    )
    .await?;
    until(
        &mut site_a,
        "A unmuted on the floor",
        held(&pa, false, false),
    )
    .await?;

    // B becomes secretary; its powers follow its link through a reconnect.
    chair.tx.send(ClientMsg::NameSecretary {
        participant: Some(pb.clone()),
    })?;
    until(
        &mut site_b,
        "B secretary",
        |m| matches!(m, ServerMsg::Controls { secretary: Some(s), .. } if *s == pb),
    )
    .await?;
    drop(site_b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut site_b = signal::join(&url, join_msg(m.id, &link_b, "Xã B")).await?;
    let pb2 = site_b.participant.clone();
    until(
        &mut site_b,
        "B still secretary",
        |m| matches!(m, ServerMsg::Controls { secretary: Some(s), .. } if *s == pb2),
    )
    .await?;
    site_b.tx.send(ClientMsg::StopCamera {
        participant: pa.clone(),
        stop: true,
    })?;
    until(
        &mut site_a,
        "A's camera stopped by the secretary",
        held(&pa, false, true),
    )
    .await?;

    // B asks to speak; then the chair's link drops. The secretary keeps control while it
    // is away (it lets muted sites unmute themselves), and when the chair comes back the
    // floor is still A's and the queue still holds B.
    site_b.tx.send(ClientMsg::RaiseHand)?;
    until(
        &mut site_a,
        "B in the queue",
        |m| matches!(m, ServerMsg::Hands { queue } if *queue == [pb2.clone()]),
    )
    .await?;
    drop(chair);
    tokio::time::sleep(Duration::from_millis(300)).await;
    site_b.tx.send(ClientMsg::SelfUnmute { allowed: true })?;
    until(
        &mut site_a,
        "the secretary's change while the chair is away",
        |m| {
            matches!(
                m,
                ServerMsg::Controls {
                    self_unmute: true,
                    ..
                }
            )
        },
    )
    .await?;
    let mut chair = signal::join(&url, join_msg(m.id, &chair_link, "Chủ trì")).await?;
    until(
        &mut chair,
        "the floor after the chair's reconnect",
        |m| matches!(m, ServerMsg::Floor { participant: Some(p), .. } if *p == pa),
    )
    .await?;
    until(
        &mut chair,
        "the queue after the chair's reconnect",
        |m| matches!(m, ServerMsg::Hands { queue } if *queue == [pb2.clone()]),
    )
    .await?;

    // Locked: a site that was not in is refused, one that was comes back.
    chair.tx.send(ClientMsg::Lock { locked: true })?;
    until(&mut chair, "locked", |m| {
        matches!(m, ServerMsg::Controls { locked: true, .. })
    })
    .await?;
    let refused = signal::join(&url, join_msg(m.id, &link_c, "Xã C")).await;
    let why = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        why.contains("locked"),
        "a new site in a locked meeting: {why}"
    );
    drop(site_b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut site_b = signal::join(&url, join_msg(m.id, &link_b, "Xã B")).await?;

    // A roll call: A confirms, B stays silent, C is not in: present, connected, absent
    // (and the chair's own site, connected without confirming).
    chair.tx.send(ClientMsg::RollCall { open: true })?;
    until(&mut site_a, "the roll call", |m| {
        matches!(m, ServerMsg::RollCall { open: true, .. })
    })
    .await?;
    site_a.tx.send(ClientMsg::Present)?;
    until(
        &mut chair,
        "A present",
        |m| matches!(m, ServerMsg::Present { participant } if *participant == pa),
    )
    .await?;
    chair.tx.send(ClientMsg::RollCall { open: false })?;
    let closed = until(&mut site_b, "the roll call's result", |m| {
        matches!(m, ServerMsg::RollCall { open: false, .. })
    })
    .await?;
    assert!(
        matches!(
            closed,
            ServerMsg::RollCall {
                result: Some(RollCallCount {
                    present: 1,
                    connected: 2,
                    absent: 1
                }),
                ..
            }
        ),
        "{closed:?}"
    );

    // A is removed with a reason; its link stays out, the floor is free again.
    chair.tx.send(ClientMsg::Remove {
        participant: pa.clone(),
        reason: "tiếng ồn lớn".into(),
    })?;
    let removed = until(&mut site_a, "A removed", error(ErrorCode::Removed)).await?;
    assert!(
        matches!(&removed, ServerMsg::Error { message, fatal: true, .. } if message.contains("tiếng ồn lớn")),
        "{removed:?}"
    );
    until(&mut chair, "the floor free after the removal", |m| {
        matches!(
            m,
            ServerMsg::Floor {
                participant: None,
                ..
            }
        )
    })
    .await?;
    chair.tx.send(ClientMsg::Lock { locked: false })?;
    until(&mut chair, "unlocked", |m| {
        matches!(m, ServerMsg::Controls { locked: false, .. })
    })
    .await?;
    let again = signal::join(&url, join_msg(m.id, &link_a, "Xã A")).await;
    let why = again.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        why.contains("removed") && why.contains("tiếng ồn lớn"),
        "the removed link rejoining: {why}"
    );

    // Every action of the chair and the secretary is in the meeting's audit log.
    let log = store
        .audit_log(
            &AuditFilter {
                target_kind: Some("meeting".into()),
                target_id: Some(m.id.to_string()),
                ..AuditFilter::default()
            },
            Page {
                limit: 100,
                offset: 0,
            },
        )
        .await?;
    let actions: Vec<AuditAction> = log.items.iter().map(|e| e.action).collect();
    for want in [
        AuditAction::MeetingMute,
        AuditAction::MeetingFloor,
        AuditAction::MeetingSecretary,
        AuditAction::MeetingCamera,
        AuditAction::MeetingLock,
        AuditAction::MeetingRemove,
    ] {
        assert!(actions.contains(&want), "{want:?} not in {actions:?}");
    }
    let camera = log
        .items
        .iter()
        .find(|e| e.action == AuditAction::MeetingCamera)
        .expect("camera entry");
    assert!(
        camera.actor.contains("Xã B"),
        "the secretary acted: {camera:?}"
    );
    let remove = log
        .items
        .iter()
        .find(|e| e.action == AuditAction::MeetingRemove)
        .expect("removal entry");
    assert!(remove.actor.contains("Chủ trì"), "{remove:?}");
    assert_eq!(remove.detail["reason"], "tiếng ồn lớn");
    assert!(remove.client.is_some());
    assert!(actions.contains(&AuditAction::MeetingRollCall));

    // The roll call is in the attendance export: A present, B connected, C absent (a row
    // of its own, since it never joined).
    let pw = "mật-khẩu-dài-2026";
    let hash = cauhop_signaling::auth::hash_password(pw).map_err(anyhow::Error::msg)?;
    store
        .create_person(
            "tinh",
            "Văn phòng tỉnh",
            PersonRole::ProvinceAdmin,
            None,
            Some(&hash),
        )
        .await?;
    let api = Api::new(bridge.url(""));
    let admin = api.login("tinh", pw).await?;
    let (status, csv) = api
        .get(
            &admin,
            &format!("/api/v1/meetings/{}/attendance?format=csv", m.id),
        )
        .await?;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap_or_default().to_owned();
    let answer = |site: &str| {
        csv.lines()
            .find(|l| l.split(',').nth(1) == Some(site))
            .and_then(|l| l.rsplit(',').next())
            .map(str::to_owned)
    };
    assert_eq!(answer("A").as_deref(), Some("present"), "{csv}");
    assert_eq!(answer("B").as_deref(), Some("connected"), "{csv}");
    assert_eq!(answer("C").as_deref(), Some("absent"), "{csv}");
    let (status, calls) = api
        .get(&admin, &format!("/api/v1/meetings/{}/roll-calls", m.id))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        calls[0]["sites"].as_array().map(Vec::len),
        Some(4),
        "{calls}"
    );

    // The chair's link drops and nobody is secretary now: the province admin gives the
    // floor from the admin page; a district admin whose commune was only invited cannot.
    chair
        .tx
        .send(ClientMsg::NameSecretary { participant: None })?;
    until(&mut site_b, "no secretary", |m| {
        matches!(
            m,
            ServerMsg::Controls {
                secretary: None,
                ..
            }
        )
    })
    .await?;
    drop(chair);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("/api/v1/meetings/{}/control", m.id);
    let site_b_id = site_b.participant.clone();
    let (status, body) = api
        .post(
            &admin,
            &path,
            &serde_json::json!({"type": "grant_floor", "participant": site_b_id}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    until(
        &mut site_b,
        "the floor from the admin page",
        |m| matches!(m, ServerMsg::Floor { participant: Some(p), .. } if *p == site_b_id),
    )
    .await?;
    store
        .create_person(
            "huyen",
            "Huyện",
            PersonRole::DistrictAdmin,
            Some(tree.district),
            Some(&hash),
        )
        .await?;
    let huyen = api.login("huyen", pw).await?;
    let (status, _) = api
        .post(&huyen, &path, &serde_json::json!({"type": "mute_all"}))
        .await?;
    assert_eq!(status, 403);
    let (status, _) = api
        .post(&admin, &path, &serde_json::json!({"type": "raise_hand"}))
        .await?;
    assert_eq!(status, 422, "not a chair action");
    let log = store
        .audit_log(
            &AuditFilter {
                target_kind: Some("meeting".into()),
                target_id: Some(m.id.to_string()),
                ..AuditFilter::default()
            },
            Page {
                limit: 100,
                offset: 0,
            },
        )
        .await?;
    assert!(
        log.items
            .iter()
            .any(|e| e.action == AuditAction::MeetingFloor && e.actor == "tinh"),
        "the admin's floor is in the log"
    );
    Ok(())
}

/// The bridge restarts in the middle of a chaired meeting: the sites rejoin to the same
/// meeting as it was (still locked, still muted, the floor back with its holder), not to
/// an open room of 270 live microphones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_the_bridge_keeps_the_meeting_as_the_chair_left_it() -> anyhow::Result<()> {
    let Province {
        mut bridge,
        tree: _,
        m,
        chair_link,
        links: [link_a, link_b, link_c],
    } = province().await?;
    let url = bridge.ws_url();
    let mut chair = signal::join(&url, join_msg(m.id, &chair_link, "Chủ trì")).await?;
    let site_a = signal::join(&url, join_msg(m.id, &link_a, "Xã A")).await?;
    let site_b = signal::join(&url, join_msg(m.id, &link_b, "Xã B")).await?;
    let pb = site_b.participant.clone();
    chair.tx.send(ClientMsg::MuteAll)?;
    chair.tx.send(ClientMsg::GrantFloor {
        participant: Some(pb.clone()),
    })?;
    chair.tx.send(ClientMsg::Lock { locked: true })?;
    until(&mut chair, "locked", |m| {
        matches!(m, ServerMsg::Controls { locked: true, .. })
    })
    .await?;

    bridge.restart(Duration::from_millis(300)).await?;
    drop((chair, site_a, site_b));
    let url = bridge.ws_url();
    // The first to knock after the restart is a site that was never in: the room is not
    // open yet, and still the lock holds.
    let refused = signal::join(&url, join_msg(m.id, &link_c, "Xã C")).await;
    let why = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        why.contains("locked"),
        "a new site, first after the restart: {why}"
    );
    // Then the sites rejoin together, as 270 do after a restart: each gets its own back.
    let (site_a, site_b) = tokio::join!(
        signal::join(&url, join_msg(m.id, &link_a, "Xã A")),
        signal::join(&url, join_msg(m.id, &link_b, "Xã B")),
    );
    let (mut site_a, mut site_b) = (site_a?, site_b?);
    let pa = site_a.participant.clone();
    until(&mut site_a, "A muted again", held(&pa, true, false)).await?;
    let pb = site_b.participant.clone();
    until(
        &mut site_b,
        "the floor back to B",
        |m| matches!(m, ServerMsg::Floor { participant: Some(p), .. } if *p == pb),
    )
    .await?;
    Ok(())
}
