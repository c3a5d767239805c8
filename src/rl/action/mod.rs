//! The agent's action, and everything between it and the backend. Here: what an action is
//! ([`Action`], per service [`ServiceAction`]) and the settings that shape it ([`ActionConfig`]).
//! In the submodules: which parts of an action are allowed now (`mask.rs`: [`ActionMask`]); the
//! replica counts the HPA formula and the step rules ask for (`counts.rs`); the checks that the
//! HPA shields' settings fit together (`shields.rs`); the scale-down window (`stabilizer.rs`:
//! [`DownscaleStabilizer`]); and the executor, which turns an action into scale commands on the
//! backend and nothing else (`execute.rs`: [`execute`]). A masked (forbidden) part of an action is
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

mod counts;
mod execute;
mod fast_floor;
mod mask;
mod shields;
mod stabilizer;

pub use counts::{
    bound_recommendation, busiest_mean, hpa_recommendation, multiplied_target, offered_utilization, peak_ratio,
};
pub use execute::{execute, raise_to_fast_floor, ActionReport};
pub use fast_floor::{fast_floor_count, fast_floor_raises, FastFloor};
pub use mask::{ActionMask, MaskTargets, Requested};
pub use shields::{check_fast_floor, check_forecast_switches, check_hpa_shields};
pub use stabilizer::DownscaleStabilizer;

use crate::engine::SimTime;

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
    /// The floor reads the load of this-many seconds of the metrics window rather than the
    /// window's mean: its utilisation is multiplied by the ratio of that span's mean arrival
    /// rate to the window's mean rate, at least 1 ([`peak_ratio`]); the span is the busiest N
    /// seconds within the window or the latest ([`Self::floor_peak_reads`]). A burst of a few
    /// seconds inside a quiet 15 s window otherwise asks for a fraction of what it needed
    /// (Knative reads its latest 6 s, a panic window, beside its 60 s stable one for the same
    /// reason). None: the window's mean.
    pub floor_peak_s: Option<f64>,
    /// Which span of `floor_peak_s` seconds the floor reads ([`PeakSpan`]): the busiest within
    /// the window (default) or the latest.
    pub floor_peak_reads: PeakSpan,
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
    /// Under [`Self::renew_at_bound`], a +1 renews only while the load backs the count: the
    /// ceiling's own recommendation (the HPA's count at [`Self::hpa_ceiling`], before the release
    /// step and at least the floor) reaches the service's current count. Without it a +1 renews
    /// whenever the count is at or above the ceiling, so after the load falls the policy can
    /// hold every replica by asking +1; the HPA's stabilisation holds only recommendations its
    /// metrics made.
    pub renew_only_while_needed: bool,
    /// The floor counts for each service's load forecast this many seconds ahead
    /// ([`crate::rl::load_trend::load_ratio`]) when it is above the current load: its utilisation
    /// is multiplied by the forecast's ratio to the current rate, at least 1. A rising load raises
    /// the floor before its queues do; a falling one leaves the floor as it was. None: the
    /// current load's.
    pub floor_forecast_s: Option<f64>,
    /// The ceiling counts for the load forecast this far ahead when it is above the current load,
    /// as [`Self::floor_forecast_s`] the floor: while a service's load rises along its trend, the
    /// ceiling does not give back replicas the rise will need (nor mask scale-ups to them). None:
    /// the current load's.
    pub ceiling_forecast_s: Option<f64>,
    /// Between decisions, every [`FastFloor::every`], each service below what its latest
    /// [`FastFloor::reads_s`] seconds of arrivals need at the floor's target
    /// ([`fast_floor_count`]) is raised to that count, as Knative's panic window answers a step
    /// within seconds. Needs [`Self::hpa_floor`] (its target, and whether refusals count). None:
    /// counts move only at decisions.
    pub fast_floor: Option<FastFloor>,
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

/// Which span of [`ActionConfig::floor_peak_s`] seconds within the metrics window the floor
/// reads ([`peak_ratio`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeakSpan {
    /// The busiest span anywhere in the window: a burst inside the window counts even when it
    /// has passed.
    #[default]
    Busiest,
    /// The latest span, as Knative's panic window: a load still rising at the window's end reads
    /// high; a burst that has passed reads as the window's mean, so the floor does not ask for
    /// capacity that would arrive after it.
    Latest,
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

impl ActionConfig {
    /// The targets of this config's masks; `hpa_target` is the observation's (the anchor's).
    pub fn mask_targets(&self, hpa_target: f64) -> MaskTargets {
        MaskTargets {
            anchor: (self.anchor == Anchor::Hpa).then_some(hpa_target),
            floor: self.hpa_floor,
            floor_counts_refused: self.floor_counts_refused,
            floor_peak_s: self.floor_peak_s,
            floor_peak_reads: self.floor_peak_reads,
            ceiling: self.hpa_ceiling,
            ceiling_release_step: self.ceiling_release_step,
            levels: self.hpa_levels,
            renew_at_bound: self.renew_at_bound,
            renew_only_while_needed: self.renew_only_while_needed,
            floor_forecast_s: self.floor_forecast_s,
            ceiling_forecast_s: self.ceiling_forecast_s,
        }
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
            floor_peak_s: None,
            floor_peak_reads: PeakSpan::Busiest,
            floor_holds_peak: false,
            hpa_ceiling: None,
            ceiling_hold: CeilingHold::Off,
            ceiling_release_step: None,
            hpa_levels: None,
            renew_at_bound: false,
            renew_only_while_needed: false,
            floor_forecast_s: None,
            ceiling_forecast_s: None,
            fast_floor: None,
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
