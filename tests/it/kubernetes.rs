//! The Kubernetes backend against a fake API server on loopback that answers with the real JSON
//! shapes (apps/v1 Deployment, autoscaling/v1 Scale, v1 PodList, metrics.k8s.io PodMetricsList)
//! and injects conflicts, server errors and timeouts on demand.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scalesim::backend::kubernetes::api::{Connection, Secret};
use scalesim::backend::kubernetes::{KubeBackend, KubeOptions};
use scalesim::backend::ClusterBackend;
use scalesim::experiment::policies::build_policy;
use scalesim::scaling::Refusal;
use scalesim::scenario::Scenario;
use serde_json::{json, Value};

const NS: &str = "boutique";
const TOKEN: &str = "tok-9f8e7d6c5b4a-SECRET";

#[derive(Default)]
struct FakeState {
    /// Deployment -> (spec.replicas, resourceVersion).
    deployments: BTreeMap<String, (u32, u64)>,
    /// (method, path, Authorization header) of every request.
    requests: Vec<(String, String, Option<String>)>,
    /// The next N scale PUTs answer 409 Conflict.
    conflicts: u32,
    /// The next N requests answer 503.
    errors: u32,
    /// The next N requests hang for 2 s (longer than the client's timeout).
    hangs: u32,
    /// Every request answers 503.
    down: bool,
    /// CPU each pod uses, e.g. "150m".
    pod_cpu: String,
}

struct FakeApi {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeApi {
    fn start(deployments: &[(&str, u32)]) -> FakeApi {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let state = Arc::new(Mutex::new(FakeState {
            deployments: deployments.iter().map(|(n, r)| (n.to_string(), (*r, 100))).collect(),
            pod_cpu: "50m".into(),
            ..Default::default()
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let st = st.clone();
                std::thread::spawn(move || {
                    let mut body = String::new();
                    let _ = req.as_reader().read_to_string(&mut body);
                    let auth = req
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Authorization"))
                        .map(|h| h.value.as_str().to_string());
                    let method = req.method().as_str().to_string();
                    let path = req.url().to_string();
                    let (hang, (status, answer)) = {
                        let mut s = st.lock().unwrap();
                        s.requests.push((method.clone(), path.clone(), auth));
                        let hang = if s.hangs > 0 {
                            s.hangs -= 1;
                            true
                        } else {
                            false
                        };
                        (hang, route(&mut s, &method, &path, &body))
                    };
                    if hang {
                        std::thread::sleep(Duration::from_secs(2));
                    }
                    let _ = req.respond(
                        tiny_http::Response::from_string(answer.to_string())
                            .with_status_code(status)
                            .with_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap()),
                    );
                });
            }
        });
        FakeApi { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn writes(&self) -> usize {
        self.with(|s| s.requests.iter().filter(|r| r.0 != "GET").count())
    }
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}),
    )
}

fn deployment_json(name: &str, replicas: u32, rv: u64) -> Value {
    json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": rv.to_string(), "generation": 3,
                     "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "server", "image": format!("{name}:v1"),
                                       "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                     "limits": {"cpu": "200m", "memory": "128Mi"}}}]}}},
        "status": {"observedGeneration": 3, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas}
    })
}

fn scale_json(name: &str, replicas: u32, rv: u64) -> Value {
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": rv.to_string()},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": format!("app={name}")}
    })
}

fn pods_json(name: &str, replicas: u32) -> Value {
    let items: Vec<Value> = (0..replicas)
        .map(|i| {
            json!({
                "metadata": {"name": format!("{name}-7d4b9c-{i}"), "namespace": NS, "labels": {"app": name},
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"containers": [{"name": "server",
                         "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
                "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z",
                           "conditions": [{"type": "Ready", "status": "True",
                                           "lastTransitionTime": "2026-01-01T00:00:05Z"}]}
            })
        })
        .collect();
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
}

fn pod_metrics_json(name: &str, replicas: u32, cpu: &str) -> Value {
    let items: Vec<Value> = (0..replicas)
        .map(|i| {
            json!({
                "metadata": {"name": format!("{name}-7d4b9c-{i}"), "namespace": NS, "labels": {"app": name}},
                "timestamp": "2026-11-25T10:00:00Z", "window": "15s",
                "containers": [{"name": "server", "usage": {"cpu": cpu, "memory": "31234Ki"}}]
            })
        })
        .collect();
    json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items})
}

