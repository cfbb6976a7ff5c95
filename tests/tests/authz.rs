//! The authorization matrix: every API route, called as each kind of caller, returns
//! exactly the status the access rules allow. A new route without a row here fails the
//! `every_route_has_a_row` check against the OpenAPI document.

use std::collections::BTreeSet;

use cauhop_signaling::Options;
use cauhop_store::Instant;
use cauhop_store::model::*;
use cauhop_tests::api::{Api, As};
use cauhop_tests::bridge::Bridge;
use reqwest::Method;
use serde_json::{Value, json};

/// Callers, in the column order of the matrix.
const WHO: [&str; 5] = [
    "anonymous",
    "official",
    "district admin",
    "province admin",
    "endpoint",
];

struct Fixture {
    d1: i64,
    c1: i64,
    c2: i64,
    endpoint: i64,
    meeting: i64,
}

/// A target made fresh for each caller, so that a successful delete by one caller does
/// not turn the next caller's answer into a 404.
#[derive(Clone, Copy)]
enum Fresh {
    None,
    Commune,
    Official,
    Endpoint,
    Meeting,
    Link,
}

async fn fresh(
    store: &cauhop_store::Store,
    f: &Fixture,
    kind: Fresh,
    n: usize,
) -> anyhow::Result<String> {
    Ok(match kind {
        Fresh::None => String::new(),
        Fresh::Commune => store
            .create_site(&NewSite {
                code: format!("fresh-c{n}-{}", rand::random::<u32>()),
                name: "Xã mới".into(),
                kind: SiteKind::Commune,
                parent_id: Some(f.d1),
                down_kbps: 384,
                up_kbps: 128,
            })
            .await?
            .id
            .to_string(),
        Fresh::Official => store
            .create_person(
                &format!("fresh{n}-{}", rand::random::<u32>()),
                "Cán bộ",
                PersonRole::Official,
                Some(f.c1),
                None,
            )
            .await?
            .id
            .to_string(),
        Fresh::Endpoint => store
            .create_endpoint(&NewEndpoint {
                site_id: f.c1,
                name: "room".into(),
            })
            .await?
            .endpoint
            .id
            .to_string(),
        Fresh::Meeting => {
            let start = Instant::now()
                .plus(400 * 86_400 + n as i64 * 7200 + rand::random::<u16>() as i64 * 10_000);
            store
                .create_meeting(&meeting_body(f.d1, start, vec![]), None)
                .await?
                .id
                .to_string()
        }
        Fresh::Link => {
            let jti = format!("jti-{n}-{}", rand::random::<u32>());
            store
                .create_link(&JoinLink {
                    jti: jti.clone(),
                    meeting_id: f.meeting,
                    site_id: f.c1,
                    person_id: None,
                    role: MeetingRole::Participant,
                    expires_at: Instant::now().plus(3600),
                    revoked_at: None,
                })
                .await?;
            jti
        }
    })
}

fn meeting_body(chair: i64, start: Instant, roster: Vec<Invitation>) -> NewMeeting {
    NewMeeting {
        title: "Họp".into(),
        agenda: String::new(),
        starts_at: start,
        ends_at: start.plus(3600),
        rrule: None,
        chair_site_id: chair,
        roster,
    }
}

struct Row {
    method: Method,
    /// `{id}` is replaced by the fresh target, `{n}` by the caller's index.
    path: &'static str,
    fresh: Fresh,
    body: Option<Value>,
    expect: [u16; 5],
}

fn row(
    method: Method,
    path: &'static str,
    fresh: Fresh,
    body: Option<Value>,
    expect: [u16; 5],
) -> Row {
    Row {
        method,
        path,
        fresh,
        body,
        expect,
    }
}

/// The tree both tests use: province P, districts D1 and D2, commune C1 of D1 and C2 of
/// D2; and two admins with password `pw`: `district` (of D1) and `province`.
struct Sites {
    p: Site,
    d1: Site,
    d2: Site,
    c1: Site,
    c2: Site,
}

