//! The local backend: real worker processes on loopback. A test binary of its own, so that its
//! timing-sensitive runs never share the 2 cores with the other integration tests (cargo runs test
//! binaries one after another), and its tests run one at a time (they take the `SERIAL` lock).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scalesim::backend::local::{LocalBackend, LocalOptions};
use scalesim::backend::ClusterBackend;
use scalesim::engine::SimTime;
use scalesim::experiment::backend_run::{validate_to_dir, LocalRunOptions, ValidationPolicies};
use scalesim::experiment::policies::build_policy;
use scalesim::scenario::{load_scenario, parse_scenario, Scenario};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scalesim"))
}

/// Pids of live `scalesim worker` processes whose `--parent` is `parent`.
fn workers_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let is_worker = args.iter().any(|a| a == "worker");
        let of_parent = args.windows(2).any(|w| w[0] == "--parent" && w[1] == parent.to_string());
        // A zombie keeps its cmdline empty, so it is not counted: it no longer runs.
        if is_worker && of_parent {
            out.push(pid);
        }
    }
    out
}

fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn one_service(rps: f64, horizon_s: u32) -> Scenario {
    let yaml = format!(
        r#"
name: local_one
slo_ms: 100
network_latency_ms: 0.5
backends: {{ local: {{ time_compression: 4 }} }}
cluster:
  max_instances: 6
  skus: [{{ name: small, cores: 2, memory_gib: 4, price_per_hour: 0.05 }}]
chain:
  length: 1
  service:
    name: s
    replicas: 1
    min_replicas: 1
    max_replicas: 3
    cpu_request_m: 200
    cpu_limit_m: 1000
    memory_mib: 64
    concurrency: 1
    queue_capacity: 50
    scale_up_delay_s: 4
    demand: {{ dist: constant, ms: 8 }}
workload:
  stages: [{{ duration_s: {horizon_s}, rps: {rps} }}]
"#
    );
    parse_scenario(&yaml, Path::new("local_one.yaml")).expect("valid test scenario")
}

fn options(sc: &Scenario, seed: u64) -> LocalOptions {
    LocalOptions {
        worker_exe: bin(),
        time_compression: sc.backends.local_time_compression,
        seed,
        verbose: false,
        prometheus_targets: None,
    }
}

