//! Run folders for real backends: `run --backend local` (a policy on the local process cluster)
//! and `validate-backend` (the same scenario and policy on the simulator and on a real backend,
//! and the gap between them).
//!
//! Unlike simulator runs these are not byte-reproducible (the real backend runs on the wall
//! clock); what they record is enough to re-run them: scenario, policy, seed, compression.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::outdir::write_run_folder;
use super::{out_err, RunError, INFO_FORMAT_VERSION};
use crate::app::PlatformOverhead;
use crate::autoscale::Autoscaler;
use crate::backend::driver::drive;
use crate::backend::local::{LocalBackend, LocalOptions};
use crate::backend::ClusterBackend;
use crate::engine::SimTime;
use crate::metrics::gap::{compare, markdown, write_side_by_side, Gap};
use crate::metrics::{ActionsWriter, Recording};
use crate::report::Series;
use crate::scenario::Scenario;
use crate::sim::{Simulator, Sinks};

/// How to run the local backend.
#[derive(Clone, Debug)]
pub struct LocalRunOptions {
    /// The `scalesim` executable workers are started from.
    pub worker_exe: PathBuf,
    /// Overrides the scenario's `backends.local.time_compression`.
    pub time_compression: Option<f64>,
    /// Scaling and worker events to stderr.
    pub verbose: bool,
    pub policy_config: Option<String>,
    /// A Prometheus `file_sd` file to keep listing the workers (see `LocalOptions`).
    pub prometheus_targets: Option<PathBuf>,
    /// Replace an earlier run folder that also holds the user's files (kept).
    pub force: bool,
    /// Run past the bounds on a run's work (`--allow-large`).
    pub allow_large: bool,
}

#[derive(Serialize)]
struct BackendInfo<'a> {
    format_version: u32,
    tool: &'static str,
    tool_version: &'static str,
    kind: &'static str,
    scenario: &'a str,
    scenario_file: String,
    policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_config: Option<&'a str>,
    seed: u64,
    backends: Vec<&'static str>,
    time_compression: f64,
    horizon_s: f64,
    /// The Kubernetes API server a real run talked to (never its credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
    /// Worker processes of the local backend that failed during the run.
    worker_failures: u64,
    /// Wall-clock seconds the run took.
    wall_s: f64,
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| out_err(path, e))?;
    fs::write(path, text + "\n").map_err(|e| out_err(path, e))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |e| out_err(path, e)
}

fn info<'a>(
    kind: &'static str,
    scenario: &'a Scenario,
    policy: String,
    policy_config: Option<&'a str>,
    seed: u64,
    backends: Vec<&'static str>,
    k: f64,
) -> BackendInfo<'a> {
    BackendInfo {
        format_version: INFO_FORMAT_VERSION,
        tool: "scalesim",
        tool_version: env!("CARGO_PKG_VERSION"),
        kind,
        scenario: &scenario.name,
        scenario_file: scenario.source.display().to_string(),
        policy,
        policy_config,
        seed,
        backends,
        time_compression: k,
        horizon_s: scenario.horizon.as_secs_f64(),
        api_url: None,
        worker_failures: 0,
        wall_s: 0.0,
    }
}

fn compression(scenario: &Scenario, options: &LocalRunOptions) -> f64 {
    options.time_compression.unwrap_or(scenario.backends.local_time_compression)
}

/// A run on a backend as the controller loop recorded it, with what only the backend knows.
pub struct Driven {
    pub recording: Recording,
    /// Worker processes that failed (local backend).
    pub failures: u64,
    /// `(cost, instance-hours)` from the backend's own history, where it keeps one.
    pub usage: Option<(f64, f64)>,
    /// The platform's measured cost per visit (local backend; empty elsewhere).
    pub overhead: PlatformOverhead,
}

impl Driven {
    /// Writes `timeline.csv`, `requests.csv` and `summary.json` (the simulator's schemas) under
    /// `prefix` in `dir`; `actions.csv` was written as the run went.
    fn write(&self, dir: &Path, prefix: &str, scenario: &Scenario, seed: u64) -> Result<(), RunError> {
        let rec = &self.recording;
        let at = |name: &str| dir.join(format!("{prefix}{name}"));
        rec.write_timeline(&at("timeline.csv")).map_err(io(dir))?;
        rec.write_requests(&at("requests.csv")).map_err(io(dir))?;
        let prices: Vec<f64> =
            scenario.app.services.iter().map(|s| scenario.cluster.skus[s.sku].price_per_hour).collect();
        let summary = rec.summary(&scenario.name, seed, scenario.slo.as_millis_f64(), self.usage, &prices);
        write_json(&at("summary.json"), &summary)
    }
}

