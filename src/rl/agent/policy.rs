//! A trained agent as a policy (`--policy agent:FILE`, `scalesim eval`): it observes the controller's
//! view through the same state collector it trained with and acts greedily. And an agent config's
//! shields without an agent (`--policy shields --policy-config FILE`): every service's delta is 0,
//! so its count moves only where the HPA floor, the ceiling and the scale-down window move it; the
//! ablation that shows what a trained policy adds to its shields. And an ensemble of checkpoints
//! of one agent config (`scalesim eval --checkpoint A --checkpoint B`): each service's delta is
//! the one its members' probabilities favour together.

use std::path::{Path, PathBuf};

use super::checkpoint::{Checkpoint, CheckpointError};
use super::config::{ActionMode, AgentConfig};
use super::ppo::{ensemble_greedy, team_greedy, Agent};
use crate::app::AppSpec;
use crate::autoscale::{Autoscaler, ScaleDecision};
use crate::cluster::ClusterSpec;
use crate::engine::SimTime;
use crate::metrics::ClusterView;
use crate::rl::observation::{collect, ObservationLayout};
use crate::rl::{Action, ActionMask, DownscaleStabilizer, ServiceAction};
use crate::scenario::{ConfigError, ConfigText, Scenario};

/// What chooses the deltas.
enum Actor {
    /// One trained agent, or a team (agent `p` scales service `p`).
    Trained(Vec<Agent>),
    /// Several per-service agents of one config, greedy on their summed probabilities.
    Ensemble(Vec<Agent>),
    /// Nothing: every service's delta is 0 (the shields alone).
    Hold,
}

impl Actor {
    /// The policy's name, and the prefix of its decisions' reasons.
    fn name(&self) -> &'static str {
        match self {
            Actor::Trained(_) | Actor::Ensemble(_) => "agent",
            Actor::Hold => "shields",
        }
    }
}

pub struct AgentPolicy {
    actor: Actor,
    /// The agent config: its action settings (shields, steps, heads) and decision interval.
    config: AgentConfig,
    layout: ObservationLayout,
    app: AppSpec,
    cluster: ClusterSpec,
    slo_ms: f64,
    /// Calls so far: under a fast floor every n-th call decides (n from [`cadence`]), the others
    /// are the fast floor's looks, so decisions keep the times they have without it (each
    /// decision interval after the start).
    calls: u64,
    /// The scale-down stabilisation the agent trained under, over its own scale-ups.
    stabilizer: DownscaleStabilizer,
}

impl AgentPolicy {
    pub fn load(path: &Path, scenario: &Scenario) -> Result<AgentPolicy, CheckpointError> {
        let ck = Checkpoint::load(path)?;
        let layout = observation_layout(scenario);
        let fail = |m: String| CheckpointError { file: path.display().to_string(), message: m };
        check_fits(&ck, &layout, scenario).map_err(fail)?;
        let members = (1..ck.config.team).map(|p| load_member(path, p, &ck)).collect::<Result<Vec<_>, _>>()?;
        let config = ck.config.clone();
        let team = std::iter::once(ck).chain(members).map(|c| Agent::from_checkpoint(c, 0)).collect();
        Ok(AgentPolicy::new(Actor::Trained(team), config, layout, scenario))
    }

