//! The action mask: which deltas each service may take now, from what count they move (the anchor),
//! and between which counts (the HPA floor and ceiling); and the count a delta asks for. Built from
//! a controller's view of the cluster, alike in training and in a deployed agent; the scale-down
//! window's changes to it are the stabiliser's.

use super::counts::{bound_recommendation, hpa_recommendation, multiplied_target, peak_ratio};
use super::{delta_index, PeakSpan, DELTAS};
#[cfg(doc)]
use super::{ActionConfig, Anchor, CeilingHold};
use crate::app::AppSpec;
use crate::cluster::ClusterSpec;
use crate::metrics::ClusterView;
use crate::rl::load_trend::load_ratio_ahead;

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
    /// The floor reads this-many seconds of the window ([`ActionConfig::floor_peak_s`]) ...
    pub floor_peak_s: Option<f64>,
    /// ... its busiest span or its latest ([`ActionConfig::floor_peak_reads`]).
    pub floor_peak_reads: PeakSpan,
    /// No count goes above the HPA's recommendation at this target once the scale-down window
    /// has passed ([`ActionConfig::hpa_ceiling`]).
    pub ceiling: Option<f64>,
    /// The ceiling is at least the current count less this ([`ActionConfig::ceiling_release_step`]).
    pub ceiling_release_step: Option<u32>,
    /// Each delta asks for the HPA's recommendation at its level ([`ActionConfig::hpa_levels`]).
    pub levels: Option<[f64; 5]>,
    /// +1 at the bound holds and renews the window ([`ActionConfig::renew_at_bound`]).
    pub renew_at_bound: bool,
    /// ... only while the ceiling's recommendation reaches the current count
    /// ([`ActionConfig::renew_only_while_needed`]).
    pub renew_only_while_needed: bool,
    /// The floor reads the load forecast this far ahead when it is higher
    /// ([`ActionConfig::floor_forecast_s`]).
    pub floor_forecast_s: Option<f64>,
    /// The ceiling reads the load forecast this far ahead when it is higher
    /// ([`ActionConfig::ceiling_forecast_s`]).
    pub ceiling_forecast_s: Option<f64>,
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
    /// ... only while the ceiling's recommendation reaches the current count
    /// ([`ActionConfig::renew_only_while_needed`]).
    renew_only_while_needed: bool,
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
        self.renew_only_while_needed = targets.renew_only_while_needed;
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
            self.floor[s] = targets.floor.map_or(min, |target| {
                let peak = targets
                    .floor_peak_s
                    .map_or(1.0, |secs| window_peak_ratio(view, sv, secs, targets.floor_peak_reads));
                let ahead = rising_ratio(view, sv, targets.floor_forecast_s);
                bound_recommendation(sv, target, targets.floor_counts_refused, peak * ahead).max(min)
            });
            let max = spec.max_replicas as i64;
            self.unstepped_ceiling[s] = targets
                .ceiling
                .map_or(max, |target| {
                    // The HPA formula at the ceiling's target, its utilisation scaled by the
                    // forecast's rise (1 without a forecast: the plain recommendation).
                    let ahead = rising_ratio(view, sv, targets.ceiling_forecast_s);
                    bound_recommendation(sv, target, false, ahead).max(min)
                })
                .max(self.floor[s]);
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
    pub(super) fn row(&self, s: usize) -> [bool; 5] {
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
    /// cluster's room stops it: that is no bound of the service's. Nor, under
    /// [`ActionConfig::renew_only_while_needed`], when the ceiling's recommendation is below the
    /// current count: the count is above it only because the window holds it.)
    fn at_bound(&self, s: usize, asked: i64) -> bool {
        let max = self.bounds.get(s).map_or(i64::MAX, |&(_, max)| max);
        let ceiling = self.ceiling.get(s).copied().unwrap_or(i64::MAX);
        if self.renew_only_while_needed {
            let current = self.current.get(s).copied().unwrap_or(i64::MIN);
            if self.unstepped_ceiling.get(s).is_some_and(|&needed| needed < current) {
                return false;
            }
        }
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

/// [`peak_ratio`] of a service's arrivals over the view's metrics window, for `peak_s` seconds
/// ([`ActionConfig::floor_peak_s`]); 1 when the view keeps no per-interval history.
fn window_peak_ratio(view: &ClusterView, sv: &crate::metrics::ServiceView, peak_s: f64, span: PeakSpan) -> f64 {
    let interval = view.history_interval.as_secs_f64();
    if interval <= 0.0 {
        return 1.0;
    }
    let entries = |secs: f64| (secs / interval).round().max(1.0) as usize;
    peak_ratio(&sv.rps_history, entries(view.window.as_secs_f64()), entries(peak_s), span)
}

/// How much busier service `sv` will be `horizon_s` ahead along its trend
/// ([`load_ratio_ahead`]), at least 1: a bound that reads the forecast rises ahead of a rising load
/// and stays the current load's otherwise. 1 without a horizon.
fn rising_ratio(view: &ClusterView, sv: &crate::metrics::ServiceView, horizon_s: Option<f64>) -> f64 {
    load_ratio_ahead(view, sv, horizon_s).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One service of 1..=7 replicas at 4, its ceiling 4 (within its window: the count), the
    /// ceiling's own recommendation `needed`, room for 10 more, renewing at the bound.
    fn at_ceiling(needed: i64, only_while_needed: bool) -> ActionMask {
        ActionMask {
            deltas: vec![[false; 5]],
            node_types: vec![vec![true]],
            anchor: vec![4],
            current: vec![4],
            floor: vec![1],
            ceiling: vec![4],
            unstepped_ceiling: vec![needed],
            levels: vec![],
            bounds: vec![(1, 7)],
            room: 10,
            renew_at_bound: true,
            renew_only_while_needed: only_while_needed,
        }
    }

    #[test]
    fn a_plus_one_renews_only_while_the_ceilings_recommendation_reaches_the_count() {
        let renewal = Requested { count: 4, raised_to_floor: false, lowered_to_ceiling: false, renews_window: true };
        // Needed (the recommendation is the count): +1 asks 5 > 4, holds and renews; +2 is masked.
        for only in [false, true] {
            let mask = at_ceiling(4, only);
            assert_eq!(mask.row(0), [true, true, true, true, false], "only while needed: {only}");
            assert_eq!(mask.requested(0, 4, 1, false, (1, 7), 10), renewal);
        }
        // The load fell (the recommendation is 2; the window holds 4): the plain renewal still
        // holds all four; only while needed, +1 is masked and asks no renewal (lowered to 4).
        assert_eq!(at_ceiling(2, false).row(0), [true, true, true, true, false]);
        assert_eq!(at_ceiling(2, false).requested(0, 4, 1, false, (1, 7), 10), renewal);
        let mask = at_ceiling(2, true);
        assert_eq!(mask.row(0), [true, true, true, false, false]);
        let plain = Requested { count: 4, raised_to_floor: false, lowered_to_ceiling: true, renews_window: false };
        assert_eq!(mask.requested(0, 4, 1, false, (1, 7), 10), plain);
    }

    #[test]
    fn bounds_that_read_the_forecast_rise_with_a_rising_load_and_only_then() {
        let plain = MaskTargets { floor: Some(1.0), ceiling: Some(0.5), ..Default::default() };
        let ahead = MaskTargets { floor_forecast_s: Some(30.0), ceiling_forecast_s: Some(30.0), ..plain };
        // Service 0's last minute of per-second rates is `history`; every service runs at 4
        // replicas, 60% CPU and 100 rps.
        let bounds = |history: Vec<f64>, targets: MaskTargets| {
            let (sc, mut view) = crate::rl::load_trend::tests::steady_boutique();
            view.services[0].rps_history = history;
            let mask = ActionMask::from_view(&view, &sc.app, &sc.cluster, targets);
            (mask.floor[0], mask.ceiling[0])
        };
        // The current load: floor ceil(4 x 0.6 / 1.0) = 3, ceiling ceil(4 x 0.6 / 0.5) = 5.
        let rising: Vec<f64> = (0..60).map(|i| 41.0 + i as f64).collect();
        assert_eq!(bounds(rising.clone(), plain), (3, 5));
        // Rising 1 rps/s to 100: 130 in 30 s, utilisation 0.78: floor ceil(3.12) = 4, ceiling
        // ceil(6.24) = 7.
        assert_eq!(bounds(rising.clone(), ahead), (4, 7));
        // Each bound reads it only when asked.
        assert_eq!(bounds(rising.clone(), MaskTargets { floor_forecast_s: None, ..ahead }), (3, 7));
        assert_eq!(bounds(rising, MaskTargets { ceiling_forecast_s: None, ..ahead }), (4, 5));
        // Flat or falling: the current load's bounds (a falling forecast never lowers them).
        assert_eq!(bounds(vec![100.0; 60], ahead), (3, 5));
        let falling: Vec<f64> = (0..60).map(|i| 159.0 - i as f64).collect();
        assert_eq!(bounds(falling, ahead), (3, 5));
    }
}
