//! The Knative Pod Autoscaler (KPA), following `pkg/autoscaler/scaling/autoscaler.go` of Knative
//! Serving.
//!
//! Every tick (2 s) and for every service: the observed concurrency (requests held, time-weighted,
//! per second, as queue-proxies report it) is averaged over the stable window (60 s) and the panic
//! window (10% of it: 6 s). With `target = container_concurrency_target * utilization`:
//! `desired_stable = ceil(stable / target)`, `desired_panic = ceil(panic / target)`, both clamped to
//! `[floor(ready / max_scale_down_rate), ceil(ready * max_scale_up_rate)]`. Panic mode starts when
//! `panic / target / ready >= panic_threshold` (200%), and ends once the threshold has not been
//! crossed for a whole stable window. In panic mode the KPA takes the larger of the two and never
//! scales down. Scale to zero is optional (off by default) and needs `min_replicas: 0`; requests
//! reaching such a service while it has no Active instance wait in the simulator's activator
//! buffer (bounded by the service's `queue_capacity`), count as its concurrency, and go to the
//! first instance that becomes Active, as Knative's activator does.

use std::path::Path;

use serde::Deserialize;

use super::{Autoscaler, ScaleDecision};
use crate::engine::SimTime;
use crate::metrics::{ClusterView, ServiceView};
use crate::scenario::{ConfigError, ConfigText, Scenario};

#[derive(Clone, Debug, PartialEq)]
pub struct KpaConfig {
    pub tick: SimTime,
    pub stable_window: SimTime,
    pub panic_window_pct: f64,
    pub panic_threshold_pct: f64,
    pub target_utilization_pct: f64,
    /// Requests per pod the target is a share of (Knative's container-concurrency-target-default).
    pub container_concurrency_target: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub enable_scale_to_zero: bool,
    /// How long zero must be wanted before the last pod goes (Knative's
    /// scale-to-zero-grace-period, default 30 s).
    pub scale_to_zero_grace: SimTime,
    /// Per service: `(min, max)` scale.
    pub bounds: Vec<Option<(u32, u32)>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKpa {
    tick_interval_s: Option<f64>,
    stable_window_s: Option<f64>,
    panic_window_percentage: Option<f64>,
    panic_threshold_percentage: Option<f64>,
    target_utilization_percentage: Option<f64>,
    container_concurrency_target: Option<f64>,
    max_scale_up_rate: Option<f64>,
    max_scale_down_rate: Option<f64>,
    #[serde(default)]
    enable_scale_to_zero: bool,
    scale_to_zero_grace_period_s: Option<f64>,
    min_scale: Option<u32>,
    max_scale: Option<u32>,
    /// Services the KPA scales (default: all).
    services: Option<Vec<String>>,
}

impl KpaConfig {
    /// Knative's defaults, with a per-pod concurrency target of 10 (pods here are small: a few
    /// hundred millicores), on every service between its scenario bounds.
    pub fn defaults(scenario: &Scenario) -> KpaConfig {
        KpaConfig::knative_defaults(
            scenario.app.services.iter().map(|s| Some((s.min_replicas, s.max_replicas))).collect(),
        )
    }

    /// Knative's defaults (as in [`KpaConfig::defaults`]) with the given per-service bounds.
    fn knative_defaults(bounds: Vec<Option<(u32, u32)>>) -> KpaConfig {
        KpaConfig {
            tick: SimTime::from_secs(2),
            stable_window: SimTime::from_secs(60),
            panic_window_pct: 10.0,
            panic_threshold_pct: 200.0,
            target_utilization_pct: 70.0,
            container_concurrency_target: 10.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            enable_scale_to_zero: false,
            scale_to_zero_grace: SimTime::from_secs(30),
            bounds,
        }
    }

