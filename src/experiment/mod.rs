//! Run folders: one simulation written to `experiment_info.json`, `summary.json`, `timeline.csv`,
//! `actions.csv`, `requests.csv` (request-level counts per interval) and `latency.csv` (the
//! end-to-end latency distribution); and sweeps of many runs ([`sweep`]).
//!
//! A run is written into a staging folder inside the target and moved into place only when it has
//! finished and passed its conservation check ([`outdir`]), so a folder with a `summary.json` is
//! always one complete run. Nothing here may depend on wall-clock time or thread scheduling: the same scenario,
//! policy and seed give byte-identical files.

pub mod backend_run;
pub mod compare;
pub mod outdir;
pub mod pareto;
pub mod policies;
pub mod progress;
pub mod stats;
pub mod sweep;
pub mod train;
pub mod trainings;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::autoscale::Autoscaler;
use crate::backend::driver::drive;
use crate::backend::ClusterBackend;
use crate::metrics::{ActionsWriter, Summary, ACTIONS_FORMAT_VERSION, SUMMARY_FORMAT_VERSION, TIMELINE_FORMAT_VERSION};
use crate::scenario::Scenario;
use crate::sim::{Progress, SimError, Simulator, Sinks};

/// Version of `experiment_info.json`'s layout. 2: `policy.config` is left out when there is none
/// (it was `null`); `files` lists `requests.csv` and `latency.csv` too.
pub const INFO_FORMAT_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {message}")]
    Output { path: String, message: String },
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error("{scenario}: refusing to run: {what}")]
    TooLarge { scenario: String, what: String },
}

pub(crate) fn out_err(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Output { path: path.display().to_string(), message: e.to_string() }
}

/// What `experiment_info.json` records: everything needed to reproduce the run.
#[derive(Serialize)]
struct ExperimentInfo<'a> {
    format_version: u32,
    tool: &'static str,
    tool_version: &'static str,
    scenario: ScenarioInfo<'a>,
    policy: PolicyInfo<'a>,
    seed: u64,
    fidelity: &'static str,
    horizon_s: f64,
    slo_ms: f64,
    files: FileVersions,
}

#[derive(Serialize)]
struct ScenarioInfo<'a> {
    name: &'a str,
    file: String,
    description: &'a str,
}

#[derive(Serialize)]
struct PolicyInfo<'a> {
    name: String,
    /// Left out when there is none: no output holds a null.
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<&'a str>,
}

#[derive(Serialize)]
struct FileVersions {
    #[serde(rename = "summary.json")]
    summary: u32,
    /// Left out, as its file, for a run made with `--no-timeline`.
    #[serde(rename = "timeline.csv", skip_serializing_if = "Option::is_none")]
    timeline: Option<u32>,
    #[serde(rename = "actions.csv")]
    actions: u32,
    #[serde(rename = "requests.csv", skip_serializing_if = "Option::is_none")]
    requests: Option<u32>,
    #[serde(rename = "latency.csv")]
    latency: u32,
}

/// Version of `latency.csv`'s columns (`docs/metrics.md`).
pub const LATENCY_FORMAT_VERSION: u32 = 1;

/// Options of one run beyond scenario, policy and seed.
#[derive(Default)]
pub struct RunOptions {
    /// Where readable scaling events go (`--log-events`).
    pub event_log: Option<Box<dyn Write + Send>>,
    /// The policy config file, recorded in `experiment_info.json`.
    pub policy_config: Option<String>,
    /// Replace an earlier run in `out` even if the folder also holds the user's own files (they
    /// are kept).
    pub force: bool,
    /// Run even past [`MAX_HORIZON_S`] and [`MAX_REQUESTS`] (`--allow-large`).
    pub allow_large: bool,
    /// Write neither `timeline.csv` nor `requests.csv` (`--no-timeline`): the run folder keeps
    /// the summary, the decisions and the latency distribution. The two streams are almost all
    /// of a run's bytes (0.6 MB of a 0.7 MB folder for a 15-minute Online Boutique run), and a
    /// study of thousands of runs reads only the summaries.
    pub no_timeline: bool,
}

/// The longest horizon a run takes without `--allow-large`: one week. A per-second timeline of
/// Online Boutique over a week is already 6.7 million rows (about 500 MB).
pub const MAX_HORIZON_S: f64 = 7.0 * 86_400.0;

/// The most requests a run expects without `--allow-large`: a billion, about an hour of one
/// core at request fidelity on Online Boutique (983 ns a request in `cargo bench`).
pub const MAX_REQUESTS: f64 = 1e9;

/// Refuses a run whose size is absurd for a simulation (a horizon of 1e30 s, a rate of 1e308
/// requests/s), with the numbers and the flag that overrides the bound.
pub fn check_run_size(scenario: &Scenario, allow_large: bool) -> Result<(), RunError> {
    let horizon_s = scenario.horizon.as_secs_f64();
    let w = &scenario.workload;
    let requests = match &w.source {
        crate::workload::ArrivalSource::Rate { schedule, .. } => schedule.expected_arrivals(scenario.horizon),
        crate::workload::ArrivalSource::Replay { times, rate_scale, .. } => times.len() as f64 * rate_scale,
    };
    let refuse = |what: String| RunError::TooLarge { scenario: scenario.source.display().to_string(), what };
    if !requests.is_finite() {
        return Err(refuse(format!(
            "its workload's rates add up to an infinite number of requests over {horizon_s} s"
        )));
    }
    if allow_large {
        return Ok(());
    }
    if horizon_s > MAX_HORIZON_S {
        return Err(refuse(format!(
            "a horizon of {horizon_s} s is over the {MAX_HORIZON_S} s (one week) a run takes without --allow-large"
        )));
    }
    if requests > MAX_REQUESTS {
        return Err(refuse(format!(
            "about {requests:.3e} requests over {horizon_s} s is over the {MAX_REQUESTS:.0e} a run takes without \
             --allow-large"
        )));
    }
    Ok(())
}

