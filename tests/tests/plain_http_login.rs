//! An IT officer who opens the admin page over plain HTTP on the LAN
//! (`http://10.0.0.5:8080/admin`) would log in, lose the Secure session cookie at once
//! and be sent back to the login form with no reason. The login says why instead, and
//! what to do; over HTTPS, or on this machine, it works as before.

use cauhop_signaling::Options;
use cauhop_tests::bridge::Bridge;
use serde_json::json;

/// The province's admin, with the test's password.
async fn admin(bridge: &Bridge, hash: &str) -> anyhow::Result<()> {
    bridge
        .store
        .create_person(
            "tinh",
            "Quản trị tỉnh",
            cauhop_store::model::PersonRole::ProvinceAdmin,
            None,
            Some(hash),
        )
        .await?;
    Ok(())
}

async fn login(bridge: &Bridge, origin: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let r = reqwest::Client::new()
        .post(bridge.url("/api/v1/login"))
        .header("origin", origin)
        .json(&json!({"username": "tinh", "password": "mat-khau-rat-dai-2026"}))
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_from_a_plain_http_page_on_the_lan_is_told_to_use_https() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let hash = cauhop_signaling::auth::hash_password("mat-khau-rat-dai-2026")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    admin(&bridge, &hash).await?;
    let (status, body) = login(&bridge, "http://10.0.0.5:8080").await?;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("HTTPS") && message.contains("secure_cookies"),
        "{message}"
    );
    for fine in ["https://10.0.0.5", "http://localhost:8080"] {
        let (status, body) = login(&bridge, fine).await?;
        assert_eq!(status, 200, "{fine}: {body}");
    }
    // A plain-HTTP LAN bridge whose operator turned Secure cookies off logs in.
    let lan = Bridge::start_with(Options {
        secure_cookies: false,
        ..Options::default()
    })
    .await?;
    admin(&lan, &hash).await?;
    let (status, body) = login(&lan, "http://10.0.0.5:8080").await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
