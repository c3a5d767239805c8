//! What several subcommands share: loading a scenario with `--horizon`, the local backend's
//! options, progress over simulated seconds, and default run-folder names.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use scalesim::engine::SimTime;
use scalesim::experiment::backend_run::LocalRunOptions;
use scalesim::experiment::outdir::{default_run_path, file_bytes, safe_name, short_hash, stem};
use scalesim::experiment::policies::PolicyChoice;
use scalesim::experiment::progress::Progress;
use scalesim::scenario::{load_scenario, Fidelity};

pub(crate) fn local_options(
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
pub(crate) fn load_with_horizon(path: &Path, horizon: Option<f64>) -> Result<scalesim::scenario::Scenario> {
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
pub(crate) fn seconds_bar(quiet: bool, horizon: SimTime, unit: &str) -> Progress {
    Progress::new(quiet, horizon.whole_secs().max(1), unit)
}

/// The default folder of a run: readable parts (scenario, policy or its config, seed), then a hash
/// of everything that decides the results (the scenario's, config's or checkpoint's bytes, the
/// seed, horizon and backend), so that two different runs never share a folder and the same run
/// always lands in the same one.
pub(crate) fn default_out(
    prefix: &str,
    scenario_file: &Path,
    sc: &scalesim::scenario::Scenario,
    policy: &PolicyChoice,
    policy_config: Option<&Path>,
    seed: u64,
    backend: &str,
) -> PathBuf {
    let (label, policy_bytes) = match policy {
        PolicyChoice::Agent(ck) => {
            let training = ck.parent().map(stem).filter(|s| !s.is_empty()).unwrap_or_else(|| stem(ck));
            (format!("agent_{training}"), file_bytes(ck))
        }
        other => (other.to_string(), other.to_string().into_bytes()),
    };
    let label = match policy_config {
        Some(c) => format!("{label}_{}", stem(c)),
        None => label,
    };
    let config_bytes = policy_config.map(file_bytes).unwrap_or_default();
    named_out(prefix, scenario_file, sc, &label, &[&policy_bytes, &config_bytes], seed, backend)
}

/// The default folder of `scalesim eval` with several checkpoints (an ensemble): as
/// [`default_out`]'s for an agent, labelled `ensembleN` and hashed over every member's bytes, so
/// an ensemble never shares a folder with its first member alone.
pub(crate) fn ensemble_out(
    scenario_file: &Path,
    sc: &scalesim::scenario::Scenario,
    members: &[PathBuf],
    seed: u64,
    backend: &str,
) -> PathBuf {
    let training = members.first().and_then(|ck| ck.parent()).map(stem).unwrap_or_default();
    let label = format!("ensemble{}_{training}", members.len());
    let bytes: Vec<Vec<u8>> = members.iter().map(|ck| file_bytes(ck)).collect();
    let parts: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    named_out("", scenario_file, sc, &label, &parts, seed, backend)
}

/// Applies a `--fidelity` override to the scenario and gives the simulator's backend label for
/// [`default_out`]: `sim`, or `sim/<fidelity>` when the fidelity was overridden, so that a run
/// at another fidelity than its scenario file's never lands in that run's folder (the folder's
/// hash covers the file's bytes, not the override).
pub(crate) fn sim_backend_label(sc: &mut scalesim::scenario::Scenario, fidelity: Option<Fidelity>) -> String {
    match fidelity {
        Some(f) => {
            sc.fidelity = f;
            format!("sim/{}", f.as_str())
        }
        None => "sim".to_string(),
    }
}

/// `<prefix><scenario>_<label>_seed<N>_<hash>` under runs/, the hash over the scenario file's
/// bytes, `policy_parts`, the seed, horizon and backend.
fn named_out(
    prefix: &str,
    scenario_file: &Path,
    sc: &scalesim::scenario::Scenario,
    label: &str,
    policy_parts: &[&[u8]],
    seed: u64,
    backend: &str,
) -> PathBuf {
    let scenario_bytes = file_bytes(scenario_file);
    let (seed_bytes, horizon_bytes) = (seed.to_le_bytes(), sc.horizon.as_micros().to_le_bytes());
    let mut parts: Vec<&[u8]> = vec![&scenario_bytes];
    parts.extend_from_slice(policy_parts);
    parts.extend_from_slice(&[&seed_bytes, &horizon_bytes, backend.as_bytes()]);
    let hash = short_hash(&parts);
    let name = format!("{prefix}{}_{label}_seed{seed}_{hash}", sc.name);
    default_run_path(&safe_name(&name))
}
