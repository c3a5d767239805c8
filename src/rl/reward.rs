//! The reward calculator.
//!
//! Terms, each in [0, 1], over the last decision interval:
//! - `slo_violation`: (dropped + completed slower than the SLO) / (completed + dropped); 0 when
//!   nothing finished.
//! - `slack`: (CPU allocated - CPU used) / CPU allocated, allocated = request x time for every
//!   instance that existed; clamped at 0 (use can exceed the request up to the limit). With
//!   [`SlackBasis::Limit`], allocated = limit x time: for agents that resize CPU limits, whose
//!   raised limit would otherwise cost nothing (an instance may use its whole limit, and the
//!   request-based slack even falls as use climbs past the request).
//! - `overshoot`: replicas (Active + Starting) above what demand needs, summed over services, over
//!   the sum of max replicas. Needed = `ceil(rps / capacity of one instance)` from the metrics
//!   server's RPS.
//! - `replica_lag`: mean over stateful services of replication lag / SLO (clamped to 1); 0 without
//!   stateful services. (The original design reads it from Redis/MySQL exporters.)
//! - `changes`: replicas the step's action added or removed, over the sum of max replicas
//!   (clamped to 1). Weighted 0 by default; a positive weight charges churn, which nothing else in
//!   the reward does (a team with one agent per service otherwise reverses direction hundreds of
//!   times an hour).
//! - `reversals`: services whose replica change in the step reverses the direction of their last
//!   change (down after up, or up after down), as the evaluation's reversals per hour count them.
//!   A count, not a share: its weight is the price of one reversal in the reward's unit. Weighted 0
//!   by default. The `changes` term charges every move, including a needed ramp; this one charges
//!   only a move that undoes an earlier one.
//! - `capacity`: replica-hours held in the step (replicas Active + Starting at its end, times the
//!   step's length in hours): the price of capacity. Its weight is the price of one replica-hour in
//!   the reward's unit, where a step in which every request breaks the SLO costs the `slo` weight.
//!   The trade-off it sets: over an hour of `n` steps, one more replica pays for itself when it
//!   lowers the SLO violation fraction by more than `capacity / (slo * n)`; with decisions every
//!   15 s (n = 240), `slo: 5` and `capacity: 12`, by one percentage point. Weighted 0 by default
//!   (older agents' rewards are unchanged); `configs/agents/gat_ppo.yaml` prices capacity so.
//!
//! **Credit per service** ([`service_rewards`], for agents with `credit: per_service`): the step's
//! reward split among the services so that the parts add up to it, each service charged for what
//! it did. SLO violation goes by [`blame`]; capacity by the service's own replica-hours; overshoot
//! by its own excess replicas; churn and reversals by its own moves; slack and lag (no figure per
//! service) in equal parts. A share `shared` of every part is the team's mean instead (the reward
//! / services), so that a service still feels what its neighbours suffer. Why: a shared reward
//! gives a service that should scale (one whose queue overflows) the same signal as the ten that
//! should not; credited this way, its advantage carries its own drops.
//!
//! Goals: `weighted` (default): `r = -(5 slo + 1 slack + 3 overshoot + 2 lag + 0 changes)`, weights
//! configurable; the gym-hpa goals `cost` (`r = -replicas / max replicas`), `latency`
//! (`r = -min(1, mean latency / SLO)`), and `multi` (Lagrangian: `r = -(cost + lambda *
//! max(0, mean latency / SLO - 1))`).

use crate::backend::ClusterBackend;
use crate::metrics::ClusterView;
use crate::metrics::RunTotals;
use crate::sim::erlang_c_wait;

use super::observation::ObservationLayout;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RewardConfig {
    Weighted {
        slo: f64,
        slack: f64,
        overshoot: f64,
        lag: f64,
        changes: f64,
        reversals: f64,
        capacity: f64,
        slack_basis: SlackBasis,
    },
    Cost,
    Latency,
    Multi {
        lambda: f64,
    },
}

/// What the slack term measures CPU use against (`request` or `limit` in agent configs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackBasis {
    /// Every instance's CPU request: what the scheduler reserves.
    #[default]
    Request,
    /// Every instance's CPU limit: what an agent that resizes limits provisions.
    Limit,
}

/// The weighted goal's default weights (`changes`: 0).
pub const DEFAULT_SLO_WEIGHT: f64 = 5.0;
pub const DEFAULT_SLACK_WEIGHT: f64 = 1.0;
pub const DEFAULT_OVERSHOOT_WEIGHT: f64 = 3.0;
pub const DEFAULT_LAG_WEIGHT: f64 = 2.0;

