//! `scalesim train`: a training folder from an agent config (or from the checkpoint of an earlier
//! training, to resume it): the environments, the agent or team, `training_log.csv`, `agent.yaml`
//! and checkpoints.
//!
//! Owns the checks that make a training folder trustworthy: a resumed training runs on the same
//! application its checkpoint learned (as `eval` requires), with its own config, and the team
//! members belong to one team; `--steps` counts steps in all, rounded up to whole rollouts and
//! reported as trained; a loss that turns NaN or infinite stops the training with an error.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::outdir;
use super::progress::Progress;
use crate::engine::SimTime;
use crate::rl::agent::checkpoint::{Checkpoint, CheckpointError};
use crate::rl::agent::config::{AgentConfig, Algorithm, TrainingLoads};
use crate::rl::agent::policy::{check_fits, load_member, member_path};
use crate::rl::agent::ppo::{graph_kind, mlp_too_small, train_team, Agent, LogRow, TRAINING_LOG_HEADER};
use crate::rl::env::DEFAULT_SECOND_SCALE_QUIET_S;
use crate::rl::{Env, EnvError, Randomization, SimFactory};
use crate::scenario::{load_scenario, ConfigError, Fidelity};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Run(#[from] super::RunError),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io { path: path.display().to_string(), message: e.to_string() }
}

/// What `scalesim train` was asked.
pub struct TrainRequest {
    /// The agent config; on a resume, optional and, if given, it must be the checkpoint's own.
    pub agent_config: Option<PathBuf>,
    pub scenarios: Vec<PathBuf>,
    /// Environment steps in all, earlier ones of a resumed training included.
    pub steps: u64,
    pub seed: u64,
    pub out: Option<PathBuf>,
    /// A training folder to continue from its last checkpoint.
    pub resume: Option<PathBuf>,
}

/// What a training did.
pub struct TrainOutcome {
    pub dir: PathBuf,
    /// Steps trained by this call (whole rollouts).
    pub trained: u64,
    /// Steps of the agent in all.
    pub total: u64,
    /// Mean reward of the last finished episodes, if any finished.
    pub last_reward: Option<f64>,
}

/// Trains as `req` says, reporting steps on `progress`.
pub fn train(req: &TrainRequest, progress: &Progress) -> Result<TrainOutcome, TrainError> {
    if req.steps == 0 {
        return Err(TrainError::Invalid("--steps: must be at least 1 (steps in all)".into()));
    }
    crate::rl::agent::prepare_process_for_training();
    let (resumed, dir, config) = match &req.resume {
        Some(d) => {
            let path = d.join("checkpoint.ckpt");
            let ck = Checkpoint::load(&path)?;
            if let Some(file) = &req.agent_config {
                let given = AgentConfig::load(file)?;
                if given != ck.config {
                    return Err(TrainError::Invalid(format!(
                        "--agent {}: differs from the config the training in {} was made with ({}); drop --agent to \
                         resume with the checkpoint's own config, or start a new training",
                        file.display(),
                        d.display(),
                        config_differences(&given, &ck.config)
                    )));
                }
            }
            let config = ck.config.clone();
            (Some(ck), d.clone(), config)
        }
        None => {
            let Some(file) = &req.agent_config else {
                return Err(TrainError::Invalid("--agent FILE is needed to start a training".into()));
            };
            let config = AgentConfig::load(file)?;
            let dir = req.out.clone().unwrap_or_else(|| {
                outdir::default_run_path(&format!(
                    "train_{}_{}_{}_seed{}",
                    outdir::stem(file),
                    config.encoder,
                    config.algorithm,
                    req.seed
                ))
            });
            (None, dir, config)
        }
    };
    let done = resumed.as_ref().map_or(0, |c| c.steps);
    let scenarios = load_scenarios(&req.scenarios, config.fidelity.scenario(), &config)?;
    let mut envs = training_envs(&config, &scenarios);
    envs[0].reset(req.seed)?;
    let layout = envs[0].layout().expect("an environment has a layout after reset").clone();
    let graph = graph_kind(config.encoder).is_some();
    if let Some(why) = mlp_too_small(&layout).filter(|_| !graph) {
        return Err(TrainError::Invalid(format!("the scenario has {why}")));
    }
    if !graph && scenarios.iter().any(|s| s.app.services.len() != layout.services) {
        return Err(TrainError::Invalid(
            "--scenario files must share one application (same services) for an MLP agent".into(),
        ));
    }
    // A rollout is scored in batches of one graph shape (nodes, edges and server types stacked
    // into tensors): the scenarios of one training must share it. (A trained graph agent still
    // runs on any graph.)
    if graph {
        let shape = |sc: &crate::scenario::Scenario| {
            let l = crate::rl::ObservationLayout::new(
                &sc.app,
                &sc.workload.mix,
                config.env_config().hpa_target,
                sc.cluster.skus.len(),
            );
            (l.services, l.edges.len(), l.skus)
        };
        let first = shape(&scenarios[0]);
        for (sc, file) in scenarios.iter().zip(&req.scenarios).skip(1) {
            let this = shape(sc);
            if this != first {
                return Err(TrainError::Invalid(format!(
                    "{}: {} services, {} call edges and {} server types, where {} has {}, {} and {}; the scenarios of one training must share a graph shape (train on each shape separately)",
                    file.display(),
                    this.0,
                    this.1,
                    this.2,
                    req.scenarios[0].display(),
                    first.0,
                    first.1,
                    first.2
                )));
            }
        }
    }
    if config.team > 1 && config.team != layout.services {
        return Err(TrainError::Invalid(format!(
            "team: {} agents scale {} services one each; the scenario has {}",
            config.team, config.team, layout.services
        )));
    }
    if let Some(ck) = &resumed {
        for sc in &scenarios {
            check_fits(ck, &layout, sc).map_err(|m| {
                TrainError::Invalid(format!(
                    "--resume {}: {m}",
                    req.resume.as_deref().unwrap_or(Path::new("")).display()
                ))
            })?;
        }
    }
    if done >= req.steps {
        return Ok(TrainOutcome { dir, trained: 0, total: done, last_reward: None });
    }
    let mut team = build_team(&config, resumed, &req.resume, layout.flat_len(), req.seed)?;
    // The schedules run over the whole training, a fine-tune's steps included.
    team.iter_mut().for_each(|a| a.schedule_horizon = req.steps);
    run_training(team, &mut envs, &config, &dir, req, progress)
}

