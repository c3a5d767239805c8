//! Target tracking, the AWS Application Auto Scaling style: keep one metric at a target by
//! scaling proportionally, with cooldowns.
//!
//! Every evaluation period: `desired = ceil(current * value / target)` where `value` is the mean
//! CPU utilisation of Active pods (of request), the requests per second per Active pod, or the
//! service's p95 latency. Changes within `tolerance` of the target are skipped. A scale-out waits
//! `scale_out_cooldown` after the previous scale-out; a scale-in waits `scale_in_cooldown` after any
//! scaling activity, so the policy adds capacity fast and removes it slowly.

use std::path::Path;

use serde::Deserialize;

use super::{Autoscaler, ScaleDecision};
use crate::engine::SimTime;
use crate::metrics::ClusterView;
use crate::scenario::{ConfigError, ConfigText, Scenario};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackedMetric {
    /// Mean CPU utilisation of Active pods, as a fraction of the request (0.6 = 60%).
    Cpu,
    /// Requests per second per Active pod.
    RpsPerPod,
    /// The service's p95 latency, ms.
    P95LatencyMs,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetConfig {
    pub metric: TrackedMetric,
    pub target: f64,
    pub period: SimTime,
    pub tolerance: f64,
    pub scale_out_cooldown: SimTime,
    pub scale_in_cooldown: SimTime,
    /// Per service `(min, max)`; `None`: not scaled.
    pub bounds: Vec<Option<(u32, u32)>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    metric: Option<TrackedMetric>,
    target: Option<f64>,
    period_s: Option<f64>,
    tolerance: Option<f64>,
    scale_out_cooldown_s: Option<f64>,
    scale_in_cooldown_s: Option<f64>,
    min_replicas: Option<u32>,
    max_replicas: Option<u32>,
    services: Option<Vec<String>>,
}

impl TargetConfig {
    /// CPU at 60% of request, 15 s periods, 10% tolerance, 60 s scale-out and 300 s scale-in
    /// cooldowns, every service between its scenario bounds.
    pub fn defaults(scenario: &Scenario) -> TargetConfig {
        TargetConfig {
            metric: TrackedMetric::Cpu,
            target: 0.6,
            period: SimTime::from_secs(15),
            tolerance: 0.1,
            scale_out_cooldown: SimTime::from_secs(60),
            scale_in_cooldown: SimTime::from_secs(300),
            bounds: scenario.app.services.iter().map(|s| Some((s.min_replicas, s.max_replicas))).collect(),
        }
    }

    pub fn load(path: &Path, scenario: &Scenario) -> Result<TargetConfig, ConfigError> {
        let cfg = ConfigText::read(path)?;
        let raw: RawTarget = cfg.parse()?;
        let err = |field: &str, message: String| cfg.invalid(field, message);
        let mut c = TargetConfig::defaults(scenario);
        if let Some(m) = raw.metric {
            c.metric = m;
        }
        match raw.target {
            Some(t) if t.is_finite() && t > 0.0 => c.target = t,
            Some(t) => return Err(err("target", format!("{t} must be > 0"))),
            None if raw.metric.is_some_and(|m| m != TrackedMetric::Cpu) => {
                return Err(err("target", "required when `metric` is not cpu".into()))
            }
            None => {}
        }
        let secs = |v: Option<f64>, field: &str, def: SimTime| -> Result<SimTime, ConfigError> {
            match v {
                None => Ok(def),
                Some(x) if x.is_finite() && x >= 0.0 => Ok(SimTime::from_secs_f64(x)),
                Some(x) => Err(err(field, format!("{x} is not a number of seconds >= 0"))),
            }
        };
        c.period = secs(raw.period_s, "period_s", c.period)?;
        if c.period == SimTime::ZERO {
            return Err(err("period_s", "must be > 0".into()));
        }
        c.scale_out_cooldown = secs(raw.scale_out_cooldown_s, "scale_out_cooldown_s", c.scale_out_cooldown)?;
        c.scale_in_cooldown = secs(raw.scale_in_cooldown_s, "scale_in_cooldown_s", c.scale_in_cooldown)?;
        match raw.tolerance {
            Some(t) if (0.0..1.0).contains(&t) => c.tolerance = t,
            Some(t) => return Err(err("tolerance", format!("{t} is outside [0, 1)"))),
            None => {}
        }
        c.bounds = super::service_bounds(
            &cfg,
            scenario,
            raw.min_replicas,
            raw.max_replicas,
            raw.services.as_deref(),
            ("min_replicas", "max_replicas"),
        )?;
        Ok(c)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Cooldowns {
    last_out: Option<SimTime>,
    last_any: Option<SimTime>,
}

pub struct TargetTrackingPolicy {
    config: TargetConfig,
    cooldowns: Vec<Cooldowns>,
}

impl TargetTrackingPolicy {
    pub fn new(config: TargetConfig) -> Self {
        let n = config.bounds.len();
        TargetTrackingPolicy { config, cooldowns: vec![Cooldowns::default(); n] }
    }
}

impl Autoscaler for TargetTrackingPolicy {
    fn name(&self) -> String {
        "target".into()
    }

    fn period(&self) -> SimTime {
        self.config.period
    }

    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        let c = &self.config;
        for (s, sv) in view.services.iter().enumerate() {
            let Some((min, max)) = c.bounds[s] else { continue };
            let current = sv.counts.active + sv.counts.starting;
            let value = match c.metric {
                TrackedMetric::Cpu => sv.cpu_utilization,
                TrackedMetric::RpsPerPod => (sv.counts.active > 0).then(|| sv.rps / sv.counts.active as f64),
                TrackedMetric::P95LatencyMs => Some(sv.p95_ms),
            };
            let Some(value) = value else {
                out.push(ScaleDecision::replicas(s, current, "no metric yet".into()));
                continue;
            };
            let ratio = value / c.target;
            let mut desired = current;
            let mut why = "within tolerance";
            if (ratio - 1.0).abs() > c.tolerance {
                let proposal = ((current.max(1) as f64) * ratio).ceil() as u32;
                let proposal = proposal.clamp(min, max);
                let cd = self.cooldowns[s];
                if proposal > current {
                    if cd.last_out.is_some_and(|t| view.now < t + c.scale_out_cooldown) {
                        why = "scale-out cooldown";
                    } else {
                        desired = proposal;
                        why = "scale out";
                    }
                } else if proposal < current {
                    if cd.last_any.is_some_and(|t| view.now < t + c.scale_in_cooldown) {
                        why = "scale-in cooldown";
                    } else {
                        desired = proposal;
                        why = "scale in";
                    }
                } else {
                    why = "at bound";
                }
            }
            if desired > current {
                self.cooldowns[s].last_out = Some(view.now);
            }
            if desired != current {
                self.cooldowns[s].last_any = Some(view.now);
            }
            out.push(ScaleDecision::replicas(
                s,
                desired,
                format!("{:?} {value:.3} vs target {} (ratio {ratio:.2}): {why}", c.metric, c.target),
            ));
        }
    }
}
