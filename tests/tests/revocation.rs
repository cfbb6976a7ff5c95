//! Withdrawing a credential removes whoever came in with it, within two seconds: a
//! revoked link, a replaced or deleted device key, a deleted person, a site taken off the
//! roster each end the connected sessions they cover (a final error, then the socket
//! closes, and the participant leaves the room), and nobody else's. A new password ends
//! the person's admin sessions.

use std::time::{Duration, Instant as Clock};

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_signaling::Options;
use cauhop_signaling::auth::JoinTokens;
use cauhop_store::model::*;
use cauhop_tests::api::{Api, As};
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, issued_link, open_meeting, province_tree};
use cauhop_tests::init_log;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a joined client ends with: the final error and when the socket closed.
struct Ending {
    code: Option<ErrorCode>,
    fatal: bool,
    after: Duration,
}

async fn join(bridge: &Bridge, meeting: i64, credential: Value) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    let mut msg = json!({"type":"join","v":1,"meeting":meeting.to_string(),"name":"Điểm cầu"});
    if let (Some(m), Some(c)) = (msg.as_object_mut(), credential.as_object()) {
        m.extend(c.clone());
    }
    ws.send(Message::Text(msg.to_string().into())).await?;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("closed before welcome"))??;
        if let Message::Text(t) = m {
            match serde_json::from_str::<ServerMsg>(&t)? {
                ServerMsg::Welcome { .. } => return Ok(ws),
                ServerMsg::Error { message, .. } => anyhow::bail!("join refused: {message}"),
                _ => {}
            }
        }
    }
}

