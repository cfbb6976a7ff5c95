//! `cauhop-endpoint`: the meeting-room agent. Follows its room's schedule on the bridge
//! and holds the meeting session on its own.

use std::sync::{Arc, Mutex};

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "cauhop-endpoint",
    version,
    about = "Cầu họp room agent: joins its room's meetings on its own"
)]
struct Cli {
    /// The bridge's address, e.g. https://cauhop.example.gov.vn
    #[arg(long, env = "CAUHOP_BRIDGE")]
    bridge: String,
    /// This room's device key (from the admin page, "Thiết bị phòng họp").
    #[arg(long, env = "CAUHOP_DEVICE_KEY", hide_env_values = true)]
    key: String,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let status = Arc::new(Mutex::new(cauhop_endpoint::agent::AgentStatus::default()));
        let agent = tokio::spawn(cauhop_endpoint::agent::run(
            cauhop_endpoint::agent::AgentConfig::new(&cli.bridge, &cli.key),
            status,
            rx,
        ));
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
        let _ = agent.await;
        Ok(())
    })
}