    pub fn load(path: &Path, scenario: &Scenario) -> Result<KpaConfig, ConfigError> {
        let cfg = ConfigText::read(path)?;
        let raw: RawKpa = cfg.parse()?;
        let err = |field: &str, message: String| cfg.invalid(field, message);
        let mut c = KpaConfig::defaults(scenario);
        let positive = |v: Option<f64>, field: &str, def: f64| -> Result<f64, ConfigError> {
            match v {
                None => Ok(def),
                Some(x) if x.is_finite() && x > 0.0 => Ok(x),
                Some(x) => Err(err(field, format!("{x} must be > 0"))),
            }
        };
        c.tick = SimTime::from_secs_f64(positive(raw.tick_interval_s, "tick_interval_s", 2.0)?);
        c.stable_window = SimTime::from_secs_f64(positive(raw.stable_window_s, "stable_window_s", 60.0)?);
        c.panic_window_pct = positive(raw.panic_window_percentage, "panic_window_percentage", 10.0)?;
        if c.panic_window_pct > 100.0 {
            return Err(err("panic_window_percentage", format!("{} is above 100", c.panic_window_pct)));
        }
        c.panic_threshold_pct = positive(raw.panic_threshold_percentage, "panic_threshold_percentage", 200.0)?;
        c.target_utilization_pct = positive(raw.target_utilization_percentage, "target_utilization_percentage", 70.0)?;
        if c.target_utilization_pct > 100.0 {
            return Err(err("target_utilization_percentage", format!("{} is above 100", c.target_utilization_pct)));
        }
        c.container_concurrency_target =
            positive(raw.container_concurrency_target, "container_concurrency_target", 10.0)?;
        c.max_scale_up_rate = positive(raw.max_scale_up_rate, "max_scale_up_rate", 1000.0)?;
        c.max_scale_down_rate = positive(raw.max_scale_down_rate, "max_scale_down_rate", 2.0)?;
        if c.max_scale_up_rate <= 1.0 || c.max_scale_down_rate <= 1.0 {
            return Err(err("max_scale_up_rate", "max_scale_up_rate and max_scale_down_rate must be > 1".into()));
        }
        c.enable_scale_to_zero = raw.enable_scale_to_zero;
        if let Some(g) = raw.scale_to_zero_grace_period_s {
            if !(g.is_finite() && g >= 0.0) {
                return Err(err("scale_to_zero_grace_period_s", format!("{g} must be >= 0")));
            }
            c.scale_to_zero_grace = SimTime::from_secs_f64(g);
        }
        c.bounds = super::service_bounds(
            &cfg,
            scenario,
            raw.min_scale,
            raw.max_scale,
            raw.services.as_deref(),
            ("min_scale", "max_scale"),
        )?;
        Ok(c)
    }
}

/// Per-service KPA state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KpaState {
    /// When panic mode was last (re)entered; `None`: not panicking.
    pub panic_since: Option<SimTime>,
    pub max_panic_pods: u32,
    /// Since when zero replicas have been wanted (scale to zero); `None`: more than zero.
    pub zero_since: Option<SimTime>,
}

pub struct KpaPolicy {
    config: KpaConfig,
    states: Vec<KpaState>,
}

impl KpaPolicy {
    pub fn new(config: KpaConfig) -> Self {
        let n = config.bounds.len();
        KpaPolicy { config, states: vec![KpaState::default(); n] }
    }

    pub fn state(&self, service: usize) -> KpaState {
        self.states[service]
    }

    fn window_average(history: &[f64], interval: SimTime, window: SimTime) -> f64 {
        let n = ((window.0 as f64 / interval.0 as f64).ceil() as usize).clamp(1, history.len().max(1));
        let tail = &history[history.len().saturating_sub(n)..];
        if tail.is_empty() {
            0.0
        } else {
            tail.iter().sum::<f64>() / tail.len() as f64
        }
    }

