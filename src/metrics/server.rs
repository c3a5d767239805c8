//! The metrics server: what a Kubernetes metrics-server (CPU, memory) and a service mesh or
//! Knative queue-proxy (RPS, latency, concurrency) would report.
//!
//! Per pod, CPU is a rate between two scrapes of the cumulative CPU counter, exactly as
//! metrics-server computes it from cAdvisor: a pod seen at only one scrape has no CPU metric yet.
//! Per service, RPS and p95 cover the last scrape window; concurrency and RPS are also kept per
//! timeline interval for the last [`HISTORY_LEN`] intervals (fast controllers such as the KPA).

use std::collections::VecDeque;

use hdrhistogram::Histogram;

use super::view::HISTORY_SPAN_S;
use super::{latency_histogram, quantile_ms, ClusterView, LlmPodMetrics, PodPhase, PodView, ServiceView, HISTORY_LEN};
use crate::app::AppSpec;
use crate::cluster::InstanceId;
use crate::engine::SimTime;
use crate::scaling::ScalingManager;

/// What the last scrape saw of one pod.
#[derive(Clone, Copy, Debug, Default)]
struct PodSample {
    /// Cumulative CPU (core-us) and routed visits at the scrape; `None`: not seen then.
    cpu: Option<f64>,
    routed: u64,
    /// Rates over the window that ended at the scrape.
    cores: Option<f64>,
    rps: Option<f64>,
    memory_mib: Option<f64>,
    outstanding: u32,
    llm: Option<LlmPodMetrics>,
}

pub struct MetricsServer {
    names: Vec<std::sync::Arc<str>>,
    window: SimTime,
    interval: SimTime,
    scraped_at: SimTime,
    pods: Vec<PodSample>,
    svc_rps: Vec<f64>,
    svc_p95_ms: Vec<f64>,
    svc_queue: Vec<u32>,
    window_arrivals: Vec<u64>,
    window_dropped: Vec<u64>,
    svc_error_rate: Vec<f64>,
    window_hist: Vec<Histogram<u64>>,
    concurrency_history: Vec<VecDeque<f64>>,
    /// Fluid fidelity: (sum of p95 x visits, visits) over the window.
    fluid_p95: Vec<(f64, f64)>,
    svc_lag: Vec<f64>,
    /// Requests finished and violating in the current window, and the share at the last scrape.
    window_requests: (u64, u64),
    slo_violation: f64,
    rps_history: Vec<VecDeque<f64>>,
}

impl MetricsServer {
    pub fn new(names: &[String], window: SimTime, interval: SimTime) -> Self {
        let services = names.len();
        MetricsServer {
            names: names.iter().map(|n| std::sync::Arc::from(n.as_str())).collect(),
            window,
            interval,
            scraped_at: SimTime::ZERO,
            pods: Vec::new(),
            svc_rps: vec![0.0; services],
            svc_p95_ms: vec![0.0; services],
            svc_queue: vec![0; services],
            window_arrivals: vec![0; services],
            window_dropped: vec![0; services],
            svc_error_rate: vec![0.0; services],
            window_hist: (0..services).map(|_| latency_histogram(2)).collect(),
            // Built one by one: `vec![x; n]` clones, and a clone of an empty deque drops its capacity.
            concurrency_history: (0..services).map(|_| VecDeque::with_capacity(HISTORY_LEN)).collect(),
            fluid_p95: vec![(0.0, 0.0); services],
            svc_lag: vec![0.0; services],
            window_requests: (0, 0),
            slo_violation: 0.0,
            rps_history: (0..services).map(|_| VecDeque::with_capacity(HISTORY_LEN)).collect(),
        }
    }

    pub fn window(&self) -> SimTime {
        self.window
    }

    /// A visit to `service` completed after `latency_us` (what the mesh's latency histogram sees).
    #[inline]
    pub fn record_latency(&mut self, service: usize, latency_us: u64) {
        super::record_latency(&mut self.window_hist[service], latency_us);
    }

