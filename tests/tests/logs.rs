//! Structured logs (issue 17): every line the bridge logs about a participant names its
//! site, so that filtering the log by a commune's name tells that commune's story. Two
//! communes join a province meeting with real media and leave; the bridge's JSON log (as
//! `[log] json = true` writes it) is read back line by line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cauhop_signaling::Options;
use cauhop_signaling::auth::{JoinKeys, JoinTokens};
use cauhop_store::model::MeetingRole;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, issued_link_as, open_meeting, province_tree};
use cauhop_tests::sim_peer::{SimConfig, SimPeer};
use serde_json::Value;

/// The log, as the binary writes it to its journal.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A field of a JSON log line, from the event or from any span it is in.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["fields"].get(name).or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .rev()
            .find_map(|s| s.get(name))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_about_a_participant_names_its_site() -> anyhow::Result<()> {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter("info,str0m=warn,dimpl=warn")
        .with_writer(move || writer.clone())
        .try_init()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = JoinKeys::ephemeral();
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["Xã Tả Van", "Xã Bản Hồ"]).await?;
    let (a, b) = (tree.communes[0], tree.communes[1]);
    let m = store
        .create_meeting(
            &open_meeting(
                "Giao ban",
                tree.province,
                vec![invite(a, None), invite(b, None)],
            ),
            None,
        )
        .await?;
    let tokens = JoinTokens::new(&keys);
    let meeting = m.id.to_string();
    let mut peers = Vec::new();
    for (jti, site, name) in [("jti-a", a, "Đại biểu A"), ("jti-b", b, "Đại biểu B")] {
        let token = issued_link_as(
            &store,
            &tokens,
            jti,
            (m.id, site, None),
            MeetingRole::Participant,
        )
        .await?;
        peers.push(
            SimPeer::join(
                &bridge.ws_url(),
                SimConfig {
                    token: Some(token),
                    ..SimConfig::new(&meeting, name)
                },
            )
            .await?,
        );
    }
    cauhop_tests::wait_for("media", Duration::from_secs(20), || {
        peers[0].recent_audio(&peers[1], Duration::from_secs(1)) > 0
    })
    .await?;
    drop(peers);
    cauhop_tests::wait_for("both gone", Duration::from_secs(10), || {
        bridge.state.registry.count() == 0
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let text = String::from_utf8(
        log.0
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone(),
    )?;
    let mut about = 0;
    let mut unnamed = Vec::new();
    let mut tavan = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if field(&v, "participant").is_none() {
            continue;
        }
        about += 1;
        match field(&v, "site").and_then(Value::as_str) {
            Some(site) if !site.is_empty() => {
                if site == "Xã Tả Van" {
                    tavan.push(v["fields"]["message"].as_str().unwrap_or("").to_owned());
                }
            }
            _ => unnamed.push(line.to_owned()),
        }
    }
    eprintln!("{about} lines about a participant; Xã Tả Van's story:");
    for l in &tavan {
        eprintln!("  {l}");
    }
    assert!(
        unnamed.is_empty(),
        "lines about a participant without its site:\n{}",
        unnamed.join("\n")
    );
    // The commune's story has its join and its leave, from signaling and from the media
    // server both.
    for want in [
        "joined meeting",
        "joined media room",
        "left media room",
        "left meeting",
    ] {
        assert!(
            tavan.iter().any(|l| l == want),
            "'{want}' not in Xã Tả Van's story: {tavan:?}"
        );
    }
    Ok(())
}