fn actions_file(path: &Path) -> Result<ActionsWriter, RunError> {
    let f = fs::File::create(path).map_err(|e| out_err(path, e))?;
    ActionsWriter::new(Box::new(std::io::BufWriter::new(f))).map_err(|e| out_err(path, e))
}

/// Runs `policy` on the local backend: starts it, drives it to the horizon, and ends every worker
/// whatever happens.
pub fn drive_local(
    scenario: &Scenario,
    policy: &mut dyn Autoscaler,
    seed: u64,
    options: &LocalRunOptions,
    actions: ActionsWriter,
    progress: &mut dyn FnMut(SimTime, SimTime),
) -> Result<Driven, RunError> {
    let opts = LocalOptions {
        worker_exe: options.worker_exe.clone(),
        time_compression: compression(scenario, options),
        seed,
        verbose: options.verbose,
        prometheus_targets: options.prometheus_targets.clone(),
    };
    policy.set_seed(seed);
    let mut local = LocalBackend::start(scenario, opts)?;
    let mut stderr = std::io::stderr();
    let log: Option<&mut dyn std::io::Write> = if options.verbose { Some(&mut stderr) } else { None };
    let mut report = |b: &dyn ClusterBackend| progress(b.now(), b.horizon());
    let result = drive(&mut local, "local", policy, actions, log, &mut report);
    let usage = local.usage();
    local.shutdown();
    let overhead = local.platform_overhead();
    Ok(Driven { recording: result?, failures: local.failures(), usage, overhead })
}

/// Runs `policy` on the simulator, driven by the same loop as the real backends.
pub fn drive_sim(
    scenario: &Scenario,
    policy: &mut dyn Autoscaler,
    seed: u64,
    actions: ActionsWriter,
    progress: &mut dyn FnMut(SimTime, SimTime),
) -> Result<Driven, RunError> {
    let mut sim = Simulator::new(scenario, seed, Sinks::discard())?;
    policy.set_seed(seed);
    let mut report = |b: &dyn ClusterBackend| progress(b.now(), b.horizon());
    let recording = drive(&mut sim, "sim", policy, actions, None, &mut report)?;
    Ok(Driven { recording, failures: 0, usage: sim.usage(), overhead: PlatformOverhead::default() })
}

/// `run --backend local`: writes a run folder with the simulator's schema (`summary.json`,
/// `timeline.csv` with one row per decision period and service, `actions.csv`, `requests.csv`)
/// and `experiment_info.json`; `report` reads it as it reads a simulated run.
pub fn run_local_to_dir(
    scenario: &Scenario,
    mut policy: Box<dyn Autoscaler>,
    seed: u64,
    out: &Path,
    options: &LocalRunOptions,
    progress: &mut dyn FnMut(SimTime, SimTime),
) -> Result<Recording, RunError> {
    super::check_run_size(scenario, options.allow_large)?;
    write_run_folder(out, options.force, |dir| {
        let actions = actions_file(&dir.join("actions.csv"))?;
        let run = drive_local(scenario, policy.as_mut(), seed, options, actions, progress)?;
        let k = compression(scenario, options);
        let mut meta = info(
            "run",
            scenario,
            run.recording.policy.clone(),
            options.policy_config.as_deref(),
            seed,
            vec!["local"],
            k,
        );
        meta.worker_failures = run.failures;
        meta.wall_s = run.recording.wall_s;
        write_json(&dir.join("experiment_info.json"), &meta)?;
        run.write(dir, "", scenario, seed)?;
        Ok(run.recording)
    })
}

/// `run --backend kubernetes`: the policy on a user's cluster, in real time. Writes the same files
/// as a local run; the API URL is recorded, the token never is.
pub fn run_kubernetes_to_dir(
    scenario: &Scenario,
    mut policy: Box<dyn Autoscaler>,
    out: &Path,
    opts: crate::backend::kubernetes::KubeOptions,
    policy_config: Option<&str>,
    force: bool,
    progress: &mut dyn FnMut(SimTime, SimTime),
) -> Result<Recording, RunError> {
    // A real cluster runs in real time: the bounds always apply (a week is already a long
    // experiment on one).
    super::check_run_size(scenario, false)?;
    write_run_folder(out, force, |dir| {
        let dry_run = opts.dry_run;
        let api_url = opts.connection.base_url.clone();
        let mut kube = crate::backend::kubernetes::KubeBackend::connect(scenario, opts)?;
        let actions = actions_file(&dir.join("actions.csv"))?;
        let mut report = |b: &dyn ClusterBackend| progress(b.now(), b.horizon());
        let recording = drive(&mut kube, "kubernetes", policy.as_mut(), actions, None, &mut report)?;
        let run = Driven { usage: kube.usage(), recording, failures: 0, overhead: PlatformOverhead::default() };
        let mut meta =
            info("run", scenario, run.recording.policy.clone(), policy_config, scenario.seed, vec!["kubernetes"], 1.0);
        if dry_run {
            meta.kind = "dry-run";
        }
        meta.api_url = Some(api_url);
        meta.wall_s = run.recording.wall_s;
        write_json(&dir.join("experiment_info.json"), &meta)?;
        run.write(dir, "", scenario, scenario.seed)?;
        Ok(run.recording)
    })
}