/// The range a training episode's rate factor is drawn from unless `rate_scale` says otherwise.
const DEFAULT_RATE_SCALE: (f64, f64) = (0.8, 1.2);

/// How a training with `config` varies its episodes' loads.
pub fn training_randomization(config: &AgentConfig) -> Randomization {
    Randomization {
        rate_scale: config.rate_scale.map_or(DEFAULT_RATE_SCALE, |[lo, hi]| (lo, hi)),
        start_offset_s: (0.0, 0.0),
        random_shapes: config.training_loads == TrainingLoads::RandomShapes,
        second_scale_bursts: config.second_scale_bursts,
        second_scale_quiet_up_to_s: config.second_scale_quiet_up_to_s.unwrap_or(DEFAULT_SECOND_SCALE_QUIET_S),
        arrival_cv: config.arrival_cv.map(|[lo, hi]| (lo, hi)),
    }
}

/// One environment per `config.envs`, each drawing its episodes among `scenarios`.
fn training_envs(config: &AgentConfig, scenarios: &[crate::scenario::Scenario]) -> Vec<Env> {
    (0..config.envs).map(|_| training_env(config, scenarios)).collect()
}

/// An environment as a training with `config` steps it, drawing its episodes among `scenarios`
/// (loaded by [`load_scenarios`]).
pub fn training_env(config: &AgentConfig, scenarios: &[crate::scenario::Scenario]) -> Env {
    Env::new(config.env_config(), Box::new(SimFactory::new(scenarios.to_vec(), training_randomization(config))))
}

/// The scenarios to train on, at `fidelity`; at fluid fidelity scraped once per decision and
/// ticked every `fluid_tick_s` (default: once per decision).
pub fn load_scenarios(
    files: &[PathBuf],
    fidelity: Fidelity,
    config: &AgentConfig,
) -> Result<Vec<crate::scenario::Scenario>, TrainError> {
    load_scenarios_ticked(files, fidelity, config, config.fluid_tick_s)
}

