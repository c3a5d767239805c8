//! The one controller loop, for every backend (the simulator, the local cluster, a Kubernetes
//! cluster): advance to the next decision time, observe, decide, apply through the backend's
//! scaling manager, and record what happened (a sample per decision period, every decision, in
//! `metrics`' run-folder schema) so runs on different backends compare column for column.
//!
//! This is the loop a Kubernetes HPA controller runs. The RL environment is the one other driver
//! of a backend: it applies an agent's actions step by step itself.

use std::io::Write;

use super::{BackendError, ClusterBackend};
use crate::autoscale::{Autoscaler, CpuResize, ScaleDecision};
use crate::engine::SimTime;
use crate::metrics::{ActionsWriter, DecisionRecord, Recording, Sample, ServiceSample};

/// How many progress reports a run makes at least (a policy that never decides still reports).
const PROGRESS_STEPS: u64 = 200;

/// Runs `policy` on `backend` to its horizon and returns what it recorded.
pub fn drive<'a>(
    backend: &mut dyn ClusterBackend,
    backend_name: &str,
    policy: &'a mut dyn Autoscaler,
    actions: ActionsWriter,
    log: Option<&'a mut dyn Write>,
    progress: &mut dyn FnMut(&dyn ClusterBackend),
) -> Result<Recording, BackendError> {
    let mut controller = Controller::new(&*backend, backend_name, policy, actions);
    controller.log = log;
    let horizon = backend.horizon();
    controller.run_until(backend, horizon, progress)?;
    controller.finish(&*backend)
}

/// The controller loop, resumable: [`Controller::run_until`] takes it to any time, so a test can
/// stop between decisions and look at the backend. A decision at time `t` sees every event at
/// `t` (the scrape of a tick at `t` included); decisions happen only before the horizon.
pub struct Controller<'a> {
    policy: &'a mut dyn Autoscaler,
    backend_name: String,
    actions: ActionsWriter,
    /// One readable line per replica change (`--verbose` on real backends).
    pub log: Option<&'a mut dyn Write>,
    services: Vec<String>,
    horizon: SimTime,
    /// The backend's clock at the start: a real cluster's need not start at 0, and times are
    /// recorded from the start of the run.
    t0: SimTime,
    period: SimTime,
    report_step: SimTime,
    /// The next decision (or, at the horizon, the last sample).
    next: SimTime,
    /// How far the backend has been advanced.
    at: SimTime,
    done: bool,
    samples: Vec<Sample>,
    decisions: Vec<DecisionRecord>,
    buf: Vec<ScaleDecision>,
    view: crate::metrics::ClusterView,
    started: std::time::Instant,
}

impl<'a> Controller<'a> {
    pub fn new(
        backend: &dyn ClusterBackend,
        backend_name: &str,
        policy: &'a mut dyn Autoscaler,
        actions: ActionsWriter,
    ) -> Self {
        let (t0, horizon) = (backend.now(), backend.horizon());
        let period = if policy.is_passive() { horizon.saturating_sub(t0) } else { policy.period() };
        Controller {
            policy,
            backend_name: backend_name.into(),
            actions,
            log: None,
            services: backend.app().services.iter().map(|s| s.name.clone()).collect(),
            horizon,
            t0,
            period,
            report_step: SimTime((horizon.saturating_sub(t0).0 / PROGRESS_STEPS).max(1)),
            next: (t0 + period).min(horizon),
            at: t0,
            done: false,
            samples: Vec::new(),
            decisions: Vec::new(),
            buf: Vec::new(),
            view: Default::default(),
            started: std::time::Instant::now(),
        }
    }

    fn since(&self, t: SimTime) -> f64 {
        t.saturating_sub(self.t0).as_secs_f64()
    }

    /// Advances `backend` to `until` (at most the horizon), deciding at every decision time up
    /// to and including it. `progress` is called after every advance.
    pub fn run_until(
        &mut self,
        backend: &mut dyn ClusterBackend,
        until: SimTime,
        progress: &mut dyn FnMut(&dyn ClusterBackend),
    ) -> Result<(), BackendError> {
        while !self.done {
            let target = self.next.min(until);
            // Advancing in pieces is the same as one advance: it only adds progress reports.
            while self.at < target {
                self.at = (self.at + self.report_step).min(target);
                backend.advance(self.at)?;
                progress(&*backend);
            }
            if self.at < self.next {
                return Ok(());
            }
            backend.observe_into(&mut self.view);
            self.samples.push(sample(self.since(self.next), &self.view, &*backend));
            if self.next >= self.horizon {
                self.done = true;
                break;
            }
            self.decide(backend)?;
            self.next = (self.next + self.period).min(self.horizon);
        }
        Ok(())
    }

    fn decide(&mut self, backend: &mut dyn ClusterBackend) -> Result<(), BackendError> {
        self.buf.clear();
        self.policy.decide(&self.view, &mut self.buf);
        let time_s = self.since(self.next);
        for d in &self.buf {
            let Some(name) = self.services.get(d.service) else {
                return Err(BackendError::BadDecision {
                    policy: self.policy.name(),
                    service: d.service,
                    services: self.services.len(),
                });
            };
            let resize = d.cpu_limit.map(|cores| backend.resize_cpu_limit(d.service, cores));
            let change = backend.set_replicas_on(d.service, d.desired, d.sku)?;
            let record = DecisionRecord {
                time_s,
                service: d.service,
                from: change.from,
                to: change.to,
                desired: d.desired,
                reason: CpuResize::annotate(&d.reason, resize),
                blocked: match (change.refused, change.pending) {
                    (Some(r), _) => r.to_string(),
                    (None, 0) => String::new(),
                    (None, n) => format!("{n} pod(s) Pending: no room in the cluster"),
                },
            };
            if change.from != change.to {
                if let Some(w) = self.log.as_deref_mut() {
                    let _ =
                        writeln!(w, "[{time_s:>10.3}s] {name} {} -> {} ({})", record.from, record.to, record.reason);
                }
            }
            self.actions.write(name, &record).map_err(BackendError::Output)?;
            self.decisions.push(record);
        }
        Ok(())
    }

    /// What the loop recorded, with the backend's totals and latency now.
    pub fn finish(mut self, backend: &dyn ClusterBackend) -> Result<Recording, BackendError> {
        self.actions.flush().map_err(BackendError::Output)?;
        Ok(Recording {
            backend: self.backend_name,
            policy: self.policy.name(),
            services: self.services,
            samples: self.samples,
            decisions: self.decisions,
            totals: backend.totals(),
            latency_ms: backend.latency(),
            wall_s: self.started.elapsed().as_secs_f64(),
        })
    }
}

fn sample(time_s: f64, view: &crate::metrics::ClusterView, backend: &dyn ClusterBackend) -> Sample {
    Sample {
        time_s,
        services: view
            .services
            .iter()
            .map(|s| ServiceSample {
                active: s.counts.active,
                starting: s.counts.starting,
                draining: s.counts.draining,
                cpu_utilization: s.cpu_utilization,
                rps: s.rps,
                p95_ms: s.p95_ms,
                queue_len: s.queue_len,
                replication_lag_ms: s.replication_lag_ms,
            })
            .collect(),
        totals: backend.totals(),
    }
}
