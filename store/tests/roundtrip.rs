//! Every entity round-trips through the store, on SQLite and on PostgreSQL.
//! PostgreSQL runs when `CAUHOP_TEST_POSTGRES_URL` is set (`.ci/run` starts one); under
//! `CI=true` its absence is an error, so CI cannot silently test one backend.

use cauhop_store::model::*;
use cauhop_store::{AuditFilter, Backend, Instant, MeetingFilter, Store, StoreError};

async fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cauhop.db");
    let mut out = vec![(
        Store::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("sqlite store"),
        Some(dir),
    )];
    match std::env::var("CAUHOP_TEST_POSTGRES_URL") {
        Ok(base) => {
            let url = cauhop_store::create_scratch_database(&base, "cauhop_rt")
                .await
                .expect("scratch database");
            out.push((Store::open(&url).await.expect("postgres store"), None));
        }
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI must run the store tests on PostgreSQL: set CAUHOP_TEST_POSTGRES_URL")
        }
        Err(_) => eprintln!("CAUHOP_TEST_POSTGRES_URL not set: PostgreSQL SKIPPED"),
    }
    out
}

fn new_site(code: &str, kind: SiteKind, parent: Option<i64>) -> NewSite {
    NewSite {
        code: code.into(),
        name: format!("Site {code}"),
        kind,
        parent_id: parent,
        down_kbps: 384,
        up_kbps: 128,
    }
}

