//! Run folders: one simulation written to `experiment_info.json`, `summary.json`, `timeline.csv`,
//! `actions.csv`, `requests.csv` (request-level counts per interval) and `latency.csv` (the
//! end-to-end latency distribution); and sweeps of many runs ([`sweep`]).
//!
//! A run is written into a hidden staging folder beside the target and renamed into place only when
//! it has finished and passed its conservation check, so a folder named like a run is always a
//! complete run. Nothing here may depend on wall-clock time or thread scheduling: the same scenario,
//! policy and seed give byte-identical files.

pub mod backend_run;
pub mod stats;
pub mod sweep;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::autoscale::Autoscaler;
use crate::metrics::{Summary, SUMMARY_FORMAT_VERSION, TIMELINE_FORMAT_VERSION};
use crate::scenario::Scenario;
use crate::sim::{Progress, SimError, Simulator, Sinks, ACTIONS_FORMAT_VERSION};

/// Version of `experiment_info.json`'s layout.
pub const INFO_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {message}")]
    Output { path: String, message: String },
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
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
    config: Option<&'a str>,
}

#[derive(Serialize)]
struct FileVersions {
    #[serde(rename = "summary.json")]
    summary: u32,
    #[serde(rename = "timeline.csv")]
    timeline: u32,
    #[serde(rename = "actions.csv")]
    actions: u32,
}

/// Options of one run beyond scenario, policy and seed.
#[derive(Default)]
pub struct RunOptions {
    /// Where readable scaling events go (`--log-events`).
    pub event_log: Option<Box<dyn Write + Send>>,
    /// The policy config file, recorded in `experiment_info.json`.
    pub policy_config: Option<String>,
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
    in_staging(out, |staging| write_run(scenario, policy, seed, staging, options, progress))
}

/// Writes a run folder through a hidden staging folder beside `out`, renamed into place only when
/// `write` succeeds (removed when it fails), so a folder named like a run is always complete.
pub(crate) fn in_staging<T>(out: &Path, write: impl FnOnce(&Path) -> Result<T, RunError>) -> Result<T, RunError> {
    check_replaceable(out)?;
    let staging = staging_path(out);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| out_err(&staging, e))?;
    }
    fs::create_dir_all(&staging).map_err(|e| out_err(&staging, e))?;
    match write(&staging) {
        Ok(v) => {
            if out.exists() {
                fs::remove_dir_all(out).map_err(|e| out_err(out, e))?;
            }
            fs::rename(&staging, out).map_err(|e| out_err(out, e))?;
            Ok(v)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
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
            timeline: TIMELINE_FORMAT_VERSION,
            actions: ACTIONS_FORMAT_VERSION,
        },
    };
    write_json(&dir.join("experiment_info.json"), &info)?;
    let sinks = Sinks {
        timeline: Some(create("timeline.csv")?),
        actions: create("actions.csv")?,
        events: options.event_log,
        requests: Some(create("requests.csv")?),
    };
    let mut sim = Simulator::new(scenario, policy, seed, sinks)?;
    let summary = sim.run(progress)?;
    let cdf = sim.latency_cdf();
    drop(sim); // flushes and closes the CSV files before the folder is renamed
    let mut text = String::from("latency_ms,cumulative_fraction,format_version\n");
    for (ms, f) in cdf {
        text.push_str(&format!("{ms:.3},{f:.6},1\n"));
    }
    let p = dir.join("latency.csv");
    fs::write(&p, text).map_err(|e| out_err(&p, e))?;
    write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Writes `value` as pretty JSON with a final newline.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| out_err(path, e))?;
    text.push('\n');
    fs::write(path, text).map_err(|e| out_err(path, e))
}

/// The hidden folder a run is written to before it is renamed to `out`.
pub fn staging_path(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    out.with_file_name(format!(".{name}.partial"))
}

/// A run may replace `out` only if it is absent, empty, or an earlier run folder: never a folder of
/// the user's own files.
fn check_replaceable(out: &Path) -> Result<(), RunError> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(out_err(out, "exists and is not a folder"));
    }
    let mut entries = fs::read_dir(out).map_err(|e| out_err(out, e))?;
    if entries.next().is_none() || out.join("experiment_info.json").is_file() {
        return Ok(());
    }
    Err(out_err(out, "exists and is not a scalesim run folder; refusing to replace it"))
}
