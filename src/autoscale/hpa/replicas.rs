//! The HPA replica calculation, following `pkg/controller/podautoscaler/replica_calculator.go`
//! (Kubernetes 1.30) rule for rule, including its integer arithmetic: metric values are integer
//! milli-units, utilisation is a truncated integer percent.
//!
//! Pods are grouped as the controller groups them: deleted (Draining) pods are ignored; Pending
//! pods (not running yet) are *unready*; other pods without a metric are *missing*; for CPU, a pod is *unready* if it is not Ready, or if it is
//! within the CPU initialisation period and its sample does not cover a full window since it became
//! Ready, or if it has never been Ready within the initial readiness delay. The ratio is computed
//! over ready pods only. If that would scale up while there are unready pods, or if any pods are
//! missing, the ratio is recomputed with unready pods at 0% and missing pods at 0% (scale-up) or at
//! max(100%, target) of their request (scale-down; the target itself for average-value targets);
//! the change is cancelled if it falls inside the tolerance or reverses direction.

use crate::engine::SimTime;

/// A pod as the replica calculator sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodSample {
    /// Being deleted (Draining): ignored entirely.
    pub deleting: bool,
    /// Phase Pending (not running: waiting for room, or its container being created): grouped
    /// with the unready pods whatever its metric, as `groupPods` does.
    pub pending: bool,
    /// The Ready condition.
    pub ready: bool,
    /// Pod start time.
    pub start_time: SimTime,
    /// When the Ready condition last changed (became Ready, or was set not-Ready at start).
    pub ready_transition: SimTime,
    /// The metric in milli-units (millicores, milli-bytes, milli-requests/s); `None`: missing.
    pub value: Option<i64>,
    /// The resource request in the same milli-units (for utilisation targets).
    pub request: i64,
}

/// Controller settings the calculation depends on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalcParams {
    pub now: SimTime,
    pub tolerance: f64,
    pub cpu_initialization_period: SimTime,
    pub initial_readiness_delay: SimTime,
    /// When the metrics were taken, and the window they cover.
    pub metric_time: SimTime,
    pub metric_window: SimTime,
}

/// What a resource or pods metric is held to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PodTarget {
    /// Percent of the request (Resource metrics only).
    Utilization(i64),
    /// Milli-units per pod.
    AverageValue(i64),
}

/// The outcome of one metric's calculation.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub replicas: u32,
    /// Utilisation percent (utilisation targets) or average milli-value (value targets), over the
    /// ready pods, as the HPA status reports it.
    pub current: i64,
    pub ratio: f64,
    pub ready: u32,
    pub unready: u32,
    pub missing: u32,
    pub ignored: u32,
    /// Which rule decided, for the action log.
    pub rule: &'static str,
}

/// The metric could not be evaluated (the controller then does not scale on it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("no pods")]
    NoPods,
    #[error("no metrics for ready pods")]
    NoMetrics,
}

struct Groups {
    ready: u32,
    unready: Vec<usize>,
    missing: Vec<usize>,
    ignored: u32,
    /// Indices of pods whose metric counts (ready, with a metric).
    counted: Vec<usize>,
}

fn group(pods: &[PodSample], is_cpu: bool, p: &CalcParams) -> Groups {
    let mut g = Groups { ready: 0, unready: Vec::new(), missing: Vec::new(), ignored: 0, counted: Vec::new() };
    for (i, pod) in pods.iter().enumerate() {
        if pod.deleting {
            g.ignored += 1;
            continue;
        }
        if pod.pending {
            g.unready.push(i);
            continue;
        }
        if pod.value.is_none() {
            g.missing.push(i);
            continue;
        }
        if is_cpu {
            let unready = if pod.start_time + p.cpu_initialization_period > p.now {
                // Within the initialisation period: ignore unready pods and samples that do not
                // cover a full window since the pod became Ready.
                !pod.ready || p.metric_time < pod.ready_transition + p.metric_window
            } else {
                // Ignore a pod that is unready and has never been Ready (its condition changed
                // within the initial readiness delay of its start).
                !pod.ready && pod.start_time + p.initial_readiness_delay > pod.ready_transition
            };
            if unready {
                g.unready.push(i);
                continue;
            }
        }
        g.ready += 1;
        g.counted.push(i);
    }
    g
}

/// `(ratio, current)` for a utilisation target: `current = floor(100 * sum(values) / sum(requests))`.
fn utilization(values: &[(i64, i64)], target: i64) -> Option<(f64, i64)> {
    let total: i64 = values.iter().map(|v| v.0).sum();
    let requests: i64 = values.iter().map(|v| v.1).sum();
    if requests == 0 {
        return None;
    }
    let current = total * 100 / requests;
    Some((current as f64 / target as f64, current))
}

/// `(ratio, current)` for an average-value target: `current = floor(sum(values) / n)`.
fn average(values: &[(i64, i64)], target: i64) -> Option<(f64, i64)> {
    if values.is_empty() {
        return None;
    }
    let current = values.iter().map(|v| v.0).sum::<i64>() / values.len() as i64;
    Some((current as f64 / target as f64, current))
}

