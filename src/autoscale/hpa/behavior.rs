//! HPA `behavior`: stabilisation windows and scaling-rate policies, following
//! `normalizeDesiredReplicasWithBehaviors` in `pkg/controller/podautoscaler/horizontal.go`.
//!
//! - Stabilisation: the controller keeps every recommendation with its time. A scale-up goes no
//!   higher than the lowest recommendation in the scale-up window; a scale-down goes no lower than
//!   the highest recommendation in the scale-down window (default 300 s).
//! - Rate policies: each policy limits the change over its period, counted from the replica count
//!   at the period's start (current minus scale-ups plus scale-downs in the period). `selectPolicy`
//!   Max takes the policy allowing the largest change, Min the smallest, Disabled forbids the
//!   direction. Percent scale-ups round up; percent scale-downs round down (toward fewer pods).

use crate::engine::SimTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatePolicy {
    pub kind: PolicyKind,
    pub value: u32,
    pub period: SimTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

/// One direction's rules (`scaleUp` or `scaleDown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingRules {
    pub stabilization_window: SimTime,
    pub select: SelectPolicy,
    pub policies: Vec<RatePolicy>,
}

impl ScalingRules {
    /// Kubernetes' default scale-up: no stabilisation; the larger of 100% and 4 pods per 15 s.
    pub fn default_scale_up() -> ScalingRules {
        ScalingRules {
            stabilization_window: SimTime::ZERO,
            select: SelectPolicy::Max,
            policies: vec![
                RatePolicy { kind: PolicyKind::Pods, value: 4, period: SimTime::from_secs(15) },
                RatePolicy { kind: PolicyKind::Percent, value: 100, period: SimTime::from_secs(15) },
            ],
        }
    }

    /// Kubernetes' default scale-down: 300 s stabilisation; 100% per 15 s.
    pub fn default_scale_down() -> ScalingRules {
        ScalingRules {
            stabilization_window: SimTime::from_secs(300),
            select: SelectPolicy::Max,
            policies: vec![RatePolicy { kind: PolicyKind::Percent, value: 100, period: SimTime::from_secs(15) }],
        }
    }

    fn longest_period(&self) -> SimTime {
        self.policies.iter().map(|p| p.period).max().unwrap_or(SimTime::ZERO)
    }
}

/// Both directions' rules (an HPA's `behavior`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingBehavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

impl Default for ScalingBehavior {
    fn default() -> Self {
        ScalingBehavior { scale_up: ScalingRules::default_scale_up(), scale_down: ScalingRules::default_scale_down() }
    }
}

/// The memory of one HPA: past recommendations and scale events.
#[derive(Clone, Debug, Default)]
pub struct BehaviorState {
    recommendations: Vec<(SimTime, u32)>,
    scale_up_events: Vec<(SimTime, u32)>,
    scale_down_events: Vec<(SimTime, u32)>,
}

/// How the normalisation ended, for the action log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    pub replicas: u32,
    /// The recommendation after stabilisation, before rate limits and min/max.
    pub stabilized: u32,
    /// `None` when the desired count passed unchanged.
    pub limit: Option<String>,
}

