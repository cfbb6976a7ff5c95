//! `cauhop`: the whole bridge in one process (signaling, SFU, web client).

mod config;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{info, warn};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "cauhop",
    version,
    about = "Cầu họp: video-conference bridge for provincial meetings"
)]
struct Cli {
    /// TOML configuration file (see deploy/config.example.toml).
    #[arg(long, short, env = "CAUHOP_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge (the default).
    Serve(ServeArgs),
    /// Print the effective configuration as TOML and exit.
    PrintConfig(ServeArgs),
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// HTTP address for the page, API and WebSocket [default 0.0.0.0:8080].
    #[arg(long, env = "CAUHOP_HTTP_LISTEN")]
    listen: Option<SocketAddr>,
    /// UDP port for all media [default 50000].
    #[arg(long, env = "CAUHOP_SFU_PORT")]
    media_port: Option<u16>,
    /// Local IPs to receive media on, comma-separated [default: all IPv4 addresses].
    #[arg(long, env = "CAUHOP_SFU_LISTEN_IPS", value_delimiter = ',')]
    media_ip: Vec<IpAddr>,
    /// Public IP to advertise to clients (1:1 NAT).
    #[arg(long, env = "CAUHOP_SFU_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// Log one JSON object per line.
    #[arg(long, env = "CAUHOP_LOG_JSON")]
    log_json: bool,
}

impl ServeArgs {
    fn apply(&self, c: &mut Config) {
        if let Some(l) = self.listen {
            c.http.listen = l;
        }
        if let Some(p) = self.media_port {
            c.sfu.port = p;
        }
        if !self.media_ip.is_empty() {
            c.sfu.listen_ips = self.media_ip.clone();
        }
        if self.public_ip.is_some() {
            c.sfu.public_ip = self.public_ip;
        }
        c.log.json |= self.log_json;
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Some(Command::PrintConfig(args)) => {
            cli.serve.apply(&mut config);
            args.apply(&mut config);
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Some(Command::Serve(args)) => {
            cli.serve.apply(&mut config);
            args.apply(&mut config);
            serve(config)
        }
        None => {
            cli.serve.apply(&mut config);
            serve(config)
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,str0m=warn,dimpl=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(config.log.json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let sfu = cauhop_sfu::start(&config.sfu)
        .await
        .context("cannot start the media server")?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let admission = Box::new(cauhop_signaling::AdHoc::new(
        config.meetings.allowed.clone(),
    ));
    let state = cauhop_signaling::AppState::new(sfu.clone(), admission, shutdown_rx);
    let app = cauhop_signaling::app(state);
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let addr = listener.local_addr()?;
    let port = addr.port();
    info!(media = ?sfu.media_addrs(), "media on UDP port {}", config.sfu.port);
    // Browsers allow camera and microphone only on https or on localhost.
    println!("cauhop đang chạy — mở / open: http://localhost:{port}/");
    let shutdown = async move {
        wait_for_signal().await;
        info!("shutting down: telling clients the meeting ended");
        let _ = shutdown_tx.send(true);
        // Give sessions a moment to send `meeting_ended` before connections drop.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("HTTP server failed")?;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
