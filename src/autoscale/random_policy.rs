//! The `random` policy: a uniform random agent, the baseline an RL agent must beat before it has
//! learnt anything. At each decision every service moves by a delta drawn uniformly from
//! -2..=2 (the per-service agents' action), held within its min and max. Its draws come from the
//! run's seed (stream `policy:random`), so a run is as reproducible as any other.

use rand::Rng;

use super::{Autoscaler, ScaleDecision};
use crate::engine::{RngStreams, SimRng, SimTime};
use crate::metrics::ClusterView;

/// The deltas a service draws from, uniformly.
const DELTAS: std::ops::RangeInclusive<i64> = -2..=2;

#[derive(Clone, Debug)]
pub struct RandomPolicy {
    rng: SimRng,
}

impl RandomPolicy {
    /// A random policy drawing from `seed`'s stream (the run's seed: [`Autoscaler::set_seed`]
    /// resets it when the run's seed is not the scenario's).
    pub fn new(seed: u64) -> Self {
        RandomPolicy { rng: Self::stream(seed) }
    }

    fn stream(seed: u64) -> SimRng {
        RngStreams::new(seed).stream("policy:random")
    }
}

impl Autoscaler for RandomPolicy {
    fn name(&self) -> String {
        "random".into()
    }

    /// As often as the agents decide (`decision_interval_s: 15`).
    fn period(&self) -> SimTime {
        SimTime::from_secs(15)
    }

    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        for (service, sv) in view.services.iter().enumerate() {
            // One draw per service and decision, whether or not it moves, so a service's draws
            // do not depend on the others' bounds.
            let delta = self.rng.gen_range(DELTAS);
            let current = (sv.counts.active + sv.counts.starting) as i64;
            let desired = (current + delta).clamp(sv.min_replicas as i64, sv.max_replicas as i64);
            if desired != current {
                let reason = format!("uniform random delta {delta:+} from {current}");
                out.push(ScaleDecision::replicas(service, desired as u32, reason));
            }
        }
    }

    fn set_seed(&mut self, seed: u64) {
        self.rng = Self::stream(seed);
    }
}