impl BehaviorState {
    /// Stabilises `desired` and applies the rate policies and `[min, max]`, as the controller does
    /// at `now` with `current` replicas. Records `desired` as a recommendation.
    pub fn normalize(
        &mut self,
        now: SimTime,
        current: u32,
        desired: u32,
        min: u32,
        max: u32,
        behavior: &ScalingBehavior,
    ) -> Normalized {
        let (up, down) = (&behavior.scale_up, &behavior.scale_down);
        // Stabilisation (stabilizeRecommendationWithBehaviors). A recommendation counts if it is
        // strictly after `now - window` (written as `t + window > now`: no underflow near t = 0).
        let (up_w, down_w) = (up.stabilization_window, down.stabilization_window);
        let mut up_rec = desired;
        let mut down_rec = desired;
        let mut old = None;
        for (i, &(t, r)) in self.recommendations.iter().enumerate() {
            if t + up_w > now {
                up_rec = up_rec.min(r);
            }
            if t + down_w > now {
                down_rec = down_rec.max(r);
            }
            if t + up_w < now && t + down_w < now {
                old = Some(i);
            }
        }
        let stabilized = current.max(up_rec).min(down_rec);
        match old {
            Some(i) => self.recommendations[i] = (now, desired),
            None => self.recommendations.push((now, desired)),
        }
        let mut limit = None;
        if stabilized != desired {
            limit = Some(if desired >= current {
                format!(
                    "stabilised: lowest recommendation in the {} s scale-up window is {stabilized}",
                    up.stabilization_window.whole_secs()
                )
            } else {
                format!(
                    "stabilised: highest recommendation in the {} s scale-down window is {stabilized}",
                    down.stabilization_window.whole_secs()
                )
            });
        }
        // Rate limits and bounds (convertDesiredReplicasWithBehaviorRate).
        let mut replicas = stabilized;
        if stabilized > current {
            let scale_up_limit = self.scale_up_limit(now, current, up).max(current as i64);
            let (allowed, why) = if (max as i64) > scale_up_limit {
                (scale_up_limit as u32, format!("limited by policy: scale-up rate allows {scale_up_limit}"))
            } else {
                (max, format!("limited by maxReplicas {max}"))
            };
            if stabilized > allowed {
                replicas = allowed;
                limit = Some(why);
            }
        } else if stabilized < current {
            let scale_down_limit = self.scale_down_limit(now, current, down).min(current as i64);
            let (allowed, why) = if (min as i64) < scale_down_limit {
                (scale_down_limit as u32, format!("limited by policy: scale-down rate allows {scale_down_limit}"))
            } else {
                (min, format!("limited by minReplicas {min}"))
            };
            if stabilized < allowed {
                replicas = allowed;
                limit = Some(why);
            }
        }
        Normalized { replicas, stabilized, limit }
    }

    /// Seeds the recommendations with `{current, now}` at an HPA's first sync, as
    /// `reconcileAutoscaler` does when it has none: a scale-down below the starting count waits for
    /// the stabilisation window, on either path.
    pub fn seed(&mut self, now: SimTime, current: u32) {
        if self.recommendations.is_empty() {
            self.recommendations.push((now, current));
        }
    }

    /// Go's `normalizeDesiredReplicas`, the path of an HPA whose spec has no `behavior`:
    /// `stabilizeRecommendation` (the highest recommendation not older than `window`, a sample
    /// exactly `window` old included, even above the current count), then
    /// `convertDesiredReplicasWithRules` (at most max(2 x current, 4), within min/max). No scale
    /// events are recorded on this path (`storeScaleEvent` returns at once).
    pub fn normalize_without_behavior(
        &mut self,
        now: SimTime,
        current: u32,
        desired: u32,
        min: u32,
        max: u32,
        window: SimTime,
    ) -> Normalized {
        let mut stabilized = desired;
        let mut old = None;
        for (i, &(t, r)) in self.recommendations.iter().enumerate() {
            // `rec.timestamp.Before(now - window)`: strictly older than the window.
            if t + window < now {
                old = Some(i);
            } else if r > stabilized {
                stabilized = r;
            }
        }
        match old {
            Some(i) => self.recommendations[i] = (now, desired),
            None => self.recommendations.push((now, desired)),
        }
        let mut limit = (stabilized != desired).then(|| {
            format!(
                "stabilised (no behavior): highest recommendation in the {} s window is {stabilized}",
                window.whole_secs()
            )
        });
        // calculateScaleUpLimit: max(scaleUpLimitFactor x current, scaleUpLimitMinimum) = max(2c, 4).
        let scale_up_limit = (2 * current).max(4);
        let (max_allowed, why) = if max > scale_up_limit {
            (scale_up_limit, format!("limited (no behavior): scale-up allows max(2 x {current}, 4) = {scale_up_limit}"))
        } else {
            (max, format!("limited by maxReplicas {max}"))
        };
        let replicas = if stabilized < min {
            limit = Some(format!("limited by minReplicas {min}"));
            min
        } else if stabilized > max_allowed {
            limit = Some(why);
            max_allowed
        } else {
            stabilized
        };
        Normalized { replicas, stabilized, limit }
    }

