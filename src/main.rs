//! The `scalesim` command line. Thin: parses arguments, calls the library, prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use scalesim::engine::SimTime;
use scalesim::experiment::backend_run::{run_kubernetes_to_dir, run_local_to_dir, validate_to_dir, LocalRunOptions};
use scalesim::experiment::outdir::{default_run_path, file_bytes, safe_name, short_hash, stem};
use scalesim::experiment::policies::build_policy;
use scalesim::experiment::progress::Progress;
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
        /// Scaling policy: static (keep the initial replicas), hpa (Kubernetes HPA), kpa (Knative),
        /// target (AWS target tracking), or agent:CHECKPOINT (a trained RL agent).
        #[arg(long, default_value = "static")]
        policy: String,
        /// Policy configuration YAML (configs/policies/; HPA manifests paste as they are).
        #[arg(long)]
        policy_config: Option<PathBuf>,
        /// Random seed (default: the scenario's `seed`).
        #[arg(long, value_parser = parse_seed, allow_negative_numbers = true)]
        seed: Option<u64>,
        /// Run folder (default: runs/<scenario>_<policy or config>_seed<N>_<hash of what was run>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an earlier run in --out even if the folder also holds files of yours (they are
        /// kept; without --force such a run is refused).
        #[arg(long)]
        force: bool,
        /// Simulated seconds to run (default: the scenario's horizon).
        #[arg(long, allow_hyphen_values = true)]
        horizon: Option<f64>,
        /// Run even past the bounds on work (a horizon over one week, over a billion requests).
        #[arg(long)]
        allow_large: bool,
        /// Print scaling events (instances added, drained, removed; blocked actions) to stderr.
        #[arg(long)]
        log_events: bool,
        /// No progress and no closing summary line.
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
        /// Scenario YAML (with a `backends.local` section, e.g. scenarios/chain_local_small.yaml).
        scenario: PathBuf,
        /// Scaling policy: static (keep the initial replicas), hpa (Kubernetes HPA), kpa (Knative),
        /// target (AWS target tracking), or agent:CHECKPOINT (a trained RL agent).
        #[arg(long, default_value = "hpa")]
        policy: String,
        /// Policy configuration YAML.
        #[arg(long)]
        policy_config: Option<PathBuf>,
        /// The real backend to hold the simulator against.
        #[arg(long, value_enum, default_value = "local")]
        against: RealBackend,
        /// Random seed (default: the scenario's `seed`).
        #[arg(long, value_parser = parse_seed, allow_negative_numbers = true)]
        seed: Option<u64>,
        /// Output folder (default: runs/validate_<scenario>_<policy>_seed<N>_<hash>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an earlier validation in --out that also holds files of yours (kept).
        #[arg(long)]
        force: bool,
        /// Scenario seconds per wall second on the local backend (default: the scenario's
        /// `backends.local.time_compression`, else 1).
        #[arg(long)]
        time_compression: Option<f64>,
        /// Keep this Prometheus file_sd targets file listing the local workers.
        #[arg(long)]
        prometheus_targets: Option<PathBuf>,
        /// Print worker and scaling events to stderr.
        #[arg(long)]
        verbose: bool,
        /// No progress and no closing summary line.
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
        /// Episodes to roll out (at least 1).
        #[arg(long, default_value_t = 1)]
        episodes: u64,
        #[arg(long, default_value_t = 1, value_parser = parse_seed, allow_negative_numbers = true)]
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
        /// No progress and no closing summary line.
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
        /// A run folder (with summary.json), a sweep folder (with sweep_manifest.json) or a
        /// training folder (with training_log.csv).
        dir: PathBuf,
    },
    /// Train an RL agent (PPO or A2C) on one or more scenarios.
    Train {
        /// Agent hyper-parameters (configs/agents/*.yaml). Needed for a new training; on --resume
        /// the checkpoint's own config is used, and an --agent given must be the same.
        #[arg(long)]
        agent: Option<PathBuf>,
        /// Scenario(s) to train on (episodes draw among them).
        #[arg(long = "scenario", required = true)]
        scenarios: Vec<PathBuf>,
        /// Environment steps (decisions) in all, a resumed training's earlier steps included;
        /// rounded up to whole rollouts (rollout_steps x envs).
        #[arg(long, default_value_t = 100_000)]
        steps: u64,
        #[arg(long, default_value_t = 1, value_parser = parse_seed, allow_negative_numbers = true)]
        seed: u64,
        /// Training folder (training_log.csv, checkpoints; default:
        /// runs/train_<config>_<encoder>_<algorithm>_seed<N>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the training in this folder from its last checkpoint, up to --steps in all.
        #[arg(long, conflicts_with = "out")]
        resume: Option<PathBuf>,
        /// No progress and no closing summary line.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run a trained agent on a scenario and write a run folder (as `run --policy agent:FILE`).
    Eval {
        /// A checkpoint written by `train`.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Scenario YAML to run the agent on.
        #[arg(long)]
        scenario: PathBuf,
        /// Random seed (default: the scenario's `seed`).
        #[arg(long, value_parser = parse_seed, allow_negative_numbers = true)]
        seed: Option<u64>,
        /// Run folder (default: runs/<scenario>_agent_<training folder>_seed<N>_<hash>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an earlier run in --out that also holds files of yours (kept).
        #[arg(long)]
        force: bool,
        /// No progress and no closing summary line.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Write a locustfile whose LoadTestShape reproduces a scenario's load (to stdout or --out).
    ExportLocust {
        /// Scenario YAML (request types with `http:` routes send those; see scenarios/online_boutique_*.yaml).
        scenario: PathBuf,
        /// Seconds between one Locust user's requests.
        #[arg(long, default_value_t = 1.0)]
        think_time: f64,
        /// Write the locustfile here (default: standard output).
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
        force: false,
        allow_large: false,
    })
}