/// The acceptance run: the bundled compressed chain with the HPA, simulator vs local backend.
#[test]
fn hpa_on_the_compressed_chain_matches_the_simulator() {
    let _g = serial();
    let sc = load_scenario(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/chain_local_small.yaml"))
        .expect("bundled scenario");
    let out = tempfile::tempdir().expect("temp dir");
    let dir = out.path().join("v");
    let opts = LocalRunOptions {
        worker_exe: bin(),
        time_compression: None,
        verbose: false,
        policy_config: None,
        prometheus_targets: None,
        force: false,
        allow_large: false,
    };
    let started = Instant::now();
    let gap = validate_to_dir(
        &sc,
        ValidationPolicies {
            real: build_policy("hpa", None, &sc).unwrap(),
            sim: build_policy("hpa", None, &sc).unwrap(),
            sim_unmodelled: build_policy("hpa", None, &sc).unwrap(),
        },
        sc.seed,
        &dir,
        &opts,
        &mut |_, _, _| {},
    )
    .expect("validation runs");
    let wall = started.elapsed().as_secs_f64();
    eprintln!("{}", scalesim::metrics::gap::markdown(&gap));
    assert!((55.0..80.0).contains(&wall), "took {wall:.1} s of wall time; the scenario is 240 s at 4x");
    assert_eq!(gap.sim_requests, gap.real_requests, "both replay the same arrivals");
    assert!(gap.mean_latency.rel_error.abs() <= 0.20, "mean latency off by {:.1}%", gap.mean_latency.rel_error * 100.0);
    assert!(gap.max_cpu_error_points <= 10.0, "CPU utilisation off by {:.1} points", gap.max_cpu_error_points);
    assert!(gap.sim_scale_decisions >= 3, "the HPA scales every service up in the simulator");
    assert!(
        gap.sim_scale_decisions.abs_diff(gap.real_scale_decisions) <= 1,
        "scale decisions {} vs {}",
        gap.sim_scale_decisions,
        gap.real_scale_decisions
    );
    assert_eq!(gap.real_dropped, 0);
    // The platform's own cost was measured on every request and visit and replayed: 3 visits per
    // request, each measured for its stall; a transport sample from every visit to an idle worker.
    let o = gap.platform_overhead.as_ref().expect("the local run measures its overhead");
    assert_eq!(o.dispatch_samples as u64, gap.real_requests);
    assert_eq!(o.stall_samples as u64, 3 * gap.real_requests);
    assert!(o.transport_samples > 0 && o.transport_samples <= o.stall_samples);
    assert!(o.transport_mean_ms > 0.0, "a loopback exchange takes time");
    for f in
        ["validation.json", "validation.md", "replicas_compared.csv", "validation_replicas.png", "validation_cpu.svg"]
    {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    // One schema for both sides: the simulator's timeline and actions headers, a full summary.
    for side in ["sim", "local"] {
        let first = |f: &str| {
            let text = std::fs::read_to_string(dir.join(format!("{side}_{f}"))).unwrap();
            text.lines().next().unwrap_or("").to_string()
        };
        assert_eq!(first("timeline.csv"), scalesim::metrics::TIMELINE_HEADER);
        assert_eq!(first("actions.csv"), scalesim::metrics::ACTIONS_HEADER.join(","));
        let text = std::fs::read_to_string(dir.join(format!("{side}_summary.json"))).unwrap();
        let summary: scalesim::metrics::Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(summary.requests.arrived, gap.sim_requests);
        assert!(summary.cost > 0.0 && summary.instance_hours > 0.0);
    }
    // `report` reads a validation folder: both sides' charts and the gap table.
    let files = scalesim::report::report(&dir).expect("report reads a validation folder");
    for f in ["charts/sim_replicas.png", "charts/local_replicas.png", "index.html"] {
        assert!(dir.join(f).is_file() && files.contains(&dir.join(f)), "{f}");
    }
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(index.contains("mean latency") && index.contains("validation_replicas.png"));
    assert!(workers_of(std::process::id()).is_empty(), "every worker is gone after the run");
}

/// `run --backend local` writes the simulator's run-folder schema, and `report` draws it.
#[test]
fn a_local_run_folder_has_the_simulators_schema_and_reports() {
    let _g = serial();
    let out = tempfile::tempdir().expect("temp dir");
    let sc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/chain_local_small.yaml");
    let run = |backend: &str, dir: &str| {
        let st = Command::new(bin())
            .args(["run", sc.to_str().unwrap(), "--policy", "hpa", "--seed", "1", "--horizon", "60", "-q"])
            .args(["--backend", backend, "--out"])
            .arg(out.path().join(dir))
            .status()
            .unwrap();
        assert!(st.success(), "{backend} run");
    };
    run("sim", "sim");
    run("local", "loc");
    for f in ["timeline.csv", "actions.csv", "requests.csv"] {
        let head =
            |d: &str| std::fs::read_to_string(out.path().join(d).join(f)).unwrap().lines().next().map(String::from);
        assert_eq!(head("sim"), head("loc"), "{f} headers");
    }
    let st = Command::new(bin()).arg("report").arg(out.path().join("loc")).output().unwrap();
    assert!(st.status.success(), "report reads a local run: {}", String::from_utf8_lossy(&st.stderr));
    assert!(out.path().join("loc/charts/replicas.png").is_file());
    assert!(workers_of(std::process::id()).is_empty(), "every worker is gone after the run");
}

/// A worker killed mid-run: detected, its visits failed, a replacement started, the run goes on.
#[test]
fn a_killed_worker_is_detected_and_replaced() {
    let _g = serial();
    let sc = one_service(20.0, 40);
    let mut local = LocalBackend::start(&sc, options(&sc, 3)).expect("local backend starts");
    local.advance(SimTime::from_secs(12)).unwrap();
    let before = local.totals();
    let pids = local.worker_pids();
    assert_eq!(pids.len(), 1);
    // SAFETY: sending a signal to a child process we started.
    unsafe { libc::kill(pids[0].1 as i32, libc::SIGKILL) };
    local.advance(SimTime::from_secs(40)).unwrap();
    let after = local.totals();
    assert_eq!(local.failures(), 1, "the dead worker is noticed once");
    let c = local.counts(0);
    assert_eq!((c.active, c.starting), (1, 0), "a replacement is Active");
    assert_ne!(local.worker_pids()[0].1, pids[0].1, "the replacement is a new process");
    assert!(after.completed > before.completed + 200, "requests complete after the failure: {after:?}");
    // Conservation is checked once the load has stopped and the requests in flight have ended:
    // how many are open at a given wall-clock instant depends on the machine's load (a bound on
    // it failed once in four runs on a busy 2-core machine), while every request ending exactly
    // once does not.
    local.shutdown();
    let end = local.totals();
    assert_eq!(end.arrived, end.completed + end.dropped, "conservation: {end:?}");
    assert!(workers_of(std::process::id()).is_empty());
}

/// Scaling down drains: the instance stops taking visits at once and its process ends when its
/// last visit is done; scaling up turns Active no earlier than the scale-up delay.
#[test]
fn scale_up_waits_for_the_delay_and_scale_down_ends_the_process() {
    let _g = serial();
    let sc = one_service(10.0, 40);
    let mut local = LocalBackend::start(&sc, options(&sc, 5)).expect("local backend starts");
    local.advance(SimTime::from_secs(2)).unwrap();
    let change = local.set_replicas(0, 2).unwrap();
    assert_eq!((change.from, change.to), (1, 2));
    local.advance(SimTime::from_secs(5)).unwrap();
    assert_eq!(local.counts(0).active, 1, "not Active before the 4 s scale-up delay");
    local.advance(SimTime::from_secs(7)).unwrap();
    assert_eq!(local.counts(0).active, 2, "Active once probed and the delay has passed");
    assert_eq!(local.worker_pids().len(), 2);
    local.set_replicas(0, 1).unwrap();
    local.advance(SimTime::from_secs(9)).unwrap();
    let c = local.counts(0);
    assert_eq!((c.active, c.draining), (1, 0), "drained and removed");
    assert_eq!(local.worker_pids().len(), 1, "its process ended");
    local.advance(SimTime::from_secs(12)).unwrap();
    let t = local.totals();
    assert_eq!(t.dropped, 0, "draining loses no request");
    local.shutdown();
    assert!(workers_of(std::process::id()).is_empty());
}

/// Ctrl-C (SIGINT to the scalesim process) and SIGKILL leave no worker behind.
#[test]
fn interrupted_runs_leave_no_workers() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let sc_path = dir.path().join("one.yaml");
    let yaml =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/chain_local_small.yaml"))
            .unwrap();
    std::fs::write(&sc_path, yaml).unwrap();
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let out = dir.path().join(format!("run{signal}"));
        let mut child = std::process::Command::new(bin())
            .args(["run", sc_path.to_str().unwrap(), "--policy", "hpa", "--backend", "local", "--quiet", "--out"])
            .arg(&out)
            .spawn()
            .expect("scalesim starts");
        let pid = child.id();
        assert!(wait_until(Duration::from_secs(10), || workers_of(pid).len() == 3), "3 workers start");
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, signal) };
        let status = child.wait().unwrap();
        assert!(!status.success(), "an interrupted run does not report success");
        assert!(
            wait_until(Duration::from_secs(3), || workers_of(pid).is_empty()),
            "workers left after signal {signal}"
        );
        assert!(!out.join("summary.json").exists(), "no output passed off as complete");
    }
}

