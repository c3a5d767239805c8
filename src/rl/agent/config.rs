//! An agent's hyper-parameters (`configs/agents/*.yaml`): what the file may say, its defaults, its
//! validation, and the environment configuration it implies. Knows nothing of networks.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::SimTime;
use crate::rl::{reward, EnvConfig, RewardConfig, SlackBasis};
use crate::scenario::{ConfigError, ConfigText};

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
}

impl Default for RewardWeights {
    fn default() -> Self {
        RewardWeights { slo: w_slo(), slack: w_slack(), overshoot: w_overshoot(), lag: w_lag(), changes: 0.0 }
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
    /// `mlp` (this build's encoder).
    pub encoder: String,
    /// `ppo` or `a2c`.
    pub algorithm: String,
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
    #[serde(default = "fluid")]
    pub fidelity: String,
    /// Environment steps between checkpoints.
    #[serde(default = "every")]
    pub checkpoint_every: u64,
    /// `weighted` (default), `cost`, `latency` or `multi`.
    #[serde(default = "weighted")]
    pub reward: String,
    /// What the weighted reward's slack term measures CPU use against: `request` (default) or
    /// `limit` (for agents with the quota head, so that a raised limit costs what it leaves idle).
    /// Written into checkpoints only when not the default, so older checkpoints read unchanged.
    #[serde(default = "request", skip_serializing_if = "is_request")]
    pub slack_basis: String,
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
fn fluid() -> String {
    "fluid".into()
}
fn every() -> u64 {
    8192
}
fn weighted() -> String {
    "weighted".into()
}
fn request() -> String {
    "request".into()
}
fn is_request(s: &str) -> bool {
    s == "request"
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let cfg = ConfigText::read(path)?;
        let c: AgentConfig = cfg.parse()?;
        let err = |field: &str, message: String| cfg.invalid(field, message);
        if c.format_version != 1 {
            return Err(err("format_version", format!("is {}; this build reads 1", c.format_version)));
        }
        if !matches!(c.encoder.as_str(), "mlp" | "gcn" | "gat") {
            return Err(err("encoder", format!("`{}`: expected mlp, gcn or gat", c.encoder)));
        }
        if !matches!(c.algorithm.as_str(), "ppo" | "a2c") {
            return Err(err("algorithm", format!("`{}`: expected ppo or a2c", c.algorithm)));
        }
        if !matches!(c.fidelity.as_str(), "fluid" | "request") {
            return Err(err("fidelity", format!("`{}`: expected fluid or request", c.fidelity)));
        }
        if !matches!(c.reward.as_str(), "weighted" | "cost" | "latency" | "multi") {
            return Err(err("reward", format!("`{}`: expected weighted, cost, latency or multi", c.reward)));
        }
        if !matches!(c.slack_basis.as_str(), "request" | "limit") {
            return Err(err("slack_basis", format!("`{}`: expected request or limit", c.slack_basis)));
        }
        for (v, f) in [
            (c.learning_rate, "learning_rate"),
            (c.decision_interval_s, "decision_interval_s"),
            (c.quota_step_cores, "quota_step_cores"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(err(f, format!("{v} must be > 0")));
            }
        }
        let w = &c.reward_weights;
        for (v, f) in
            [(w.slo, "slo"), (w.slack, "slack"), (w.overshoot, "overshoot"), (w.lag, "lag"), (w.changes, "changes")]
        {
            if !(v.is_finite() && v >= 0.0) {
                let field = format!("reward_weights.{f}");
                return Err(cfg.invalid_near("reward_weights", &field, format!("{v} must be >= 0")));
            }
        }
        if !(c.downscale_stabilization_s.is_finite() && c.downscale_stabilization_s >= 0.0) {
            let v = c.downscale_stabilization_s;
            return Err(err("downscale_stabilization_s", format!("{v} must be >= 0")));
        }
        for (v, f) in [(c.gamma, "gamma"), (c.gae_lambda, "gae_lambda"), (c.clip, "clip")] {
            if !(0.0..=1.0).contains(&v) {
                return Err(err(f, format!("{v} is outside [0, 1]")));
            }
        }
        for (v, f) in
            [(c.epochs, "epochs"), (c.minibatch, "minibatch"), (c.rollout_steps, "rollout_steps"), (c.envs, "envs")]
        {
            if v == 0 {
                return Err(err(f, "must be at least 1".into()));
            }
        }
        Ok(c)
    }

    pub fn env_config(&self) -> EnvConfig {
        EnvConfig {
            decision_interval: SimTime::from_secs_f64(self.decision_interval_s),
            reward: match self.reward.as_str() {
                "cost" => RewardConfig::Cost,
                "latency" => RewardConfig::Latency,
                "multi" => RewardConfig::Multi { lambda: 1.0 },
                _ => {
                    let w = self.reward_weights;
                    RewardConfig::Weighted {
                        slo: w.slo,
                        slack: w.slack,
                        overshoot: w.overshoot,
                        lag: w.lag,
                        changes: w.changes,
                        slack_basis: match self.slack_basis.as_str() {
                            "limit" => SlackBasis::Limit,
                            _ => SlackBasis::Request,
                        },
                    }
                }
            },
            action: crate::rl::ActionConfig {
                node_type_head: self.node_type_head,
                quota_head: self.quota_head,
                quota_step_cores: self.quota_step_cores,
                downscale_stabilization: SimTime::from_secs_f64(self.downscale_stabilization_s),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights left out keep their defaults; those given reach the environment's reward.
    #[test]
    fn reward_weights_reach_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        let base = "format_version: 1\nencoder: mlp\nalgorithm: ppo\n";
        std::fs::write(&path, format!("{base}reward_weights: {{ slack: 2, changes: 0.5 }}\n")).unwrap();
        let reward = AgentConfig::load(&path).unwrap().env_config().reward;
        let want = RewardConfig::Weighted {
            slo: 5.0,
            slack: 2.0,
            overshoot: 3.0,
            lag: 2.0,
            changes: 0.5,
            slack_basis: SlackBasis::Request,
        };
        assert_eq!(reward, want);
        std::fs::write(&path, base).unwrap();
        assert_eq!(AgentConfig::load(&path).unwrap().env_config().reward, RewardConfig::default());
    }
}
