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
use crate::autoscale::{Autoscaler, StaticPolicy};
use crate::backend::driver::{drive, DriveLog};
use crate::backend::local::{LocalBackend, LocalOptions};
use crate::backend::validate::{compare, markdown, write_side_by_side, Gap};
use crate::backend::ClusterBackend;
use crate::engine::SimTime;
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
}

#[derive(Serialize)]
struct BackendSummary<'a> {
    format_version: u32,
    backend: &'a str,
    policy: &'a str,
    requests: crate::sim::RunTotals,
    /// Requests neither completed nor dropped when the horizon came.
    in_flight_at_end: u64,
    latency_ms: &'a crate::metrics::LatencySummary,
    slo_violation_pct: f64,
    scale_decisions: usize,
    worker_failures: u64,
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
    }
}

fn compression(scenario: &Scenario, options: &LocalRunOptions) -> f64 {
    options.time_compression.unwrap_or(scenario.backends.local_time_compression)
}

/// Runs `policy` on the local backend: starts it, drives it to the horizon, and ends every worker
/// whatever happens.
pub fn drive_local(
    scenario: &Scenario,
    policy: &mut dyn Autoscaler,
    seed: u64,
    options: &LocalRunOptions,
    progress: &mut dyn FnMut(SimTime, SimTime),
) -> Result<(DriveLog, u64), RunError> {
    let opts = LocalOptions {
        worker_exe: options.worker_exe.clone(),
        time_compression: compression(scenario, options),
        seed,
        verbose: options.verbose,
        prometheus_targets: options.prometheus_targets.clone(),
    };
    let mut local = LocalBackend::start(scenario, opts)?;
    let mut stderr = std::io::stderr();
    let log: Option<&mut dyn std::io::Write> = if options.verbose { Some(&mut stderr) } else { None };
    let result = drive(&mut local, "local", policy, progress, log);
    local.shutdown();
    Ok((result?, local.failures()))
}

/// Runs `policy` on the simulator, driven by the same loop as the real backends.
pub fn drive_sim(
    scenario: &Scenario,
    policy: &mut dyn Autoscaler,
    seed: u64,
    progress: &mut dyn FnMut(SimTime, SimTime),
) -> Result<DriveLog, RunError> {
    let mut sim = Simulator::new(scenario, Box::new(StaticPolicy), seed, Sinks::discard())?;
    Ok(drive(&mut sim, "sim", policy, progress, None)?)
}

fn summary<'a>(log: &'a DriveLog, failures: u64) -> BackendSummary<'a> {
    let t = &log.totals;
    let finished = t.completed + t.dropped;
    let violating = t.dropped + (t.completed - t.within_slo);
    BackendSummary {
        format_version: 1,
        backend: &log.backend,
        policy: &log.policy,
        requests: log.totals,
        in_flight_at_end: t.arrived.saturating_sub(finished),
        latency_ms: &log.latency_ms,
        slo_violation_pct: if finished > 0 { 100.0 * violating as f64 / finished as f64 } else { 0.0 },
        scale_decisions: log.scale_decisions(),
        worker_failures: failures,
        wall_s: log.wall_s,
    }
}

/// A backend run folder's timeline, actions and summary files.
const RUN_FILES: [&str; 3] = ["timeline.csv", "actions.csv", "backend_summary.json"];

/// Writes `log`'s samples, decisions and summary to the files `[timeline, actions, summary]`.
fn write_log(
    dir: &Path,
    log: &DriveLog,
    failures: u64,
    [timeline, actions, summary_file]: [&str; 3],
) -> Result<(), RunError> {
    log.write_samples(&dir.join(timeline)).map_err(io(dir))?;
    log.write_decisions(&dir.join(actions)).map_err(io(dir))?;
    write_json(&dir.join(summary_file), &summary(log, failures))
}