/// A real Prometheus (started by `.ci/run`, see `.ci/prometheus.sh`) scrapes the workers the
/// local backend lists for it, and answers the Kubernetes backend's queries (the `scalesim`
/// preset) about them: request rate, per-pod CPU and p95 latency.
#[test]
fn prometheus_answers_the_backends_queries_about_the_workers() {
    let _g = serial();
    let (Ok(url), Ok(targets)) =
        (std::env::var("SCALESIM_PROMETHEUS_URL"), std::env::var("SCALESIM_PROMETHEUS_TARGETS"))
    else {
        assert!(
            std::env::var("SCALESIM_REQUIRE_PROMETHEUS").is_err(),
            "SCALESIM_REQUIRE_PROMETHEUS is set but no Prometheus is given"
        );
        eprintln!("skipped: no Prometheus (./.ci/run starts one; see .ci/prometheus.sh)");
        return;
    };
    use scalesim::backend::prometheus::PromClient;
    use scalesim::scenario::PrometheusConfig;
    let sc = one_service(25.0, 80);
    let mut o = options(&sc, 7);
    o.prometheus_targets = Some(PathBuf::from(&targets));
    let mut local = LocalBackend::start(&sc, o).expect("local backend starts");
    local.set_replicas(0, 2).unwrap();
    local.advance(SimTime::from_secs(80)).unwrap();
    let [rps_q, p95_q, cpu_q] = PrometheusConfig::preset("scalesim").unwrap();
    let cfg = PrometheusConfig {
        url: url.clone(),
        window_s: 8.0,
        rps_query: rps_q.into(),
        p95_ms_query: p95_q.into(),
        cpu_cores_query: cpu_q.into(),
    };
    let prom = PromClient::new(&url, Duration::from_secs(5));
    let ns = scalesim::backend::local::TARGETS_NAMESPACE;
    let q = |t: &str| cfg.render(t, ns, "s1");
    let rps = prom.scalar(&q(&cfg.rps_query)).unwrap().expect("a request rate");
    let by_pod = prom.query(&q(&cfg.cpu_cores_query)).unwrap();
    let p95 = prom.scalar(&q(&cfg.p95_ms_query)).unwrap().expect("a p95");
    let view = local.observe();
    local.shutdown();
    eprintln!("prometheus: {rps:.1} req/s, cores by pod {by_pod:?}, p95 {p95:.2} ms");
    // 25 scenario RPS at 4x compression: 100 requests per wall second reach the workers.
    assert!((rps - 100.0).abs() < 20.0, "Prometheus rate {rps:.1}/s, expected about 100");
    assert_eq!(by_pod.len(), 2, "one CPU series per worker pod: {by_pod:?}");
    let prom_cores: f64 = by_pod.iter().map(|s| s.1).sum();
    let own_cores: f64 = view.services[0].pods.iter().filter_map(|p| p.cpu_cores).sum();
    // 100/s x 2 ms of CPU = 0.2 cores of work, plus the HTTP handling.
    assert!((0.18..0.35).contains(&prom_cores), "Prometheus sees {prom_cores:.3} cores");
    assert!(
        (prom_cores - own_cores).abs() < 0.25 * own_cores,
        "Prometheus {prom_cores:.3} vs metrics {own_cores:.3} cores"
    );
    // 8 ms of demand is 2 ms of wall time at 4x; the p95 is interpolated inside a bucket.
    assert!((1.0..10.0).contains(&p95), "p95 {p95:.2} ms");
    assert!(workers_of(std::process::id()).is_empty());
}

