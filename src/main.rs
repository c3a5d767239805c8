//! The `scalesim` command line. Thin: parses arguments, calls the library, prints.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use scalesim::autoscale::build_policy;
use scalesim::engine::SimTime;
use scalesim::experiment::{run_to_dir, RunOptions};
use scalesim::scenario::load_scenario;

#[derive(Parser)]
#[command(
    name = "scalesim",
    version,
    about = "Deterministic discrete-event cluster simulator for autoscaling research"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario under a policy and write a run folder.
    Run {
        /// Scenario YAML (see scenarios/).
        scenario: PathBuf,
        /// Scaling policy.
        #[arg(long, default_value = "static")]
        policy: String,
        /// Policy configuration YAML.
        #[arg(long)]
        policy_config: Option<PathBuf>,
        /// Random seed (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Run folder (default: runs/<scenario>_<policy>_seed<N>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Simulated seconds to run (default: the scenario's horizon).
        #[arg(long, allow_hyphen_values = true)]
        horizon: Option<f64>,
        /// Print scaling events (instances added, drained, removed; blocked actions) to stderr.
        #[arg(long)]
        log_events: bool,
        /// No progress bar and no closing summary line.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a scenario file without running it.
    Validate {
        /// Scenario YAML.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { scenario, policy, policy_config, seed, out, horizon, log_events, quiet } => {
            let mut sc = load_scenario(&scenario)?;
            if let Some(h) = horizon {
                if !(h.is_finite() && h > 0.0) {
                    anyhow::bail!("--horizon: must be a number of seconds > 0, got {h}");
                }
                sc.horizon = SimTime::from_secs_f64(h);
            }
            let seed = seed.unwrap_or(sc.seed);
            let pol = build_policy(&policy, policy_config.as_deref(), &sc)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("runs/{}_{}_seed{}", sc.name, pol.name(), seed)));
            let bar = if quiet || !std::io::stderr().is_terminal() {
                ProgressBar::hidden()
            } else {
                let b = ProgressBar::new(sc.horizon.whole_secs().max(1));
                b.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} sim-s {msg}")
                        .expect("static template"),
                );
                b
            };
            let options = RunOptions {
                event_log: if log_events { Some(Box::new(std::io::stderr())) } else { None },
                policy_config: policy_config.as_ref().map(|p| p.display().to_string()),
            };
            let started = Instant::now();
            let summary = run_to_dir(&sc, pol, seed, &out, options, &mut |p| {
                if p.now.0 % SimTime::MICROS_PER_SEC == 0 {
                    bar.set_position(p.now.whole_secs());
                    bar.set_message(format!("{} arrived, {} in flight", p.arrived, p.in_flight));
                }
            })
            .with_context(|| format!("running {}", scenario.display()))?;
            bar.finish_and_clear();
            if !quiet {
                let r = &summary.requests;
                eprintln!(
                    "{}: {} arrived, {} completed, {} dropped; p95 {:.1} ms; SLO violation {:.2}%; cost {:.4}; {:.2} s wall",
                    out.display(),
                    r.arrived,
                    r.completed,
                    r.dropped,
                    summary.latency_ms.p95,
                    summary.slo_violation_pct,
                    summary.cost,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Validate { file } => {
            let sc = load_scenario(&file)?;
            println!(
                "{}: ok: scenario `{}`, {} services, {} request types, horizon {} s",
                file.display(),
                sc.name,
                sc.app.services.len(),
                sc.app.request_types.len(),
                sc.horizon.as_secs_f64()
            );
            Ok(())
        }
    }
}
