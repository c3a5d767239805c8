//! The action executor: turns an agent's action into scale commands on the backend (and nothing
//! else), after checking it against the action mask. A masked (forbidden) part of an action is
//! not executed and is reported in the step's info; it is never silently changed into something
//! else.
//!
//! The action of the original design: `(service, node type, delta replicas in -2..=2, delta CPU
//! quota in [-1, 1])`. The node type is the server SKU a scale-up rents; the quota delta resizes the
//! service's CPU limit in place by `quota * quota_step_cores`, clamped to the request and the SKU's
//! cores. Heads can be switched off (`node_type_head: false` always uses the service's SKU,
//! `quota_head: false` ignores the quota: the gym-hpa `(service, delta)` action). Per-service mode is
//! the [`Action::All`] form: every service gets a `(node type, delta, quota)` at once, each part
//! checked against the mask on its own.

use crate::app::AppSpec;
use crate::backend::ClusterBackend;
use crate::cluster::ClusterSpec;
use crate::engine::SimTime;
use crate::metrics::ClusterView;

/// The replica deltas an action may ask for, in the order the mask and the categorical head use.
pub const DELTAS: [i32; 5] = [-2, -1, 0, 1, 2];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActionConfig {
    pub node_type_head: bool,
    pub quota_head: bool,
    /// Cores of CPU limit per unit of quota action.
    pub quota_step_cores: f64,
    /// LLM action: replicas per unit of pool delta, and instances per unit of migration.
    pub action_scale_step: f64,
    pub action_mig_step: f64,
    /// The scale-down stabilisation window (0: off); see [`DownscaleStabilizer`].
    pub downscale_stabilization: SimTime,
    /// What the window holds back.
    pub stabilization: Stabilization,
    /// Replica deltas scale with the service's size ([`multiplied_target`]) instead of moving
    /// one or two replicas.
    pub multiplicative_steps: bool,
    /// What a replica delta moves from ([`Anchor`]).
    pub anchor: Anchor,
    /// A floor under every service's count: the HPA formula's recommendation
    /// ([`hpa_recommendation`]) at this CPU target (a fraction of request). None: no floor.
    pub hpa_floor: Option<f64>,
    /// The floor counts refused visits as load: its HPA formula takes the utilisation the
    /// offered load would cause, `utilisation / (1 - refused share)` ([`offered_utilization`]),
    /// not the one the served load caused. A saturated service's CPU stops at its limit while its
    /// queue overflows, so the plain formula at most doubles the count per decision there; this
    /// one asks at once for what the arrivals need.
    pub floor_counts_refused: bool,
    /// The floor holds its peak: each service's floor is the highest of its floors over the
    /// scale-down window ([`DownscaleStabilizer::apply`]). With `floor_counts_refused`, the
    /// capacity a burst's arrivals needed is kept while bursts recur within the window, per
    /// service, whatever the policy asks; a window after the last burst it is given back.
    pub floor_holds_peak: bool,
    /// A ceiling over every service's count: the HPA formula's recommendation at this CPU
    /// target (a lower target than the floor's: more replicas). Scale-ups above it are masked,
    /// and once the service's scale-down window has passed a count above it is lowered to it, so
    /// spare capacity the load no longer needs is given back even when the policy holds. None:
    /// no ceiling.
    pub hpa_ceiling: Option<f64>,
    /// What the ceiling remembers of its past recommendations over the scale-down window
    /// ([`CeilingHold`]; [`DownscaleStabilizer::apply`]).
    pub ceiling_hold: CeilingHold,
    /// The most replicas the ceiling lowers a service by at one decision (None: down to the
    /// ceiling at once). A service at 7 replicas whose ceiling falls to 1 between two bursts goes
    /// 7, 5, 3, 1 over three decisions, as an HPA scale-down policy of so many pods per period
    /// would, rather than 7 -> 1 just before the next burst.
    pub ceiling_release_step: Option<u32>,
    /// HPA levels: each delta of [`DELTAS`] in turn asks for the HPA formula's recommendation at
    /// one of these CPU targets (from the leanest, for -2, to the richest, for +2) instead of
    /// moving the count by itself: the policy chooses, per service and decision, how much
    /// headroom an HPA keeps, and every choice follows the load. A level below the current
    /// count holds it during the scale-down window. None: deltas move the count.
    pub hpa_levels: Option<[f64; 5]>,
    /// A +1 at a service's bound renews its scale-down window: where every scale-up is masked
    /// because the count is at its max or ceiling, +1 stays allowed and asks to hold the count
    /// and restart the window ([`DownscaleStabilizer::scaled_up`]), as the HPA's stabilisation
    /// keeps a recommendation above the max in its window. The policy, not a fixed rule, decides
    /// how long capacity at the bound is kept: without it a service at its max cannot scale up,
    /// so its window runs out under recurring bursts and the ceiling releases it.
    pub renew_at_bound: bool,
}

