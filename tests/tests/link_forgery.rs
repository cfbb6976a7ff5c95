//! A join link is worth exactly what the bridge issued: a token signed with the right key
//! but with claims that differ from the stored link (a forged chair link with a live
//! `jti`) is refused; the role comes from the roster as it is now; and the signing key is
//! not in the store, so a backup (owner-only) cannot be used to sign links.

use std::time::Duration;

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_signaling::Options;
use cauhop_signaling::auth::{JoinClaims, JoinKeys, JoinTokens};
use cauhop_store::Instant;
use cauhop_store::model::*;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, open_meeting, province_tree};
use cauhop_tests::init_log;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn join(bridge: &Bridge, meeting: i64, token: &str) -> anyhow::Result<ServerMsg> {
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    let msg =
        json!({"type":"join","v":1,"meeting":meeting.to_string(),"name":"Xã A","token":token});
    ws.send(Message::Text(msg.to_string().into())).await?;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("socket closed"))??;
        if let Message::Text(t) = m {
            return Ok(serde_json::from_str(&t)?);
        }
    }
}

fn role_of(reply: &ServerMsg) -> Option<&str> {
    match reply {
        ServerMsg::Welcome { role, .. } => Some(role),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_claims_are_refused_the_roster_decides_and_backups_hold_no_key() -> anyhow::Result<()>
{
    init_log();
    let keys = JoinKeys::ephemeral();
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["A"]).await?;
    let (p, a) = (tree.province, tree.communes[0]);
    let mut body = open_meeting("Giao ban", p, vec![invite(a, None)]);
    let m = store.create_meeting(&body, None).await?;
    let expires = Instant::now().plus(7200);
    store
        .create_link(&JoinLink {
            jti: "live-jti".into(),
            meeting_id: m.id,
            site_id: a,
            person_id: None,
            role: MeetingRole::Participant,
            expires_at: expires,
            revoked_at: None,
        })
        .await?;
    let tokens = JoinTokens::new(&keys);
    let claims = JoinClaims {
        jti: "live-jti".into(),
        mid: m.id,
        site: a,
        pid: None,
        role: MeetingRole::Participant,
        exp: expires.0,
        iat: Instant::now().0,
    };
    let sign = |c: &JoinClaims| tokens.issue(c).map_err(anyhow::Error::msg);

    // Signed with the bridge's own key, but not what was issued under that id.
    let forgeries = [
        (
            "a chair role",
            JoinClaims {
                role: MeetingRole::Chair,
                ..claims.clone()
            },
        ),
        (
            "the province's site",
            JoinClaims {
                site: p,
                ..claims.clone()
            },
        ),
        (
            "a later expiry",
            JoinClaims {
                exp: expires.0 + 86_400,
                ..claims.clone()
            },
        ),
    ];
    for (what, forged) in &forgeries {
        let reply = join(&bridge, m.id, &sign(forged)?).await?;
        match &reply {
            ServerMsg::Error { code, message, .. } => {
                assert_eq!(*code, ErrorCode::Unauthorized, "{what}: {message}");
                assert!(message.contains("does not match"), "{what}: {message}");
            }
            other => panic!("a forged link with {what} was admitted: {other:?}"),
        }
    }
    // A key the bridge does not hold is refused as well.
    let stranger = JoinTokens::new(&JoinKeys::ephemeral());
    let reply = join(
        &bridge,
        m.id,
        &stranger.issue(&claims).map_err(anyhow::Error::msg)?,
    )
    .await?;
    assert!(
        matches!(
            reply,
            ServerMsg::Error {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{reply:?}"
    );

    // The genuine link is admitted, at the roster's role.
    let genuine = sign(&claims)?;
    let reply = join(&bridge, m.id, &genuine).await?;
    assert_eq!(role_of(&reply), Some("participant"), "{reply:?}");
    // The roster narrows the site to a viewer: the same link now admits a viewer.
    body.roster[0].role = MeetingRole::Viewer;
    store.update_meeting(m.id, &body).await?;
    let reply = join(&bridge, m.id, &genuine).await?;
    assert_eq!(role_of(&reply), Some("viewer"), "{reply:?}");

    // A backup of the store holds no signing key.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("backup.db");
    store.backup_to(&file).await?;
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)?.permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup is owner-only, not {mode:o}");
    }
    let bytes = std::fs::read(&file)?;
    for k in keys.all() {
        let secret = k.secret.as_bytes();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "the backup holds the join-link key"
        );
    }
    let backup = cauhop_store::Store::open(&format!("sqlite://{}", file.display())).await?;
    assert_eq!(
        backup
            .setting(cauhop_signaling::auth::join_keys::LEGACY_SETTING)
            .await?,
        None
    );
    Ok(())
}
