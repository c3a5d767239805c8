//! The command line's arguments (clap): subcommands, their flags, and the parsers of flag values.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use scalesim::experiment::policies::PolicyChoice;
use scalesim::scenario::Fidelity;

#[derive(Parser)]
#[command(
    name = "scalesim",
    version,
    about = "Deterministic discrete-event cluster simulator for autoscaling research"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `--policy`'s help, for every command that runs a policy.
const POLICY_HELP: &str = "Scaling policy: static (keep the initial replicas), random (a uniform random agent), \
hpa (Kubernetes HPA), kpa (Knative), target (AWS target tracking), agent:CHECKPOINT (a trained RL agent), or \
shields (the HPA floor, ceiling and scale-down window of the agent config given as --policy-config, with every \
delta 0: what the shields do alone)";

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run a scenario under a policy and write a run folder.
    Run {
        /// Scenario YAML (see scenarios/).
        scenario: PathBuf,
        #[arg(long, default_value = "static", help = POLICY_HELP)]
        policy: PolicyChoice,
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
        /// Write neither timeline.csv nor requests.csv (the per-second and per-request streams,
        /// almost all of a run folder's bytes); summary.json, actions.csv and latency.csv stay.
        /// For studies of many runs that read only the summaries (`scalesim pareto`); `report`
        /// cannot chart such a folder. Simulator only.
        #[arg(long)]
        no_timeline: bool,
        /// Simulate at this fidelity (request or fluid) instead of the scenario's `fidelity:`, e.g.
        /// a fluid screen of many policies before request-fidelity runs of the best. Simulator
        /// only.
        #[arg(long, value_parser = parse_fidelity)]
        fidelity: Option<Fidelity>,
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
        #[arg(long, default_value = "hpa", help = POLICY_HELP)]
        policy: PolicyChoice,
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
        /// Run at this fidelity whatever the scenarios say.
        #[arg(long, value_enum)]
        fidelity: Option<FidelityArg>,
        /// Random rate scale per episode, `LO,HI`.
        #[arg(long, value_parser = parse_range)]
        rate_scale: Option<(f64, f64)>,
        /// Random start offset into the load per episode, seconds, `LO,HI`.
        #[arg(long, value_parser = parse_range)]
        start_offset: Option<(f64, f64)>,
        /// Replace each episode's load shape by a random one of the same mean (ramp, staircase,
        /// spikes, diurnal, bursts); trace replays keep their trace.
        #[arg(long)]
        random_shapes: bool,
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
    /// Compare policies on cost and SLO violation against the HPA front: reads the run folders
    /// under ROOT/<policy label>/..., writes pareto.csv, pareto.png and pareto.svg.
    Pareto {
        /// Folder of runs, one sub-folder per policy label (`hpa<N>` labels form the front).
        root: PathBuf,
        /// Where to write the table and the chart (default: ROOT).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare policies over many loads: for each policy of the pareto.csv tables given, its
    /// gap to the HPA front (slo_gap_pct) on every load set against the reference policy's on
    /// the same load (mean difference and its 95% t-interval over loads, loads better and worse,
    /// mean cost relative to the reference's).
    Compare {
        /// pareto.csv files (`scalesim pareto`); each load (scenario) in one of them.
        #[arg(required = true)]
        tables: Vec<PathBuf>,
        /// The reference policy label (as in pareto.csv's `policy` column, e.g. gat-ppo).
        #[arg(long)]
        against: String,
        /// Also write the table as CSV to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also compare within each family of drawn loads (`[PREFIX_]fresh_FAMILY` names from
        /// scripts/fresh_loads.py; other loads form the family `other`).
        #[arg(long)]
        by_family: bool,
        /// How many policies are being held against the reference to choose among them: every
        /// interval is widened for that many comparisons (Bonferroni: each at 1 - 0.05/K), so that
        /// all hold together with 95% confidence. Default 1 (no correction).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        comparisons: u32,
    },
    /// Compare policies over trainings: from the run folders under ROOT/<label>/<load>/s<seed>,
    /// each training's (seed's) mean gap to the HPA front over every load, then each label's mean
    /// and spread over its trainings and its difference from the reference's, with a 95%
    /// interval: paired by seed where the two have the same seeds, else Welch's.
    Trainings {
        /// Folder of runs, one sub-folder per policy label (`hpa<N>` labels form each load's front).
        root: PathBuf,
        /// The reference policy label (e.g. gat-ppo).
        #[arg(long)]
        against: String,
        /// Also write the comparison as CSV to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write each training's mean (policy,seed,loads,gap_mean,cost_mean,slo_mean) as CSV
        /// to this file.
        #[arg(long)]
        per_training: Option<PathBuf>,
        /// Welch's interval even where two labels have the same seeds: trainings of two configs
        /// at one seed draw unrelated streams, so the seed pairs nothing.
        #[arg(long)]
        unpaired: bool,
        /// How many policies are being held against the reference to choose among them (each
        /// interval at 1 - 0.05/K, Bonferroni). Default 1 (no correction).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        comparisons: u32,
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
        /// A checkpoint written by `train`. Given more than once, an ensemble: each service's
        /// delta is the one with the highest probability summed over the checkpoints (all of one
        /// agent config, `action: per_service`).
        #[arg(long = "checkpoint", required = true)]
        checkpoints: Vec<PathBuf>,
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
        /// Write neither timeline.csv nor requests.csv (as `run --no-timeline`).
        #[arg(long)]
        no_timeline: bool,
        /// Simulate at this fidelity (request or fluid) instead of the scenario's (as `run
        /// --fidelity`).
        #[arg(long, value_parser = parse_fidelity)]
        fidelity: Option<Fidelity>,
        /// No progress and no closing summary line.
        #[arg(long, short)]
        quiet: bool,
        /// A fast floor added at deployment, in place of the checkpoint config's: between
        /// decisions, every this-many seconds, each service below what its latest arrivals need
        /// at the config's `hpa_floor` target is raised to it (as `fast_floor_every_s` in agent
        /// configs, which a training then trains beside).
        #[arg(long)]
        fast_floor_every_s: Option<f64>,
        /// The seconds of latest arrivals the deployed fast floor reads (default 6).
        #[arg(long, requires = "fast_floor_every_s")]
        fast_floor_reads_s: Option<f64>,
        /// The deployed fast floor raises only to at least this many times a count (default 1).
        #[arg(long, requires = "fast_floor_every_s")]
        fast_floor_panic_ratio: Option<f64>,
        /// The deployed fast floor's raises do not restart the scale-down window (as
        /// `fast_floor_leaves_window` in agent configs): the policy and the ceiling may give the
        /// capacity back once the window of the policy's own last scale-up has passed.
        #[arg(long, requires = "fast_floor_every_s")]
        fast_floor_leaves_window: bool,
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
pub(crate) struct KubeArgs {
    /// API server URL, e.g. `kubectl proxy`'s http://127.0.0.1:8001 (token: $SCALESIM_K8S_TOKEN).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub(crate) api_url: Option<String>,
    /// A kubeconfig file: its current context's server and token.
    #[arg(long)]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Log what would be scaled; send no change to the cluster.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

impl KubeArgs {
    /// Refuses Kubernetes flags given to another backend.
    pub(crate) fn refuse_unless_kubernetes(&self) -> Result<()> {
        if self.api_url.is_some() || self.kubeconfig.is_some() || self.dry_run {
            anyhow::bail!("--api-url, --kubeconfig and --dry-run are for --backend kubernetes");
        }
        Ok(())
    }

    pub(crate) fn connection(&self) -> Result<scalesim::backend::kubernetes::api::Connection> {
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
pub(crate) enum BackendKind {
    Sim,
    Local,
    Kubernetes,
}

/// `--fidelity`: how requests are simulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FidelityArg {
    /// Every request and call (the reference).
    Request,
    /// The per-tick queueing model (fast; for training).
    Fluid,
}

impl FidelityArg {
    pub(crate) fn fidelity(self) -> scalesim::scenario::Fidelity {
        match self {
            FidelityArg::Request => scalesim::scenario::Fidelity::Request,
            FidelityArg::Fluid => scalesim::scenario::Fidelity::Fluid,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RealBackend {
    Local,
}

/// A seed: a whole number >= 0 (clap's own message for `-1` suggests `-- -1`, which is no help).
pub(crate) fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim().parse::<u64>().map_err(|_| format!("`{s}`: seeds are whole numbers from 0 to {}", u64::MAX))
}

pub(crate) fn parse_fidelity(s: &str) -> Result<Fidelity, String> {
    match s.trim() {
        "request" => Ok(Fidelity::Request),
        "fluid" => Ok(Fidelity::Fluid),
        _ => Err(format!("`{s}`: expected request or fluid")),
    }
}

pub(crate) fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s.split_once(',').ok_or_else(|| format!("`{s}`: expected LO,HI"))?;
    let lo: f64 = a.trim().parse().map_err(|_| format!("`{a}` is not a number"))?;
    let hi: f64 = b.trim().parse().map_err(|_| format!("`{b}` is not a number"))?;
    if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi) {
        return Err(format!("`{s}`: need 0 <= LO <= HI"));
    }
    Ok((lo, hi))
}
