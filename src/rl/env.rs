//! The environment: gymnasium-shaped `reset(seed)` and `step(action)` over a cluster backend.
//!
//! A step executes the action (through the backend's scale commands), lets `decision_interval` of
//! time pass, and returns the new observation, the reward of that interval, and whether the
//! episode ended (`truncated` at the horizon: the task itself never terminates). Episodes come from
//! a [`BackendFactory`]; [`SimFactory`] builds simulator runs from scenarios, randomised by the
//! seed (which scenario, rate scale, start offset into the load) when asked.

use std::io::Write;

use rand::{Rng, SeedableRng};

use super::action::{execute, raise_to_fast_floor, Action, ActionConfig, ActionMask, ActionReport};
use super::observation::{collect, Observation, ObservationLayout};
use super::reward::{compute, RewardConfig, RewardTerms};
use crate::backend::ClusterBackend;
use crate::engine::{RngStreams, SimTime};
use crate::metrics::RunTotals;
use crate::scenario::Scenario;
use crate::sim::{SimError, Simulator, Sinks};
use crate::workload::{ArrivalSource, RateSchedule};

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("step() before reset()")]
    NotReset,
    #[error("the episode is over: call reset()")]
    EpisodeOver,
    #[error("no scenario to build an episode from")]
    NoScenario,
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error("writing the episode log: {0}")]
    Log(#[from] csv::Error),
    /// A training's callback asked to stop (its reason).
    #[error("{0}")]
    Stopped(String),
}

/// Domain randomisation, drawn from the episode's seed. Ranges are `[lo, hi]`; `(1, 1)` and
/// `(0, 0)` switch them off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Randomization {
    pub rate_scale: (f64, f64),
    /// Seconds cut from the start of the load (a window of a trace or shape).
    pub start_offset_s: (f64, f64),
    /// Replace a scenario's rate shape by a random one of the same mean
    /// ([`crate::workload::random_shape`]: ramps, staircases, spikes, diurnal curves, bursts).
    /// Trace replays keep their trace.
    pub random_shapes: bool,
    /// With `random_shapes`, the share of episodes (0-1) whose shape is also switched on and off
    /// at the scale of seconds ([`crate::workload::modulate_seconds`]), as request traces arrive.
    pub second_scale_bursts: f64,
    /// The longest quiet gap between those surges may be drawn up to this many seconds (12: the
    /// default; more gives sparser, higher surges).
    pub second_scale_quiet_up_to_s: u32,
    /// `Some((lo, hi))`: a rate load's arrivals get gamma gaps with a coefficient of variation
    /// drawn from `[lo, hi]` (1 is as variable as Poisson, more is burstier). Trace replays keep
    /// their own arrivals.
    pub arrival_cv: Option<(f64, f64)>,
}

/// How long the quiet between second-scale surges may be drawn by default, seconds.
pub const DEFAULT_SECOND_SCALE_QUIET_S: u32 = 12;

impl Default for Randomization {
    fn default() -> Self {
        Randomization {
            rate_scale: (1.0, 1.0),
            start_offset_s: (0.0, 0.0),
            random_shapes: false,
            second_scale_bursts: 0.0,
            second_scale_quiet_up_to_s: DEFAULT_SECOND_SCALE_QUIET_S,
            arrival_cv: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EnvConfig {
    pub decision_interval: SimTime,
    pub action: ActionConfig,
    pub reward: RewardConfig,
    /// CPU target of the HPA-formula feature (gym-hpa's desired replicas).
    pub hpa_target: f64,
    /// Credit per service: each step also splits its reward among the services
    /// ([`super::reward::service_rewards`]), with this share of each part the team's mean. `None`:
    /// not split (`StepInfo::service_rewards` stays empty).
    pub service_credit: Option<f64>,
    /// A load forecast this many seconds ahead in the observation's HPA-formula feature
    /// ([`ObservationLayout::with_load_forecast`]); `None`: the feature is the current load's.
    pub load_forecast_s: Option<f64>,
    /// A burst count over this many seconds in the observation's feature 11
    /// ([`ObservationLayout::with_burst_count`]); `None`: the CPU limit over the SKU's cores.
    pub burst_count_s: Option<f64>,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            decision_interval: SimTime::from_secs(15),
            action: ActionConfig::default(),
            reward: RewardConfig::default(),
            hpa_target: 0.6,
            service_credit: None,
            load_forecast_s: None,
            burst_count_s: None,
        }
    }
}

/// An episode's backend and what the environment must know about it.
pub struct Episode {
    pub backend: Box<dyn ClusterBackend>,
    pub mix: Vec<f64>,
    pub slo_ms: f64,
    pub label: String,
}

/// Builds a fresh backend for each episode. `Send`, as environments are: they step side by side
/// on several threads ([`step_all`]).
pub trait BackendFactory: Send {
    fn build(&mut self, seed: u64) -> Result<Episode, EnvError>;

