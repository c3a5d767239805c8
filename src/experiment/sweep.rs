//! Sweeps: a grid of scenarios x policies x parameter points x seeds, run on all cores, resumable,
//! shardable across machines, with comparison reports.
//!
//! A sweep file (`configs/sweeps/*.yaml`; paths inside are relative to the file):
//!
//! ```yaml
//! name: baselines
//! scenarios: [../../scenarios/online_boutique_rush.yaml]
//! policies:
//!   - { label: static, policy: static }
//!   - { label: hpa, policy: hpa }              # config: FILE optional
//! seeds: { from: 1, to: 5 }                    # a number, a list, or a range
//! baseline: static                             # for Cliff's delta
//! axes:
//!   hpa.cpu_target: [20, 40, 60, 80]           # only HPA runs vary along it
//!   scenario.scale_up_delay_s: 10              # every run
//! ```
//!
//! `timelines: all | first_seed | none` (default all) says which runs keep `timeline.csv` and
//! `requests.csv`: a large sweep's timelines are most of its bytes (0.6 MB of a 15-minute Online
//! Boutique run's 0.7 MB), the statistics read only summaries, and `report` charts the first
//! seed's runs over time, so `first_seed` keeps every chart at a fraction of the disk.
//!
//! Axes: `hpa.cpu_target` (percent, HPA runs only), `scenario.scale_up_delay_s`,
//! `scenario.rate_scale`, `policy.period_s` (the decision interval). Runs are numbered in grid order
//! (scenario, policy, parameter point, seed); results are written and read back in that order, so
//! the reports are the same whatever the number of threads, shards or interruptions.
//!
//! Layout: `OUT/YYYYMMDD_HHMMSS_sweep_{name}_{fidelity}_slo_{runs}/` with `sweep.yaml` (the input),
//! `sweep_manifest.json` (the grid), `runs/NNNN_.../` (one run folder each) and
//! `comparison_reports/` (`all_experiments_summary.csv`, `statistics.csv`, `statistics.md`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::policies::{PolicyChoice, POLICY_NAMES};
use super::stats::{cliffs_delta, describe, magnitude};
use super::{run_to_dir, write_json, RunError, RunOptions};
use crate::autoscale::hpa::spec::{default_config, load_config, MetricRule, ResourceName, Target};
use crate::autoscale::{Autoscaler, HpaPolicy, ScaleDecision};
use crate::engine::SimTime;
use crate::metrics::{ClusterView, Summary, COMPARED};
use crate::scenario::{load_scenario, parse_yaml, ConfigError, ConfigText, Fidelity, Scenario};
use crate::workload::ArrivalSource;

pub const MANIFEST_FORMAT_VERSION: u32 = 1;
pub const SUMMARY_CSV_FORMAT_VERSION: u32 = 1;
/// Version of `timeline_all.csv`'s columns.
pub const TIMELINE_ALL_FORMAT_VERSION: u32 = 1;

/// A parameter a sweep varies. Written in sweep files and run records by [`Axis::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// The HPA's CPU utilisation target (%): applies to `hpa` policies only.
    HpaCpuTarget,
    /// Every service's scale-up delay (s).
    ScaleUpDelay,
    /// A factor on the workload's rates.
    RateScale,
    /// The policy's decision interval (s).
    PolicyPeriod,
}

impl Axis {
    pub const ALL: [Axis; 4] = [Axis::HpaCpuTarget, Axis::ScaleUpDelay, Axis::RateScale, Axis::PolicyPeriod];

