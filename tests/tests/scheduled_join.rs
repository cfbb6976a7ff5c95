//! End to end: an admin schedules a meeting through the API; the WebSocket join follows
//! the schedule, the roster and the link's validity; the meeting closes on time and its
//! participants are told.

use std::time::Duration;

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_signaling::Options;
use cauhop_store::Instant;
use cauhop_store::model::PersonRole;
use cauhop_store::schedule::ScheduleConfig;
use cauhop_tests::api::Api;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::init_log;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Ws, within: Duration) -> Option<ServerMsg> {
    loop {
        let m = tokio::time::timeout(within, ws.next()).await.ok()??.ok()?;
        match m {
            Message::Text(t) => return serde_json::from_str(&t).ok(),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Open a socket and send a join with `token`; returns the socket and the first reply.
async fn join(
    bridge: &Bridge,
    meeting: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<(Ws, ServerMsg)> {
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    let msg = json!({"type":"join","v":1,"meeting":meeting,"name":name,"token":token});
    ws.send(Message::Text(msg.to_string().into())).await?;
    let reply = recv(&mut ws, Duration::from_secs(5))
        .await
        .ok_or_else(|| anyhow::anyhow!("no reply to join"))?;
    Ok((ws, reply))
}

fn refusal(m: &ServerMsg) -> (ErrorCode, String, Option<String>) {
    match m {
        ServerMsg::Error {
            code, message, at, ..
        } => (*code, message.clone(), at.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_meeting_admits_invitees_in_its_window_and_closes_on_time() -> anyhow::Result<()>
{
    init_log();
    let bridge = Bridge::start_with(Options {
        ad_hoc: None,
        // A meeting compressed into seconds: lobby 1 s before, warning 1 s before the end,
        // closed 1 s after it.
        schedule: ScheduleConfig {
            lobby_before_secs: 1,
            warn_before_secs: 1,
            grace_secs: 1,
        },
        secure_cookies: true,
        ..Options::default()
    })
    .await?;
    let store = &bridge.store;
    let hash =
        cauhop_signaling::auth::hash_password("mật-khẩu-tỉnh-2026").map_err(anyhow::Error::msg)?;
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
    let admin = api.login("tinh", "mật-khẩu-tỉnh-2026").await?;

    // The administrative tree, through the API.
    let site = |code: &str, name: &str, kind: &str, parent: Option<i64>| json!({"code": code, "name": name, "kind": kind, "parent_id": parent, "down_kbps": 384, "up_kbps": 128});
    let (s, province) = api
        .post(
            &admin,
            "/api/v1/sites",
            &site("10", "Lào Cai", "province", None),
        )
        .await?;
    assert_eq!(s, 201, "{province}");
    let pid = province["id"].as_i64();
    let (_, district) = api
        .post(
            &admin,
            "/api/v1/sites",
            &site("080", "Sa Pa", "district", pid),
        )
        .await?;
    let did = district["id"].as_i64();
    let mut communes = Vec::new();
    for (code, name) in [("02", "Tả Van"), ("03", "Bản Hồ"), ("04", "Thanh Kim")] {
        let (s, c) = api
            .post(&admin, "/api/v1/sites", &site(code, name, "commune", did))
            .await?;
        assert_eq!(s, 201, "{c}");
        communes.push(c["id"].as_i64().unwrap_or_default());
    }
    let (a, b, c) = (communes[0], communes[1], communes[2]);

    // A meeting starting in 2 s (whole seconds: 2-3 s), 3 s long, with sites A and B.
    let start = Instant(Instant::now().0 + 3);
    let roster = |sites: &[i64]| -> Value {
        sites
            .iter()
            .map(|s| json!({"site_id": s, "role": "participant"}))
            .collect()
    };
    let (s, meeting) = api
        .post(
            &admin,
            "/api/v1/meetings",
            &json!({
                "title": "Giao ban phòng chống lũ", "agenda": "Tình hình mưa lũ",
                "starts_at": start, "ends_at": start.plus(3), "chair_site_id": did,
                "roster": roster(&[a, b]),
            }),
        )
        .await?;
    assert_eq!(s, 201, "{meeting}");
    let mid = meeting["id"].as_i64().unwrap_or_default();
    let m = mid.to_string();
    assert_eq!(meeting["phase"], "scheduled");

    let link = |site: i64, extra: Value| {
        let api = api.clone();
        let admin = admin.clone();
        let path = format!("/api/v1/meetings/{mid}/links");
        async move {
            let mut body = json!({"site_id": site});
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            let (s, v) = api.post(&admin, &path, &body).await?;
            anyhow::ensure!(s == 201, "link for {site}: {s} {v}");
            Ok::<_, anyhow::Error>((
                v["token"].as_str().unwrap_or_default().to_owned(),
                v["link"]["jti"].as_str().unwrap_or_default().to_owned(),
            ))
        }
    };
    let (token_a, _) = link(a, json!({})).await?;
    let (token_b, _) = link(b, json!({})).await?;
    let (token_b2, jti_b2) = link(b, json!({})).await?;
    // Two seconds, not one: with whole seconds, "now + 1" can already be "now" at the
    // server when the second turns over in between (seen once under load).
    let short_expiry = Instant(Instant::now().0 + 2);
    let (token_short, _) = link(a, json!({"expires_at": short_expiry})).await?;
    let (s, v) = api
        .post(
            &admin,
            &format!("/api/v1/meetings/{mid}/links"),
            &json!({"site_id": c}),
        )
        .await?;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("site_id")),
        "no link for an uninvited site: {v}"
    );

    // Before the lobby opens: refused, with when.
    let (_, reply) = join(&bridge, &m, &token_a, "Xã Tả Van").await?;
    let (code, message, at) = refusal(&reply);
    assert_eq!(code, ErrorCode::NotOpen, "{message}");
    assert!(message.contains("starts at"), "{message}");
    assert_eq!(at.as_deref(), Some(start.rfc3339().as_str()));
    eprintln!("before the lobby: {message}");

    // A forged token and a token for another meeting.
    let (_, reply) = join(&bridge, &m, "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl", "X").await?;
    assert_eq!(refusal(&reply).0, ErrorCode::Unauthorized);
    let (_, reply) = join(&bridge, "999", &token_a, "X").await?;
    assert_eq!(refusal(&reply).0, ErrorCode::Unauthorized);

    // Revoked link.
    let (s, _) = api
        .post(
            &admin,
            &format!("/api/v1/links/{jti_b2}/revoke"),
            &json!({}),
        )
        .await?;
    assert_eq!(s, 200);

    // Wait for the lobby.
    while Instant::now() < start.plus(-1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut ws_a, reply) = join(&bridge, &m, &token_a, "Xã Tả Van").await?;
    match &reply {
        ServerMsg::Welcome { meeting, role, .. } => {
            assert_eq!(
                (meeting.as_str(), role.as_str()),
                (m.as_str(), "participant")
            );
        }
        other => panic!("site A should be admitted in the lobby, got {other:?}"),
    }
    match recv(&mut ws_a, Duration::from_secs(2)).await {
        Some(ServerMsg::MeetingState { phase, title, .. }) => {
            assert!(phase == "lobby" || phase == "open", "{phase}");
            assert_eq!(title, "Giao ban phòng chống lũ");
        }
        other => panic!("expected meeting_state, got {other:?}"),
    }
    let (_, reply) = join(&bridge, &m, &token_b2, "Xã Bản Hồ").await?;
    let (code, message, _) = refusal(&reply);
    assert!(
        code == ErrorCode::Unauthorized && message.contains("revoked"),
        "{message}"
    );
    while Instant::now() <= short_expiry {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, reply) = join(&bridge, &m, &token_short, "Xã Tả Van").await?;
    assert_eq!(refusal(&reply).0, ErrorCode::LinkExpired);

    // Site B is taken off the roster: its link no longer admits it.
    let (s, v) = api
        .call(
            &admin,
            reqwest::Method::PUT,
            &format!("/api/v1/meetings/{mid}"),
            Some(&json!({
                "title": "Giao ban phòng chống lũ", "starts_at": start, "ends_at": start.plus(3),
                "chair_site_id": did, "roster": roster(&[a]),
            })),
        )
        .await?;
    assert_eq!(s, 200, "{v}");
    let (_, reply) = join(&bridge, &m, &token_b, "Xã Bản Hồ").await?;
    let (code, message, _) = refusal(&reply);
    assert_eq!(code, ErrorCode::NotInvited, "{message}");
    eprintln!("uninvited: {message}");

    // A participant may not end the meeting.
    ws_a.send(Message::Text(r#"{"type":"end_meeting"}"#.into()))
        .await?;
    // The admin sees A connected.
    let (s, live) = api
        .get(&admin, &format!("/api/v1/meetings/{mid}/live"))
        .await?;
    assert_eq!((s, live.as_array().map(Vec::len)), (200, Some(1)), "{live}");
    // Listed under its district, so a province meeting's roster groups by district.
    assert_eq!(live[0]["district"], "Sa Pa", "{live}");

    // Then the meeting runs out: closing warning, then the end.
    let mut saw_forbidden = false;
    let mut saw_closing = false;
    let ended = loop {
        match recv(&mut ws_a, Duration::from_secs(10)).await {
            Some(ServerMsg::Error {
                code: ErrorCode::Forbidden,
                ..
            }) => saw_forbidden = true,
            Some(ServerMsg::MeetingState { phase, .. }) if phase == "closing" => saw_closing = true,
            Some(ServerMsg::MeetingEnded { reason }) => break Some(reason),
            Some(_) => {}
            None => break None,
        }
    };
    assert!(saw_forbidden, "end_meeting from a participant is refused");
    assert!(saw_closing, "participants are warned before the end");
    assert_eq!(ended.as_deref(), Some("ended"));
    let closed_at = Instant::now();
    assert!(closed_at >= start.plus(4), "closes after end + grace");
    // The server closes the socket after telling.
    assert!(recv(&mut ws_a, Duration::from_secs(3)).await.is_none());

    // Too late now.
    let (_, reply) = join(&bridge, &m, &token_a, "Xã Tả Van").await?;
    assert_eq!(refusal(&reply).0, ErrorCode::MeetingClosed);

    // Attendance was recorded, and is exported as CSV.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, rows) = api
        .get(&admin, &format!("/api/v1/meetings/{mid}/attendance"))
        .await?;
    assert_eq!(s, 200);
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["site_id"].as_i64(), Some(a));
    assert!(
        rows[0]["left_at"].is_string(),
        "left_at recorded: {:?}",
        rows[0]
    );
    let (s, csv) = api
        .get(
            &admin,
            &format!("/api/v1/meetings/{mid}/attendance?format=csv"),
        )
        .await?;
    let csv = csv.as_str().unwrap_or_default().to_owned();
    assert_eq!(s, 200);
    assert!(
        csv.contains("Tả Van") && csv.contains("Giao ban phòng chống lũ"),
        "{csv}"
    );
    Ok(())
}
