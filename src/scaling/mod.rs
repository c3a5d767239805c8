//! The `ScalingManager`: the only code that changes which instances exist.
//!
//! Every policy, the RL action executor and the bootstrap of a run go through it:
//! - [`ScalingManager::scale_up_full`] rents a server of the service's SKU and starts one instance
//!   on it; the instance is Active after the service's start-up time (scale-up delay, plus the data
//!   sync of a stateful service). The caller schedules that moment; this module keeps no clock.
//! - [`ScalingManager::scale_down_full`] cancels a Starting instance at once, or marks an Active
//!   one Draining: it takes no new work, finishes what it holds, then is removed together with its
//!   server (when the server holds nothing else).
//! - [`ScalingManager::set_replicas`] is the policy-facing form: it moves a service toward a desired
//!   count, cancelling Starting instances first (newest first) and then draining the least-loaded
//!   Active ones (fewest outstanding visits, ties by lowest id), as a Kubernetes ReplicaSet prefers
//!   not-ready pods when it deletes.
//! - **Pending pods.** A decision the cluster's maximum instances cannot hold in full leaves the
//!   rest Pending, as Kubernetes leaves unschedulable pods: they count in the service's replicas
//!   (`spec.replicas`), rent nothing, and [`ScalingManager::schedule_pending`] starts them, oldest
//!   first, when room frees; a scale-down deletes them first. The one-instance
//!   [`ScalingManager::scale_up_full`] is refused on a full cluster instead (an action executor's
//!   call, whose refusal the agent sees).
//!
//! Limits (per-service min/max replicas, the cluster's maximum instances) are enforced here, and a
//! refused action is recorded with its reason; nothing is dropped silently. It knows nothing of
//! requests' routes, policies or metrics windows.

mod events;

pub use events::{Refusal, ScalingEvent, StatusChange};

mod instance;
pub use instance::Instance;

use crate::app::AppSpec;
use crate::cluster::{ClusterSpec, InstanceId, InstanceShape, InstanceState, Server, ServerId};
use crate::engine::SimTime;

/// What a service's instances are made of, copied from the scenario's start state.
#[derive(Clone, Debug)]
struct ServiceTemplate {
    name: String,
    sku: usize,
    shape: InstanceShape,
    startup_time: SimTime,
    min_replicas: u32,
    max_replicas: u32,
}

/// Instance counts of one service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    pub active: u32,
    pub starting: u32,
    pub draining: u32,
    /// Pods a policy asked for that the cluster has no room for yet (no instance, no server, no
    /// cost): Kubernetes' unschedulable Pending pods. Only the simulator's books have them; a real
    /// backend lists its Pending pods with the others.
    pub pending: u32,
}

impl ReplicaCounts {
    /// The replica count a controller reasons about (a Deployment's `spec.replicas`): pods that
    /// exist or wait for room, and are not going away.
    pub fn desired_basis(&self) -> u32 {
        self.active + self.starting + self.pending
    }
}

/// Cluster-wide counts, as `status_summary()` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusSummary {
    pub active: u32,
    pub starting: u32,
    pub draining: u32,
    pub servers: u32,
    /// Live instances (active + starting + draining).
    pub total: u32,
}

/// Result of a successful scale-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleUp {
    pub instance: InstanceId,
    pub server: ServerId,
    /// When the instance becomes Active; the caller schedules [`ScalingManager::mark_active`].
    pub ready_at: SimTime,
}

/// Result of a successful scale-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleDown {
    /// A Starting instance was cancelled and removed.
    Cancelled,
    /// An Active instance now drains; it goes when its outstanding work is done.
    Draining,
    /// An Active instance with nothing outstanding was removed at once.
    Removed,
}

/// Result of [`ScalingManager::set_replicas`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaChange {
    /// `active + starting + pending` before and after.
    pub from: u32,
    pub to: u32,
    /// Instances that became Active ready times for the caller to schedule.
    pub started: Vec<ScaleUp>,
    /// Why the target was not reached in full, if it was not.
    pub refused: Option<Refusal>,
    /// New pods left Pending for want of room in the cluster (counted in `to`).
    pub pending: u32,
}

