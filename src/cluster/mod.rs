//! The cluster's things: server SKUs, servers, instance shapes and the instance states
//! `Starting -> Active -> Draining -> Removed`.
//!
//! This module owns the data, not the decisions: instances themselves live in
//! [`crate::scaling`], whose ScalingManager alone changes their lifecycle, and how requests flow
//! through an instance is the serving models' business. It knows nothing of policies or workloads.

use crate::engine::SimTime;

/// A kind of server that can be rented: what it offers and what it costs.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSku {
    pub name: String,
    pub cores: f64,
    pub memory_gib: f64,
    pub price_per_hour: f64,
}

/// Cluster-wide configuration.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub skus: Vec<ServerSku>,
    /// Most instances (in any state but Removed) that may exist at once.
    pub max_instances: u32,
}

pub type ServerId = u32;
pub type InstanceId = u32;

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// Created, not yet serving (scale-up delay, data sync for stateful services).
    Starting,
    /// Receives new requests.
    Active,
    /// Receives no new requests; finishes what it holds, then goes.
    Draining,
    /// Gone. Its id is never reused.
    Removed,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Active => "active",
            InstanceState::Draining => "draining",
            InstanceState::Removed => "removed",
        }
    }
}

/// A rented server. One instance per server by default.
#[derive(Clone, Debug)]
pub struct Server {
    pub id: ServerId,
    pub sku: usize,
    pub instances: u32,
    pub created_at: SimTime,
    pub removed_at: Option<SimTime>,
}

/// The shape of an instance: copied from the service's spec when the instance is created, so that
/// scaled-up instances match the initial ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceShape {
    /// CPU request, cores (what utilisation is measured against and what a server reserves).
    pub cpu_request: f64,
    /// CPU limit, cores (what the instance can use at most).
    pub cpu_limit: f64,
    pub memory_mib: f64,
    /// Requests served at once.
    pub concurrency: u32,
    /// Requests that may wait in the FIFO queue beyond those in service.
    pub queue_capacity: u32,
}

impl InstanceShape {
    /// Cores one worker slot runs at: the CPU limit shared equally among the `concurrency` slots,
    /// at most one core each (one request is one thread).
    ///
    /// Splitting the limit keeps the instance's CPU use at or below its limit whatever the load, as the
    /// kernel's CFS quota does; it makes an instance an exact M/M/c station when demands are
    /// exponential.
    pub fn slot_cores(&self) -> f64 {
        (self.cpu_limit / self.concurrency as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_cores_split_the_limit() {
        let s =
            InstanceShape { cpu_request: 0.1, cpu_limit: 0.2, memory_mib: 64.0, concurrency: 4, queue_capacity: 10 };
        assert!((s.slot_cores() - 0.05).abs() < 1e-12); // 0.2 cores / 4 slots
        let big = InstanceShape { cpu_limit: 8.0, concurrency: 2, ..s };
        assert_eq!(big.slot_cores(), 1.0); // one request is one thread: capped at a core
    }
}
