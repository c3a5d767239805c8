//! A trained agent as a policy (`--policy agent:FILE`, `scalesim eval`): it observes the controller's
//! view through the same state collector it trained with and acts greedily.

use std::path::Path;

use super::checkpoint::{Checkpoint, CheckpointError};
use super::nn::{MAX_SERVICES, OBS_MAX};
use super::ppo::{decode_action, Agent};
use crate::app::AppSpec;
use crate::autoscale::{Autoscaler, ScaleDecision};
use crate::cluster::ClusterSpec;
use crate::engine::SimTime;
use crate::metrics::ClusterView;
use crate::rl::observation::{collect, ObservationLayout};
use crate::rl::{Action, ActionMask};
use crate::scenario::Scenario;

pub struct AgentPolicy {
    agent: Agent,
    layout: ObservationLayout,
    app: AppSpec,
    cluster: ClusterSpec,
    slo_ms: f64,
    period: SimTime,
}

impl AgentPolicy {
    pub fn load(path: &Path, scenario: &Scenario) -> Result<AgentPolicy, CheckpointError> {
        let ck = Checkpoint::load(path)?;
        let layout = ObservationLayout::new(&scenario.app, &scenario.workload.mix, 0.6, scenario.cluster.skus.len());
        let fail = |m: String| CheckpointError { file: path.display().to_string(), message: m };
        if layout.services > MAX_SERVICES || layout.flat_len() > OBS_MAX {
            return Err(fail(format!(
                "scenario `{}` is too large for this network ({} services, {} features)",
                scenario.name,
                layout.services,
                layout.flat_len()
            )));
        }
        if layout.flat_len() != ck.flat_len {
            return Err(fail(format!(
                "trained on an application with {} observation features; scenario `{}` has {}: an MLP agent runs only on the application it learned",
                ck.flat_len,
                scenario.name,
                layout.flat_len()
            )));
        }
        let period = SimTime::from_secs_f64(ck.config.decision_interval_s);
        Ok(AgentPolicy {
            agent: Agent::from_checkpoint(ck, 0),
            layout,
            app: scenario.app.clone(),
            cluster: scenario.cluster.clone(),
            slo_ms: scenario.slo.as_millis_f64(),
            period,
        })
    }
}

impl Autoscaler for AgentPolicy {
    fn name(&self) -> String {
        "agent".into()
    }

    fn period(&self) -> SimTime {
        self.period
    }

    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        let obs = collect(&self.layout, view, &self.app, &self.cluster, self.slo_ms);
        let mask = ActionMask::from_view(view, &self.app, &self.cluster);
        let a = self.agent.act_greedy(&obs, &mask);
        if let Action::One { service, delta, .. } = decode_action(a) {
            if let Some(sv) = view.services.get(service) {
                let current = (sv.counts.active + sv.counts.starting) as i64;
                out.push(ScaleDecision {
                    service,
                    desired: (current + delta as i64).max(0) as u32,
                    reason: format!("agent: {} {delta:+}", sv.name),
                });
            }
        }
    }
}
