//! The Kubernetes Horizontal Pod Autoscaler (autoscaling/v2), decision for decision.
//!
//! Every sync period (15 s) and for every service with an HPA, as `reconcileAutoscaler` in
//! `pkg/controller/podautoscaler/horizontal.go` does:
//! 1. current = the deployment's replicas (Active + Starting; Draining pods are terminating).
//! 2. current above `maxReplicas` or below `minReplicas`: desired is that bound, no metrics read.
//! 3. Otherwise each metric proposes a count (`replicas.rs`); the largest wins. If every metric
//!    fails, or some fail and the rest would scale down, nothing changes this cycle.
//! 4. The proposal is stabilised and rate-limited and clamped to min/max (`behavior.rs`): by the
//!    spec's `behavior` (Kubernetes' defaults for what it leaves out) when the spec has one, else
//!    by Go's older path for specs without it (`normalizeDesiredReplicas`: the highest
//!    recommendation of the downscale window, at most max(2 x current, 4)). `actions.csv` says
//!    which path decided. At an HPA's first sync its recommendations are seeded with the current
//!    count, as Go does.
//! 5. A change is recorded as a scale event for the rate policies.
//!
//! Every decision is written to `actions.csv` with its metric values and the rule that decided.

mod behavior;
mod replicas;
pub mod spec;

pub use behavior::{BehaviorState, Normalized, PolicyKind, RatePolicy, ScalingBehavior, ScalingRules, SelectPolicy};
pub use replicas::{
    object_average_replicas, object_value_replicas, pod_metric_replicas, CalcError, CalcParams, PodSample, PodTarget,
    Proposal,
};
pub use spec::{HpaConfig, MetricRule, ObjectSignal, PodSignal, ResourceName, ServiceHpa, Target};

use std::fmt::Write;

use super::{Autoscaler, ScaleDecision};
use crate::engine::SimTime;
use crate::metrics::{ClusterView, PodPhase, ServiceView};

const MIB_MILLI: f64 = 1048576.0 * 1000.0;

pub struct HpaPolicy {
    config: HpaConfig,
    states: Vec<BehaviorState>,
    samples: Vec<PodSample>,
}

impl HpaPolicy {
    pub fn new(config: HpaConfig) -> Self {
        let n = config.hpas.len();
        HpaPolicy { config, states: vec![BehaviorState::default(); n], samples: Vec::new() }
    }

    pub fn config(&self) -> &HpaConfig {
        &self.config
    }

    /// Fills `self.samples` with the service's pods as the calculator sees them for one metric.
    fn pod_samples(&mut self, sv: &ServiceView, value: impl Fn(&crate::metrics::PodView) -> Option<i64>, request: i64) {
        self.samples.clear();
        for p in &sv.pods {
            self.samples.push(PodSample {
                deleting: p.state == PodPhase::Draining,
                pending: p.state == PodPhase::Pending,
                ready: p.state == PodPhase::Active,
                start_time: p.created_at,
                ready_transition: p.ready_at.unwrap_or(p.created_at),
                value: value(p),
                request,
            });
        }
        // Pods waiting for room in the cluster: Pending, with no node, no start and no metric.
        let waiting = PodSample {
            deleting: false,
            pending: true,
            ready: false,
            start_time: SimTime::ZERO,
            ready_transition: SimTime::ZERO,
            value: None,
            request,
        };
        self.samples.extend((0..sv.counts.pending).map(|_| waiting));
    }

