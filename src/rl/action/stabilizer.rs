//! The scale-down stabilisation window of the Kubernetes HPA, for agents: when a service last
//! scaled up (or renewed its window), what its holding floor and ceiling remember over the window,
//! and the scale-downs the window masks or holds back. It changes masks and actions; it never
//! scales anything itself.

use super::mask::ActionMask;
use super::{Action, ActionConfig, CeilingHold, ServiceAction, Stabilization, DELTAS};
use crate::engine::SimTime;
use crate::metrics::ClusterView;

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