    /// Whether a step takes long enough (milliseconds: requests simulated one by one) to be worth
    /// a thread of its own when environments step side by side.
    fn heavy_steps(&self) -> bool {
        false
    }
}

/// Simulator episodes from one or more scenarios, randomised by the seed.
pub struct SimFactory {
    pub scenarios: Vec<Scenario>,
    pub randomization: Randomization,
}

impl SimFactory {
    pub fn new(scenarios: Vec<Scenario>, randomization: Randomization) -> Self {
        SimFactory { scenarios, randomization }
    }

    /// The scenario an episode with `seed` runs, after randomisation.
    pub fn episode_scenario(&self, seed: u64) -> Result<(Scenario, String), EnvError> {
        if self.scenarios.is_empty() {
            return Err(EnvError::NoScenario);
        }
        let mut rng = RngStreams::new(seed).stream("env/randomization");
        let k = rng.gen_range(0..self.scenarios.len());
        let mut sc = self.scenarios[k].clone();
        let r = self.randomization;
        let scale = if r.rate_scale.1 > r.rate_scale.0 {
            rng.gen_range(r.rate_scale.0..=r.rate_scale.1)
        } else {
            r.rate_scale.0
        };
        let offset = if r.start_offset_s.1 > r.start_offset_s.0 {
            rng.gen_range(r.start_offset_s.0..=r.start_offset_s.1)
        } else {
            r.start_offset_s.0
        };
        let off_us = SimTime::from_secs_f64(offset);
        match &mut sc.workload.source {
            ArrivalSource::Rate { schedule, .. } => {
                schedule.scale_rates(scale);
                if offset > 0.0 {
                    *schedule = shift_schedule(schedule, offset);
                }
            }
            ArrivalSource::Replay { times, rate_scale, .. } => {
                *rate_scale *= scale;
                if offset > 0.0 {
                    let cut: Vec<u64> = times.iter().filter(|&&t| t >= off_us.0).map(|t| t - off_us.0).collect();
                    *times = std::sync::Arc::new(cut);
                }
            }
        }
        if offset > 0.0 {
            sc.workload.duration = sc.workload.duration.saturating_sub(off_us);
            sc.horizon = sc.horizon.min(sc.workload.duration).max(SimTime::from_secs(1));
        }
        let mut label = format!("{} x{scale:.2} +{offset:.0}s", sc.name);
        if r.random_shapes {
            if let ArrivalSource::Rate { schedule, .. } = &mut sc.workload.source {
                let horizon = sc.horizon.as_secs_f64();
                let mean = schedule.expected_arrivals(sc.horizon) / horizon.max(1e-9);
                let (shape, kind) = crate::workload::random_shape(&mut rng, mean, horizon);
                *schedule = shape;
                label.push_str(&format!(" {}", kind.name()));
                // Drawn only when asked for, so that episodes without it keep their old stream.
                if r.second_scale_bursts > 0.0 && rng.gen_bool(r.second_scale_bursts.min(1.0)) {
                    *schedule =
                        crate::workload::modulate_seconds(&mut rng, schedule, horizon, r.second_scale_quiet_up_to_s);
                    label.push_str(" +1s bursts");
                }
            }
        }
        // Drawn last and only when asked for, so that episodes without it keep their old stream.
        if let (Some((lo, hi)), ArrivalSource::Rate { process, .. }) = (r.arrival_cv, &mut sc.workload.source) {
            let cv = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
            *process = crate::workload::ArrivalProcess::gamma(cv);
            label.push_str(&format!(" cv {cv:.2}"));
        }
        Ok((sc, label))
    }
}

fn shift_schedule(s: &RateSchedule, offset: f64) -> RateSchedule {
    let mut starts = Vec::new();
    let mut rates = Vec::new();
    for k in 0..s.starts.len() {
        let end = s.segment_end(k);
        if end <= offset {
            continue;
        }
        starts.push((s.starts[k] - offset).max(0.0));
        rates.push(s.rates[k]);
    }
    RateSchedule { starts, rates, end: (s.end - offset).max(0.0) }
}

impl BackendFactory for SimFactory {
    fn heavy_steps(&self) -> bool {
        self.scenarios.iter().any(|s| s.fidelity == crate::scenario::Fidelity::Request)
    }