    pub fn name(self) -> &'static str {
        match self {
            Axis::HpaCpuTarget => "hpa.cpu_target",
            Axis::ScaleUpDelay => "scenario.scale_up_delay_s",
            Axis::RateScale => "scenario.rate_scale",
            Axis::PolicyPeriod => "policy.period_s",
        }
    }

    pub fn from_name(name: &str) -> Option<Axis> {
        Axis::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether the axis varies a run of `policy` (an HPA setting does not apply to other policies).
    pub fn applies_to(self, policy: &PolicyChoice) -> bool {
        self != Axis::HpaCpuTarget || *policy == PolicyChoice::Hpa
    }

    /// Whether every policy shares the axis (so a run's baseline is matched on it).
    fn is_shared(self) -> bool {
        self != Axis::HpaCpuTarget
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{failed} of {total} runs failed; first: {first}")]
    RunsFailed { failed: usize, total: usize, first: String },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> SweepError {
    SweepError::Io { path: path.display().to_string(), message: e.to_string() }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum RawValues {
    One(f64),
    List(Vec<f64>),
    Range {
        from: f64,
        to: f64,
        #[serde(default = "one")]
        step: f64,
    },
}

fn one() -> f64 {
    1.0
}

/// The most runs one sweep may hold: a million (at a tenth of a second each, over a day on one
/// core). A range or grid past it is refused with its size instead of exhausting memory.
pub const MAX_GRID_RUNS: usize = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    label: Option<String>,
    policy: String,
    config: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    #[serde(default = "one_u32")]
    format_version: u32,
    name: String,
    #[serde(default)]
    description: String,
    scenarios: Vec<String>,
    policies: Vec<RawPolicy>,
    seeds: RawValues,
    baseline: Option<String>,
    fidelity: Option<String>,
    horizon_s: Option<f64>,
    #[serde(default)]
    axes: BTreeMap<String, RawValues>,
    #[serde(default)]
    timelines: Timelines,
}

/// Which runs of a sweep keep their timelines (`timeline.csv`, `requests.csv`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Timelines {
    /// Every run (and `timeline_all.csv` holds them all).
    #[default]
    All,
    /// The runs of the sweep's first seed: those `report` charts over time.
    FirstSeed,
    /// None: the sweep's reports are its statistics and bar charts.
    None,
}

fn one_u32() -> u32 {
    1
}

/// A policy of the sweep, resolved.
#[derive(Clone, Debug)]
pub struct SweepPolicy {
    pub label: String,
    pub policy: PolicyChoice,
    pub config: Option<PathBuf>,
}

/// One run of the grid.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSpec {
    pub id: usize,
    pub dir: String,
    pub scenario: String,
    pub policy: String,
    /// `axis=value` pairs, in axis order.
    pub params: Vec<(String, f64)>,
    pub seed: u64,
    #[serde(skip)]
    scenario_idx: usize,
    #[serde(skip)]
    policy_idx: usize,
}

/// Equal when what a manifest records is equal (the in-memory indices are not recorded).
impl PartialEq for RunSpec {
    fn eq(&self, o: &Self) -> bool {
        (self.id, &self.dir, &self.scenario, &self.policy, &self.params, self.seed)
            == (o.id, &o.dir, &o.scenario, &o.policy, &o.params, o.seed)
    }
}

impl RunSpec {
    pub fn params_label(&self) -> String {
        self.params.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(" ")
    }

    /// The parameters that apply to every policy (for matching a run with its baseline).
    fn shared_params(&self) -> Vec<(String, f64)> {
        self.params.iter().filter(|(a, _)| Axis::from_name(a).is_some_and(Axis::is_shared)).cloned().collect()
    }
}

/// A resolved sweep.
pub struct Sweep {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    pub text: String,
    pub scenarios: Vec<Scenario>,
    pub policies: Vec<SweepPolicy>,
    pub baseline: Option<String>,
    pub grid: Vec<RunSpec>,
    pub fidelity: Fidelity,
    pub timelines: Timelines,
}

fn values(v: &RawValues, what: &str, err: &dyn Fn(&str, String) -> ConfigError) -> Result<Vec<f64>, ConfigError> {
    let out = match v {
        RawValues::One(x) => vec![*x],
        RawValues::List(xs) => xs.clone(),
        RawValues::Range { from, to, step } => {
            if !(step.is_finite() && *step > 0.0 && from.is_finite() && to.is_finite()) || from > to {
                return Err(err(what, format!("range from {from} to {to} step {step}: need from <= to and step > 0")));
            }
            let n = ((to - from) / step + 1e-9).floor();
            if n >= MAX_GRID_RUNS as f64 {
                return Err(err(
                    what,
                    format!("range from {from} to {to} step {step} has {n:.0} values; a sweep takes at most {MAX_GRID_RUNS} runs"),
                ));
            }
            let n = n as usize;
            (0..=n).map(|i| from + i as f64 * step).collect()
        }
    };
    if out.is_empty() {
        return Err(err(what, "is empty: give at least one value".into()));
    }
    if out.iter().any(|x| !x.is_finite()) {
        return Err(err(what, "has a value that is not a number".into()));
    }
    Ok(out)
}

use super::outdir::safe_name as sanitize;

