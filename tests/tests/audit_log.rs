//! Every administrative action through the API lands in the audit log with who did it,
//! from which address, and what it touched; a refused action does not; secrets (link
//! tokens, device keys, passwords) never do; only the province's admins read it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use cauhop_signaling::Options;
use cauhop_store::model::SiteKind;
use cauhop_tests::api::{Api, As};
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{office_admins, province_tree};
use reqwest::Method;
use serde_json::{Value, json};

const PW: &str = "mật-khẩu-dài-2026";

async fn ok(
    api: &Api,
    who: &As,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let (status, answer) = api.call(who, m.clone(), path, body.as_ref()).await?;
    anyhow::ensure!(
        (200..300).contains(&status),
        "{m} {path}: {status} {answer}"
    );
    Ok(answer)
}

#[tokio::test]
async fn each_administrative_action_is_recorded_with_who_where_and_what() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["C1"]).await?;
    let (admin, _) = office_admins(&store, &tree, PW).await?;

    // Through the TLS proxy on the bridge's machine (loopback, trusted by default).
    let office: IpAddr = "203.0.113.7".parse()?;
    let api = Api::forwarded_for(bridge.url(""), office)?;
    let tinh = api.login("tinh", PW).await?;
    let huyen = Api::new(bridge.url("")).login("huyen", PW).await?;
    use Method as M;

    let site = ok(
        &api,
        &tinh,
        M::POST,
        "/api/v1/sites",
        Some(json!({
        "code": "C2", "name": "Xã Mới", "kind": SiteKind::Commune, "parent_id": tree.district})),
    )
    .await?;
    let s = site["id"].as_i64().unwrap_or_default();
    ok(
        &api,
        &tinh,
        M::PUT,
        &format!("/api/v1/sites/{s}"),
        Some(json!({
        "code": "C2", "name": "Xã Mới (sáp nhập)", "kind": "commune", "parent_id": tree.district})),
    )
    .await?;
    let person = ok(
        &api,
        &tinh,
        M::POST,
        "/api/v1/people",
        Some(json!({
        "username": "canbo", "display_name": "Cán bộ", "role": "official", "site_id": s,
        "password": "một-mật-khẩu-khác"})),
    )
    .await?;
    let p = person["id"].as_i64().unwrap_or_default();
    let ep = ok(
        &api,
        &tinh,
        M::POST,
        "/api/v1/endpoints",
        Some(json!({"site_id": s, "name": "Phòng họp"})),
    )
    .await?;
    let e = ep["endpoint"]["id"].as_i64().unwrap_or_default();
    let rotated = ok(
        &api,
        &tinh,
        M::POST,
        &format!("/api/v1/endpoints/{e}/key"),
        None,
    )
    .await?;
    let start = cauhop_store::Instant::now().plus(86_400);
    let body = |roster: Value| {
        json!({"title": "Giao ban tuần", "starts_at": start,
        "ends_at": start.plus(3600), "chair_site_id": tree.province, "roster": roster})
    };
    let meeting = ok(
        &api,
        &tinh,
        M::POST,
        "/api/v1/meetings",
        Some(body(
            json!([{"site_id": tree.communes[0], "role": "participant"}]),
        )),
    )
    .await?;
    let m = meeting["id"].as_i64().unwrap_or_default();
    ok(
        &api,
        &tinh,
        M::PUT,
        &format!("/api/v1/meetings/{m}"),
        Some(body(json!([
        {"site_id": tree.communes[0], "role": "presenter"},
        {"site_id": s, "role": "participant"}]))),
    )
    .await?;
    let link = ok(
        &api,
        &tinh,
        M::POST,
        &format!("/api/v1/meetings/{m}/links"),
        Some(json!({"site_id": s})),
    )
    .await?;
    let jti = link["link"]["jti"].as_str().unwrap_or_default().to_owned();
    ok(
        &api,
        &tinh,
        M::POST,
        &format!("/api/v1/links/{jti}/revoke"),
        None,
    )
    .await?;

    // A district admin's refused attempt on the province's meeting leaves no entry.
    let (refused, _) = api
        .call(&huyen, M::DELETE, &format!("/api/v1/meetings/{m}"), None)
        .await?;
    assert_eq!(refused, 403);

    ok(
        &api,
        &tinh,
        M::DELETE,
        &format!("/api/v1/endpoints/{e}"),
        None,
    )
    .await?;
    ok(
        &api,
        &tinh,
        M::DELETE,
        &format!("/api/v1/meetings/{m}"),
        None,
    )
    .await?;
    ok(&api, &tinh, M::DELETE, &format!("/api/v1/people/{p}"), None).await?;
    ok(&api, &tinh, M::DELETE, &format!("/api/v1/sites/{s}"), None).await?;

    let log = ok(&api, &tinh, M::GET, "/api/v1/audit?limit=500", None).await?;
    let items = log["items"].as_array().cloned().unwrap_or_default();
    let (sid, pid, eid, mid) = (s.to_string(), p.to_string(), e.to_string(), m.to_string());
    let expected: [(&str, &str); 16] = [
        ("person.login", "?"),
        ("site.create", &sid),
        ("site.update", &sid),
        ("person.create", &pid),
        ("endpoint.create", &eid),
        ("endpoint.key_rotate", &eid),
        ("meeting.create", &mid),
        ("roster.change", &mid),
        ("meeting.update", &mid),
        ("roster.change", &mid),
        ("link.create", &jti),
        ("link.revoke", &jti),
        ("endpoint.delete", &eid),
        ("meeting.delete", &mid),
        ("person.delete", &pid),
        ("site.delete", &sid),
    ];
    // Newest first; by the province admin, from the office behind the proxy.
    let mine: Vec<&Value> = items
        .iter()
        .rev()
        .filter(|i| i["actor"] == "tinh")
        .collect();
    let got: Vec<(String, String)> = mine
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap_or("").to_owned(),
                i["target_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(a, t)| {
            (
                a.to_string(),
                if *t == "?" {
                    admin.id.to_string()
                } else {
                    t.to_string()
                },
            )
        })
        .collect();
    assert_eq!(got, want, "the province admin's actions, in order");
    for i in &mine {
        assert_eq!(i["client"], office.to_string(), "{i}");
        assert_eq!(i["actor_id"], admin.id, "{i}");
    }
    // The district admin logged in (from loopback: no proxy header) and did nothing else.
    let theirs: BTreeSet<&str> = items
        .iter()
        .filter(|i| i["actor"] == "huyen")
        .filter_map(|i| i["action"].as_str())
        .collect();
    assert_eq!(theirs, BTreeSet::from(["person.login"]));

    // What changed is said: the roster's additions (the chair site is on it by itself) and role change, the site's old name.
    let roster: Vec<&Value> = mine
        .iter()
        .copied()
        .filter(|i| i["action"] == "roster.change")
        .collect();
    assert_eq!(
        roster[0]["detail"]["added"],
        json!([
            format!("{}:chair", tree.province),
            format!("{}:participant", tree.communes[0])
        ])
    );
    assert_eq!(
        roster[1]["detail"]["added"],
        json!([format!("{s}:participant")])
    );
    assert_eq!(
        roster[1]["detail"]["role"],
        json!([format!("{}:participant -> presenter", tree.communes[0])])
    );
    let update = mine
        .iter()
        .find(|i| i["action"] == "site.update")
        .cloned()
        .cloned()
        .unwrap_or_default();
    assert_eq!(update["detail"]["before"]["name"], "Xã Mới");
    assert_eq!(update["detail"]["name"], "Xã Mới (sáp nhập)");

    // No secret is in it.
    let text = log.to_string();
    for secret in [
        link["token"].as_str().unwrap_or("?"),
        ep["key"].as_str().unwrap_or("?"),
        rotated["key"].as_str().unwrap_or("?"),
        "một-mật-khẩu-khác",
    ] {
        assert!(!text.contains(secret), "a secret is in the audit log");
    }

    // Filters: one meeting's history; a wrong filter is a clear 422.
    let one = ok(
        &api,
        &tinh,
        M::GET,
        &format!("/api/v1/audit?kind=meeting&target={m}"),
        None,
    )
    .await?;
    assert_eq!(one["total"], 5, "{one}");
    let (bad, answer) = api.get(&tinh, "/api/v1/audit?kind=planet").await?;
    assert_eq!(bad, 422, "{answer}");

    // The log is the province's: a district admin is refused it.
    let (status, _) = api.get(&huyen, "/api/v1/audit").await?;
    assert_eq!(status, 403);
    Ok(())
}
