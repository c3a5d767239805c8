//! Table-driven tests of the replica calculation. Each case shows its arithmetic. CPU values are
//! millicores; every pod requests 100m unless stated.

use super::*;

const T0: SimTime = SimTime::ZERO;

fn params(now_s: u64) -> CalcParams {
    CalcParams {
        now: SimTime::from_secs(now_s),
        tolerance: 0.1,
        cpu_initialization_period: SimTime::from_secs(300),
        initial_readiness_delay: SimTime::from_secs(30),
        metric_time: SimTime::from_secs(now_s),
        metric_window: SimTime::from_secs(15),
    }
}

/// A Ready pod started long ago (outside the CPU initialisation period) using `m` millicores.
fn ready(m: i64) -> PodSample {
    PodSample {
        deleting: false,
        pending: false,
        ready: true,
        start_time: T0,
        ready_transition: SimTime::from_secs(10),
        value: Some(m),
        request: 100,
    }
}

/// A pod that is not Ready yet (Starting), started at `start_s`, with a metric of `m`.
fn unready(start_s: u64, m: i64) -> PodSample {
    let t = SimTime::from_secs(start_s);
    PodSample {
        deleting: false,
        pending: false,
        ready: false,
        start_time: t,
        ready_transition: t,
        value: Some(m),
        request: 100,
    }
}

fn missing() -> PodSample {
    PodSample { value: None, ..ready(0) }
}

struct Case {
    name: &'static str,
    current: u32,
    pods: Vec<PodSample>,
    target: PodTarget,
    is_cpu: bool,
    want: u32,
    rule: &'static str,
}

