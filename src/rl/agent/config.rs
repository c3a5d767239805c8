//! An agent's hyper-parameters (`configs/agents/*.yaml`): what the file may say, its defaults, its
//! validation, and the environment configuration it implies. Knows nothing of networks.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::SimTime;
use crate::rl::{reward, EnvConfig, RewardConfig, SlackBasis};
use crate::scenario::{ConfigError, ConfigText};

/// The shortest decision interval an agent may take: a millisecond (shorter ones are below any
/// metric's resolution and only multiply the work).
pub const MIN_INTERVAL_S: f64 = 0.001;

/// A field of an agent config that fails [`AgentConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The field's path, e.g. `learning_rate` or `reward_weights.slo`.
    pub field: String,
    pub message: String,
}

/// The network that encodes observations. Serialised as `mlp`, `gcn`, `gat` (the names configs and
/// checkpoints have always used).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoder {
    Mlp,
    Gcn,
    Gat,
}

impl Encoder {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoder::Mlp => "mlp",
            Encoder::Gcn => "gcn",
            Encoder::Gat => "gat",
        }
    }

    /// Whether it reads the call graph (scores each service from its node) rather than a flat
    /// observation.
    pub fn is_graph(self) -> bool {
        self != Encoder::Mlp
    }
}

impl std::fmt::Display for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The learning algorithm: `ppo` (clipped objective) or `a2c`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ppo,
    A2c,
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Algorithm::Ppo => "ppo",
            Algorithm::A2c => "a2c",
        })
    }
}

/// The fidelity an agent trains at: `fluid` (fast, the default) or `request`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TrainingFidelity {
    #[default]
    Fluid,
    Request,
}

impl TrainingFidelity {
    pub fn scenario(self) -> crate::scenario::Fidelity {
        match self {
            TrainingFidelity::Fluid => crate::scenario::Fidelity::Fluid,
            TrainingFidelity::Request => crate::scenario::Fidelity::Request,
        }
    }
}

/// The loads an agent trains on: the `--scenario` files' own shapes (scaled 0.8-1.2x), or
/// `random_shapes`: each episode a random shape of the same mean (ramps, staircases, spikes,
/// diurnal curves, bursts; [`crate::workload::random_shape`]), for agents that must generalise
/// to loads they never saw.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TrainingLoads {
    #[default]
    Scenario,
    RandomShapes,
}

/// What one decision changes: `single` (default; the gym-hpa action: one service by -2..=2
/// replicas, one categorical over services x deltas), or `per_service` (every service by its own
/// -2..=2 at once, independent categoricals whose log-probabilities add up; graph encoders score
/// each service from its own node, the MLP has one head per service slot).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionMode {
    #[default]
    Single,
    PerService,
}

/// How far a replica delta moves a service: `additive` (default; -2..=2 replicas) or
/// `multiplicative` (x0.5, x0.75, hold, x1.5, x2, at least the additive step:
/// [`crate::rl::action::multiplied_target`]).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Steps {
    #[default]
    Additive,
    Multiplicative,
}

/// How a step's reward reaches the services' decisions: `shared` (default; every service's choice
/// is judged by the whole reward, through one value) or `per_service` (the reward split among the
/// services, `src/rl/reward.rs`; a value and an advantage per service, and PPO's ratio clipped
/// per service). Per service needs `action: per_service` and a graph encoder, whose nodes give
/// the values.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Credit {
    #[default]
    Shared,
    PerService,
}

/// The reward an agent trains on: `weighted` (default), `cost`, `latency` or `multi`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RewardKind {
    #[default]
    Weighted,
    Cost,
    Latency,
    Multi,
}

/// The weighted reward's weights, by term.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RewardWeights {
    #[serde(default = "w_slo")]
    pub slo: f64,
    #[serde(default = "w_slack")]
    pub slack: f64,
    #[serde(default = "w_overshoot")]
    pub overshoot: f64,
    #[serde(default = "w_lag")]
    pub lag: f64,
    #[serde(default)]
    pub changes: f64,
    /// The price of one direction reversal of a service's replicas (`src/rl/reward.rs`). Written
    /// into checkpoints only when set, so older checkpoints read unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reversals: f64,
    /// The price of a replica-hour (`src/rl/reward.rs`: the trade-off it sets). Written into
    /// checkpoints only when set, so older checkpoints read unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub capacity: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        RewardWeights {
            slo: w_slo(),
            slack: w_slack(),
            overshoot: w_overshoot(),
            lag: w_lag(),
            changes: 0.0,
            reversals: 0.0,
            capacity: 0.0,
        }
    }
}

impl RewardWeights {
    fn is_default(&self) -> bool {
        *self == RewardWeights::default()
    }
}

fn w_slo() -> f64 {
    reward::DEFAULT_SLO_WEIGHT
}
fn w_slack() -> f64 {
    reward::DEFAULT_SLACK_WEIGHT
}
fn w_overshoot() -> f64 {
    reward::DEFAULT_OVERSHOOT_WEIGHT
}
fn w_lag() -> f64 {
    reward::DEFAULT_LAG_WEIGHT
}