/// Fresh copies of one policy for a validation's three runs (a policy keeps state between
/// decisions, so no two runs share one).
pub struct ValidationPolicies {
    /// On the real backend.
    pub real: Box<dyn Autoscaler>,
    /// On the simulator, replaying the real run's measured platform overhead.
    pub sim: Box<dyn Autoscaler>,
    /// On the simulator without it (reported, to show the overhead's share of the gap).
    pub sim_unmodelled: Box<dyn Autoscaler>,
}

/// `validate-backend`: the scenario under copies of one policy on the local backend and on the
/// simulator (which replays the platform overhead measured on the local run, see
/// `app::PlatformOverhead`); writes both runs' timelines and actions, the gap
/// (`validation.json`, `validation.md`), `replicas_compared.csv` and overlay charts.
pub fn validate_to_dir(
    scenario: &Scenario,
    mut policies: ValidationPolicies,
    seed: u64,
    out: &Path,
    options: &LocalRunOptions,
    progress: &mut dyn FnMut(&str, SimTime, SimTime),
) -> Result<Gap, RunError> {
    super::check_run_size(scenario, options.allow_large)?;
    write_run_folder(out, options.force, |dir| {
        let local_actions = actions_file(&dir.join("local_actions.csv"))?;
        let real_run = drive_local(scenario, policies.real.as_mut(), seed, options, local_actions, &mut |t, h| {
            progress("local", t, h)
        })?;
        let unmodelled =
            drive_sim(scenario, policies.sim_unmodelled.as_mut(), seed, ActionsWriter::discard(), &mut |_, _| {})?;
        let mut measured = scenario.clone();
        measured.app.overhead = Some(std::sync::Arc::new(real_run.overhead.clone()));
        let sim_actions = actions_file(&dir.join("sim_actions.csv"))?;
        let sim_run =
            drive_sim(&measured, policies.sim.as_mut(), seed, sim_actions, &mut |t, h| progress("sim", t, h))?;
        let (sim, real) = (&sim_run.recording, &real_run.recording);
        let k = compression(scenario, options);
        let gap = compare(&scenario.name, "local", seed, k, sim, real, real_run.failures).with_overhead(
            &real_run.overhead,
            &unmodelled.recording,
            real,
        );
        write_json(
            &dir.join("experiment_info.json"),
            &info(
                "validation",
                scenario,
                sim.policy.clone(),
                options.policy_config.as_deref(),
                seed,
                vec!["sim", "local"],
                k,
            ),
        )?;
        write_json(&dir.join("validation.json"), &gap)?;
        fs::write(dir.join("validation.md"), markdown(&gap)).map_err(io(dir))?;
        write_side_by_side(&dir.join("replicas_compared.csv"), sim, real).map_err(io(dir))?;
        sim_run.write(dir, "sim_", scenario, seed)?;
        real_run.write(dir, "local_", scenario, seed)?;
        let (replicas, cpu) = overlay_series(sim, real);
        crate::report::validation_charts(dir, &replicas, &cpu).map_err(|e| out_err(dir, e))?;
        Ok(gap)
    })
}

/// Per service, a (simulator, real) pair of series.
type Pairs = Vec<(Series, Series)>;

fn overlay_series(sim: &Recording, real: &Recording) -> (Pairs, Pairs) {
    let series = |log: &Recording, s: usize, value: &dyn Fn(&crate::metrics::ServiceSample) -> Option<f64>| Series {
        name: format!("{} {}", log.services[s], log.backend),
        points: log.samples.iter().filter_map(|x| value(&x.services[s]).map(|v| (x.time_s, v))).collect(),
    };
    let active = |v: &crate::metrics::ServiceSample| Some(v.active as f64);
    let cpu = |v: &crate::metrics::ServiceSample| v.cpu_utilization.map(|u| u * 100.0);
    (0..sim.services.len())
        .map(|s| ((series(sim, s, &active), series(real, s, &active)), (series(sim, s, &cpu), series(real, s, &cpu))))
        .unzip()
}