    /// Fluid fidelity: an interval's p95 (ms) over `visits` visits; the window's p95 is their
    /// visit-weighted mean (the model gives a p95, not samples).
    pub fn record_fluid_p95(&mut self, service: usize, p95_ms: f64, visits: f64) {
        let w = &mut self.fluid_p95[service];
        w.0 += p95_ms * visits;
        w.1 += visits;
    }

    /// Adds one interval's finished requests and how many of them violated the SLO.
    pub fn add_requests(&mut self, finished: u64, violating: u64) {
        self.window_requests.0 += finished;
        self.window_requests.1 += violating;
    }

    /// An LLM pod's metrics at the last scrape (set right after [`Self::scrape`]).
    pub fn set_llm_pod(&mut self, id: InstanceId, metrics: LlmPodMetrics) {
        if let Some(p) = self.pods.get_mut(id as usize) {
            p.llm = Some(metrics);
        }
    }

    /// The replication lag a stateful service's exporter reports, ms.
    pub fn set_replication_lag(&mut self, service: usize, ms: f64) {
        self.svc_lag[service] = ms;
    }

    /// Adds one timeline interval of one service: its arrivals and average requests held.
    pub fn add_interval(&mut self, service: usize, arrivals: u64, dropped: u64, concurrency: f64) {
        self.window_arrivals[service] += arrivals;
        self.window_dropped[service] += dropped;
        let push = |q: &mut VecDeque<f64>, v: f64| {
            if q.len() == HISTORY_LEN {
                q.pop_front();
            }
            q.push_back(v);
        };
        push(&mut self.concurrency_history[service], concurrency);
        push(&mut self.rps_history[service], arrivals as f64 / self.interval.as_secs_f64());
    }

    /// Takes a scrape at `now`. Instances' CPU counters must be integrated up to `now`.
    pub fn scrape(&mut self, now: SimTime, scaling: &ScalingManager, app: &AppSpec, tracked: &[InstanceId]) {
        let elapsed = now.saturating_sub(self.scraped_at);
        let secs = elapsed.as_secs_f64();
        self.pods.resize(scaling.instances().len(), PodSample::default());
        self.svc_queue.iter_mut().for_each(|q| *q = 0);
        for &id in tracked {
            let inst = scaling.instance(id);
            let p = &mut self.pods[id as usize];
            if !inst.is_live() {
                *p = PodSample::default();
                continue;
            }
            (p.cores, p.rps) = match p.cpu {
                Some(prev) if secs > 0.0 => {
                    (Some((inst.cpu_used - prev) / elapsed.0 as f64), Some((inst.routed - p.routed) as f64 / secs))
                }
                _ => (None, None),
            };
            p.cpu = Some(inst.cpu_used);
            p.routed = inst.routed;
            p.outstanding = inst.outstanding;
            p.llm = None;
            p.memory_mib = Some(app.services[inst.service()].memory_usage_mib(inst.outstanding));
            self.svc_queue[inst.service()] += inst.queue.len() as u32;
        }
        let (fin, vio) = std::mem::take(&mut self.window_requests);
        self.slo_violation = if fin > 0 { vio as f64 / fin as f64 } else { 0.0 };
        for s in 0..self.svc_rps.len() {
            self.svc_rps[s] = if secs > 0.0 { self.window_arrivals[s] as f64 / secs } else { 0.0 };
            let (sum, w) = std::mem::take(&mut self.fluid_p95[s]);
            self.svc_p95_ms[s] = if w > 0.0 { sum / w } else { quantile_ms(&self.window_hist[s], 0.95) };
            self.svc_error_rate[s] = if self.window_arrivals[s] > 0 {
                self.window_dropped[s] as f64 / self.window_arrivals[s] as f64
            } else {
                0.0
            };
            self.window_arrivals[s] = 0;
            self.window_dropped[s] = 0;
            if !self.window_hist[s].is_empty() {
                self.window_hist[s].reset();
            }
        }
        self.scraped_at = now;
    }