    /// An ensemble of the checkpoints at `paths` (one checkpoint: that agent, as [`Self::load`]).
    /// Every member must act per service, alone (no team), under the first one's agent config:
    /// checkpoints of one training, or of trainings of one config.
    pub fn load_ensemble(paths: &[PathBuf], scenario: &Scenario) -> Result<AgentPolicy, CheckpointError> {
        let [first, rest @ ..] = paths else {
            let message = "an ensemble needs at least one checkpoint".to_string();
            return Err(CheckpointError { file: "--checkpoint".into(), message });
        };
        if rest.is_empty() {
            return AgentPolicy::load(first, scenario);
        }
        let layout = observation_layout(scenario);
        let mut checkpoints: Vec<Checkpoint> = Vec::with_capacity(paths.len());
        for path in paths {
            let ck = Checkpoint::load(path)?;
            let fail = |m: String| CheckpointError { file: path.display().to_string(), message: m };
            check_fits(&ck, &layout, scenario).map_err(fail)?;
            if ck.config.action != ActionMode::PerService || ck.config.team > 1 {
                return Err(fail(
                    "an ensemble's members act per service (`action: per_service`), one agent each (no team)".into(),
                ));
            }
            if checkpoints.first().is_some_and(|lead| lead.config != ck.config) {
                let why = format!(
                    "its agent config differs from that of {}: an ensemble's members share one",
                    first.display()
                );
                return Err(fail(why));
            }
            checkpoints.push(ck);
        }
        let config = checkpoints[0].config.clone();
        let members = checkpoints.into_iter().map(|ck| Agent::from_checkpoint(ck, 0)).collect();
        Ok(AgentPolicy::new(Actor::Ensemble(members), config, layout, scenario))
    }

    /// The shields of the agent config at `path` with every delta 0 (`--policy shields`). The
    /// config needs `action: per_service`: the shields set every service's count at once.
    pub fn shields(path: &Path, scenario: &Scenario) -> Result<AgentPolicy, ConfigError> {
        let config = AgentConfig::load(path)?;
        if config.action != ActionMode::PerService {
            let why = "the shields set every service's count at once: `--policy shields` needs `action: per_service`";
            return Err(ConfigText::read(path)?.invalid("action", why.into()));
        }
        Ok(AgentPolicy::new(Actor::Hold, config, observation_layout(scenario), scenario))
    }

    /// The policy of `actor` under `config`'s action settings, decision interval and scale-down
    /// window, on `scenario`.
    fn new(actor: Actor, config: AgentConfig, layout: ObservationLayout, scenario: &Scenario) -> AgentPolicy {
        AgentPolicy {
            actor,
            layout: layout.with_load_forecast(config.load_forecast_s).with_burst_count(config.burst_count_s),
            app: scenario.app.clone(),
            cluster: scenario.cluster.clone(),
            slo_ms: scenario.slo.as_millis_f64(),
            calls: 0,
            stabilizer: DownscaleStabilizer::for_action(&config.env_config().action),
            config,
        }
    }
}

/// A policy's period (the time between its calls) and calls per decision: the decision interval
/// and 1, or under a fast floor its period and the decision interval's multiple of it (the
/// config's validation holds the period to a divisor of the interval).
fn cadence(config: &AgentConfig) -> (SimTime, u64) {
    match config.fast_floor_every_s {
        None => (SimTime::from_secs_f64(config.decision_interval_s), 1),
        Some(every) => (SimTime::from_secs_f64(every), (config.decision_interval_s / every).round() as u64),
    }
}

/// A fast floor added to a trained agent at deployment (`scalesim eval --fast-floor-every-s`):
/// the agent config's `fast_floor_every_s`, `fast_floor_reads_s`, `fast_floor_panic_ratio` and
/// `fast_floor_leaves_window`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeployedFastFloor {
    pub every_s: f64,
    pub reads_s: Option<f64>,
    pub panic_ratio: Option<f64>,
    /// Its raises leave the scale-down window as it was (`fast_floor_leaves_window`).
    pub leaves_window: bool,
}

impl std::fmt::Display for DeployedFastFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fast floor every {} s", self.every_s)?;
        if let Some(r) = self.reads_s {
            write!(f, ", reading {r} s")?;
        }
        if let Some(r) = self.panic_ratio {
            write!(f, ", at {r}x")?;
        }
        if self.leaves_window {
            write!(f, ", leaving the window")?;
        }
        Ok(())
    }
}

/// The observation layout of `scenario` as the agents see it (the HPA target of 60% in it).
fn observation_layout(scenario: &Scenario) -> ObservationLayout {
    ObservationLayout::new(&scenario.app, &scenario.workload.mix, 0.6, scenario.cluster.skus.len())
}

