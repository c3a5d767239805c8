//! The run-folder schema that the controller loop records, the same for every backend:
//! `actions.csv` (one row per decision), and for backends that keep no ground-truth timeline of
//! their own (local, Kubernetes), `timeline.csv`, `requests.csv` and `summary.json` built from
//! what the loop sampled at each decision time. The simulator writes its exact per-interval
//! timeline through [`super::GroundTruth`] with the same header.
//!
//! This module formats records; it never observes a backend or decides anything (the loop in
//! `backend::driver` hands it what it saw).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{
    LatencySummary, RequestCounts, ScalingLagSummary, ServiceSummary, Summary, REQUESTS_HEADER, SUMMARY_FORMAT_VERSION,
    TIMELINE_FORMAT_VERSION, TIMELINE_HEADER,
};

/// Version of `actions.csv`'s columns; its last column carries it on every row.
pub const ACTIONS_FORMAT_VERSION: u32 = 1;
pub const ACTIONS_HEADER: [&str; 8] =
    ["time_s", "service", "from", "to", "desired", "reason", "blocked", "format_version"];

/// Cumulative counts since the start of a run (ground truth).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RunTotals {
    pub arrived: u64,
    pub completed: u64,
    pub dropped: u64,
    pub within_slo: u64,
    pub latency_sum_us: f64,
    pub cpu_used_core_us: f64,
    /// CPU request x time of every instance that existed (core-microseconds).
    pub cpu_alloc_core_us: f64,
    /// CPU limit x time of every instance that existed (core-microseconds).
    pub cpu_limit_core_us: f64,
}

impl RunTotals {
    /// Requests finished (completed or dropped).
    pub fn finished(&self) -> u64 {
        self.completed + self.dropped
    }

    /// Requests dropped or completed slower than the SLO.
    pub fn violating(&self) -> u64 {
        self.dropped + self.completed.saturating_sub(self.within_slo)
    }
}

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
    pub queue_len: u32,
    pub replication_lag_ms: f64,
}

/// What the loop saw at one decision time.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the start of the run.
    pub time_s: f64,
    pub services: Vec<ServiceSample>,
    /// The backend's ground-truth counters at that time.
    pub totals: RunTotals,
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

/// `actions.csv`, written as decisions are made (a run that stops early keeps what it decided).
pub struct ActionsWriter {
    out: csv::Writer<Box<dyn Write + Send>>,
}

impl ActionsWriter {
    pub fn new(out: Box<dyn Write + Send>) -> std::io::Result<ActionsWriter> {
        let mut out = csv::Writer::from_writer(out);
        out.write_record(ACTIONS_HEADER)?;
        Ok(ActionsWriter { out })
    }

    /// Discards the rows (training, benchmarks).
    pub fn discard() -> ActionsWriter {
        ActionsWriter::new(Box::new(std::io::sink())).expect("a sink takes the header")
    }