impl Sweep {
    /// Reads and checks a sweep file: every scenario loads, every policy exists and builds, every
    /// config file exists: a bad sweep fails before any run starts.
    pub fn load(path: &Path) -> Result<Sweep, SweepError> {
        let cfg = ConfigText::read(path)?;
        let raw: RawSweep = cfg.parse()?;
        let err = |field: &str, message: String| cfg.invalid(field, message);
        let file = &cfg.file;
        if raw.format_version != 1 {
            return Err(err("format_version", format!("is {}; this build reads 1", raw.format_version)).into());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let fidelity = match raw.fidelity.as_deref() {
            None => None,
            Some("request") => Some(Fidelity::Request),
            Some("fluid") => Some(Fidelity::Fluid),
            Some(o) => return Err(err("fidelity", format!("`{o}`: expected request or fluid")).into()),
        };
        if raw.scenarios.is_empty() {
            return Err(err("scenarios", "is empty".into()).into());
        }
        let mut scenarios = Vec::new();
        for s in &raw.scenarios {
            let mut sc = load_scenario(&base.join(s))?;
            if let Some(f) = fidelity {
                sc.fidelity = f;
            }
            if let Some(h) = raw.horizon_s {
                if !(h.is_finite() && h >= crate::scenario::raw::RESOLUTION_S) {
                    return Err(err(
                        "horizon_s",
                        format!("{h}: must be at least 0.000001 s (1 us, the simulator's resolution)"),
                    )
                    .into());
                }
                sc.horizon = SimTime::from_secs_f64(h);
            }
            scenarios.push(sc);
        }
        if raw.policies.is_empty() {
            return Err(err("policies", "is empty".into()).into());
        }
        let mut policies: Vec<SweepPolicy> = Vec::new();
        for p in &raw.policies {
            let choice = PolicyChoice::parse(&p.policy).map_err(|_| {
                err(&p.policy, format!("unknown policy `{}`; known: {}", p.policy, POLICY_NAMES.join(", ")))
            })?;
            // An agent's checkpoint path is relative to the sweep file like every other path.
            let choice = match choice {
                PolicyChoice::Agent(ck) => PolicyChoice::Agent(base.join(ck)),
                other => other,
            };
            let config = p.config.as_ref().map(|c| base.join(c));
            if let Some(c) = &config {
                if !c.is_file() {
                    return Err(err(
                        p.config.as_deref().unwrap_or("config"),
                        format!("{} does not exist", c.display()),
                    )
                    .into());
                }
            }
            for sc in &scenarios {
                choice
                    .build(config.as_deref(), sc)
                    .map_err(|e| SweepError::Invalid(format!("{file}: policy `{}`: {e}", p.policy)))?;
            }
            let label = p.label.clone().unwrap_or_else(|| p.policy.clone());
            if policies.iter().any(|q| q.label == label) {
                return Err(err(&label, format!("two policies are labelled `{label}`")).into());
            }
            policies.push(SweepPolicy { label, policy: choice, config });
        }
        if let Some(b) = &raw.baseline {
            if !policies.iter().any(|p| &p.label == b) {
                return Err(err("baseline", format!("`{b}` is not a policy label of this sweep")).into());
            }
        }
        let seeds: Vec<u64> = values(&raw.seeds, "seeds", &err)?
            .into_iter()
            .map(|s| {
                if s >= 0.0 && s.fract() == 0.0 {
                    Ok(s as u64)
                } else {
                    Err(err("seeds", format!("{s} is not a whole number >= 0")))
                }
            })
            .collect::<Result<_, _>>()?;
        let mut axes: Vec<(Axis, Vec<f64>)> = Vec::new();
        for (name, v) in &raw.axes {
            let Some(axis) = Axis::from_name(name) else {
                let known: Vec<&str> = Axis::ALL.iter().map(|a| a.name()).collect();
                return Err(err(name, format!("unknown axis `{name}`; known: {}", known.join(", "))).into());
            };
            let vals = values(v, name, &err)?;
            if vals.iter().any(|&x| x <= 0.0) {
                return Err(err(name, "values must be > 0".into()).into());
            }
            if axis == Axis::PolicyPeriod && vals.iter().any(|&x| x < 0.001) {
                return Err(err(name, "a decision period must be at least 0.001 s".into()).into());
            }
            axes.push((axis, vals));
        }
        let points_per_policy = |p: &SweepPolicy| -> f64 {
            axes.iter().filter(|(a, _)| a.applies_to(&p.policy)).map(|(_, v)| v.len() as f64).product()
        };
        let runs: f64 =
            scenarios.len() as f64 * seeds.len() as f64 * policies.iter().map(points_per_policy).sum::<f64>();
        if runs > MAX_GRID_RUNS as f64 {
            return Err(SweepError::Invalid(format!(
                "{file}: the grid has {runs:.0} runs (scenarios x policies x axis points x seeds); a sweep takes at most {MAX_GRID_RUNS}"
            )));
        }
        let mut grid = Vec::new();
        for (si, sc) in scenarios.iter().enumerate() {
            for (pi, p) in policies.iter().enumerate() {
                let applicable: Vec<&(Axis, Vec<f64>)> = axes.iter().filter(|(a, _)| a.applies_to(&p.policy)).collect();
                let mut points: Vec<Vec<(String, f64)>> = vec![vec![]];
                for (a, vals) in applicable {
                    points = points
                        .into_iter()
                        .flat_map(|pt| {
                            vals.iter().map(move |v| {
                                let mut q = pt.clone();
                                q.push((a.name().to_string(), *v));
                                q
                            })
                        })
                        .collect();
                }
                for pt in points {
                    for &seed in &seeds {
                        let id = grid.len();
                        let tag: String =
                            pt.iter().map(|(a, v)| format!("_{}{v}", a.rsplit('.').next().unwrap_or(a))).collect();
                        let dir = sanitize(&format!("{id:04}_{}_{}{tag}_s{seed}", sc.name, p.label));
                        grid.push(RunSpec {
                            id,
                            dir,
                            scenario: sc.name.clone(),
                            policy: p.label.clone(),
                            params: pt.clone(),
                            seed,
                            scenario_idx: si,
                            policy_idx: pi,
                        });
                    }
                }
            }
        }
        let fidelity = scenarios[0].fidelity;
        Ok(Sweep {
            name: raw.name,
            description: raw.description,
            file: path.to_path_buf(),
            text: cfg.text.clone(),
            scenarios,
            policies,
            baseline: raw.baseline,
            grid,
            fidelity,
            timelines: raw.timelines,
        })
    }

    /// Whether `run` writes its timeline (the sweep's `timelines`; the first seed is the first of
    /// the sweep's `seeds`, the one every grid point starts with).
    pub fn keeps_timeline(&self, run: &RunSpec) -> bool {
        match self.timelines {
            Timelines::All => true,
            Timelines::FirstSeed => self.grid.first().is_some_and(|first| first.seed == run.seed),
            Timelines::None => false,
        }
    }

    /// The folder name of a new sweep, stamped with the current UTC time.
    pub fn folder_name(&self) -> String {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let t = secs % 86_400;
        format!(
            "{y:04}{m:02}{d:02}_{:02}{:02}{:02}_sweep_{}_{}_slo_{}",
            t / 3600,
            t / 60 % 60,
            t % 60,
            sanitize(&self.name),
            self.fidelity.as_str(),
            self.grid.len()
        )
    }

    /// Builds the scenario and policy of one run.
    fn materialize(&self, spec: &RunSpec) -> Result<(Scenario, Box<dyn Autoscaler>), SweepError> {
        let mut sc = self.scenarios[spec.scenario_idx].clone();
        let p = &self.policies[spec.policy_idx];
        let mut cpu_target = None;
        let mut period = None;
        for (name, v) in &spec.params {
            let axis = Axis::from_name(name).ok_or_else(|| SweepError::Invalid(format!("unknown axis {name}")))?;
            match axis {
                Axis::ScaleUpDelay => {
                    for s in &mut sc.app.services {
                        s.scale_up_delay = SimTime::from_secs_f64(*v);
                    }
                }
                Axis::RateScale => match &mut sc.workload.source {
                    ArrivalSource::Rate { schedule, .. } => schedule.scale_rates(*v),
                    ArrivalSource::Replay { rate_scale, .. } => *rate_scale *= v,
                },
                Axis::HpaCpuTarget => cpu_target = Some(v.round() as i64),
                Axis::PolicyPeriod => period = Some(SimTime::from_secs_f64(*v)),
            }
        }
        let mut policy: Box<dyn Autoscaler> = match (&p.policy, cpu_target) {
            (PolicyChoice::Hpa, Some(t)) => {
                let mut cfg = match &p.config {
                    Some(f) => load_config(f, &sc)?,
                    None => default_config(&sc, t),
                };
                for h in &mut cfg.hpas {
                    for m in &mut h.metrics {
                        if let MetricRule::Resource { name: ResourceName::Cpu, target: Target::Utilization(u) } = m {
                            *u = t;
                        }
                    }
                }
                Box::new(HpaPolicy::new(cfg))
            }
            _ => p.policy.build(p.config.as_deref(), &sc).map_err(|e| SweepError::Invalid(e.to_string()))?,
        };
        if let Some(period) = period {
            policy = Box::new(WithPeriod { inner: policy, period });
        }
        Ok((sc, policy))
    }
}

/// A policy with its decision interval overridden (the `policy.period_s` axis).
struct WithPeriod {
    inner: Box<dyn Autoscaler>,
    period: SimTime,
}

impl Autoscaler for WithPeriod {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn period(&self) -> SimTime {
        self.period
    }
    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        self.inner.decide(view, out)
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Manifest {
    format_version: u32,
    name: String,
    /// `K/N` for a shard, `None` for a whole sweep.
    shard: Option<String>,
    grid: Vec<RunSpec>,
}

/// `K/N`: this machine runs the runs whose `id % N == K - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("`{s}`: expected K/N, e.g. 1/4"))?;
        let (k, n): (usize, usize) = (
            k.parse().map_err(|_| format!("`{k}` is not a number"))?,
            n.parse().map_err(|_| format!("`{n}` is not a number"))?,
        );
        if n == 0 || k == 0 || k > n {
            return Err(format!("`{s}`: need 1 <= K <= N"));
        }
        Ok(Shard { k, n })
    }
}