/// Hyper-parameters, from `configs/agents/*.yaml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default = "one")]
    pub format_version: u32,
    pub encoder: Encoder,
    pub algorithm: Algorithm,
    #[serde(default = "lr")]
    pub learning_rate: f64,
    #[serde(default = "gamma")]
    pub gamma: f64,
    #[serde(default = "lambda")]
    pub gae_lambda: f64,
    #[serde(default = "clip")]
    pub clip: f64,
    #[serde(default = "half")]
    pub value_coef: f64,
    #[serde(default = "ent")]
    pub entropy_coef: f64,
    #[serde(default = "half")]
    pub max_grad_norm: f64,
    #[serde(default = "epochs")]
    pub epochs: usize,
    #[serde(default = "minibatch")]
    pub minibatch: usize,
    #[serde(default = "rollout")]
    pub rollout_steps: usize,
    #[serde(default = "envs")]
    pub envs: usize,
    #[serde(default = "interval")]
    pub decision_interval_s: f64,
    /// `fluid` (fast, the default) or `request`.
    #[serde(default)]
    pub fidelity: TrainingFidelity,
    /// With `fidelity: fluid`, the fluid model's tick in training, in seconds (default: the
    /// decision interval, one tick per decision). A tick averages the load within it: at 15 s a
    /// surge of a few seconds, and the queue it builds, do not exist in training, which then
    /// under-prices the capacity that bursts need. 1 s sees them, as the bundled scenarios' own
    /// timelines do. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fluid_tick_s: Option<f64>,
    /// With `fidelity: fluid`, the last this many of a training's steps (its `--steps` in all) run
    /// at request fidelity: a fine-tune on what the fluid model averages away (queues filling
    /// within a second, requests dropped by a burst). Written into checkpoints only when not 0.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub request_fine_tune_steps: u64,
    /// With `fidelity: fluid`, the fluid tick of a fine-tune (`tick_fine_tune_steps`): train at
    /// the cheap tick, where smooth loads are learnt, then on what a finer tick shows (surges of
    /// a few seconds and their queues). Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_tune_fluid_tick_s: Option<f64>,
    /// The steps of that fine-tune: the last this many before any request fine-tune. Written
    /// into checkpoints only when not 0.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub tick_fine_tune_steps: u64,
    /// Environment steps between checkpoints.
    #[serde(default = "every")]
    pub checkpoint_every: u64,
    /// `weighted` (default), `cost`, `latency` or `multi`.
    #[serde(default)]
    pub reward: RewardKind,
    /// What the weighted reward's slack term measures CPU use against: `request` (default) or
    /// `limit` (for agents with the quota head, so that a raised limit costs what it leaves idle).
    /// Written into checkpoints only when not the default, so older checkpoints read unchanged.
    #[serde(default, skip_serializing_if = "is_request")]
    pub slack_basis: SlackBasis,
    /// The weighted reward's weights (`src/rl/reward.rs` defines the terms); any left out keep
    /// their defaults, `{ slo: 5, slack: 1, overshoot: 3, lag: 2, changes: 0 }`. A positive
    /// `changes` charges churn. Written into checkpoints only when not the defaults.
    #[serde(default, skip_serializing_if = "RewardWeights::is_default")]
    pub reward_weights: RewardWeights,
    /// Seconds a service's scale-downs stay masked after it scales up (the HPA's scale-down
    /// stabilisation window; 0: off). Applied in training and when the agent runs as a policy.
    /// Written into checkpoints only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub downscale_stabilization_s: f64,
    /// What that window holds back: `after_scale_up` (default; scale-downs masked for the window
    /// after a scale-up) or `recommendations` (the HPA's rule: a scale-down only as low as the
    /// highest replica count the agent recommended within the window). Written into checkpoints
    /// only when not the default.
    #[serde(default, skip_serializing_if = "is_after_scale_up")]
    pub stabilization: crate::rl::action::Stabilization,
    /// 1: one agent scales every service. N > 1: a team of N agents, agent `p` scaling service `p`
    /// (the two-agent mode of LLM prompt and token pools: `team: 2`).
    #[serde(default = "one_usize")]
    pub team: usize,
    /// Sample the server type a scale-up rents (the original design's node-type head). Off: the
    /// service's own type, as in gym-hpa.
    #[serde(default)]
    pub node_type_head: bool,
    /// Sample a CPU-quota delta in [-1, 1] (tanh-Gaussian) that resizes the chosen service's CPU
    /// limit by `quota * quota_step_cores`. Off: limits stay as the scenario sets them.
    #[serde(default)]
    pub quota_head: bool,
    /// Cores of CPU limit per unit of the quota action.
    #[serde(default = "quota_step")]
    pub quota_step_cores: f64,
    /// `scenario` (default) or `random_shapes`. Written into checkpoints only when not the default.
    #[serde(default, skip_serializing_if = "is_scenario_loads")]
    pub training_loads: TrainingLoads,
    /// With `training_loads: random_shapes`, the share of episodes (0-1) whose random shape is
    /// also switched on and off at the scale of seconds (clusters of 1-3 s, quiet gaps of up to
    /// 12 s by default: `second_scale_quiet_up_to_s`), as request traces arrive. Written into
    /// checkpoints only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub second_scale_bursts: f64,
    /// With `second_scale_bursts`, how long (seconds, 3-600) the longest quiet gap between the
    /// surges may be drawn (default 12): longer gaps make the same mean arrive in sparser, higher
    /// surges, as batched request traces do. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_scale_quiet_up_to_s: Option<u32>,
    /// `[lo, hi]`: every training episode's arrivals get gamma gaps with a coefficient of
    /// variation drawn from the range (1 is as variable as Poisson; more is burstier, and at fluid
    /// fidelity the queues wait accordingly). Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_cv: Option<[f64; 2]>,
    /// `single` (default) or `per_service`. Written into checkpoints only when not the default.
    #[serde(default, skip_serializing_if = "is_single")]
    pub action: ActionMode,
    /// Divide rewards by the running standard deviation of the discounted returns before computing
    /// advantages and value targets (the critic then learns targets of unit scale). Written into
    /// checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub normalize_returns: bool,
    /// `shared` (default) or `per_service`. Written into checkpoints only when not the default.
    #[serde(default, skip_serializing_if = "is_shared")]
    pub credit: Credit,
    /// With `credit: per_service`, the share (0-1) of each service's reward that is the team's
    /// mean rather than its own part. Written into checkpoints only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub credit_shared: f64,
    /// Linear schedules over the training's steps (its `--steps` in all): the learning rate goes
    /// from `learning_rate` to `learning_rate_end`, the entropy coefficient from `entropy_coef` to
    /// `entropy_coef_end`, each set before every update. Unset: constant. Written into checkpoints
    /// only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate_end: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy_coef_end: Option<f64>,
    /// `rollout` (default: advantages normalised over the whole rollout) or `minibatch` (within
    /// each minibatch, as many PPO implementations do). Written into checkpoints only when not the
    /// default.
    #[serde(default, skip_serializing_if = "is_rollout")]
    pub advantage_normalization: AdvantageNormalization,
    /// `additive` (default) or `multiplicative`. Written into checkpoints only when not the
    /// default.
    #[serde(default, skip_serializing_if = "is_additive")]
    pub steps: Steps,
    /// What a replica delta moves from: `current` (default) or `hpa`, the HPA formula's
    /// recommendation at 60% CPU ([`crate::rl::action::Anchor`]): a residual policy over the
    /// HPA. Needs `action: per_service`. Written into checkpoints only when not the default.
    #[serde(default, skip_serializing_if = "is_current")]
    pub anchor: crate::rl::action::Anchor,
    /// A floor under every service's replicas: the HPA formula's recommendation at this CPU
    /// target (a fraction of request, as `hpa_target` in policy configs; 1.0 = 100%). The agent
    /// adds capacity above what an HPA at that target would keep and never goes below it
    /// (a shield: a policy that learns to run lean cannot run leaner than a safe HPA). Needs
    /// `action: per_service`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_floor: Option<f64>,
    /// The floor's HPA formula counts refused visits as load: `utilisation / (1 - refused
    /// share)` ([`crate::rl::action::offered_utilization`]), so a saturated service's floor asks at
    /// once for what its arrivals need. Needs `hpa_floor`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub floor_counts_refused: bool,
    /// The floor holds its peak: each service's floor is the highest of its floors over the
    /// scale-down window ([`crate::rl::ActionConfig::floor_holds_peak`]). Needs `hpa_floor` and
    /// `downscale_stabilization_s`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub floor_holds_peak: bool,
    /// A ceiling over every service's count: the HPA formula's recommendation at this CPU
    /// target (below `hpa_floor`'s, if both are set). No delta scales above it, and after the
    /// scale-down window a count above it is lowered to it. With a floor, the agent chooses
    /// within the band of two HPAs, per service. Needs `action: per_service` and
    /// `stabilization: after_scale_up`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_ceiling: Option<f64>,
    /// The ceiling holds its peak: each service's is the highest of its counts over the
    /// scale-down window, as the HPA's own stabilisation keeps its highest recommendation
    /// ([`crate::rl::CeilingHold::Peak`]). Needs `hpa_ceiling` and
    /// `downscale_stabilization_s`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ceiling_holds_peak: bool,
    /// The ceiling holds while it is needed: a service's scale-down window restarts whenever the
    /// ceiling's recommendation reaches its current count, so the ceiling lowers it only after a
    /// whole window in which it never needed that count
    /// ([`crate::rl::CeilingHold::WhileNeeded`]). Needs `hpa_ceiling` and
    /// `downscale_stabilization_s`; not with `ceiling_holds_peak`. Written into checkpoints only
    /// when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ceiling_holds_while_needed: bool,
    /// The most replicas the ceiling lowers a service by at one decision
    /// ([`crate::rl::ActionConfig::ceiling_release_step`]; at least 1). Needs `hpa_ceiling`.
    /// Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceiling_release_step: Option<u32>,
    /// A +1 at a service's max or ceiling holds its count and renews its scale-down window
    /// ([`crate::rl::ActionConfig::renew_at_bound`]): the policy decides how long capacity at the
    /// bound is kept. Needs `action: per_service`, `downscale_stabilization_s`,
    /// `stabilization: after_scale_up`, additive steps and the current anchor, without
    /// `hpa_levels`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub renew_window_at_bound: bool,
    /// HPA levels: five CPU targets, from the leanest to the richest; each delta -2..=2 asks
    /// for the HPA formula's count at its target instead of moving the count
    /// ([`crate::rl::ActionConfig::hpa_levels`]): the agent chooses each service's headroom
    /// and every choice follows the load. Needs `action: per_service`, additive steps,
    /// `stabilization: after_scale_up` and the current anchor, and takes no floor or ceiling
    /// (the levels are the band). Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_levels: Option<[f64; 5]>,
}