/// Read until the socket closes (or `limit` passes); the last error seen.
async fn ending(ws: &mut Ws, limit: Duration) -> Ending {
    let start = Clock::now();
    let (mut code, mut fatal) = (None, false);
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout(limit.saturating_sub(start.elapsed()), ws.next()).await
    {
        match m {
            Message::Text(t) => {
                if let Ok(ServerMsg::Error {
                    code: c, fatal: f, ..
                }) = serde_json::from_str(&t)
                {
                    code = Some(c);
                    fatal = f;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ending {
        code,
        fatal,
        after: start.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_withdrawn_credential_ends_its_sessions_within_two_seconds() -> anyhow::Result<()> {
    init_log();
    let keys = cauhop_signaling::auth::JoinKeys::ephemeral();
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A", "B", "C", "E", "F"]).await?;
    let p = tree.province;
    let (a, b, c, e, f) = (
        tree.communes[0],
        tree.communes[1],
        tree.communes[2],
        tree.communes[3],
        tree.communes[4],
    );
    let pw = "mật-khẩu-dài-2026";
    let hash = cauhop_signaling::auth::hash_password(pw).map_err(anyhow::Error::msg)?;
    let admin = store
        .create_person(
            "tinh",
            "Quản trị tỉnh",
            PersonRole::ProvinceAdmin,
            None,
            Some(&hash),
        )
        .await?;
    let official = store
        .create_person("canbo", "Cán bộ xã C", PersonRole::Official, Some(c), None)
        .await?;
    let mut body = open_meeting(
        "Giao ban",
        p,
        vec![
            invite(a, None),
            invite(b, None),
            invite(c, Some(official.id)),
            invite(e, None),
            invite(f, None),
        ],
    );
    let m = store.create_meeting(&body, None).await?;
    let tokens = JoinTokens::new(&keys);
    let link = |jti: &'static str, site: i64, pid: Option<i64>| {
        let (store, tokens) = (store.clone(), &tokens);
        async move {
            let token = issued_link(&store, tokens, jti, m.id, site, pid).await?;
            anyhow::Ok(json!({ "token": token }))
        }
    };
    let room_a = store
        .create_endpoint(&NewEndpoint {
            site_id: b,
            name: "Phòng họp B1".into(),
        })
        .await?;
    let room_b = store
        .create_endpoint(&NewEndpoint {
            site_id: b,
            name: "Phòng họp B2".into(),
        })
        .await?;

    // Everyone in: five pages (one of them a bystander that stays) and two room agents.
    let mut page_a = join(&bridge, m.id, link("jti-a", a, None).await?).await?;
    let mut bystander = join(&bridge, m.id, link("jti-f", f, None).await?).await?;
    let mut page_c = join(&bridge, m.id, link("jti-c", c, Some(official.id)).await?).await?;
    let mut page_e = join(&bridge, m.id, link("jti-e", e, None).await?).await?;
    let mut agent_1 = join(&bridge, m.id, json!({"key": room_a.key})).await?;
    let mut agent_2 = join(&bridge, m.id, json!({"key": room_b.key})).await?;
    let room = cauhop_signaling::room_of(m.id);
    assert_eq!(bridge.state.registry.members(&room).len(), 6);

    let api = Api::new(bridge.url(""));
    let session = api.login("tinh", pw).await?;
    let limit = Duration::from_secs(2);
    let mut failures = Vec::new();
    let mut check = |what: &str, end: Ending, want: ErrorCode| {
        eprintln!("{what}: ended after {:?} ({:?})", end.after, end.code);
        if end.code != Some(want) || !end.fatal || end.after >= limit {
            failures.push(format!(
                "{what}: want a final {want:?} and a closed socket within {limit:?}, got {:?} (fatal {}) after {:?}",
                end.code, end.fatal, end.after
            ));
        }
    };

    let (s, _) = api
        .post(&session, "/api/v1/links/jti-a/revoke", &json!({}))
        .await?;
    assert_eq!(s, 200);
    check(
        "a revoked link",
        ending(&mut page_a, limit * 2).await,
        ErrorCode::Unauthorized,
    );

    let (s, _) = api
        .post(
            &session,
            &format!("/api/v1/endpoints/{}/key", room_a.endpoint.id),
            &json!({}),
        )
        .await?;
    assert_eq!(s, 200);
    check(
        "a replaced device key",
        ending(&mut agent_1, limit * 2).await,
        ErrorCode::Unauthorized,
    );

    let (s, _) = api
        .call(
            &session,
            reqwest::Method::DELETE,
            &format!("/api/v1/endpoints/{}", room_b.endpoint.id),
            None,
        )
        .await?;
    assert_eq!(s, 204);
    check(
        "a deleted device",
        ending(&mut agent_2, limit * 2).await,
        ErrorCode::Unauthorized,
    );

    let (s, _) = api
        .call(
            &session,
            reqwest::Method::DELETE,
            &format!("/api/v1/people/{}", official.id),
            None,
        )
        .await?;
    assert_eq!(s, 204);
    check(
        "a deleted person",
        ending(&mut page_c, limit * 2).await,
        ErrorCode::Unauthorized,
    );

    // Site E off the roster (the person's invitation went with the person).
    body.roster
        .retain(|i| i.site_id != e && i.person_id.is_none());
    let (s, answer) = api
        .call(
            &session,
            reqwest::Method::PUT,
            &format!("/api/v1/meetings/{}", m.id),
            Some(&serde_json::to_value(&body)?),
        )
        .await?;
    assert_eq!(s, 200, "{answer}");
    check(
        "a site taken off the roster",
        ending(&mut page_e, limit * 2).await,
        ErrorCode::NotInvited,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The bystander was never touched: still in the room, still answered.
    bystander
        .send(Message::Text(json!({"type":"ping"}).to_string().into()))
        .await?;
    let pong = tokio::time::timeout(Duration::from_secs(2), bystander.next()).await?;
    assert!(matches!(pong, Some(Ok(Message::Text(_)))), "{pong:?}");
    // The ended sessions leave the room (the socket closes first, the room follows).
    let deadline = Clock::now() + limit;
    while bridge.state.registry.members(&room).len() > 1 && Clock::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = bridge.state.registry.members(&room);
    assert_eq!(left.len(), 1, "only the bystander is left: {left:?}");

    // A new password ends the admin's sessions (as `cauhop admin set-password` sets it).
    let (s, _) = api.get(&session, "/api/v1/me").await?;
    assert_eq!(s, 200);
    let new_hash =
        cauhop_signaling::auth::hash_password("mật-khẩu-mới-2026").map_err(anyhow::Error::msg)?;
    store.set_password(admin.id, &new_hash).await?;
    let (s, _) = api.get(&session, "/api/v1/me").await?;
    assert_eq!(s, 401, "the old session ended with the old password");
    assert!(api.login("tinh", pw).await.is_err());
    let _fresh: As = api.login("tinh", "mật-khẩu-mới-2026").await?;
    Ok(())
}