/// Runs `scenario` under `policy` with `seed` and writes the run folder `out`.
pub fn run_to_dir(
    scenario: &Scenario,
    policy: Box<dyn Autoscaler>,
    seed: u64,
    out: &Path,
    options: RunOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, RunError> {
    check_run_size(scenario, options.allow_large)?;
    let force = options.force;
    outdir::write_run_folder(out, force, |staging| write_run(scenario, policy, seed, staging, options, progress))
}

fn write_run(
    scenario: &Scenario,
    policy: Box<dyn Autoscaler>,
    seed: u64,
    dir: &Path,
    options: RunOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, RunError> {
    let create = |name: &str| -> Result<Box<dyn Write + Send>, RunError> {
        let p = dir.join(name);
        let f = fs::File::create(&p).map_err(|e| out_err(&p, e))?;
        Ok(Box::new(BufWriter::with_capacity(1 << 16, f)))
    };
    let info = ExperimentInfo {
        format_version: INFO_FORMAT_VERSION,
        tool: "scalesim",
        tool_version: env!("CARGO_PKG_VERSION"),
        scenario: ScenarioInfo {
            name: &scenario.name,
            file: scenario.source.display().to_string(),
            description: &scenario.description,
        },
        policy: PolicyInfo { name: policy.name(), config: options.policy_config.as_deref() },
        seed,
        fidelity: scenario.fidelity.as_str(),
        horizon_s: scenario.horizon.as_secs_f64(),
        slo_ms: scenario.slo.as_millis_f64(),
        files: FileVersions {
            summary: SUMMARY_FORMAT_VERSION,
            timeline: (!options.no_timeline).then_some(TIMELINE_FORMAT_VERSION),
            actions: ACTIONS_FORMAT_VERSION,
            // requests.csv shares timeline.csv's version (written by the same recorder).
            requests: (!options.no_timeline).then_some(TIMELINE_FORMAT_VERSION),
            latency: LATENCY_FORMAT_VERSION,
        },
    };
    write_json(&dir.join("experiment_info.json"), &info)?;
    let stream = |name: &str| if options.no_timeline { Ok(None) } else { create(name).map(Some) };
    let sinks =
        Sinks { timeline: stream("timeline.csv")?, events: options.event_log, requests: stream("requests.csv")? };
    let actions = ActionsWriter::new(create("actions.csv")?).map_err(|e| out_err(&dir.join("actions.csv"), e))?;
    let (sim, summary) = simulate_with_progress(scenario, policy, seed, sinks, actions, progress)?;
    let cdf = sim.latency_cdf();
    drop(sim); // flushes and closes the CSV files before the folder is renamed
    let mut text = String::from("latency_ms,cumulative_fraction,format_version\n");
    for (ms, f) in cdf {
        text.push_str(&format!("{ms:.3},{f:.6},{LATENCY_FORMAT_VERSION}\n"));
    }
    let p = dir.join("latency.csv");
    fs::write(&p, text).map_err(|e| out_err(&p, e))?;
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| out_err(&path, e))?;
    // serde_json writes NaN and infinities as null, and the summary has no optional field that
    // could be null: a null here is a metric that divided by zero. Fail loudly rather than hand
    // a sweep a number it cannot read back.
    if let Some(line) = text.lines().find(|l| l.ends_with(": null") || l.ends_with(": null,")) {
        return Err(out_err(&path, format!("a metric is not a finite number ({}); please report this", line.trim())));
    }
    fs::write(&path, text + "\n").map_err(|e| out_err(&path, e))?;
    Ok(summary)
}

/// Runs `scenario` on the simulator under `policy` to the horizon through the one controller loop,
/// the simulator's streams to `sinks` and the decisions to `actions`; returns the simulator (to
/// look into) and the summary. For tests and for embedding; the CLI writes run folders instead.
pub fn simulate(
    scenario: &Scenario,
    policy: Box<dyn Autoscaler>,
    seed: u64,
    sinks: Sinks,
    actions: ActionsWriter,
) -> Result<(Simulator, Summary), RunError> {
    simulate_with_progress(scenario, policy, seed, sinks, actions, &mut |_| {})
}

/// [`simulate`], reporting progress (simulated time, requests) as the run goes.
fn simulate_with_progress(
    scenario: &Scenario,
    mut policy: Box<dyn Autoscaler>,
    seed: u64,
    sinks: Sinks,
    actions: ActionsWriter,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Simulator, Summary), RunError> {
    let mut sim = Simulator::new(scenario, seed, sinks)?;
    policy.set_seed(seed);
    let mut report = |b: &dyn ClusterBackend| {
        let t = b.totals();
        progress(&Progress {
            now: b.now(),
            horizon: b.horizon(),
            arrived: t.arrived,
            in_flight: t.arrived - t.finished(),
        })
    };
    let recording = drive(&mut sim, "sim", policy.as_mut(), actions, None, &mut report)?;
    let summary = sim.finish(&recording.policy)?;
    Ok((sim, summary))
}

/// Writes `value` as pretty JSON with a final newline.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| out_err(path, e))?;
    text.push('\n');
    fs::write(path, text).map_err(|e| out_err(path, e))
}