fn route(s: &mut FakeState, method: &str, path: &str, body: &str) -> (u16, Value) {
    if s.down {
        return status(503, "ServiceUnavailable", "the server is currently unable to handle the request");
    }
    if s.errors > 0 {
        s.errors -= 1;
        return status(500, "InternalError", "etcdserver: request timed out");
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let selector_app = query.strip_prefix("labelSelector=app%3D").map(str::to_string);
    let deps = format!("/apis/apps/v1/namespaces/{NS}/deployments/");
    if let Some(rest) = path.strip_prefix(&deps) {
        let (name, sub) = rest.split_once('/').map_or((rest, ""), |(n, s)| (n, s));
        let Some(&(replicas, rv)) = s.deployments.get(name) else {
            return status(404, "NotFound", &format!("deployments.apps \"{name}\" not found"));
        };
        return match (method, sub) {
            ("GET", "") => (200, deployment_json(name, replicas, rv)),
            ("GET", "scale") => (200, scale_json(name, replicas, rv)),
            ("PUT", "scale") => {
                let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                let sent_rv = v["metadata"]["resourceVersion"].as_str().unwrap_or("");
                if s.conflicts > 0 || sent_rv != rv.to_string() {
                    s.conflicts = s.conflicts.saturating_sub(1);
                    s.deployments.get_mut(name).unwrap().1 += 1; // someone else wrote it
                    return status(409, "Conflict", "Operation cannot be fulfilled on deployments.apps: the object has been modified; please apply your changes to the latest version and try again");
                }
                let want = v["spec"]["replicas"].as_u64().unwrap_or(0) as u32;
                s.deployments.insert(name.to_string(), (want, rv + 1));
                (200, scale_json(name, want, rv + 1))
            }
            _ => status(405, "MethodNotAllowed", "method not allowed"),
        };
    }
    if path == format!("/api/v1/namespaces/{NS}/pods") {
        let app = selector_app.unwrap_or_default();
        let r = s.deployments.get(&app).map_or(0, |d| d.0);
        return (200, pods_json(&app, r));
    }
    if path == format!("/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods") {
        let app = selector_app.unwrap_or_default();
        let r = s.deployments.get(&app).map_or(0, |d| d.0);
        return (200, pod_metrics_json(&app, r, &s.pod_cpu));
    }
    status(404, "NotFound", "the server could not find the requested resource")
}

/// Three services; two are on the cluster (the third, `cache`, is not in the allowlist).
fn scenario() -> Scenario {
    crate::scenario(&format!(
        r#"
name: boutique_k8s
slo_ms: 200
cluster:
  max_instances: 20
  skus: [{{ name: n2, cores: 4, memory_gib: 16, price_per_hour: 0.2 }}]
services:
  - {{ name: frontend, replicas: 1, min_replicas: 1, max_replicas: 5, cpu_request_m: 100, demand: {{ dist: constant, ms: 5 }} }}
  - {{ name: checkout, replicas: 2, min_replicas: 2, max_replicas: 4, cpu_request_m: 100, demand: {{ dist: constant, ms: 5 }} }}
  - {{ name: cache, replicas: 1, cpu_request_m: 100, demand: {{ dist: constant, ms: 1 }} }}
request_types:
  - {{ name: browse, call: {{ service: frontend, calls: [{{ service: checkout }}, {{ service: cache }}] }} }}
workload:
  stages: [{{ duration_s: 30, rps: 10 }}]
backends:
  kubernetes:
    namespace: {NS}
    deployments: {{ frontend: frontend, checkout: checkout-v2 }}
"#
    ))
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn connect(api: &FakeApi, dry_run: bool) -> (KubeBackend, Log) {
    let log = Log::default();
    let mut conn = Connection::new(&api.url, Some(Secret::new(TOKEN)));
    conn.timeout = Duration::from_millis(400);
    conn.backoff = Duration::from_millis(20);
    let kube = KubeBackend::connect(&scenario(), KubeOptions { connection: conn, dry_run, log: Box::new(log.clone()) })
        .expect("connects to the fake API server");
    (kube, log)
}

#[test]
fn reads_deployments_pods_and_metrics_into_the_view() {
    let api = FakeApi::start(&[("frontend", 2), ("checkout-v2", 3), ("cache", 1)]);
    api.with(|s| s.pod_cpu = "150m".into());
    let (kube, _) = connect(&api, false);
    let view = kube.observe();
    let fe = view.service("frontend").unwrap();
    assert_eq!((fe.counts.active, fe.pods.len()), (2, 2));
    assert!((fe.cpu_utilization.unwrap() - 1.5).abs() < 1e-9, "150m used of 100m requested");
    assert_eq!(view.service("checkout").unwrap().counts.active, 3);
    assert_eq!(view.service("cache").unwrap().counts.active, 0, "not on the cluster: never read");
    assert!(api.with(|s| s.requests.iter().all(|r| !r.1.contains("/cache"))));
    assert!(api.with(|s| s.requests.iter().all(|r| r.2.as_deref() == Some(&format!("Bearer {TOKEN}")))));
}

#[test]
fn the_hpa_scales_a_real_deployment_through_the_scale_subresource() {
    let api = FakeApi::start(&[("frontend", 2), ("checkout-v2", 2)]);
    api.with(|s| s.pod_cpu = "150m".into());
    let (mut kube, log) = connect(&api, false);
    let sc = scenario();
    let mut hpa = build_policy("hpa", None, &sc).unwrap();
    let mut out = Vec::new();
    hpa.decide(&kube.observe(), &mut out);
    let d = out.iter().find(|d| d.service == 0).expect("a decision for frontend");
    // 2 pods at 150% of request, target 60%: ceil(2 * 150 / 60) = 5; the default HPA has no
    // `behavior`, so Go's older path caps a scale-up at max(2 x 2, 4) = 4.
    assert_eq!(d.desired, 4);
    assert!(d.reason.contains("-> 5") && d.reason.contains("max(2 x 2, 4) = 4"), "{}", d.reason);
    let change = kube.set_replicas(0, d.desired).unwrap();
    assert_eq!((change.from, change.to), (2, 4));
    assert_eq!(api.with(|s| s.deployments["frontend"].0), 4);
    assert!(log.text().contains("scaled deployment boutique/frontend from 2 to 4"));
}

#[test]
fn outside_the_allowlist_nothing_is_touched_and_bounds_always_hold() {
    let api = FakeApi::start(&[("frontend", 1), ("checkout-v2", 2), ("redis-cart", 1)]);
    let (mut kube, log) = connect(&api, false);
    let e = kube.scale_deployment("redis-cart", 3).unwrap_err().to_string();
    assert!(e.contains("not in the scenario's allowlist"), "{e}");
    let c = kube.set_replicas(2, 4).unwrap();
    assert_eq!(c.refused, Some(Refusal::NotAllowed { service: "cache".into() }));
    assert_eq!(api.writes(), 0, "no write for a refused scale");
    assert_eq!(api.with(|s| s.deployments["redis-cart"].0), 1);
    assert!(log.text().contains("refusing"));
    // max_replicas 5, min_replicas 2 (checkout): clamped, reported.
    let c = kube.set_replicas(0, 50).unwrap();
    assert_eq!(c.to, 5);
    assert!(matches!(c.refused, Some(Refusal::MaxReplicas { max: 5, .. })));
    let c = kube.set_replicas(1, 0).unwrap();
    assert_eq!((c.from, c.to), (2, 2), "already at its minimum: nothing sent");
    assert_eq!(api.with(|s| (s.deployments["frontend"].0, s.deployments["checkout-v2"].0)), (5, 2));
}

#[test]
fn dry_run_sends_no_write() {
    let api = FakeApi::start(&[("frontend", 1), ("checkout-v2", 2)]);
    let (mut kube, log) = connect(&api, true);
    let c = kube.set_replicas(0, 4).unwrap();
    assert_eq!((c.from, c.to), (1, 1), "nothing changed");
    kube.advance(kube.now()).unwrap();
    assert_eq!(api.writes(), 0);
    assert_eq!(kube.writes(), 0);
    assert_eq!(api.with(|s| s.deployments["frontend"].0), 1);
    assert!(log.text().contains("dry run: would scale deployment boutique/frontend from 1 to 4"), "{}", log.text());
}

#[test]
fn conflicts_and_server_errors_are_retried_then_reported() {
    let api = FakeApi::start(&[("frontend", 1), ("checkout-v2", 2)]);
    let (mut kube, _) = connect(&api, false);
    // Two conflicts, then the write goes through with a fresh resourceVersion.
    api.with(|s| s.conflicts = 2);
    let c = kube.set_replicas(0, 3).unwrap();
    assert_eq!(c.to, 3);
    let puts = api.with(|s| s.requests.iter().filter(|r| r.0 == "PUT").count());
    assert_eq!(puts, 3, "two 409s, then success");
    // Two 500s on reads, then an answer; one hang past the timeout, then an answer.
    api.with(|s| s.errors = 2);
    kube.advance(kube.now()).unwrap();
    api.with(|s| s.hangs = 1);
    kube.advance(kube.now()).unwrap();
    assert_eq!(kube.observe().service("frontend").unwrap().counts.active, 3);
    // Conflicts that never end: reported after the last attempt, and scaling stops.
    api.with(|s| s.conflicts = 1000);
    let e = kube.set_replicas(0, 4).unwrap_err().to_string();
    assert!(e.contains("409") && e.contains("4 attempt") && e.contains("scaling stopped"), "{e}");
    assert!(kube.set_replicas(1, 3).is_err(), "no scaling after the loss");
    assert!(!e.contains(TOKEN));
}

#[test]
fn a_lost_api_server_stops_scaling_and_says_so() {
    let api = FakeApi::start(&[("frontend", 1), ("checkout-v2", 2)]);
    let (mut kube, log) = connect(&api, false);
    api.with(|s| s.down = true);
    let e = kube.advance(kube.now()).unwrap_err().to_string();
    assert!(e.contains("503") && e.contains("scaling stopped"), "{e}");
    api.with(|s| s.down = false);
    let writes = api.writes();
    assert!(kube.set_replicas(0, 3).is_err(), "it never guesses after a loss, even once the server is back");
    assert_eq!(api.writes(), writes);
    assert!(log.text().contains("lost the Kubernetes API"));
    assert!(kube.lost().is_some());
}

#[test]
fn the_token_never_appears_in_logs_or_outputs() {
    let api = FakeApi::start(&[("frontend", 1), ("checkout-v2", 2)]);
    api.with(|s| s.pod_cpu = "150m".into());
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("k8s.yaml");
    // The test scenario as a file, for the CLI.
    let yaml = std::fs::read_to_string(crate::root().join("tests/it/kubernetes_scenario.yaml")).unwrap();
    std::fs::write(&sc, yaml.replace("NAMESPACE", NS)).unwrap();
    let out = dir.path().join("run");
    let run = |extra: &[&str]| {
        std::process::Command::new(crate::bin())
            .args(["run", sc.to_str().unwrap(), "--policy", "hpa", "--backend", "kubernetes", "--api-url", &api.url])
            .args(["--horizon", "1", "--out", out.to_str().unwrap()])
            .args(extra)
            .env("SCALESIM_K8S_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let ok = run(&[]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let mut seen = String::from_utf8_lossy(&ok.stdout).into_owned() + &String::from_utf8_lossy(&ok.stderr);
    for f in std::fs::read_dir(&out).unwrap() {
        seen += &std::fs::read_to_string(f.unwrap().path()).unwrap();
    }
    assert!(seen.contains(&api.url), "the run records where it ran");
    api.with(|s| s.down = true);
    let failed = run(&[]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(err.contains("scaling stopped") || err.contains("503"), "{err}");
    seen += &err;
    assert!(!seen.contains(TOKEN), "the token leaked");
    let used = api.with(|s| s.requests.iter().filter(|r| r.2.as_deref() == Some(&format!("Bearer {TOKEN}"))).count());
    assert!(used > 0, "the token was sent to the API server");
}