    fn build(&mut self, seed: u64) -> Result<Episode, EnvError> {
        let (sc, label) = self.episode_scenario(seed)?;
        let mut sim = Simulator::new(&sc, seed, Sinks::discard())?;
        // Training reads rewards and views, never a run summary's percentiles.
        sim.skip_distributions();
        Ok(Episode { backend: Box::new(sim), mix: sc.workload.mix.clone(), slo_ms: sc.slo.as_millis_f64(), label })
    }
}

/// What happened in a step besides the observation and reward.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInfo {
    pub time_s: f64,
    pub terms: RewardTerms,
    pub report: ActionReport,
    /// Set by [`VecEnv`] when the episode ended and the environment was reset: the last
    /// observation of the finished episode.
    pub final_observation: Option<Box<Observation>>,
    /// With [`EnvConfig::service_credit`], the reward split among the services (they add up to
    /// it); empty otherwise.
    pub service_rewards: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub obs: Observation,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    pub info: StepInfo,
}

/// Version of the episode log's columns.
/// 2: `changes` (the reward's churn term) after `replica_lag`. 3: `action` in words with service
/// names (`cart +1`), not a Rust debug string with service indexes.
pub const EPISODE_LOG_FORMAT_VERSION: u32 = 3;

pub struct Env {
    config: EnvConfig,
    factory: Box<dyn BackendFactory>,
    episode: Option<Episode>,
    layout: Option<ObservationLayout>,
    prev: RunTotals,
    last_violation: f64,
    mask: Option<ActionMask>,
    stabilizer: super::DownscaleStabilizer,
    /// Each service's last replica change this episode: +1 up, -1 down, 0 none yet (for the
    /// reward's reversal count).
    last_direction: Vec<i8>,
    /// The services the last step reversed (refilled every step).
    reversed: Vec<usize>,
    /// The last observation's view, kept so each step refills it instead of allocating one.
    view: crate::metrics::ClusterView,
    steps: u64,
    episodes: u64,
    log: Option<csv::Writer<Box<dyn Write + Send>>>,
}

impl Env {
    pub fn new(config: EnvConfig, factory: Box<dyn BackendFactory>) -> Self {
        Env {
            config,
            factory,
            episode: None,
            layout: None,
            prev: RunTotals::default(),
            last_violation: 0.0,
            mask: None,
            stabilizer: Default::default(),
            last_direction: Vec::new(),
            reversed: Vec::new(),
            view: Default::default(),
            steps: 0,
            episodes: 0,
            log: None,
        }
    }

    /// Writes every step's reward terms and action to `w` as CSV.
    pub fn log_episodes_to(&mut self, w: Box<dyn Write + Send>) -> Result<(), EnvError> {
        let mut c = csv::Writer::from_writer(w);
        c.write_record([
            "episode",
            "step",
            "time_s",
            "reward",
            "slo_violation",
            "slack",
            "overshoot",
            "replica_lag",
            "changes",
            "action",
            "executed",
            "blocked",
            "format_version",
        ])?;
        self.log = Some(c);
        Ok(())
    }

    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// Whether this environment's steps are worth a thread each ([`BackendFactory::heavy_steps`]).
    pub fn heavy_steps(&self) -> bool {
        self.factory.heavy_steps()
    }