    /// One metric's proposal, and its description for the log.
    fn propose(
        &mut self,
        rule: &MetricRule,
        sv: &ServiceView,
        current: u32,
        params: &CalcParams,
    ) -> (Result<Proposal, CalcError>, String) {
        let milli = |v: f64| (v * 1000.0).ceil() as i64;
        match *rule {
            MetricRule::Resource { name, target } => {
                let (label, request) = match name {
                    ResourceName::Cpu => ("cpu", milli(sv.cpu_request_cores)),
                    ResourceName::Memory => ("memory", (sv.memory_request_mib * MIB_MILLI).round() as i64),
                };
                match name {
                    ResourceName::Cpu => self.pod_samples(sv, |p| p.cpu_cores.map(milli), request),
                    ResourceName::Memory => {
                        self.pod_samples(sv, |p| p.memory_mib.map(|m| (m * MIB_MILLI).ceil() as i64), request)
                    }
                }
                let (t, shown) = match target {
                    Target::Utilization(u) => (PodTarget::Utilization(u), format!("{u}%")),
                    Target::AverageValue(v) => {
                        let m = match name {
                            ResourceName::Cpu => milli(v),
                            ResourceName::Memory => (v * 1000.0).ceil() as i64, // bytes -> milli-bytes
                        };
                        (PodTarget::AverageValue(m), format!("{v}"))
                    }
                    Target::Value(_) => unreachable!("refused when the config is read"),
                };
                let r = pod_metric_replicas(current, &self.samples, t, name == ResourceName::Cpu, params);
                let now = match (&r, t) {
                    (Ok(p), PodTarget::Utilization(_)) => format!("{}%", p.current),
                    (Ok(p), PodTarget::AverageValue(_)) => format!("{}", p.current as f64 / 1000.0),
                    (Err(_), _) => "?".into(),
                };
                (r, format!("{label} {now}/{shown}"))
            }
            MetricRule::Pods { signal, target } => {
                let label = match signal {
                    PodSignal::Rps => {
                        self.pod_samples(sv, |p| p.rps.map(milli), 0);
                        "rps/pod"
                    }
                    PodSignal::Concurrency => {
                        self.pod_samples(sv, |p| p.memory_mib.map(|_| p.outstanding as i64 * 1000), 0);
                        "concurrency/pod"
                    }
                    // A pod that exports no LLM metrics has no sample (missing, as Go counts it).
                    PodSignal::BatchOccupancy => {
                        self.pod_samples(sv, |p| p.llm.map(|m| milli(m.batch_occupancy)), 0);
                        "batch_occupancy/pod"
                    }
                    PodSignal::KvCacheUsage => {
                        self.pod_samples(sv, |p| p.llm.map(|m| milli(m.kv_cache_usage)), 0);
                        "kv_cache_usage/pod"
                    }
                    PodSignal::QueuedPromptTokens => {
                        self.pod_samples(sv, |p| p.llm.map(|m| milli(m.queued_prompt_tokens)), 0);
                        "queued_prompt_tokens/pod"
                    }
                };
                let r =
                    pod_metric_replicas(current, &self.samples, PodTarget::AverageValue(milli(target)), false, params);
                let now = r.as_ref().map(|p| format!("{}", p.current as f64 / 1000.0)).unwrap_or_else(|_| "?".into());
                (r, format!("{label} {now}/{target}"))
            }
            MetricRule::Object { signal, target } => {
                let (label, usage) = match signal {
                    ObjectSignal::Rps => ("rps", sv.rps),
                    ObjectSignal::P95LatencyMs => ("p95_latency_ms", sv.p95_ms),
                    ObjectSignal::QueueLength => ("queue_length", sv.queue_len as f64),
                };
                let ready = sv.pods.iter().filter(|p| p.state == PodPhase::Active).count() as u32;
                let p = match target {
                    Target::Value(v) => object_value_replicas(current, ready, milli(usage), milli(v), params.tolerance),
                    Target::AverageValue(v) => {
                        object_average_replicas(current, milli(usage), milli(v), params.tolerance)
                    }
                    Target::Utilization(_) => unreachable!("refused when the config is read"),
                };
                let shown = match target {
                    Target::Value(v) | Target::AverageValue(v) => v,
                    Target::Utilization(u) => u as f64,
                };
                (Ok(p), format!("{label} {usage:.3}/{shown}"))
            }
        }
    }
}

impl Autoscaler for HpaPolicy {
    fn name(&self) -> String {
        "hpa".into()
    }

    fn period(&self) -> SimTime {
        self.config.controller.sync_period
    }

    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        let c = self.config.controller;
        let params = CalcParams {
            now: view.now,
            tolerance: c.tolerance,
            cpu_initialization_period: c.cpu_initialization_period,
            initial_readiness_delay: c.initial_readiness_delay,
            metric_time: view.scraped_at,
            metric_window: view.window,
        };
        for k in 0..self.config.hpas.len() {
            let hpa = self.config.hpas[k].clone();
            let sv = &view.services[hpa.service];
            let current = sv.counts.active + sv.counts.starting;
            self.states[k].seed(view.now, current);
            let mut reason = String::new();
            if current == 0 && hpa.min != 0 {
                out.push(ScaleDecision::replicas(hpa.service, 0, "scaling disabled: 0 replicas".into()));
                continue;
            }
            let desired = if current > hpa.max {
                reason.push_str("current replicas above maxReplicas");
                hpa.max
            } else if current < hpa.min {
                reason.push_str("current replicas below minReplicas");
                hpa.min
            } else {
                let mut best: Option<u32> = None;
                let mut invalid = 0;
                for rule in &hpa.metrics {
                    let (r, label) = self.propose(rule, sv, current, &params);
                    if !reason.is_empty() {
                        reason.push_str("; ");
                    }
                    match r {
                        Ok(p) => {
                            let _ = write!(reason, "{label} -> {} ({})", p.replicas, p.rule);
                            best = Some(best.map_or(p.replicas, |b| b.max(p.replicas)));
                        }
                        Err(e) => {
                            invalid += 1;
                            let _ = write!(reason, "{label}: {e}");
                        }
                    }
                }
                match best {
                    Some(b) if invalid == 0 || b >= current => {
                        let st = &mut self.states[k];
                        let n = match &hpa.behavior {
                            Some(behavior) => st.normalize(view.now, current, b, hpa.min, hpa.max, behavior),
                            None => st.normalize_without_behavior(
                                view.now,
                                current,
                                b,
                                hpa.min,
                                hpa.max,
                                c.downscale_stabilization,
                            ),
                        };
                        if let Some(l) = &n.limit {
                            let _ = write!(reason, "; {l}");
                        }
                        n.replicas
                    }
                    _ => {
                        reason.push_str("; no scale: metrics unavailable");
                        current
                    }
                }
            };
            if let (true, Some(behavior)) = (desired != current, &hpa.behavior) {
                self.states[k].record_scale(view.now, current, desired, behavior);
            }
            // Which of Go's two normalisation paths decided, for the reader of actions.csv.
            reason.push_str(if hpa.behavior.is_some() { " [behavior]" } else { " [no behavior]" });
            out.push(ScaleDecision::replicas(hpa.service, desired, reason));
        }
    }
}
