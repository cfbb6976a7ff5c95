//! `cauhop-load`: run a scenario of real WebRTC clients against cauhop, Janus, or both
//! in one run, and print what each SFU cost. See bench/README.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cauhop_bench::cauhop_target::CauhopTarget;
use cauhop_bench::janus::JanusTarget;
use cauhop_bench::report::Report;
use cauhop_bench::scenario::{self, Kind, RunOptions, Scenario, Target};
use clap::Parser;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Sfu {
    Cauhop,
    Janus,
    /// Janus first, then cauhop, with the same clients; prints both rows and the ratios.
    Both,
}

#[derive(Parser)]
#[command(
    name = "cauhop-load",
    about = "Load generator: real WebRTC clients against cauhop or Janus"
)]
struct Args {
    #[arg(long, value_enum, default_value = "cauhop")]
    sfu: Sfu,
    #[arg(long, value_enum, default_value = "broadcast")]
    scenario: Kind,
    /// Sites: everyone in meeting and audio, the receivers in broadcast.
    #[arg(short, long, default_value_t = 20)]
    n: usize,
    /// Publishers in broadcast (1-3); speaking sites in audio.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds after everyone is connected before measuring (bandwidth estimates ramp up).
    #[arg(long, default_value_t = 8)]
    warmup: u64,
    /// Worker threads of the generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Participants joining at once.
    #[arg(long, default_value_t = 10)]
    parallel: usize,
    /// The cauhop binary [default: next to this one].
    #[arg(long)]
    cauhop: Option<PathBuf>,
    #[arg(long, default_value = "janus")]
    janus: String,
    /// CPUs for the SFU (taskset list, e.g. 0); the generator then runs on --load-cpus.
    #[arg(long)]
    sfu_cpus: Option<String>,
    #[arg(long)]
    load_cpus: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(cpus) = &args.load_cpus {
        let ok = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: could not pin the generator to CPUs {cpus}");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let problems = rt.block_on(run(&args))?;
    std::process::exit(if problems { 1 } else { 0 });
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    let scenario = Scenario {
        kind: args.scenario,
        n: args.n,
        publishers: args.publishers,
    };
    let opt = RunOptions {
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        parallel: args.parallel,
        ..RunOptions::default()
    };
    let cauhop_bin = match &args.cauhop {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("cauhop"),
    };
    eprintln!(
        "cauhop-load: {} for {} s after {} s warm-up; {} generator threads",
        scenario.label(),
        args.duration,
        args.warmup,
        args.threads
    );
    let mut reports = Vec::new();
    if matches!(args.sfu, Sfu::Janus | Sfu::Both) {
        let t = Target::Janus(JanusTarget::spawn(&args.janus, args.sfu_cpus.as_deref()).await?);
        reports.push(scenario::run(&t, &scenario, &opt).await?);
        drop(t);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if matches!(args.sfu, Sfu::Cauhop | Sfu::Both) {
        let t = Target::Cauhop(CauhopTarget::spawn(&cauhop_bin, args.sfu_cpus.as_deref()).await?);
        reports.push(scenario::run(&t, &scenario, &opt).await?);
    }
    println!("{}", Report::header());
    for r in &reports {
        println!("{}", r.row());
    }
    if let [janus, cauhop] = reports.as_slice() {
        println!("{}", cauhop.ratio_row(janus));
    }
    println!();
    let mut problems = false;
    for r in &reports {
        println!("{}", r.ledger());
        for p in &r.problems {
            problems = true;
            println!("  PROBLEM: {p}");
        }
    }
    Ok(problems)
}