    pub fn layout(&self) -> Option<&ObservationLayout> {
        self.layout.as_ref()
    }

    /// The action mask for the next step.
    pub fn mask(&self) -> Option<&ActionMask> {
        self.mask.as_ref()
    }

    pub fn backend(&self) -> Option<&dyn ClusterBackend> {
        self.episode.as_ref().map(|e| e.backend.as_ref())
    }

    pub fn episode_label(&self) -> Option<&str> {
        self.episode.as_ref().map(|e| e.label.as_str())
    }

    /// The HPA targets of the masks' anchors and floors (the anchor's is the observation's).
    fn mask_targets(&self) -> super::action::MaskTargets {
        self.config.action.mask_targets(self.config.hpa_target)
    }

    /// Starts an episode; the same seed gives the same episode.
    pub fn reset(&mut self, seed: u64) -> Result<Observation, EnvError> {
        let ep = self.factory.build(seed)?;
        let layout =
            ObservationLayout::new(ep.backend.app(), &ep.mix, self.config.hpa_target, ep.backend.cluster().skus.len())
                .with_load_forecast(self.config.load_forecast_s)
                .with_burst_count(self.config.burst_count_s);
        self.prev = ep.backend.totals();
        self.last_violation = 0.0;
        let view = ep.backend.observe();
        let action = &self.config.action;
        self.stabilizer = super::DownscaleStabilizer::for_action(action);
        self.last_direction = vec![0; ep.backend.app().services.len()];
        let mut mask = ActionMask::from_view(&view, ep.backend.app(), ep.backend.cluster(), self.mask_targets());
        self.stabilizer.apply(ep.backend.now(), &mut mask);
        self.mask = Some(mask);
        let obs = collect(&layout, &view, ep.backend.app(), ep.backend.cluster(), ep.slo_ms);
        self.view = view;
        self.layout = Some(layout);
        self.episode = Some(ep);
        self.steps = 0;
        self.episodes += 1;
        Ok(obs)
    }