pub struct ScalingManager {
    cluster: ClusterSpec,
    templates: Vec<ServiceTemplate>,
    servers: Vec<Server>,
    instances: Vec<Instance>,
    /// Active instance ids of each service, ascending.
    active: Vec<Vec<InstanceId>>,
    counts: Vec<ReplicaCounts>,
    live_instances: u32,
    live_servers: u32,
    history: Vec<StatusChange>,
    events: Vec<ScalingEvent>,
    refusals: u64,
    /// Pending pods in the order they were created (one entry per pod: its service and the
    /// server type it was asked on): room that frees goes to the oldest first, as the scheduler's
    /// queue takes pods of equal priority, and it starts on the type it was asked on.
    pending: std::collections::VecDeque<(usize, usize)>,
}

impl ScalingManager {
    pub fn new(cluster: &ClusterSpec, app: &AppSpec) -> Self {
        let templates = app
            .services
            .iter()
            .map(|s| ServiceTemplate {
                name: s.name.clone(),
                sku: s.sku,
                shape: s.shape,
                startup_time: s.startup_time(),
                min_replicas: s.min_replicas,
                max_replicas: s.max_replicas,
            })
            .collect::<Vec<_>>();
        let n = templates.len();
        ScalingManager {
            cluster: cluster.clone(),
            templates,
            servers: Vec::new(),
            instances: Vec::new(),
            active: vec![Vec::new(); n],
            counts: vec![ReplicaCounts::default(); n],
            live_instances: 0,
            live_servers: 0,
            history: Vec::new(),
            events: Vec::new(),
            refusals: 0,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// Creates `replicas` instances of `service`, Active at once: the deployment a run starts from.
    pub fn bootstrap(&mut self, now: SimTime, service: usize, replicas: u32) {
        for _ in 0..replicas {
            let sku = self.templates[service].sku;
            let (id, _) = self.create(now, service, sku);
            self.mark_active(now, id);
        }
    }

    fn create(&mut self, now: SimTime, service: usize, sku: usize) -> (InstanceId, ServerId) {
        let server = self.servers.len() as ServerId;
        self.servers.push(Server { id: server, sku, instances: 1, created_at: now, removed_at: None });
        let id = self.instances.len() as InstanceId;
        self.instances.push(Instance::new(id, service, server, self.templates[service].shape, now));
        self.live_instances += 1;
        self.live_servers += 1;
        self.counts[service].starting += 1;
        self.change(now, id, None, InstanceState::Starting);
        self.events.push(ScalingEvent::Added {
            time: now,
            service: self.templates[service].name.clone(),
            instance: id,
            server,
            sku: self.cluster.skus[sku].name.clone(),
        });
        (id, server)
    }

    fn change(&mut self, now: SimTime, id: InstanceId, from: Option<InstanceState>, to: InstanceState) {
        let service = self.instances[id as usize].service;
        self.history.push(StatusChange { time: now, instance: id, service, from, to });
    }

    /// Starts one new instance of `service` on a new server of `sku` (default: the service's).
    /// Refused on a full cluster: this one-instance call is an action executor's (gym-hpa's
    /// semantics, where a refused action is the agent's to learn from); a policy decision
    /// ([`Self::set_replicas_on`]) leaves such pods Pending instead, as Kubernetes does.
    pub fn scale_up_full(&mut self, now: SimTime, service: usize, sku: Option<usize>) -> Result<ScaleUp, Refusal> {
        match self.check_scale_up(service, sku) {
            Ok(sku) => Ok(self.start(now, service, sku)),
            Err(r) => Err(self.refuse(now, r)),
        }
    }

    /// Whether one more instance of `service` can start now; the SKU it would rent.
    fn check_scale_up(&self, service: usize, sku: Option<usize>) -> Result<usize, Refusal> {
        let t = &self.templates[service];
        if self.counts[service].desired_basis() >= t.max_replicas {
            return Err(Refusal::MaxReplicas { service: t.name.clone(), max: t.max_replicas });
        }
        // The server type first: a pod that fits no server is refused, not left Pending.
        let sku = sku.unwrap_or(t.sku);
        let Some(k) = self.cluster.skus.get(sku) else {
            return Err(Refusal::NoSuchSku { service: t.name.clone(), sku });
        };
        if t.shape.cpu_request > k.cores || t.shape.memory_mib > k.memory_gib * 1024.0 {
            return Err(Refusal::SkuTooSmall { service: t.name.clone(), sku: k.name.clone() });
        }
        if self.live_instances >= self.cluster.max_instances {
            return Err(Refusal::ClusterFull { service: t.name.clone(), max: self.cluster.max_instances });
        }
        Ok(sku)
    }

    fn start(&mut self, now: SimTime, service: usize, sku: usize) -> ScaleUp {
        let ready_at = now + self.templates[service].startup_time;
        let (instance, server) = self.create(now, service, sku);
        ScaleUp { instance, server, ready_at }
    }

    /// Cancels (Starting) or drains (Active) `instance`. Refused below the service's minimum or for
    /// an instance already draining or removed.
    pub fn scale_down_full(&mut self, now: SimTime, instance: InstanceId) -> Result<ScaleDown, Refusal> {
        let Some(inst) = self.instances.get(instance as usize) else {
            return Err(self.refuse(now, Refusal::NotScalable { instance, state: "unknown" }));
        };
        let service = inst.service;
        let state = inst.state;
        let t = &self.templates[service];
        if matches!(state, InstanceState::Draining | InstanceState::Removed) {
            return Err(self.refuse(now, Refusal::NotScalable { instance, state: state.as_str() }));
        }
        if self.counts[service].desired_basis() <= t.min_replicas {
            return Err(self.refuse(now, Refusal::MinReplicas { service: t.name.clone(), min: t.min_replicas }));
        }
        match state {
            InstanceState::Starting => {
                self.counts[service].starting -= 1;
                self.events.push(ScalingEvent::Cancelled { time: now, service: t.name.clone(), instance });
                self.remove(now, instance, InstanceState::Starting);
                Ok(ScaleDown::Cancelled)
            }
            InstanceState::Active => {
                let list = &mut self.active[service];
                if let Ok(pos) = list.binary_search(&instance) {
                    list.remove(pos);
                }
                self.counts[service].active -= 1;
                self.counts[service].draining += 1;
                self.instances[instance as usize].state = InstanceState::Draining;
                self.change(now, instance, Some(InstanceState::Active), InstanceState::Draining);
                self.events.push(ScalingEvent::Draining {
                    time: now,
                    service: self.templates[service].name.clone(),
                    instance,
                });
                if self.instances[instance as usize].outstanding == 0 {
                    self.finish_drain(now, instance);
                    Ok(ScaleDown::Removed)
                } else {
                    Ok(ScaleDown::Draining)
                }
            }
            InstanceState::Draining | InstanceState::Removed => unreachable!("refused above"),
        }
    }

    /// Removes a Draining instance whose outstanding work is done. Returns false (and does nothing)
    /// for an instance that is not Draining or still holds work.
    pub fn finish_drain(&mut self, now: SimTime, instance: InstanceId) -> bool {
        let inst = &self.instances[instance as usize];
        if inst.state != InstanceState::Draining || inst.outstanding != 0 {
            return false;
        }
        let service = inst.service;
        self.counts[service].draining -= 1;
        self.remove(now, instance, InstanceState::Draining);
        true
    }

    /// Removes an instance that died (a crashed process on a real backend), whatever its state and
    /// the service's minimum: a failure is not a decision, so nothing is refused. Returns false for
    /// an instance already removed. Its work is lost; the caller accounts for it.
    pub fn remove_failed(&mut self, now: SimTime, instance: InstanceId) -> bool {
        let Some(inst) = self.instances.get_mut(instance as usize) else {
            return false;
        };
        let (service, state) = (inst.service, inst.state);
        inst.outstanding = 0;
        inst.busy = 0;
        inst.stalled = 0;
        let c = &mut self.counts[service];
        match state {
            InstanceState::Removed => return false,
            InstanceState::Starting => c.starting -= 1,
            InstanceState::Draining => c.draining -= 1,
            InstanceState::Active => {
                c.active -= 1;
                let list = &mut self.active[service];
                if let Ok(pos) = list.binary_search(&instance) {
                    list.remove(pos);
                }
            }
        }
        self.remove(now, instance, state);
        true
    }

    fn remove(&mut self, now: SimTime, instance: InstanceId, from: InstanceState) {
        let inst = &mut self.instances[instance as usize];
        inst.integrate_cpu(now);
        inst.state = InstanceState::Removed;
        inst.removed_at = Some(now);
        inst.queue = Default::default(); // frees the queue's buffer: removed instances hold no memory
        let server = inst.server;
        let service = inst.service;
        self.live_instances -= 1;
        self.change(now, instance, Some(from), InstanceState::Removed);
        let srv = &mut self.servers[server as usize];
        srv.instances -= 1;
        let server_removed = srv.instances == 0;
        if server_removed {
            srv.removed_at = Some(now);
            self.live_servers -= 1;
        }
        self.events.push(ScalingEvent::Removed {
            time: now,
            service: self.templates[service].name.clone(),
            instance,
            server,
            server_removed,
        });
    }

    /// Starting -> Active. Returns false for an instance that is no longer Starting (cancelled).
    pub fn mark_active(&mut self, now: SimTime, instance: InstanceId) -> bool {
        let inst = &mut self.instances[instance as usize];
        if inst.state != InstanceState::Starting {
            return false;
        }
        inst.state = InstanceState::Active;
        inst.active_at = Some(now);
        let service = inst.service;
        let list = &mut self.active[service];
        let pos = list.partition_point(|&i| i < instance);
        list.insert(pos, instance);
        self.counts[service].starting -= 1;
        self.counts[service].active += 1;
        self.change(now, instance, Some(InstanceState::Starting), InstanceState::Active);
        self.events.push(ScalingEvent::Active { time: now, service: self.templates[service].name.clone(), instance });
        true
    }

    /// Moves `service` toward `desired` replicas (active + starting + pending), clamped to its
    /// min/max. Pods the cluster has no room for stay Pending (after any older Pending pods) until
    /// [`Self::schedule_pending`] finds room. Scaling down deletes Pending pods first (newest
    /// first), then cancels Starting instances (newest first), then drains the least-loaded
    /// Active ones.
    pub fn set_replicas(&mut self, now: SimTime, service: usize, desired: u32) -> ReplicaChange {
        self.set_replicas_on(now, service, desired, None)
    }

    /// [`Self::set_replicas`], new instances renting servers of `sku` (`None`: the service's own).
    pub fn set_replicas_on(&mut self, now: SimTime, service: usize, desired: u32, sku: Option<usize>) -> ReplicaChange {
        let from = self.counts[service].desired_basis();
        let t = &self.templates[service];
        let mut refused = None;
        let mut target = desired;
        if desired > t.max_replicas {
            target = t.max_replicas;
            refused = Some(self.refuse(now, Refusal::MaxReplicas { service: t.name.clone(), max: t.max_replicas }));
        } else if desired < t.min_replicas {
            target = t.min_replicas;
            refused = Some(self.refuse(now, Refusal::MinReplicas { service: t.name.clone(), min: t.min_replicas }));
        }
        let mut started = Vec::new();
        let mut pending = 0;
        // The server type Pending pods keep (a node selector): the one asked for, or the service's.
        let pending_sku = sku.unwrap_or(self.templates[service].sku);
        while self.counts[service].desired_basis() < target {
            // With older pods waiting for room, a new pod queues behind them.
            let behind_older = !self.pending.is_empty();
            match self.check_scale_up(service, sku) {
                Ok(sku) if !behind_older => started.push(self.start(now, service, sku)),
                Ok(_) | Err(Refusal::ClusterFull { .. }) => {
                    pending = target - self.counts[service].desired_basis();
                    break;
                }
                Err(r) => {
                    refused = Some(self.refuse(now, r));
                    break;
                }
            }
        }
        if pending > 0 {
            self.counts[service].pending += pending;
            self.pending.extend((0..pending).map(|_| (service, pending_sku)));
            let name = self.templates[service].name.clone();
            self.events.push(ScalingEvent::Pending { time: now, service: name, pods: pending });
        }
        // A scale-down deletes Pending pods first (newest first), as a ReplicaSet deletes
        // unscheduled pods before scheduled ones.
        let mut deleted = 0;
        while self.counts[service].desired_basis() > target && self.counts[service].pending > 0 {
            if let Some(pos) = self.pending.iter().rposition(|&(s, _)| s == service) {
                self.pending.remove(pos);
            }
            self.counts[service].pending -= 1;
            deleted += 1;
        }
        if deleted > 0 {
            let name = self.templates[service].name.clone();
            self.events.push(ScalingEvent::PendingCancelled { time: now, service: name, pods: deleted });
        }
        while self.counts[service].desired_basis() > target {
            let Some(victim) = self.pick_scale_down(service) else {
                break;
            };
            if let Err(r) = self.scale_down_full(now, victim) {
                refused = Some(r);
                break;
            }
        }
        // Room this scale-down freed goes to pods waiting for it.
        started.extend(self.schedule_pending(now));
        ReplicaChange { from, to: self.counts[service].desired_basis(), started, refused, pending }
    }

    /// Places Pending pods, oldest first, while the cluster has room: each becomes a Starting
    /// instance whose readiness the caller schedules. Backends call this whenever room may have
    /// freed (every timeline tick, and after a decision).
    pub fn schedule_pending(&mut self, now: SimTime) -> Vec<ScaleUp> {
        let mut started = Vec::new();
        while self.live_instances < self.cluster.max_instances {
            let Some((service, sku)) = self.pending.pop_front() else {
                break;
            };
            self.counts[service].pending -= 1;
            started.push(self.start(now, service, sku));
        }
        started
    }

    /// Moves an Active instance to another service's role on the same server (LLM prompt <-> token
    /// pools): the instance drains (it takes no new work, finishes what it holds, then goes) and a
    /// new instance of `to` starts on its server, Active after `delay`. The server is not released
    /// in between, so no new server is rented (and the cluster maximum does not apply); the
    /// services' min and max replicas do.
    pub fn migrate(
        &mut self,
        now: SimTime,
        instance: InstanceId,
        to: usize,
        delay: SimTime,
    ) -> Result<ScaleUp, Refusal> {
        let Some(inst) = self.instances.get(instance as usize) else {
            return Err(self.refuse(now, Refusal::NotScalable { instance, state: "unknown" }));
        };
        let (from, server, state) = (inst.service, inst.server, inst.state);
        if state != InstanceState::Active {
            return Err(self.refuse(now, Refusal::NotScalable { instance, state: state.as_str() }));
        }
        let (tf, tt) = (&self.templates[from], &self.templates[to]);
        if self.counts[from].desired_basis() <= tf.min_replicas {
            return Err(self.refuse(now, Refusal::MinReplicas { service: tf.name.clone(), min: tf.min_replicas }));
        }
        if self.counts[to].desired_basis() >= tt.max_replicas {
            return Err(self.refuse(now, Refusal::MaxReplicas { service: tt.name.clone(), max: tt.max_replicas }));
        }
        // The new role's instance first, so the server never looks empty.
        let id = self.instances.len() as InstanceId;
        self.instances.push(Instance::new(id, to, server, self.templates[to].shape, now));
        self.servers[server as usize].instances += 1;
        self.live_instances += 1;
        self.counts[to].starting += 1;
        self.change(now, id, None, InstanceState::Starting);
        self.events.push(ScalingEvent::Added {
            time: now,
            service: self.templates[to].name.clone(),
            instance: id,
            server,
            sku: self.cluster.skus[self.servers[server as usize].sku].name.clone(),
        });
        self.scale_down_full(now, instance)?;
        Ok(ScaleUp { instance: id, server, ready_at: now + delay })
    }

    /// Resizes the CPU limit of `service` in place (as Kubernetes' in-place pod resize does): every
    /// live instance and every future one. The limit is clamped to `[cpu_request, SKU cores]`;
    /// returns the limit applied. Work already running keeps its speed; work started afterwards
    /// runs at the new one.
    pub fn set_cpu_limit(&mut self, now: SimTime, service: usize, cores: f64) -> f64 {
        let t = &mut self.templates[service];
        let sku_cores = self.cluster.skus[t.sku].cores;
        let applied = cores.clamp(t.shape.cpu_request, sku_cores.max(t.shape.cpu_request));
        t.shape.cpu_limit = applied;
        for inst in self.instances.iter_mut().filter(|i| i.service == service && i.is_live()) {
            inst.integrate_cpu(now);
            inst.set_cpu_limit(applied);
        }
        applied
    }

    /// The current shape new instances of `service` get.
    pub fn shape(&self, service: usize) -> InstanceShape {
        self.templates[service].shape
    }

    /// The cluster's SKUs and maximum instances.
    pub fn cluster(&self) -> &ClusterSpec {
        &self.cluster
    }

    /// The instance a scale-down of `service` takes: the newest Starting one if any, else the
    /// Active one with the fewest outstanding visits (ties: lowest id).
    pub fn pick_scale_down(&self, service: usize) -> Option<InstanceId> {
        if self.counts[service].starting > 0 {
            // Instances are created in id order, so the newest Starting one has the highest id.
            return self
                .instances
                .iter()
                .rev()
                .find(|i| i.service == service && i.state == InstanceState::Starting)
                .map(|i| i.id);
        }
        self.active[service].iter().copied().min_by_key(|&id| (self.instances[id as usize].outstanding, id))
    }

    fn refuse(&mut self, now: SimTime, r: Refusal) -> Refusal {
        self.refusals += 1;
        self.events.push(ScalingEvent::Refused { time: now, reason: r.clone() });
        r
    }

    // ---- reads -------------------------------------------------------------------------------

    pub fn active_instances(&self, service: usize) -> &[InstanceId] {
        &self.active[service]
    }

    pub fn counts(&self, service: usize) -> ReplicaCounts {
        self.counts[service]
    }

    pub fn status_summary(&self) -> StatusSummary {
        let mut s = StatusSummary { servers: self.live_servers, total: self.live_instances, ..Default::default() };
        for c in &self.counts {
            s.active += c.active;
            s.starting += c.starting;
            s.draining += c.draining;
        }
        s
    }

    pub fn instance(&self, id: InstanceId) -> &Instance {
        &self.instances[id as usize]
    }

    /// Mutable access to an instance's runtime state (queues, counters). Its lifecycle `state` must
    /// only be changed through this manager's methods.
    #[inline]
    pub fn instance_mut(&mut self, id: InstanceId) -> &mut Instance {
        &mut self.instances[id as usize]
    }

    /// Every instance ever created, removed ones included, by id.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn instances_mut(&mut self) -> &mut [Instance] {
        &mut self.instances
    }

    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    pub fn history(&self) -> &[StatusChange] {
        &self.history
    }

    pub fn refusals(&self) -> u64 {
        self.refusals
    }

    /// Scaling events since the last call, oldest first.
    pub fn take_events(&mut self) -> std::vec::Drain<'_, ScalingEvent> {
        self.events.drain(..)
    }

    pub fn service_name(&self, service: usize) -> &str {
        &self.templates[service].name
    }

    /// Seconds every instance existed (any state but Removed), up to `now`, from the history.
    pub fn instance_seconds(&self, now: SimTime) -> f64 {
        let mut total = 0u64;
        let mut born = vec![None; self.instances.len()];
        for c in &self.history {
            match (c.from, c.to) {
                (None, _) => born[c.instance as usize] = Some(c.time),
                (_, InstanceState::Removed) => {
                    if let Some(b) = born[c.instance as usize].take() {
                        total += (c.time - b).0;
                    }
                }
                _ => {}
            }
        }
        total += born.iter().flatten().map(|b| now.saturating_sub(*b).0).sum::<u64>();
        total as f64 / 1e6
    }

    /// Server-hours times price, up to `now`.
    pub fn cost(&self, now: SimTime) -> f64 {
        self.servers
            .iter()
            .map(|s| {
                let end = s.removed_at.unwrap_or(now).min(now);
                end.saturating_sub(s.created_at).as_secs_f64() / 3600.0 * self.cluster.skus[s.sku].price_per_hour
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