    fn change_in_period(events: &[(SimTime, u32)], now: SimTime, period: SimTime) -> i64 {
        events.iter().filter(|(t, _)| *t + period > now).map(|(_, c)| *c as i64).sum()
    }

    fn period_start(&self, now: SimTime, current: u32, period: SimTime) -> i64 {
        current as i64 - Self::change_in_period(&self.scale_up_events, now, period)
            + Self::change_in_period(&self.scale_down_events, now, period)
    }

    fn scale_up_limit(&self, now: SimTime, current: u32, rules: &ScalingRules) -> i64 {
        let (mut result, pick): (i64, fn(i64, i64) -> i64) = match rules.select {
            SelectPolicy::Disabled => return current as i64,
            SelectPolicy::Min => (i64::MAX, i64::min),
            SelectPolicy::Max => (i64::MIN, i64::max),
        };
        for p in &rules.policies {
            let start = self.period_start(now, current, p.period);
            let proposed = match p.kind {
                PolicyKind::Pods => start + p.value as i64,
                PolicyKind::Percent => (start as f64 * (1.0 + p.value as f64 / 100.0)).ceil() as i64,
            };
            result = pick(result, proposed);
        }
        result
    }

    fn scale_down_limit(&self, now: SimTime, current: u32, rules: &ScalingRules) -> i64 {
        let (mut result, pick): (i64, fn(i64, i64) -> i64) = match rules.select {
            SelectPolicy::Disabled => return current as i64,
            SelectPolicy::Min => (i64::MIN, i64::max),
            SelectPolicy::Max => (i64::MAX, i64::min),
        };
        for p in &rules.policies {
            let start = self.period_start(now, current, p.period);
            let proposed = match p.kind {
                PolicyKind::Pods => start - p.value as i64,
                PolicyKind::Percent => (start as f64 * (1.0 - p.value as f64 / 100.0)) as i64,
            };
            result = pick(result, proposed);
        }
        result
    }

