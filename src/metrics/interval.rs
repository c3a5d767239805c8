//! Closing a timeline interval from the cluster's state: each instance's CPU and held-visit
//! counters since the last interval, request and limit time of every instance that existed,
//! serving time of the Active ones, queues; then the ground truth's interval rows, the scaling-lag
//! tracking and what the metrics server aggregates. The serving model adds what it holds outside
//! the instances (Knative's activator, a fluid backlog, the LLM pools' queues).
//!
//! It reads the ScalingManager's instances and brings their counters up to the interval's end;
//! it never changes which instances exist or their state.

use super::{GroundTruth, IntervalRow, MetricsServer};
use crate::app::AppSpec;
use crate::cluster::InstanceId;
use crate::engine::SimTime;
use crate::scaling::ScalingManager;

/// What the serving model holds for one service outside its instances over the interval.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeldOutside {
    /// Visit-microseconds held (added to the instances').
    pub held_area: f64,
    /// Visits waiting at the interval's end (added to the instances' queues).
    pub queued: u32,
    /// Replaces the queue count where the model keeps its own queues (fluid, LLM).
    pub queue_override: Option<u32>,
}

/// The per-instance marks and per-service sums of interval closing.
pub struct IntervalMeter {
    /// Instances alive at the last interval end or created since, ascending id.
    tracked: Vec<InstanceId>,
    /// Cumulative CPU and held-visit area of each instance at the last interval end (by id).
    cpu_mark: Vec<f64>,
    held_mark: Vec<f64>,
    /// Visits/s one Active instance of each service can serve (for the scaling-lag metric).
    capacity_per_instance: Vec<f64>,
    /// Requests finished and violating at the last interval end (for the metrics server).
    last_finished: (u64, u64),
    used: Vec<f64>,
    serving: Vec<f64>,
    queue: Vec<u32>,
    held: Vec<f64>,
}

impl IntervalMeter {
    pub fn new(capacity_per_instance: Vec<f64>) -> Self {
        let n = capacity_per_instance.len();
        IntervalMeter {
            tracked: Vec::new(),
            cpu_mark: Vec::new(),
            held_mark: Vec::new(),
            capacity_per_instance,
            last_finished: (0, 0),
            used: vec![0.0; n],
            serving: vec![0.0; n],
            queue: vec![0; n],
            held: vec![0.0; n],
        }
    }

    /// The instances a view or a scrape looks at.
    pub fn tracked(&self) -> &[InstanceId] {
        &self.tracked
    }

    /// Starts tracking the instances created since the last call.
    pub fn track_new_instances(&mut self, scaling: &ScalingManager) {
        for id in self.cpu_mark.len()..scaling.instances().len() {
            self.cpu_mark.push(0.0);
            self.held_mark.push(0.0);
            self.tracked.push(id as InstanceId);
        }
    }

    /// Stops tracking removed instances (after the interval's scrape).
    pub fn forget_removed(&mut self, scaling: &ScalingManager) {
        self.tracked.retain(|&id| scaling.instance(id).is_live());
    }

    /// Closes the interval `[t0, t1)`: writes its rows to `truth`, feeds `server`.
    #[allow(clippy::too_many_arguments)] // each is one distinct party to an interval's end
    pub fn close(
        &mut self,
        t0: SimTime,
        t1: SimTime,
        scaling: &mut ScalingManager,
        app: &AppSpec,
        truth: &mut GroundTruth,
        server: &mut MetricsServer,
        outside: &[HeldOutside],
    ) -> std::io::Result<()> {
        let n = app.services.len();
        self.used.iter_mut().for_each(|x| *x = 0.0);
        self.serving.iter_mut().for_each(|x| *x = 0.0);
        self.queue.iter_mut().for_each(|x| *x = 0);
        self.held.iter_mut().for_each(|x| *x = 0.0);
        let (mut alloc, mut limit) = (0.0, 0.0);
        for &id in &self.tracked {
            let inst = scaling.instance_mut(id);
            if inst.is_live() {
                inst.integrate_cpu(t1);
                inst.integrate_held(t1);
            }
            let held = inst.held_area();
            self.held[inst.service()] += held - self.held_mark[id as usize];
            self.held_mark[id as usize] = held;
            let s = inst.service();
            let used = inst.cpu_used - self.cpu_mark[id as usize];
            self.cpu_mark[id as usize] = inst.cpu_used;
            self.used[s] += used;
            let end = inst.removed_at().unwrap_or(t1).min(t1);
            let req = inst.shape.cpu_request;
            let from = inst.created_at().max(t0);
            if end > from {
                alloc += req * (end - from).0 as f64;
                // Limits change only at decisions, which fall on these ticks.
                limit += inst.shape.cpu_limit * (end - from).0 as f64;
            }
            if let Some(a) = inst.active_at() {
                let from = a.max(t0);
                if end > from {
                    self.serving[s] += req * (end - from).0 as f64;
                }
            }
            self.queue[s] += inst.queue.len() as u32;
        }
        for (s, o) in outside.iter().enumerate().take(n) {
            self.held[s] += o.held_area;
            self.queue[s] = o.queue_override.unwrap_or(self.queue[s] + o.queued);
        }
        truth.add_cpu(self.used.iter().sum::<f64>(), alloc, limit);
        let secs = (t1 - t0).as_secs_f64();
        for s in 0..n {
            let c = scaling.counts(s);
            let lag = match &app.services[s].stateful {
                Some(st) => {
                    let src = st.replicates_from.unwrap_or(s);
                    st.replication_lag_ms(truth.tick_counts(src).2 as f64 / secs)
                }
                None => 0.0,
            };
            let capacity = c.active as f64 * self.capacity_per_instance[s];
            truth.track_lag(s, t1, capacity);
            let row = IntervalRow {
                time_s: t0.as_secs_f64(),
                service: s,
                active: c.active,
                starting: c.starting,
                draining: c.draining,
                queue_len: self.queue[s],
                replication_lag_ms: lag,
                ..Default::default()
            };
            truth.close_interval(row, self.used[s], self.serving[s], (t1 - t0).0)?;
            server.set_replication_lag(s, lag);
            let concurrency = if t1 > t0 { self.held[s] / (t1 - t0).0 as f64 } else { 0.0 };
            let (arrivals, dropped, _) = truth.tick_counts(s);
            server.add_interval(s, arrivals, dropped, concurrency);
        }
        truth.reset_interval();
        truth.write_requests_row(t0)?;
        let t = truth.totals();
        let (finished, violating) = (t.finished(), t.violating());
        let (f0, v0) = std::mem::replace(&mut self.last_finished, (finished, violating));
        server.add_requests(finished.saturating_sub(f0), violating.saturating_sub(v0));
        Ok(())
    }
}
