//! Policies by name: the composition root turns a `--policy` name (and an optional config file)
//! into an [`Autoscaler`]. Here, not in `autoscale/`, because an `agent:` policy is a trained RL
//! agent: `autoscale/` must not know `rl/`.

use std::path::Path;

use crate::autoscale::{Autoscaler, HpaPolicy, KpaConfig, KpaPolicy, StaticPolicy, TargetConfig, TargetTrackingPolicy};
use crate::scenario::{ConfigError, Scenario};

/// A policy name or config the CLI could not turn into a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown policy `{name}`; known policies: {known}")]
    Unknown { name: String, known: String },
    #[error("policy `{name}` takes no configuration file (got {file})")]
    NoConfig { name: String, file: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] crate::rl::agent::checkpoint::CheckpointError),
}

/// Names `--policy` accepts.
pub const POLICY_NAMES: &[&str] = &["static", "hpa", "kpa", "target", "agent:CHECKPOINT"];

/// Builds a policy from its CLI name and optional configuration file, for `scenario` (whose
/// services the configuration may name).
pub fn build_policy(
    name: &str,
    config: Option<&Path>,
    scenario: &Scenario,
) -> Result<Box<dyn Autoscaler>, PolicyError> {
    if let Some(path) = name.strip_prefix("agent:") {
        return Ok(Box::new(crate::rl::agent::policy::AgentPolicy::load(Path::new(path), scenario)?));
    }
    match name {
        "hpa" => {
            let cfg = match config {
                Some(f) => crate::autoscale::hpa::spec::load_config(f, scenario)?,
                None => crate::autoscale::hpa::spec::default_config(scenario, 60),
            };
            Ok(Box::new(HpaPolicy::new(cfg)))
        }
        "kpa" => {
            let cfg = match config {
                Some(f) => KpaConfig::load(f, scenario)?,
                None => KpaConfig::defaults(scenario),
            };
            Ok(Box::new(KpaPolicy::new(cfg)))
        }
        "target" => {
            let cfg = match config {
                Some(f) => TargetConfig::load(f, scenario)?,
                None => TargetConfig::defaults(scenario),
            };
            Ok(Box::new(TargetTrackingPolicy::new(cfg)))
        }
        "static" => {
            if let Some(f) = config {
                return Err(PolicyError::NoConfig { name: name.into(), file: f.display().to_string() });
            }
            Ok(Box::new(StaticPolicy))
        }
        _ => Err(PolicyError::Unknown { name: name.into(), known: POLICY_NAMES.join(", ") }),
    }
}
