//! The run summary (`summary.json`). Field definitions are in `docs/metrics.md`; each is computed
//! in `metrics::GroundTruth::summary` exactly as documented there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of `summary.json`'s layout.
pub const SUMMARY_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequestCounts {
    pub arrived: u64,
    pub completed: u64,
    pub dropped: u64,
    pub in_flight: u64,
    pub dropped_by_reason: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl LatencySummary {
    /// From a histogram of microseconds and the exact sum of the `count` values recorded (the
    /// histogram's own mean is rounded to its buckets); milliseconds.
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>, sum_us: f64, count: u64) -> LatencySummary {
        LatencySummary {
            mean: if count > 0 { sum_us / count as f64 / 1000.0 } else { 0.0 },
            p50: super::quantile_ms(h, 0.50),
            p95: super::quantile_ms(h, 0.95),
            p99: super::quantile_ms(h, 0.99),
            max: super::quantile_ms(h, 1.0),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScalingLagSummary {
    pub mean: f64,
    pub p95: f64,
    pub episodes: u64,
    /// Episodes still open when the run ended (counted up to the end).
    pub open_at_end: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceSummary {
    pub name: String,
    pub arrived: u64,
    pub completed: u64,
    pub dropped: u64,
    pub mean_latency_ms: f64,
    pub p95_ms: f64,
    pub cpu_util: f64,
    pub mean_active_replicas: f64,
    pub mean_replication_lag_ms: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub format_version: u32,
    pub scenario: String,
    pub policy: String,
    pub seed: u64,
    pub horizon_s: f64,
    pub requests: RequestCounts,
    pub latency_ms: LatencySummary,
    pub slo_ms: f64,
    pub slo_violation_pct: f64,
    pub resource_slack_pct: f64,
    pub scaling_lag_s: ScalingLagSummary,
    pub cost: f64,
    pub instance_hours: f64,
    pub caf: f64,
    pub oscillation_per_hour: f64,
    pub throughput_rps: f64,
    pub mean_requests_in_system: f64,
    pub policy_decisions: u64,
    pub replica_changes: u64,
    pub refused_actions: u64,
    pub events_processed: u64,
    pub services: Vec<ServiceSummary>,
    /// LLM serving scenarios: time to first token, time between tokens, end to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSummary>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// LLM serving metrics (ms). A request violates the SLO if dropped, if its TTFT exceeds
/// `ttft_slo_ms`, or if the mean of its times between tokens exceeds `tbt_slo_ms`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LlmSummary {
    pub ttft_ms: Percentiles,
    /// Over every gap between consecutive tokens of every request.
    pub tbt_ms: Percentiles,
    pub e2e_ms: Percentiles,
    pub ttft_slo_ms: f64,
    pub tbt_slo_ms: f64,
    pub ttft_violations: u64,
    pub tbt_violations: u64,
    pub max_kv_tokens_used: u64,
    pub kv_capacity_tokens: u64,
}

/// Nearest-rank percentile of `xs` (`q` in [0, 1]); 0 for an empty slice.
pub fn nearest_rank(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// A run metric that sweeps compare across policies (statistics tables and comparison charts).
pub struct Compared {
    /// Its name in `statistics.csv`.
    pub column: &'static str,
    /// Its label, with units, in tables and charts.
    pub label: &'static str,
    pub get: fn(&Summary) -> f64,
}

/// The metrics compared across policies.
pub const COMPARED: &[Compared] = &[
    Compared { column: "slo_violation_pct", label: "SLO violation (%)", get: |s| s.slo_violation_pct },
    Compared { column: "latency_p95_ms", label: "p95 latency (ms)", get: |s| s.latency_ms.p95 },
    Compared { column: "cost", label: "cost ($)", get: |s| s.cost },
    Compared { column: "resource_slack_pct", label: "resource slack (%)", get: |s| s.resource_slack_pct },
    Compared { column: "oscillation_per_hour", label: "oscillation (reversals/h)", get: |s| s.oscillation_per_hour },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_by_hand() {
        // 20 values 1..=20: p95 is the ceil(0.95*20) = 19th smallest.
        let xs: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&xs, 0.95), 19.0);
        assert_eq!(nearest_rank(&xs, 0.5), 10.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
    }
}