async fn two_districts_with_admins(store: &cauhop_store::Store, pw: &str) -> anyhow::Result<Sites> {
    let site = |code: &str, kind, parent| NewSite {
        code: code.into(),
        name: code.into(),
        kind,
        parent_id: parent,
        down_kbps: 384,
        up_kbps: 128,
    };
    let p = store
        .create_site(&site("P", SiteKind::Province, None))
        .await?;
    let d1 = store
        .create_site(&site("D1", SiteKind::District, Some(p.id)))
        .await?;
    let d2 = store
        .create_site(&site("D2", SiteKind::District, Some(p.id)))
        .await?;
    let c1 = store
        .create_site(&site("C1", SiteKind::Commune, Some(d1.id)))
        .await?;
    let c2 = store
        .create_site(&site("C2", SiteKind::Commune, Some(d2.id)))
        .await?;
    let hash = cauhop_signaling::auth::hash_password(pw).map_err(anyhow::Error::msg)?;
    store
        .create_person(
            "district",
            "Quản trị huyện",
            PersonRole::DistrictAdmin,
            Some(d1.id),
            Some(&hash),
        )
        .await?;
    store
        .create_person(
            "province",
            "Quản trị tỉnh",
            PersonRole::ProvinceAdmin,
            None,
            Some(&hash),
        )
        .await?;
    Ok(Sites { p, d1, d2, c1, c2 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_caller_as_the_rules_say() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let store = bridge.store.clone();
    let pw = "mật-khẩu-dài-2026";
    let Sites {
        p: _,
        d1,
        d2,
        c1,
        c2,
    } = two_districts_with_admins(&store, pw).await?;
    let hash = cauhop_signaling::auth::hash_password(pw).map_err(anyhow::Error::msg)?;
    store
        .create_person(
            "official",
            "Cán bộ xã",
            PersonRole::Official,
            Some(c1.id),
            Some(&hash),
        )
        .await?;
    let ep = store
        .create_endpoint(&NewEndpoint {
            site_id: c1.id,
            name: "Phòng họp C1".into(),
        })
        .await?;
    let meeting = store
        .create_meeting(
            &meeting_body(
                d1.id,
                Instant::now().plus(3600),
                vec![Invitation {
                    site_id: c1.id,
                    person_id: None,
                    role: MeetingRole::Participant,
                }],
            ),
            None,
        )
        .await?;
    let f = Fixture {
        d1: d1.id,
        c1: c1.id,
        c2: c2.id,
        endpoint: ep.endpoint.id,
        meeting: meeting.id,
    };

    let api = Api::new(bridge.url(""));
    let callers = [
        As::Anonymous,
        api.login("official", pw).await?,
        api.login("district", pw).await?,
        api.login("province", pw).await?,
        As::Device(ep.key.clone()),
    ];

    let site_body =
        |code: &str| json!({"code": code, "name": "Xã", "kind": "commune", "parent_id": f.d1});
    // No room endpoint at the chair sites: several callers may book the same slot.
    let m_body = |chair: i64, day: i64| {
        let start = Instant::now().plus(30 * 86_400 + day * 86_400);
        json!({"title": "Họp", "starts_at": start, "ends_at": start.plus(3600), "chair_site_id": chair})
    };
    use Method as M;
    let (d1, c2, e, m) = (f.d1, f.c2, f.endpoint, f.meeting);
    let s = |x: String| -> &'static str { Box::leak(x.into_boxed_str()) };
    //                                                                anon offi dist prov endp
    let rows = vec![
        row(
            M::POST,
            "/api/v1/login",
            Fresh::None,
            Some(json!({"username": "province", "password": "wrong-password"})),
            [401, 401, 401, 401, 401],
        ),
        row(
            M::GET,
            "/api/v1/me",
            Fresh::None,
            None,
            [401, 200, 200, 200, 403],
        ),
        row(
            M::GET,
            "/api/v1/sites",
            Fresh::None,
            None,
            [401, 200, 200, 200, 403],
        ),
        row(
            M::POST,
            "/api/v1/sites",
            Fresh::None,
            Some(site_body("new-{n}")),
            [401, 403, 201, 201, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/sites/{d1}")),
            Fresh::None,
            None,
            [401, 200, 200, 200, 403],
        ),
        row(
            M::PUT,
            "/api/v1/sites/{id}",
            Fresh::Commune,
            Some(site_body("put-{n}")),
            [401, 403, 200, 200, 403],
        ),
        row(
            M::PUT,
            s(format!("/api/v1/sites/{c2}")),
            Fresh::None,
            Some(json!({"code": "C2", "name": "C2", "kind": "commune", "parent_id": 0})),
            [401, 403, 403, 422, 403],
        ),
        row(
            M::DELETE,
            "/api/v1/sites/{id}",
            Fresh::Commune,
            None,
            [401, 403, 204, 204, 403],
        ),
        row(
            M::GET,
            "/api/v1/people",
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::POST,
            "/api/v1/people",
            Fresh::None,
            Some(
                json!({"username": "u{n}", "display_name": "Cán bộ", "role": "official", "site_id": f.c1}),
            ),
            [401, 403, 201, 201, 403],
        ),
        row(
            M::POST,
            "/api/v1/people",
            Fresh::None,
            Some(
                json!({"username": "a{n}", "display_name": "Admin", "role": "province_admin", "password": "mật-khẩu-dài-2026"}),
            ),
            [401, 403, 403, 201, 403],
        ),
        row(
            M::DELETE,
            "/api/v1/people/{id}",
            Fresh::Official,
            None,
            [401, 403, 204, 204, 403],
        ),
        row(
            M::GET,
            "/api/v1/endpoints",
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::POST,
            "/api/v1/endpoints",
            Fresh::None,
            Some(json!({"site_id": f.c1, "name": "Phòng họp"})),
            [401, 403, 201, 201, 403],
        ),
        row(
            M::POST,
            "/api/v1/endpoints",
            Fresh::None,
            Some(json!({"site_id": f.c2, "name": "Phòng họp"})),
            [401, 403, 403, 201, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/endpoints/{e}")),
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::POST,
            "/api/v1/endpoints/{id}/key",
            Fresh::Endpoint,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::DELETE,
            "/api/v1/endpoints/{id}",
            Fresh::Endpoint,
            None,
            [401, 403, 204, 204, 403],
        ),
        row(
            M::GET,
            "/api/v1/device/schedule",
            Fresh::None,
            None,
            [401, 403, 403, 403, 200],
        ),
        row(
            M::POST,
            "/api/v1/device/health",
            Fresh::None,
            Some(json!({"state": "idle", "version": "test"})),
            [401, 403, 403, 403, 204],
        ),
        row(
            M::POST,
            "/api/v1/device/link-check",
            Fresh::None,
            None,
            [401, 403, 403, 403, 200],
        ),
        row(
            M::GET,
            "/api/v1/meetings",
            Fresh::None,
            None,
            [401, 200, 200, 200, 403],
        ),
        row(
            M::POST,
            "/api/v1/meetings",
            Fresh::None,
            Some(m_body(f.d1, 0)),
            [401, 403, 201, 201, 403],
        ),
        row(
            M::POST,
            "/api/v1/meetings",
            Fresh::None,
            Some(m_body(d2.id, 100)),
            [401, 403, 403, 201, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}")),
            Fresh::None,
            None,
            [401, 200, 200, 200, 403],
        ),
        row(
            M::PUT,
            "/api/v1/meetings/{id}",
            Fresh::Meeting,
            Some(m_body(f.d1, 200)),
            [401, 403, 200, 200, 403],
        ),
        row(
            M::DELETE,
            "/api/v1/meetings/{id}",
            Fresh::Meeting,
            None,
            [401, 403, 204, 204, 403],
        ),
        row(
            M::POST,
            s(format!("/api/v1/meetings/{m}/links")),
            Fresh::None,
            Some(json!({"site_id": f.c1})),
            [401, 403, 201, 201, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}/links")),
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::POST,
            "/api/v1/links/{id}/revoke",
            Fresh::Link,
            None,
            [401, 403, 200, 200, 403],
        ),
        // The official's site and the district (the chair) are invited; the province is not.
        row(
            M::POST,
            s(format!("/api/v1/meetings/{m}/join")),
            Fresh::None,
            None,
            [401, 201, 201, 403, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}/attendance")),
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}/live")),
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}/roll-calls")),
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        // The report reads as the attendance does; a site's links, by its district.
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}/report")),
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/sites/{d1}/links")),
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/sites/{c2}/links")),
            Fresh::None,
            None,
            [401, 403, 403, 200, 403],
        ),
        // An invited official reads how the meeting is run; its managers change it.
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}/settings")),
            Fresh::None,
            None,
            [401, 200, 200, 200, 403],
        ),
        row(
            M::PUT,
            s(format!("/api/v1/meetings/{m}/settings")),
            Fresh::None,
            Some(json!({"record": false, "self_unmute": true, "floor_limit_s": 120})),
            [401, 403, 200, 200, 403],
        ),
        // Records and the chair's powers: the chairing office's admins only.
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}/records")),
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::GET,
            s(format!("/api/v1/meetings/{m}/records/20260101-090000.ogg")),
            Fresh::None,
            None,
            [401, 403, 404, 404, 403],
        ),
        row(
            M::POST,
            s(format!("/api/v1/meetings/{m}/control")),
            Fresh::None,
            Some(json!({"type": "lock", "locked": false})),
            [401, 403, 200, 200, 403],
        ),
        // The audit log names every district's people and links: the province's only.
        row(
            M::GET,
            "/api/v1/audit",
            Fresh::None,
            None,
            [401, 403, 403, 200, 403],
        ),
        row(
            M::GET,
            "/api/v1/stats",
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        // The certificate in service (its fingerprint): any admin, as the page shows it.
        row(
            M::GET,
            "/api/v1/server",
            Fresh::None,
            None,
            [401, 403, 200, 200, 403],
        ),
        row(
            M::GET,
            "/api/v1/openapi.json",
            Fresh::None,
            None,
            [200, 200, 200, 200, 200],
        ),
        row(
            M::GET,
            "/api/v1/no-such-route",
            Fresh::None,
            None,
            [404, 404, 404, 404, 404],
        ),
        // Last: it ends the sessions.
        row(
            M::POST,
            "/api/v1/logout",
            Fresh::None,
            None,
            [401, 204, 204, 204, 403],
        ),
    ];

    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    for r in &rows {
        for (n, who) in callers.iter().enumerate() {
            let id = fresh(&store, &f, r.fresh, n).await?;
            let path = r.path.replace("{id}", &id);
            let body = r.body.as_ref().map(|b| {
                serde_json::from_str::<Value>(&b.to_string().replace("{n}", &n.to_string()))
                    .unwrap_or(Value::Null)
            });
            let (status, answer) = api
                .call(who, r.method.clone(), &path, body.as_ref())
                .await?;
            if status != r.expect[n] {
                failures.push(format!(
                    "{} {path} as {}: got {status}, want {} ({answer})",
                    r.method, WHO[n], r.expect[n]
                ));
            }
            if status >= 400 && !answer.is_object() {
                failures.push(format!(
                    "{} {path} as {}: error body is not JSON: {answer}",
                    r.method, WHO[n]
                ));
            }
        }
        covered.insert((r.method.as_str().to_lowercase(), openapi_path(r.path)));
    }
    eprintln!("{} routes x {} callers checked", rows.len(), WHO.len());
    assert!(
        failures.is_empty(),
        "authorization matrix mismatches:\n{}",
        failures.join("\n")
    );

    // Every route in the OpenAPI document has a row.
    let (_, doc) = api.get(&As::Anonymous, "/api/v1/openapi.json").await?;
    let mut missing = Vec::new();
    for (path, ops) in doc["paths"].as_object().cloned().unwrap_or_default() {
        for method in ops
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if !covered.contains(&(method.clone(), path.clone())) {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes without a row in the matrix: {missing:?}"
    );
    Ok(())
}

