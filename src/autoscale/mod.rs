//! Policies: the [`Autoscaler`] trait, the periodic decision tick, and the classic policies.
//!
//! A policy sees only a [`ClusterView`], what a real controller could see (metrics-server CPU,
//! service-mesh RPS and latency, replica counts), never simulator internals. It answers with
//! desired replica counts; the simulator applies them through the `ScalingManager`.

pub mod hpa;
pub mod kpa;
mod random_policy;
mod static_policy;
pub mod target;

pub use hpa::HpaPolicy;
pub use kpa::{KpaConfig, KpaPolicy};
pub use random_policy::RandomPolicy;
pub use static_policy::StaticPolicy;
pub use target::{TargetConfig, TargetTrackingPolicy};

use crate::scenario::{ConfigError, ConfigText, Scenario};

use crate::engine::SimTime;
use crate::metrics::ClusterView;

/// One policy decision: the replica count wanted for a service, and why; optionally the server
/// type new replicas rent and a new CPU limit (an RL agent's node-type and quota heads).
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleDecision {
    pub service: usize,
    pub desired: u32,
    /// Written to `actions.csv`: the metric values and the rule that decided.
    pub reason: String,
    /// The SKU a scale-up rents (`None`: the service's own).
    pub sku: Option<usize>,
    /// Resize the service's CPU limit in place to this many cores (clamped to the request and the
    /// SKU's cores) before any replica change.
    pub cpu_limit: Option<f64>,
}

/// A CPU limit resized by a decision, cores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuResize {
    pub before: f64,
    pub after: f64,
}

impl CpuResize {
    /// The decision's reason with the resize appended, as `actions.csv` records it.
    pub fn annotate(reason: &str, resize: Option<CpuResize>) -> String {
        match resize {
            Some(r) => format!("{reason}; {r}"),
            None => reason.to_string(),
        }
    }
}

/// `cpu limit 500m -> 600m`: millicores, Kubernetes' unit (integer formatting is also a fraction
/// of the cost of float formatting, and the RL environment reports a resize at every step).
impl std::fmt::Display for CpuResize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let milli = |c: f64| (c * 1000.0).round() as i64;
        write!(f, "cpu limit {}m -> {}m", milli(self.before), milli(self.after))
    }
}

impl ScaleDecision {
    /// A replica count only, as the HPA, KPA and target-tracking policies decide.
    pub fn replicas(service: usize, desired: u32, reason: String) -> ScaleDecision {
        ScaleDecision { service, desired, reason, sku: None, cpu_limit: None }
    }
}

/// A scaling policy, called every [`Autoscaler::period`] of simulated time.
pub trait Autoscaler: Send {
    /// Short name used in run folders and summaries, e.g. `static`, `hpa`.
    fn name(&self) -> String;
    /// Time between decisions (the controller's sync period).
    fn period(&self) -> SimTime;
    /// Pushes zero or more decisions into `out` (cleared by the caller).
    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>);

    /// A policy that never decides anything (the simulator then skips its decision ticks and the
    /// views they would build).
    fn is_passive(&self) -> bool {
        false
    }

    /// The run's seed, before the first decision. A policy that draws random numbers (`random`)
    /// takes its stream from it; the others ignore it.
    fn set_seed(&mut self, _seed: u64) {}
}

/// Per-service `(min, max)` replicas of a policy config: its own bounds, else the scenario's, for
/// the services it names (all when it names none); `None` for the services it leaves alone.
/// `fields` names the config's min and max keys in errors.
pub(crate) fn service_bounds(
    cfg: &ConfigText,
    scenario: &Scenario,
    min: Option<u32>,
    max: Option<u32>,
    names: Option<&[String]>,
    fields: (&str, &str),
) -> Result<Vec<Option<(u32, u32)>>, ConfigError> {
    if let Some(names) = names {
        for n in names {
            if scenario.app.service_index(n).is_none() {
                return Err(cfg.invalid(n, format!("`{n}` is not a service of scenario `{}`", scenario.name)));
            }
        }
    }
    let mut out = Vec::new();
    for s in &scenario.app.services {
        let (lo, hi) = (min.unwrap_or(s.min_replicas), max.unwrap_or(s.max_replicas));
        if lo > hi || hi == 0 {
            return Err(
                cfg.invalid(fields.0, format!("{} {lo} and {} {hi} need min <= max and max >= 1", fields.0, fields.1))
            );
        }
        out.push(names.is_none_or(|n| n.contains(&s.name)).then_some((lo, hi)));
    }
    Ok(out)
}
