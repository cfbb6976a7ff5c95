//! Simulated sites as a program, for a meeting the test process cannot reach (a browser
//! and its bridge in a network namespace): `cauhop-sites --ws URL --meeting M --sites N
//! [--ip IP]` joins N str0m sites over the real WebSocket protocol and UDP. The first,
//! "Xã Bản Phố", speaks with a two-layer camera; the others send a small camera and a
//! silent microphone. Prints `ready` once every site's media is up, then runs until
//! killed.

use std::net::IpAddr;

use anyhow::Context;
use cauhop_tests::arg;
use cauhop_tests::sim_peer::{CAMERA_LAYERS, SimConfig, SimPeer};

/// The speaking site's name, which the page must show on its main tile.
const SPEAKER: &str = "Xã Bản Phố";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: cauhop-sites --ws URL --meeting M --sites N [--ip IP]";
    let ws = arg(&args, "--ws").context(usage)?;
    let meeting = arg(&args, "--meeting").context(usage)?;
    let n: usize = arg(&args, "--sites")
        .context(usage)?
        .parse()
        .context("--sites")?;
    let ip: Option<IpAddr> = arg(&args, "--ip")
        .map(|s| s.parse())
        .transpose()
        .context("--ip")?;
    let mut sites = Vec::with_capacity(n);
    for i in 0..n {
        let mut cfg = SimConfig::new(&meeting, &format!("Xã {}", i + 1));
        cfg.bind = ip;
        if i == 0 {
            cfg.name = SPEAKER.into();
            cfg.audio_level = 30;
            cfg.layers = CAMERA_LAYERS[..2].to_vec();
        } else {
            cfg.audio_level = 127;
            cfg.layers = CAMERA_LAYERS[..1].to_vec();
        }
        sites.push(
            SimPeer::join(&ws, cfg)
                .await
                .with_context(|| format!("site {}", i + 1))?,
        );
    }
    println!("ready");
    std::future::pending::<()>().await;
    drop(sites);
    Ok(())
}