/// `/api/v1/sites/12` → `/api/v1/sites/{id}`, as the OpenAPI document writes paths.
fn openapi_path(p: &str) -> String {
    p.split('/')
        .map(|seg| {
            if seg == "{id}" || seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
                "{id}".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
        .replace("/links/{id}/revoke", "/links/{jti}/revoke")
        .replace("/records/20260101-090000.ogg", "/records/{file}")
}

/// A province meeting that invites a commune of district D1 (and one of D2): D1's admin
/// is involved, not in charge. It reads the meeting and its own sites' rows, issues and
/// revokes links for its own sites at their roster role; it cannot change or delete the
/// meeting, set roles, mint links for the province or D2, revoke D2's links, or see D2's
/// attendance, links or presence. The province admin sees and does all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_invited_to_a_province_meeting_reads_only_its_own_rows() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let store = bridge.store.clone();
    let pw = "mật-khẩu-dài-2026";
    let Sites { p, d1, d2, c1, c2 } = two_districts_with_admins(&store, pw).await?;
    let invite = |site_id| Invitation {
        site_id,
        person_id: None,
        role: MeetingRole::Participant,
    };
    let start = Instant::now().plus(3600);
    let m = store
        .create_meeting(
            &meeting_body(
                p.id,
                start,
                vec![invite(d1.id), invite(c1.id), invite(d2.id), invite(c2.id)],
            ),
            None,
        )
        .await?;
    let link = |jti: &str, site_id| JoinLink {
        jti: jti.into(),
        meeting_id: m.id,
        site_id,
        person_id: None,
        role: MeetingRole::Participant,
        expires_at: Instant::now().plus(7200),
        revoked_at: None,
    };
    store.create_link(&link("link-c1", c1.id)).await?;
    store.create_link(&link("link-c2", c2.id)).await?;
    for (s, name) in [(c1.id, "Xã C1"), (c2.id, "Xã C2")] {
        store
            .start_attendance(
                &NewAttendance {
                    meeting_id: m.id,
                    site_id: Some(s),
                    person_id: None,
                    endpoint_id: None,
                    display_name: name.into(),
                },
                Instant::now(),
            )
            .await?;
    }
    // Two sites present now, as the registry knows them.
    let room = cauhop_signaling::room_of(m.id);
    let (out, _rx) = cauhop_signaling::outbox::Outbox::new(16);
    for (s, id) in [(c1.id, "1"), (c2.id, "2")] {
        bridge.state.registry.join(
            &room,
            cauhop_protocol::ParticipantInfo {
                id: id.into(),
                name: format!("site {s}"),
                site: format!("site {s}"),
                district: String::new(),
                audio_muted: false,
                video_muted: false,
            },
            cauhop_signaling::Holder {
                site_id: Some(s),
                ..Default::default()
            },
            false,
            out.clone(),
        );
    }

    let api = Api::new(bridge.url(""));
    let district = api.login("district", pw).await?;
    let province = api.login("province", pw).await?;
    let id = m.id;
    let body = json!({"title": "Đổi", "starts_at": start, "ends_at": start.plus(3600), "chair_site_id": d1.id});
    let mut failures = Vec::new();
    let mut expect = |what: &str, got: u16, want: u16, answer: &Value| {
        if got != want {
            failures.push(format!("{what}: got {got}, want {want} ({answer})"));
        }
    };
    use Method as M;
    let calls: Vec<(&str, Method, String, Option<Value>, u16)> = vec![
        (
            "read the meeting",
            M::GET,
            format!("/api/v1/meetings/{id}"),
            None,
            200,
        ),
        (
            "rewrite it",
            M::PUT,
            format!("/api/v1/meetings/{id}"),
            Some(body.clone()),
            403,
        ),
        (
            "a chair link for the province",
            M::POST,
            format!("/api/v1/meetings/{id}/links"),
            Some(json!({"site_id": p.id, "role": "chair"})),
            403,
        ),
        (
            "a link for the province",
            M::POST,
            format!("/api/v1/meetings/{id}/links"),
            Some(json!({"site_id": p.id})),
            403,
        ),
        (
            "a link for D2's commune",
            M::POST,
            format!("/api/v1/meetings/{id}/links"),
            Some(json!({"site_id": c2.id})),
            403,
        ),
        (
            "a chair link for its own commune",
            M::POST,
            format!("/api/v1/meetings/{id}/links"),
            Some(json!({"site_id": c1.id, "role": "chair"})),
            403,
        ),
        (
            "a link for its own commune",
            M::POST,
            format!("/api/v1/meetings/{id}/links"),
            Some(json!({"site_id": c1.id})),
            201,
        ),
        (
            "revoke D2's link",
            M::POST,
            "/api/v1/links/link-c2/revoke".into(),
            None,
            403,
        ),
        (
            "revoke its own link",
            M::POST,
            "/api/v1/links/link-c1/revoke".into(),
            None,
            200,
        ),
        (
            "delete the meeting",
            M::DELETE,
            format!("/api/v1/meetings/{id}"),
            None,
            403,
        ),
    ];
    for (what, method, path, body, want) in calls {
        let (got, answer) = api.call(&district, method, &path, body.as_ref()).await?;
        expect(what, got, want, &answer);
    }

    // Reads are filtered to D1's own sites.
    let sites_of = |v: &Value, key: &str| -> BTreeSet<i64> {
        v.as_array()
            .map(|a| a.iter().filter_map(|x| x[key].as_i64()).collect())
            .unwrap_or_default()
    };
    let (_, links) = api
        .get(&district, &format!("/api/v1/meetings/{id}/links"))
        .await?;
    assert_eq!(
        sites_of(&links, "site_id"),
        BTreeSet::from([c1.id]),
        "D1 sees its own links only: {links}"
    );
    let (_, rows) = api
        .get(&district, &format!("/api/v1/meetings/{id}/attendance"))
        .await?;
    assert_eq!(
        sites_of(&rows, "site_id"),
        BTreeSet::from([c1.id]),
        "D1 sees its own attendance only: {rows}"
    );
    let (status, csv) = api
        .call(
            &district,
            M::GET,
            &format!("/api/v1/meetings/{id}/attendance?format=csv"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap_or_default().to_owned();
    assert!(
        csv.contains("Xã C1") && !csv.contains("Xã C2"),
        "D1's CSV has its own rows only: {csv}"
    );
    let (_, live) = api
        .get(&district, &format!("/api/v1/meetings/{id}/live"))
        .await?;
    let names: Vec<_> = live
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        vec![format!("site {}", c1.id)],
        "D1 sees its own sites live only"
    );

    // The province admin manages its own meeting and sees every district's rows.
    let (_, links) = api
        .get(&province, &format!("/api/v1/meetings/{id}/links"))
        .await?;
    assert_eq!(sites_of(&links, "site_id"), BTreeSet::from([c1.id, c2.id]));
    let (_, rows) = api
        .get(&province, &format!("/api/v1/meetings/{id}/attendance"))
        .await?;
    assert_eq!(sites_of(&rows, "site_id"), BTreeSet::from([c1.id, c2.id]));
    let (_, live) = api
        .get(&province, &format!("/api/v1/meetings/{id}/live"))
        .await?;
    assert_eq!(live.as_array().map_or(0, Vec::len), 2);
    let (got, answer) = api
        .call(
            &province,
            M::POST,
            &format!("/api/v1/meetings/{id}/links"),
            Some(&json!({"site_id": p.id, "role": "chair"})),
        )
        .await?;
    expect("province: a chair link for itself", got, 201, &answer);
    let (got, answer) = api
        .call(&province, M::POST, "/api/v1/links/link-c2/revoke", None)
        .await?;
    expect("province: revoke D2's link", got, 200, &answer);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