    pub fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let targets = self.mask_targets();
        let ep = self.episode.as_mut().ok_or(EnvError::NotReset)?;
        let layout = self.layout.as_ref().ok_or(EnvError::NotReset)?;
        let backend = ep.backend.as_mut();
        if backend.now() >= backend.horizon() {
            return Err(EnvError::EpisodeOver);
        }
        let mask = self.mask.as_ref().ok_or(EnvError::NotReset)?;
        let mut report = if self.config.action.stabilization == super::action::Stabilization::Recommendations {
            let (stabilized, held) = self.stabilizer.stabilize_action(backend.now(), &self.view, action);
            let mut report = execute(backend, &stabilized, mask, &self.config.action);
            report.blocked.extend(held.into_iter().map(|(_, note)| note));
            report
        } else {
            execute(backend, action, mask, &self.config.action)
        };
        for &s in report.scaled_up.iter().chain(&report.renewed) {
            self.stabilizer.scaled_up(backend.now(), s);
        }
        let mut reversals = count_reversals(&mut self.last_direction, &report, &mut self.reversed);
        let until = (backend.now() + self.config.decision_interval).min(backend.horizon());
        match self.config.action.fast_floor {
            None => backend.advance(until)?,
            Some(fast) => {
                let raised = advance_with_fast_floor(
                    backend,
                    until,
                    &fast,
                    &self.config.action,
                    &mut self.view,
                    &mut self.stabilizer,
                )?;
                // The fast floor's raises count as the step's moves (and reversals, after a
                // scale-down of the policy's) as the evaluation counts them.
                let mut reversed = Vec::new();
                reversals += count_reversals(&mut self.last_direction, &raised, &mut reversed);
                self.reversed.extend(reversed.into_iter().filter(|s| !self.reversed.contains(s)).collect::<Vec<_>>());
                report.absorb(raised);
            }
        }
        let after = backend.totals();
        backend.observe_into(&mut self.view);
        let view = &self.view;
        let step_hours = self.config.decision_interval.as_secs_f64() / 3600.0;
        let terms = compute(
            &self.config.reward,
            layout,
            backend,
            view,
            &self.prev,
            &after,
            report.replica_changes,
            reversals,
            ep.slo_ms,
            step_hours,
        );
        let service_rewards = match self.config.service_credit {
            Some(shared) => {
                let dropped = after.dropped.saturating_sub(self.prev.dropped) as f64;
                let slow = after.violating().saturating_sub(self.prev.violating()) as f64 - dropped;
                let blame = super::reward::blame(layout, backend, view, dropped, slow.max(0.0));
                let credit = super::reward::StepCredit {
                    terms: &terms,
                    blame: &blame,
                    moves: &report.moves,
                    reversed: &self.reversed,
                    step_hours,
                    shared,
                };
                super::reward::service_rewards(&self.config.reward, layout, backend, view, &credit)
            }
            None => Vec::new(),
        };
        self.prev = after;
        self.last_violation = terms.slo_violation;
        let obs = collect(layout, view, backend.app(), backend.cluster(), ep.slo_ms);
        let mask = self.mask.get_or_insert_with(Default::default);
        mask.refill(view, backend.app(), backend.cluster(), targets);
        self.stabilizer.apply(backend.now(), mask);
        let truncated = backend.now() >= backend.horizon();
        self.steps += 1;
        if let Some(log) = &mut self.log {
            log.write_record([
                self.episodes.to_string(),
                self.steps.to_string(),
                format!("{:.3}", obs.time_s),
                format!("{:.6}", terms.reward),
                format!("{:.6}", terms.slo_violation),
                format!("{:.6}", terms.slack),
                format!("{:.6}", terms.overshoot),
                format!("{:.6}", terms.replica_lag),
                format!("{:.6}", terms.changes),
                action.describe(backend.app(), backend.cluster()),
                report.executed.join("; "),
                report.blocked.join("; "),
                EPISODE_LOG_FORMAT_VERSION.to_string(),
            ])?;
            if truncated {
                log.flush().map_err(csv::Error::from)?;
            }
        }
        Ok(Step {
            reward: terms.reward,
            terminated: false,
            truncated,
            info: StepInfo { time_s: obs.time_s, terms, report, final_observation: None, service_rewards },
            obs,
        })
    }
}

/// Lets time pass on `backend` to `until` under the fast floor `fast`: at each of its looks
/// before `until` the view is refreshed into `view` and the services below the fast floor are
/// raised ([`raise_to_fast_floor`] under `action`'s floor target), each raise recorded by
/// `stabilizer` as a scale-up unless the fast floor leaves the window. Returns what the looks did.
fn advance_with_fast_floor(
    backend: &mut dyn ClusterBackend,
    until: SimTime,
    fast: &super::action::FastFloor,
    action: &ActionConfig,
    view: &mut crate::metrics::ClusterView,
    stabilizer: &mut super::DownscaleStabilizer,
) -> Result<ActionReport, EnvError> {
    let mut raised = ActionReport::default();
    loop {
        backend.advance((backend.now() + fast.every).min(until))?;
        if backend.now() >= until {
            return Ok(raised);
        }
        backend.observe_into(view);
        let look = raise_to_fast_floor(backend, view, action);
        for &s in look.scaled_up.iter().filter(|_| !fast.leaves_window) {
            stabilizer.scaled_up(backend.now(), s);
        }
        raised.absorb(look);
    }
}

/// Services whose change in `report` reverses their last change in `last` (down after up, up
/// after down), as the evaluation's reversals per hour count them; `last` is brought up to date
/// and `reversed` refilled with those services.
fn count_reversals(last: &mut [i8], report: &ActionReport, reversed: &mut Vec<usize>) -> u32 {
    reversed.clear();
    for (moved, dir) in [(&report.scaled_up, 1i8), (&report.scaled_down, -1i8)] {
        for &s in moved {
            if let Some(l) = last.get_mut(s) {
                if *l == -dir {
                    reversed.push(s);
                }
                *l = dir;
            }
        }
    }
    reversed.len() as u32
}