    fn decide_one(&mut self, s: usize, sv: &ServiceView, now: SimTime, interval: SimTime) -> (u32, String) {
        let c = &self.config;
        let (min, max) = c.bounds[s].expect("only services with bounds are decided");
        let panic_window = SimTime::from_secs_f64(c.stable_window.as_secs_f64() * c.panic_window_pct / 100.0);
        let stable = Self::window_average(&sv.concurrency_history, interval, c.stable_window);
        let panic = Self::window_average(&sv.concurrency_history, interval, panic_window);
        let target = c.container_concurrency_target * c.target_utilization_pct / 100.0;
        let ready = sv.counts.active.max(1) as f64;
        let max_up = (c.max_scale_up_rate * ready).ceil();
        let max_down = (ready / c.max_scale_down_rate).floor();
        let desired_stable = (stable / target).ceil().clamp(max_down, max_up) as u32;
        let desired_panic = (panic / target).ceil().clamp(max_down, max_up) as u32;
        // autoscaler.go: isOverPanicThreshold := dppc/readyPodsCount >= spec.PanicThreshold, where
        // dppc = ceil(observedPanicValue / target) is rounded up before the division.
        let over = (panic / target).ceil() / ready >= c.panic_threshold_pct / 100.0;
        let st = &mut self.states[s];
        if over {
            st.panic_since = Some(now);
        } else if let Some(since) = st.panic_since {
            // Panic ends once panicTime + StableWindow is strictly Before now.
            if now > since + c.stable_window {
                st.panic_since = None;
                st.max_panic_pods = 0;
            }
        }
        let mut desired = desired_stable;
        let mode = if st.panic_since.is_some() {
            desired = desired.max(desired_panic);
            if desired > st.max_panic_pods {
                st.max_panic_pods = desired;
            } else {
                desired = st.max_panic_pods; // in panic mode the KPA never scales down
            }
            "panic"
        } else {
            "stable"
        };
        let floor = if c.enable_scale_to_zero { min } else { min.max(1) };
        let mut desired = desired.clamp(floor, max);
        // Scale to zero waits for the grace period (Knative's scale-to-zero-grace-period, 30 s):
        // the revision first goes inactive (the activator is put in the request path), and its
        // last pod goes only once zero has been wanted for the whole grace period.
        let mut grace = String::new();
        if desired == 0 {
            let since = *st.zero_since.get_or_insert(now);
            if now < since + c.scale_to_zero_grace {
                desired = 1.min(max);
                grace = format!(
                    "; scale to zero in {:.0} s (grace period)",
                    (since + c.scale_to_zero_grace).saturating_sub(now).as_secs_f64()
                );
            }
        } else {
            st.zero_since = None;
        }
        let reason = format!(
            "{mode}: concurrency stable {stable:.2} panic {panic:.2}, target {target:.2}/pod, {} ready -> stable {desired_stable}, panic {desired_panic}{grace}",
            sv.counts.active
        );
        (desired, reason)
    }
}

impl Autoscaler for KpaPolicy {
    fn name(&self) -> String {
        "kpa".into()
    }

