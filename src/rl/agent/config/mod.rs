//! An agent's hyper-parameters (`configs/agents/*.yaml`): what the file may say and its defaults
//! (here; the kinds it chooses among in `kinds.rs`), its validation (`validate.rs`), and the
//! environment configuration it implies. Knows nothing of networks.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::SimTime;
use crate::rl::{EnvConfig, RewardConfig, SlackBasis};
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

mod kinds;
#[cfg(test)]
mod tests;
mod validate;

pub use kinds::*;

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
    /// `[lo, hi]`: every training episode's rates are multiplied by a factor drawn uniformly from
    /// the range (default `[0.8, 1.2]`), before a random shape takes the scaled mean. Written
    /// into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_scale: Option<[f64; 2]>,
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
    /// PPO stops an update's epochs early once an epoch's mean approximate KL divergence from the
    /// rollout's policy is above this (as CleanRL's `target_kl`): a bound on how far one rollout
    /// moves the policy, where the clip alone bounds each sample's ratio but not how many of them
    /// move. The first epoch always runs. Unset: every epoch runs. Written into checkpoints only
    /// when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kl: Option<f64>,
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
    /// The floor reads this-many seconds of the metrics window (the busiest, or the latest with
    /// `floor_peak_reads`), not its mean ([`crate::rl::ActionConfig::floor_peak_s`]). Needs
    /// `hpa_floor`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_peak_s: Option<f64>,
    /// Which span of `floor_peak_s` seconds the floor reads: `busiest` (default) or `latest`
    /// ([`crate::rl::PeakSpan`]). Needs `floor_peak_s`. Written into checkpoints only when not
    /// the default.
    #[serde(default, skip_serializing_if = "is_busiest")]
    pub floor_peak_reads: crate::rl::PeakSpan,
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
    /// The renewal only while the load backs the count: the ceiling's recommendation reaches
    /// the current count ([`crate::rl::ActionConfig::renew_only_while_needed`]). Needs
    /// `renew_window_at_bound` and `hpa_ceiling`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub renew_only_while_needed: bool,
    /// HPA levels: five CPU targets, from the leanest to the richest; each delta -2..=2 asks
    /// for the HPA formula's count at its target instead of moving the count
    /// ([`crate::rl::ActionConfig::hpa_levels`]): the agent chooses each service's headroom
    /// and every choice follows the load. Needs `action: per_service`, additive steps,
    /// `stabilization: after_scale_up` and the current anchor, and takes no floor or ceiling
    /// (the levels are the band). Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_levels: Option<[f64; 5]>,
    /// The observation's HPA-formula feature counts for each service's load forecast this many
    /// seconds ahead along its last minute's trend ([`crate::rl::load_trend`]), not for the
    /// current load. Absent: the current load's. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_forecast_s: Option<f64>,
    /// The observation's feature 11 is each service's HPA-formula count for its busiest this-many
    /// seconds of arrivals over the view's last 120 s ([`crate::rl::observation::BURST_COUNT`]),
    /// not its CPU limit over the SKU's cores: a memory of recent bursts. Refused with
    /// `quota_head` (the limit it replaces is what a quota moves). Absent: the limit. Written into
    /// checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_count_s: Option<f64>,
    /// The floor counts for the load forecast `load_forecast_s` ahead when it is above the
    /// current load ([`crate::rl::ActionConfig::floor_forecast_s`]). Needs `load_forecast_s` and
    /// `hpa_floor`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub floor_reads_forecast: bool,
    /// The ceiling counts for the load forecast `load_forecast_s` ahead when it is above the
    /// current load ([`crate::rl::ActionConfig::ceiling_forecast_s`]): no replica a rising load
    /// will need is given back. Needs `load_forecast_s` and `hpa_ceiling`. Written into
    /// checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ceiling_reads_forecast: bool,
    /// A fast floor: between decisions, every this-many seconds (a divisor of
    /// `decision_interval_s`), each service below what its latest arrivals need at `hpa_floor`'s
    /// target is raised to that count ([`crate::rl::ActionConfig::fast_floor`]), as Knative's
    /// panic mode answers a step within seconds. Needs `hpa_floor`. Written into checkpoints
    /// only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_floor_every_s: Option<f64>,
    /// The seconds of latest arrivals the fast floor reads (default 6, Knative's panic window).
    /// Needs `fast_floor_every_s`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_floor_reads_s: Option<f64>,
    /// The fast floor raises a service only when its count is at least this many times the
    /// current one (default 1: whenever it is above; Knative panics at 2 on its own target).
    /// Needs `fast_floor_every_s`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_floor_panic_ratio: Option<f64>,
    /// The fast floor's raises leave the scale-down window as it was, rather than restarting it
    /// as other scale-ups do: the policy and the ceiling may give them back at the next decision.
    /// Needs `fast_floor_every_s`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fast_floor_leaves_window: bool,
    /// The fast floor acts only where the agent is deployed (`scalesim eval`, `--policy
    /// agent:`), not in its training: the policy learns without it and keeps its own headroom.
    /// Needs `fast_floor_every_s`. Written into checkpoints only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fast_floor_deployed_only: bool,
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

fn is_busiest(s: &crate::rl::PeakSpan) -> bool {
    *s == crate::rl::PeakSpan::Busiest
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

    /// The HPA targets of this agent's action masks, as its training environment's
    /// ([`crate::rl::ActionConfig::mask_targets`]; `hpa_target` is the observation's).
    pub fn mask_targets(&self, hpa_target: f64) -> crate::rl::action::MaskTargets {
        self.env_config().action.mask_targets(hpa_target)
    }

    /// The fast floor of this agent where it is deployed (its training's too, unless
    /// `fast_floor_deployed_only`).
    pub fn deployed_fast_floor(&self) -> Option<crate::rl::action::FastFloor> {
        self.fast_floor_every_s.map(|every| {
            let (reads, ratio) = (self.fast_floor_reads_s, self.fast_floor_panic_ratio);
            crate::rl::action::FastFloor::from_settings(every, reads, ratio, self.fast_floor_leaves_window)
        })
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
                floor_peak_s: self.floor_peak_s,
                floor_peak_reads: self.floor_peak_reads,
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
                renew_only_while_needed: self.renew_only_while_needed,
                floor_forecast_s: self.load_forecast_s.filter(|_| self.floor_reads_forecast),
                ceiling_forecast_s: self.load_forecast_s.filter(|_| self.ceiling_reads_forecast),
                fast_floor: self.deployed_fast_floor().filter(|_| !self.fast_floor_deployed_only),
                ..Default::default()
            },
            service_credit: (self.credit == Credit::PerService).then_some(self.credit_shared),
            load_forecast_s: self.load_forecast_s,
            burst_count_s: self.burst_count_s,
            ..Default::default()
        }
    }
}