#[test]
fn replica_calculation_table() {
    let cases = vec![
        Case {
            // 3 pods at 90m of 100m: utilisation 90%; target 50% -> ratio 1.8; ceil(1.8 * 3) = 6
            name: "plain scale-up",
            current: 3,
            pods: vec![ready(90), ready(90), ready(90)],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 6,
            rule: "scale up",
        },
        Case {
            // 4 pods at 20m: 20% vs 50% -> ratio 0.4; ceil(0.4 * 4) = ceil(1.6) = 2
            name: "plain scale-down",
            current: 4,
            pods: vec![ready(20), ready(20), ready(20), ready(20)],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 2,
            rule: "scale down",
        },
        Case {
            // (55 + 53) / 200 = 54% (integer); 54 / 50 = 1.08; |1 - 1.08| <= 0.1 -> keep 2
            name: "inside tolerance",
            current: 2,
            pods: vec![ready(55), ready(53)],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 2,
            rule: "within tolerance",
        },
        Case {
            // Ready pods: 2 at 100m -> 100% vs 50%: ratio 2 > 1 with 2 unready (Starting) pods,
            // which count as 0%: (100 + 100 + 0 + 0) / 400 = 50% -> ratio 1.0, inside tolerance:
            // keep 4 (the 2 Starting pods already answer the load the ready ones see).
            name: "not-ready pods on a scale-up count as 0%",
            current: 4,
            pods: vec![ready(100), ready(100), unready(290, 0), unready(290, 0)],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 4,
            rule: "within tolerance after assuming missing/unready pods",
        },
        Case {
            // Ready: 2 pods at 150m -> 150% vs 50%: ratio 3; 1 unready at 0%:
            // (150 + 150 + 0) / 300 = 100% -> ratio 2.0; ceil(2.0 * 3) = 6
            name: "not-ready pod dampens a scale-up",
            current: 3,
            pods: vec![ready(150), ready(150), unready(290, 80)],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 6,
            rule: "scale up (missing/unready pods assumed)",
        },
        Case {
            // GetResourceReplicas: on a scale-down a missing pod counts at max(100%, target) of
            // its request. Ready: 2 pods at 10m -> 10% vs 50%: ratio 0.2 < 1; 2 missing pods at
            // 100% (100m each): (10 + 10 + 100 + 100) / 400 = 55% -> 1.1: the direction reverses,
            // so keep 4.
            name: "missing metrics on a scale-down count at 100% of request",
            current: 4,
            pods: vec![ready(10), ready(10), missing(), missing()],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 4,
            rule: "cancelled: direction reverses after assuming missing/unready pods",
        },
        Case {
            // The same with a target above 100%: missing pods count at the target (150m each):
            // (10 + 10 + 150 + 150) / 400 = 80% -> 80/150 = 0.533; ceil(0.533 * 4) = 3.
            name: "missing metrics on a scale-down count at a target above 100%",
            current: 4,
            pods: vec![ready(10), ready(10), missing(), missing()],
            target: PodTarget::Utilization(150),
            is_cpu: true,
            want: 3,
            rule: "scale down (missing/unready pods assumed)",
        },
        Case {
            // Ready: 1 pod at 60m -> 60% vs 50%: ratio 1.2 > 1 (a scale-up); 2 missing pods at 0%:
            // 60 / 300 = 20% -> ratio 0.4 < 1: the direction reverses, so keep 3.
            name: "direction reversal cancels",
            current: 3,
            pods: vec![ready(60), missing(), missing()],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 3,
            rule: "cancelled: direction reverses after assuming missing/unready pods",
        },
        Case {
            // Ready: 1 pod at 48m -> 48% vs 50%: ratio 0.96 (a scale-down); 1 missing pod at 100%
            // of its request: (48 + 100) / 200 = 74% -> 1.48: the direction reverses, keep 2.
            name: "missing metric turns a small scale-down into no change",
            current: 2,
            pods: vec![ready(48), missing()],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 2,
            rule: "cancelled: direction reverses after assuming missing/unready pods",
        },
        Case {
            // Average-value targets keep the target for a missing pod (calcPlainMetricReplicas):
            // ready 1 pod at 48 vs 50 per pod: 0.96; missing at 50: (48 + 50) / 2 = 49 -> 0.98,
            // inside tolerance: keep 2.
            name: "missing metric at the average-value target stays within tolerance",
            current: 2,
            pods: vec![ready(48), missing()],
            target: PodTarget::AverageValue(50),
            is_cpu: false,
            want: 2,
            rule: "within tolerance after assuming missing/unready pods",
        },
        Case {
            // Pods metric (RPS per pod, milli): 2 pods at 30 rps, target 10 rps -> ratio 3;
            // ceil(3 * 2) = 6. Pods metrics ignore readiness.
            name: "pods metric average value",
            current: 2,
            pods: vec![ready(30_000), unready(290, 30_000)],
            target: PodTarget::AverageValue(10_000),
            is_cpu: false,
            want: 6,
            rule: "scale up",
        },
        Case {
            // A draining (deleting) pod is ignored: 1 ready pod at 100% vs 50% -> ceil(2 * 1) = 2
            name: "deleting pods ignored",
            current: 1,
            pods: vec![ready(100), PodSample { deleting: true, ..ready(0) }],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 2,
            rule: "scale up",
        },
        Case {
            // Now = 299 s. A pod started at 0 and Ready at 295 s is inside the 300 s CPU
            // initialisation period (0 + 300 > 299), and its sample (taken at 299 s over a 15 s
            // window) does not cover a full window since it became Ready (299 < 295 + 15): unready.
            // The other pod: 100% vs 50% -> ratio 2, with the unready pod at 0%:
            // (100 + 0) / 200 = 50% -> ratio 1.0, inside tolerance: keep 2.
            name: "CPU initialisation period: a fresh sample is unready",
            current: 2,
            pods: vec![ready(100), PodSample { ready_transition: SimTime::from_secs(295), ..ready(100) }],
            target: PodTarget::Utilization(50),
            is_cpu: true,
            want: 2,
            rule: "within tolerance after assuming missing/unready pods",
        },
        // Pending pods (`groupPods` in replica_calculator.go puts phase Pending with the unready
        // pods, before it looks for a metric). Scale-down: 2 ready at 30m -> 30% vs 60%: ratio 0.5
        // < 1, so unready pods are not rebalanced and nothing is missing: ceil(0.5 * 2) = 1. The
        // same pod counted missing would be assumed at max(100%, target) = 100%:
        // (30 + 30 + 100) / 300 = 53% -> ratio 0.883, ceil(0.883 * 3) = 3.
        Case {
            name: "a Pending pod is unready, not missing, on a scale-down",
            current: 3,
            pods: vec![ready(30), ready(30), PodSample { pending: true, value: None, ..ready(0) }],
            target: PodTarget::Utilization(60),
            is_cpu: true,
            want: 1,
            rule: "scale down",
        },
        // Scale-up: 2 ready at 90m -> 90% vs 60%: ratio 1.5 > 1 with an unready (Pending) pod at
        // 0%: (90 + 90 + 0) / 300 = 60% -> ratio 1.0, inside tolerance: keep 3.
        Case {
            name: "a Pending pod counts as 0% on a scale-up",
            current: 3,
            pods: vec![ready(90), ready(90), PodSample { pending: true, value: None, ..ready(0) }],
            target: PodTarget::Utilization(60),
            is_cpu: true,
            want: 3,
            rule: "within tolerance after assuming missing/unready pods",
        },
    ];
    for c in cases {
        let now = if c.name.starts_with("CPU initialisation") { 299 } else { 600 };
        let got = pod_metric_replicas(c.current, &c.pods, c.target, c.is_cpu, &params(now)).unwrap();
        assert_eq!(got.replicas, c.want, "{}: {got:?}", c.name);
        assert_eq!(got.rule, c.rule, "{}", c.name);
    }
}

#[test]
fn no_metrics_is_an_error_not_a_guess() {
    let p = params(600);
    assert_eq!(pod_metric_replicas(2, &[], PodTarget::Utilization(50), true, &p), Err(CalcError::NoPods));
    assert_eq!(
        pod_metric_replicas(2, &[missing(), unready(590, 5)], PodTarget::Utilization(50), true, &p),
        Err(CalcError::NoMetrics)
    );
}

#[test]
fn object_metrics() {
    // Value target: service RPS 300 vs target 100 -> ratio 3; 2 ready pods -> ceil(3 * 2) = 6.
    assert_eq!(object_value_replicas(2, 2, 300_000, 100_000, 0.1).replicas, 6);
    // 105 vs 100: inside tolerance -> keep 2.
    assert_eq!(object_value_replicas(2, 2, 105_000, 100_000, 0.1).replicas, 2);
    // AverageValue: 300 RPS, 50 per pod -> ratio 300 / (50 * 2) = 3 -> ceil(300 / 50) = 6.
    assert_eq!(object_average_replicas(2, 300_000, 50_000, 0.1).replicas, 6);
    // 95 RPS at 50 per pod with 2 pods: ratio 0.95, inside tolerance -> 2.
    assert_eq!(object_average_replicas(2, 95_000, 50_000, 0.1).replicas, 2);
}