/// What a per-service replica delta moves from. `current` (default): the service's replicas
/// (Active + Starting). `hpa`: the HPA formula's recommendation ([`hpa_recommendation`] at the
/// observation's HPA target, 60%), so a delta of 0 does what the HPA would and the policy learns
/// corrections to it (a residual policy: it starts on the HPA front rather than at random).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    #[default]
    Current,
    Hpa,
}

/// The HPA targets a mask takes its counts at ([`ActionMask::from_view`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MaskTargets {
    /// Deltas move from the HPA's recommendation at this target ([`Anchor::Hpa`]); None: from
    /// the current count.
    pub anchor: Option<f64>,
    /// No count goes below the HPA's recommendation at this target ([`ActionConfig::hpa_floor`]).
    pub floor: Option<f64>,
    /// The floor's formula counts refused visits as load ([`ActionConfig::floor_counts_refused`]).
    pub floor_counts_refused: bool,
    /// No count goes above the HPA's recommendation at this target once the scale-down window
    /// has passed ([`ActionConfig::hpa_ceiling`]).
    pub ceiling: Option<f64>,
    /// The ceiling is at least the current count less this ([`ActionConfig::ceiling_release_step`]).
    pub ceiling_release_step: Option<u32>,
    /// Each delta asks for the HPA's recommendation at its level ([`ActionConfig::hpa_levels`]).
    pub levels: Option<[f64; 5]>,
    /// +1 at the bound holds and renews the window ([`ActionConfig::renew_at_bound`]).
    pub renew_at_bound: bool,
}

/// The index of `delta` in [`DELTAS`] (the mask's and the categorical head's order), if it is one.
pub fn delta_index(delta: i32) -> Option<usize> {
    DELTAS.iter().position(|&d| d == delta)
}

/// What a ceiling ([`ActionConfig::hpa_ceiling`]) remembers over the scale-down window. Each
/// decision's recommendation is the one before the release step
/// ([`ActionConfig::ceiling_release_step`]), so a slowed release does not hold itself up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CeilingHold {
    /// Nothing: the window restarts only when the service scales up.
    #[default]
    Off,
    /// The ceiling is the highest of its recommendations within the window, as the HPA's own
    /// stabilisation keeps its highest recommendation: a scale-up may go as high as the window's
    /// peak, and replicas a recurring burst needs are kept while bursts recur within the window.
    Peak,
    /// The window restarts whenever the recommendation reaches the current count: a service is
    /// lowered only after a whole window in which it never needed its count at the ceiling's
    /// target. The HPA's stabilisation for scale-downs, without raising the room for scale-ups
    /// above this decision's recommendation.
    WhileNeeded,
}

