//! The link emulator as a program, for peers the test process cannot host (a browser in
//! a network namespace): `cauhop-link --ip IP --target IP:PORT --profile NAME [--seed N]`
//! prints `relay IP:PORT` once listening, then relays until killed. Profiles are those
//! of `tests/link-profiles.toml`.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use cauhop_tests::arg;
use cauhop_tests::link::Link;
use cauhop_tests::profiles::profile;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: cauhop-link --ip IP --target IP:PORT --profile NAME [--seed N]";
    let ip: IpAddr = arg(&args, "--ip").context(usage)?.parse().context("--ip")?;
    let target: SocketAddr = arg(&args, "--target")
        .context(usage)?
        .parse()
        .context("--target")?;
    let profile = profile(&arg(&args, "--profile").context(usage)?)?;
    let seed = arg(&args, "--seed")
        .map_or(Ok(1), |s| s.parse())
        .context("--seed")?;
    let link = Link::start_on(ip, target, &profile, seed).await?;
    println!("relay {}", link.addr);
    std::future::pending::<()>().await;
    Ok(())
}