/// Loads a scenario and applies `--horizon`.
fn load_with_horizon(path: &Path, horizon: Option<f64>) -> Result<scalesim::scenario::Scenario> {
    let mut sc = load_scenario(path)?;
    if let Some(h) = horizon {
        if !(h.is_finite() && h >= scalesim::scenario::raw::RESOLUTION_S) {
            anyhow::bail!(
                "--horizon: must be a number of seconds >= 0.000001 (1 us, the simulator's resolution), got {h}"
            );
        }
        if h >= SimTime::MAX.as_secs_f64() {
            anyhow::bail!(
                "--horizon: {h} s is past the end of the simulator's clock ({:.3e} s)",
                SimTime::MAX.as_secs_f64()
            );
        }
        sc.horizon = SimTime::from_secs_f64(h);
    }
    Ok(sc)
}

/// Progress over a run's simulated (or scenario) seconds.
fn seconds_bar(quiet: bool, horizon: SimTime, unit: &str) -> Progress {
    Progress::new(quiet, horizon.whole_secs().max(1), unit)
}

/// A seed: a whole number >= 0 (clap's own message for `-1` suggests `-- -1`, which is no help).
fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim().parse::<u64>().map_err(|_| format!("`{s}`: seeds are whole numbers from 0 to {}", u64::MAX))
}

