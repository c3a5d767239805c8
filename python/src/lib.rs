//! `scalesim._core`: the Rust side of the Python package. It builds RL environments over the
//! simulator, steps them (a vector of them on threads, the interpreter's lock released) and runs
//! scenarios into run folders; observations travel as little-endian `float32` bytes that the
//! Python side views as numpy arrays without copying them again.
//!
//! This module owns the conversion between Python values and scalesim's types and nothing else:
//! gymnasium's API (spaces, `reset`/`step` signatures, autoreset) lives in `scalesim/__init__.py`.
//! Every scalesim error becomes a Python `ValueError` (bad input) or `RuntimeError` (a failure
//! while running) carrying the CLI's text: file, line and field.

use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use scalesim::engine::SimTime;
use scalesim::rl::observation::{EDGE_FEATURES, GLOBAL_FEATURES, SERVICE_FEATURES, SKU_FEATURES};
use scalesim::rl::{
    Action, ActionConfig, Env, EnvConfig, Observation, Randomization, RewardConfig, ServiceAction, SimFactory,
    SlackBasis, Step, DELTAS,
};
use scalesim::scenario::{load_scenario, Fidelity, Scenario};

fn bad_input(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn failed(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// How to build environments: the environment keywords (`scalesim._core_args` gives them) or an
/// agent config, resolved and checked once, here, for both `CoreEnv` and `CoreVecEnv`.
#[pyclass(module = "scalesim._core", frozen)]
struct CoreSpec {
    scenarios: Vec<Scenario>,
    config: EnvConfig,
    randomization: Randomization,
    per_service: bool,
}

/// How to build the environment an agent config trains in: its scenarios' fidelity and fluid
/// tick, its reward, action shields, scale-down window and load randomisation, exactly as
/// `scalesim train --agent CONFIG` builds them (`scalesim::experiment::train`). Configs whose
/// actions are more than replica deltas (node-type or CPU-quota heads, teams) are refused: the
/// Python environments take replica deltas only.
fn spec_from_agent(scenarios: Vec<String>, agent_config: &str) -> PyResult<CoreSpec> {
    use scalesim::experiment::train::{load_scenarios, training_randomization};
    use scalesim::rl::agent::config::{ActionMode, AgentConfig};
    let config = AgentConfig::load(Path::new(agent_config)).map_err(bad_input)?;
    let refuse = |field: &str| {
        bad_input(format!(
            "{agent_config}: `{field}`: the Python environments take replica deltas only; use `scalesim train` for this config"
        ))
    };
    if config.node_type_head {
        return Err(refuse("node_type_head"));
    }
    if config.quota_head {
        return Err(refuse("quota_head"));
    }
    if config.team > 1 {
        return Err(refuse("team"));
    }
    let files: Vec<PathBuf> = scenarios.iter().map(PathBuf::from).collect();
    let list = load_scenarios(&files, config.fidelity.scenario(), &config).map_err(bad_input)?;
    Ok(CoreSpec {
        scenarios: list,
        config: config.env_config(),
        randomization: training_randomization(&config),
        per_service: config.action == ActionMode::PerService,
    })
}

/// The sizes of an environment's observation: services, call edges, server types.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Dims {
    services: usize,
    edges: usize,
    skus: usize,
}

fn dims_of(obs: &Observation) -> Dims {
    Dims {
        services: obs.services.len() / SERVICE_FEATURES,
        edges: obs.edges.len() / EDGE_FEATURES,
        skus: obs.skus.len() / SKU_FEATURES,
    }
}

/// A built environment, reset once so that its shape is known.
fn build(spec: &CoreSpec) -> PyResult<(Env, Observation)> {
    let factory = SimFactory::new(spec.scenarios.clone(), spec.randomization);
    let mut env = Env::new(spec.config, Box::new(factory));
    let obs = env.reset(0).map_err(failed)?;
    Ok((env, obs))
}

/// What Python needs to describe an environment's spaces and info, the same for every
/// environment one spec builds: the action's shape, the graph's sizes, service names, their
/// maximum replicas and the call edges `(caller, callee)`.
#[pyclass(module = "scalesim._core", frozen, get_all)]
#[derive(Clone)]
struct Layout {
    /// Every service moves at each step (`MultiDiscrete`), not one (`Discrete`).
    per_service: bool,
    /// `(services, edges, skus)`: the node and edge counts of the observation graph.
    dims: (usize, usize, usize),
    /// Features per service, per edge, per server type, and global scalars.
    feature_sizes: (usize, usize, usize, usize),
    service_names: Vec<String>,
    max_replicas: Vec<u32>,
    /// `(caller, callee)` service index pairs, one per call edge.
    edge_index: Vec<(usize, usize)>,
}

impl Layout {
    fn of(spec: &CoreSpec, env: &Env, obs: &Observation) -> Layout {
        let app = env.backend().expect("built environments are reset").app();
        let d = dims_of(obs);
        Layout {
            per_service: spec.per_service,
            dims: (d.services, d.edges, d.skus),
            feature_sizes: (SERVICE_FEATURES, EDGE_FEATURES, SKU_FEATURES, GLOBAL_FEATURES),
            service_names: app.services.iter().map(|s| s.name.clone()).collect(),
            max_replicas: app.services.iter().map(|s| s.max_replicas).collect(),
            edge_index: obs.edge_index.to_vec(),
        }
    }

    fn services(&self) -> usize {
        self.dims.0
    }

    /// An episode's observation has this layout's graph: the scenarios of one environment may
    /// differ in load, never in shape.
    fn check(&self, env: &Env, obs: &Observation) -> PyResult<()> {
        let d = dims_of(obs);
        if (d.services, d.edges, d.skus) == self.dims {
            return Ok(());
        }
        let (services, edges, skus) = self.dims;
        Err(bad_input(format!(
            "episode {} has {} services, {} edges and {} server types, the environment {services}, {edges} and {skus}: the scenarios of one environment must share a graph shape",
            env.episode_label().unwrap_or(""),
            d.services,
            d.edges,
            d.skus,
        )))
    }
}

/// The environment action of a flat action: one index in `0..services*5` (`single`: service
/// `a / 5`, delta `DELTAS[a % 5]`), or one delta index in `0..5` per service (`per_service`).
fn decode(action: &[i64], per_service: bool, services: usize) -> Result<Action, String> {
    if per_service {
        if action.len() != services {
            return Err(format!("a per-service action has one entry per service ({services}), got {}", action.len()));
        }
        let mut v = Vec::with_capacity(services);
        for (s, &d) in action.iter().enumerate() {
            if !(0..5).contains(&d) {
                return Err(format!("action[{s}] = {d} is outside 0..5 (deltas -2..=2)"));
            }
            v.push(ServiceAction { node_type: 0, delta: DELTAS[d as usize], quota: 0.0 });
        }
        Ok(Action::All(v))
    } else {
        let [a] = action else { return Err(format!("a single action is one integer, got {}", action.len())) };
        let n = (services * 5) as i64;
        if !(0..n).contains(a) {
            return Err(format!("action {a} is outside 0..{n} (service * 5 + delta index)"));
        }
        Ok(Action::One { service: (*a / 5) as usize, node_type: 0, delta: DELTAS[(*a % 5) as usize], quota: 0.0 })
    }
}

fn push_f32(out: &mut Vec<u8>, v: &[f32]) {
    out.reserve(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// An observation's four parts appended to four byte buffers.
#[derive(Default)]
struct ObsBytes {
    services: Vec<u8>,
    edges: Vec<u8>,
    skus: Vec<u8>,
    global: Vec<u8>,
}

impl ObsBytes {
    fn push(&mut self, o: &Observation) {
        push_f32(&mut self.services, &o.services);
        push_f32(&mut self.edges, &o.edges);
        push_f32(&mut self.skus, &o.skus);
        push_f32(&mut self.global, &o.global);
    }

    fn into_py<'py>(self, py: Python<'py>) -> [Bound<'py, PyBytes>; 4] {
        [
            PyBytes::new(py, &self.services),
            PyBytes::new(py, &self.edges),
            PyBytes::new(py, &self.skus),
            PyBytes::new(py, &self.global),
        ]
    }
}

/// The mask of an environment in the flat layout: 5 per service, `true` = allowed.
fn mask_bytes(env: &Env, out: &mut Vec<u8>) {
    if let Some(m) = env.mask() {
        for row in &m.deltas {
            out.extend(row.iter().map(|&ok| ok as u8));
        }
    }
}

/// Replicas (Active + Starting) of every service now.
fn replicas(env: &Env) -> Vec<u32> {
    env.backend()
        .map(|b| {
            (0..b.app().services.len())
                .map(|s| {
                    let c = b.counts(s);
                    c.active + c.starting
                })
                .collect()
        })
        .unwrap_or_default()
}

#[pymethods]
impl CoreSpec {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (scenarios, fidelity="fluid", decision_interval_s=15.0, reward="weighted", reward_weights=None, action="single", rate_scale=(1.0, 1.0), start_offset_s=(0.0, 0.0), random_shapes=false, timeline_interval_s=None, credit="shared", arrival_cv=None, anchor="current", hpa_floor=None, floor_counts_refused=false, floor_peak_s=None, floor_peak_reads="busiest", hpa_ceiling=None, ceiling_release_step=None, hpa_levels=None, floor_holds_peak=false, renew_window_at_bound=false, renew_only_while_needed=false, downscale_stabilization_s=0.0, load_forecast_s=None, floor_reads_forecast=false, ceiling_reads_forecast=false, fast_floor_every_s=None, fast_floor_reads_s=None, fast_floor_panic_ratio=None, fast_floor_leaves_window=false, burst_count_s=None, agent_config=None))]
    fn new(
        scenarios: Vec<String>,
        fidelity: &str,
        decision_interval_s: f64,
        reward: &str,
        reward_weights: Option<Vec<(String, f64)>>,
        action: &str,
        rate_scale: (f64, f64),
        start_offset_s: (f64, f64),
        random_shapes: bool,
        timeline_interval_s: Option<f64>,
        credit: &str,
        arrival_cv: Option<(f64, f64)>,
        anchor: &str,
        hpa_floor: Option<f64>,
        floor_counts_refused: bool,
        floor_peak_s: Option<f64>,
        floor_peak_reads: &str,
        hpa_ceiling: Option<f64>,
        ceiling_release_step: Option<u32>,
        hpa_levels: Option<[f64; 5]>,
        floor_holds_peak: bool,
        renew_window_at_bound: bool,
        renew_only_while_needed: bool,
        downscale_stabilization_s: f64,
        load_forecast_s: Option<f64>,
        floor_reads_forecast: bool,
        ceiling_reads_forecast: bool,
        fast_floor_every_s: Option<f64>,
        fast_floor_reads_s: Option<f64>,
        fast_floor_panic_ratio: Option<f64>,
        fast_floor_leaves_window: bool,
        burst_count_s: Option<f64>,
        agent_config: Option<String>,
    ) -> PyResult<Self> {
        if scenarios.is_empty() {
            return Err(bad_input("make_env: no scenario given"));
        }
        // The Python side refuses other environment keywords beside `agent_config`.
        if let Some(path) = agent_config {
            return spec_from_agent(scenarios, &path);
        }
        let fidelity = match fidelity {
            "fluid" => Fidelity::Fluid,
            "request" => Fidelity::Request,
            other => return Err(bad_input(format!("fidelity: `{other}` is not `fluid` or `request`"))),
        };
        let mut list = Vec::with_capacity(scenarios.len());
        for f in &scenarios {
            let mut sc = load_scenario(Path::new(f)).map_err(bad_input)?;
            sc.fidelity = fidelity;
            if let Some(t) = timeline_interval_s {
                // A coarser timeline integrates the fluid model in longer steps (faster, coarser).
                let timeline = SimTime::from_secs_f64(t);
                let scrape = sc.metrics.scrape_interval;
                if !(t.is_finite() && t >= 0.001) || scrape < timeline || scrape.0 % timeline.0 != 0 {
                    return Err(bad_input(format!(
                        "timeline_interval_s: {t} s must be at least 0.001 s and divide {f}'s scrape interval ({scrape})"
                    )));
                }
                sc.metrics.timeline_interval = timeline;
            }
            list.push(sc);
        }
        if !(decision_interval_s.is_finite() && (0.001..=86_400.0).contains(&decision_interval_s)) {
            return Err(bad_input(format!("decision_interval_s: {decision_interval_s} is outside 0.001..=86400")));
        }
        let per_service = match action {
            "single" => false,
            "per_service" => true,
            other => return Err(bad_input(format!("action: `{other}` is not `single` or `per_service`"))),
        };
        let service_credit = match credit {
            "shared" => None,
            // As an agent config's `credit: per_service` (its `credit_shared` left at 0): each
            // service's own part of the weighted reward's terms (equal parts of the other rewards).
            "per_service" if !per_service => {
                return Err(bad_input("credit: `per_service` needs `action=\"per_service\"` (a decision per service)"))
            }
            "per_service" => Some(0.0),
            other => return Err(bad_input(format!("credit: `{other}` is not `shared` or `per_service`"))),
        };
        let anchor = match anchor {
            "current" => scalesim::rl::action::Anchor::Current,
            // Every service must move each step for the HPA's count to be followed.
            "hpa" if !per_service => {
                return Err(bad_input(
                    "anchor: `hpa` needs `action=\"per_service\"` (every service moves from its HPA count)",
                ))
            }
            "hpa" => scalesim::rl::action::Anchor::Hpa,
            other => return Err(bad_input(format!("anchor: `{other}` is not `current` or `hpa`"))),
        };
        let mut reward = match reward {
            "weighted" => RewardConfig::weighted(SlackBasis::Request),
            "cost" => RewardConfig::Cost,
            "latency" => RewardConfig::Latency,
            "multi" => RewardConfig::Multi { lambda: 1.0 },
            other => {
                return Err(bad_input(format!("reward: `{other}` is not `weighted`, `cost`, `latency` or `multi`")))
            }
        };
        if let Some(ws) = reward_weights {
            let RewardConfig::Weighted { slo, slack, overshoot, lag, changes, reversals, capacity, .. } = &mut reward
            else {
                return Err(bad_input("reward_weights: only the `weighted` reward has weights"));
            };
            for (name, v) in ws {
                if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
                    return Err(bad_input(format!("reward_weights.{name}: {v} is outside 0 <= weight <= 1000000")));
                }
                let slot = match name.as_str() {
                    "slo" => &mut *slo,
                    "slack" => &mut *slack,
                    "overshoot" => &mut *overshoot,
                    "lag" => &mut *lag,
                    "changes" => &mut *changes,
                    "reversals" => &mut *reversals,
                    "capacity" => &mut *capacity,
                    other => {
                        let known = "slo, slack, overshoot, lag, changes, reversals, capacity";
                        return Err(bad_input(format!("reward_weights: unknown term `{other}` ({known})")));
                    }
                };
                *slot = v;
            }
        }
        for (name, (lo, hi), min) in
            [("rate_scale", rate_scale, f64::MIN_POSITIVE), ("start_offset_s", start_offset_s, 0.0)]
        {
            if !(lo.is_finite() && hi.is_finite() && lo >= min && hi >= lo) {
                return Err(bad_input(format!(
                    "{name}: ({lo}, {hi}) is not a range LO <= HI of finite numbers >= {min}"
                )));
            }
        }
        let floor_peak_reads = match floor_peak_reads {
            "busiest" => scalesim::rl::PeakSpan::Busiest,
            "latest" => scalesim::rl::PeakSpan::Latest,
            other => return Err(bad_input(format!("floor_peak_reads: `{other}` is not `busiest` or `latest`"))),
        };
        let window = downscale_stabilization_s;
        if !(window.is_finite() && (0.0..=86_400.0).contains(&window)) {
            return Err(bad_input(format!("downscale_stabilization_s: {window} is outside 0..=86400")));
        }
        scalesim::rl::observation::check_spans(load_forecast_s, burst_count_s)
            .map_err(|(field, why)| bad_input(format!("{field}: {why}")))?;
        scalesim::rl::action::check_forecast_switches(load_forecast_s, floor_reads_forecast, ceiling_reads_forecast)
            .map_err(|(field, why)| bad_input(format!("{field}: {why}")))?;
        scalesim::rl::action::check_fast_floor(
            fast_floor_every_s,
            [
                ("fast_floor_reads_s", fast_floor_reads_s.is_some()),
                ("fast_floor_panic_ratio", fast_floor_panic_ratio.is_some()),
                ("fast_floor_leaves_window", fast_floor_leaves_window),
            ],
            fast_floor_reads_s,
            fast_floor_panic_ratio,
            decision_interval_s,
            hpa_floor,
        )
        .map_err(|(field, why)| bad_input(format!("{field}: {why}")))?;
        let config = EnvConfig {
            decision_interval: SimTime::from_secs_f64(decision_interval_s),
            action: ActionConfig {
                node_type_head: false,
                quota_head: false,
                anchor,
                hpa_floor,
                floor_counts_refused,
                floor_peak_s,
                floor_peak_reads,
                floor_holds_peak,
                hpa_ceiling,
                ceiling_release_step,
                hpa_levels,
                renew_at_bound: renew_window_at_bound,
                renew_only_while_needed,
                downscale_stabilization: SimTime::from_secs_f64(window),
                floor_forecast_s: load_forecast_s.filter(|_| floor_reads_forecast),
                ceiling_forecast_s: load_forecast_s.filter(|_| ceiling_reads_forecast),
                fast_floor: fast_floor_every_s.map(|every| {
                    let (reads, ratio) = (fast_floor_reads_s, fast_floor_panic_ratio);
                    scalesim::rl::action::FastFloor::from_settings(every, reads, ratio, fast_floor_leaves_window)
                }),
                ..Default::default()
            },
            reward,
            service_credit,
            load_forecast_s,
            burst_count_s,
            ..Default::default()
        };
        // As an agent config's `hpa_floor`, `hpa_ceiling` and `hpa_levels`: one check for both.
        scalesim::rl::action::check_hpa_shields(&config.action, per_service)
            .map_err(|(field, why)| bad_input(format!("{field}: {why}")))?;
        if let Some((lo, hi)) = arrival_cv {
            if !(lo.is_finite() && hi.is_finite() && (0.1..=10.0).contains(&lo) && lo <= hi && hi <= 10.0) {
                return Err(bad_input(format!("arrival_cv: ({lo}, {hi}) is not a range 0.1 <= lo <= hi <= 10")));
            }
        }
        let randomization =
            Randomization { rate_scale, start_offset_s, random_shapes, arrival_cv, ..Default::default() };
        Ok(CoreSpec { scenarios: list, config, randomization, per_service })
    }
}

