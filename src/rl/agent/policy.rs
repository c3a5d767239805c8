//! A trained agent as a policy (`--policy agent:FILE`, `scalesim eval`): it observes the controller's
//! view through the same state collector it trained with and acts greedily.

use std::path::Path;

use super::checkpoint::{Checkpoint, CheckpointError};
use super::nn::{MAX_SERVICES, OBS_MAX};
use super::ppo::{team_greedy, Agent};
use crate::app::AppSpec;
use crate::autoscale::{Autoscaler, ScaleDecision};
use crate::cluster::ClusterSpec;
use crate::engine::SimTime;
use crate::metrics::ClusterView;
use crate::rl::observation::{collect, ObservationLayout};
use crate::rl::{Action, ActionMask};
use crate::scenario::Scenario;

pub struct AgentPolicy {
    /// One agent, or a team (agent `p` scales service `p`).
    team: Vec<Agent>,
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
        let graph = super::ppo::graph_kind(&ck.config.encoder).is_some();
        if !graph && (layout.services > MAX_SERVICES || layout.flat_len() > OBS_MAX) {
            return Err(fail(format!(
                "scenario `{}` is too large for this network ({} services, {} features)",
                scenario.name,
                layout.services,
                layout.flat_len()
            )));
        }
        // A graph agent scores each service from its own node: it runs on any application.
        if !graph && layout.flat_len() != ck.flat_len {
            return Err(fail(format!(
                "trained on an application with {} observation features; scenario `{}` has {}: an MLP agent runs only on the application it learned",
                ck.flat_len,
                scenario.name,
                layout.flat_len()
            )));
        }
        let period = SimTime::from_secs_f64(ck.config.decision_interval_s);
        let size = ck.config.team;
        if size > 1 && size != scenario.app.services.len() {
            return Err(fail(format!(
                "a team of {size} agents scales {size} services; scenario `{}` has {}",
                scenario.name,
                scenario.app.services.len()
            )));
        }
        let mut team = vec![Agent::from_checkpoint(ck, 0)];
        for p in 1..size {
            team.push(Agent::from_checkpoint(Checkpoint::load(&member_path(path, p))?, 0));
        }
        Ok(AgentPolicy {
            team,
            layout,
            app: scenario.app.clone(),
            cluster: scenario.cluster.clone(),
            slo_ms: scenario.slo.as_millis_f64(),
            period,
        })
    }
}

/// Where team member `p` (> 0) of the checkpoint at `path` is saved: `STEM_memberP.ckpt`.
pub fn member_path(path: &Path, p: usize) -> std::path::PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}_member{p}.ckpt"))
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
        let moves: Vec<(usize, i32)> = match team_greedy(&self.team, &obs, &mask) {
            Action::One { service, delta, .. } => vec![(service, delta)],
            Action::All(v) => v.iter().enumerate().map(|(s, a)| (s, a.delta)).collect(),
            Action::Llm { .. } => Vec::new(),
        };
        for (service, delta) in moves {
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