/// Steps every environment with its action; one whose episode ends is reset with its seed in
/// `reset_seeds`, and its first observation returned beside the step. With `parallel`, the
/// environments are stepped on the machine's cores; results come back in environment order either
/// way, and are the same, since environments share nothing.
///
/// The cores take environments one at a time from a shared queue rather than a fixed share each:
/// steps differ in cost (an environment with fewer replicas drops work, one with more serves it),
/// and with fixed shares every step waited for the slowest share. Measured on a 16-core machine
/// at request fidelity on Online Boutique; figures in the README.
pub fn step_all(
    envs: &mut [Env],
    actions: &[Action],
    reset_seeds: &[u64],
    parallel: bool,
) -> Vec<Result<(Step, Option<Observation>), EnvError>> {
    debug_assert!(
        actions.len() == envs.len() && reset_seeds.len() == envs.len(),
        "one action and seed per environment"
    );
    type Out = Result<(Step, Option<Observation>), EnvError>;
    let one = |env: &mut Env, action: &Action, seed: u64| -> Out {
        let st = env.step(action)?;
        let reset = if st.terminated || st.truncated { Some(env.reset(seed)?) } else { None };
        Ok((st, reset))
    };
    let threads =
        if parallel { std::thread::available_parallelism().map_or(1, |c| c.get()).min(envs.len()) } else { 1 };
    if threads <= 1 {
        return envs.iter_mut().zip(actions).zip(reset_seeds).map(|((e, a), &s)| one(e, a, s)).collect();
    }
    let work = std::sync::Mutex::new(envs.iter_mut().zip(actions).zip(reset_seeds).enumerate());
    let drain = || {
        let mut done: Vec<(usize, Out)> = Vec::new();
        loop {
            let next = work.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next();
            let Some((i, ((env, action), &seed))) = next else {
                return done;
            };
            done.push((i, one(env, action, seed)));
        }
    };
    let mut results: Vec<(usize, Out)> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(drain)).collect();
        let mut all = drain();
        for h in others {
            all.extend(h.join().expect("an environment thread"));
        }
        all
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// N environments stepped together; an environment whose episode ends is reset at once with the
/// next seed of its own sequence (`base_seed + i + N * episode`), and its step carries the finished
/// episode's last observation in `info.final_observation`.
///
/// With [`VecEnv::parallel`], the environments step on the machine's cores side by side (worth it
/// at request fidelity, where a step takes milliseconds); the results are the same.
pub struct VecEnv {
    pub envs: Vec<Env>,
    base_seed: u64,
    episode: Vec<u64>,
    parallel: bool,
}

impl VecEnv {
    pub fn new(envs: Vec<Env>, base_seed: u64) -> Self {
        let n = envs.len();
        VecEnv { envs, base_seed, episode: vec![0; n], parallel: false }
    }

    /// Steps the environments on several threads (`true`) or one after the other.
    pub fn parallel(mut self, on: bool) -> Self {
        self.parallel = on;
        self
    }

    fn seed(&self, i: usize, episode: u64) -> u64 {
        self.base_seed + i as u64 + self.envs.len() as u64 * episode
    }

    pub fn reset(&mut self) -> Result<Vec<Observation>, EnvError> {
        (0..self.envs.len())
            .map(|i| {
                let seed = self.seed(i, self.episode[i]);
                self.envs[i].reset(seed)
            })
            .collect()
    }

    pub fn step(&mut self, actions: &[Action]) -> Result<Vec<Step>, EnvError> {
        let next_seeds: Vec<u64> = (0..self.envs.len()).map(|i| self.seed(i, self.episode[i] + 1)).collect();
        let mut out = Vec::with_capacity(self.envs.len());
        for (i, result) in step_all(&mut self.envs, actions, &next_seeds, self.parallel).into_iter().enumerate() {
            let (mut st, fresh) = result?;
            if let Some(fresh) = fresh {
                self.episode[i] += 1;
                st.info.final_observation = Some(Box::new(std::mem::replace(&mut st.obs, fresh)));
            }
            out.push(st);
        }
        Ok(out)
    }
}

/// A seeded generator for agents and tests that need random actions.
pub fn action_rng(seed: u64) -> rand_pcg::Pcg64Mcg {
    rand_pcg::Pcg64Mcg::seed_from_u64(seed)
}