    fn period(&self) -> SimTime {
        self.config.tick
    }

    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        for (s, sv) in view.services.iter().enumerate() {
            if self.config.bounds[s].is_none() {
                continue;
            }
            let (desired, reason) = self.decide_one(s, sv, view.now, view.history_interval);
            out.push(ScaleDecision::replicas(s, desired, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::ReplicaCounts;

    fn config() -> KpaConfig {
        KpaConfig::knative_defaults(vec![Some((1, 20))])
    }

    fn view(now: u64, history: &[f64]) -> ClusterView {
        let tail = &history[history.len().saturating_sub(crate::metrics::HISTORY_LEN)..];
        ClusterView {
            now: SimTime::from_secs(now),
            scraped_at: SimTime::from_secs(now),
            window: SimTime::from_secs(15),
            history_interval: SimTime::from_secs(1),
            services: vec![ServiceView {
                name: std::sync::Arc::from("fn"),
                min_replicas: 1,
                max_replicas: 20,
                cpu_request_cores: 0.1,
                cpu_limit_cores: 0.2,
                memory_request_mib: 64.0,
                concurrency: 4,
                // One ready pod throughout: the test checks the KPA's own timing, not the cluster's.
                counts: ReplicaCounts { active: 1, starting: 0, draining: 0, pending: 0 },
                pods: vec![],
                rps: 0.0,
                p95_ms: 0.0,
                cpu_utilization: None,
                queue_len: 0,
                error_rate: 0.0,
                replication_lag_ms: 0.0,
                concurrency_per_pod: 0.0,
                concurrency_history: tail.to_vec(),
                rps_history: vec![],
            }],
            slo_violation: 0.0,
            instances: (1, 10),
        }
    }

    #[test]
    fn panic_mode_is_entered_and_left_on_time_for_a_step_load() {
        // Target 10 * 70% = 7 per pod; one ready pod. Concurrency is 7 until t = 100 s, 35 on
        // [100, 200), then 7 again. Ticks every 2 s; at tick t the history holds seconds < t.
        let level = |sec: u64| if (100..200).contains(&sec) { 35.0 } else { 7.0 };
        let mut kpa = KpaPolicy::new(config());
        let mut entered = None;
        let mut left = None;
        let mut last_desired = 0;
        for t in (2..=300).step_by(2) {
            let history: Vec<f64> = (0..t).map(level).collect();
            let mut out = vec![];
            kpa.decide(&view(t, &history), &mut out);
            let d = out[0].desired;
            let panicking = kpa.state(0).panic_since.is_some();
            if panicking && entered.is_none() {
                entered = Some(t);
                // Panic window (6 s) at t = 102: [7, 7, 7, 7, 35, 35] -> 16.33; 16.33 / 7 / 1 pod =
                // 2.33 >= 2.0. Panic wants ceil(16.33 / 7) = 3; stable (58*7 + 2*35) / 60 = 7.93
                // wants 2: the larger, 3.
                assert_eq!(d, 3, "desired when panic starts");
            }
            if entered.is_some() && left.is_none() {
                if panicking {
                    assert!(d >= last_desired, "scaled down in panic mode at {t} s: {last_desired} -> {d}");
                } else {
                    left = Some(t);
                }
            }
            last_desired = d;
        }
        assert_eq!(entered, Some(102));
        // The panic window last crosses the threshold at t = 204 ([35, 35, 7, 7, 7, 7] -> 16.33,
        // ceil(16.33 / 7) = 3 pods / 1 ready >= 2); panic ends once 204 + 60 is strictly before
        // now (`panicTime.Add(StableWindow).Before(now)`): not at 264, at the next tick, 266.
        assert_eq!(left, Some(266));
        // Back in stable mode at 266: the 60 s window [206, 266) is all 7 -> ceil(7 / 7) = 1.
        let history: Vec<f64> = (0..266).map(level).collect();
        let mut out = vec![];
        KpaPolicy::new(config()).decide(&view(266, &history), &mut out);
        assert_eq!(out[0].desired, 1);
    }

    /// autoscaler.go rounds the panic pod count up before testing the threshold: a panic
    /// concurrency of 9.27 with one ready pod and a target of 7 is ceil(9.27 / 7) = 2 pods, 2 / 1
    /// >= 200%: panic (unrounded, 1.32 would not be).
    #[test]
    fn panic_threshold_compares_the_rounded_pod_count() {
        let mut kpa = KpaPolicy::new(config());
        let history: Vec<f64> = (0..60).map(|s| if s < 54 { 1.0 } else { 9.27 }).collect();
        let mut out = vec![];
        kpa.decide(&view(60, &history), &mut out);
        assert!(kpa.state(0).panic_since.is_some(), "{}", out[0].reason);
        assert_eq!(out[0].desired, 2);
    }

    /// Scale to zero (enable_scale_to_zero, min 0): the stable window must hold no concurrency
    /// (desired 0), then the last pod stays for the 30 s grace period. Load 7 until 100 s, then 0:
    /// the 60 s stable average first reaches 0 at t = 160 (window [100, 160)); zero is wanted from
    /// 160, so the pod goes at 160 + 30 = 190.
    #[test]
    fn scale_to_zero_waits_for_the_grace_period() {
        let level = |sec: u64| if sec < 100 { 7.0 } else { 0.0 };
        let mut cfg = KpaConfig::knative_defaults(vec![Some((0, 20))]);
        cfg.enable_scale_to_zero = true;
        let mut kpa = KpaPolicy::new(cfg);
        let mut zero_at = None;
        for t in (2..=240).step_by(2) {
            let history: Vec<f64> = (0..t).map(level).collect();
            let mut out = vec![];
            kpa.decide(&view(t, &history), &mut out);
            let d = out[0].desired;
            if t < 160 {
                assert!(d >= 1, "at {t} s");
            }
            if (160..190).contains(&t) {
                assert_eq!(d, 1, "grace period at {t} s");
                assert!(out[0].reason.contains("grace period"));
            }
            if d == 0 && zero_at.is_none() {
                zero_at = Some(t);
            }
        }
        assert_eq!(zero_at, Some(190));
    }
}
