//! Drives a policy over any [`ClusterBackend`]: advance to the next decision time, observe, decide,
//! apply through the backend's scaling manager; and records what happened (a sample of every
//! service per decision period, every decision) so runs on different backends can be compared.
//!
//! This is the controller loop a Kubernetes HPA runs, written once for the simulator, the local
//! cluster and a real one.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{BackendError, ClusterBackend};
use crate::autoscale::{Autoscaler, CpuResize, ScaleDecision};
use crate::engine::SimTime;
use crate::metrics::LatencySummary;
use crate::sim::RunTotals;

/// One service at one sample time, as the metrics server reported it.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceSample {
    pub active: u32,
    pub starting: u32,
    pub draining: u32,
    /// Mean CPU utilisation of its Active pods against their request (the HPA's metric).
    pub cpu_utilization: Option<f64>,
    pub rps: f64,
    pub p95_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub time_s: f64,
    pub services: Vec<ServiceSample>,
}

/// One policy decision and what the backend made of it.
#[derive(Clone, Debug, Serialize)]
pub struct DecisionRecord {
    pub time_s: f64,
    pub service: usize,
    pub from: u32,
    pub to: u32,
    pub desired: u32,
    pub reason: String,
    pub blocked: String,
}

/// Everything a driven run recorded.
#[derive(Clone, Debug, Serialize)]
pub struct DriveLog {
    pub backend: String,
    pub policy: String,
    pub services: Vec<String>,
    pub samples: Vec<Sample>,
    pub decisions: Vec<DecisionRecord>,
    pub totals: RunTotals,
    pub latency_ms: LatencySummary,
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
}

impl DriveLog {
    /// Decisions that changed a replica count.
    pub fn scale_decisions(&self) -> usize {
        self.decisions.iter().filter(|d| d.from != d.to).count()
    }

    /// `service`'s samples' mean CPU utilisation (those with a value), or `None` if none had one.
    pub fn mean_cpu_utilization(&self, service: usize) -> Option<f64> {
        let vals: Vec<f64> = self.samples.iter().filter_map(|s| s.services[service].cpu_utilization).collect();
        (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
    }

    /// `service`'s mean Active replicas over the samples.
    pub fn mean_active(&self, service: usize) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.samples.iter().map(|s| s.services[service].active as f64).sum::<f64>() / self.samples.len() as f64
    }

    /// `service`'s samples' mean p95 visit latency (ms), over the samples that had traffic.
    pub fn mean_p95_ms(&self, service: usize) -> f64 {
        let vals: Vec<f64> = self.samples.iter().map(|s| s.services[service].p95_ms).filter(|v| *v > 0.0).collect();
        if vals.is_empty() {
            0.0
        } else {
            vals.iter().sum::<f64>() / vals.len() as f64
        }
    }

    /// `timeline.csv`-like rows: one per sample and service.
    pub fn write_samples(&self, path: &Path) -> std::io::Result<()> {
        let mut w = csv::Writer::from_path(path)?;
        w.write_record(["time_s", "service", "active", "starting", "draining", "cpu_utilization", "rps", "p95_ms"])?;
        for s in &self.samples {
            for (i, v) in s.services.iter().enumerate() {
                w.write_record([
                    format!("{:.3}", s.time_s),
                    self.services[i].clone(),
                    v.active.to_string(),
                    v.starting.to_string(),
                    v.draining.to_string(),
                    v.cpu_utilization.map_or(String::new(), |u| format!("{u:.4}")),
                    format!("{:.3}", v.rps),
                    format!("{:.3}", v.p95_ms),
                ])?;
            }
        }
        w.flush()
    }

    pub fn write_decisions(&self, path: &Path) -> std::io::Result<()> {
        let mut w = csv::Writer::from_path(path)?;
        w.write_record(["time_s", "service", "from", "to", "desired", "reason", "blocked"])?;
        for d in &self.decisions {
            w.write_record([
                format!("{:.3}", d.time_s),
                self.services[d.service].clone(),
                d.from.to_string(),
                d.to.to_string(),
                d.desired.to_string(),
                d.reason.clone(),
                d.blocked.clone(),
            ])?;
        }
        w.flush()
    }
}

/// Runs `policy` on `backend` to its horizon. `progress(now, horizon)` is called after every period.
/// `log` (if any) gets one line per replica change.
pub fn drive(
    backend: &mut dyn ClusterBackend,
    backend_name: &str,
    policy: &mut dyn Autoscaler,
    progress: &mut dyn FnMut(SimTime, SimTime),
    mut log: Option<&mut dyn Write>,
) -> Result<DriveLog, BackendError> {
    let started = std::time::Instant::now();
    let horizon = backend.horizon();
    let period = policy.period();
    let services: Vec<String> = backend.app().services.iter().map(|s| s.name.clone()).collect();
    let mut samples = Vec::new();
    let mut decisions = Vec::new();
    let mut out: Vec<ScaleDecision> = Vec::new();
    // A real cluster's clock need not start at 0: times are recorded from the start of the run.
    let t0 = backend.now();
    let since = |t: SimTime| t.saturating_sub(t0).as_secs_f64();
    let mut t = (t0 + period).min(horizon);
    loop {
        backend.advance(t)?;
        let view = backend.observe();
        samples.push(Sample {
            time_s: since(t),
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
                })
                .collect(),
        });
        progress(t.saturating_sub(t0), horizon.saturating_sub(t0));
        if t >= horizon {
            break;
        }
        out.clear();
        policy.decide(&view, &mut out);
        for d in &out {
            if d.service >= services.len() {
                return Err(BackendError::Sim(crate::sim::SimError::BadDecision {
                    policy: policy.name(),
                    service: d.service,
                    services: services.len(),
                }));
            }
            let resize = d.cpu_limit.map(|cores| backend.resize_cpu_limit(d.service, cores));
            let change = backend.set_replicas_on(d.service, d.desired, d.sku)?;
            let reason = CpuResize::annotate(&d.reason, resize);
            if change.from != change.to {
                if let Some(w) = log.as_deref_mut() {
                    let _ = writeln!(
                        w,
                        "[{:>10.3}s] {} {} -> {} ({})",
                        since(t),
                        services[d.service],
                        change.from,
                        change.to,
                        reason
                    );
                }
            }
            decisions.push(DecisionRecord {
                time_s: since(t),
                service: d.service,
                from: change.from,
                to: change.to,
                desired: d.desired,
                reason,
                blocked: change.refused.map(|r| r.to_string()).unwrap_or_default(),
            });
        }
        t = (t + period).min(horizon);
    }
    Ok(DriveLog {
        backend: backend_name.into(),
        policy: policy.name(),
        services,
        samples,
        decisions,
        totals: backend.totals(),
        latency_ms: backend.latency(),
        wall_s: started.elapsed().as_secs_f64(),
    })
}
