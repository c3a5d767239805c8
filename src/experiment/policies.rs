//! Policies by name: the composition root turns a `--policy` name (and an optional config file)
//! into an [`Autoscaler`]. Here, not in `autoscale/`, because an `agent:` policy is a trained RL
//! agent: `autoscale/` must not know `rl/`.

use std::path::{Path, PathBuf};

use crate::autoscale::{
    Autoscaler, HpaPolicy, KpaConfig, KpaPolicy, RandomPolicy, StaticPolicy, TargetConfig, TargetTrackingPolicy,
};
use crate::scenario::{ConfigError, Scenario};

/// A policy name or config the CLI could not turn into a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown policy `{name}`; known policies: {known}")]
    Unknown { name: String, known: String },
    #[error("policy `{name}` takes no configuration file (got {file})")]
    NoConfig { name: String, file: String },
    #[error("policy `{name}` needs a configuration file: {what}")]
    NeedsConfig { name: String, what: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] crate::rl::agent::checkpoint::CheckpointError),
}

/// Names `--policy` accepts.
pub const POLICY_NAMES: &[&str] = &["static", "random", "hpa", "kpa", "target", "agent:CHECKPOINT", "shields"];

/// A policy as chosen by name (`--policy`, a sweep's `policy:`): resolved once, matched as a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyChoice {
    Static,
    /// A uniform random agent (a baseline).
    Random,
    Hpa,
    Kpa,
    Target,
    /// A trained agent, by its checkpoint file.
    Agent(PathBuf),
    /// An agent config's shields with every delta 0 (the config is the policy's config file).
    Shields,
}

impl PolicyChoice {
    /// Parses a policy name: one of [`POLICY_NAMES`], `agent:` followed by a checkpoint path.
    pub fn parse(name: &str) -> Result<PolicyChoice, PolicyError> {
        if let Some(path) = name.strip_prefix("agent:") {
            return Ok(PolicyChoice::Agent(PathBuf::from(path)));
        }
        Ok(match name {
            "static" => PolicyChoice::Static,
            "random" => PolicyChoice::Random,
            "hpa" => PolicyChoice::Hpa,
            "kpa" => PolicyChoice::Kpa,
            "target" => PolicyChoice::Target,
            "shields" => PolicyChoice::Shields,
            _ => return Err(PolicyError::Unknown { name: name.into(), known: POLICY_NAMES.join(", ") }),
        })
    }

    /// Builds the policy with its optional configuration file, for `scenario` (whose services the
    /// configuration may name).
    pub fn build(&self, config: Option<&Path>, scenario: &Scenario) -> Result<Box<dyn Autoscaler>, PolicyError> {
        match self {
            PolicyChoice::Agent(path) => Ok(Box::new(crate::rl::agent::policy::AgentPolicy::load(path, scenario)?)),
            PolicyChoice::Shields => {
                let Some(f) = config else {
                    let what = "an agent config whose shields it runs (`--policy-config configs/agents/gat_ppo.yaml`)";
                    return Err(PolicyError::NeedsConfig { name: self.to_string(), what: what.into() });
                };
                Ok(Box::new(crate::rl::agent::policy::AgentPolicy::shields(f, scenario)?))
            }
            PolicyChoice::Hpa => {
                let cfg = match config {
                    Some(f) => crate::autoscale::hpa::spec::load_config(f, scenario)?,
                    None => crate::autoscale::hpa::spec::default_config(scenario, 60),
                };
                Ok(Box::new(HpaPolicy::new(cfg)))
            }
            PolicyChoice::Kpa => {
                let cfg = match config {
                    Some(f) => KpaConfig::load(f, scenario)?,
                    None => KpaConfig::defaults(scenario),
                };
                Ok(Box::new(KpaPolicy::new(cfg)))
            }
            PolicyChoice::Target => {
                let cfg = match config {
                    Some(f) => TargetConfig::load(f, scenario)?,
                    None => TargetConfig::defaults(scenario),
                };
                Ok(Box::new(TargetTrackingPolicy::new(cfg)))
            }
            PolicyChoice::Static | PolicyChoice::Random => {
                if let Some(f) = config {
                    return Err(PolicyError::NoConfig { name: self.to_string(), file: f.display().to_string() });
                }
                Ok(match self {
                    // The scenario's seed until the run sets its own (Autoscaler::set_seed).
                    PolicyChoice::Random => Box::new(RandomPolicy::new(scenario.seed)),
                    _ => Box::new(StaticPolicy),
                })
            }
        }
    }
}

impl std::str::FromStr for PolicyChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PolicyChoice::parse(s).map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for PolicyChoice {
    /// The name as the CLI takes it (`agent:` and the checkpoint's path for an agent).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyChoice::Static => f.write_str("static"),
            PolicyChoice::Random => f.write_str("random"),
            PolicyChoice::Hpa => f.write_str("hpa"),
            PolicyChoice::Kpa => f.write_str("kpa"),
            PolicyChoice::Target => f.write_str("target"),
            PolicyChoice::Shields => f.write_str("shields"),
            PolicyChoice::Agent(p) => write!(f, "agent:{}", p.display()),
        }
    }
}

/// Builds a policy from its name and optional configuration file: [`PolicyChoice::parse`], then
/// [`PolicyChoice::build`].
pub fn build_policy(
    name: &str,
    config: Option<&Path>,
    scenario: &Scenario,
) -> Result<Box<dyn Autoscaler>, PolicyError> {
    PolicyChoice::parse(name)?.build(config, scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names parse to their choice and print back as typed; an unknown name lists the known ones.
    #[test]
    fn policy_names_round_trip() {
        for name in ["static", "random", "hpa", "kpa", "target", "agent:runs/gat/checkpoint.ckpt"] {
            assert_eq!(PolicyChoice::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(PolicyChoice::parse("agent:x.ckpt").unwrap(), PolicyChoice::Agent(PathBuf::from("x.ckpt")));
        let e = PolicyChoice::parse("hpx").unwrap_err().to_string();
        assert!(e.contains("unknown policy `hpx`") && e.contains("agent:CHECKPOINT"), "{e}");
    }
}