/// Why `action`'s HPA shields ([`ActionConfig::hpa_floor`], [`ActionConfig::hpa_ceiling`],
/// [`ActionConfig::hpa_levels`] and the switches that refine them) are not valid, alone or
/// together, if they are not, as `(field, why)`; `per_service`: every service gets its own delta.
/// Each target is a CPU target in (0, 10]; the ceiling's is below the floor's (a lower target
/// keeps more replicas); the levels fall from the leanest to the richest;
/// [`ActionConfig::floor_counts_refused`] and [`ActionConfig::floor_holds_peak`] (with a window)
/// need a floor, [`ActionConfig::ceiling_release_step`] (at least 1) and
/// [`ActionConfig::ceiling_hold`] (with a window) a ceiling. The agent config and the Python
/// binding check alike.
pub fn check_hpa_shields(action: &ActionConfig, per_service: bool) -> Result<(), (&'static str, String)> {
    let levels = action.hpa_levels.as_ref().map_or(&[][..], |l| &l[..]);
    let targets = [("hpa_floor", action.hpa_floor), ("hpa_ceiling", action.hpa_ceiling)]
        .into_iter()
        .filter_map(|(field, t)| t.map(|t| (field, t)))
        .chain(levels.iter().map(|&t| ("hpa_levels", t)));
    for (field, t) in targets {
        if !(t.is_finite() && t > 0.0 && t <= 10.0) {
            return Err((field, format!("{t} is outside 0 < target <= 10 (a CPU target, 1.0 = 100%)")));
        }
    }
    if let (Some(f), Some(c)) = (action.hpa_floor, action.hpa_ceiling) {
        if c >= f {
            return Err((
                "hpa_ceiling",
                format!("{c} is not below hpa_floor {f} (a lower CPU target keeps more replicas: the ceiling's)"),
            ));
        }
    }
    if action.ceiling_hold != CeilingHold::Off
        && (action.hpa_ceiling.is_none() || action.downscale_stabilization == SimTime::ZERO)
    {
        let field = match action.ceiling_hold {
            CeilingHold::Peak => "ceiling_holds_peak",
            _ => "ceiling_holds_while_needed",
        };
        return Err((
            field,
            "needs `hpa_ceiling` and a scale-down window (`downscale_stabilization_s`): it holds the ceiling over the window".into(),
        ));
    }
    if action.ceiling_release_step.is_some() && action.hpa_ceiling.is_none() {
        return Err(("ceiling_release_step", "needs `hpa_ceiling`: it slows the ceiling's release".into()));
    }
    if action.ceiling_release_step == Some(0) {
        return Err(("ceiling_release_step", "0 would never lower a count: use at least 1".into()));
    }
    if action.floor_holds_peak && (action.hpa_floor.is_none() || action.downscale_stabilization == SimTime::ZERO) {
        return Err((
            "floor_holds_peak",
            "needs `hpa_floor` and a scale-down window (`downscale_stabilization_s`): it holds the floor's peak over the window".into(),
        ));
    }
    if action.floor_counts_refused && action.hpa_floor.is_none() {
        return Err(("floor_counts_refused", "needs `hpa_floor`: it changes the floor's formula".into()));
    }
    let set = [
        ("hpa_floor", action.hpa_floor.is_some()),
        ("hpa_ceiling", action.hpa_ceiling.is_some()),
        ("hpa_levels", action.hpa_levels.is_some()),
    ];
    if let Some((field, _)) = set.iter().find(|(_, on)| *on && !per_service) {
        return Err((field, "needs per-service actions (`action: per_service`): it sets every service's count".into()));
    }
    let recommendations = action.stabilization == Stabilization::Recommendations;
    if action.hpa_ceiling.is_some() && recommendations {
        // The ceiling waits for the window after a scale-up; recommendations keep no such time.
        return Err(("hpa_ceiling", "takes `stabilization: after_scale_up`".into()));
    }
    if action.floor_holds_peak && recommendations {
        // The held floor is kept by the after-scale-up stabiliser, as a holding ceiling is.
        return Err(("floor_holds_peak", "takes `stabilization: after_scale_up`".into()));
    }
    if action.renew_at_bound {
        // A renewal restarts the window a scale-up starts; it holds the current count, so it
        // needs counts that move from the current one, one replica at a time.
        let conflict = if !per_service {
            Some("needs per-service actions (`action: per_service`)")
        } else if action.downscale_stabilization == SimTime::ZERO || recommendations {
            Some("needs a scale-down window (`downscale_stabilization_s`) with `stabilization: after_scale_up`")
        } else if action.multiplicative_steps || action.anchor != Anchor::Current || action.hpa_levels.is_some() {
            Some("takes `steps: additive` and `anchor: current`, without `hpa_levels`")
        } else {
            None
        };
        if let Some(why) = conflict {
            return Err(("renew_window_at_bound", why.into()));
        }
    }
    if action.hpa_levels.is_some() {
        if levels.windows(2).any(|w| w[1] >= w[0]) {
            return Err((
                "hpa_levels",
                format!(
                    "{levels:?} do not fall from the leanest target (for -2) to the richest (for +2): each must be below the one before"
                ),
            ));
        }
        let conflict = if action.multiplicative_steps {
            Some("takes `steps: additive` (a level sets the count)")
        } else if recommendations {
            Some("takes `stabilization: after_scale_up`")
        } else if action.anchor != Anchor::Current {
            Some("takes `anchor: current` (a level is its own anchor)")
        } else if action.hpa_floor.is_some() || action.hpa_ceiling.is_some() {
            Some("takes no `hpa_floor` or `hpa_ceiling` (the leanest and richest levels are the band)")
        } else {
            None
        };
        if let Some(why) = conflict {
            return Err(("hpa_levels", why.into()));
        }
    }
    Ok(())
}

impl ActionConfig {
    /// The targets of this config's masks; `hpa_target` is the observation's (the anchor's).
    pub fn mask_targets(&self, hpa_target: f64) -> MaskTargets {
        MaskTargets {
            anchor: (self.anchor == Anchor::Hpa).then_some(hpa_target),
            floor: self.hpa_floor,
            floor_counts_refused: self.floor_counts_refused,
            ceiling: self.hpa_ceiling,
            ceiling_release_step: self.ceiling_release_step,
            levels: self.hpa_levels,
            renew_at_bound: self.renew_at_bound,
        }
    }
}

/// The Kubernetes HPA's replica count for a service at `target` CPU utilisation of request:
/// `ceil(active x utilisation / target)`, held at the current count (Active + Starting) within
/// the HPA's 10% tolerance, when no Active replica reports a utilisation, and, while replicas are
/// starting, against going below the current count (the HPA does not scale down pods it is still
/// waiting for); then clamped to the service's min and max replicas.
pub fn hpa_recommendation(sv: &crate::metrics::ServiceView, target: f64) -> i64 {
    recommendation_at(sv, target, sv.cpu_utilization)
}

/// The most of a service's offered load [`offered_utilization`] infers from its served load: a
/// tenth served (ten times the utilisation), so one window of near-total refusal (a service
/// with no room at all) does not ask for an unbounded count.
const MOST_REFUSED_SHARE: f64 = 0.9;

/// The CPU utilisation (of request) a service's offered visits would cause: its utilisation
/// over the share of the window's visits it served, `utilisation / (1 - refused share)`, the
/// refused share held to at most [`MOST_REFUSED_SHARE`]. A saturated service runs at its CPU
/// limit whatever arrives; its refusals say how much more arrived. (Visits in a growing queue are
/// not counted: they are served later.)
pub fn offered_utilization(sv: &crate::metrics::ServiceView) -> Option<f64> {
    let refused = sv.error_rate.clamp(0.0, MOST_REFUSED_SHARE);
    sv.cpu_utilization.map(|u| u / (1.0 - refused))
}