/// Whether the agent of `ck` can act on `scenario` (whose observation layout is `layout`): the MLP
/// only on the application it learned, a team only with one agent per service.
pub fn check_fits(ck: &Checkpoint, layout: &ObservationLayout, scenario: &Scenario) -> Result<(), String> {
    let graph = super::ppo::graph_kind(ck.config.encoder).is_some();
    if let Some(why) = super::ppo::mlp_too_small(layout).filter(|_| !graph) {
        return Err(format!("scenario `{}` is too large for this network: {why}", scenario.name));
    }
    // A graph agent scores each service from its own node: it runs on any application.
    if !graph && layout.flat_len() != ck.flat_len {
        return Err(format!(
            "trained on an application with {} observation features; scenario `{}` has {}: an MLP agent runs only on the application it learned",
            ck.flat_len,
            scenario.name,
            layout.flat_len()
        ));
    }
    let size = ck.config.team;
    if size > 1 && size != scenario.app.services.len() {
        return Err(format!(
            "a team of {size} agents scales {size} services; scenario `{}` has {}",
            scenario.name,
            scenario.app.services.len()
        ));
    }
    Ok(())
}

/// Team member `p` (> 0) of the checkpoint at `path`, checked to belong to the same team as its
/// leader `lead` (same hyper-parameters, same observation size).
pub fn load_member(path: &Path, p: usize, lead: &Checkpoint) -> Result<Checkpoint, CheckpointError> {
    let file = member_path(path, p);
    let member = Checkpoint::load(&file)?;
    if member.config != lead.config || member.flat_len != lead.flat_len {
        return Err(CheckpointError {
            file: file.display().to_string(),
            message: format!(
                "not a member of the team in {}: its agent config or observation size differs from the leader's (encoder {} vs {})",
                path.display(),
                member.config.encoder,
                lead.config.encoder
            ),
        });
    }
    Ok(member)
}

/// Where team member `p` (> 0) of the checkpoint at `path` is saved: `STEM_memberP.ckpt`.
pub fn member_path(path: &Path, p: usize) -> std::path::PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}_member{p}.ckpt"))
}

impl AgentPolicy {
    /// Deploys `fast` in place of the agent config's fast floor (if any): the agent, trained with
    /// or without one, decides at its own times and the fast floor looks between them. Refused,
    /// naming the flag, as an agent config's fast floor would be (it needs the config's
    /// `hpa_floor`, a period dividing the decision interval, and so on).
    pub fn deploy_fast_floor(&mut self, fast: DeployedFastFloor) -> Result<(), String> {
        let c = &mut self.config;
        crate::rl::action::check_fast_floor(
            Some(fast.every_s),
            [],
            fast.reads_s,
            fast.panic_ratio,
            c.decision_interval_s,
            c.hpa_floor,
        )
        .map_err(|(field, why)| format!("--{}: {why}", field.replace('_', "-")))?;
        (c.fast_floor_every_s, c.fast_floor_reads_s, c.fast_floor_panic_ratio, c.fast_floor_leaves_window) =
            (Some(fast.every_s), fast.reads_s, fast.panic_ratio, fast.leaves_window);
        self.calls = 0;
        Ok(())
    }

    /// A fast floor's look between decisions: every service below its fast floor
    /// ([`crate::rl::action::fast_floor_raises`]) is raised to it, a scale-up the stabiliser
    /// records (as the training environment does).
    fn raise_to_fast_floor(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        let (Some(fast), Some(target)) = (self.config.deployed_fast_floor(), self.config.hpa_floor) else { return };
        let counts_refused = self.config.floor_counts_refused;
        for (service, to) in crate::rl::action::fast_floor_raises(view, target, counts_refused, &fast) {
            if !fast.leaves_window {
                self.stabilizer.scaled_up(view.now, service);
            }
            let reason = format!(
                "{}: {} raised to the fast floor {to} (its latest {} s of arrivals at {:.0}% CPU)",
                self.actor.name(),
                view.services[service].name,
                fast.reads_s,
                target * 100.0
            );
            out.push(ScaleDecision::replicas(service, to as u32, reason));
        }
    }
}

impl Autoscaler for AgentPolicy {
    fn name(&self) -> String {
        self.actor.name().into()
    }