/// Where to run, and how.
pub struct SweepOptions {
    pub jobs: usize,
    pub shard: Option<Shard>,
}

/// Runs (or resumes, when `dir` holds a manifest) the sweep into `dir`, then writes the
/// comparison reports. `progress(done, total)` is called after every run.
pub fn run_sweep(
    sweep: &Sweep,
    dir: &Path,
    opts: &SweepOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(), SweepError> {
    // One process at a time per sweep folder: two `--resume`s of one sweep would otherwise run
    // (and fail) each other's runs.
    super::outdir::ensure_folder(dir).map_err(|e| SweepError::Invalid(e.to_string()))?;
    let _lock = super::outdir::lock_folder(dir).map_err(|e| SweepError::Invalid(e.to_string()))?;
    let runs_dir = dir.join("runs");
    fs::create_dir_all(&runs_dir).map_err(|e| io_err(&runs_dir, e))?;
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        name: sweep.name.clone(),
        shard: opts.shard.map(|s| format!("{}/{}", s.k, s.n)),
        grid: sweep.grid.clone(),
    };
    let mpath = dir.join("sweep_manifest.json");
    if mpath.exists() {
        let text = fs::read_to_string(&mpath).map_err(|e| io_err(&mpath, e))?;
        let old: Manifest = serde_json::from_str(&text).map_err(|e| io_err(&mpath, e))?;
        if old != manifest {
            return Err(SweepError::Invalid(format!(
                "{}: this folder holds a different sweep (or shard); resume it with the sweep file it was started with",
                dir.display()
            )));
        }
    } else {
        write_json(&mpath, &manifest).map_err(|e| SweepError::Invalid(e.to_string()))?;
        let copy = dir.join("sweep.yaml");
        fs::write(&copy, &sweep.text).map_err(|e| io_err(&copy, e))?;
    }
    // A run is complete when its folder holds summary.json (folders are renamed into place only
    // when complete); leftovers of an interrupted run are staging folders, removed here.
    for e in fs::read_dir(&runs_dir).map_err(|e| io_err(&runs_dir, e))? {
        let p = e.map_err(|e| io_err(&runs_dir, e))?.path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".partial")) {
            fs::remove_dir_all(&p).map_err(|e| io_err(&p, e))?;
        }
    }
    let mine: Vec<&RunSpec> = sweep.grid.iter().filter(|r| opts.shard.is_none_or(|s| r.id % s.n == s.k - 1)).collect();
    let todo: Vec<&RunSpec> =
        mine.iter().copied().filter(|r| !runs_dir.join(&r.dir).join("summary.json").is_file()).collect();
    let done = AtomicUsize::new(mine.len() - todo.len());
    progress(done.load(Ordering::SeqCst), mine.len());
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let jobs = opts.jobs.max(1).min(todo.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(spec) = todo.get(i) else { break };
                let result = sweep.materialize(spec).and_then(|(sc, policy)| {
                    let options = RunOptions { no_timeline: !sweep.keeps_timeline(spec), ..RunOptions::default() };
                    run_to_dir(&sc, policy, spec.seed, &runs_dir.join(&spec.dir), options, &mut |_| {})
                        .map_err(|e: RunError| SweepError::Invalid(e.to_string()))
                });
                if let Err(e) = result {
                    failures
                        .lock()
                        .expect("no panics while held")
                        .push((spec.id, format!("run {} ({}): {e}", spec.id, spec.dir)));
                }
                let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                progress(d, mine.len());
            });
        }
    });
    let mut failures = failures.into_inner().expect("threads joined");
    failures.sort();
    write_reports(sweep.baseline.as_deref(), &manifest.grid, dir)?;
    if let Some((_, first)) = failures.first() {
        return Err(SweepError::RunsFailed { failed: failures.len(), total: mine.len(), first: first.clone() });
    }
    Ok(())
}