fn quota_step() -> f64 {
    crate::rl::ActionConfig::default().quota_step_cores
}

fn one_usize() -> usize {
    1
}

fn one() -> u32 {
    1
}
fn lr() -> f64 {
    3e-4
}
fn gamma() -> f64 {
    0.99
}
fn lambda() -> f64 {
    0.95
}
fn clip() -> f64 {
    0.2
}
fn half() -> f64 {
    0.5
}
fn ent() -> f64 {
    0.01
}
fn epochs() -> usize {
    4
}
fn minibatch() -> usize {
    64
}
fn rollout() -> usize {
    128
}
fn envs() -> usize {
    4
}
fn interval() -> f64 {
    15.0
}
fn every() -> u64 {
    8192
}
fn is_request(s: &SlackBasis) -> bool {
    *s == SlackBasis::Request
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_single(a: &ActionMode) -> bool {
    *a == ActionMode::Single
}

fn is_after_scale_up(s: &crate::rl::action::Stabilization) -> bool {
    *s == crate::rl::action::Stabilization::AfterScaleUp
}

fn is_current(a: &crate::rl::action::Anchor) -> bool {
    *a == crate::rl::action::Anchor::Current
}

fn is_additive(s: &Steps) -> bool {
    *s == Steps::Additive
}

fn is_shared(c: &Credit) -> bool {
    *c == Credit::Shared
}

fn is_scenario_loads(l: &TrainingLoads) -> bool {
    *l == TrainingLoads::Scenario
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

fn is_rollout(a: &AdvantageNormalization) -> bool {
    *a == AdvantageNormalization::Rollout
}

/// Over which samples advantages are normalised to mean 0 and standard deviation 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageNormalization {
    #[default]
    Rollout,
    Minibatch,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let cfg = ConfigText::read(path)?;
        let c: AgentConfig = cfg.parse()?;
        c.validate().map_err(|Invalid { field, message }| match field.split_once('.') {
            Some((parent, _)) => cfg.invalid_near(parent, &field, message),
            None => cfg.invalid(&field, message),
        })?;
        Ok(c)
    }

    /// Checks every field: names among the known ones, numbers finite and in the range where
    /// training means something. The same check applies to a config read from a file and to the
    /// one stored in a checkpoint.
    pub fn validate(&self) -> Result<(), Invalid> {
        let c = self;
        let err = |field: &str, message: String| Err(Invalid { field: field.to_string(), message });
        if c.format_version != 1 {
            return err("format_version", format!("is {}; this build reads 1", c.format_version));
        }
        // (value, field, lowest allowed (inclusive unless 0), highest allowed): the upper bounds
        // are far past any useful setting and only stop values that make every weight NaN
        // (a learning rate of 1e308) or a run that cannot end.
        let ranges: [(f64, &str, f64, bool, f64); 16] = [
            (c.learning_rate, "learning_rate", 0.0, false, 1.0),
            (c.decision_interval_s, "decision_interval_s", MIN_INTERVAL_S, true, 86_400.0),
            (c.fluid_tick_s.unwrap_or(c.decision_interval_s), "fluid_tick_s", 0.1, true, c.decision_interval_s),
            (
                c.fine_tune_fluid_tick_s.unwrap_or(c.decision_interval_s),
                "fine_tune_fluid_tick_s",
                0.1,
                true,
                c.decision_interval_s,
            ),
            (c.quota_step_cores, "quota_step_cores", 0.0, false, 1_000.0),
            (c.value_coef, "value_coef", 0.0, true, 1_000.0),
            (c.entropy_coef, "entropy_coef", 0.0, true, 1_000.0),
            (c.max_grad_norm, "max_grad_norm", 0.0, false, 1e6),
            (c.gamma, "gamma", 0.0, true, 1.0),
            (c.gae_lambda, "gae_lambda", 0.0, true, 1.0),
            (c.clip, "clip", 0.0, true, 1.0),
            (c.downscale_stabilization_s, "downscale_stabilization_s", 0.0, true, 86_400.0),
            (c.second_scale_bursts, "second_scale_bursts", 0.0, true, 1.0),
            (c.credit_shared, "credit_shared", 0.0, true, 1.0),
            (c.learning_rate_end.unwrap_or(c.learning_rate), "learning_rate_end", 0.0, true, 1.0),
            (c.entropy_coef_end.unwrap_or(c.entropy_coef), "entropy_coef_end", 0.0, true, 1_000.0),
        ];
        for (v, f, lo, inclusive, hi) in ranges {
            let above = if inclusive { v >= lo } else { v > lo };
            if !(v.is_finite() && above && v <= hi) {
                let op = if inclusive { "<=" } else { "<" };
                return err(f, format!("{v} is outside {lo} {op} {f} <= {hi}"));
            }
        }
        let w = &c.reward_weights;
        for (v, f) in [
            (w.slo, "slo"),
            (w.slack, "slack"),
            (w.overshoot, "overshoot"),
            (w.lag, "lag"),
            (w.changes, "changes"),
            (w.reversals, "reversals"),
            (w.capacity, "capacity"),
        ] {
            if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
                return err(&format!("reward_weights.{f}"), format!("{v} is outside 0 <= weight <= 1000000"));
            }
        }
        // Sizes: at least one, and bounded so that a rollout's buffers fit in memory.
        for (v, f, hi) in [
            (c.epochs, "epochs", 10_000),
            (c.minibatch, "minibatch", 1 << 20),
            (c.rollout_steps, "rollout_steps", 1 << 20),
            (c.envs, "envs", 1_024),
            (c.team, "team", 1_024),
        ] {
            if !(1..=hi).contains(&v) {
                return err(f, format!("{v} is outside 1 <= {f} <= {hi}"));
            }
        }
        if c.rollout_steps * c.envs > 1 << 22 {
            return err(
                "rollout_steps",
                format!("rollout_steps x envs = {} is over 4194304 steps per update", c.rollout_steps * c.envs),
            );
        }
        if c.checkpoint_every == 0 {
            return err("checkpoint_every", "must be at least 1".into());
        }
        if let Some([lo, hi]) = c.arrival_cv {
            if !(lo.is_finite() && hi.is_finite() && (0.1..=10.0).contains(&lo) && lo <= hi && hi <= 10.0) {
                return err("arrival_cv", format!("[{lo}, {hi}] is not a range 0.1 <= lo <= hi <= 10"));
            }
        }
        if c.fluid_tick_s.is_some() && c.fidelity == TrainingFidelity::Request {
            return err("fluid_tick_s", "needs `fidelity: fluid` (request fidelity has no ticks)".into());
        }
        for (tick, field) in [(c.fluid_tick_s, "fluid_tick_s"), (c.fine_tune_fluid_tick_s, "fine_tune_fluid_tick_s")] {
            let Some(tick) = tick else { continue };
            // Every scrape (one per decision) must fall on a tick's end, in the simulator's
            // microseconds.
            let (decision, tick_us) = (SimTime::from_secs_f64(c.decision_interval_s), SimTime::from_secs_f64(tick));
            if tick_us.0 == 0 || decision.0 % tick_us.0 != 0 {
                return err(
                    field,
                    format!("{tick} s does not divide decision_interval_s ({} s)", c.decision_interval_s),
                );
            }
        }
        if c.fine_tune_fluid_tick_s.is_some() != (c.tick_fine_tune_steps > 0) {
            return err(
                "tick_fine_tune_steps",
                "and fine_tune_fluid_tick_s go together: the fine-tune's steps and its fluid tick".into(),
            );
        }
        if c.fine_tune_fluid_tick_s.is_some() && c.fidelity == TrainingFidelity::Request {
            return err("fine_tune_fluid_tick_s", "needs `fidelity: fluid` (request fidelity has no ticks)".into());
        }
        if c.request_fine_tune_steps > 0 && c.fidelity == TrainingFidelity::Request {
            return err(
                "request_fine_tune_steps",
                "needs `fidelity: fluid` (a training at request fidelity has nothing to fine-tune)".into(),
            );
        }
        if let Some(q) = c.second_scale_quiet_up_to_s {
            if c.second_scale_bursts == 0.0 {
                return err("second_scale_quiet_up_to_s", "needs `second_scale_bursts` above 0".into());
            }
            if !(3..=600).contains(&q) {
                return err(
                    "second_scale_quiet_up_to_s",
                    format!("{q} is outside 3 <= second_scale_quiet_up_to_s <= 600"),
                );
            }
        }
        if c.second_scale_bursts > 0.0 && c.training_loads != TrainingLoads::RandomShapes {
            // It modulates the random shapes; silently ignoring it would train on other loads
            // than the config says.
            return err("second_scale_bursts", "needs `training_loads: random_shapes`".into());
        }
        if c.action == ActionMode::PerService {
            // The per-service heads score replica deltas only; a node type or quota per service
            // would need heads of their own.
            for (on, f) in [(c.node_type_head, "node_type_head"), (c.quota_head, "quota_head")] {
                if on {
                    return err(f, "must be false with `action: per_service`".into());
                }
            }
            if c.team != 1 {
                return err("team", "must be 1 with `action: per_service` (one agent scales every service)".into());
            }
        }
        if c.anchor == crate::rl::action::Anchor::Hpa {
            // Every service must move each decision for the HPA's count to be followed; a
            // multiplicative step or a recommendation window would move from another count.
            if c.action != ActionMode::PerService {
                return err(
                    "anchor",
                    "`hpa` needs `action: per_service` (every service moves from its HPA count)".into(),
                );
            }
            if c.steps == Steps::Multiplicative {
                return err("anchor", "`hpa` moves from the HPA's count: it takes `steps: additive`".into());
            }
            if c.stabilization == crate::rl::action::Stabilization::Recommendations {
                return err("anchor", "`hpa` takes `stabilization: after_scale_up`".into());
            }
        }
        let per_service = c.action == ActionMode::PerService;
        if c.ceiling_holds_peak && c.ceiling_holds_while_needed {
            return err(
                "ceiling_holds_while_needed",
                "choose one hold: `ceiling_holds_peak` already holds the ceiling over the window".into(),
            );
        }
        if let Err((field, why)) = crate::rl::action::check_hpa_shields(&c.env_config().action, per_service) {
            return err(field, why);
        }
        if c.stabilization == crate::rl::action::Stabilization::Recommendations && c.downscale_stabilization_s == 0.0 {
            return err("stabilization", "`recommendations` needs a window: set `downscale_stabilization_s`".into());
        }
        if c.credit == Credit::PerService {
            if c.action != ActionMode::PerService {
                return err("credit", "`per_service` needs `action: per_service` (a decision per service)".into());
            }
            if !c.encoder.is_graph() {
                return err(
                    "credit",
                    "`per_service` needs a graph encoder (gcn or gat): its nodes give the values".into(),
                );
            }
        } else if c.credit_shared > 0.0 {
            return err("credit_shared", "needs `credit: per_service`".into());
        }
        Ok(())
    }

    /// The HPA targets of this agent's action masks, as its training environment's
    /// ([`crate::rl::ActionConfig::mask_targets`]; `hpa_target` is the observation's).
    pub fn mask_targets(&self, hpa_target: f64) -> crate::rl::action::MaskTargets {
        self.env_config().action.mask_targets(hpa_target)
    }

    pub fn env_config(&self) -> EnvConfig {
        EnvConfig {
            decision_interval: SimTime::from_secs_f64(self.decision_interval_s),
            reward: match self.reward {
                RewardKind::Cost => RewardConfig::Cost,
                RewardKind::Latency => RewardConfig::Latency,
                RewardKind::Multi => RewardConfig::Multi { lambda: 1.0 },
                RewardKind::Weighted => {
                    let w = self.reward_weights;
                    RewardConfig::Weighted {
                        slo: w.slo,
                        slack: w.slack,
                        overshoot: w.overshoot,
                        lag: w.lag,
                        changes: w.changes,
                        reversals: w.reversals,
                        capacity: w.capacity,
                        slack_basis: self.slack_basis,
                    }
                }
            },
            action: crate::rl::ActionConfig {
                node_type_head: self.node_type_head,
                quota_head: self.quota_head,
                quota_step_cores: self.quota_step_cores,
                downscale_stabilization: SimTime::from_secs_f64(self.downscale_stabilization_s),
                stabilization: self.stabilization,
                multiplicative_steps: self.steps == Steps::Multiplicative,
                anchor: self.anchor,
                hpa_floor: self.hpa_floor,
                floor_counts_refused: self.floor_counts_refused,
                floor_holds_peak: self.floor_holds_peak,
                hpa_ceiling: self.hpa_ceiling,
                ceiling_hold: match (self.ceiling_holds_peak, self.ceiling_holds_while_needed) {
                    (true, _) => crate::rl::CeilingHold::Peak,
                    (false, true) => crate::rl::CeilingHold::WhileNeeded,
                    (false, false) => crate::rl::CeilingHold::Off,
                },
                ceiling_release_step: self.ceiling_release_step,
                hpa_levels: self.hpa_levels,
                renew_at_bound: self.renew_window_at_bound,
                ..Default::default()
            },
            service_credit: (self.credit == Credit::PerService).then_some(self.credit_shared),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `action: per_service` scores deltas only, for one agent: the other heads and teams are refused
    /// by name.
    #[test]
    fn the_fluid_tick_divides_the_decision_interval_and_is_only_for_fluid_training() {
        let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\ndecision_interval_s: 15\n";
        let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
        assert_eq!(parse("fluid_tick_s: 1\n").validate(), Ok(()));
        assert_eq!(parse("fluid_tick_s: 15\n").validate(), Ok(()));
        assert_eq!(parse("fluid_tick_s: 2.5\n").validate(), Ok(()));
        for extra in
            ["fluid_tick_s: 16\n", "fluid_tick_s: 0\n", "fluid_tick_s: 4\n", "fluid_tick_s: 1\nfidelity: request\n"]
        {
            assert_eq!(parse(extra).validate().unwrap_err().field, "fluid_tick_s", "{extra}");
        }
    }

    /// The fine-tune's tick obeys the training tick's rules, and comes with its steps.
    #[test]
    fn a_tick_fine_tune_has_steps_and_a_tick_that_divides_the_decision_interval() {
        let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\ndecision_interval_s: 15\n";
        let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
        assert_eq!(parse("fine_tune_fluid_tick_s: 1\ntick_fine_tune_steps: 100\n").validate(), Ok(()));
        for (extra, field) in [
            ("fine_tune_fluid_tick_s: 4\ntick_fine_tune_steps: 100\n", "fine_tune_fluid_tick_s"),
            ("fine_tune_fluid_tick_s: 30\ntick_fine_tune_steps: 100\n", "fine_tune_fluid_tick_s"),
            ("fine_tune_fluid_tick_s: 1\ntick_fine_tune_steps: 100\nfidelity: request\n", "fine_tune_fluid_tick_s"),
            ("fine_tune_fluid_tick_s: 1\n", "tick_fine_tune_steps"),
            ("tick_fine_tune_steps: 100\n", "tick_fine_tune_steps"),
        ] {
            assert_eq!(parse(extra).validate().unwrap_err().field, field, "{extra}");
        }
    }

    /// A floor and a ceiling are CPU targets above 0 for per-service actions, the ceiling's
    /// below the floor's.
    #[test]
    fn an_hpa_floor_and_ceiling_are_positive_targets_for_per_service_actions() {
        let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\n";
        let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
        let ok = parse("action: per_service\nhpa_floor: 1.0\n");
        assert_eq!((ok.validate(), ok.env_config().action.hpa_floor), (Ok(()), Some(1.0)));
        let band = parse("action: per_service\nhpa_floor: 1.0\nhpa_ceiling: 0.4\n").env_config().action;
        assert_eq!((band.hpa_floor, band.hpa_ceiling), (Some(1.0), Some(0.4)));
        assert_eq!(parse("action: per_service\nhpa_ceiling: 0.4\n").validate(), Ok(()));
        let refused = parse("action: per_service\nhpa_floor: 1.0\nfloor_counts_refused: true\n");
        assert_eq!((refused.validate(), refused.env_config().action.floor_counts_refused), (Ok(()), true));
        let held =
            parse("action: per_service\nhpa_floor: 1.0\nfloor_holds_peak: true\ndownscale_stabilization_s: 60\n");
        assert_eq!((held.validate(), held.env_config().action.floor_holds_peak), (Ok(()), true));
        let peak =
            parse("action: per_service\nhpa_ceiling: 0.4\nceiling_holds_peak: true\ndownscale_stabilization_s: 60\n");
        assert_eq!((peak.validate(), peak.env_config().action.ceiling_hold), (Ok(()), crate::rl::CeilingHold::Peak));
        let needed = parse(
            "action: per_service\nhpa_ceiling: 0.4\nceiling_holds_while_needed: true\ndownscale_stabilization_s: 60\n",
        );
        assert_eq!(
            (needed.validate(), needed.env_config().action.ceiling_hold),
            (Ok(()), crate::rl::CeilingHold::WhileNeeded)
        );
        let renew = parse("action: per_service\nrenew_window_at_bound: true\ndownscale_stabilization_s: 300\n");
        assert_eq!((renew.validate(), renew.env_config().action.renew_at_bound), (Ok(()), true));
        for (extra, field) in [
            ("renew_window_at_bound: true\ndownscale_stabilization_s: 300\n", "renew_window_at_bound"),
            ("action: per_service\nrenew_window_at_bound: true\n", "renew_window_at_bound"),
            (
                "action: per_service\nrenew_window_at_bound: true\ndownscale_stabilization_s: 300\nsteps: multiplicative\n",
                "renew_window_at_bound",
            ),
            (
                "action: per_service\nrenew_window_at_bound: true\ndownscale_stabilization_s: 300\nanchor: hpa\n",
                "renew_window_at_bound",
            ),
            ("action: per_service\nfloor_counts_refused: true\n", "floor_counts_refused"),
            ("action: per_service\nfloor_holds_peak: true\ndownscale_stabilization_s: 60\n", "floor_holds_peak"),
            ("action: per_service\nhpa_floor: 1.0\nfloor_holds_peak: true\ndownscale_stabilization_s: 0\n", "floor_holds_peak"),
            ("action: per_service\nceiling_release_step: 2\n", "ceiling_release_step"),
            ("action: per_service\nhpa_ceiling: 0.4\nceiling_release_step: 0\n", "ceiling_release_step"),
            ("action: per_service\nceiling_holds_peak: true\ndownscale_stabilization_s: 60\n", "ceiling_holds_peak"),
            ("action: per_service\nhpa_ceiling: 0.4\nceiling_holds_peak: true\ndownscale_stabilization_s: 0\n", "ceiling_holds_peak"),
            ("action: per_service\nceiling_holds_while_needed: true\ndownscale_stabilization_s: 60\n", "ceiling_holds_while_needed"),
            (
                "action: per_service\nhpa_ceiling: 0.4\nceiling_holds_peak: true\nceiling_holds_while_needed: true\ndownscale_stabilization_s: 60\n",
                "ceiling_holds_while_needed",
            ),
            ("hpa_floor: 1.0\n", "hpa_floor"),
            ("action: per_service\nhpa_floor: 0\n", "hpa_floor"),
            ("action: per_service\nhpa_floor: -1\n", "hpa_floor"),
            ("hpa_ceiling: 0.4\n", "hpa_ceiling"),
            ("action: per_service\nhpa_ceiling: 0\n", "hpa_ceiling"),
            ("action: per_service\nhpa_ceiling: .nan\n", "hpa_ceiling"),
            ("action: per_service\nhpa_floor: 0.6\nhpa_ceiling: 0.6\n", "hpa_ceiling"),
            ("action: per_service\nhpa_floor: 0.6\nhpa_ceiling: 0.8\n", "hpa_ceiling"),
            (
                "action: per_service\nhpa_ceiling: 0.4\nstabilization: recommendations\ndownscale_stabilization_s: 60\n",
                "hpa_ceiling",
            ),
        ] {
            assert_eq!(parse(extra).validate().unwrap_err().field, field, "{extra}");
        }
    }

    /// HPA levels: five falling CPU targets, for per-service additive actions stabilised after
    /// scale-ups, moving from the current count, with no floor or ceiling.
    #[test]
    fn hpa_levels_are_five_falling_targets_for_per_service_actions() {
        let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\n";
        let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
        let ok = parse("action: per_service\nhpa_levels: [1.0, 0.8, 0.6, 0.4, 0.2]\n");
        assert_eq!((ok.validate(), ok.env_config().action.hpa_levels), (Ok(()), Some([1.0, 0.8, 0.6, 0.4, 0.2])));
        let levels = "hpa_levels: [1.0, 0.8, 0.6, 0.4, 0.2]\n";
        for extra in [
            levels.to_string(),
            "action: per_service\nhpa_levels: [1.0, 0.8, 0.8, 0.4, 0.2]\n".into(),
            "action: per_service\nhpa_levels: [0.2, 0.4, 0.6, 0.8, 1.0]\n".into(),
            "action: per_service\nhpa_levels: [1.0, 0.8, 0.6, 0.4, 0]\n".into(),
            format!("action: per_service\nsteps: multiplicative\n{levels}"),
            format!("action: per_service\nanchor: hpa\n{levels}"),
            format!("action: per_service\nstabilization: recommendations\ndownscale_stabilization_s: 60\n{levels}"),
            format!("action: per_service\nhpa_floor: 1.0\n{levels}"),
        ] {
            assert_eq!(parse(&extra).validate().unwrap_err().field, "hpa_levels", "{extra}");
        }
        // Four targets are not five: refused when read.
        let four = serde_yaml_ng::from_str::<AgentConfig>(&format!("{base}hpa_levels: [1.0, 0.8, 0.6, 0.4]\n"));
        assert!(four.is_err());
    }

    #[test]
    fn the_hpa_anchor_needs_per_service_additive_steps_stabilised_after_scale_ups() {
        let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\nanchor: hpa\n";
        let ok: AgentConfig = serde_yaml_ng::from_str(&format!("{base}action: per_service\n")).unwrap();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.env_config().action.anchor, crate::rl::action::Anchor::Hpa);
        for extra in [
            "",
            "action: per_service\nsteps: multiplicative\n",
            "action: per_service\nstabilization: recommendations\ndownscale_stabilization_s: 60\n",
        ] {
            let c: AgentConfig = serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap();
            assert_eq!(c.validate().unwrap_err().field, "anchor", "{extra}");
        }
    }

    #[test]
    fn per_service_refuses_the_heads_it_has_not() {
        let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\naction: per_service\n";
        let ok: AgentConfig = serde_yaml_ng::from_str(base).unwrap();
        assert_eq!(ok.validate(), Ok(()));
        for (extra, field) in
            [("quota_head: true", "quota_head"), ("node_type_head: true", "node_type_head"), ("team: 2", "team")]
        {
            let c: AgentConfig = serde_yaml_ng::from_str(&format!("{base}{extra}\n")).unwrap();
            assert_eq!(c.validate().unwrap_err().field, field);
        }
    }

    /// `second_scale_quiet_up_to_s` shapes the second-scale bursts: without them, or outside
    /// 3-600 s, it is refused by name.
    #[test]
    fn second_scale_quiet_needs_the_bursts_and_a_range() {
        let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\ntraining_loads: random_shapes\n";
        let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
        assert_eq!(parse("second_scale_bursts: 0.5\nsecond_scale_quiet_up_to_s: 40\n").validate(), Ok(()));
        for extra in [
            "second_scale_quiet_up_to_s: 40\n",
            "second_scale_bursts: 0.5\nsecond_scale_quiet_up_to_s: 2\n",
            "second_scale_bursts: 0.5\nsecond_scale_quiet_up_to_s: 601\n",
        ] {
            assert_eq!(parse(extra).validate().unwrap_err().field, "second_scale_quiet_up_to_s", "{extra}");
        }
    }

    /// `second_scale_bursts` is a share, and modulates random shapes only: set without them, or
    /// outside 0-1, it is refused by name.
    #[test]
    fn second_scale_bursts_needs_random_shapes_and_a_share() {
        let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\n";
        let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
        assert_eq!(parse("training_loads: random_shapes\nsecond_scale_bursts: 0.5\n").validate(), Ok(()));
        for extra in ["second_scale_bursts: 0.5\n", "training_loads: random_shapes\nsecond_scale_bursts: 1.5\n"] {
            assert_eq!(parse(extra).validate().unwrap_err().field, "second_scale_bursts", "{extra}");
        }
    }

    /// `credit: per_service` needs per-service decisions and a graph encoder; `credit_shared` needs
    /// it and is a share: each refused by name. The share reaches the environment.
    #[test]
    fn per_service_credit_needs_per_service_graph_decisions() {
        let parse =
            |text: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("format_version: 1\n{text}")).unwrap() };
        let ok = parse("encoder: gat\nalgorithm: ppo\naction: per_service\ncredit: per_service\ncredit_shared: 0.25\n");
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.env_config().service_credit, Some(0.25));
        assert_eq!(parse("encoder: gat\nalgorithm: ppo\n").env_config().service_credit, None);
        // (And `steps` reaches the action executor the same way.)
        assert!(
            parse("encoder: gat\nalgorithm: ppo\nsteps: multiplicative\n").env_config().action.multiplicative_steps
        );
        assert!(!ok.env_config().action.multiplicative_steps);
        for (text, field) in [
            ("encoder: gat\nalgorithm: ppo\ncredit: per_service\n", "credit"),
            ("encoder: mlp\nalgorithm: ppo\naction: per_service\ncredit: per_service\n", "credit"),
            ("encoder: gat\nalgorithm: ppo\naction: per_service\ncredit_shared: 0.5\n", "credit_shared"),
            (
                "encoder: gat\nalgorithm: ppo\naction: per_service\ncredit: per_service\ncredit_shared: 2\n",
                "credit_shared",
            ),
        ] {
            assert_eq!(parse(text).validate().unwrap_err().field, field, "{text}");
        }
    }

    /// Weights left out keep their defaults; those given reach the environment's reward.
    #[test]
    fn reward_weights_reach_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        let base = "format_version: 1\nencoder: mlp\nalgorithm: ppo\n";
        std::fs::write(
            &path,
            format!("{base}reward_weights: {{ slack: 2, changes: 0.5, reversals: 0.25, capacity: 12 }}\n"),
        )
        .unwrap();
        let reward = AgentConfig::load(&path).unwrap().env_config().reward;
        let want = RewardConfig::Weighted {
            slo: 5.0,
            slack: 2.0,
            overshoot: 3.0,
            lag: 2.0,
            changes: 0.5,
            reversals: 0.25,
            capacity: 12.0,
            slack_basis: SlackBasis::Request,
        };
        assert_eq!(reward, want);
        std::fs::write(&path, base).unwrap();
        assert_eq!(AgentConfig::load(&path).unwrap().env_config().reward, RewardConfig::default());
    }
}