/// [`load_scenarios`] with the fluid tick given (`None`: one per decision).
fn load_scenarios_ticked(
    files: &[PathBuf],
    fidelity: Fidelity,
    config: &AgentConfig,
    fluid_tick_s: Option<f64>,
) -> Result<Vec<crate::scenario::Scenario>, TrainError> {
    let mut scenarios = Vec::new();
    for f in files {
        let mut sc = load_scenario(f)?;
        super::check_run_size(&sc, false)?;
        sc.fidelity = fidelity;
        if sc.fidelity == Fidelity::Fluid {
            // One scrape per decision where decisions are as far apart as the scenario's scrapes
            // or further (the fluid model cheapest). A policy that decides between scrapes trains
            // on scrapes as far apart as deployed, so that its decisions between them see the last
            // scrape's metrics and the arrivals since: the first multiple of the decision interval
            // at or beyond the scenario's scrape (15 s for 5 s decisions), which the tick, a
            // divisor of the decision interval, divides as the simulator needs. By default also one tick per
            // decision, which averages away everything shorter (`fluid_tick_s`).
            let decision = SimTime::from_secs_f64(config.decision_interval_s);
            let decisions_per_scrape = sc.metrics.scrape_interval.0.div_ceil(decision.0).max(1);
            sc.metrics.scrape_interval = SimTime(decision.0 * decisions_per_scrape);
            sc.metrics.timeline_interval = SimTime::from_secs_f64(fluid_tick_s.unwrap_or(config.decision_interval_s));
        }
        scenarios.push(sc);
    }
    Ok(scenarios)
}

/// The agent, or the team of one agent per service, new or from the checkpoint being resumed.
fn build_team(
    config: &AgentConfig,
    resumed: Option<Checkpoint>,
    resume_dir: &Option<PathBuf>,
    flat_len: usize,
    seed: u64,
) -> Result<Vec<Agent>, TrainError> {
    match (resumed, resume_dir) {
        (Some(ck), Some(d)) => {
            let path = d.join("checkpoint.ckpt");
            let members = (1..config.team).map(|p| load_member(&path, p, &ck)).collect::<Result<Vec<_>, _>>()?;
            Ok(std::iter::once(ck).chain(members).map(|c| Agent::from_checkpoint(c, seed)).collect())
        }
        _ => Ok((0..config.team)
            .map(|p| {
                let s = if p == 0 { seed } else { crate::engine::stream_seed(seed, &format!("team/{p}")) as u64 };
                Agent::new(config.clone(), flat_len, s)
            })
            .collect()),
    }
}