    /// The view a policy gets at `now`: live replica states, metrics from the last scrape.
    pub fn view(&self, now: SimTime, scaling: &ScalingManager, app: &AppSpec, tracked: &[InstanceId]) -> ClusterView {
        let mut out = ClusterView {
            now,
            scraped_at: self.scraped_at,
            window: self.window,
            history_interval: self.interval,
            services: Vec::new(),
            slo_violation: 0.0,
            instances: (0, 0),
        };
        self.view_into(now, scaling, app, tracked, &mut out);
        out
    }

    /// [`MetricsServer::view`] into `out`, reusing its buffers: a caller that asks every decision
    /// (an RL environment, millions of times) allocates nothing once `out` has its shape.
    pub fn view_into(
        &self,
        now: SimTime,
        scaling: &ScalingManager,
        app: &AppSpec,
        tracked: &[InstanceId],
        out: &mut ClusterView,
    ) {
        let span = ((HISTORY_SPAN_S / self.interval.as_secs_f64()).ceil() as usize).clamp(1, HISTORY_LEN);
        let tail = |q: &VecDeque<f64>, v: &mut Vec<f64>| {
            v.clear();
            v.extend(q.iter().skip(q.len().saturating_sub(span)).copied());
        };
        let same_services = out.services.len() == self.names.len()
            && out.services.iter().zip(&self.names).all(|(sv, n)| std::sync::Arc::ptr_eq(&sv.name, n));
        if !same_services {
            out.services = self
                .names
                .iter()
                .zip(&app.services)
                .map(|(name, spec)| ServiceView::unobserved(name.clone(), spec))
                .collect();
        }
        for (s, (spec, sv)) in app.services.iter().zip(out.services.iter_mut()).enumerate() {
            sv.min_replicas = spec.min_replicas;
            sv.max_replicas = spec.max_replicas;
            sv.cpu_request_cores = spec.shape.cpu_request;
            sv.cpu_limit_cores = scaling.shape(s).cpu_limit;
            sv.memory_request_mib = spec.shape.memory_mib;
            sv.concurrency = spec.shape.concurrency;
            sv.counts = scaling.counts(s);
            sv.pods.clear();
            sv.rps = self.svc_rps[s];
            sv.p95_ms = self.svc_p95_ms[s];
            sv.queue_len = self.svc_queue[s];
            sv.error_rate = self.svc_error_rate[s];
            sv.replication_lag_ms = self.svc_lag[s];
            tail(&self.concurrency_history[s], &mut sv.concurrency_history);
            tail(&self.rps_history[s], &mut sv.rps_history);
        }
        for &id in tracked {
            let inst = scaling.instance(id);
            let Some(phase) = PodPhase::of(inst.state()).filter(|_| inst.is_live()) else {
                continue;
            };
            let p = self.pods.get(id as usize).copied().unwrap_or_default();
            out.services[inst.service()].pods.push(PodView {
                id,
                state: phase,
                created_at: inst.created_at(),
                ready_at: inst.active_at(),
                cpu_cores: p.cores,
                cpu_utilization: p.cores.map(|c| c / inst.shape.cpu_request),
                outstanding: p.outstanding,
                memory_mib: p.memory_mib,
                rps: p.rps,
                llm: p.llm,
            });
        }
        for sv in &mut out.services {
            let (mut sum, mut n, mut held, mut active) = (0.0, 0u32, 0u64, 0u32);
            for p in &sv.pods {
                if p.state == PodPhase::Active {
                    active += 1;
                    held += p.outstanding as u64;
                    if let Some(u) = p.cpu_utilization {
                        sum += u;
                        n += 1;
                    }
                }
            }
            sv.cpu_utilization = if n > 0 { Some(sum / n as f64) } else { None };
            sv.concurrency_per_pod = if active > 0 { held as f64 / active as f64 } else { 0.0 };
        }
        let st = scaling.status_summary();
        out.now = now;
        out.scraped_at = self.scraped_at;
        out.window = self.window;
        out.history_interval = self.interval;
        out.slo_violation = self.slo_violation;
        out.instances = (st.total, scaling.cluster().max_instances);
    }
}
