//! `cauhop-endpoint`: the meeting-room agent. Follows its room's schedule on the bridge
//! and holds the meeting session on its own; `check` tests the link to the bridge.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use cauhop_endpoint::agent::{AgentConfig, AgentStatus, run};
use cauhop_endpoint::bridge::BridgeClient;
use cauhop_endpoint::check::{self, Plan, judge, render};
use cauhop_endpoint::settings::{FileSettings, Overrides, Settings, resolve};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cauhop-endpoint",
    version,
    about = "Cầu họp room agent: joins its room's meetings on its own"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum Command {
    /// Follow the room's schedule and join its meetings (the default).
    Run,
    /// Measure RTT, loss and bandwidth to the bridge (about 8 s) and print a verdict.
    /// Exit code: 0 go, 2 weak, 3 no-go, 1 the check could not run.
    Check,
}

#[derive(Args)]
struct Common {
    /// Settings file (TOML); flags override it.
    #[arg(long, env = "CAUHOP_ENDPOINT_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    /// The bridge's address, e.g. https://cauhop.example.gov.vn
    #[arg(long, env = "CAUHOP_BRIDGE", global = true)]
    bridge: Option<String>,
    /// PEM file of the CA that signed the bridge's certificate, when a province issues its
    /// own (trusted besides the public web's roots).
    #[arg(long, env = "CAUHOP_CA_FILE", global = true)]
    ca_file: Option<std::path::PathBuf>,
    /// Allow http:// to a bridge on another machine (a closed test network only: the
    /// room's key would cross the network in clear).
    #[arg(long, global = true)]
    insecure: bool,
    /// This room's device key (from the admin page, "Thiết bị phòng họp").
    #[arg(long, env = "CAUHOP_DEVICE_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Camera: `test` (built-in pattern), `none`, `rtp:PORT` (VP8 RTP from ffmpeg or
    /// gst-launch on 127.0.0.1:PORT) or a VP8 `.ivf` file to loop.
    #[arg(long, global = true)]
    video: Option<String>,
    /// Microphone: `tone` (built-in beep), `none` or `rtp:PORT` (Opus RTP).
    #[arg(long, global = true)]
    audio: Option<String>,
    /// Send what the room receives as VP8 RTP to this address (a local player).
    #[arg(long, global = true)]
    video_out: Option<String>,
    /// Send what the room receives as Opus RTP to this address.
    #[arg(long, global = true)]
    audio_out: Option<String>,
    /// Send media through this UDP relay instead of straight to the bridge.
    #[arg(long, global = true)]
    media_via: Option<String>,
    /// Carry media over TCP when the room's network lets only web traffic out:
    /// "bridge" (the bridge's HTTPS port) or HOST:PORT.
    #[arg(long, global = true)]
    media_tcp: Option<String>,
}

fn settings(c: Common) -> anyhow::Result<Settings> {
    let file = match &c.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            FileSettings::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => FileSettings::default(),
    };
    Ok(resolve(
        file,
        Overrides {
            bridge: c.bridge,
            key: c.key,
            ca_file: c.ca_file,
            insecure: c.insecure,
            video: c.video,
            audio: c.audio,
            video_out: c.video_out,
            audio_out: c.audio_out,
            via: c.media_via,
            tcp: c.media_tcp,
        },
    )?)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cauhop-endpoint: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let s = settings(cli.common)?;
    let tls = cauhop_endpoint::tls::client_config(s.ca_file.as_deref())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Check => {
                let client = BridgeClient::with_tls(&s.bridge, &s.key, tls.clone());
                let f = match check::run(&client, s.media.media_via, Plan::default()).await {
                    Ok(f) => f,
                    Err(e @ check::CheckError::NoAnswer(_)) => {
                        // UDP does not get out: say whether media over TCP to the
                        // bridge's web port would, and how to turn it on.
                        println!("UDP: {e}");
                        println!("{}", tcp_fallback(&s.bridge).await);
                        return Err(e.into());
                    }
                    Err(e) => return Err(e.into()),
                };
                let (v, why) = judge(&f);
                print!("{}", render(&f, v, &why));
                Ok(ExitCode::from(v.exit_code() as u8))
            }
            Command::Run => {
                let mut cfg = AgentConfig::new(&s.bridge, &s.key);
                cfg.media = s.media;
                cfg.media.loopback_only = cauhop_endpoint::tls::is_loopback_url(&s.bridge);
                cfg.tls = Some(tls.clone());
                let (tx, rx) = tokio::sync::watch::channel(false);
                let status = Arc::new(Mutex::new(AgentStatus::default()));
                let agent = tokio::spawn(run(cfg, status, rx));
                shutdown_signal().await;
                let _ = tx.send(true);
                let _ = agent.await;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Whether the bridge's HTTPS port takes a TCP connection from here, and what to set.
async fn tcp_fallback(bridge: &str) -> String {
    let target = reqwest::Url::parse(bridge).ok().and_then(|u| {
        Some(format!(
            "{}:{}",
            u.host_str()?.trim_matches(['[', ']']),
            u.port_or_known_default()?
        ))
    });
    let Some(target) = target else {
        return "TCP: the bridge URL names no host".into();
    };
    let connect = tokio::net::TcpStream::connect(&target);
    match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => format!(
            "TCP: {target} answers — đặt media.tcp = \"bridge\" (hoặc --media-tcp bridge) để truyền hình ảnh, âm thanh qua cổng web / set media.tcp = \"bridge\" (or --media-tcp bridge) to carry media over the web port"
        ),
        Ok(Err(e)) => {
            format!("TCP: {target}: {e} — nhờ cán bộ CNTT mở cổng / ask the IT officer to open it")
        }
        Err(_) => format!(
            "TCP: {target}: no answer in 5 s — nhờ cán bộ CNTT mở cổng / ask the IT officer to open it"
        ),
    }
}

/// Ctrl-C, or SIGTERM from systemd.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