/// One environment (`scalesim.make_env` wraps it in a `gymnasium.Env`).
#[pyclass(module = "scalesim._core", unsendable)]
struct CoreEnv {
    env: Env,
    layout: Layout,
    done: bool,
}

#[pymethods]
impl CoreEnv {
    #[new]
    fn new(spec: PyRef<'_, CoreSpec>) -> PyResult<Self> {
        let (env, obs) = build(&spec)?;
        Ok(CoreEnv { layout: Layout::of(&spec, &env, &obs), env, done: true })
    }

    /// The action's shape, the graph's sizes, the services and the call edges.
    #[getter]
    fn layout(&self) -> Layout {
        self.layout.clone()
    }

    /// Starts an episode with `seed`; returns the observation's four parts as float32 bytes.
    fn reset<'py>(&mut self, py: Python<'py>, seed: u64) -> PyResult<[Bound<'py, PyBytes>; 4]> {
        let obs = self.env.reset(seed).map_err(failed)?;
        self.layout.check(&self.env, &obs)?;
        self.done = false;
        let mut b = ObsBytes::default();
        b.push(&obs);
        Ok(b.into_py(py))
    }

    /// Steps with `action` (see `decode`); returns `(obs parts, reward, terminated, truncated,
    /// info)` where info is `(time_s, slo_violation, cost, replicas, executed, blocked, terms,
    /// service_rewards)` (`service_rewards`: the reward split among the services with
    /// `credit="per_service"`, empty otherwise).
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        action: Vec<i64>,
    ) -> PyResult<(
        [Bound<'py, PyBytes>; 4],
        f64,
        bool,
        bool,
        (f64, f64, f64, Vec<u32>, String, String, [f64; 6], Vec<f64>),
    )> {
        if self.done {
            return Err(failed("step() after the episode ended (or before reset()): call reset()"));
        }
        let a = decode(&action, self.layout.per_service, self.layout.services()).map_err(bad_input)?;
        let st: Step = self.env.step(&a).map_err(failed)?;
        self.done = st.terminated || st.truncated;
        let mut b = ObsBytes::default();
        b.push(&st.obs);
        let t = &st.info.terms;
        let info = (
            st.info.time_s,
            t.slo_violation,
            t.cost,
            replicas(&self.env),
            st.info.report.executed.join("; "),
            st.info.report.blocked.join("; "),
            [t.slack, t.overshoot, t.replica_lag, t.changes, t.latency_ratio, t.replica_hours],
            st.info.service_rewards,
        );
        Ok((b.into_py(py), st.reward, st.terminated, st.truncated, info))
    }

    /// Allowed deltas now: 5 bytes per service (1 = allowed), in `DELTAS` order (-2..=2).
    fn action_mask<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(self.layout.services() * 5);
        mask_bytes(&self.env, &mut out);
        PyBytes::new(py, &out)
    }
}

