//! Weak-link benchmark in the simulated meeting (issue 21): the scenario of
//! `weaklink.rs` (three publishers, the first speaking; one subscriber behind each link
//! profile, one on fibre at the same time) on a simulated clock, over ten seeds per
//! profile, so a change's effect can be told from noise. Printed per profile: the mean
//! and, in brackets, the lowest and highest of the ten runs for each column.
//!
//! `cargo bench -p cauhop-tests --bench weaklink_sim` runs every profile, 30 s each;
//! `-- --bench PROFILE...` picks some; `--seeds N` changes the number of seeds;
//! `--no-temporal` runs with temporal layer selection off, for comparison; `--both`
//! prints both. Without `--bench` (under `cargo test`) a short smoke run of 3g-commune.
//! Figures are printed, never asserted here (the testkit's tests assert the targets).

use std::time::{Duration, Instant};

use cauhop_tests::weak_sim::{Figures, Run, run};

/// Mean (lowest–highest) of one column over the runs.
fn spread(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "—".into();
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{mean:.digits$} ({lo:.digits$}–{hi:.digits$})")
}

fn column(runs: &[Run], pick: impl Fn(&Figures) -> f64, digits: usize) -> String {
    let v: Vec<f64> = runs.iter().map(|r| pick(&r.weak)).collect();
    spread(&v, digits)
}

fn step_column(
    runs: &[Run],
    pick: impl Fn(&cauhop_tests::reception::Step) -> Option<Duration>,
) -> String {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.step.as_ref().and_then(&pick))
        .map(|d| d.as_secs_f64())
        .collect();
    if v.is_empty() {
        return String::new();
    }
    let missing = runs.len() - v.len();
    let s = format!("{} s", spread(&v, 2));
    if missing > 0 {
        format!("{s}, {missing} never")
    } else {
        s
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let seeds: u64 = cauhop_tests::arg(&args, "--seeds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 10 } else { 2 });
    let secs = if full { 30 } else { 10 };
    let modes: Vec<bool> = if args.iter().any(|a| a == "--both") {
        vec![true, false]
    } else {
        vec![!args.iter().any(|a| a == "--no-temporal")]
    };
    let mut names: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with('-') && (*i == 0 || args[i - 1] != "--seeds"))
        .map(|(_, a)| a.clone())
        .collect();
    if names.is_empty() {
        names = if full {
            ["fibre", "adsl", "4g", "3g-commune", "3g-bad", "step"]
                .map(String::from)
                .to_vec()
        } else {
            vec!["3g-commune".into()]
        };
    }
    println!(
        "{seeds} seeds × {secs} s simulated per profile; mean (lowest–highest). Subscriber behind the profile:"
    );
    println!();
    println!(
        "| profile | temporal | media up | audio on time % | concealed ms/min | freezes/min | longest gap s | speaker fps | speaker height | audio only s | kbit/s sent | drop → under | recovery → 85 % | fibre freezes/min | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for name in &names {
        for temporal in &modes {
            let t0 = Instant::now();
            let runs: Vec<Run> = (0..seeds)
                .map(|seed| run(name, seed, secs, *temporal))
                .collect::<anyhow::Result<_>>()?;
            let wall = t0.elapsed().as_secs_f64();
            // A simulated client does not rejoin when its handshake is lost (the page
            // and the real-UDP peer do): a run whose subscriber never got media is
            // counted apart, not averaged in as 0 % audio.
            let all = runs.len();
            let runs: Vec<Run> = runs
                .into_iter()
                .filter(|r| r.weak.audio.expected > 0)
                .collect();
            let joined = format!("{}/{all}", runs.len());
            let fibre: Vec<f64> = runs.iter().map(|r| r.fibre.freezes_per_min()).collect();
            println!(
                "| {name} | {} | {joined} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {wall:.1} |",
                if *temporal { "on" } else { "off" },
                column(&runs, |f| f.audio.on_time_pct(), 2),
                column(&runs, |f| f.audio.concealed_ms_per_min(), 0),
                column(&runs, Figures::freezes_per_min, 2),
                column(&runs, |f| f.longest_gap.as_secs_f64(), 2),
                column(&runs, |f| f.main_fps, 1),
                column(&runs, |f| f.main_height, 0),
                column(&runs, |f| f.audio_only.as_secs_f64(), 1),
                column(&runs, |f| f.kbps, 0),
                step_column(&runs, |s| s.drop_to_under),
                step_column(&runs, |s| s.recover_to_85),
                spread(&fibre, 2),
            );
        }
    }
    Ok(())
}