/// [`hpa_recommendation`] at the utilisation the offered load would cause
/// ([`offered_utilization`]): the same count when nothing was refused.
pub fn offered_load_recommendation(sv: &crate::metrics::ServiceView, target: f64) -> i64 {
    recommendation_at(sv, target, offered_utilization(sv))
}

fn recommendation_at(sv: &crate::metrics::ServiceView, target: f64, utilization: Option<f64>) -> i64 {
    let current = (sv.counts.active + sv.counts.starting) as i64;
    let (min, max) = (sv.min_replicas as i64, sv.max_replicas as i64);
    let Some(util) = utilization.filter(|_| sv.counts.active > 0) else {
        return current.clamp(min, max);
    };
    let ratio = util / target;
    let wanted = if (ratio - 1.0).abs() <= 0.1 { current } else { (sv.counts.active as f64 * ratio).ceil() as i64 };
    let wanted = if sv.counts.starting > 0 { wanted.max(current) } else { wanted };
    wanted.clamp(min, max)
}

/// The replica count a delta of `delta` (-2..=2) asks for from `current` with multiplicative
/// steps: x1.5 for +1 and x2 for +2 (rounded up), x0.75 for -1 and x0.5 for -2 (rounded down),
/// and at least the additive step either way; then clamped to `[min, max]` and, going up, to
/// `current + room` (the cluster's free instance slots). With 3 replicas: +1 -> 5, +2 -> 6,
/// -1 -> 2, -2 -> 1. The HPA moves as far in one sync (it doubles under its default policy);
/// steps of one or two replicas take four decisions to go from 1 to 7.
pub fn multiplied_target(current: i64, delta: i32, min: i64, max: i64, room: i64) -> i64 {
    let c = current as f64;
    let target = match delta {
        1 => ((c * 1.5).ceil() as i64).max(current + 1),
        2 => ((c * 2.0).ceil() as i64).max(current + 2),
        -1 => ((c * 0.75).floor() as i64).min(current - 1),
        -2 => ((c * 0.5).floor() as i64).min(current - 2),
        _ => current + delta as i64,
    };
    if delta > 0 {
        target.min(max).min(current + room.max(0))
    } else {
        target.max(min)
    }
}

/// How an agent's scale-downs are stabilised over [`ActionConfig::downscale_stabilization`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stabilization {
    /// Scale-downs are masked for the window after the service's last scale-up.
    #[default]
    AfterScaleUp,
    /// As the Kubernetes HPA: every decision is a recommendation (current + delta), and a
    /// scale-down goes only as low as the highest recommendation within the window.
    Recommendations,
}

impl Default for ActionConfig {
    fn default() -> Self {
        ActionConfig {
            node_type_head: true,
            quota_head: true,
            quota_step_cores: 0.1,
            action_scale_step: 5.0,
            action_mig_step: 3.0,
            downscale_stabilization: SimTime::ZERO,
            stabilization: Stabilization::AfterScaleUp,
            multiplicative_steps: false,
            anchor: Anchor::Current,
            hpa_floor: None,
            floor_counts_refused: false,
            floor_holds_peak: false,
            hpa_ceiling: None,
            ceiling_hold: CeilingHold::Off,
            ceiling_release_step: None,
            hpa_levels: None,
            renew_at_bound: false,
        }
    }
}

/// One service's part of an action.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServiceAction {
    pub node_type: usize,
    pub delta: i32,
    pub quota: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// One service acts.
    One { service: usize, node_type: usize, delta: i32, quota: f32 },
    /// Every service acts (per-service mode), indexed by service.
    All(Vec<ServiceAction>),
    /// LLM pools (the original scaler's action): continuous values in [-1, 1] for the prompt pool's
    /// delta, the token pool's delta (each times `action_scale_step`, rounded) and a migration
    /// (times `action_mig_step`, rounded; > 0 moves token instances to the prompt role, < 0 the
    /// other way).
    Llm { prompt: f32, token: f32, migrate: f32 },
}

