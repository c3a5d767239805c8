//! The action executor: turns an agent's action into scale commands on the backend (and nothing
//! else), after checking each part against the action mask, and reports what it did and what it
//! refused.

use super::mask::ActionMask;
use super::{Action, ActionConfig, ServiceAction};
use crate::backend::ClusterBackend;

/// What the executor did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionReport {
    pub executed: Vec<String>,
    pub blocked: Vec<String>,
    /// Replicas added or removed (each executed +1 or -1; not CPU resizes or migrations).
    pub replica_changes: u32,
    /// Services that gained at least one replica.
    pub scaled_up: Vec<usize>,
    /// Services that lost at least one replica.
    pub scaled_down: Vec<usize>,
    /// Services whose +1 at their bound renewed their scale-down window
    /// ([`ActionConfig::renew_at_bound`]).
    pub renewed: Vec<usize>,
    /// Replicas added or removed, by service (as long as the highest service that moved).
    pub moves: Vec<u32>,
}

impl ActionReport {
    /// One replica of `service` (named `name`) was added (`up`) or removed.
    fn moved(&mut self, service: usize, name: &str, up: bool) {
        self.replica_changes += 1;
        if self.moves.len() <= service {
            self.moves.resize(service + 1, 0);
        }
        self.moves[service] += 1;
        let moved = if up { &mut self.scaled_up } else { &mut self.scaled_down };
        if moved.last() != Some(&service) {
            moved.push(service);
        }
        self.executed.push(format!("{name} {}", if up { "+1" } else { "-1" }));
    }

    /// `other`'s changes after this report's, as one report of the step (the fast floor's raises
    /// after the policy's action).
    pub fn absorb(&mut self, other: ActionReport) {
        self.executed.extend(other.executed);
        self.blocked.extend(other.blocked);
        self.replica_changes += other.replica_changes;
        for (moved, theirs) in [(&mut self.scaled_up, other.scaled_up), (&mut self.scaled_down, other.scaled_down)] {
            moved.extend(theirs.into_iter().filter(|s| !moved.contains(s)).collect::<Vec<_>>());
        }
        self.renewed.extend(other.renewed);
        if self.moves.len() < other.moves.len() {
            self.moves.resize(other.moves.len(), 0);
        }
        self.moves.iter_mut().zip(other.moves).for_each(|(m, o)| *m += o);
    }
}

/// Raises the services the fast floor calls for in `view` ([`super::fast_floor_raises`] under
/// `cfg`'s floor target) on `backend`, each on its own SKU, and reports each replica added as
/// the executor does (and "fast floor: NAME N -> M").
pub fn raise_to_fast_floor(
    backend: &mut dyn ClusterBackend,
    view: &crate::metrics::ClusterView,
    cfg: &ActionConfig,
) -> ActionReport {
    let mut report = ActionReport::default();
    let (Some(fast), Some(target)) = (cfg.fast_floor, cfg.hpa_floor) else { return report };
    for (s, to) in super::fast_floor_raises(view, target, cfg.floor_counts_refused, &fast) {
        let c = backend.counts(s);
        let from = (c.active + c.starting) as i64;
        report.executed.push(format!("fast floor: {} {from} -> {to}", service_name(backend, s)));
        let sku = backend.app().services[s].sku;
        for _ in from..to {
            match backend.scale_up(s, Some(sku)) {
                Ok(()) => report.moved(s, service_name(backend, s), true),
                Err(e) => report.blocked.push(format!("{}: {e}", service_name(backend, s))),
            }
        }
    }
    report
}

