//! Bad API input gets a clear JSON error naming the field, never a 500, on SQLite and on
//! PostgreSQL; what was stored before is still there afterwards.

use cauhop_signaling::Options;
use cauhop_store::model::PersonRole;
use cauhop_store::{Instant, Store};
use cauhop_tests::api::{Api, As};
use cauhop_tests::bridge::Bridge;
use reqwest::Method;
use serde_json::{Value, json};

async fn bridges() -> anyhow::Result<Vec<Bridge>> {
    let mut out = vec![Bridge::start_with(Options::default()).await?];
    match std::env::var("CAUHOP_TEST_POSTGRES_URL") {
        Ok(base) => {
            let url = cauhop_store::create_scratch_database(&base, "cauhop_api").await?;
            out.push(Bridge::start_on(Store::open(&url).await?, Options::default(), None).await?);
        }
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            anyhow::bail!("CI must test PostgreSQL too: set CAUHOP_TEST_POSTGRES_URL")
        }
        Err(_) => eprintln!("CAUHOP_TEST_POSTGRES_URL not set: PostgreSQL SKIPPED"),
    }
    Ok(out)
}

fn expect(what: &str, got: (u16, Value), status: u16, error: &str, field: Option<&str>) {
    let (s, body) = got;
    assert_eq!(s, status, "{what}: {body}");
    assert_eq!(body["error"], error, "{what}: {body}");
    if let Some(f) = field {
        assert_eq!(body["field"], f, "{what}: {body}");
    }
    assert!(
        !body["message"].as_str().unwrap_or_default().is_empty(),
        "{what}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_named_and_nothing_is_lost() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    for bridge in bridges().await? {
        let backend = bridge.store.backend();
        let hash = cauhop_signaling::auth::hash_password("mật-khẩu-dài-2026")
            .map_err(anyhow::Error::msg)?;
        bridge
            .store
            .create_person("tinh", "Tỉnh", PersonRole::ProvinceAdmin, None, Some(&hash))
            .await?;
        let api = Api::new(bridge.url(""));
        let admin = api.login("tinh", "mật-khẩu-dài-2026").await?;
        let post = |path: &'static str, body: Value| {
            let (api, admin) = (api.clone(), admin.clone());
            async move { api.post(&admin, path, &body).await }
        };
        let (s, p) = post(
            "/api/v1/sites",
            json!({"code": "10", "name": "Lào Cai", "kind": "province"}),
        )
        .await?;
        assert_eq!(s, 201, "{backend:?} {p}");
        let pid = p["id"].as_i64().unwrap_or_default();
        let (_, d) = post(
            "/api/v1/sites",
            json!({"code": "080", "name": "Sa Pa", "kind": "district", "parent_id": pid}),
        )
        .await?;
        let did = d["id"].as_i64().unwrap_or_default();

        expect(
            "duplicate code",
            post(
                "/api/v1/sites",
                json!({"code": "10", "name": "Again", "kind": "province"}),
            )
            .await?,
            409,
            "conflict",
            Some("code"),
        );
        expect(
            "commune under the province",
            post(
                "/api/v1/sites",
                json!({"code": "x", "name": "X", "kind": "commune", "parent_id": pid}),
            )
            .await?,
            422,
            "validation",
            Some("parent_id"),
        );
        expect(
            "missing field",
            post("/api/v1/sites", json!({"code": "y", "kind": "commune"})).await?,
            422,
            "validation",
            Some("name"),
        );
        expect(
            "unknown field",
            post(
                "/api/v1/sites",
                json!({"code": "y", "name": "Y", "kind": "province", "colour": 1}),
            )
            .await?,
            422,
            "validation",
            Some("colour"),
        );
        expect(
            "wrong type",
            post(
                "/api/v1/sites",
                json!({"code": "y", "name": "Y", "kind": "province", "down_kbps": "fast"}),
            )
            .await?,
            422,
            "validation",
            Some("down_kbps"),
        );
        expect(
            "unknown kind",
            post(
                "/api/v1/sites",
                json!({"code": "y", "name": "Y", "kind": "village"}),
            )
            .await?,
            422,
            "validation",
            Some("kind"),
        );
        expect(
            "bandwidth range",
            post(
                "/api/v1/sites",
                json!({"code": "y", "name": "Y", "kind": "province", "down_kbps": 0}),
            )
            .await?,
            422,
            "validation",
            Some("down_kbps"),
        );
        let (s, v) = api
            .call(&admin, Method::POST, "/api/v1/sites", None)
            .await?;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("bad_request")),
            "no body: {v}"
        );
        expect(
            "delete a site in use",
            api.call(
                &admin,
                Method::DELETE,
                &format!("/api/v1/sites/{pid}"),
                None,
            )
            .await?,
            409,
            "conflict",
            None,
        );
        expect(
            "no such site",
            api.get(&admin, "/api/v1/sites/999999").await?,
            404,
            "not_found",
            None,
        );
        expect(
            "limit out of range",
            api.get(&admin, "/api/v1/sites?limit=0").await?,
            422,
            "validation",
            Some("limit"),
        );
        expect(
            "unknown query",
            api.get(&admin, "/api/v1/sites?colour=red").await?,
            422,
            "validation",
            Some("query"),
        );

        expect("short password", post("/api/v1/people", json!({"username": "a", "display_name": "A", "role": "province_admin", "password": "short"})).await?, 422, "validation", Some("password"));
        expect(
            "duplicate username",
            post(
                "/api/v1/people",
                json!({"username": "tinh", "display_name": "A", "role": "province_admin"}),
            )
            .await?,
            409,
            "conflict",
            Some("username"),
        );
        expect(
            "endpoint at a ghost site",
            post(
                "/api/v1/endpoints",
                json!({"site_id": 424242, "name": "room"}),
            )
            .await?,
            422,
            "validation",
            Some("site_id"),
        );

        let start = Instant::now().plus(86_400);
        let meeting = |extra: Value| {
            let mut m = json!({"title": "Họp", "starts_at": start, "ends_at": start.plus(3600), "chair_site_id": did});
            if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            m
        };
        expect(
            "end before start",
            post(
                "/api/v1/meetings",
                meeting(json!({"ends_at": start.plus(-60)})),
            )
            .await?,
            422,
            "validation",
            Some("ends_at"),
        );
        expect(
            "bad time",
            post(
                "/api/v1/meetings",
                meeting(json!({"starts_at": "tomorrow 2pm"})),
            )
            .await?,
            422,
            "validation",
            Some("starts_at"),
        );
        expect(
            "bad rule",
            post("/api/v1/meetings", meeting(json!({"rrule": "FREQ=HOURLY"}))).await?,
            422,
            "validation",
            Some("rrule"),
        );
        expect(
            "ghost roster site",
            post(
                "/api/v1/meetings",
                meeting(json!({"roster": [{"site_id": 999, "role": "viewer"}]})),
            )
            .await?,
            422,
            "validation",
            Some("roster[1].site_id"),
        );
        expect(
            "bad role",
            post(
                "/api/v1/meetings",
                meeting(json!({"roster": [{"site_id": pid, "role": "king"}]})),
            )
            .await?,
            422,
            "validation",
            Some("roster[0].role"),
        );
        expect(
            "empty title",
            post("/api/v1/meetings", meeting(json!({"title": "  "}))).await?,
            422,
            "validation",
            Some("title"),
        );

        // Double booking of a site with a room endpoint names the other meeting.
        let (s, _) = post(
            "/api/v1/endpoints",
            json!({"site_id": did, "name": "Phòng họp huyện"}),
        )
        .await?;
        assert_eq!(s, 201);
        let (s, first) = post(
            "/api/v1/meetings",
            meeting(json!({"rrule": "FREQ=WEEKLY;COUNT=10"})),
        )
        .await?;
        assert_eq!(s, 201, "{first}");
        let three_weeks = Instant(start.0 + 21 * 86_400 + 1800);
        let (s, clash) = post(
            "/api/v1/meetings",
            meeting(json!({"starts_at": three_weeks, "ends_at": three_weeks.plus(3600)})),
        )
        .await?;
        assert_eq!(
            (s, clash["error"].as_str()),
            (409, Some("overlap")),
            "{clash}"
        );
        assert_eq!(clash["conflict"]["meeting_id"], first["id"], "{clash}");
        assert_eq!(clash["conflict"]["site_id"].as_i64(), Some(did));

        // Bad input changed nothing that was stored.
        let (_, sites) = api.get(&admin, "/api/v1/sites").await?;
        assert_eq!(sites["total"], 2, "{backend:?}: {sites}");
        let (_, meetings) = api.get(&admin, "/api/v1/meetings").await?;
        assert_eq!(meetings["total"], 1, "{backend:?}: {meetings}");
        let (s, _) = api.get(&As::Anonymous, "/healthz").await?;
        assert_eq!(s, 200);

        // A cookie without the CSRF token (what a forged cross-site form sends) changes nothing.
        if let As::Session { cookie, .. } = &admin {
            let forged = As::Session {
                cookie: cookie.clone(),
                csrf: "guess".into(),
            };
            expect(
                "no CSRF token",
                api.post(
                    &forged,
                    "/api/v1/sites",
                    &json!({"code": "z", "name": "Z", "kind": "province"}),
                )
                .await?,
                403,
                "forbidden",
                None,
            );
        }
        // Password guessing is slowed down per address.
        let mut statuses = Vec::new();
        for _ in 0..12 {
            let (s, _) = api
                .post(
                    &As::Anonymous,
                    "/api/v1/login",
                    &json!({"username": "tinh", "password": "wrong-guess-123"}),
                )
                .await?;
            statuses.push(s);
        }
        assert!(
            statuses.contains(&401) && statuses.last() == Some(&429),
            "{statuses:?}"
        );
        eprintln!("{backend:?}: API errors ok");
    }
    Ok(())
}
