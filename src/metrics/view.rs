//! The controller's view of the cluster: the only input a policy gets.

use crate::cluster::{InstanceId, InstanceState};
use crate::engine::SimTime;
use crate::scaling::ReplicaCounts;

/// A pod's phase as the API server shows it to a controller. Policies read this, never the
/// cluster's own instance state, so that `autoscale/` knows nothing of `cluster/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    /// Not running yet: its container is being created. The simulator's and the local backend's
    /// Starting instances are Pending for their whole start-up time; on Kubernetes, a pod in phase
    /// Pending (scheduled or not). Pods the simulated cluster has no room for are not listed:
    /// they are `ReplicaCounts::pending`.
    Pending,
    /// Running, not Ready yet (a real backend's pod that started and has not passed its probe).
    Starting,
    /// Ready: receives requests.
    Active,
    /// Being deleted (terminating): finishes what it holds.
    Draining,
}

impl PodPhase {
    /// The phase of a live instance (a removed one is no longer listed: `None`).
    pub fn of(state: InstanceState) -> Option<PodPhase> {
        match state {
            InstanceState::Starting => Some(PodPhase::Pending),
            InstanceState::Active => Some(PodPhase::Active),
            InstanceState::Draining => Some(PodPhase::Draining),
            InstanceState::Removed => None,
        }
    }
}

/// One pod (instance) as the API server and metrics server show it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    pub id: InstanceId,
    pub state: PodPhase,
    pub created_at: SimTime,
    /// When the pod became ready (Active); `None` while Starting.
    pub ready_at: Option<SimTime>,
    /// CPU used over the last scrape window, cores; `None` when the pod has no complete window yet
    /// (a metrics server needs two scrapes to compute a rate).
    pub cpu_cores: Option<f64>,
    /// `cpu_cores / cpu_request`.
    pub cpu_utilization: Option<f64>,
    /// Requests held (queued, in service, waiting on callees) at the scrape.
    pub outstanding: u32,
    /// Working-set memory at the scrape, MiB; `None` before the pod's first scrape.
    pub memory_mib: Option<f64>,
    /// Requests per second routed to this pod over the last window; `None` like `cpu_cores`.
    pub rps: Option<f64>,
    /// An LLM pool's pod: what a serving engine exports (vLLM's running requests, KV-cache use,
    /// queued prompt tokens) at the scrape; `None` for other pods.
    pub llm: Option<LlmPodMetrics>,
}

/// An LLM serving pod's own metrics at a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LlmPodMetrics {
    /// Requests in the running decode batch over the batch's maximum size (token pool), in [0, 1].
    pub batch_occupancy: f64,
    /// KV-cache tokens in use or promised over the pod's capacity (token pool), in [0, 1].
    pub kv_cache_usage: f64,
    /// Prompt tokens queued or in the prefill batch (prompt pool).
    pub queued_prompt_tokens: f64,
}

/// One service (deployment) as a controller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    /// Shared, so building a view copies no strings.
    pub name: std::sync::Arc<str>,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub cpu_request_cores: f64,
    pub cpu_limit_cores: f64,
    pub memory_request_mib: f64,
    pub concurrency: u32,
    /// Live replica counts (the API server is current, not scraped).
    pub counts: ReplicaCounts,
    /// Pods that are not Removed, by id.
    pub pods: Vec<PodView>,
    /// Requests per second arriving over the last scrape window.
    pub rps: f64,
    /// 95th percentile of the service's response time over the last window, ms (0 if none).
    pub p95_ms: f64,
    /// Mean CPU utilisation (of request) over Active pods that have a metric; `None` if none has.
    pub cpu_utilization: Option<f64>,
    /// Requests waiting in queues at the scrape (summed over pods).
    pub queue_len: u32,
    /// Share of the window's visits that were refused (queue full or no instance): the mesh's
    /// error rate.
    pub error_rate: f64,
    /// Replication lag at the last interval, ms (a Redis/MySQL exporter's figure; 0 if stateless).
    pub replication_lag_ms: f64,
    /// Mean requests held per Active pod at the scrape.
    pub concurrency_per_pod: f64,
    /// Time-weighted average of requests held by the whole service in each of the last intervals
    /// (`ClusterView::history_interval` long), oldest first: what Knative's queue-proxies report
    /// every second. Up to [`HISTORY_LEN`] entries.
    pub concurrency_history: Vec<f64>,
    /// Requests per second arriving at the service in each of the same intervals.
    pub rps_history: Vec<f64>,
}

impl ServiceView {
    /// `spec`'s service with its configured shape and bounds and nothing observed yet.
    pub fn unobserved(name: std::sync::Arc<str>, spec: &crate::app::ServiceSpec) -> ServiceView {
        ServiceView {
            name,
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            cpu_request_cores: spec.shape.cpu_request,
            cpu_limit_cores: spec.shape.cpu_limit,
            memory_request_mib: spec.shape.memory_mib,
            concurrency: spec.shape.concurrency,
            counts: Default::default(),
            pods: Vec::new(),
            rps: 0.0,
            p95_ms: 0.0,
            cpu_utilization: None,
            queue_len: 0,
            error_rate: 0.0,
            replication_lag_ms: 0.0,
            concurrency_per_pod: 0.0,
            concurrency_history: Vec::new(),
            rps_history: Vec::new(),
        }
    }
}

/// How many intervals of history the metrics server keeps.
pub const HISTORY_LEN: usize = 120;

/// How much history a [`ServiceView`] carries: the intervals of the last 120 s (at most
/// [`HISTORY_LEN`]), enough for the KPA's 60 s stable window.
pub const HISTORY_SPAN_S: f64 = 120.0;

/// The whole cluster at one decision time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    pub now: SimTime,
    /// When the metrics were last scraped, and the window they cover.
    pub scraped_at: SimTime,
    pub window: SimTime,
    /// Length of one entry of the per-service histories.
    pub history_interval: SimTime,
    pub services: Vec<ServiceView>,
    /// Share of requests finished in the last window that were slower than the SLO or failed (what
    /// the load balancer or mesh reports).
    pub slo_violation: f64,
    /// Live instances, and the most the cluster allows.
    pub instances: (u32, u32),
}

impl ClusterView {
    pub fn service(&self, name: &str) -> Option<&ServiceView> {
        self.services.iter().find(|s| &*s.name == name)
    }
}
