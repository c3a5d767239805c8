//! The `static` policy: keeps the scenario's initial replicas; never acts.

use super::{Autoscaler, ScaleDecision};
use crate::engine::SimTime;
use crate::metrics::ClusterView;

#[derive(Clone, Copy, Debug, Default)]
pub struct StaticPolicy;

impl Autoscaler for StaticPolicy {
    fn name(&self) -> String {
        "static".into()
    }

    fn period(&self) -> SimTime {
        SimTime::from_secs(15)
    }

    fn decide(&mut self, _view: &ClusterView, _out: &mut Vec<ScaleDecision>) {}

    fn is_passive(&self) -> bool {
        true
    }
}