#[tokio::test]
async fn every_entity_round_trips_on_both_backends() {
    for (store, _dir) in stores().await {
        let b = store.backend();
        let province = store
            .create_site(&new_site("10", SiteKind::Province, None))
            .await
            .expect("province");
        let district = store
            .create_site(&new_site("10-080", SiteKind::District, Some(province.id)))
            .await
            .expect("district");
        let commune = store
            .create_site(&NewSite {
                name: "Xã Tả Van".into(),
                ..new_site("10-080-02", SiteKind::Commune, Some(district.id))
            })
            .await
            .expect("commune");
        assert_eq!(
            store.site(commune.id).await.expect("read"),
            commune,
            "{b:?}"
        );
        assert_eq!(commune.name, "Xã Tả Van");
        assert_eq!(
            store.district_of(commune.id).await.expect("district"),
            Some(district.id)
        );
        let under = store
            .sites(Some(district.id), Page::default())
            .await
            .expect("list");
        assert_eq!(under.total, 2);

        let admin = store
            .create_person(
                "tinh",
                "Quản trị tỉnh",
                PersonRole::ProvinceAdmin,
                None,
                Some("$argon2id$x"),
            )
            .await
            .expect("person");
        assert_eq!(store.person(admin.id).await.expect("read"), admin);
        let (p, hash) = store
            .person_for_login("tinh")
            .await
            .expect("query")
            .expect("found");
        assert_eq!((p.id, hash.as_deref()), (admin.id, Some("$argon2id$x")));
        let official = store
            .create_person(
                "xa.tavan",
                "Chủ tịch xã",
                PersonRole::Official,
                Some(commune.id),
                None,
            )
            .await
            .expect("official");

        let ep = store
            .create_endpoint(&NewEndpoint {
                site_id: commune.id,
                name: "Phòng họp xã".into(),
            })
            .await
            .expect("endpoint");
        assert!(ep.key.starts_with("chd_") && ep.key.len() > 30);
        assert_eq!(
            store.endpoint_by_key(&ep.key).await.expect("query"),
            Some(ep.endpoint.clone())
        );
        store
            .record_endpoint_health(
                ep.endpoint.id,
                &serde_json::json!({"state": "idle"}),
                Instant(5),
            )
            .await
            .expect("health");
        let e = store.endpoint(ep.endpoint.id).await.expect("read");
        assert_eq!(e.last_seen, Some(Instant(5)));
        assert_eq!(e.health, Some(serde_json::json!({"state": "idle"})));
        let rotated = store.rotate_endpoint_key(e.id).await.expect("rotate");
        assert!(
            store
                .endpoint_by_key(&ep.key)
                .await
                .expect("query")
                .is_none(),
            "old key dead"
        );
        assert!(
            store
                .endpoint_by_key(&rotated.key)
                .await
                .expect("query")
                .is_some()
        );
        store.revoke_endpoint(e.id).await.expect("revoke");
        assert!(
            store
                .endpoint_by_key(&rotated.key)
                .await
                .expect("query")
                .is_none()
        );

        let start = Instant::now().plus(3600);
        let m = store
            .create_meeting(
                &NewMeeting {
                    title: "Giao ban tuần".into(),
                    agenda: "1. Phòng chống lũ\n2. Thu hoạch".into(),
                    starts_at: start,
                    ends_at: start.plus(5400),
                    rrule: Some("FREQ=WEEKLY;COUNT=4".into()),
                    chair_site_id: province.id,
                    roster: vec![
                        Invitation {
                            site_id: commune.id,
                            person_id: None,
                            role: MeetingRole::Participant,
                        },
                        Invitation {
                            site_id: commune.id,
                            person_id: Some(official.id),
                            role: MeetingRole::Presenter,
                        },
                    ],
                },
                Some(admin.id),
            )
            .await
            .expect("meeting");
        let read = store.meeting(m.id).await.expect("read");
        assert_eq!(read, m);
        assert_eq!(read.roster.len(), 3, "chair site added");
        assert_eq!(read.role_of(province.id, None), Some(MeetingRole::Chair));
        assert_eq!(
            read.role_of(commune.id, Some(official.id)),
            Some(MeetingRole::Presenter)
        );
        assert_eq!(
            read.role_of(commune.id, None),
            Some(MeetingRole::Participant)
        );
        assert_eq!(read.role_of(district.id, None), None);
        let listed = store
            .meetings(
                MeetingFilter {
                    site: Some(commune.id),
                    ..Default::default()
                },
                Page::default(),
            )
            .await
            .expect("list");
        assert_eq!(listed.items, vec![m.clone()]);
        let none = store
            .meetings(
                MeetingFilter {
                    district: Some(district.id),
                    to: Some(Instant(0)),
                    ..Default::default()
                },
                Page::default(),
            )
            .await
            .expect("list");
        assert_eq!(none.total, 0);
        store
            .extend_meeting(m.id, start.plus(6000))
            .await
            .expect("extend");
        store
            .end_meeting(m.id, start.plus(6000))
            .await
            .expect("end");
        let read = store.meeting(m.id).await.expect("read");
        assert_eq!(read.extended_until, Some(start.plus(6000)));
        assert_eq!(read.ended_at, Some(start.plus(6000)));

        let link = store
            .create_link(&JoinLink {
                jti: "jti-1".into(),
                meeting_id: m.id,
                site_id: commune.id,
                person_id: None,
                role: MeetingRole::Participant,
                expires_at: start.plus(7200),
                revoked_at: None,
            })
            .await
            .expect("link");
        assert_eq!(store.link("jti-1").await.expect("read"), Some(link.clone()));
        let revoked = store
            .revoke_link("jti-1", Instant(9))
            .await
            .expect("revoke");
        assert_eq!(revoked.revoked_at, Some(Instant(9)));
        assert_eq!(store.links(m.id).await.expect("list").len(), 1);

        let att = store
            .start_attendance(
                &NewAttendance {
                    meeting_id: m.id,
                    site_id: Some(commune.id),
                    person_id: None,
                    endpoint_id: None,
                    display_name: "Xã Tả Van".into(),
                },
                Instant(100),
            )
            .await
            .expect("attendance");
        store
            .end_attendance(att, Instant(160))
            .await
            .expect("leave");
        let rows = store.attendance(m.id).await.expect("list");
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].seconds, rows[0].left_at), (60, Some(Instant(160))));

        // A removal keeps that link (and only it) out of the meeting from then on.
        store
            .record_removal(
                &NewRemoval {
                    meeting_id: m.id,
                    site_id: Some(commune.id),
                    person_id: None,
                    endpoint_id: None,
                    jti: Some("jti-removed".into()),
                    reason: "tiếng ồn".into(),
                    by: "Chủ trì (UBND tỉnh)".into(),
                },
                Instant(200),
            )
            .await
            .expect("removal");
        let removed = |since, jti: Option<&'static str>, ep: Option<i64>| {
            let store = store.clone();
            async move {
                store
                    .removal(m.id, Instant(since), None, ep, jti)
                    .await
                    .expect("removal query")
            }
        };
        assert_eq!(
            removed(100, Some("jti-removed"), None).await.as_deref(),
            Some("tiếng ồn")
        );
        assert_eq!(removed(100, Some("another"), None).await, None);
        assert_eq!(
            removed(100, None, Some(7)).await,
            None,
            "no credential named"
        );
        assert_eq!(
            removed(300, Some("jti-removed"), None).await,
            None,
            "a later session of the meeting"
        );
        let call = RollCall {
            called_at: Instant(250),
            sites: vec![
                RollCallEntry {
                    site_id: commune.id,
                    status: RollCallStatus::Present,
                    confirmed_at: Some(Instant(262)),
                },
                RollCallEntry {
                    site_id: district.id,
                    status: RollCallStatus::Absent,
                    confirmed_at: None,
                },
            ],
        };
        store
            .record_roll_call(m.id, &call)
            .await
            .expect("roll call");
        assert_eq!(
            store.roll_calls(m.id).await.expect("roll calls"),
            vec![call]
        );
        assert_eq!(
            store.meeting_settings(m.id).await.expect("defaults"),
            MeetingSettings::default()
        );
        for settings in [
            MeetingSettings {
                record: true,
                self_unmute: false,
                floor_limit_s: 180,
            },
            MeetingSettings {
                record: false,
                self_unmute: true,
                floor_limit_s: 0,
            },
        ] {
            store
                .put_meeting_settings(m.id, &settings)
                .await
                .expect("put");
            assert_eq!(store.meeting_settings(m.id).await.expect("get"), settings);
        }
        store
            .put_meeting_controls(m.id, "{\"locked\":true}", Instant(300))
            .await
            .expect("controls");
        store
            .put_meeting_controls(m.id, "{\"locked\":false}", Instant(310))
            .await
            .expect("controls again");
        assert_eq!(
            store
                .meeting_controls(m.id, Instant(305))
                .await
                .expect("read")
                .as_deref(),
            Some("{\"locked\":false}")
        );
        assert_eq!(
            store
                .meeting_controls(m.id, Instant(400))
                .await
                .expect("read"),
            None
        );

        store
            .create_session("tok", admin.id, "csrf1", Instant::now().plus(60))
            .await
            .expect("session");
        let s = store
            .session("tok", Instant::now())
            .await
            .expect("q")
            .expect("found");
        assert_eq!((s.person.id, s.csrf.as_str()), (admin.id, "csrf1"));
        assert!(
            store
                .session("tok", Instant::now().plus(120))
                .await
                .expect("q")
                .is_none(),
            "expired"
        );
        store.delete_session("tok").await.expect("logout");
        assert!(
            store
                .session("tok", Instant::now())
                .await
                .expect("q")
                .is_none()
        );

        store.put_setting("legacy", "v1").await.expect("put");
        store.put_setting("legacy", "v2").await.expect("replace");
        assert_eq!(
            store.take_setting("legacy").await.expect("take").as_deref(),
            Some("v2")
        );
        assert_eq!(store.take_setting("legacy").await.expect("gone"), None);

        store.delete_meeting(m.id).await.expect("delete");
        assert!(matches!(
            store.meeting(m.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.integrity_check().await.expect("check"), "ok");
        if b == Backend::Postgres {
            eprintln!("postgres round trip ok");
        }
    }
}

