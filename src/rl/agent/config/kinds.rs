//! The kinds an agent config chooses among (encoder, algorithm, fidelity, loads, action, steps,
//! credit, reward and its weights, advantage normalisation): their names in YAML and their
//! defaults. Knows nothing of validation or of the environment they configure.

use serde::{Deserialize, Serialize};

use crate::rl::reward;

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
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub reversals: f64,
    /// The price of a replica-hour (`src/rl/reward.rs`: the trade-off it sets). Written into
    /// checkpoints only when set, so older checkpoints read unchanged.
    #[serde(default, skip_serializing_if = "super::is_zero")]
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
    pub(super) fn is_default(&self) -> bool {
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

/// Over which samples advantages are normalised to mean 0 and standard deviation 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageNormalization {
    #[default]
    Rollout,
    Minibatch,
}
