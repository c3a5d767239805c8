//! Application models: services, their per-call CPU demand, and request types as call trees.
//!
//! A request type is a tree of calls. A visit to a service first does that service's own CPU work
//! (queued for a worker slot on one instance), then makes its calls, one after another or all at
//! once (`parallel`), and completes when the last callee returns. The tree is stored flat
//! ([`AppSpec::nodes`], children as index ranges) so the simulator walks it without allocating.
//!
//! This module describes applications; it never runs them (that is `sim/`) and never decides how
//! many replicas they get (that is `autoscale/` through `scaling/`).

mod demand;
pub mod llm;
mod overhead;

pub use demand::Demand;
pub use overhead::{OverheadSamples, PlatformOverhead};

use crate::cluster::InstanceShape;
use crate::engine::SimTime;

/// How a service picks an Active instance for a new visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadBalancing {
    /// Cycle through Active instances in id order.
    RoundRobin,
    /// The instance with the fewest outstanding visits; ties go to the lowest id.
    LeastOutstanding,
    /// Uniformly at random (the service's own `lb/<name>` stream).
    Random,
}

impl LoadBalancing {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalancing::RoundRobin => "round_robin",
            LoadBalancing::LeastOutstanding => "least_outstanding",
            LoadBalancing::Random => "random",
        }
    }
}

/// A stateful service copies its dataset before an instance becomes Active, and then lags behind
/// its write stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StatefulSpec {
    pub dataset_mb: f64,
    pub sync_mbps: f64,
    /// The service whose writes this one replicates (a Redis follower's leader); `None`: its own.
    pub replicates_from: Option<usize>,
    /// Replication lag with no writes, milliseconds.
    pub base_lag_ms: f64,
    /// Extra lag per write per second, milliseconds.
    pub lag_ms_per_write_rps: f64,
}

impl StatefulSpec {
    /// Time to copy the dataset to a new instance: `dataset_mb * 8 / sync_mbps` seconds
    /// (megabytes over megabits per second).
    pub fn sync_time(&self) -> SimTime {
        SimTime::from_secs_f64(self.dataset_mb * 8.0 / self.sync_mbps)
    }

    /// Replication lag at a given write rate: `base_lag_ms + lag_ms_per_write_rps * writes_per_s`.
    pub fn replication_lag_ms(&self, writes_per_s: f64) -> f64 {
        self.base_lag_ms + self.lag_ms_per_write_rps * writes_per_s
    }
}

/// One service of an application, resolved and validated.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub name: String,
    /// Index into the cluster's SKUs: what server a new instance gets.
    pub sku: usize,
    pub initial_replicas: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub shape: InstanceShape,
    pub scale_up_delay: SimTime,
    pub load_balancing: LoadBalancing,
    /// Default CPU demand of one visit; a call in a request type may override it.
    pub demand: Demand,
    pub stateful: Option<StatefulSpec>,
    /// Memory model (what a metrics server reports as working set): `memory_idle_mib +
    /// memory_per_request_mib * requests held`.
    pub memory_idle_mib: f64,
    pub memory_per_request_mib: f64,
}

impl ServiceSpec {
    /// Working-set memory of an instance holding `held` requests, MiB.
    pub fn memory_usage_mib(&self, held: u32) -> f64 {
        self.memory_idle_mib + self.memory_per_request_mib * held as f64
    }

    /// Time from `scale_up_full` to Active: the scale-up delay, plus the data sync for a stateful
    /// service.
    pub fn startup_time(&self) -> SimTime {
        match &self.stateful {
            Some(s) => self.scale_up_delay + s.sync_time(),
            None => self.scale_up_delay,
        }
    }
}

/// One call in a request type's tree.
#[derive(Clone, Debug)]
pub struct CallNode {
    pub service: u16,
    pub demand: Demand,
    /// Callees run all at once (fan-out) rather than one after another.
    pub parallel: bool,
    /// The call writes state (counts toward replication lag).
    pub write: bool,
    /// Children are `AppSpec::children[first_child .. first_child + n_children]`.
    pub first_child: u32,
    pub n_children: u32,
}

#[derive(Clone, Debug)]
pub struct RequestType {
    pub name: String,
    /// Index of the root call in `AppSpec::nodes`.
    pub root: u32,
}

/// A whole application.
#[derive(Clone, Debug)]
pub struct AppSpec {
    pub services: Vec<ServiceSpec>,
    pub nodes: Vec<CallNode>,
    pub children: Vec<u32>,
    pub request_types: Vec<RequestType>,
    /// Added to every call (the request leg); models the network and RPC stack.
    pub network_latency: SimTime,
    /// A real platform's measured cost per visit, replayed after each visit's work (`None` for
    /// scenarios: only `validate-backend` sets it, from the real run it compares with).
    pub overhead: Option<std::sync::Arc<PlatformOverhead>>,
}

impl AppSpec {
    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }

    pub fn children_of(&self, node: u32) -> &[u32] {
        let n = &self.nodes[node as usize];
        &self.children[n.first_child as usize..(n.first_child + n.n_children) as usize]
    }

    /// Expected visits to each service per request of each type (`[type][service]`).
    pub fn visits_per_request(&self) -> Vec<Vec<f64>> {
        self.request_types
            .iter()
            .map(|rt| {
                let mut v = vec![0.0; self.services.len()];
                let mut stack = vec![rt.root];
                while let Some(n) = stack.pop() {
                    v[self.nodes[n as usize].service as usize] += 1.0;
                    stack.extend_from_slice(self.children_of(n));
                }
                v
            })
            .collect()
    }

    /// Mean CPU demand (core-seconds) of a visit to each service under a request mix (weights by
    /// request type); `None` for a service no request visits.
    pub fn mean_demand_core_s(&self, mix: &[f64]) -> Vec<Option<f64>> {
        let mut visits = vec![0.0; self.services.len()];
        let mut demand = vec![0.0; self.services.len()];
        for (rt, &w) in self.request_types.iter().zip(mix) {
            let mut stack = vec![rt.root];
            while let Some(n) = stack.pop() {
                let node = &self.nodes[n as usize];
                visits[node.service as usize] += w;
                demand[node.service as usize] += w * node.demand.mean_core_us() / 1e6;
                stack.extend_from_slice(self.children_of(n));
            }
        }
        visits.iter().zip(&demand).map(|(&v, &d)| if v > 0.0 { Some(d / v) } else { None }).collect()
    }
}