#[tokio::test]
async fn constraint_violations_name_the_field() {
    for (store, _dir) in stores().await {
        let p = store
            .create_site(&new_site("01", SiteKind::Province, None))
            .await
            .expect("province");
        let dup = store
            .create_site(&new_site("01", SiteKind::Province, None))
            .await;
        assert!(
            matches!(&dup, Err(StoreError::Conflict { field, .. }) if field == "code"),
            "{dup:?}"
        );
        let orphan = store
            .create_site(&new_site("02", SiteKind::Commune, None))
            .await;
        assert!(matches!(&orphan, Err(StoreError::Invalid { field, .. }) if field == "parent_id"));
        let wrong_parent = store
            .create_site(&new_site("03", SiteKind::Commune, Some(p.id)))
            .await;
        assert!(
            matches!(&wrong_parent, Err(StoreError::Invalid { field, reason }) if field == "parent_id" && reason.contains("district"))
        );
        let d = store
            .create_site(&new_site("04", SiteKind::District, Some(p.id)))
            .await
            .expect("district");
        let in_use = store.delete_site(p.id).await;
        assert!(
            matches!(&in_use, Err(StoreError::Conflict { .. })),
            "{in_use:?}"
        );
        let dup_user = async {
            store
                .create_person("a", "A", PersonRole::ProvinceAdmin, None, None)
                .await?;
            store
                .create_person("a", "A", PersonRole::ProvinceAdmin, None, None)
                .await
        }
        .await;
        assert!(
            matches!(&dup_user, Err(StoreError::Conflict { field, .. }) if field == "username")
        );
        let bad_admin = store
            .create_person("b", "B", PersonRole::DistrictAdmin, Some(p.id), None)
            .await;
        assert!(matches!(&bad_admin, Err(StoreError::Invalid { field, .. }) if field == "site_id"));
        let start = Instant::now().plus(600);
        let meeting = |s: i64, e: i64, roster: Vec<Invitation>| NewMeeting {
            title: "Họp".into(),
            agenda: String::new(),
            starts_at: start.plus(s),
            ends_at: start.plus(e),
            rrule: None,
            chair_site_id: p.id,
            roster,
        };
        let backwards = store.create_meeting(&meeting(100, 0, vec![]), None).await;
        assert!(matches!(&backwards, Err(StoreError::Invalid { field, .. }) if field == "ends_at"));
        let ghost = store
            .create_meeting(
                &meeting(
                    0,
                    60,
                    vec![Invitation {
                        site_id: 999,
                        person_id: None,
                        role: MeetingRole::Viewer,
                    }],
                ),
                None,
            )
            .await;
        assert!(
            matches!(&ghost, Err(StoreError::Invalid { field, .. }) if field == "roster[1].site_id"),
            "{ghost:?}"
        );
        let bad_rule = store
            .create_meeting(
                &NewMeeting {
                    rrule: Some("FREQ=HOURLY".into()),
                    ..meeting(0, 60, vec![])
                },
                None,
            )
            .await;
        assert!(matches!(&bad_rule, Err(StoreError::Invalid { field, .. }) if field == "rrule"));

        // Double booking a site that has a room endpoint: the conflict is named.
        store
            .create_endpoint(&NewEndpoint {
                site_id: d.id,
                name: "room".into(),
            })
            .await
            .expect("endpoint");
        let inv = || {
            vec![Invitation {
                site_id: d.id,
                person_id: None,
                role: MeetingRole::Participant,
            }]
        };
        let first = store
            .create_meeting(&meeting(0, 3600, inv()), None)
            .await
            .expect("first");
        let clash = store
            .create_meeting(&meeting(1800, 5400, inv()), None)
            .await;
        match clash {
            Err(StoreError::Overlap {
                meeting_id,
                site_id,
                ..
            }) => {
                assert_eq!((meeting_id, site_id), (first.id, d.id));
            }
            other => panic!("expected overlap, got {other:?}"),
        }
        assert_eq!(
            store.count_meetings().await.expect("count"),
            1,
            "the clash was rolled back"
        );
        store
            .create_meeting(&meeting(3600, 5400, inv()), None)
            .await
            .expect("back to back is fine");
    }
}