/// One environment of a vector, with its autoreset state.
struct Slot {
    env: Env,
    /// The last step ended its episode: the next step resets it (gymnasium's next-step autoreset).
    needs_reset: bool,
    episode: u64,
}

/// What one slot's step produced.
#[derive(Default)]
struct SlotOut {
    obs: Option<Observation>,
    reward: f64,
    terminated: bool,
    truncated: bool,
    slo: f64,
    cost: f64,
    /// The reward split among the services (`credit="per_service"`); empty otherwise.
    service_rewards: Vec<f64>,
    error: Option<String>,
}

/// N environments stepped together on threads (`scalesim.make_vec_env` wraps it in a
/// `gymnasium.vector.VectorEnv`).
#[pyclass(module = "scalesim._core", unsendable)]
struct CoreVecEnv {
    slots: Vec<Slot>,
    /// Steps return the reward split among the services (`credit="per_service"`).
    credit: bool,
    layout: Layout,
    base_seed: u64,
    threads: usize,
}

impl CoreVecEnv {
    fn seed(&self, i: usize, episode: u64) -> u64 {
        self.base_seed.wrapping_add(i as u64).wrapping_add((self.slots.len() as u64).wrapping_mul(episode))
    }
}

/// Steps (or, after an episode's end, resets) every slot, `threads` slots' worth at a time.
fn step_slots(slots: &mut [Slot], actions: &[Action], seeds: &[u64], threads: usize) -> Vec<SlotOut> {
    let one = |slot: &mut Slot, action: &Action, seed: u64| -> SlotOut {
        if slot.needs_reset {
            slot.needs_reset = false;
            slot.episode += 1;
            return match slot.env.reset(seed) {
                Ok(obs) => SlotOut { obs: Some(obs), ..Default::default() },
                Err(e) => SlotOut { error: Some(e.to_string()), ..Default::default() },
            };
        }
        match slot.env.step(action) {
            Ok(st) => {
                slot.needs_reset = st.terminated || st.truncated;
                SlotOut {
                    reward: st.reward,
                    terminated: st.terminated,
                    truncated: st.truncated,
                    slo: st.info.terms.slo_violation,
                    cost: st.info.terms.cost,
                    service_rewards: st.info.service_rewards,
                    obs: Some(st.obs),
                    error: None,
                }
            }
            Err(e) => SlotOut { error: Some(e.to_string()), ..Default::default() },
        }
    };
    let n = slots.len();
    let mut out: Vec<SlotOut> = (0..n).map(|_| SlotOut::default()).collect();
    let chunk = n.div_ceil(threads.max(1)).max(1);
    if threads <= 1 || n < 2 {
        for (((slot, a), &s), o) in slots.iter_mut().zip(actions).zip(seeds).zip(out.iter_mut()) {
            *o = one(slot, a, s);
        }
        return out;
    }
    // rayon's pool keeps its threads between steps: spawning threads at every step cost more than
    // a fluid step itself (microseconds).
    use rayon::prelude::*;
    slots
        .par_chunks_mut(chunk)
        .zip(actions.par_chunks(chunk))
        .zip(seeds.par_chunks(chunk))
        .zip(out.par_chunks_mut(chunk))
        .for_each(|(((ss, aa), sd), oo)| {
            for (((slot, a), &s), o) in ss.iter_mut().zip(aa).zip(sd).zip(oo.iter_mut()) {
                *o = one(slot, a, s);
            }
        });
    out
}