impl RewardConfig {
    /// The default weights, `r = -(5 slo + 1 slack + 3 overshoot + 2 lag)`, with slack against
    /// `slack_basis`.
    pub fn weighted(slack_basis: SlackBasis) -> RewardConfig {
        RewardConfig::Weighted {
            slo: DEFAULT_SLO_WEIGHT,
            slack: DEFAULT_SLACK_WEIGHT,
            overshoot: DEFAULT_OVERSHOOT_WEIGHT,
            lag: DEFAULT_LAG_WEIGHT,
            changes: 0.0,
            reversals: 0.0,
            capacity: 0.0,
            slack_basis,
        }
    }
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig::weighted(SlackBasis::Request)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RewardTerms {
    pub slo_violation: f64,
    pub slack: f64,
    pub overshoot: f64,
    pub replica_lag: f64,
    /// Replicas added or removed by the step's action / sum of max replicas.
    pub changes: f64,
    /// Services whose change in the step reversed the direction of their last change.
    pub reversals: u32,
    /// Mean end-to-end latency of requests completed in the interval / SLO.
    pub latency_ratio: f64,
    /// Replicas (Active + Starting) / sum of max replicas.
    pub cost: f64,
    /// Replica-hours held in the step (replicas at its end x its length).
    pub replica_hours: f64,
    pub reward: f64,
}

/// The terms and the reward for the interval between `before` and `after`, in which the action
/// added or removed `replica_changes` replicas and reversed the direction of `reversals` services.
#[allow(clippy::too_many_arguments)] // each is one distinct input of the formula
pub fn compute(
    cfg: &RewardConfig,
    layout: &ObservationLayout,
    backend: &dyn ClusterBackend,
    view: &ClusterView,
    before: &RunTotals,
    after: &RunTotals,
    replica_changes: u32,
    reversals: u32,
    slo_ms: f64,
    step_hours: f64,
) -> RewardTerms {
    let app = backend.app();
    let completed = after.completed.saturating_sub(before.completed) as f64;
    let dropped = after.dropped.saturating_sub(before.dropped) as f64;
    let within = after.within_slo.saturating_sub(before.within_slo) as f64;
    let finished = completed + dropped;
    let slo_violation = if finished > 0.0 { ((dropped + completed - within) / finished).clamp(0.0, 1.0) } else { 0.0 };
    let alloc = match *cfg {
        RewardConfig::Weighted { slack_basis: SlackBasis::Limit, .. } => {
            after.cpu_limit_core_us - before.cpu_limit_core_us
        }
        _ => after.cpu_alloc_core_us - before.cpu_alloc_core_us,
    };
    let used = after.cpu_used_core_us - before.cpu_used_core_us;
    let slack = if alloc > 0.0 { ((alloc - used) / alloc).clamp(0.0, 1.0) } else { 0.0 };
    let (mut over, mut max_sum, mut replicas) = (0.0, 0.0, 0.0);
    for (s, sv) in view.services.iter().enumerate() {
        over += excess_replicas(layout, backend, view, s);
        max_sum += sv.max_replicas as f64;
        replicas += (sv.counts.active + sv.counts.starting) as f64;
    }
    let overshoot = if max_sum > 0.0 { (over / max_sum).clamp(0.0, 1.0) } else { 0.0 };
    let cost = if max_sum > 0.0 { replicas / max_sum } else { 0.0 };
    let changes = if max_sum > 0.0 { (replica_changes as f64 / max_sum).min(1.0) } else { 0.0 };
    let lags: Vec<f64> = app
        .services
        .iter()
        .zip(backend.replication_lag_ms())
        .filter(|(s, _)| s.stateful.is_some())
        .map(|(_, &l)| (l / slo_ms).clamp(0.0, 1.0))
        .collect();
    let replica_lag = if lags.is_empty() { 0.0 } else { lags.iter().sum::<f64>() / lags.len() as f64 };
    let latency_sum = after.latency_sum_us - before.latency_sum_us;
    let latency_ratio = if completed > 0.0 { latency_sum / completed / 1000.0 / slo_ms } else { 0.0 };
    let reward = match *cfg {
        RewardConfig::Weighted {
            slo,
            slack: w_slack,
            overshoot: w_over,
            lag,
            changes: w_changes,
            reversals: w_reversals,
            capacity,
            ..
        } => {
            -(slo * slo_violation
                + w_slack * slack
                + w_over * overshoot
                + lag * replica_lag
                + w_changes * changes
                + w_reversals * reversals as f64
                + capacity * replicas * step_hours)
        }
        RewardConfig::Cost => -cost,
        RewardConfig::Latency => -latency_ratio.min(1.0),
        RewardConfig::Multi { lambda } => -(cost + lambda * (latency_ratio - 1.0).max(0.0)),
    };
    let replica_hours = replicas * step_hours;
    RewardTerms {
        slo_violation,
        slack,
        overshoot,
        replica_lag,
        changes,
        reversals,
        latency_ratio,
        cost,
        replica_hours,
        reward,
    }
}

/// Replicas (Active + Starting) of service `s` above what its demand needs: the overshoot term's
/// count. Needed = `ceil(rps / capacity of one instance)`, at least the minimum.
fn excess_replicas(layout: &ObservationLayout, backend: &dyn ClusterBackend, view: &ClusterView, s: usize) -> f64 {
    let sv = &view.services[s];
    let current = (sv.counts.active + sv.counts.starting) as f64;
    let per_instance = layout.capacity(backend.app(), s, 1, backend.cpu_limit(s));
    let needed = if per_instance.is_finite() && per_instance > 0.0 {
        (sv.rps / per_instance).ceil().max(sv.min_replicas as f64)
    } else {
        sv.min_replicas as f64
    };
    (current - needed).max(0.0)
}

/// Each service's share of an interval's SLO violations (the shares add up to 1), from what a
/// controller sees: the `dropped` requests in proportion to the visits each service refused (its
/// error rate x its arrival rate), the `slow` ones in proportion to the requests each service
/// keeps waiting, which by Little's law is its share of the time requests spent queueing. That
/// queue is M/M/c's mean length at the service's arrival rate over its Active capacity (every
/// queue full once it is overloaded). Equal shares where no service refused or queued anything.
pub fn blame(
    layout: &ObservationLayout,
    backend: &dyn ClusterBackend,
    view: &ClusterView,
    dropped: f64,
    slow: f64,
) -> Vec<f64> {
    let app = backend.app();
    let n = view.services.len();
    let mut refused = Vec::with_capacity(n);
    let mut waiting = Vec::with_capacity(n);
    for (s, sv) in view.services.iter().enumerate() {
        refused.push((sv.error_rate * sv.rps).max(0.0));
        let active = sv.counts.active;
        let shape = &app.services[s].shape;
        let capacity = layout.capacity(app, s, active, backend.cpu_limit(s));
        let queued = if active == 0 || sv.rps <= 0.0 || !capacity.is_finite() {
            // No instance: every visit is refused, which `refused` counts.
            0.0
        } else if sv.rps >= capacity {
            (active * shape.queue_capacity) as f64
        } else {
            let slots = active * shape.concurrency;
            sv.rps * erlang_c_wait(slots, sv.rps, capacity / slots as f64)
        };
        waiting.push(queued);
    }
    let shares = |x: &[f64]| -> Vec<f64> {
        let total: f64 = x.iter().sum();
        if total > 0.0 {
            x.iter().map(|v| v / total).collect()
        } else {
            vec![1.0 / n.max(1) as f64; n]
        }
    };
    let (by_drops, by_waits) = (shares(&refused), shares(&waiting));
    let violating = dropped + slow;
    let d = if violating > 0.0 { dropped / violating } else { 0.5 };
    by_drops.iter().zip(&by_waits).map(|(a, b)| d * a + (1.0 - d) * b).collect()
}

/// What one step's reward is split by in [`service_rewards`].
#[derive(Clone, Copy, Debug)]
pub struct StepCredit<'a> {
    pub terms: &'a RewardTerms,
    /// [`blame`]'s shares.
    pub blame: &'a [f64],
    /// Replicas each service added or removed (shorter than the services when the last did not
    /// move).
    pub moves: &'a [u32],
    /// Services whose move reversed their last one.
    pub reversed: &'a [usize],
    pub step_hours: f64,
    /// The share of each service's part that is the team's mean reward.
    pub shared: f64,
}

