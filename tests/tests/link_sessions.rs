//! A join link is one seat: opening it again replaces the older session (which is told
//! and does not come back by itself), a link naming a person joins under that person's
//! name whatever the page typed, meetings and the bridge have participant caps, and the
//! token travels in the URL's fragment, never in its query.

use std::time::Duration;

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_signaling::Options;
use cauhop_signaling::auth::{JoinKeys, JoinTokens};
use cauhop_store::model::*;
use cauhop_tests::api::Api;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, issued_link, open_meeting, province_tree};
use cauhop_tests::init_log;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_msg(ws: &mut Ws) -> Option<ServerMsg> {
    loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                return None;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn join(
    bridge: &Bridge,
    meeting: i64,
    token: &str,
    name: &str,
) -> anyhow::Result<(Ws, ServerMsg)> {
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    let msg = json!({"type":"join","v":1,"meeting":meeting.to_string(),"name":name,"token":token});
    ws.send(Message::Text(msg.to_string().into())).await?;
    let reply = next_msg(&mut ws)
        .await
        .ok_or_else(|| anyhow::anyhow!("no reply to join"))?;
    Ok((ws, reply))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_per_link_the_persons_name_and_caps() -> anyhow::Result<()> {
    init_log();
    let keys = JoinKeys::ephemeral();
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        max_per_meeting: 2,
        max_participants: 3,
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A", "B", "C"]).await?;
    let (p, sites) = (tree.province, tree.communes);
    let official = store
        .create_person(
            "an",
            "Nguyễn Văn An",
            PersonRole::Official,
            Some(sites[1]),
            None,
        )
        .await?;
    let m1 = store
        .create_meeting(
            &open_meeting(
                "Họp 1",
                p,
                vec![
                    invite(sites[0], None),
                    invite(sites[1], Some(official.id)),
                    invite(sites[2], None),
                ],
            ),
            None,
        )
        .await?;
    let m2 = store
        .create_meeting(
            &open_meeting("Họp 2", p, vec![invite(sites[2], None)]),
            None,
        )
        .await?;
    let tokens = JoinTokens::new(&keys);
    let mut issued = Vec::new();
    for (n, (m, site, pid)) in [
        (m1.id, sites[0], None),
        (m1.id, sites[1], Some(official.id)),
        (m1.id, sites[2], None),
        (m2.id, sites[2], None),
        (m2.id, sites[2], None),
    ]
    .into_iter()
    .enumerate()
    {
        let jti = format!("jti-{n}");
        issued.push(issued_link(&store, &tokens, &jti, m, site, pid).await?);
    }
    let room1 = cauhop_signaling::room_of(m1.id);

    // The same link twice: the second replaces the first.
    let (mut first, reply) = join(&bridge, m1.id, &issued[0], "Xã A").await?;
    assert!(matches!(reply, ServerMsg::Welcome { .. }), "{reply:?}");
    let (_second, reply) = join(&bridge, m1.id, &issued[0], "Xã A (máy 2)").await?;
    assert!(matches!(reply, ServerMsg::Welcome { .. }), "{reply:?}");
    let mut ending = None;
    while let Some(m) = next_msg(&mut first).await {
        if let ServerMsg::Error { code, fatal, .. } = m {
            ending = Some((code, fatal));
        }
    }
    assert_eq!(
        ending,
        Some((ErrorCode::Replaced, true)),
        "the first session is told"
    );
    for _ in 0..100 {
        if bridge.state.registry.count_in(&room1) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bridge.state.registry.count_in(&room1), 1);

    // A link naming a person joins as that person, whatever name the page sends.
    let (_an, reply) = join(&bridge, m1.id, &issued[1], "Kẻ mạo danh").await?;
    assert!(matches!(reply, ServerMsg::Welcome { .. }), "{reply:?}");
    let names: Vec<String> = bridge
        .state
        .registry
        .members(&room1)
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(names.contains(&"Nguyễn Văn An".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("mạo danh")), "{names:?}");

    // Caps: the meeting holds 2, the bridge 3.
    let (_c, reply) = join(&bridge, m1.id, &issued[2], "Xã C").await?;
    assert!(
        matches!(
            reply,
            ServerMsg::Error {
                code: ErrorCode::Full,
                ..
            }
        ),
        "a third in a meeting of two: {reply:?}"
    );
    let (_c2, reply) = join(&bridge, m2.id, &issued[3], "Xã C").await?;
    assert!(matches!(reply, ServerMsg::Welcome { .. }), "{reply:?}");
    let (_c3, reply) = join(&bridge, m2.id, &issued[4], "Xã C (2)").await?;
    assert!(
        matches!(
            reply,
            ServerMsg::Error {
                code: ErrorCode::Full,
                ..
            }
        ),
        "a fourth on a bridge of three: {reply:?}"
    );

    // Links are issued with the token in the fragment.
    let hash =
        cauhop_signaling::auth::hash_password("mật-khẩu-dài-2026").map_err(anyhow::Error::msg)?;
    store
        .create_person("tinh", "Tỉnh", PersonRole::ProvinceAdmin, None, Some(&hash))
        .await?;
    let api = Api::new(bridge.url(""));
    let admin = api.login("tinh", "mật-khẩu-dài-2026").await?;
    let (s, issued) = api
        .post(
            &admin,
            &format!("/api/v1/meetings/{}/links", m1.id),
            &json!({"site_id": sites[2]}),
        )
        .await?;
    assert_eq!(s, 201, "{issued}");
    let url = issued["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with(&format!("/m/{}#t=", m1.id)) && !url.contains('?'),
        "{url}"
    );
    Ok(())
}