/// Replicas proposed by one Resource (`is_cpu` for CPU) or Pods metric.
pub fn pod_metric_replicas(
    current_replicas: u32,
    pods: &[PodSample],
    target: PodTarget,
    is_cpu: bool,
    p: &CalcParams,
) -> Result<Proposal, CalcError> {
    if pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    let g = group(pods, is_cpu, p);
    let mut values: Vec<(i64, i64)> =
        g.counted.iter().map(|&i| (pods[i].value.unwrap_or(0), pods[i].request)).collect();
    if values.is_empty() {
        return Err(CalcError::NoMetrics);
    }
    let ratio_of = |v: &[(i64, i64)]| match target {
        PodTarget::Utilization(t) => utilization(v, t),
        PodTarget::AverageValue(t) => average(v, t),
    };
    let (ratio, current) = ratio_of(&values).ok_or(CalcError::NoMetrics)?;
    let mut out = Proposal {
        replicas: current_replicas,
        current,
        ratio,
        ready: g.ready,
        unready: g.unready.len() as u32,
        missing: g.missing.len() as u32,
        ignored: g.ignored,
        rule: "",
    };
    let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - ratio).abs() <= p.tolerance {
            out.rule = "within tolerance";
            return Ok(out);
        }
        out.replicas = (ratio * g.ready as f64).ceil() as u32;
        out.rule = match out.replicas.cmp(&current_replicas) {
            std::cmp::Ordering::Greater => "scale up",
            std::cmp::Ordering::Less => "scale down",
            std::cmp::Ordering::Equal => "no change after rounding up",
        };
        return Ok(out);
    }
    // Fill in what the missing and unready pods are assumed to use, and recompute.
    for &i in &g.missing {
        let assumed = if ratio < 1.0 {
            // On a scale-down a missing pod is taken to use all of its request, or the target
            // where the target is above 100% (`GetResourceReplicas`: fallbackUtilization =
            // max(100, target)); for an average-value target, exactly the target
            // (`calcPlainMetricReplicas`).
            match target {
                PodTarget::Utilization(t) => pods[i].request * t.max(100) / 100,
                PodTarget::AverageValue(t) => t,
            }
        } else {
            0 // on a scale-up, 0
        };
        if ratio != 1.0 {
            values.push((assumed, pods[i].request));
        }
    }
    if scale_up_with_unready {
        for &i in &g.unready {
            values.push((0, pods[i].request));
        }
    }
    let (new_ratio, _) = ratio_of(&values).ok_or(CalcError::NoMetrics)?;
    if (1.0 - new_ratio).abs() <= p.tolerance {
        out.rule = "within tolerance after assuming missing/unready pods";
        return Ok(out);
    }
    if (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        out.rule = "cancelled: direction reverses after assuming missing/unready pods";
        return Ok(out);
    }
    let new_replicas = (new_ratio * values.len() as f64).ceil() as u32;
    if (new_ratio < 1.0 && new_replicas > current_replicas) || (new_ratio > 1.0 && new_replicas < current_replicas) {
        out.rule = "cancelled: pod count reverses direction";
        return Ok(out);
    }
    out.replicas = new_replicas;
    out.ratio = new_ratio;
    out.rule = if new_ratio > 1.0 {
        "scale up (missing/unready pods assumed)"
    } else {
        "scale down (missing/unready pods assumed)"
    };
    Ok(out)
}

/// Replicas proposed by an Object metric with a `Value` target (`getUsageRatioReplicaCount`).
pub fn object_value_replicas(
    current_replicas: u32,
    ready_pods: u32,
    usage: i64,
    target: i64,
    tolerance: f64,
) -> Proposal {
    let ratio = usage as f64 / target as f64;
    let mut out = Proposal {
        replicas: current_replicas,
        current: usage,
        ratio,
        ready: ready_pods,
        unready: 0,
        missing: 0,
        ignored: 0,
        rule: "",
    };
    if current_replicas == 0 {
        out.replicas = ratio.ceil() as u32;
        out.rule = "scale from zero";
    } else if (1.0 - ratio).abs() <= tolerance {
        out.rule = "within tolerance";
    } else {
        out.replicas = (ratio * ready_pods as f64).ceil() as u32;
        out.rule = if ratio > 1.0 { "scale up" } else { "scale down" };
    }
    out
}

/// Replicas proposed by an Object metric with an `AverageValue` target
/// (`GetObjectPerPodMetricReplicas`): `ceil(usage / target)` unless within tolerance.
pub fn object_average_replicas(current_replicas: u32, usage: i64, target: i64, tolerance: f64) -> Proposal {
    let ratio = usage as f64 / (target as f64 * current_replicas.max(1) as f64);
    let mut out = Proposal {
        replicas: current_replicas,
        current: usage,
        ratio,
        ready: 0,
        unready: 0,
        missing: 0,
        ignored: 0,
        rule: "",
    };
    if (1.0 - ratio).abs() > tolerance {
        out.replicas = (usage as f64 / target as f64).ceil() as u32;
        out.rule = if ratio > 1.0 { "scale up" } else { "scale down" };
    } else {
        out.rule = "within tolerance";
    }
    out
}

#[cfg(test)]
#[path = "replicas_tests.rs"]
mod tests;