    fn period(&self) -> SimTime {
        cadence(&self.config).0
    }

    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        self.calls += 1;
        if self.calls % cadence(&self.config).1 != 0 {
            self.raise_to_fast_floor(view, out);
            return;
        }
        let cfg = &self.config;
        let targets = cfg.mask_targets(self.layout.hpa_target);
        let mut mask = ActionMask::from_view(view, &self.app, &self.cluster, targets);
        self.stabilizer.apply(view.now, &mut mask);
        let chosen = match &self.actor {
            Actor::Trained(team) => {
                team_greedy(team, &collect(&self.layout, view, &self.app, &self.cluster, self.slo_ms), &mask)
            }
            Actor::Ensemble(members) => {
                ensemble_greedy(members, &collect(&self.layout, view, &self.app, &self.cluster, self.slo_ms), &mask)
            }
            // A delta of 0 is always allowed; the SKU of a hold is never used.
            Actor::Hold => {
                Action::All(vec![ServiceAction { node_type: 0, delta: 0, quota: 0.0 }; self.app.services.len()])
            }
        };
        // On recommendations the stabiliser may hold a scale-down back (as in training).
        let (action, held) = self.stabilizer.stabilize_action(view.now, view, &chosen);
        let parts: Vec<(usize, ServiceAction)> = match action {
            Action::One { service, node_type, delta, quota } => {
                vec![(service, ServiceAction { node_type, delta, quota })]
            }
            Action::All(v) => v.into_iter().enumerate().collect(),
            Action::Llm { .. } => Vec::new(),
        };
        let who = self.actor.name();
        for (service, a) in parts {
            let Some(sv) = view.services.get(service) else {
                continue;
            };
            let current = (sv.counts.active + sv.counts.starting) as i64;
            let multiplicative = cfg.steps == super::config::Steps::Multiplicative;
            let bounds = (sv.min_replicas as i64, sv.max_replicas as i64);
            let room = view.instances.1 as i64 - view.instances.0 as i64;
            let requested = mask.requested(service, current, a.delta, multiplicative, bounds, room);
            let desired = requested.count;
            if desired > current || requested.renews_window {
                self.stabilizer.scaled_up(view.now, service);
            }
            let level = targets.levels.zip(crate::rl::action::delta_index(a.delta));
            let mut reason = match (level, targets.anchor) {
                (Some((levels, i)), _) => {
                    format!("{who}: {} the HPA's count at {:.0}% CPU", sv.name, levels[i] * 100.0)
                }
                (None, Some(_)) => format!("{who}: {} {:+} from the HPA's {}", sv.name, a.delta, mask.anchor[service]),
                (None, None) => format!("{who}: {} {:+}", sv.name, a.delta),
            };
            if requested.raised_to_floor {
                reason.push_str(&format!(", raised to the HPA floor {}", mask.floor[service]));
            }
            if requested.lowered_to_ceiling {
                reason.push_str(&format!(", lowered to the HPA ceiling {}", mask.ceiling[service]));
                if let Some(step) = targets.ceiling_release_step {
                    // The ceiling in force: the HPA's count, or `step` below the current one.
                    reason.push_str(&format!(" (at most {step} a decision)"));
                }
            }
            if requested.renews_window {
                reason.push_str(", held at its bound (scale-down window renewed)");
            }
            if let Some((_, note)) = held.iter().find(|(s, _)| *s == service) {
                reason = format!("{who}: {note}");
            }
            let sku = (cfg.node_type_head && a.delta > 0).then_some(a.node_type);
            if let Some(k) = sku.and_then(|k| self.cluster.skus.get(k)) {
                reason.push_str(&format!(" on {}", k.name));
            }
            let cpu_limit = (cfg.quota_head && a.quota != 0.0).then(|| {
                reason.push_str(&format!(", quota {:+.3}", a.quota));
                sv.cpu_limit_cores + a.quota as f64 * cfg.quota_step_cores
            });
            out.push(ScaleDecision { service, desired: desired.max(0) as u32, reason, sku, cpu_limit });
        }
    }
}