/// The audit log keeps each entry as recorded, reads newest first, filters by target and
/// actor, and keeps Vietnamese text and a long detail intact up to its cap.
#[tokio::test]
async fn audit_entries_round_trip_and_filter_on_both_backends() {
    for (store, _dir) in stores().await {
        let actor = AuditActor {
            person_id: Some(7),
            name: "tinh.admin".into(),
            client: Some("203.0.113.9".into()),
        };
        let cli = AuditActor {
            person_id: None,
            name: "cli:root".into(),
            client: None,
        };
        let first = store
            .record_audit(&NewAuditEntry {
                actor: actor.clone(),
                action: AuditAction::MeetingCreate,
                target_id: "12".into(),
                detail: serde_json::json!({"title": "Giao ban tuần"}),
            })
            .await
            .expect("record");
        assert_eq!(first.actor, "tinh.admin");
        assert_eq!(first.target_kind, "meeting");
        assert_eq!(first.detail["title"], "Giao ban tuần");
        store
            .record_audit(&NewAuditEntry {
                actor: actor.clone(),
                action: AuditAction::RosterChange,
                target_id: "12".into(),
                detail: serde_json::json!({"added": [3, 4]}),
            })
            .await
            .expect("record");
        let long = "x".repeat(40_000);
        let cut = store
            .record_audit(&NewAuditEntry {
                actor: cli,
                action: AuditAction::PersonPassword,
                target_id: "7".into(),
                detail: serde_json::json!({ "note": long }),
            })
            .await
            .expect("record");
        assert!(cut.detail.as_str().is_some_and(|s| s.len() < 16_100), "cut");

        let all = store
            .audit_log(&AuditFilter::default(), Page::default())
            .await
            .expect("read");
        assert_eq!(all.total, 3);
        let actions: Vec<_> = all.items.iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [
                AuditAction::PersonPassword,
                AuditAction::RosterChange,
                AuditAction::MeetingCreate
            ]
        );
        let meeting = AuditFilter {
            target_kind: Some("meeting".into()),
            target_id: Some("12".into()),
            ..Default::default()
        };
        assert_eq!(
            store
                .audit_log(&meeting, Page::default())
                .await
                .expect("read")
                .total,
            2
        );
        let by = AuditFilter {
            actor_id: Some(7),
            ..Default::default()
        };
        let page = Page {
            limit: 1,
            offset: 1,
        };
        let one = store.audit_log(&by, page).await.expect("read");
        assert_eq!((one.total, one.items.len()), (2, 1));
        assert_eq!(one.items[0].id, first.id);
        assert_eq!(one.items[0].client.as_deref(), Some("203.0.113.9"));
    }
}