/// Trains `team` until it has `req.steps` in all, writing the log and checkpoints into `dir`.
fn run_training(
    mut team: Vec<Agent>,
    envs: &mut [Env],
    config: &AgentConfig,
    dir: &Path,
    req: &TrainRequest,
    progress: &Progress,
) -> Result<TrainOutcome, TrainError> {
    outdir::ensure_folder(dir)?;
    // Two trainings into one folder would interleave their logs and overwrite each other's
    // checkpoints.
    let _lock = outdir::lock_folder(dir)?;
    let log_path = dir.join("training_log.csv");
    let fresh = req.resume.is_none() || !log_path.exists();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(!fresh)
        .write(true)
        .truncate(fresh)
        .open(&log_path)
        .map_err(|e| io_err(&log_path, e))?;
    if !fresh {
        check_log_header(&log_path)?;
    }
    if fresh {
        writeln!(log, "{TRAINING_LOG_HEADER}").map_err(|e| io_err(&log_path, e))?;
        let yaml = serde_yaml_ng::to_string(config).map_err(|e| io_err(&dir.join("agent.yaml"), e))?;
        std::fs::write(dir.join("agent.yaml"), yaml).map_err(|e| io_err(&dir.join("agent.yaml"), e))?;
    }
    let start = team[0].steps;
    progress.set_length(req.steps);
    progress.set_position(start);
    let every = config.checkpoint_every.max(1);
    let mut next_ck = (start / every + 1) * every;
    let mut last_reward = None;
    let mut failure: Option<TrainError> = None;
    let mut stall = (config.algorithm == Algorithm::Ppo).then(StallWatch::default);
    // The stage the rows belong to (the callback outlives each stage's training).
    let stage = std::cell::Cell::new(Stage::Train);
    let mut on_update = |team: &[Agent], row: &LogRow| {
        let r = log_row(&mut log, &log_path, row, stage.get()).and_then(|()| {
            if let Some(what) = non_finite(row) {
                return Err(TrainError::Invalid(format!(
                    "training diverged at step {}: the {what} is not finite; lower learning_rate or max_grad_norm \
                     (the last good checkpoint is kept)",
                    row.step
                )));
            }
            // A2C has no clip: its clip fraction is always 0, so only PPO is watched.
            if let Some(warning) = stall.as_mut().and_then(|w| w.observe(row)) {
                progress.warn(&warning);
            }
            if row.step >= next_ck {
                next_ck = (row.step / every + 1) * every;
                save(team, &dir.join(format!("checkpoint_{:09}.ckpt", row.step)))?;
            }
            Ok(())
        });
        if row.mean_episode_reward.is_finite() {
            last_reward = Some(row.mean_episode_reward);
        }
        progress.set_position(row.step);
        if let Some(r) = last_reward.filter(|_| progress.wants_message()) {
            progress.set_message(format!("mean episode reward {r:.2}"));
        }
        r.map_err(|e| {
            let text = e.to_string();
            failure = Some(e);
            EnvError::Stopped(text)
        })
    };
    // The fine-tunes' shares of the steps run last, in environments of their own (the same
    // scenarios and randomisation): first at the finer fluid tick, then at request fidelity. A
    // resumed training goes straight to the stage its steps are in.
    let request_at = req.steps.saturating_sub(config.request_fine_tune_steps);
    let tick_at = request_at.saturating_sub(config.tick_fine_tune_steps);
    let mut result = Ok(());
    if start < tick_at {
        result = train_team(&mut team, envs, req.seed, tick_at - start, &mut on_update);
    }
    let stages = [
        (
            request_at,
            Stage::TickFineTune,
            Fidelity::Fluid,
            config.fine_tune_fluid_tick_s,
            "at the fluid tick of fine_tune_fluid_tick_s",
        ),
        (req.steps, Stage::RequestFineTune, Fidelity::Request, None, "at request fidelity (request_fine_tune_steps)"),
    ];
    for (until, this, fidelity, tick, what) in stages {
        let from = team[0].steps;
        if result.is_err() || from >= until {
            continue;
        }
        stage.set(this);
        progress.note(&format!("steps {from} to {until}: fine-tuning {what}"));
        result = load_scenarios_ticked(&req.scenarios, fidelity, config, tick)
            .map_err(|e| EnvError::Stopped(e.to_string()))
            .and_then(|scenarios| {
                let mut fine = training_envs(config, &scenarios);
                train_team(&mut team, &mut fine, req.seed, until - from, &mut on_update)
            });
    }
    progress.finish();
    if let Err(e) = result {
        return Err(failure.take().unwrap_or(TrainError::Env(e)));
    }
    save(&team, &dir.join("checkpoint.ckpt"))?;
    Ok(TrainOutcome { dir: dir.to_path_buf(), trained: team[0].steps - start, total: team[0].steps, last_reward })
}

/// Watches a training's updates for a policy that does not learn: when, over the last tenth of
/// the updates so far (at least 8), no update clipped a single sample and the mean entropy of the
/// window's two halves differs by under 1%, the policy is not changing (the GAT-PPO failure of issue 20: entropy at
/// its initial value, clip fraction 0). Says so once.
#[derive(Default)]
pub struct StallWatch {
    rows: Vec<(f64, f64)>,
    warned: bool,
}

impl StallWatch {
    /// Records one update's (clip fraction, entropy); returns the warning the first time the
    /// policy looks stalled.
    pub fn observe(&mut self, row: &LogRow) -> Option<String> {
        self.rows.push((row.stats.clip_fraction, row.stats.entropy));
        let n = (self.rows.len() / 10).max(8);
        if self.warned || self.rows.len() < n {
            return None;
        }
        let recent = &self.rows[self.rows.len() - n..];
        let no_clip = recent.iter().all(|(c, _)| *c == 0.0);
        // Flat: the mean entropy of the window's two halves within 1% of each other (update to
        // update it wobbles by a few percent; a policy that learns moves its mean).
        let half = n / 2;
        let mean = |r: &[(f64, f64)]| r.iter().map(|x| x.1).sum::<f64>() / r.len() as f64;
        let (a, b) = (mean(&recent[..half]), mean(&recent[half..]));
        let flat = (a - b).abs() <= 0.01 * a.abs().max(b.abs()).max(1e-9);
        if no_clip && flat {
            self.warned = true;
            return Some(format!(
                "warning: the policy is not learning: over the last {n} updates (to step {}) no sample reached \
                 PPO's clip and the entropy stayed at {b:.4} (halves within 1%); try a larger learning_rate, a \
                 smaller value_coef, or a reward with a larger spread",
                row.step
            ));
        }
        None
    }
}

