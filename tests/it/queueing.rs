//! The simulator against queueing theory: M/M/1 and M/M/c (Erlang C) mean response times, and
//! Little's law.
//!
//! One service, one instance, `concurrency = c` slots at one core each (limit = c cores), exponential
//! demand with mean 10 ms (mu = 100/s per slot), Poisson arrivals, a queue too large to overflow.

use scalesim::sim::{Simulator, Sinks};

fn mmc_scenario(c: u32, lambda: f64, horizon_s: f64) -> String {
    format!(
        r#"
name: mmc
slo_ms: 1000
horizon_s: {horizon_s}
metrics: {{ scrape_interval_s: 60, timeline_interval_s: 60 }}
cluster:
  max_instances: 1
  skus: [ {{ name: big, cores: 64, memory_gib: 64, price_per_hour: 1.0 }} ]
services:
  - {{ name: q, replicas: 1, min_replicas: 1, max_replicas: 1, cpu_request_m: {m}, cpu_limit_m: {m},
       concurrency: {c}, queue_capacity: 100000000, demand: {{ dist: exponential, mean_ms: 10 }} }}
request_types:
  - {{ name: r, call: {{ service: q }} }}
workload:
  stages: [ {{ duration_s: {horizon_s}, rps: {lambda} }} ]
"#,
        m = c * 1000
    )
}

/// Erlang C: probability an arrival waits, for `c` servers at offered load `a = lambda / mu`.
fn erlang_c(c: u32, a: f64) -> f64 {
    let rho = a / c as f64;
    let mut term = 1.0; // a^k / k!
    let mut sum = 1.0;
    for k in 1..c {
        term *= a / k as f64;
        sum += term;
    }
    let last = term * a / c as f64; // a^c / c!
    let top = last / (1.0 - rho);
    top / (sum + top)
}

/// Mean response time (s) of M/M/c: `C(c, a) / (c mu - lambda) + 1 / mu`.
fn mmc_response(c: u32, lambda: f64, mu: f64) -> f64 {
    erlang_c(c, lambda / mu) / (c as f64 * mu - lambda) + 1.0 / mu
}

fn check(c: u32, rho: f64, customers: f64) {
    let mu = 100.0;
    let lambda = rho * c as f64 * mu;
    let horizon = (customers / lambda).round();
    let sc = crate::scenario(&mmc_scenario(c, lambda, horizon));
    let mut sim = Simulator::new(&sc, 11, Sinks::discard()).unwrap();
    let s = sim.run(&mut |_| {}).unwrap();
    let want_ms = mmc_response(c, lambda, mu) * 1000.0;
    let got_ms = s.latency_ms.mean;
    let err = (got_ms - want_ms).abs() / want_ms;
    assert!(
        err < 0.03,
        "M/M/{c} at rho {rho}: mean response {got_ms:.3} ms vs theory {want_ms:.3} ms ({:.2}% off)",
        err * 100.0
    );
    // Little's law: L = lambda_eff * W, with lambda_eff the throughput.
    let little = s.throughput_rps * got_ms / 1000.0;
    let l_err = (s.mean_requests_in_system - little).abs() / little;
    assert!(
        l_err < 0.01,
        "Little's law at c={c} rho={rho}: L {} vs lambda*W {little} ({:.2}% off)",
        s.mean_requests_in_system,
        l_err * 100.0
    );
    // Utilisation of the instance = lambda / (c mu) = rho (against request = limit = c cores).
    let util = s.services[0].cpu_util;
    assert!((util - rho).abs() < 0.01, "utilisation {util} vs rho {rho}");
}

#[test]
fn erlang_c_by_hand() {
    // c = 2, a = 1: C = (1/2 / (1 - 1/2)) / (1 + 1 + 1) = 1/3.
    assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
    // c = 1 reduces to M/M/1: C = rho, W = 1/(mu - lambda).
    assert!((erlang_c(1, 0.8) - 0.8).abs() < 1e-12);
    assert!((mmc_response(1, 80.0, 100.0) - 0.05).abs() < 1e-12);
}

#[test]
fn mm1_matches_theory_at_half_load() {
    check(1, 0.5, 1_000_000.0); // W = 1/(100-50) = 20 ms
}

#[test]
fn mm1_matches_theory_at_080() {
    check(1, 0.8, 3_000_000.0); // W = 50 ms
}

#[test]
fn mm1_matches_theory_at_090() {
    check(1, 0.9, 8_000_000.0); // W = 100 ms; needs long runs: the variance grows as (1-rho)^-4
}

#[test]
fn mm4_matches_erlang_c_at_half_load() {
    check(4, 0.5, 1_000_000.0);
}

#[test]
fn mm4_matches_erlang_c_at_080() {
    check(4, 0.8, 3_000_000.0);
}

#[test]
fn mm4_matches_erlang_c_at_090() {
    check(4, 0.9, 6_000_000.0);
}