/// Draining under load, many times over: a replica count lowered while requests stream in takes
/// the drained instances out of the routes before their processes end, so no request is routed to
/// a worker that is stopping (once counted as a drop when the machine was busy: the instances
/// stayed routable until after the drain had ended them).
#[test]
fn repeated_scale_downs_under_load_drop_nothing() {
    let _g = serial();
    let sc = one_service(50.0, 120);
    let mut local = LocalBackend::start(&sc, options(&sc, 9)).expect("local backend starts");
    let mut t = 1;
    for _ in 0..12 {
        local.set_replicas(0, 3).unwrap();
        t += 6; // past the 4 s scale-up delay: both new instances Active
        local.advance(SimTime::from_secs(t)).unwrap();
        assert_eq!(local.counts(0).active, 3, "scaled up at {t} s");
        local.set_replicas(0, 1).unwrap();
        t += 2;
        local.advance(SimTime::from_secs(t)).unwrap();
    }
    let t = local.totals();
    assert!(t.completed > 4_000, "the load ran: {t:?}");
    assert_eq!(t.dropped, 0, "a scale-down lost requests: {t:?}");
    local.shutdown();
    let end = local.totals();
    assert_eq!(end.arrived, end.completed + end.dropped, "conservation: {end:?}");
    assert!(workers_of(std::process::id()).is_empty());
}