/// The default folder of a run: readable parts (scenario, policy or its config, seed), then a hash
/// of everything that decides the results (the scenario's, config's or checkpoint's bytes, the
/// seed, horizon and backend), so that two different runs never share a folder and the same run
/// always lands in the same one.
fn default_out(
    prefix: &str,
    scenario_file: &Path,
    sc: &scalesim::scenario::Scenario,
    policy: &str,
    policy_config: Option<&Path>,
    seed: u64,
    backend: &str,
) -> PathBuf {
    let (label, policy_bytes) = match policy.strip_prefix("agent:") {
        Some(ck) => {
            let ck = Path::new(ck);
            let training = ck.parent().map(stem).filter(|s| !s.is_empty()).unwrap_or_else(|| stem(ck));
            (format!("agent_{training}"), file_bytes(ck))
        }
        None => (policy.to_string(), policy.as_bytes().to_vec()),
    };
    let label = match policy_config {
        Some(c) => format!("{label}_{}", stem(c)),
        None => label,
    };
    let config_bytes = policy_config.map(file_bytes).unwrap_or_default();
    let hash = short_hash(&[
        &file_bytes(scenario_file),
        &policy_bytes,
        &config_bytes,
        &seed.to_le_bytes(),
        &sc.horizon.as_micros().to_le_bytes(),
        backend.as_bytes(),
    ]);
    let name = format!("{prefix}{}_{label}_seed{seed}_{hash}", sc.name);
    default_run_path(&safe_name(&name))
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
    if !matches!(cli.command, Command::Worker { .. }) {
        // Before any thread starts: an interrupted run leaves no half-written folder.
        scalesim::experiment::outdir::clean_up_on_interrupt();
    }
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line of a sane length, whatever a value in the input held.
            eprintln!("error: {}", scalesim::text::clip_message(&format!("{e:#}")));
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
            force,
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
                default_out("validate_", &scenario, &sc, &policy, policy_config.as_deref(), seed, "local")
            });
            let mut opts = local_options(time_compression, verbose, policy_config.as_ref(), prometheus_targets)?;
            opts.force = force;
            let bar = seconds_bar(quiet, sc.horizon, "s");
            let gap = validate_to_dir(&sc, sim_policy, real_policy, seed, &out, &opts, &mut |which, t, _| {
                bar.set_message(which.to_string());
                bar.set_position(t.whole_secs());
            })
            .with_context(|| format!("validating {} against the local backend", scenario.display()))?;
            bar.finish();
            if !quiet {
                print!("{}", scalesim::backend::validate::markdown(&gap));
                eprintln!("{}: validation.json, validation.md, replicas_compared.csv, charts", out.display());
            }
            // The folder is written either way (it is the evidence); the exit status carries the
            // verdict, so scripts and CI can act on it.
            if !gap.holds() {
                anyhow::bail!(
                    "the simulator is OUT OF BOUND against the local backend (latency {}, CPU {}, decisions {}); see {}",
                    if gap.latency_within_bound { "ok" } else { "out" },
                    if gap.cpu_within_bound { "ok" } else { "out" },
                    if gap.decisions_within_bound { "ok" } else { "out" },
                    out.join("validation.md").display()
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
            force,
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
            let out = out.unwrap_or_else(|| {
                default_out("", &scenario, &sc, &policy, policy_config.as_deref(), sc.seed, "kubernetes")
            });
            let opts = scalesim::backend::kubernetes::KubeOptions {
                connection: kube.connection()?,
                dry_run: kube.dry_run,
                log: Box::new(std::io::stderr()),
            };
            let bar = seconds_bar(quiet, sc.horizon, "s");
            let config = policy_config.as_ref().map(|p| p.display().to_string());
            let log = run_kubernetes_to_dir(&sc, pol, &out, opts, config.as_deref(), force, &mut |t, _| {
                bar.set_position(t.whole_secs())
            })
            .with_context(|| format!("running {} on the Kubernetes backend", scenario.display()))?;
            bar.finish();
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
            force,
            horizon,
            allow_large,
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
            let out = out
                .unwrap_or_else(|| default_out("", &scenario, &sc, &policy, policy_config.as_deref(), seed, "local"));
            let mut opts = local_options(time_compression, log_events, policy_config.as_ref(), prometheus_targets)?;
            opts.force = force;
            opts.allow_large = allow_large;
            let bar = seconds_bar(quiet, sc.horizon, "scenario-s");
            let log = run_local_to_dir(&sc, pol, seed, &out, &opts, &mut |t, _| bar.set_position(t.whole_secs()))
                .with_context(|| format!("running {} on the local backend", scenario.display()))?;
            bar.finish();
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
            force,
            horizon,
            allow_large,
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
            let out =
                out.unwrap_or_else(|| default_out("", &scenario, &sc, &policy, policy_config.as_deref(), seed, "sim"));
            let bar = seconds_bar(quiet, sc.horizon, "sim-s");
            let options = RunOptions {
                event_log: if log_events { Some(Box::new(std::io::stderr())) } else { None },
                policy_config: policy_config.as_ref().map(|p| p.display().to_string()),
                force,
                allow_large,
            };
            let started = Instant::now();
            let summary = run_to_dir(&sc, pol, seed, &out, options, &mut |p| {
                if p.now.0 % SimTime::MICROS_PER_SEC == 0 {
                    bar.set_position(p.now.whole_secs());
                    if bar.wants_message() {
                        bar.set_message(format!("{} arrived, {} in flight", p.arrived, p.in_flight));
                    }
                }
            })
            .with_context(|| format!("running {}", scenario.display()))?;
            bar.finish();
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
            if !(interval.is_finite() && interval >= scalesim::rl::agent::config::MIN_INTERVAL_S) {
                anyhow::bail!("--interval: must be a number of seconds >= 0.001, got {interval}");
            }
            if episodes == 0 {
                anyhow::bail!("--episodes: must be at least 1");
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
                // Numbered from 1, as in the episode log's `episode` column.
                println!(
                    "episode {} ({}): {steps} steps, total reward {reward:.3}",
                    ep + 1,
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
            let bar = Progress::new(quiet, 0, "runs");
            let started = Instant::now();
            let mine = std::sync::atomic::AtomicUsize::new(0);
            let result = run_sweep(&sweep, &dir, &SweepOptions { jobs, shard }, &|done, total| {
                mine.store(total, std::sync::atomic::Ordering::Relaxed);
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish();
            result?;
            if !quiet {
                let runs = mine.into_inner();
                let of =
                    if shard.is_some() { format!(" (of {} in the grid)", sweep.grid.len()) } else { String::new() };
                eprintln!(
                    "{}: {runs} runs{of}, {:.1} s wall with {jobs} jobs",
                    dir.display(),
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
            use scalesim::experiment::train::{train, TrainRequest};
            let req = TrainRequest { agent_config: agent, scenarios, steps, seed, out, resume };
            let bar = Progress::new(quiet, steps, "steps");
            let started = Instant::now();
            let done = train(&req, &bar)?;
            let ck = done.dir.join("checkpoint.ckpt");
            if !quiet {
                let secs = started.elapsed().as_secs_f64();
                if done.trained == 0 {
                    eprintln!(
                        "{}: already trained {} steps (--steps {steps}); nothing to do",
                        done.dir.display(),
                        done.total
                    );
                } else {
                    let reward = done
                        .last_reward
                        .map_or("no episode finished yet".into(), |r| format!("mean episode reward {r:.3}"));
                    eprintln!(
                        "{}: {} steps in {secs:.1} s ({:.0} steps/s; whole rollouts), {} in all; {reward}",
                        done.dir.display(),
                        done.trained,
                        done.trained as f64 / secs.max(1e-9),
                        done.total
                    );
                }
            }
            println!("{}", ck.display());
            Ok(())
        }
        Command::Eval { checkpoint, scenario, seed, out, force, quiet } => {
            let sc = load_scenario(&scenario)?;
            let seed = seed.unwrap_or(sc.seed);
            let policy = scalesim::rl::agent::policy::AgentPolicy::load(&checkpoint, &sc)?;
            let agent = format!("agent:{}", checkpoint.display());
            let out = out.unwrap_or_else(|| default_out("", &scenario, &sc, &agent, None, seed, "sim"));
            let options = RunOptions {
                event_log: None,
                policy_config: Some(checkpoint.display().to_string()),
                force,
                allow_large: false,
            };
            let bar = seconds_bar(quiet, sc.horizon, "sim-s");
            let s = run_to_dir(&sc, Box::new(policy), seed, &out, options, &mut |p| {
                if p.now.0 % SimTime::MICROS_PER_SEC == 0 {
                    bar.set_position(p.now.whole_secs());
                }
            })?;
            bar.finish();
            if !quiet {
                eprintln!("{}: SLO violation {:.2}%, cost {:.4}", out.display(), s.slo_violation_pct, s.cost);
            }
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