/// Combines shard folders of one sweep into `out` (a new sweep folder), exactly as if the sweep
/// had run on one machine.
pub fn merge_shards(shards: &[PathBuf], out: &Path) -> Result<(), SweepError> {
    let mut grid: Option<Vec<RunSpec>> = None;
    let mut name = String::new();
    let mut text = None;
    let mut sources: BTreeMap<usize, PathBuf> = BTreeMap::new();
    for d in shards {
        let mpath = d.join("sweep_manifest.json");
        let m: Manifest = serde_json::from_str(&fs::read_to_string(&mpath).map_err(|e| io_err(&mpath, e))?)
            .map_err(|e| io_err(&mpath, e))?;
        match &grid {
            None => {
                grid = Some(m.grid.clone());
                name = m.name.clone();
                text = fs::read_to_string(d.join("sweep.yaml")).ok();
            }
            Some(g) if *g != m.grid => {
                return Err(SweepError::Invalid(format!("{}: a shard of a different sweep", d.display())))
            }
            _ => {}
        }
        for r in &m.grid {
            let p = d.join("runs").join(&r.dir);
            if p.join("summary.json").is_file() {
                if let Some(prev) = sources.insert(r.id, p.clone()) {
                    return Err(SweepError::Invalid(format!(
                        "run {} is in two shards: {} and {}",
                        r.id,
                        prev.display(),
                        p.display()
                    )));
                }
            }
        }
    }
    let grid = grid.ok_or_else(|| SweepError::Invalid("no shard folders given".into()))?;
    let missing: Vec<usize> = grid.iter().map(|r| r.id).filter(|id| !sources.contains_key(id)).collect();
    if !missing.is_empty() {
        return Err(SweepError::Invalid(format!(
            "{} runs are in no shard (first: run {}); finish or resume the shards first",
            missing.len(),
            missing[0]
        )));
    }
    let runs = out.join("runs");
    fs::create_dir_all(&runs).map_err(|e| io_err(&runs, e))?;
    for r in &grid {
        copy_dir(&sources[&r.id], &runs.join(&r.dir))?;
    }
    let manifest = Manifest { format_version: MANIFEST_FORMAT_VERSION, name, shard: None, grid };
    write_json(&out.join("sweep_manifest.json"), &manifest).map_err(|e| SweepError::Invalid(e.to_string()))?;
    if let Some(t) = text {
        fs::write(out.join("sweep.yaml"), t).map_err(|e| io_err(out, e))?;
    }
    let baseline = baseline_of(out);
    write_reports(baseline.as_deref(), &manifest.grid, out)
}

