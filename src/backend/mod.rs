//! Cluster backends: what a controller or an RL environment drives. The simulator is one; real
//! clusters implement the same trait, so policies and agents run unchanged on either.
//!
//! A backend offers the metrics-server view, scale commands that go through its scaling manager
//! (or a real cluster's API), a clock, and the ground-truth counters a reward needs (in a real
//! cluster they come from the load generator and the mesh).

pub mod driver;
pub mod kubernetes;
pub mod local;
pub mod prometheus;

use crate::app::AppSpec;
use crate::cluster::ClusterSpec;
use crate::engine::SimTime;
use crate::metrics::RunTotals;
use crate::metrics::{ClusterView, LatencySummary};
use crate::scaling::{Refusal, ReplicaChange, ReplicaCounts};
use crate::sim::{SimError, Simulator};

/// A scale command's outcome: done, or refused with the reason.
pub type ScaleResult = Result<(), Refusal>;

/// Why a backend could not go on.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The local backend's processes or network failed.
    #[error("local backend: {0}")]
    Local(String),
    /// The backend cannot run this scenario or setting.
    #[error("{0}")]
    Unsupported(String),
    /// A real cluster could not be read or changed.
    #[error("kubernetes backend: {0}")]
    Kubernetes(String),
    /// A policy named a service the scenario does not have.
    #[error("policy `{policy}` named service #{service}, but the scenario has {services} services")]
    BadDecision { policy: String, service: usize, services: usize },
    /// The run's records could not be written.
    #[error("writing actions.csv: {0}")]
    Output(std::io::Error),
}

/// `Send`, so that the environments built on backends can step on several threads.
pub trait ClusterBackend: Send {
    /// Current time (virtual for the simulator, wall clock for real backends).
    fn now(&self) -> SimTime;
    /// When the run ends.
    fn horizon(&self) -> SimTime;
    fn app(&self) -> &AppSpec;
    fn cluster(&self) -> &ClusterSpec;
    /// What a controller sees now.
    fn observe(&self) -> ClusterView;
    /// [`ClusterBackend::observe`] into `out`, reusing its buffers where the backend can.
    fn observe_into(&self, out: &mut ClusterView) {
        *out = self.observe();
    }
    fn counts(&self, service: usize) -> ReplicaCounts;
    /// The CPU limit new and existing instances of `service` have, cores.
    fn cpu_limit(&self, service: usize) -> f64;
    /// Adds one instance of `service` on a new server of `sku` (default: the service's).
    fn scale_up(&mut self, service: usize, sku: Option<usize>) -> ScaleResult;
    /// Removes one instance of `service` (a Starting one, else drains the least-loaded).
    fn scale_down(&mut self, service: usize) -> ScaleResult;
    /// Moves `service` toward `desired` replicas (active + starting), as a policy decision does:
    /// clamped to its bounds and the cluster's capacity, the clamp reported in the change.
    fn set_replicas(&mut self, service: usize, desired: u32) -> Result<ReplicaChange, BackendError> {
        self.set_replicas_on(service, desired, None)
    }
    /// [`Self::set_replicas`], new instances renting servers of `sku` (`None`: the service's own).
    fn set_replicas_on(
        &mut self,
        service: usize,
        desired: u32,
        sku: Option<usize>,
    ) -> Result<ReplicaChange, BackendError>;
    /// Resizes `service`'s CPU limit in place; returns the limit applied.
    fn set_cpu_limit(&mut self, service: usize, cores: f64) -> f64;
    /// [`Self::set_cpu_limit`], reporting the limit before and the one applied.
    fn resize_cpu_limit(&mut self, service: usize, cores: f64) -> crate::autoscale::CpuResize {
        let before = self.cpu_limit(service);
        crate::autoscale::CpuResize { before, after: self.set_cpu_limit(service, cores) }
    }
    /// Switches one instance from `from`'s role to `to`'s (LLM prompt and token pools).
    fn migrate(&mut self, from: usize, to: usize) -> ScaleResult;
    /// Lets time pass until `until`.
    fn advance(&mut self, until: SimTime) -> Result<(), BackendError>;
    /// Ground-truth counters since the start.
    fn totals(&self) -> RunTotals;
    /// End-to-end latency of the requests completed so far.
    fn latency(&self) -> LatencySummary;
    /// Replication lag of each service at the last interval, ms (0 for stateless ones).
    fn replication_lag_ms(&self) -> &[f64];
    /// Live instances in all, and the most the cluster allows.
    fn instances(&self) -> (u32, u32);
    /// `(cost in dollars, instance-hours)` so far, where the backend keeps its servers' history
    /// (`None`: the recorder integrates the sampled replica counts instead).
    fn usage(&self) -> Option<(f64, f64)> {
        None
    }
    /// Stops the load and releases what the backend holds (processes, connections). A backend
    /// starts its load when it is built; the simulator holds nothing.
    fn shutdown(&mut self) {}
}

impl ClusterBackend for Simulator {
    fn now(&self) -> SimTime {
        Simulator::now(self)
    }
    fn horizon(&self) -> SimTime {
        Simulator::horizon(self)
    }
    fn app(&self) -> &AppSpec {
        Simulator::app(self)
    }
    fn cluster(&self) -> &ClusterSpec {
        self.scaling().cluster()
    }
    fn observe(&self) -> ClusterView {
        self.view()
    }
    fn observe_into(&self, out: &mut ClusterView) {
        self.view_into(out)
    }
    fn counts(&self, service: usize) -> ReplicaCounts {
        self.scaling().counts(service)
    }
    fn cpu_limit(&self, service: usize) -> f64 {
        self.scaling().shape(service).cpu_limit
    }
    fn scale_up(&mut self, service: usize, sku: Option<usize>) -> ScaleResult {
        Simulator::scale_up(self, service, sku).map(|_| ())
    }
    fn scale_down(&mut self, service: usize) -> ScaleResult {
        self.scale_down_service(service).map(|_| ())
    }
    fn set_cpu_limit(&mut self, service: usize, cores: f64) -> f64 {
        Simulator::set_cpu_limit(self, service, cores)
    }
    fn migrate(&mut self, from: usize, to: usize) -> ScaleResult {
        Simulator::migrate(self, from, to).map(|_| ())
    }
    fn set_replicas_on(
        &mut self,
        service: usize,
        desired: u32,
        sku: Option<usize>,
    ) -> Result<ReplicaChange, BackendError> {
        Ok(self.apply_replicas_on(service, desired, sku))
    }
    fn advance(&mut self, until: SimTime) -> Result<(), BackendError> {
        Ok(self.advance_to(until)?)
    }
    fn totals(&self) -> RunTotals {
        Simulator::totals(self)
    }
    fn latency(&self) -> LatencySummary {
        self.request_latency()
    }
    fn replication_lag_ms(&self) -> &[f64] {
        Simulator::replication_lag_ms(self)
    }
    fn instances(&self) -> (u32, u32) {
        (self.scaling().status_summary().total, self.scaling().cluster().max_instances)
    }
    fn usage(&self) -> Option<(f64, f64)> {
        let now = Simulator::now(self);
        Some((self.scaling().cost(now), self.scaling().instance_seconds(now) / 3600.0))
    }
}