/// Executes `action` on `backend` under `mask`.
pub fn execute(
    backend: &mut dyn ClusterBackend,
    action: &Action,
    mask: &ActionMask,
    cfg: &ActionConfig,
) -> ActionReport {
    let mut report = ActionReport::default();
    let n = backend.app().services.len();
    let parts: Vec<(usize, ServiceAction)> = match action {
        Action::One { service, node_type, delta, quota } => {
            vec![(*service, ServiceAction { node_type: *node_type, delta: *delta, quota: *quota })]
        }
        Action::All(v) => v.iter().copied().enumerate().collect(),
        Action::Llm { prompt, token, migrate } => return execute_llm(backend, [*prompt, *token], *migrate, cfg),
    };
    for (s, a) in parts {
        if s >= n {
            report.blocked.push(format!("service #{s} does not exist ({n} services)"));
            continue;
        }
        let sku = if cfg.node_type_head { a.node_type } else { backend.app().services[s].sku };
        let c = backend.counts(s);
        let current = (c.active + c.starting) as i64;
        let spec = &backend.app().services[s];
        let (live, max_instances) = backend.instances();
        let bounds = (spec.min_replicas as i64, spec.max_replicas as i64);
        let room = max_instances as i64 - live as i64;
        // Under the HPA anchor a delta of 0 still moves the service to the HPA's count.
        let requested = mask.requested(s, current, a.delta, cfg.multiplicative_steps, bounds, room);
        let wanted = requested.count - current;
        if wanted != 0 || a.delta != 0 {
            if !mask.allows_delta(s, a.delta) {
                report.blocked.push(format!(
                    "{} {:+}: masked (min/max replicas or cluster capacity)",
                    service_name(backend, s),
                    a.delta
                ));
            } else if wanted > 0 && !mask.node_types[s].get(sku).copied().unwrap_or(false) {
                report.blocked.push(format!(
                    "{} {:+} on node type #{sku}: masked (does not fit)",
                    service_name(backend, s),
                    a.delta
                ));
            } else {
                if requested.renews_window {
                    report.renewed.push(s);
                    report.executed.push(format!("{} holds at its bound (window renewed)", service_name(backend, s)));
                }
                for _ in 0..wanted.unsigned_abs() {
                    let r = if wanted > 0 { backend.scale_up(s, Some(sku)) } else { backend.scale_down(s) };
                    match r {
                        Ok(()) => report.moved(s, service_name(backend, s), wanted > 0),
                        Err(e) => report.blocked.push(format!("{}: {e}", service_name(backend, s))),
                    }
                }
            }
        }
        if cfg.quota_head && a.quota != 0.0 {
            if !(-1.0..=1.0).contains(&a.quota) || !a.quota.is_finite() {
                report.blocked.push(format!("{} quota {}: outside [-1, 1]", service_name(backend, s), a.quota));
            } else {
                let cores = backend.cpu_limit(s) + a.quota as f64 * cfg.quota_step_cores;
                let resize = backend.resize_cpu_limit(s, cores);
                report.executed.push(format!("{} {resize}", service_name(backend, s)));
            }
        }
    }
    report
}

/// The name of service `s`, borrowed anew for each message (the backend is borrowed mutably in
/// between; cloning it per step was a measurable share of a fluid step).
fn service_name(backend: &dyn ClusterBackend, s: usize) -> &str {
    &backend.app().services[s].name
}

/// The LLM pools' action: pool deltas and a migration, scaled and rounded.
fn execute_llm(backend: &mut dyn ClusterBackend, deltas: [f32; 2], migrate: f32, cfg: &ActionConfig) -> ActionReport {
    let mut report = ActionReport::default();
    if backend.app().services.len() != 2 {
        report.blocked.push("the LLM action needs a scenario with prompt and token pools".into());
        return report;
    }
    for v in deltas.iter().chain([&migrate]) {
        if !(-1.0..=1.0).contains(v) || !v.is_finite() {
            report.blocked.push(format!("LLM action value {v} is outside [-1, 1]"));
            return report;
        }
    }
    for (pool, &v) in deltas.iter().enumerate() {
        let name = backend.app().services[pool].name.clone();
        let n = (v as f64 * cfg.action_scale_step).round() as i64;
        for _ in 0..n.unsigned_abs() {
            let r = if n > 0 { backend.scale_up(pool, None) } else { backend.scale_down(pool) };
            match r {
                Ok(()) => report.moved(pool, &name, n > 0),
                Err(e) => {
                    report.blocked.push(format!("{name}: {e}"));
                    break;
                }
            }
        }
    }
    let m = (migrate as f64 * cfg.action_mig_step).round() as i64;
    let (from, to) = if m > 0 { (1, 0) } else { (0, 1) };
    for _ in 0..m.unsigned_abs() {
        match backend.migrate(from, to) {
            Ok(()) => report.executed.push(format!(
                "migrate {} -> {}",
                backend.app().services[from].name,
                backend.app().services[to].name
            )),
            Err(e) => {
                report.blocked.push(format!("migrate: {e}"));
                break;
            }
        }
    }
    report
}