fn baseline_of(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("sweep.yaml")).ok()?;
    let raw: RawSweep = parse_yaml(&text, "sweep.yaml").ok()?;
    raw.baseline
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), SweepError> {
    fs::create_dir_all(to).map_err(|e| io_err(to, e))?;
    for e in fs::read_dir(from).map_err(|e| io_err(from, e))? {
        let p = e.map_err(|e| io_err(from, e))?.path();
        if let Some(n) = p.file_name() {
            fs::copy(&p, to.join(n)).map_err(|e| io_err(&p, e))?;
        }
    }
    Ok(())
}

/// `timeline_all.csv`: every run's `timeline.csv` in one tidy table (one row per interval, service
/// and run), each row carrying the run's id, scenario, policy, parameters and seed, so a sweep
/// loads into one data frame. Streamed line by line: a large sweep's table is never held whole.
/// Runs without a timeline (`timelines: first_seed` or `none`) are left out; with none at all
/// there is no table.
fn write_timeline_all(dir: &Path, runs: &[&RunSpec], path: &Path) -> Result<(), SweepError> {
    use std::io::{BufRead, Write};
    let mut w: Option<std::io::BufWriter<fs::File>> = None;
    for r in runs {
        let tp = dir.join("runs").join(&r.dir).join("timeline.csv");
        let Ok(file) = fs::File::open(&tp) else { continue };
        let mut lines = std::io::BufReader::new(file).lines();
        let Some(header) = lines.next().transpose().map_err(|e| io_err(&tp, e))? else { continue };
        // The run's own format_version column is dropped; the table's goes last.
        let cut = |line: &str| -> String { line.rsplit_once(',').map_or(line, |(a, _)| a).to_string() };
        let w = match &mut w {
            Some(w) => w,
            slot @ None => {
                let f = fs::File::create(path).map_err(|e| io_err(path, e))?;
                let w = slot.insert(std::io::BufWriter::with_capacity(1 << 16, f));
                writeln!(w, "run_id,scenario,policy,params,seed,{},format_version", cut(&header))
                    .map_err(|e| io_err(path, e))?;
                w
            }
        };
        let params = r.params_label().replace('"', "");
        let prefix = format!("{},{},{},\"{params}\",{}", r.id, r.scenario, r.policy, r.seed);
        for line in lines {
            let line = line.map_err(|e| io_err(&tp, e))?;
            writeln!(w, "{prefix},{},{TIMELINE_ALL_FORMAT_VERSION}", cut(&line)).map_err(|e| io_err(path, e))?;
        }
    }
    w.map_or(Ok(()), |mut w| w.flush().map_err(|e| io_err(path, e)))
}