/// Version of `training_log.csv`'s columns. 2: `explained_variance` before `format_version`.
/// 3: then the gradient norms and each head's entropy (empty where a head or a separate critic
/// does not exist). 4: then the stage each row belongs to ([`Stage`]). 5: `epochs` (the PPO
/// epochs each update ran, fewer where `target_kl` stopped it) after `clip_fraction`.
pub const TRAINING_LOG_FORMAT_VERSION: u32 = 5;

/// Which part of a training a `training_log.csv` row belongs to: the training at the config's
/// fidelity, or one of the fine-tunes its last steps run (`tick_fine_tune_steps`, then
/// `request_fine_tune_steps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Train,
    TickFineTune,
    RequestFineTune,
}

impl Stage {
    /// The `stage` column's value.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Train => "train",
            Stage::TickFineTune => "tick_fine_tune",
            Stage::RequestFineTune => "request_fine_tune",
        }
    }
}

/// A resumed training appends to its `training_log.csv`: refused when the log's columns are not
/// this build's (an older format), rather than appending rows under another header.
fn check_log_header(path: &Path) -> Result<(), TrainError> {
    // The header only: a long training's log runs to megabytes.
    let mut header = String::new();
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    std::io::BufRead::read_line(&mut std::io::BufReader::new(file), &mut header).map_err(|e| io_err(path, e))?;
    if header.trim_end_matches(['\n', '\r']) == TRAINING_LOG_HEADER {
        return Ok(());
    }
    Err(TrainError::Invalid(format!(
        "{}: line 1: its columns are not this build's (format {TRAINING_LOG_FORMAT_VERSION}, which adds `epochs`); \
         resume with the build that wrote it, or move the log away to start a new one",
        path.display()
    )))
}

/// One `training_log.csv` row. A mean episode reward before any episode has finished is left
/// empty (not NaN): no output holds NaN.
fn log_row(log: &mut std::fs::File, path: &Path, row: &LogRow, stage: Stage) -> Result<(), TrainError> {
    let s = &row.stats;
    let reward =
        if row.mean_episode_reward.is_finite() { format!("{:.6}", row.mean_episode_reward) } else { String::new() };
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    writeln!(
        log,
        "{},{reward},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3},{:.6},{:.6},{},{:.6},{},{},{},{TRAINING_LOG_FORMAT_VERSION}",
        row.step,
        row.episodes,
        s.policy_loss,
        s.value_loss,
        s.entropy,
        s.approx_kl,
        s.clip_fraction,
        s.epochs,
        s.explained_variance,
        s.grad_norm,
        cell(s.critic_grad_norm),
        s.heads.replicas,
        cell(s.heads.node_type),
        cell(s.heads.quota),
        stage.name(),
    )
    .map_err(|e| io_err(path, e))
}

/// Which of an update's statistics, if any, is NaN or infinite.
fn non_finite(row: &LogRow) -> Option<&'static str> {
    let s = &row.stats;
    [
        (s.policy_loss, "policy loss"),
        (s.value_loss, "value loss"),
        (s.entropy, "entropy"),
        (s.approx_kl, "approximate KL"),
        (s.clip_fraction, "clip fraction"),
        (s.explained_variance, "explained variance"),
        (s.grad_norm, "gradient norm"),
    ]
    .into_iter()
    .find(|(v, _)| !v.is_finite())
    .map(|(_, name)| name)
}

/// Saves the team's checkpoint at `path` (members beside it).
fn save(team: &[Agent], path: &Path) -> Result<(), TrainError> {
    team[0].checkpoint().save(path)?;
    for (p, member) in team.iter().enumerate().skip(1) {
        member.checkpoint().save(&member_path(path, p))?;
    }
    Ok(())
}

