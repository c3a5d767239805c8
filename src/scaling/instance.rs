//! One replica of a service on a server, with its runtime state. Its lifecycle
//! (`Starting -> Active -> Draining -> Removed`: which server it holds, when it became ready and
//! when it went) is private to `scaling`: only the ScalingManager changes it, and everyone else
//! reads it through getters. Per-request load (busy slots, queue, outstanding visits, CPU and
//! routing counters) is public: the serving models (request, fluid, LLM) and the local backend
//! keep it.

use std::collections::VecDeque;

use crate::cluster::{InstanceId, InstanceShape, InstanceState, ServerId};
use crate::engine::SimTime;

/// One replica of a service on a server, with its runtime state.
///
/// Only the ScalingManager changes the lifecycle; elsewhere it does not compile:
///
/// ```compile_fail
/// fn activate(i: &mut scalesim::scaling::Instance) {
///     i.state = scalesim::cluster::InstanceState::Active;
/// }
/// ```
#[derive(Debug)]
pub struct Instance {
    pub(super) id: InstanceId,
    pub(super) service: usize,
    pub(super) server: ServerId,
    pub(super) state: InstanceState,
    /// Change the CPU limit through [`Instance::set_cpu_limit`], which keeps `slot_cores` in step.
    pub shape: InstanceShape,
    /// `shape.slot_cores()` and its reciprocal, kept so the hot path (every visit's start and
    /// end) does not divide.
    slot_cores: f64,
    slot_cores_inv: f64,
    pub(super) created_at: SimTime,
    pub(super) active_at: Option<SimTime>,
    pub(super) removed_at: Option<SimTime>,
    /// Worker slots now running a request's own CPU work.
    pub busy: u32,
    /// Worker slots held by a visit whose thread a real platform stalled (a replayed measured
    /// overhead, `app::PlatformOverhead`): held, but burning no CPU.
    pub stalled: u32,
    /// Visits waiting for a slot, FIFO.
    pub queue: VecDeque<u32>,
    /// Visits this instance holds: queued, in service, or waiting on their callees. A draining
    /// instance is removed when this reaches zero.
    pub outstanding: u32,
    /// Integral of `outstanding` over time (visit-microseconds) up to `held_since`, counted
    /// exactly in integers (an integer add instead of a float multiply-add per visit, and the same
    /// total a float sum gave below 2^53); read it with [`Instance::held_area`]. A u64 holds
    /// 580,000 years of one held visit (58 years of 10,000) and reads as a float in a few
    /// instructions, where a u128 took a software routine, a twentieth of a fluid tick.
    held_us: u64,
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
            stalled: 0,
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
        let add = (self.outstanding as u64).saturating_mul(now.0.saturating_sub(self.held_since.0));
        self.held_us = self.held_us.saturating_add(add);
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

/// The lifecycle, read-only outside `scaling`.
impl Instance {
    pub fn id(&self) -> InstanceId {
        self.id
    }

    pub fn service(&self) -> usize {
        self.service
    }

    pub fn server(&self) -> ServerId {
        self.server
    }

    pub fn state(&self) -> InstanceState {
        self.state
    }

    pub fn created_at(&self) -> SimTime {
        self.created_at
    }

    /// When it became Active; `None` while Starting.
    pub fn active_at(&self) -> Option<SimTime> {
        self.active_at
    }

    pub fn removed_at(&self) -> Option<SimTime> {
        self.removed_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