#[pymethods]
impl CoreVecEnv {
    #[new]
    #[pyo3(signature = (spec, num_envs, threads=None))]
    fn new(spec: PyRef<'_, CoreSpec>, num_envs: usize, threads: Option<usize>) -> PyResult<Self> {
        if !(1..=4096).contains(&num_envs) {
            return Err(bad_input(format!("num_envs: {num_envs} is outside 1..=4096")));
        }
        let mut slots = Vec::with_capacity(num_envs);
        let mut layout = None;
        for _ in 0..num_envs {
            let (env, obs) = build(&spec)?;
            layout.get_or_insert_with(|| Layout::of(&spec, &env, &obs));
            slots.push(Slot { env, needs_reset: false, episode: 0 });
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        Ok(CoreVecEnv {
            slots,
            credit: spec.config.service_credit.is_some(),
            layout: layout.expect("num_envs >= 1"),
            base_seed: 0,
            threads: threads.unwrap_or(cores).clamp(1, num_envs),
        })
    }

    /// The action's shape, the graph's sizes, the services and the call edges.
    #[getter]
    fn layout(&self) -> Layout {
        self.layout.clone()
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.slots.len()
    }

    /// Resets every environment: environment `i` runs seeds `seed + i + N * episode`.
    fn reset<'py>(&mut self, py: Python<'py>, seed: u64) -> PyResult<[Bound<'py, PyBytes>; 4]> {
        self.base_seed = seed;
        let mut b = ObsBytes::default();
        for i in 0..self.slots.len() {
            let s = self.seed(i, 0);
            let slot = &mut self.slots[i];
            slot.episode = 0;
            slot.needs_reset = false;
            let obs = slot.env.reset(s).map_err(failed)?;
            self.layout.check(&slot.env, &obs)?;
            b.push(&obs);
        }
        Ok(b.into_py(py))
    }