#[tokio::test]
async fn link_samples_round_trip_read_by_meeting_and_by_site_and_are_pruned() {
    use cauhop_store::link_history::{Grade, LinkChunk, LinkSample};
    for (store, _dir) in stores().await {
        let b = store.backend();
        let sample = |at: i64, down: u32| LinkSample {
            at: Instant(at),
            down_kbps: down,
            up_kbps: 40,
            loss_down: Some(0.05),
            loss_up: Some(0.0),
            rtt_ms: Some(380),
            jitter_ms: Some(12),
            height: 180,
            audio_only: false,
            muted: false,
            heard: true,
            connected: true,
            uplink: Some(Grade::Good),
        };
        let chunk = |attendance_id, meeting_id, site_id, from: i64| LinkChunk {
            attendance_id,
            meeting_id,
            site_id,
            step_s: 10,
            samples: (0..6)
                .map(|i| sample(from + 10 * i, 300 + i as u32))
                .collect(),
        };
        // Two meetings a week apart; the site 7 in both, a guest without a site in one.
        let week = 7 * 86_400;
        let first = [
            chunk(1, 100, Some(7), 1_000_000),
            chunk(1, 100, Some(7), 1_000_060),
            chunk(2, 100, None, 1_000_000),
        ];
        let second = [chunk(3, 101, Some(7), 1_000_000 + week)];
        store.put_link_chunks(&first).await.expect("put");
        let empty = LinkChunk {
            samples: vec![],
            ..first[0].clone()
        };
        store
            .put_link_chunks(&[second[0].clone(), empty])
            .await
            .expect("the empty one skipped");

        let m = store.meeting_links(100).await.expect("by meeting");
        assert_eq!(m.len(), 3, "{b:?}");
        assert_eq!(
            m.iter()
                .filter(|c| c.attendance_id == 1)
                .cloned()
                .collect::<Vec<_>>(),
            first[..2].to_vec(),
            "{b:?}: oldest first, as kept"
        );
        let s = store
            .site_links(7, Instant(1_000_000 + 86_400))
            .await
            .expect("by site");
        assert_eq!(s, second.to_vec(), "{b:?}: the last days only");
        assert_eq!(
            store
                .prune_link_history(Instant(1_000_000 + 86_400))
                .await
                .expect("prune"),
            3,
            "{b:?}"
        );
        assert!(store.meeting_links(100).await.expect("gone").is_empty());
        assert_eq!(store.meeting_links(101).await.expect("kept").len(), 1);
    }
}