impl Action {
    /// The action in words, services and server types by name: `cart +1`, `frontend +2 on
    /// n2-standard-4, quota +0.250`; `frontend +1; cart -1` for per-service actions.
    pub fn describe(&self, app: &crate::app::AppSpec, cluster: &crate::cluster::ClusterSpec) -> String {
        let one = |service: usize, a: &ServiceAction| {
            let name = app.services.get(service).map_or_else(|| format!("#{service}"), |s| s.name.clone());
            let mut text = format!("{name} {:+}", a.delta);
            if a.node_type != 0 && a.delta > 0 {
                if let Some(k) = cluster.skus.get(a.node_type) {
                    text.push_str(&format!(" on {}", k.name));
                }
            }
            if a.quota != 0.0 {
                text.push_str(&format!(", quota {:+.3}", a.quota));
            }
            text
        };
        match self {
            Action::One { service, node_type, delta, quota } => {
                one(*service, &ServiceAction { node_type: *node_type, delta: *delta, quota: *quota })
            }
            Action::All(v) => {
                let parts: Vec<String> = v
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.delta != 0 || a.quota != 0.0)
                    .map(|(s, a)| one(s, a))
                    .collect();
                if parts.is_empty() {
                    "no change".into()
                } else {
                    parts.join("; ")
                }
            }
            Action::Llm { prompt, token, migrate } => {
                format!("prompt {prompt:+.3}, token {token:+.3}, migrate {migrate:+.3}")
            }
        }
    }

    pub fn noop() -> Action {
        Action::One { service: 0, node_type: 0, delta: 0, quota: 0.0 }
    }

    /// A uniformly random single-service action over `services` services (node type 0, quota
    /// in [-1, 1]): the random baseline of `scalesim env`, the benchmarks and the tests.
    pub fn random<R: rand::Rng>(rng: &mut R, services: usize) -> Action {
        Action::One {
            service: rng.gen_range(0..services),
            node_type: 0,
            delta: DELTAS[rng.gen_range(0..DELTAS.len())],
            quota: rng.gen_range(-1.0..=1.0),
        }
    }
}

/// The replica count a delta asks for ([`ActionMask::requested`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requested {
    pub count: i64,
    /// The delta alone asked for less: the count is the service's floor.
    pub raised_to_floor: bool,
    /// The delta alone asked for more: the count is the service's ceiling.
    pub lowered_to_ceiling: bool,
    /// A +1 at the service's bound under [`ActionConfig::renew_at_bound`]: the count is the
    /// current one, and the scale-down window restarts.
    pub renews_window: bool,
}

/// What is allowed now: per service, each of [`DELTAS`]; per service, each SKU for a scale-up.
/// A delta moves from the service's anchor (its current count, or the HPA's recommendation under
/// [`Anchor::Hpa`]); it is allowed when the count it asks for is within the service's min and max
/// replicas and, going up, within the cluster's room, and, going down, not below the service's
/// floor ([`ActionConfig::hpa_floor`]; a count below it is raised to it) and, going up, not above
/// its ceiling ([`ActionConfig::hpa_ceiling`]). A delta of 0 is always allowed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionMask {
    /// `[service][delta index]`.
    pub deltas: Vec<[bool; 5]>,
    /// `[service][sku]`: the service's instance fits the SKU.
    pub node_types: Vec<Vec<bool>>,
    /// `[service]`: the count a delta moves from.
    pub anchor: Vec<i64>,
    /// `[service]`: replicas now (Active + Starting).
    pub current: Vec<i64>,
    /// `[service]`: the count no delta goes below (the service's min without a floor).
    pub floor: Vec<i64>,
    /// `[service]`: the count no delta asks above (the service's max without a ceiling; at
    /// least the floor; within the scale-down window, at least the current count).
    pub ceiling: Vec<i64>,
    /// `[service]`: the ceiling before the release step ([`ActionConfig::ceiling_release_step`]):
    /// what a holding ceiling ([`CeilingHold`]) remembers.
    pub unstepped_ceiling: Vec<i64>,
    /// `[service][delta index]`: under HPA levels ([`ActionConfig::hpa_levels`]), the count each
    /// delta asks for (empty without levels: a delta asks for its anchor plus itself).
    pub levels: Vec<[i64; 5]>,
    /// `[service]`: (min, max) replicas.
    bounds: Vec<(i64, i64)>,
    /// Free instance slots in the cluster.
    room: i64,
    /// +1 at the bound holds and renews the window ([`ActionConfig::renew_at_bound`]).
    renew_at_bound: bool,
}

impl ActionMask {
    /// From min/max replicas (Active + Starting) and the cluster's room for new instances, as a
    /// controller sees them: the environment and a deployed agent mask alike, anchors and floors
    /// at `targets`.
    pub fn from_view(view: &ClusterView, app: &AppSpec, cluster: &ClusterSpec, targets: MaskTargets) -> ActionMask {
        let mut mask = ActionMask::default();
        mask.refill(view, app, cluster, targets);
        mask
    }

    /// Every delta and every SKU allowed for `services` services on `skus` SKUs, deltas moving
    /// from the current count (for tests and hand-made actions).
    pub fn open(services: usize, skus: usize) -> ActionMask {
        ActionMask {
            deltas: vec![[true; 5]; services],
            node_types: vec![vec![true; skus]; services],
            ..Default::default()
        }
    }