    /// Steps every environment with its row of `actions` (little-endian int64 bytes: one per
    /// environment, or `services` per environment per-service). An environment whose episode
    /// ended at the previous step is reset instead (its action ignored, reward 0, neither
    /// terminated nor truncated), as gymnasium 1.x's next-step autoreset specifies. Returns
    /// `(obs parts, rewards f64, terminated u8, truncated u8, slo f64, cost f64, service rewards
    /// f64)` as bytes; the service rewards (`credit="per_service"`; empty otherwise) are `services`
    /// per environment, zeros for an environment that was reset.
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        actions: &[u8],
    ) -> PyResult<([Bound<'py, PyBytes>; 4], [Bound<'py, PyBytes>; 6])> {
        let n = self.slots.len();
        let (per_service, services) = (self.layout.per_service, self.layout.services());
        let width = if per_service { services } else { 1 };
        if actions.len() != n * width * 8 {
            return Err(bad_input(format!(
                "actions: expected {} int64 values ({n} environments x {width}), got {} bytes",
                n * width,
                actions.len()
            )));
        }
        let values: Vec<i64> =
            actions.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        let mut decoded = Vec::with_capacity(n);
        for (i, row) in values.chunks(width).enumerate() {
            let a = decode(row, per_service, services).map_err(|e| bad_input(format!("env {i}: {e}")))?;
            decoded.push(a);
        }
        let seeds: Vec<u64> = (0..n).map(|i| self.seed(i, self.slots[i].episode + 1)).collect();
        let threads = self.threads;
        let slots = &mut self.slots;
        let outs = py.detach(move || step_slots(slots, &decoded, &seeds, threads));
        let mut b = ObsBytes::default();
        let (mut rew, mut term, mut trunc, mut slo, mut cost, mut service) = (
            Vec::with_capacity(n * 8),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for (i, o) in outs.into_iter().enumerate() {
            if let Some(e) = o.error {
                return Err(failed(format!("env {i}: {e}")));
            }
            b.push(o.obs.as_ref().expect("a step without an error has an observation"));
            rew.extend_from_slice(&o.reward.to_le_bytes());
            term.push(o.terminated as u8);
            trunc.push(o.truncated as u8);
            slo.extend_from_slice(&o.slo.to_le_bytes());
            cost.extend_from_slice(&o.cost.to_le_bytes());
            if self.credit {
                let split = if o.service_rewards.is_empty() { vec![0.0; services] } else { o.service_rewards };
                split.iter().for_each(|r| service.extend_from_slice(&r.to_le_bytes()));
            }
        }
        Ok((
            b.into_py(py),
            [
                PyBytes::new(py, &rew),
                PyBytes::new(py, &term),
                PyBytes::new(py, &trunc),
                PyBytes::new(py, &slo),
                PyBytes::new(py, &cost),
                PyBytes::new(py, &service),
            ],
        ))
    }

    /// Every environment's allowed deltas: 5 bytes per service, environment after environment.
    fn action_masks<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(self.slots.len() * self.layout.services() * 5);
        for s in &self.slots {
            mask_bytes(&s.env, &mut out);
        }
        PyBytes::new(py, &out)
    }
}