    /// Records a rescale from `prev` to `new` replicas (storeScaleEvent): events older than the
    /// direction's longest policy period are reused.
    pub fn record_scale(&mut self, now: SimTime, prev: u32, new: u32, behavior: &ScalingBehavior) {
        let (up, down) = (&behavior.scale_up, &behavior.scale_down);
        let (events, change, longest) = if new > prev {
            (&mut self.scale_up_events, new - prev, up.longest_period())
        } else if new < prev {
            (&mut self.scale_down_events, prev - new, down.longest_period())
        } else {
            return;
        };
        match events.iter().position(|(t, _)| *t + longest <= now) {
            Some(i) => events[i] = (now, change),
            None => events.push((now, change)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> SimTime {
        SimTime::from_secs(x)
    }

    #[test]
    fn dip_shorter_than_the_window_causes_no_scale_down() {
        // 5 replicas recommended for a while, then a 60 s dip recommending 2: with the default
        // 300 s scale-down window the highest recent recommendation (5) holds.
        let b = ScalingBehavior::default();
        let mut st = BehaviorState::default();
        let mut current = 5;
        for t in (0..=300).step_by(15) {
            let n = st.normalize(s(t), current, 5, 1, 10, &b);
            assert_eq!(n.replicas, 5);
        }
        for t in (315..=375).step_by(15) {
            let n = st.normalize(s(t), current, 2, 1, 10, &b);
            assert_eq!(n.replicas, 5, "at {t} s");
            assert!(n.limit.as_deref().unwrap().starts_with("stabilised"));
            current = n.replicas;
        }
        // The dip has to last the whole window: 5 was last recommended at 300 s; at 600 s the
        // window is (300, 600], open at its start, so only the 2s remain.
        for t in (390..=600).step_by(15) {
            let got = st.normalize(s(t), current, 2, 1, 10, &b).replicas;
            assert_eq!(got, if t < 600 { 5 } else { 2 }, "at {t} s");
        }
    }

    #[test]
    fn jump_from_1_to_20_proceeds_at_the_default_pace() {
        // Default scale-up: max(4 pods, 100%) per 15 s, from the count at the period's start.
        // 1 -> max(1+4, ceil(1*2)) = 5 -> max(5+4, 10) = 10 -> max(14, 20) = 20.
        let b = ScalingBehavior::default();
        let mut st = BehaviorState::default();
        let mut current = 1;
        let mut path = vec![];
        for t in (0..60).step_by(15) {
            let n = st.normalize(s(t), current, 20, 1, 20, &b);
            st.record_scale(s(t), current, n.replicas, &b);
            current = n.replicas;
            path.push(current);
        }
        assert_eq!(path, vec![5, 10, 20, 20]);
    }

    #[test]
    fn pods_policy_over_a_longer_period_counts_earlier_changes() {
        // 2 pods per 60 s, decisions every 15 s: 1 -> 3 at t=0, then nothing more until the
        // t=0 event leaves the 60 s period (cutoff open: at t=60 the event at 0 is out) -> 5.
        let up = ScalingRules {
            stabilization_window: SimTime::ZERO,
            select: SelectPolicy::Max,
            policies: vec![RatePolicy { kind: PolicyKind::Pods, value: 2, period: s(60) }],
        };
        let down = ScalingRules::default_scale_down();
        let b = ScalingBehavior { scale_up: up.clone(), scale_down: down.clone() };
        let mut st = BehaviorState::default();
        let mut current = 1;
        let mut path = vec![];
        for t in (0..=60).step_by(15) {
            let n = st.normalize(s(t), current, 10, 1, 10, &b);
            st.record_scale(s(t), current, n.replicas, &b);
            current = n.replicas;
            path.push(current);
        }
        assert_eq!(path, vec![3, 3, 3, 3, 5]);
    }

    #[test]
    fn percent_scale_down_rounds_toward_fewer_pods_and_disabled_forbids() {
        // 50% per 15 s from 5: floor(5 * 0.5) = 2.
        let up = ScalingRules::default_scale_up();
        let down = ScalingRules {
            stabilization_window: SimTime::ZERO,
            select: SelectPolicy::Max,
            policies: vec![RatePolicy { kind: PolicyKind::Percent, value: 50, period: s(15) }],
        };
        let b = ScalingBehavior { scale_up: up.clone(), scale_down: down.clone() };
        let mut st = BehaviorState::default();
        assert_eq!(st.normalize(s(0), 5, 1, 1, 10, &b).replicas, 2);
        let disabled = ScalingRules { select: SelectPolicy::Disabled, ..down.clone() };
        let mut st = BehaviorState::default();
        assert_eq!(
            st.normalize(s(0), 5, 1, 1, 10, &ScalingBehavior { scale_up: up.clone(), scale_down: disabled.clone() })
                .replicas,
            5
        );
    }

    #[test]
    fn min_max_clamp() {
        let b = ScalingBehavior::default();
        let (up, down) = (b.scale_up.clone(), b.scale_down.clone());
        let mut st = BehaviorState::default();
        let n = st.normalize(s(0), 3, 9, 1, 5, &b);
        assert_eq!((n.replicas, n.limit.as_deref()), (5, Some("limited by maxReplicas 5")));
        let no_window = ScalingRules { stabilization_window: SimTime::ZERO, ..down };
        let mut st = BehaviorState::default();
        let n =
            st.normalize(s(0), 3, 0, 2, 5, &ScalingBehavior { scale_up: up.clone(), scale_down: no_window.clone() });
        assert_eq!((n.replicas, n.limit.as_deref()), (2, Some("limited by minReplicas 2")));
    }

    /// horizontal.go `normalizeDesiredReplicas` -> `convertDesiredReplicasWithRules` /
    /// `calculateScaleUpLimit`: without `behavior` a scale-up is capped at max(2 x current, 4).
    #[test]
    fn without_behavior_scale_up_is_capped_at_twice_current_or_4() {
        let w = s(300);
        // current 2, proposal 7, max 10: max(2 x 2, 4) = 4.
        let n = BehaviorState::default().normalize_without_behavior(s(15), 2, 7, 1, 10, w);
        assert_eq!(n.replicas, 4);
        assert!(n.limit.unwrap().contains("max(2 x 2, 4) = 4"));
        // current 1: max(2, 4) = 4 (the behavior path's default would allow 1 + 4 = 5).
        assert_eq!(BehaviorState::default().normalize_without_behavior(s(15), 1, 20, 1, 10, w).replicas, 4);
        // current 5, proposal 20, max 7: maxReplicas binds first.
        let n = BehaviorState::default().normalize_without_behavior(s(15), 5, 20, 1, 7, w);
        assert_eq!(n.replicas, 7);
        assert!(n.limit.unwrap().contains("maxReplicas 7"));
    }

    /// horizontal.go `stabilizeRecommendation`: the highest recommendation in the window wins,
    /// even above the current count, and a sample exactly `window` old still counts (only one
    /// `Before` the cutoff is dropped).
    #[test]
    fn without_behavior_the_highest_recommendation_wins_even_above_current() {
        let w = s(300);
        let mut st = BehaviorState::default();
        assert_eq!(st.normalize_without_behavior(s(0), 4, 6, 1, 10, w).replicas, 6);
        // Current is 4 (say the scale-up was refused); the metric now proposes 2: the window's
        // highest, 6, is returned, above current.
        let n = st.normalize_without_behavior(s(15), 4, 2, 1, 10, w);
        assert_eq!((n.replicas, n.stabilized), (6, 6));
        // At 300 s the 0 s sample is exactly 300 s old: it counts. At 315 s only the 15 s one (2)
        // and the new proposal remain.
        assert_eq!(st.normalize_without_behavior(s(300), 4, 2, 1, 10, w).replicas, 6);
        assert_eq!(st.normalize_without_behavior(s(315), 4, 2, 1, 10, w).replicas, 2);
    }

    /// horizontal.go `reconcileAutoscaler` seeds the recommendations with {current, now} at the
    /// first sync: a service that starts at 3 (min 1) holds 3 for the stabilisation window. On
    /// the behavior path (`stabilizeRecommendationWithBehaviors`, samples strictly `After` the
    /// cutoff) it scales down at 15 + 300 = 315 s; without behavior (`stabilizeRecommendation`,
    /// a sample exactly 300 s old still counts) at 330 s.
    #[test]
    fn the_first_sync_seeds_the_current_count() {
        let b = ScalingBehavior::default();
        let (mut with, mut without) = (BehaviorState::default(), BehaviorState::default());
        with.seed(s(15), 3);
        without.seed(s(15), 3);
        let mut first_down = (None, None);
        for t in (15..=400).step_by(15) {
            let a = with.normalize(s(t), 3, 1, 1, 7, &b).replicas;
            let c = without.normalize_without_behavior(s(t), 3, 1, 1, 7, s(300)).replicas;
            if a < 3 && first_down.0.is_none() {
                first_down.0 = Some(t);
            }
            if c < 3 && first_down.1.is_none() {
                first_down.1 = Some(t);
            }
        }
        assert_eq!(first_down, (Some(315), Some(330)));
        // A second seed changes nothing: only the first sync seeds.
        with.seed(s(400), 7);
        assert_eq!(with.normalize(s(415), 1, 1, 1, 7, &b).replicas, 1);
    }
}
