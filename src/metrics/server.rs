//! The metrics server: what a Kubernetes metrics-server (CPU) and a service mesh (RPS, latency)
//! would report, refreshed once per scrape interval.
//!
//! Per pod, CPU is a rate between two scrapes of the cumulative CPU counter, exactly as
//! metrics-server computes it from cAdvisor: a pod seen at only one scrape has no CPU metric yet.
//! Per service, RPS and p95 cover the last scrape window.

use hdrhistogram::Histogram;

use super::{latency_histogram, quantile_ms, ClusterView, PodView, ServiceView};
use crate::app::AppSpec;
use crate::cluster::{InstanceId, InstanceState};
use crate::engine::SimTime;
use crate::scaling::ScalingManager;

pub struct MetricsServer {
    window: SimTime,
    scraped_at: SimTime,
    /// Cumulative CPU (core-us) of each instance at the last scrape; `None`: not seen then.
    last_cpu: Vec<Option<f64>>,
    /// CPU rate (cores) over the last window, per instance.
    pod_cores: Vec<Option<f64>>,
    pod_outstanding: Vec<u32>,
    svc_rps: Vec<f64>,
    svc_p95_ms: Vec<f64>,
    svc_queue: Vec<u32>,
    window_arrivals: Vec<u64>,
    window_hist: Vec<Histogram<u64>>,
}

impl MetricsServer {
    pub fn new(services: usize, window: SimTime) -> Self {
        MetricsServer {
            window,
            scraped_at: SimTime::ZERO,
            last_cpu: Vec::new(),
            pod_cores: Vec::new(),
            pod_outstanding: Vec::new(),
            svc_rps: vec![0.0; services],
            svc_p95_ms: vec![0.0; services],
            svc_queue: vec![0; services],
            window_arrivals: vec![0; services],
            window_hist: (0..services).map(|_| latency_histogram(2)).collect(),
        }
    }

    pub fn window(&self) -> SimTime {
        self.window
    }

    /// Adds one timeline interval's per-service arrivals and latencies to the current window.
    pub fn add_interval(&mut self, service: usize, arrivals: u64, latencies: &Histogram<u64>) {
        self.window_arrivals[service] += arrivals;
        // Both histograms have the same bounds and precision, so adding cannot fail.
        let _ = self.window_hist[service].add(latencies);
    }

    /// Takes a scrape at `now`. Instances' CPU counters must be integrated up to `now`.
    pub fn scrape(&mut self, now: SimTime, scaling: &ScalingManager, tracked: &[InstanceId]) {
        let elapsed = now.saturating_sub(self.scraped_at);
        let n = scaling.instances().len();
        self.last_cpu.resize(n, None);
        self.pod_cores.resize(n, None);
        self.pod_outstanding.resize(n, 0);
        for q in &mut self.svc_queue {
            *q = 0;
        }
        for &id in tracked {
            let inst = scaling.instance(id);
            let i = id as usize;
            if !inst.is_live() {
                self.last_cpu[i] = None;
                self.pod_cores[i] = None;
                continue;
            }
            self.pod_cores[i] = match self.last_cpu[i] {
                Some(prev) if elapsed.0 > 0 => Some((inst.cpu_used - prev) / elapsed.0 as f64),
                _ => None,
            };
            self.last_cpu[i] = Some(inst.cpu_used);
            self.pod_outstanding[i] = inst.outstanding;
            self.svc_queue[inst.service] += inst.queue.len() as u32;
        }
        let secs = elapsed.as_secs_f64();
        for s in 0..self.svc_rps.len() {
            self.svc_rps[s] = if secs > 0.0 { self.window_arrivals[s] as f64 / secs } else { 0.0 };
            self.svc_p95_ms[s] = quantile_ms(&self.window_hist[s], 0.95);
            self.window_arrivals[s] = 0;
            self.window_hist[s].reset();
        }
        self.scraped_at = now;
    }

    /// The view a policy gets at `now`: live replica states, metrics from the last scrape.
    pub fn view(&self, now: SimTime, scaling: &ScalingManager, app: &AppSpec, tracked: &[InstanceId]) -> ClusterView {
        let mut services: Vec<ServiceView> = app
            .services
            .iter()
            .enumerate()
            .map(|(s, spec)| ServiceView {
                name: spec.name.clone(),
                min_replicas: spec.min_replicas,
                max_replicas: spec.max_replicas,
                cpu_request_cores: spec.shape.cpu_request,
                cpu_limit_cores: spec.shape.cpu_limit,
                concurrency: spec.shape.concurrency,
                counts: scaling.counts(s),
                pods: Vec::new(),
                rps: self.svc_rps[s],
                p95_ms: self.svc_p95_ms[s],
                cpu_utilization: None,
                queue_len: self.svc_queue[s],
                concurrency_per_pod: 0.0,
            })
            .collect();
        for &id in tracked {
            let inst = scaling.instance(id);
            if !inst.is_live() {
                continue;
            }
            let i = id as usize;
            let cores = self.pod_cores.get(i).copied().flatten();
            services[inst.service].pods.push(PodView {
                id,
                state: inst.state,
                created_at: inst.created_at,
                ready_at: inst.active_at,
                cpu_cores: cores,
                cpu_utilization: cores.map(|c| c / inst.shape.cpu_request),
                outstanding: self.pod_outstanding.get(i).copied().unwrap_or(0),
            });
        }
        for sv in &mut services {
            let (mut sum, mut n, mut held, mut active) = (0.0, 0u32, 0u64, 0u32);
            for p in &sv.pods {
                if p.state == InstanceState::Active {
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
        ClusterView { now, scraped_at: self.scraped_at, window: self.window, services }
    }
}
