//! The cluster's things: server SKUs, servers and instances (replicas), and the instance lifecycle
//! `Starting -> Active -> Draining -> Removed`.
//!
//! This module owns the data, not the decisions: which instances exist is changed only by
//! [`crate::scaling::ScalingManager`], and how requests flow through an instance is the simulator's
//! business. It knows nothing of policies or workloads.

use std::collections::VecDeque;

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

/// One replica of a service on a server, with its runtime state.
#[derive(Debug)]
pub struct Instance {
    pub id: InstanceId,
    pub service: usize,
    pub server: ServerId,
    pub state: InstanceState,
    /// Change the CPU limit through [`Instance::set_cpu_limit`], which keeps `slot_cores` in step.
    pub shape: InstanceShape,
    /// `shape.slot_cores()` and its reciprocal, kept so the hot path (every visit's start and
    /// end) does not divide.
    slot_cores: f64,
    slot_cores_inv: f64,
    pub created_at: SimTime,
    pub active_at: Option<SimTime>,
    pub removed_at: Option<SimTime>,
    /// Worker slots now running a request's own CPU work.
    pub busy: u32,
    /// Visits waiting for a slot, FIFO.
    pub queue: VecDeque<u32>,
    /// Visits this instance holds: queued, in service, or waiting on their callees. A draining
    /// instance is removed when this reaches zero.
    pub outstanding: u32,
    /// Integral of `outstanding` over time (visit-microseconds) up to `held_since`, counted
    /// exactly in integers (an integer add instead of a float multiply-add per visit, and the same
    /// total a float sum gave below 2^53); read it with [`Instance::held_area`].
    held_us: u128,
    /// The fluid model's share of the integral (a real number).
    held_fluid: f64,
    pub held_since: SimTime,
    /// Visits routed to this instance (cumulative, including queued ones).
    pub routed: u64,
    /// Visits whose CPU work this instance finished.
    pub served: u64,
    /// CPU consumed since creation, core-microseconds (the cumulative counter a cAdvisor would show).
    pub cpu_used: f64,
    /// When `cpu_used` was last brought up to date.
    pub cpu_updated_at: SimTime,
}

impl Instance {
    pub fn new(id: InstanceId, service: usize, server: ServerId, shape: InstanceShape, now: SimTime) -> Self {
        Instance {
            id,
            service,
            server,
            state: InstanceState::Starting,
            shape,
            slot_cores: shape.slot_cores(),
            slot_cores_inv: 1.0 / shape.slot_cores(),
            created_at: now,
            active_at: None,
            removed_at: None,
            busy: 0,
            queue: VecDeque::new(),
            outstanding: 0,
            held_us: 0,
            held_fluid: 0.0,
            held_since: now,
            routed: 0,
            served: 0,
            cpu_used: 0.0,
            cpu_updated_at: now,
        }
    }

    /// Brings the cumulative CPU counter up to `now`; call before `busy` changes.
    #[inline]
    pub fn integrate_cpu(&mut self, now: SimTime) {
        let dt = now.0.saturating_sub(self.cpu_updated_at.0);
        if dt > 0 {
            if self.busy > 0 {
                self.cpu_used += self.busy as f64 * self.slot_cores * dt as f64;
            }
            self.cpu_updated_at = now;
        }
    }

    /// A visit is routed here: it is held until [`Instance::release`].
    #[inline]
    pub fn acquire(&mut self, now: SimTime) {
        self.integrate_held(now);
        self.outstanding += 1;
        self.routed += 1;
    }

    /// A visit held here has completed.
    #[inline]
    pub fn release(&mut self, now: SimTime) {
        self.integrate_held(now);
        self.outstanding -= 1;
    }

    /// Brings the held-visit integral up to `now`.
    #[inline]
    pub fn integrate_held(&mut self, now: SimTime) {
        self.held_us += self.outstanding as u128 * now.0.saturating_sub(self.held_since.0) as u128;
        self.held_since = now;
    }

    /// Integral of `outstanding` over time (visit-microseconds) up to `held_since`: the
    /// time-weighted concurrency a Knative queue-proxy reports.
    pub fn held_area(&self) -> f64 {
        self.held_us as f64 + self.held_fluid
    }

    /// The fluid model's held-visit area over an interval ending at `now`, where it holds
    /// `outstanding` visits.
    pub fn add_fluid_held(&mut self, area: f64, now: SimTime, outstanding: u32) {
        self.held_fluid += area;
        self.held_since = now;
        self.outstanding = outstanding;
    }

    /// Resizes the CPU limit in place; work already running keeps its speed. Call
    /// [`Instance::integrate_cpu`] first.
    pub fn set_cpu_limit(&mut self, cores: f64) {
        self.shape.cpu_limit = cores;
        self.slot_cores = self.shape.slot_cores();
        self.slot_cores_inv = 1.0 / self.slot_cores;
    }

    /// Microseconds a visit of `demand_core_us` core-microseconds runs in one worker slot.
    #[inline]
    pub fn service_us(&self, demand_core_us: f64) -> u64 {
        // A product by the cached reciprocal rather than a division: it can differ from
        // `demand / slot_cores` in the last bit only, which moves the rounded microsecond only
        // for a value within an ulp of a half (and not at all for slots of 1/2^k cores).
        (demand_core_us * self.slot_cores_inv).round() as u64
    }

    pub fn is_live(&self) -> bool {
        self.state != InstanceState::Removed
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

    #[test]
    fn cpu_counter_integrates_busy_slots() {
        let shape =
            InstanceShape { cpu_request: 1.0, cpu_limit: 2.0, memory_mib: 1.0, concurrency: 2, queue_capacity: 0 };
        let mut i = Instance::new(0, 0, 0, shape, SimTime::ZERO);
        i.busy = 2;
        i.integrate_cpu(SimTime::from_secs(3));
        // 2 slots x 1 core x 3 s = 6 core-seconds
        assert!((i.cpu_used - 6e6).abs() < 1e-6);
    }
}