/// Runs `scenario` under `policy` into the run folder `out` (the CLI's `run`); returns
/// `summary.json`'s text.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // the keywords of Python's `scalesim.run`
#[pyo3(signature = (scenario, out, policy="static", policy_config=None, seed=None, horizon=None, force=false, no_timeline=false))]
fn run(
    py: Python<'_>,
    scenario: String,
    out: String,
    policy: &str,
    policy_config: Option<String>,
    seed: Option<u64>,
    horizon: Option<f64>,
    force: bool,
    no_timeline: bool,
) -> PyResult<String> {
    let mut sc = load_scenario(Path::new(&scenario)).map_err(bad_input)?;
    if let Some(h) = horizon {
        if !(h.is_finite() && h >= 1e-6 && h < SimTime::MAX.as_secs_f64()) {
            return Err(bad_input(format!("horizon: {h} is not a number of seconds >= 0.000001")));
        }
        sc.horizon = SimTime::from_secs_f64(h);
    }
    let choice = scalesim::experiment::policies::PolicyChoice::parse(policy).map_err(bad_input)?;
    let config_path = policy_config.as_ref().map(PathBuf::from);
    let built = choice.build(config_path.as_deref(), &sc).map_err(bad_input)?;
    let seed = seed.unwrap_or(sc.seed);
    let options = scalesim::experiment::RunOptions {
        event_log: None,
        policy_config: policy_config.clone(),
        force,
        allow_large: false,
        no_timeline,
    };
    let out = PathBuf::from(out);
    let summary = py
        .detach(move || scalesim::experiment::run_to_dir(&sc, built, seed, &out, options, &mut |_| {}))
        .map_err(failed)?;
    serde_json::to_string(&summary).map_err(failed)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CoreSpec>()?;
    m.add_class::<Layout>()?;
    m.add_class::<CoreEnv>()?;
    m.add_class::<CoreVecEnv>()?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add("DELTAS", DELTAS.to_vec())?;
    Ok(())
}
