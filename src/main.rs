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
use scalesim::experiment::backend_run::{run_kubernetes_to_dir, run_local_to_dir, validate_to_dir, LocalRunOptions};
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
        /// Where the policy acts: the simulator, a local cluster of real worker processes, or a
        /// Kubernetes cluster (see the scenario's `backends:` section).
        #[arg(long, value_enum, default_value = "sim")]
        backend: BackendKind,
        /// Local backend: scenario seconds per wall second (default: the scenario's
        /// `backends.local.time_compression`, else 1).
        #[arg(long)]
        time_compression: Option<f64>,
        /// Local backend: keep this Prometheus file_sd targets file listing the workers.
        #[arg(long)]
        prometheus_targets: Option<PathBuf>,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Run a scenario under a policy on the simulator and on a real backend, and write the gap
    /// (CPU utilisation, latency, drops, replica timelines, overlay charts).
    ValidateBackend {
        scenario: PathBuf,
        #[arg(long, default_value = "hpa")]
        policy: String,
        #[arg(long)]
        policy_config: Option<PathBuf>,
        /// The real backend to hold the simulator against.
        #[arg(long, value_enum, default_value = "local")]
        against: RealBackend,
        #[arg(long)]
        seed: Option<u64>,
        /// Output folder (default: runs/validate_<scenario>_<policy>_seed<N>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        time_compression: Option<f64>,
        /// Keep this Prometheus file_sd targets file listing the local workers.
        #[arg(long)]
        prometheus_targets: Option<PathBuf>,
        /// Print worker and scaling events to stderr.
        #[arg(long)]
        verbose: bool,
        #[arg(long, short)]
        quiet: bool,
    },
    /// One instance of the local backend (started by the backend itself, not by users).
    #[command(hide = true)]
    Worker {
        #[arg(long, default_value_t = 1)]
        concurrency: u32,
        /// Exit when this process is no longer the parent.
        #[arg(long)]
        parent: Option<u32>,
    },
    /// Roll out RL-environment episodes with a uniformly random agent: checks an environment set-up,
    /// writes episode logs (reward terms and actions per step), and reports the rewards.
    Env {
        /// Scenario YAML; several for randomised episodes over them.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        episodes: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds between decisions.
        #[arg(long, default_value_t = 15.0)]
        interval: f64,
        /// Run at this fidelity whatever the scenarios say (`request` or `fluid`).
        #[arg(long)]
        fidelity: Option<String>,
        /// Random rate scale per episode, `LO,HI`.
        #[arg(long, value_parser = parse_range)]
        rate_scale: Option<(f64, f64)>,
        /// Random start offset into the load per episode, seconds, `LO,HI`.
        #[arg(long, value_parser = parse_range)]
        start_offset: Option<(f64, f64)>,
        /// Write every step to this CSV file.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Run a sweep: scenarios x policies x parameter points x seeds, on all cores.
    Sweep {
        /// Sweep YAML (see configs/sweeps/).
        file: PathBuf,
        /// Parallel runs (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Parent folder of the sweep folder.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Continue an interrupted sweep in this sweep folder (finished runs are kept).
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Run only slice K of N of the grid (for several machines), e.g. 1/4.
        #[arg(long)]
        shard: Option<scalesim::experiment::sweep::Shard>,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Combine the shard folders of one sweep into one sweep folder.
    SweepMerge {
        /// Shard sweep folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// The merged sweep folder to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Draw charts (PNG and SVG) and an index.html for a run folder or a sweep folder.
    Report {
        /// A run folder (with summary.json) or a sweep folder (with sweep_manifest.json).
        dir: PathBuf,
    },
    /// Train an RL agent (PPO or A2C) on one or more scenarios.
    Train {
        /// Agent hyper-parameters (configs/agents/*.yaml).
        #[arg(long)]
        agent: PathBuf,
        /// Scenario(s) to train on (episodes draw among them).
        #[arg(long = "scenario", required = true)]
        scenarios: Vec<PathBuf>,
        /// Environment steps (decisions) in all.
        #[arg(long, default_value_t = 100_000)]
        steps: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Training folder (training_log.csv, checkpoints).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the training in this folder from its last checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run a trained agent on a scenario and write a run folder (as `run --policy agent:FILE`).
    Eval {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a locustfile whose LoadTestShape reproduces a scenario's load (to stdout or --out).
    ExportLocust {
        scenario: PathBuf,
        /// Seconds between one Locust user's requests.
        #[arg(long, default_value_t = 1.0)]
        think_time: f64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a scenario file without running it.
    Validate {
        /// Scenario YAML.
        file: PathBuf,
    },
}

/// How `--backend kubernetes` reaches the cluster.
#[derive(clap::Args, Debug, Default)]
struct KubeArgs {
    /// API server URL, e.g. `kubectl proxy`'s http://127.0.0.1:8001 (token: $SCALESIM_K8S_TOKEN).
    #[arg(long, conflicts_with = "kubeconfig")]
    api_url: Option<String>,
    /// A kubeconfig file: its current context's server and token.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Log what would be scaled; send no change to the cluster.
    #[arg(long)]
    dry_run: bool,
}

impl KubeArgs {
    /// Refuses Kubernetes flags given to another backend.
    fn refuse_unless_kubernetes(&self) -> Result<()> {
        if self.api_url.is_some() || self.kubeconfig.is_some() || self.dry_run {
            anyhow::bail!("--api-url, --kubeconfig and --dry-run are for --backend kubernetes");
        }
        Ok(())
    }

    fn connection(&self) -> Result<scalesim::backend::kubernetes::api::Connection> {
        use scalesim::backend::kubernetes::{api, kubeconfig};
        let env_token = std::env::var("SCALESIM_K8S_TOKEN").ok().filter(|t| !t.is_empty()).map(api::Secret::new);
        let (url, token) = match (&self.api_url, &self.kubeconfig) {
            (Some(u), _) => (u.clone(), None),
            (None, Some(k)) => kubeconfig::load(k).map_err(anyhow::Error::msg)?,
            (None, None) => anyhow::bail!("--backend kubernetes needs --api-url URL or --kubeconfig FILE"),
        };
        if !url.starts_with("http://") {
            anyhow::bail!("--api-url: `{url}` is not an http URL (run `kubectl proxy` for a TLS cluster)");
        }
        Ok(api::Connection::new(&url, env_token.or(token)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    Sim,
    Local,
    Kubernetes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RealBackend {
    Local,
}

fn local_options(
    time_compression: Option<f64>,
    verbose: bool,
    policy_config: Option<&PathBuf>,
    prometheus_targets: Option<PathBuf>,
) -> Result<LocalRunOptions> {
    if let Some(k) = time_compression {
        if !(1.0..=1000.0).contains(&k) {
            anyhow::bail!("--time-compression: must be between 1 and 1000, got {k}");
        }
    }
    Ok(LocalRunOptions {
        worker_exe: std::env::current_exe().context("locating the scalesim executable to start workers from")?,
        time_compression,
        verbose,
        policy_config: policy_config.map(|p| p.display().to_string()),
        prometheus_targets,
    })
}

/// Loads a scenario and applies `--horizon`.
fn load_with_horizon(path: &std::path::Path, horizon: Option<f64>) -> Result<scalesim::scenario::Scenario> {
    let mut sc = load_scenario(path)?;
    if let Some(h) = horizon {
        if !(h.is_finite() && h > 0.0) {
            anyhow::bail!("--horizon: must be a number of seconds > 0, got {h}");
        }
        sc.horizon = SimTime::from_secs_f64(h);
    }
    Ok(sc)
}

fn seconds_bar(quiet: bool, horizon: SimTime, unit: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(horizon.whole_secs().max(1));
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit} {{msg}}"
        ))
        .expect("static template"),
    );
    b
}

fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s.split_once(',').ok_or_else(|| format!("`{s}`: expected LO,HI"))?;
    let lo: f64 = a.trim().parse().map_err(|_| format!("`{a}` is not a number"))?;
    let hi: f64 = b.trim().parse().map_err(|_| format!("`{b}` is not a number"))?;
    if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi) {
        return Err(format!("`{s}`: need 0 <= LO <= HI"));
    }
    Ok((lo, hi))
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
        Command::Worker { concurrency, parent } => {
            scalesim::backend::local::worker::serve(concurrency, parent).context("worker")?;
            Ok(())
        }
        Command::ValidateBackend {
            scenario,
            policy,
            policy_config,
            against: RealBackend::Local,
            seed,
            out,
            time_compression,
            prometheus_targets,
            verbose,
            quiet,
        } => {
            let sc = load_scenario(&scenario)?;
            let seed = seed.unwrap_or(sc.seed);
            let sim_policy = build_policy(&policy, policy_config.as_deref(), &sc)?;
            let real_policy = build_policy(&policy, policy_config.as_deref(), &sc)?;
            let out = out.unwrap_or_else(|| {
                PathBuf::from(format!("runs/validate_{}_{}_seed{}", sc.name, sim_policy.name(), seed))
            });
            let opts = local_options(time_compression, verbose, policy_config.as_ref(), prometheus_targets)?;
            let bar = seconds_bar(quiet, sc.horizon, "s");
            let gap = validate_to_dir(&sc, sim_policy, real_policy, seed, &out, &opts, &mut |which, t, _| {
                bar.set_message(which.to_string());
                bar.set_position(t.whole_secs());
            })
            .with_context(|| format!("validating {} against the local backend", scenario.display()))?;
            bar.finish_and_clear();
            if !quiet {
                print!("{}", scalesim::backend::validate::markdown(&gap));
                eprintln!("{}: validation.json, validation.md, replicas_compared.csv, charts", out.display());
            }
            Ok(())
        }
        Command::Run {
            scenario,
            policy,
            policy_config,
            seed,
            out,
            horizon,
            quiet,
            backend: BackendKind::Kubernetes,
            time_compression,
            kube,
            ..
        } => {
            if time_compression.is_some() || seed.is_some() {
                anyhow::bail!("--time-compression and --seed: not for a real cluster (it runs in real time)");
            }
            let sc = load_with_horizon(&scenario, horizon)?;
            let pol = build_policy(&policy, policy_config.as_deref(), &sc)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("runs/{}_{}_kubernetes", sc.name, pol.name())));
            let opts = scalesim::backend::kubernetes::KubeOptions {
                connection: kube.connection()?,
                dry_run: kube.dry_run,
                log: Box::new(std::io::stderr()),
            };
            let bar = seconds_bar(quiet, sc.horizon, "s");
            let config = policy_config.as_ref().map(|p| p.display().to_string());
            let log = run_kubernetes_to_dir(&sc, pol, &out, opts, config.as_deref(), &mut |t, _| {
                bar.set_position(t.whole_secs())
            })
            .with_context(|| format!("running {} on the Kubernetes backend", scenario.display()))?;
            bar.finish_and_clear();
            if !quiet {
                eprintln!("{}: {} scale decisions over {:.0} s", out.display(), log.scale_decisions(), log.wall_s);
            }
            Ok(())
        }
        Command::Run {
            scenario,
            policy,
            policy_config,
            seed,
            out,
            horizon,
            log_events,
            quiet,
            backend: BackendKind::Local,
            time_compression,
            prometheus_targets,
            kube,
        } => {
            kube.refuse_unless_kubernetes()?;
            let sc = load_with_horizon(&scenario, horizon)?;
            let seed = seed.unwrap_or(sc.seed);
            let pol = build_policy(&policy, policy_config.as_deref(), &sc)?;
            let out =
                out.unwrap_or_else(|| PathBuf::from(format!("runs/{}_{}_local_seed{}", sc.name, pol.name(), seed)));
            let opts = local_options(time_compression, log_events, policy_config.as_ref(), prometheus_targets)?;
            let bar = seconds_bar(quiet, sc.horizon, "scenario-s");
            let log = run_local_to_dir(&sc, pol, seed, &out, &opts, &mut |t, _| bar.set_position(t.whole_secs()))
                .with_context(|| format!("running {} on the local backend", scenario.display()))?;
            bar.finish_and_clear();
            if !quiet {
                let t = &log.totals;
                eprintln!(
                    "{}: {} arrived, {} completed, {} dropped; mean {:.1} ms, p95 {:.1} ms; {} scale decisions; {:.1} s wall",
                    out.display(),
                    t.arrived,
                    t.completed,
                    t.dropped,
                    log.latency_ms.mean,
                    log.latency_ms.p95,
                    log.scale_decisions(),
                    log.wall_s
                );
            }
            Ok(())
        }
        Command::Run {
            scenario,
            policy,
            policy_config,
            seed,
            out,
            horizon,
            log_events,
            quiet,
            backend: BackendKind::Sim,
            time_compression,
            prometheus_targets,
            kube,
        } => {
            if time_compression.is_some() || prometheus_targets.is_some() {
                anyhow::bail!("--time-compression and --prometheus-targets: only for --backend local");
            }
            kube.refuse_unless_kubernetes()?;
            let sc = load_with_horizon(&scenario, horizon)?;
            let seed = seed.unwrap_or(sc.seed);
            let pol = build_policy(&policy, policy_config.as_deref(), &sc)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("runs/{}_{}_seed{}", sc.name, pol.name(), seed)));
            let bar = seconds_bar(quiet, sc.horizon, "sim-s");
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
        Command::Env { scenarios, episodes, seed, interval, fidelity, rate_scale, start_offset, log } => {
            use scalesim::rl::{Action, Env, EnvConfig, Randomization, SimFactory};
            if !(interval.is_finite() && interval > 0.0) {
                anyhow::bail!("--interval: must be a number of seconds > 0, got {interval}");
            }
            let fidelity = match fidelity.as_deref() {
                None => None,
                Some("request") => Some(scalesim::scenario::Fidelity::Request),
                Some("fluid") => Some(scalesim::scenario::Fidelity::Fluid),
                Some(o) => anyhow::bail!("--fidelity: `{o}`: expected request or fluid"),
            };
            let mut list = Vec::new();
            for f in &scenarios {
                let mut sc = load_scenario(f)?;
                if let Some(fi) = fidelity {
                    sc.fidelity = fi;
                }
                list.push(sc);
            }
            let randomization = Randomization {
                rate_scale: rate_scale.unwrap_or((1.0, 1.0)),
                start_offset_s: start_offset.unwrap_or((0.0, 0.0)),
            };
            let cfg = EnvConfig { decision_interval: SimTime::from_secs_f64(interval), ..Default::default() };
            let mut env = Env::new(cfg, Box::new(SimFactory::new(list, randomization)));
            if let Some(path) = &log {
                let f = std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
                env.log_episodes_to(Box::new(std::io::BufWriter::new(f)))?;
            }
            let mut rng = scalesim::rl::env::action_rng(seed);
            let started = Instant::now();
            let mut total_steps = 0u64;
            for ep in 0..episodes {
                env.reset(seed + ep)?;
                let n = env.layout().map_or(1, |l| l.services);
                let (mut reward, mut steps) = (0.0, 0u64);
                loop {
                    let st = env.step(&Action::random(&mut rng, n))?;
                    reward += st.reward;
                    steps += 1;
                    if st.truncated || st.terminated {
                        break;
                    }
                }
                total_steps += steps;
                println!(
                    "episode {ep} ({}): {steps} steps, total reward {reward:.3}",
                    env.episode_label().unwrap_or("?")
                );
            }
            drop(env); // flushes the log
            let secs = started.elapsed().as_secs_f64();
            println!("{total_steps} steps in {secs:.2} s ({:.0} steps/s)", total_steps as f64 / secs.max(1e-9));
            Ok(())
        }
        Command::Sweep { file, jobs, out, resume, shard, quiet } => {
            use scalesim::experiment::sweep::{run_sweep, Sweep, SweepOptions};
            let sweep = Sweep::load(&file)?;
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if jobs == 0 {
                anyhow::bail!("--jobs: must be at least 1");
            }
            let dir = match resume {
                Some(d) => d,
                None => {
                    let mut name = sweep.folder_name();
                    if let Some(s) = shard {
                        name.push_str(&format!("_shard{}of{}", s.k, s.n));
                    }
                    out.join(name)
                }
            };
            let bar = if quiet || !std::io::stderr().is_terminal() {
                ProgressBar::hidden()
            } else {
                let b = ProgressBar::new(0);
                b.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs {msg}")
                        .expect("static template"),
                );
                b
            };
            let started = Instant::now();
            let result = run_sweep(&sweep, &dir, &SweepOptions { jobs, shard }, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish_and_clear();
            result?;
            if !quiet {
                eprintln!(
                    "{}: {} runs, {:.1} s wall with {jobs} jobs",
                    dir.display(),
                    sweep.grid.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            println!("{}", dir.display());
            Ok(())
        }
        Command::SweepMerge { shards, out } => {
            if out.exists() {
                anyhow::bail!("{}: already exists; name a new folder", out.display());
            }
            scalesim::experiment::sweep::merge_shards(&shards, &out)?;
            println!("{}", out.display());
            Ok(())
        }
        Command::Report { dir } => {
            let files = scalesim::report::report(&dir)?;
            println!("{}: {} files; open {}", dir.display(), files.len(), dir.join("index.html").display());
            Ok(())
        }
        Command::Train { agent, scenarios, steps, seed, out, resume, quiet } => {
            train_cmd(&agent, &scenarios, steps, seed, out, resume, quiet)
        }
        Command::Eval { checkpoint, scenario, seed, out } => {
            let sc = load_scenario(&scenario)?;
            let seed = seed.unwrap_or(sc.seed);
            let policy = scalesim::rl::agent::policy::AgentPolicy::load(&checkpoint, &sc)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("runs/{}_agent_seed{seed}", sc.name)));
            let options = RunOptions { event_log: None, policy_config: Some(checkpoint.display().to_string()) };
            let s = run_to_dir(&sc, Box::new(policy), seed, &out, options, &mut |_| {})?;
            eprintln!("{}: SLO violation {:.2}%, cost {:.4}", out.display(), s.slo_violation_pct, s.cost);
            Ok(())
        }
        Command::ExportLocust { scenario, think_time, out } => {
            if !(think_time.is_finite() && think_time > 0.0) {
                anyhow::bail!("--think-time: must be > 0, got {think_time}");
            }
            let sc = load_scenario(&scenario)?;
            let py = scalesim::backend::locust::locustfile(&sc, think_time);
            match out {
                Some(p) => std::fs::write(&p, py).with_context(|| format!("{}: cannot write", p.display()))?,
                None => print!("{py}"),
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

fn train_cmd(
    agent_cfg: &std::path::Path,
    scenario_files: &[PathBuf],
    steps: u64,
    seed: u64,
    out: Option<PathBuf>,
    resume: Option<PathBuf>,
    quiet: bool,
) -> Result<()> {
    use scalesim::rl::agent::checkpoint::Checkpoint;
    use scalesim::rl::agent::config::AgentConfig;
    use scalesim::rl::agent::ppo::{Agent, TRAINING_LOG_HEADER};
    use scalesim::rl::{Env, Randomization, SimFactory};
    use std::io::Write;

    // dfdx spreads each small matrix product over rayon's threads; for networks this size the
    // hand-offs cost more than they save (measured: 14% of training time in thread switches).
    // The update itself uses two threads of its own (`ppo::Agent::update`).
    let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    scalesim::rl::agent::allocator::keep_freed_memory();
    let (mut agent_opt, dir, config) = match &resume {
        Some(d) => {
            let ck = Checkpoint::load(&d.join("checkpoint.ckpt"))?;
            let config = ck.config.clone();
            (Some(Agent::from_checkpoint(ck, seed)), d.clone(), config)
        }
        None => {
            let config = AgentConfig::load(agent_cfg)?;
            (
                None,
                out.unwrap_or_else(|| {
                    PathBuf::from(format!("runs/train_{}_{}_seed{seed}", config.encoder, config.algorithm))
                }),
                config,
            )
        }
    };
    let mut scenarios = Vec::new();
    for f in scenario_files {
        let mut sc = load_scenario(f)?;
        sc.fidelity = if config.fidelity == "fluid" {
            scalesim::scenario::Fidelity::Fluid
        } else {
            scalesim::scenario::Fidelity::Request
        };
        if sc.fidelity == scalesim::scenario::Fidelity::Fluid {
            // Training needs no per-second rows: one tick per decision keeps the fluid model cheap.
            sc.metrics.timeline_interval = SimTime::from_secs_f64(config.decision_interval_s);
            sc.metrics.scrape_interval = sc.metrics.timeline_interval;
        }
        scenarios.push(sc);
    }
    let mut envs: Vec<Env> = (0..config.envs)
        .map(|_| {
            Env::new(
                config.env_config(),
                Box::new(SimFactory::new(
                    scenarios.clone(),
                    Randomization { rate_scale: (0.8, 1.2), start_offset_s: (0.0, 0.0) },
                )),
            )
        })
        .collect();
    envs[0].reset(seed)?;
    let layout = envs[0].layout().expect("reset").clone();
    let graph = scalesim::rl::agent::ppo::graph_kind(&config.encoder).is_some();
    if let Some(why) = scalesim::rl::agent::ppo::mlp_too_small(&layout).filter(|_| !graph) {
        anyhow::bail!("the scenario has {why}");
    }
    if !graph && scenarios.iter().any(|s| s.app.services.len() != layout.services) {
        anyhow::bail!("--scenario files must share one application (same services) for an MLP agent");
    }
    if config.team > 1 && config.team != layout.services {
        anyhow::bail!(
            "team: {} agents scale {} services one each; the scenario has {}",
            config.team,
            config.team,
            layout.services
        );
    }
    let mut team: Vec<Agent> =
        vec![agent_opt.take().unwrap_or_else(|| Agent::new(config.clone(), layout.flat_len(), seed))];
    for p in 1..config.team {
        let member = match &resume {
            Some(d) => Agent::from_checkpoint(
                Checkpoint::load(&scalesim::rl::agent::policy::member_path(&d.join("checkpoint.ckpt"), p))?,
                seed,
            ),
            None => Agent::new(
                config.clone(),
                layout.flat_len(),
                scalesim::engine::stream_seed(seed, &format!("team/{p}")) as u64,
            ),
        };
        team.push(member);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let log_path = dir.join("training_log.csv");
    let fresh = resume.is_none() || !log_path.exists();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(!fresh)
        .write(true)
        .truncate(fresh)
        .open(&log_path)
        .with_context(|| format!("{}: cannot write", log_path.display()))?;
    if fresh {
        writeln!(log, "{TRAINING_LOG_HEADER}")?;
        std::fs::write(dir.join("agent.yaml"), serde_yaml_ng::to_string(&config)?)?;
    }
    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(team[0].steps + steps);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps ({per_sec}) {msg}")
                .expect("static template"),
        );
        b
    };
    bar.set_position(team[0].steps);
    let every = config.checkpoint_every.max(1);
    let mut next_ck = (team[0].steps / every + 1) * every;
    let save =
        |team: &[Agent], path: &std::path::Path| -> Result<(), scalesim::rl::agent::checkpoint::CheckpointError> {
            team[0].checkpoint().save(path)?;
            for (p, member) in team.iter().enumerate().skip(1) {
                member.checkpoint().save(&scalesim::rl::agent::policy::member_path(path, p))?;
            }
            Ok(())
        };
    let started = Instant::now();
    let mut last_reward = f64::NAN;
    scalesim::rl::agent::ppo::train_team(&mut team, &mut envs, seed, steps, &mut |a, row| {
        let s = &row.stats;
        writeln!(
            log,
            "{},{:.6},{},{:.6},{:.6},{:.6},{:.6},{:.6},1",
            row.step,
            row.mean_episode_reward,
            row.episodes,
            s.policy_loss,
            s.value_loss,
            s.entropy,
            s.approx_kl,
            s.clip_fraction
        )
        .map_err(|e| scalesim::rl::EnvError::Log(csv::Error::from(e)))?;
        bar.set_position(row.step);
        bar.set_message(format!("mean episode reward {:.2}", row.mean_episode_reward));
        last_reward = row.mean_episode_reward;
        if row.step >= next_ck {
            next_ck = (row.step / every + 1) * every;
            save(a, &dir.join(format!("checkpoint_{:09}.ckpt", row.step)))
                .map_err(|e| scalesim::rl::EnvError::Log(csv::Error::from(std::io::Error::other(e.to_string()))))?;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    save(&team, &dir.join("checkpoint.ckpt"))?;
    if !quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {steps} steps in {secs:.1} s ({:.0} steps/s); mean episode reward {last_reward:.3}",
            dir.display(),
            steps as f64 / secs.max(1e-9)
        );
    }
    println!("{}", dir.join("checkpoint.ckpt").display());
    Ok(())
}