/// `run --backend local`: writes `experiment_info.json`, `backend_summary.json`, `timeline.csv`
/// (one row per decision period and service) and `actions.csv`.
pub fn run_local_to_dir(
    scenario: &Scenario,
    mut policy: Box<dyn Autoscaler>,
    seed: u64,
    out: &Path,
    options: &LocalRunOptions,
    progress: &mut dyn FnMut(SimTime, SimTime),
) -> Result<DriveLog, RunError> {
    super::check_run_size(scenario, options.allow_large)?;
    write_run_folder(out, options.force, |dir| {
        let (log, failures) = drive_local(scenario, policy.as_mut(), seed, options, progress)?;
        let k = compression(scenario, options);
        write_json(
            &dir.join("experiment_info.json"),
            &info("run", scenario, log.policy.clone(), options.policy_config.as_deref(), seed, vec!["local"], k),
        )?;
        write_log(dir, &log, failures, RUN_FILES)?;
        Ok(log)
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
) -> Result<DriveLog, RunError> {
    // A real cluster runs in real time: the bounds always apply (a week is already a long
    // experiment on one).
    super::check_run_size(scenario, false)?;
    write_run_folder(out, force, |dir| {
        let dry_run = opts.dry_run;
        let api_url = opts.connection.base_url.clone();
        let mut kube = crate::backend::kubernetes::KubeBackend::connect(scenario, opts)?;
        let log = drive(&mut kube, "kubernetes", policy.as_mut(), progress, None)?;
        let mut meta = info("run", scenario, log.policy.clone(), policy_config, scenario.seed, vec!["kubernetes"], 1.0);
        if dry_run {
            meta.kind = "dry-run";
        }
        meta.api_url = Some(api_url);
        write_json(&dir.join("experiment_info.json"), &meta)?;
        write_log(dir, &log, 0, RUN_FILES)?;
        Ok(log)
    })
}

/// `validate-backend`: the scenario under two copies of one policy, on the simulator and on the
/// local backend; writes both runs' timelines and actions, the gap (`validation.json`,
/// `validation.md`), `replicas_compared.csv` and overlay charts.
pub fn validate_to_dir(
    scenario: &Scenario,
    mut sim_policy: Box<dyn Autoscaler>,
    mut real_policy: Box<dyn Autoscaler>,
    seed: u64,
    out: &Path,
    options: &LocalRunOptions,
    progress: &mut dyn FnMut(&str, SimTime, SimTime),
) -> Result<Gap, RunError> {
    super::check_run_size(scenario, options.allow_large)?;
    write_run_folder(out, options.force, |dir| {
        let sim = drive_sim(scenario, sim_policy.as_mut(), seed, &mut |t, h| progress("sim", t, h))?;
        let (real, failures) =
            drive_local(scenario, real_policy.as_mut(), seed, options, &mut |t, h| progress("local", t, h))?;
        let k = compression(scenario, options);
        let gap = compare(&scenario.name, "local", seed, k, &sim, &real, failures);
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
        write_side_by_side(&dir.join("replicas_compared.csv"), &sim, &real).map_err(io(dir))?;
        write_log(dir, &sim, 0, ["sim_timeline.csv", "sim_actions.csv", "sim_summary.json"])?;
        write_log(dir, &real, failures, ["local_timeline.csv", "local_actions.csv", "local_summary.json"])?;
        let (replicas, cpu) = overlay_series(&sim, &real);
        crate::report::validation_charts(dir, &replicas, &cpu).map_err(|e| out_err(dir, e))?;
        Ok(gap)
    })
}

/// Per service, a (simulator, real) pair of series.
type Pairs = Vec<(Series, Series)>;

fn overlay_series(sim: &DriveLog, real: &DriveLog) -> (Pairs, Pairs) {
    let series =
        |log: &DriveLog, s: usize, value: &dyn Fn(&crate::backend::driver::ServiceSample) -> Option<f64>| Series {
            name: format!("{} {}", log.services[s], log.backend),
            points: log.samples.iter().filter_map(|x| value(&x.services[s]).map(|v| (x.time_s, v))).collect(),
        };
    let active = |v: &crate::backend::driver::ServiceSample| Some(v.active as f64);
    let cpu = |v: &crate::backend::driver::ServiceSample| v.cpu_utilization.map(|u| u * 100.0);
    (0..sim.services.len())
        .map(|s| ((series(sim, s, &active), series(real, s, &active)), (series(sim, s, &cpu), series(real, s, &cpu))))
        .unzip()
}