    /// [`Self::from_view`] into this mask's storage (the environment refills one mask per step).
    pub fn refill(&mut self, view: &ClusterView, app: &AppSpec, cluster: &ClusterSpec, targets: MaskTargets) {
        let (live, max_instances) = view.instances;
        self.room = max_instances.saturating_sub(live) as i64;
        self.renew_at_bound = targets.renew_at_bound;
        let n = app.services.len();
        if targets.levels.is_some() {
            self.levels.resize(n, [0; 5]);
        } else {
            self.levels.clear();
        }
        self.deltas.resize(n, [false; 5]);
        self.node_types.resize_with(n, Vec::new);
        self.anchor.resize(n, 0);
        self.current.resize(n, 0);
        self.floor.resize(n, 0);
        self.ceiling.resize(n, 0);
        self.unstepped_ceiling.resize(n, 0);
        self.bounds.resize(n, (0, 0));
        for (s, spec) in app.services.iter().enumerate() {
            let sv = &view.services[s];
            self.current[s] = (sv.counts.active + sv.counts.starting) as i64;
            self.bounds[s] = (spec.min_replicas as i64, spec.max_replicas as i64);
            self.anchor[s] = match targets.anchor {
                Some(target) => hpa_recommendation(sv, target),
                None => self.current[s],
            };
            let min = spec.min_replicas as i64;
            let floor_formula =
                if targets.floor_counts_refused { offered_load_recommendation } else { hpa_recommendation };
            self.floor[s] = targets.floor.map_or(min, |target| floor_formula(sv, target).max(min));
            let max = spec.max_replicas as i64;
            self.unstepped_ceiling[s] =
                targets.ceiling.map_or(max, |target| hpa_recommendation(sv, target).max(min)).max(self.floor[s]);
            self.ceiling[s] = match targets.ceiling_release_step {
                Some(step) => self.unstepped_ceiling[s].max(self.current[s] - step as i64),
                None => self.unstepped_ceiling[s],
            };
            if let Some(levels) = targets.levels {
                // Going up, no level asks for more than the cluster's room.
                let most = self.current[s] + self.room;
                self.levels[s] = levels.map(|target| hpa_recommendation(sv, target).min(most));
            }
            self.deltas[s] = self.row(s);
            let fits = &mut self.node_types[s];
            fits.clear();
            fits.extend(
                cluster
                    .skus
                    .iter()
                    .map(|k| spec.shape.cpu_request <= k.cores && spec.shape.memory_mib <= k.memory_gib * 1024.0),
            );
        }
    }

    /// Which deltas service `s` may take from its anchor. (A delta that would go below the
    /// floor is masked, not raised: it would repeat another delta. The floor is at least the
    /// service's min, so no count it allows is below the min. A scale-up above the ceiling is
    /// masked; the ceiling is at most the max unless the floor is above it.)
    fn row(&self, s: usize) -> [bool; 5] {
        let (anchor, current, floor, (_, max)) = (self.anchor[s], self.current[s], self.floor[s], self.bounds[s]);
        let ceiling = self.ceiling[s];
        let mut row = [false; 5];
        for (i, &d) in DELTAS.iter().enumerate() {
            let asked = self.levels.get(s).map_or(anchor + d as i64, |levels| levels[i]);
            let target = asked.max(floor);
            let within = if d > 0 { target <= ceiling } else { asked >= floor };
            row[i] = d == 0 || (target <= max && target - current <= self.room && within);
        }
        if self.renew_at_bound && self.at_bound(s, anchor + 1) {
            row[delta_index(1).expect("+1 is a delta")] = true;
        }
        row
    }

    /// Under [`ActionConfig::renew_at_bound`]: `asked` (a +1's count) is above service `s`'s max
    /// or ceiling, so the +1 holds the count and renews the window. (Not when only the
    /// cluster's room stops it: that is no bound of the service's.)
    fn at_bound(&self, s: usize, asked: i64) -> bool {
        let max = self.bounds.get(s).map_or(i64::MAX, |&(_, max)| max);
        let ceiling = self.ceiling.get(s).copied().unwrap_or(i64::MAX);
        asked > max.min(ceiling)
    }

    /// The replica count delta `delta` of service `s`, at `current` replicas, asks for: its
    /// anchor plus the delta (the current count plus the delta for a mask built by hand, without
    /// anchors) or, with `multiplicative` steps, [`multiplied_target`] from `current` within
    /// `(min, max)` and `room` free instance slots; then lowered to the service's ceiling and
    /// raised to its floor. The executor and a deployed agent both ask it.
    pub fn requested(
        &self,
        s: usize,
        current: i64,
        delta: i32,
        multiplicative: bool,
        (min, max): (i64, i64),
        room: i64,
    ) -> Requested {
        let asked = if multiplicative && delta != 0 {
            multiplied_target(current, delta, min, max, room)
        } else if let Some(levels) = self.levels.get(s) {
            delta_index(delta).map_or(current, |i| levels[i])
        } else {
            self.anchor.get(s).copied().unwrap_or(current) + delta as i64
        };
        if self.renew_at_bound && delta == 1 && !multiplicative && self.at_bound(s, asked) {
            return Requested {
                // At the bound the count is at least the floor (the ceiling is never below it).
                count: current,
                raised_to_floor: false,
                lowered_to_ceiling: false,
                renews_window: true,
            };
        }
        let ceiling = self.ceiling.get(s).copied().unwrap_or(i64::MAX);
        let floor = self.floor.get(s).copied().unwrap_or(i64::MIN);
        Requested {
            count: asked.min(ceiling).max(floor),
            raised_to_floor: asked < floor,
            lowered_to_ceiling: asked > ceiling,
            renews_window: false,
        }
    }