    pub fn write(&mut self, service: &str, d: &DecisionRecord) -> std::io::Result<()> {
        self.out.write_record([
            format!("{:.3}", d.time_s).as_str(),
            service,
            d.from.to_string().as_str(),
            d.to.to_string().as_str(),
            d.desired.to_string().as_str(),
            d.reason.as_str(),
            d.blocked.as_str(),
            ACTIONS_FORMAT_VERSION.to_string().as_str(),
        ])?;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Everything the loop recorded over a run: its samples and decisions.
#[derive(Clone, Debug, Serialize)]
pub struct Recording {
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

impl Recording {
    /// Decisions that changed a replica count.
    pub fn scale_decisions(&self) -> usize {
        self.decisions.iter().filter(|d| d.from != d.to).count()
    }

    /// `service`'s samples' mean CPU utilisation (those with a value), or `None` if none had one.
    pub fn mean_cpu_utilization(&self, service: usize) -> Option<f64> {
        mean(self.samples.iter().filter_map(|s| s.services[service].cpu_utilization))
    }

    /// `service`'s mean Active replicas over the samples.
    pub fn mean_active(&self, service: usize) -> f64 {
        mean(self.samples.iter().map(|s| s.services[service].active as f64)).unwrap_or(0.0)
    }

    /// `service`'s samples' mean p95 visit latency (ms), over the samples that had traffic.
    pub fn mean_p95_ms(&self, service: usize) -> f64 {
        mean(self.samples.iter().map(|s| s.services[service].p95_ms).filter(|v| *v > 0.0)).unwrap_or(0.0)
    }

    /// The intervals between samples: `(start, end, the sample at the end)`, the first starting
    /// at 0. A sample describes the interval it closes, as a timeline row does.
    fn intervals(&self) -> impl Iterator<Item = (f64, f64, &Sample)> {
        let starts = std::iter::once(0.0).chain(self.samples.iter().map(|s| s.time_s));
        starts.zip(&self.samples).map(|(t0, s)| (t0, s.time_s, s))
    }

    /// `timeline.csv` with the simulator's header: one row per sampled interval and service,
    /// stamped with the interval's start. Per-service completions and drops are not observed on
    /// a real backend: those cells are empty.
    pub fn write_timeline(&self, path: &Path) -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(w, "{TIMELINE_HEADER}")?;
        for (t0, _, sample) in self.intervals() {
            for (name, v) in self.services.iter().zip(&sample.services) {
                let cpu = v.cpu_utilization.map_or(String::new(), |u| format!("{u:.4}"));
                writeln!(
                    w,
                    "{t0:.3},{name},{},{},{},{:.3},,,{cpu},{:.3},{},{:.3},{TIMELINE_FORMAT_VERSION}",
                    v.active, v.starting, v.draining, v.rps, v.p95_ms, v.queue_len, v.replication_lag_ms
                )?;
            }
        }
        w.flush()
    }

    /// `requests.csv` with the simulator's header: request counts per sampled interval.
    pub fn write_requests(&self, path: &Path) -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(w, "{REQUESTS_HEADER}")?;
        let mut prev = RunTotals::default();
        for (t0, _, sample) in self.intervals() {
            let t = sample.totals;
            let arrived = t.arrived.saturating_sub(prev.arrived);
            let completed = t.completed.saturating_sub(prev.completed);
            let dropped = t.dropped.saturating_sub(prev.dropped);
            let violating = t.violating().saturating_sub(prev.violating());
            let finished = completed + dropped;
            let pct = if finished > 0 { 100.0 * violating as f64 / finished as f64 } else { 0.0 };
            writeln!(w, "{t0:.3},{arrived},{completed},{dropped},{violating},{pct:.3},{TIMELINE_FORMAT_VERSION}")?;
            prev = t;
        }
        w.flush()
    }

    /// `summary.json`'s figures from the samples, for a backend with no ground truth of its own.
    /// Replica-time is integrated from the samples (each sample's counts held over the interval it
    /// closes); `cost` and `instance_hours` come from the backend when it keeps them
    /// (`usage`: `(cost, instance_hours)`), else from the sampled replicas at `price_per_hour`.
    /// Figures a real backend does not observe are 0: scaling lag, per-service latency means,
    /// events processed.
    pub fn summary(
        &self,
        scenario: &str,
        seed: u64,
        slo_ms: f64,
        usage: Option<(f64, f64)>,
        price_per_hour: &[f64],
    ) -> Summary {
        let t = &self.totals;
        let horizon_s = self.samples.last().map_or(0.0, |s| s.time_s);
        let pct = |a: f64, b: f64| if b > 0.0 { 100.0 * a / b } else { 0.0 };
        let per_hour = |n: f64| if horizon_s > 0.0 { n / (horizon_s / 3600.0) } else { 0.0 };
        let mut replica_s = vec![0.0; self.services.len()];
        let mut active_s = vec![0.0; self.services.len()];
        for (t0, t1, sample) in self.intervals() {
            for (s, v) in sample.services.iter().enumerate() {
                replica_s[s] += (v.active + v.starting + v.draining) as f64 * (t1 - t0);
                active_s[s] += v.active as f64 * (t1 - t0);
            }
        }
        let (cost, instance_hours) = usage.unwrap_or_else(|| {
            let cost = replica_s.iter().zip(price_per_hour).map(|(r, p)| r / 3600.0 * p).sum();
            (cost, replica_s.iter().sum::<f64>() / 3600.0)
        });
        let services = self
            .services
            .iter()
            .enumerate()
            .map(|(s, name)| ServiceSummary {
                name: name.clone(),
                arrived: 0,
                completed: 0,
                dropped: 0,
                mean_latency_ms: 0.0,
                p95_ms: self.mean_p95_ms(s),
                cpu_util: self.mean_cpu_utilization(s).unwrap_or(0.0),
                mean_active_replicas: if horizon_s > 0.0 { active_s[s] / horizon_s } else { 0.0 },
                mean_replication_lag_ms: mean(self.samples.iter().map(|x| x.services[s].replication_lag_ms))
                    .unwrap_or(0.0),
            })
            .collect();
        Summary {
            format_version: SUMMARY_FORMAT_VERSION,
            scenario: scenario.to_string(),
            policy: self.policy.clone(),
            seed,
            horizon_s,
            requests: RequestCounts {
                arrived: t.arrived,
                completed: t.completed,
                dropped: t.dropped,
                in_flight: t.arrived.saturating_sub(t.finished()),
                dropped_by_reason: Default::default(),
            },
            latency_ms: self.latency_ms.clone(),
            slo_ms,
            slo_violation_pct: pct(t.violating() as f64, t.finished() as f64),
            resource_slack_pct: pct(t.cpu_alloc_core_us - t.cpu_used_core_us, t.cpu_alloc_core_us),
            scaling_lag_s: ScalingLagSummary { mean: 0.0, p95: 0.0, episodes: 0, open_at_end: 0 },
            cost,
            instance_hours,
            caf: if cost > 0.0 { t.within_slo as f64 / cost } else { 0.0 },
            oscillation_per_hour: per_hour(self.reversals() as f64),
            throughput_rps: if horizon_s > 0.0 { t.completed as f64 / horizon_s } else { 0.0 },
            // Little's law: requests in the system = the latency they spent there over the time.
            mean_requests_in_system: if horizon_s > 0.0 { t.latency_sum_us / 1e6 / horizon_s } else { 0.0 },
            policy_decisions: self.decisions.len() as u64,
            replica_changes: self.scale_decisions() as u64,
            refused_actions: self.decisions.iter().filter(|d| !d.blocked.is_empty()).count() as u64,
            events_processed: 0,
            services,
            llm: None,
        }
    }

    /// Direction reversals of each service's replica changes (up then down, or down then up), as
    /// the simulator's ground truth counts them.
    fn reversals(&self) -> u64 {
        let mut last = vec![0i8; self.services.len()];
        let mut n = 0;
        for d in self.decisions.iter().filter(|d| d.from != d.to) {
            let dir = if d.to > d.from { 1 } else { -1 };
            if last[d.service] == -dir {
                n += 1;
            }
            last[d.service] = dir;
        }
        n
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(time_s: f64, active: u32, arrived: u64, completed: u64, within_slo: u64) -> Sample {
        Sample {
            time_s,
            services: vec![ServiceSample {
                active,
                starting: 0,
                draining: 0,
                cpu_utilization: Some(0.5),
                rps: 1.0,
                p95_ms: 10.0,
                queue_len: 0,
                replication_lag_ms: 0.0,
            }],
            totals: RunTotals { arrived, completed, within_slo, ..Default::default() },
        }
    }

    fn decision(from: u32, to: u32) -> DecisionRecord {
        DecisionRecord { time_s: 0.0, service: 0, from, to, desired: to, reason: String::new(), blocked: String::new() }
    }

    #[test]
    fn summary_integrates_replicas_and_counts_reversals() {
        // 1 replica for [0, 10), 3 for [10, 30): 70 replica-seconds, mean 70/30.
        let rec = Recording {
            backend: "local".into(),
            policy: "hpa".into(),
            services: vec!["a".into()],
            samples: vec![sample(10.0, 1, 10, 10, 10), sample(30.0, 3, 40, 38, 30)],
            decisions: vec![decision(1, 3), decision(3, 2), decision(2, 2), decision(2, 4)],
            totals: RunTotals { arrived: 40, completed: 38, within_slo: 30, ..Default::default() },
            latency_ms: LatencySummary::default(),
            wall_s: 1.0,
        };
        let s = rec.summary("x", 1, 100.0, None, &[0.36]);
        assert!((s.services[0].mean_active_replicas - 70.0 / 30.0).abs() < 1e-12);
        assert!((s.instance_hours - 70.0 / 3600.0).abs() < 1e-12);
        assert!((s.cost - 70.0 / 3600.0 * 0.36).abs() < 1e-12);
        // 8 of 38 finished requests were slow.
        assert!((s.slo_violation_pct - 800.0 / 38.0).abs() < 1e-9);
        assert_eq!((s.policy_decisions, s.replica_changes), (4, 3));
        // up, down (reversal), up (reversal): 2 in 30 s = 240 per hour.
        assert!((s.oscillation_per_hour - 240.0).abs() < 1e-9);
        assert_eq!(s.requests.in_flight, 2);
    }

    #[test]
    fn requests_rows_are_per_interval_differences() {
        let rec = Recording {
            backend: "local".into(),
            policy: "hpa".into(),
            services: vec!["a".into()],
            samples: vec![sample(10.0, 1, 10, 10, 10), sample(30.0, 3, 40, 38, 30)],
            decisions: vec![],
            totals: RunTotals::default(),
            latency_ms: LatencySummary::default(),
            wall_s: 1.0,
        };
        let dir = std::env::temp_dir().join(format!("scalesim_rec_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        rec.write_requests(&dir.join("r.csv")).unwrap();
        rec.write_timeline(&dir.join("t.csv")).unwrap();
        let r = std::fs::read_to_string(dir.join("r.csv")).unwrap();
        assert_eq!(r.lines().nth(2).unwrap(), "10.000,30,28,0,8,28.571,1");
        let t = std::fs::read_to_string(dir.join("t.csv")).unwrap();
        assert_eq!(t.lines().next().unwrap(), TIMELINE_HEADER);
        assert_eq!(t.lines().nth(2).unwrap(), "10.000,a,3,0,0,1.000,,,0.5000,10.000,0,0.000,1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