/// The top-level fields in which two agent configs differ, for an error message.
fn config_differences(a: &AgentConfig, b: &AgentConfig) -> String {
    let (Ok(serde_yaml_ng::Value::Mapping(x)), Ok(serde_yaml_ng::Value::Mapping(y))) =
        (serde_yaml_ng::to_value(a), serde_yaml_ng::to_value(b))
    else {
        return "they differ".into();
    };
    let mut keys: Vec<String> = x
        .iter()
        .chain(y.iter())
        .filter(|(k, _)| x.get(*k) != y.get(*k))
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect();
    keys.sort();
    keys.dedup();
    format!("differs in {}", keys.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::agent::ppo::UpdateStats;

    fn row(step: u64, clip: f64, entropy: f64) -> LogRow {
        LogRow {
            step,
            mean_episode_reward: -1.0,
            episodes: 1,
            stats: UpdateStats { clip_fraction: clip, entropy, ..Default::default() },
        }
    }

    /// A training draws each episode's rate factor from `rate_scale`, 0.8-1.2 unless set.
    #[test]
    fn the_rate_scale_reaches_the_training() {
        let parse = |extra: &str| -> AgentConfig {
            serde_yaml_ng::from_str(&format!("format_version: 1\nencoder: gat\nalgorithm: ppo\n{extra}")).unwrap()
        };
        assert_eq!(training_randomization(&parse("rate_scale: [0.5, 2.0]\n")).rate_scale, (0.5, 2.0));
        assert_eq!(training_randomization(&parse("")).rate_scale, (0.8, 1.2));
    }

    /// A fluid training ticks once per decision unless `fluid_tick_s` says otherwise; it scrapes
    /// once per decision where decisions are at least the scenario's 15 s apart, and where they
    /// are closer at the first multiple of the decision interval from 15 s (15 s at 5 s
    /// decisions, 16 s at 4 s). A request-fidelity fine-tune keeps the scenario's own.
    #[test]
    fn the_fluid_tick_is_the_decision_interval_unless_set() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/online_boutique_peak.yaml");
        let mut config: AgentConfig =
            serde_yaml_ng::from_str("format_version: 1\nencoder: gat\nalgorithm: ppo\ndecision_interval_s: 15\n")
                .unwrap();
        let intervals = |config: &AgentConfig, fidelity: Fidelity| {
            let sc = &load_scenarios(std::slice::from_ref(&file), fidelity, config).unwrap()[0];
            (sc.metrics.timeline_interval.as_secs_f64(), sc.metrics.scrape_interval.as_secs_f64())
        };
        assert_eq!(intervals(&config, Fidelity::Fluid), (15.0, 15.0));
        config.fluid_tick_s = Some(1.0);
        assert_eq!(intervals(&config, Fidelity::Fluid), (1.0, 15.0));
        config.decision_interval_s = 5.0;
        assert_eq!(intervals(&config, Fidelity::Fluid), (1.0, 15.0));
        config.fluid_tick_s = Some(2.0);
        config.decision_interval_s = 4.0;
        assert_eq!(intervals(&config, Fidelity::Fluid), (2.0, 16.0));
        config.fluid_tick_s = Some(1.0);
        config.decision_interval_s = 30.0;
        assert_eq!(intervals(&config, Fidelity::Fluid), (1.0, 30.0));
        config.decision_interval_s = 15.0;
        let own = load_scenario(&file).unwrap().metrics;
        assert_eq!(
            intervals(&config, Fidelity::Request),
            (own.timeline_interval.as_secs_f64(), own.scrape_interval.as_secs_f64())
        );
    }

    /// Hand-made logs: 8 updates with no clipping and entropy 2.0794 (ln 8) alternating +0.5%
    /// (halves' means equal): stalled, said once at the 8th; clipping updates, or an entropy
    /// falling 0.3% an update (halves 1.2% apart): learning, nothing said.
    #[test]
    fn a_stalled_policy_is_reported_once() {
        let mut w = StallWatch::default();
        let said: Vec<Option<String>> =
            (1..=12).map(|k| w.observe(&row(k * 512, 0.0, 2.0794 * (1.0 + 0.005 * (k % 2) as f64)))).collect();
        assert!(said[..7].iter().all(Option::is_none));
        assert!(said[7].as_deref().is_some_and(|m| m.contains("not learning") && m.contains("4096")));
        assert!(said[8..].iter().all(Option::is_none), "said once");
        let mut w = StallWatch::default();
        let clipped: Vec<bool> =
            (1..=12).map(|k| w.observe(&row(k, if k >= 5 { 0.01 } else { 0.0 }, 2.0794)).is_some()).collect();
        assert!(clipped.iter().all(|x| !x), "updates that clip are learning");
        let mut w = StallWatch::default();
        let drift: Vec<bool> =
            (1..=12).map(|k| w.observe(&row(k, 0.0, 2.0 * (1.0 - 0.003 * k as f64))).is_some()).collect();
        assert!(drift.iter().all(|x| !x), "entropy moving by over 1% is learning");
    }
}