    pub fn allows_delta(&self, service: usize, delta: i32) -> bool {
        delta_index(delta).is_some_and(|i| self.deltas.get(service).is_some_and(|r| r[i]))
    }
}

/// The scale-down stabilisation window of the Kubernetes HPA, for agents. After a scale-up
/// ([`Stabilization::AfterScaleUp`]): a service's scale-downs are masked for `window` after it
/// scales up, so a policy cannot undo a scale-up at the next decision. On recommendations
/// ([`Stabilization::Recommendations`], the HPA's own rule): each decision recommends current +
/// delta replicas, and a scale-down goes only as low as the highest recommendation of the last
/// `window` ([`Self::stabilize`]); a policy that asks for less once, at a quiet moment, is held
/// until it has asked for less for the whole window. The environment (training) and a deployed
/// agent each keep one, so both act alike. A scale-up is never held back: following a rise is
/// what the window protects.
#[derive(Clone, Debug, Default)]
pub struct DownscaleStabilizer {
    window: SimTime,
    mode: Stabilization,
    /// When each service last scaled up.
    last_up: Vec<Option<SimTime>>,
    /// On recommendations: each service's recommendations within the window, oldest first.
    recommendations: Vec<std::collections::VecDeque<(SimTime, i64)>>,
    /// What the ceiling holds ([`ActionConfig::ceiling_hold`]).
    ceiling_hold: CeilingHold,
    /// Unless the ceiling holds nothing: each service's ceilings before the release step within
    /// the window, oldest first.
    ceiling_history: Vec<std::collections::VecDeque<(SimTime, i64)>>,
    /// With [`ActionConfig::floor_holds_peak`]: each service's floors within the window, oldest
    /// first (None: the floor is this decision's).
    floor_history: Option<Vec<std::collections::VecDeque<(SimTime, i64)>>>,
}

/// Records `value` at `now` in `past` (oldest first), forgets what is `window` old or older, and
/// returns the highest value left: the HPA's "highest recommendation within the window", which
/// the recommendations mode and a peak-holding ceiling both keep.
fn highest_within(
    past: &mut std::collections::VecDeque<(SimTime, i64)>,
    now: SimTime,
    window: SimTime,
    value: i64,
) -> i64 {
    while past.front().is_some_and(|&(t, _)| t + window <= now) {
        past.pop_front();
    }
    past.push_back((now, value));
    past.iter().map(|&(_, v)| v).max().unwrap_or(value)
}

impl DownscaleStabilizer {
    /// The stabiliser `action` asks for: its window and mode, holding the ceiling's peak over
    /// the window if it says so. The environment and a deployed agent both build it here.
    pub fn for_action(action: &ActionConfig) -> Self {
        DownscaleStabilizer {
            window: action.downscale_stabilization,
            mode: action.stabilization,
            last_up: Vec::new(),
            recommendations: Vec::new(),
            ceiling_hold: action.ceiling_hold,
            ceiling_history: Vec::new(),
            floor_history: action.floor_holds_peak.then(Vec::new),
        }
    }

    /// On recommendations: records that `service`, at `current` replicas, was asked to move by
    /// `delta` at `now`, and returns the delta to execute: `delta` itself for a scale-up or a
    /// hold; for a scale-down, down only to the highest recommendation within the window (0 when
    /// that is the current count or more). Other modes return `delta`.
    pub fn stabilize(&mut self, now: SimTime, service: usize, current: i64, delta: i32) -> i32 {
        if self.mode != Stabilization::Recommendations || self.window == SimTime::ZERO {
            return delta;
        }
        if self.recommendations.len() <= service {
            self.recommendations.resize_with(service + 1, Default::default);
        }
        let highest = highest_within(&mut self.recommendations[service], now, self.window, current + delta as i64);
        if delta >= 0 {
            return delta;
        }
        (highest.min(current) - current) as i32
    }

    /// On recommendations: `action` as it is to be executed, every delta through
    /// [`Self::stabilize`] against the replicas (Active + Starting) in `view`, with a note for each
    /// scale-down held back (by service). LLM actions pass unchanged.
    pub fn stabilize_action(
        &mut self,
        now: SimTime,
        view: &ClusterView,
        action: &Action,
    ) -> (Action, Vec<(usize, String)>) {
        let mut notes = Vec::new();
        let mut one = |s: usize, delta: i32| -> i32 {
            let Some(sv) = view.services.get(s) else {
                return delta;
            };
            let current = (sv.counts.active + sv.counts.starting) as i64;
            let done = self.stabilize(now, s, current, delta);
            if done != delta {
                notes.push((
                    s,
                    format!(
                    "{} {delta:+}: held at {done:+} by the scale-down stabilisation (a higher recommendation within its window)",
                        sv.name
                    ),
                ));
            }
            done
        };
        let out = match action {
            Action::One { service, node_type, delta, quota } => {
                Action::One { service: *service, node_type: *node_type, delta: one(*service, *delta), quota: *quota }
            }
            Action::All(v) => {
                Action::All(v.iter().enumerate().map(|(s, a)| ServiceAction { delta: one(s, a.delta), ..*a }).collect())
            }
            Action::Llm { .. } => action.clone(),
        };
        (out, notes)
    }