/// The step's reward split among the services (module docs: credit per service); the parts add
/// up to `credit.terms.reward`. Goals other than `weighted` have no terms to split: every service
/// gets the mean.
pub fn service_rewards(
    cfg: &RewardConfig,
    layout: &ObservationLayout,
    backend: &dyn ClusterBackend,
    view: &ClusterView,
    credit: &StepCredit,
) -> Vec<f64> {
    let n = view.services.len();
    let t = credit.terms;
    let mean = t.reward / n.max(1) as f64;
    let RewardConfig::Weighted { slo, slack, overshoot, lag, changes, reversals, capacity, .. } = *cfg else {
        return vec![mean; n];
    };
    // Slack and lag have no per-service figure here: equal parts.
    let common = (slack * t.slack + lag * t.replica_lag) / n as f64;
    // Each service's excess was counted for the overshoot term already; counted again here only
    // when that term has a weight (it has none by default), as the split is all it serves.
    let excess: Vec<f64> = if overshoot > 0.0 {
        (0..n).map(|s| excess_replicas(layout, backend, view, s)).collect()
    } else {
        vec![0.0; n]
    };
    let total_excess: f64 = excess.iter().sum();
    let moved: u32 = credit.moves.iter().sum();
    view.services
        .iter()
        .enumerate()
        .map(|(s, sv)| {
            let replicas = (sv.counts.active + sv.counts.starting) as f64;
            let own_moves = credit.moves.get(s).copied().unwrap_or(0);
            let churn = if moved > 0 { t.changes * own_moves as f64 / moved as f64 } else { 0.0 };
            let reversed = credit.reversed.iter().filter(|&&r| r == s).count() as f64;
            let over = if total_excess > 0.0 { t.overshoot * excess[s] / total_excess } else { 0.0 };
            let own = -(slo * t.slo_violation * credit.blame.get(s).copied().unwrap_or(0.0)
                + common
                + overshoot * over
                + changes * churn
                + reversals * reversed
                + capacity * replicas * credit.step_hours);
            (1.0 - credit.shared) * own + credit.shared * mean
        })
        .collect()
}