/// The runs of one (scenario, policy, parameter point), over seeds.
struct Group<'a> {
    scenario: String,
    policy: String,
    params: String,
    /// The parameters every policy shares (to find the baseline's group).
    shared: Vec<(String, f64)>,
    runs: Vec<&'a Summary>,
}

/// Writes `comparison_reports/` from the runs present in `dir/runs` (in grid order).
pub fn write_reports(baseline: Option<&str>, grid: &[RunSpec], dir: &Path) -> Result<(), SweepError> {
    let reports = dir.join("comparison_reports");
    fs::create_dir_all(&reports).map_err(|e| io_err(&reports, e))?;
    let mut rows: Vec<(&RunSpec, Summary)> = Vec::new();
    for r in grid {
        let p = dir.join("runs").join(&r.dir).join("summary.json");
        if let Ok(text) = fs::read_to_string(&p) {
            let s: Summary = serde_json::from_str(&text).map_err(|e| io_err(&p, e))?;
            rows.push((r, s));
        }
    }
    let mut csv = String::from(
        "run_id,run_dir,scenario,policy,params,seed,arrived,completed,dropped,in_flight,slo_violation_pct,latency_mean_ms,latency_p50_ms,latency_p95_ms,latency_p99_ms,resource_slack_pct,scaling_lag_mean_s,scaling_lag_p95_s,cost,caf,oscillation_per_hour,format_version\n",
    );
    for (r, s) in &rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{}\n",
            r.id,
            r.dir,
            r.scenario,
            r.policy,
            r.params_label(),
            r.seed,
            s.requests.arrived,
            s.requests.completed,
            s.requests.dropped,
            s.requests.in_flight,
            s.slo_violation_pct,
            s.latency_ms.mean,
            s.latency_ms.p50,
            s.latency_ms.p95,
            s.latency_ms.p99,
            s.resource_slack_pct,
            s.scaling_lag_s.mean,
            s.scaling_lag_s.p95,
            s.cost,
            s.caf,
            s.oscillation_per_hour,
            SUMMARY_CSV_FORMAT_VERSION
        ));
    }
    let p = reports.join("all_experiments_summary.csv");
    fs::write(&p, csv).map_err(|e| io_err(&p, e))?;
    write_timeline_all(dir, &rows.iter().map(|(r, _)| *r).collect::<Vec<_>>(), &reports.join("timeline_all.csv"))?;
    // Groups: (scenario, policy, params) over seeds, in grid order.
    let mut groups: Vec<Group> = Vec::new();
    for (r, s) in &rows {
        let params = r.params_label();
        match groups.iter_mut().find(|g| g.scenario == r.scenario && g.policy == r.policy && g.params == params) {
            Some(g) => g.runs.push(s),
            None => groups.push(Group {
                scenario: r.scenario.clone(),
                policy: r.policy.clone(),
                params,
                shared: r.shared_params(),
                runs: vec![s],
            }),
        }
    }
    let mut stats_csv = String::from(
        "scenario,policy,params,metric,n,mean,std,ci95_low,ci95_high,cliffs_delta,magnitude,format_version\n",
    );
    let mut md = String::from("| scenario | policy | params | n |");
    for c in COMPARED {
        md.push_str(&format!(" {}: mean ± 95% CI |", c.label));
    }
    md.push_str(&format!(
        " Cliff's delta of SLO violation vs {} |\n|---|---|---|---|",
        baseline.unwrap_or("(no baseline)")
    ));
    for _ in COMPARED {
        md.push_str("---|");
    }
    md.push_str("---|\n");
    for g in &groups {
        let base: Option<&Vec<&Summary>> = baseline.and_then(|b| {
            groups.iter().find(|h| h.scenario == g.scenario && h.policy == b && h.shared == g.shared).map(|h| &h.runs)
        });
        md.push_str(&format!("| {} | {} | {} | {} |", g.scenario, g.policy, g.params, g.runs.len()));
        let mut slo_delta = String::from("-");
        for c in COMPARED {
            let col = c.column;
            let xs: Vec<f64> = g.runs.iter().map(|s| (c.get)(s)).collect();
            let d = describe(&xs);
            let (delta, mag) = match base {
                Some(b) if baseline != Some(g.policy.as_str()) => {
                    let ys: Vec<f64> = b.iter().map(|s| (c.get)(s)).collect();
                    let delta = cliffs_delta(&xs, &ys).unwrap_or(f64::NAN);
                    (format!("{delta:.4}"), magnitude(delta).to_string())
                }
                _ => (String::new(), String::new()),
            };
            if col == "slo_violation_pct" && !delta.is_empty() {
                slo_delta = format!("{delta} ({mag})");
            }
            let (lo, hi) = match d.ci95 {
                Some(h) => (format!("{:.6}", d.mean - h), format!("{:.6}", d.mean + h)),
                None => (String::new(), String::new()),
            };
            stats_csv.push_str(&format!(
                "{},{},{},{col},{},{:.6},{:.6},{lo},{hi},{delta},{mag},{}\n",
                g.scenario, g.policy, g.params, d.n, d.mean, d.std, SUMMARY_CSV_FORMAT_VERSION
            ));
            md.push_str(&match d.ci95 {
                Some(h) => format!(" {:.3} ± {:.3} |", d.mean, h),
                None => format!(" {:.3} |", d.mean),
            });
        }
        md.push_str(&format!(" {slo_delta} |\n"));
    }
    let p = reports.join("statistics.csv");
    fs::write(&p, stats_csv).map_err(|e| io_err(&p, e))?;
    let p = reports.join("statistics.md");
    fs::write(&p, md).map_err(|e| io_err(&p, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_677), (2023, 11, 16));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    /// Axis names round-trip, and an HPA setting varies HPA runs only.
    #[test]
    fn axes_by_name_and_scope() {
        for a in Axis::ALL {
            assert_eq!(Axis::from_name(a.name()), Some(a));
        }
        assert_eq!(Axis::from_name("hpa.cpu"), None);
        assert!(Axis::HpaCpuTarget.applies_to(&PolicyChoice::Hpa));
        assert!(!Axis::HpaCpuTarget.applies_to(&PolicyChoice::Kpa));
        assert!(Axis::RateScale.applies_to(&PolicyChoice::Static));
    }

    #[test]
    fn shards_parse() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { k: 2, n: 4 }));
        assert!("0/4".parse::<Shard>().is_err() && "5/4".parse::<Shard>().is_err() && "x".parse::<Shard>().is_err());
    }
}