    /// Service `service` scaled up at `now`.
    pub fn scaled_up(&mut self, now: SimTime, service: usize) {
        if self.last_up.len() <= service {
            self.last_up.resize(service + 1, None);
        }
        self.last_up[service] = Some(now);
    }

    /// After a scale-up: masks the scale-downs of every service that scaled up less than `window`
    /// before `now`: every delta whose count is below the current one. An anchor below the
    /// current count (the HPA's recommendation) is first raised to it, so a delta of 0 holds; so
    /// is a ceiling ([`ActionConfig::hpa_ceiling`]), which lowers no count within the window.
    /// (On recommendations nothing is masked.) A floor that holds its peak
    /// ([`ActionConfig::floor_holds_peak`]) first records each service's floor of this decision and
    /// raises it to the highest within the window (and the ceiling with it). A holding ceiling ([`CeilingHold`]) first records
    /// each service's ceiling of this decision (before the release step) and raises it to the
    /// highest within the window (`Peak`), or to that highest but no higher than the current
    /// count (`WhileNeeded`): call it once per decision.
    pub fn apply(&mut self, now: SimTime, mask: &mut ActionMask) {
        if self.window == SimTime::ZERO || self.mode != Stabilization::AfterScaleUp {
            return;
        }
        if let Some(history) = &mut self.floor_history {
            history.resize_with(mask.floor.len(), Default::default);
            for (s, past) in history.iter_mut().enumerate() {
                let peak = highest_within(past, now, self.window, mask.floor[s]);
                if peak > mask.floor[s] {
                    // As `refill` keeps them: no ceiling below the floor.
                    mask.floor[s] = peak;
                    mask.ceiling[s] = mask.ceiling[s].max(peak);
                    if let Some(c) = mask.unstepped_ceiling.get_mut(s) {
                        *c = (*c).max(peak);
                    }
                    mask.deltas[s] = mask.row(s);
                }
            }
        }
        if self.ceiling_hold != CeilingHold::Off {
            self.ceiling_history.resize_with(mask.ceiling.len(), Default::default);
            for (s, past) in self.ceiling_history.iter_mut().enumerate() {
                let Some(&recommended) = mask.unstepped_ceiling.get(s) else { continue };
                let peak = highest_within(past, now, self.window, recommended);
                let held = match self.ceiling_hold {
                    CeilingHold::Peak => peak,
                    // Needed within the window: no lower than the current count, and no higher.
                    _ => mask.current.get(s).map_or(recommended, |&current| peak.min(current)),
                };
                if held > mask.ceiling[s] {
                    mask.ceiling[s] = held;
                    mask.deltas[s] = mask.row(s);
                }
            }
        }
        for (s, up) in self.last_up.iter().enumerate() {
            if s >= mask.deltas.len() || !up.is_some_and(|t| now < t + self.window) {
                continue;
            }
            let Some(&current) = mask.current.get(s) else {
                // A mask built by hand, without anchors: deltas move from the current count.
                mask.deltas[s].iter_mut().zip(&DELTAS).for_each(|(ok, &d)| *ok &= d >= 0);
                continue;
            };
            // Within the window no ceiling lowers the count.
            if mask.ceiling.get(s).is_some_and(|&c| c < current) {
                mask.ceiling[s] = current;
                mask.deltas[s] = mask.row(s);
            }
            if let Some(levels) = mask.levels.get_mut(s) {
                // A level below the current count holds it: every level stays allowed.
                levels.iter_mut().for_each(|count| *count = (*count).max(current));
                mask.deltas[s] = mask.row(s);
                continue;
            }
            if mask.anchor[s] < current {
                mask.anchor[s] = current;
                mask.deltas[s] = mask.row(s);
            }
            let anchor = mask.anchor[s];
            mask.deltas[s].iter_mut().zip(&DELTAS).for_each(|(ok, &d)| *ok &= anchor + d as i64 >= current);
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::multiplied_target;

    /// By hand, min 1, max 7, room 10: from 3, +1 -> ceil(4.5) = 5, +2 -> 6, -1 -> floor(2.25) =
    /// 2, -2 -> floor(1.5) = 1; from 1, +1 -> max(ceil(1.5), 2) = 2, +2 -> 3 (the additive step is
    /// the least); from 5, +2 -> 10, clamped to 7, and with 1 free slot to 6; from 2, -2 -> the
    /// minimum, 1; 0 holds.
    #[test]
    fn multiplicative_steps_by_hand() {
        let t = |current, delta| multiplied_target(current, delta, 1, 7, 10);
        assert_eq!((t(3, 1), t(3, 2), t(3, -1), t(3, -2)), (5, 6, 2, 1));
        assert_eq!((t(1, 1), t(1, 2)), (2, 3));
        assert_eq!((t(5, 2), multiplied_target(5, 2, 1, 7, 1)), (7, 6));
        assert_eq!((t(2, -2), t(4, 0)), (1, 4));
    }
}
