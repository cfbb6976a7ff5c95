//! A GStreamer `webrtcbin` participant as a program, for a bridge the test process
//! cannot reach (libnice, like Chrome, gathers no loopback candidate, so the bridge and
//! the peers run in a network namespace): `cauhop-gst --ws URL --meeting M --name N
//! --role publish|subscribe`. Prints `joined ID` once the bridge welcomed it, then one
//! JSON line a second with what the peer reports (`tests/src/gst_peer.rs`).

use std::time::Duration;

use anyhow::Context;
use cauhop_tests::arg;
use cauhop_tests::gst_peer::{GstPeer, check_installed};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: cauhop-gst --ws URL --meeting M --name N --role publish|subscribe";
    let ws = arg(&args, "--ws").context(usage)?;
    let meeting = arg(&args, "--meeting").context(usage)?;
    let name = arg(&args, "--name").context(usage)?;
    let publish = match arg(&args, "--role").as_deref() {
        Some("publish") => true,
        Some("subscribe") => false,
        _ => anyhow::bail!(usage),
    };
    check_installed()?;
    // The bridge may still be starting: retry the join for a while.
    let mut tries = 0;
    let peer = loop {
        match GstPeer::join(&ws, &meeting, &name, publish).await {
            Ok(p) => break p,
            Err(e) if tries < 100 => {
                tries += 1;
                if tries % 20 == 0 {
                    eprintln!("cauhop-gst: still waiting for the bridge: {e:#}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    };
    println!("joined {}", peer.id);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = peer.state();
        println!(
            "{}",
            serde_json::json!({
                "gstreamer": s.version,
                "connection": s.connection,
                "video_frames": s.video_frames,
                "audio_buffers": s.audio_buffers,
                "errors": s.errors,
                "bridge_said": s.bridge_said,
            })
        );
    }
}
