//! The Kubernetes backend: a policy acting on a user's real cluster.
//!
//! It reads the scenario's Deployments and their pods (readiness, deletion) from the API server,
//! pod CPU from `metrics.k8s.io` (metrics-server) or Prometheus, and RPS and p95 latency from
//! Prometheus queries whose metric names come from a preset (Istio, Linkerd) or the scenario; and
//! it scales through each Deployment's `scale` subresource.
//!
//! Guardrails, all enforced here whatever a policy asks:
//! - only the scenario's namespace and the Deployments it names are ever read or written (the
//!   names are validated as Kubernetes names when the scenario loads, so no path can escape);
//! - replicas are clamped to the service's min/max;
//! - `dry_run` logs each change it would make and sends no write;
//! - conflicts (409), throttling (429) and server errors (5xx) are retried with backoff
//!   ([`api`]); when the API server cannot be reached or keeps failing, the backend stops
//!   scaling, says so, and every later call fails: it never acts on a guess.
//!
//! The token is a [`api::Secret`]: it is sent in one header and never printed or written.

pub mod api;
pub mod kubeconfig;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::prometheus::PromClient;
use super::{BackendError, ClusterBackend, ScaleResult};
use crate::app::AppSpec;
use crate::cluster::ClusterSpec;
use crate::engine::SimTime;
use crate::metrics::RunTotals;
use crate::metrics::{ClusterView, LatencySummary, PodPhase, PodView, ServiceView};
use crate::scaling::{Refusal, ReplicaChange, ReplicaCounts};
use crate::scenario::{KubernetesConfig, Scenario};
use api::{parse_cpu_cores, parse_memory_mib, ApiClient, ApiError, Connection};

/// The backend's clock reads this at connection. Pods' start and readiness times are placed on it
/// exactly back to this far before the connection (older ones read 0): the HPA only needs them to
/// tell pods within its 300-s CPU initialisation period from older ones, so nothing is lost.
pub const CLOCK_ORIGIN: SimTime = SimTime(600 * SimTime::MICROS_PER_SEC);

pub struct KubeOptions {
    pub connection: Connection,
    pub dry_run: bool,
    /// Where the backend says what it does (scale commands, dry-run intents, failures).
    pub log: Box<dyn Write + Send>,
}

pub struct KubeBackend {
    app: AppSpec,
    cluster: ClusterSpec,
    cfg: KubernetesConfig,
    api: ApiClient,
    prom: Option<PromClient>,
    dry_run: bool,
    log: Box<dyn Write + Send>,
    start: Instant,
    horizon: SimTime,
    now: SimTime,
    view: ClusterView,
    /// Set when the API server was lost: from then on nothing is scaled.
    lost: Option<String>,
    writes: u64,
    no_lag: Vec<f64>,
}

/// `k=v,k2=v2` from a Deployment's `spec.selector.matchLabels`, percent-encoded for a query.
fn label_selector(deployment: &Value) -> Option<String> {
    let labels = deployment["spec"]["selector"]["matchLabels"].as_object()?;
    let plain: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
    Some(percent_encode(&plain.join(",")))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl KubeBackend {
    /// Connects, checks that every allowlisted Deployment exists, and takes a first look.
    pub fn connect(scenario: &Scenario, opts: KubeOptions) -> Result<KubeBackend, BackendError> {
        let cfg = scenario.backends.kubernetes.clone().ok_or_else(|| {
            BackendError::Unsupported(format!(
                "scenario `{}` has no `backends.kubernetes` section naming its namespace and deployments",
                scenario.name
            ))
        })?;
        let prom = cfg.prometheus.as_ref().map(|p| PromClient::new(&p.url, opts.connection.timeout));
        let names: Vec<std::sync::Arc<str>> =
            scenario.app.services.iter().map(|s| Arc::from(s.name.as_str())).collect();
        let mut backend = KubeBackend {
            app: scenario.app.clone(),
            cluster: scenario.cluster.clone(),
            api: ApiClient::new(opts.connection),
            prom,
            dry_run: opts.dry_run,
            log: opts.log,
            start: Instant::now(),
            horizon: CLOCK_ORIGIN + scenario.horizon,
            now: CLOCK_ORIGIN,
            view: empty_view(&scenario.app, &names, &scenario.cluster),
            lost: None,
            writes: 0,
            no_lag: vec![0.0; scenario.app.services.len()],
            cfg,
        };
        for d in backend.cfg.deployments.iter().flatten() {
            let path = backend.deployment_path(d);
            backend.api.get(&path).map_err(|e| BackendError::Kubernetes(format!("deployment `{d}`: {e}")))?;
        }
        if backend.dry_run {
            let msg = format!("dry run: no change will be sent to {}", backend.api.base_url());
            backend.say(&msg);
        }
        backend.refresh()?;
        Ok(backend)
    }

    /// Writes sent to the API server (0 in a dry run).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Why the backend stopped, if it did.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    fn say(&mut self, msg: &str) {
        let _ = writeln!(self.log, "[{:>10.3}s] kubernetes: {msg}", self.now.as_secs_f64());
    }

    fn deployment_path(&self, d: &str) -> String {
        format!("/apis/apps/v1/namespaces/{}/deployments/{d}", self.cfg.namespace)
    }

    /// Marks the connection lost and returns the error every later call gets.
    fn lose(&mut self, e: ApiError) -> BackendError {
        let msg = format!("lost the Kubernetes API ({e}); scaling stopped, nothing more will be changed");
        self.say(&msg);
        self.lost = Some(msg.clone());
        BackendError::Kubernetes(msg)
    }

    fn check_lost(&self) -> Result<(), BackendError> {
        match &self.lost {
            Some(m) => Err(BackendError::Kubernetes(m.clone())),
            None => Ok(()),
        }
    }

    /// Scales Deployment `name` to `replicas` (clamped to its service's bounds). Refused for a
    /// Deployment the scenario does not name.
    pub fn scale_deployment(&mut self, name: &str, replicas: u32) -> Result<ReplicaChange, BackendError> {
        let Some(service) = self.cfg.deployments.iter().position(|d| d.as_deref() == Some(name)) else {
            let allowed: Vec<&str> = self.cfg.deployments.iter().flatten().map(String::as_str).collect();
            let msg = format!(
                "refusing to scale deployment `{name}`: not in the scenario's allowlist (namespace `{}`: {})",
                self.cfg.namespace,
                allowed.join(", ")
            );
            self.say(&msg);
            return Err(BackendError::Kubernetes(msg));
        };
        self.set_replicas(service, replicas)
    }

    /// Reads every allowlisted Deployment, its pods and their metrics into the view.
    fn refresh(&mut self) -> Result<(), BackendError> {
        self.check_lost()?;
        let names: Vec<Arc<str>> = self.view.services.iter().map(|s| s.name.clone()).collect();
        let mut view = empty_view(&self.app, &names, &self.cluster);
        view.now = self.now;
        view.scraped_at = self.now;
        let mut next_id = 0u32;
        for s in 0..self.app.services.len() {
            let Some(d) = self.cfg.deployments[s].clone() else { continue };
            match self.read_service(&d, s, &mut next_id) {
                Ok(sv) => view.services[s] = sv,
                Err(e) => return Err(self.lose(e)),
            }
        }
        let total: u32 = view.services.iter().map(|s| s.pods.len() as u32).sum();
        view.instances = (total, self.cluster.max_instances);
        self.view = view;
        Ok(())
    }

    fn read_service(&mut self, d: &str, s: usize, next_id: &mut u32) -> Result<ServiceView, ApiError> {
        let ns = self.cfg.namespace.clone();
        let dep = self.api.get(&self.deployment_path(d))?;
        let mut sv = self.view.services[s].clone();
        sv.pods.clear();
        sv.counts = ReplicaCounts::default();
        let Some(selector) = label_selector(&dep) else {
            return Ok(sv);
        };
        let pods = self.api.get(&format!("/api/v1/namespaces/{ns}/pods?labelSelector={selector}"))?;
        let cpu_by_pod = self.pod_cpu(&ns, d, &selector)?;
        let origin_wall = unix_now_s() - self.start.elapsed().as_secs_f64() - CLOCK_ORIGIN.as_secs_f64();
        let to_sim = |ts: Option<&str>| {
            ts.and_then(parse_rfc3339_s).map_or(SimTime::ZERO, |t| SimTime::from_secs_f64((t - origin_wall).max(0.0)))
        };
        for pod in pods["items"].as_array().into_iter().flatten() {
            let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
            if phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
            let ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .filter(|c| c["status"] == "True");
            let state = if !pod["metadata"]["deletionTimestamp"].is_null() {
                PodPhase::Draining
            } else if ready.is_some() {
                PodPhase::Active
            } else if phase == "Pending" {
                PodPhase::Pending
            } else {
                PodPhase::Starting
            };
            match state {
                PodPhase::Active => sv.counts.active += 1,
                PodPhase::Pending | PodPhase::Starting => sv.counts.starting += 1,
                PodPhase::Draining => sv.counts.draining += 1,
            }
            let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
            let request: f64 = containers
                .iter()
                .filter_map(|c| c["resources"]["requests"]["cpu"].as_str().and_then(parse_cpu_cores))
                .sum();
            let request = if request > 0.0 { request } else { sv.cpu_request_cores };
            let cores = cpu_by_pod.iter().find(|(p, _)| *p == name).map(|(_, c)| c.0);
            let memory = cpu_by_pod.iter().find(|(p, _)| *p == name).and_then(|(_, c)| c.1);
            sv.pods.push(PodView {
                id: *next_id,
                state,
                created_at: to_sim(
                    pod["status"]["startTime"].as_str().or(pod["metadata"]["creationTimestamp"].as_str()),
                ),
                ready_at: ready.map(|c| to_sim(c["lastTransitionTime"].as_str())),
                cpu_cores: cores,
                cpu_utilization: cores.map(|c| c / request),
                outstanding: 0,
                memory_mib: memory,
                rps: None,
                llm: None,
            });
            *next_id += 1;
        }
        let utils: Vec<f64> =
            sv.pods.iter().filter(|p| p.state == PodPhase::Active).filter_map(|p| p.cpu_utilization).collect();
        sv.cpu_utilization = (!utils.is_empty()).then(|| utils.iter().sum::<f64>() / utils.len() as f64);
        let mut failures = Vec::new();
        if let (Some(prom), Some(p)) = (&self.prom, &self.cfg.prometheus) {
            let q = |t: &str| p.render(t, &ns, d);
            // A mesh without traffic yet has no series: 0 RPS, no p95. A failing Prometheus is
            // reported but does not stop scaling on CPU.
            match prom.scalar(&q(&p.rps_query)) {
                Ok(v) => sv.rps = v.unwrap_or(0.0),
                Err(e) => failures.push(e),
            }
            match prom.scalar(&q(&p.p95_ms_query)) {
                Ok(v) => sv.p95_ms = v.unwrap_or(0.0),
                Err(e) => failures.push(e),
            }
        }
        for e in failures {
            self.say(&format!("prometheus: {e}"));
        }
        Ok(sv)
    }

    /// CPU cores (and memory MiB) of each pod: metrics-server, or Prometheus's `cpu_cores_query`.
    #[allow(clippy::type_complexity)]
    fn pod_cpu(&mut self, ns: &str, d: &str, selector: &str) -> Result<Vec<(String, (f64, Option<f64>))>, ApiError> {
        if self.cfg.cpu_from_prometheus {
            let (Some(prom), Some(p)) = (&self.prom, &self.cfg.prometheus) else { return Ok(Vec::new()) };
            let result = prom.query(&p.render(&p.cpu_cores_query, ns, d));
            return Ok(match result {
                Ok(samples) => samples
                    .into_iter()
                    .filter_map(|(labels, v)| labels.get("pod").map(|pod| (pod.clone(), (v, None))))
                    .collect(),
                Err(e) => {
                    self.say(&format!("prometheus: {e}"));
                    Vec::new()
                }
            });
        }
        let metrics =
            self.api.get(&format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector={selector}"))?;
        Ok(metrics["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                let containers = item["containers"].as_array().cloned().unwrap_or_default();
                let cpu = containers.iter().filter_map(|c| c["usage"]["cpu"].as_str().and_then(parse_cpu_cores)).sum();
                let mem =
                    containers.iter().filter_map(|c| c["usage"]["memory"].as_str().and_then(parse_memory_mib)).sum();
                (item["metadata"]["name"].as_str().unwrap_or("").to_string(), (cpu, Some(mem)))
            })
            .collect())
    }
}

/// A view with every service present and nothing observed yet.
fn empty_view(app: &AppSpec, names: &[Arc<str>], cluster: &ClusterSpec) -> ClusterView {
    ClusterView {
        now: SimTime::ZERO,
        scraped_at: SimTime::ZERO,
        window: SimTime::from_secs(15),
        history_interval: SimTime::from_secs(15),
        services: app.services.iter().zip(names).map(|(s, name)| ServiceView::unobserved(name.clone(), s)).collect(),
        slo_violation: 0.0,
        instances: (0, cluster.max_instances),
    }
}

/// Seconds since the Unix epoch, now.
fn unix_now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// `2026-11-25T10:00:00Z` (or with fractional seconds) as seconds since the Unix epoch.
fn parse_rfc3339_s(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let ss = t.next()?.parse::<f64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

impl ClusterBackend for KubeBackend {
    fn now(&self) -> SimTime {
        self.now
    }
    fn horizon(&self) -> SimTime {
        self.horizon
    }
    fn app(&self) -> &AppSpec {
        &self.app
    }
    fn cluster(&self) -> &ClusterSpec {
        &self.cluster
    }
    fn observe(&self) -> ClusterView {
        self.view.clone()
    }
    fn counts(&self, service: usize) -> ReplicaCounts {
        self.view.services[service].counts
    }
    fn cpu_limit(&self, service: usize) -> f64 {
        self.app.services[service].shape.cpu_limit
    }
    fn scale_up(&mut self, service: usize, _sku: Option<usize>) -> ScaleResult {
        let want = self.counts(service).desired_basis() + 1;
        match self.set_replicas(service, want) {
            Ok(c) => c.refused.map_or(Ok(()), Err),
            Err(_) => Err(Refusal::NotAllowed { service: self.app.services[service].name.clone() }),
        }
    }
    fn scale_down(&mut self, service: usize) -> ScaleResult {
        let want = self.counts(service).desired_basis().saturating_sub(1);
        match self.set_replicas(service, want) {
            Ok(c) => c.refused.map_or(Ok(()), Err),
            Err(_) => Err(Refusal::NotAllowed { service: self.app.services[service].name.clone() }),
        }
    }
    fn set_replicas_on(
        &mut self,
        service: usize,
        desired: u32,
        sku: Option<usize>,
    ) -> Result<ReplicaChange, BackendError> {
        self.check_lost()?;
        if let Some(k) = sku {
            // Pods land where the cluster's scheduler puts them; a node pool would need the
            // Deployment's nodeSelector changed, which this backend does not touch.
            let name = self.app.services[service].name.clone();
            self.say(&format!("node type #{k} for `{name}` not applied: the Kubernetes scheduler places pods"));
        }
        let spec = &self.app.services[service];
        let Some(d) = self.cfg.deployments[service].clone() else {
            let name = spec.name.clone();
            self.say(&format!("refusing to scale `{name}`: it has no deployment in the allowlist"));
            return Ok(ReplicaChange {
                from: 0,
                to: 0,
                started: Vec::new(),
                refused: Some(Refusal::NotAllowed { service: name }),
                pending: 0,
            });
        };
        let (target, refused) = if desired > spec.max_replicas {
            (spec.max_replicas, Some(Refusal::MaxReplicas { service: spec.name.clone(), max: spec.max_replicas }))
        } else if desired < spec.min_replicas {
            (spec.min_replicas, Some(Refusal::MinReplicas { service: spec.name.clone(), min: spec.min_replicas }))
        } else {
            (desired, None)
        };
        let path = format!("{}/scale", self.deployment_path(&d));
        let current = match self.api.get(&path) {
            Ok(v) => v,
            Err(e) => return Err(self.lose(e)),
        };
        let from = current["spec"]["replicas"].as_u64().unwrap_or(0) as u32;
        if from == target {
            return Ok(ReplicaChange { from, to: from, started: Vec::new(), refused, pending: 0 });
        }
        if self.dry_run {
            let msg = format!("dry run: would scale deployment {}/{d} from {from} to {target}", self.cfg.namespace);
            self.say(&msg);
            return Ok(ReplicaChange { from, to: from, started: Vec::new(), refused, pending: 0 });
        }
        let ns = self.cfg.namespace.clone();
        let api = &self.api;
        let mut writes = 0u64;
        let mut latest = Some(current);
        let result = api.put_with(&path, &mut |attempt| {
            // After a conflict the Scale changed under us: read it again for its resourceVersion.
            let scale = if attempt == 1 { latest.take() } else { api.get(&path).ok() }?;
            writes += 1;
            Some(json!({
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": { "name": d, "namespace": ns, "resourceVersion": scale["metadata"]["resourceVersion"] },
                "spec": { "replicas": target }
            }))
        });
        self.writes += writes;
        match result {
            Ok(v) => {
                let to = v["spec"]["replicas"].as_u64().map_or(target, |r| r as u32);
                self.say(&format!("scaled deployment {ns}/{d} from {from} to {to}"));
                Ok(ReplicaChange { from, to, started: Vec::new(), refused, pending: 0 })
            }
            Err(e) => Err(self.lose(e)),
        }
    }
    fn set_cpu_limit(&mut self, service: usize, _cores: f64) -> f64 {
        // In-place pod resize is not done on a user's cluster: the limit stays what it is.
        self.app.services[service].shape.cpu_limit
    }
    fn migrate(&mut self, from: usize, _to: usize) -> ScaleResult {
        Err(Refusal::NotAllowed { service: self.app.services[from].name.clone() })
    }
    fn advance(&mut self, until: SimTime) -> Result<(), BackendError> {
        self.check_lost()?;
        let until = until.min(self.horizon);
        let target = self.start + Duration::from_secs_f64(until.saturating_sub(CLOCK_ORIGIN).as_secs_f64());
        let now = Instant::now();
        if target > now {
            std::thread::sleep(target - now);
        }
        self.now = until;
        self.refresh()
    }
    fn totals(&self) -> RunTotals {
        // Request counts on a real cluster come from the load generator (Locust), not from here.
        RunTotals::default()
    }
    fn latency(&self) -> LatencySummary {
        // As the totals: request latencies on a real cluster come from the load generator.
        LatencySummary::default()
    }
    fn replication_lag_ms(&self) -> &[f64] {
        &self.no_lag
    }
    fn instances(&self) -> (u32, u32) {
        self.view.instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(parse_rfc3339_s("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339_s("2000-03-01T00:00:01Z"), Some(951_868_801.0));
        assert_eq!(parse_rfc3339_s("2026-11-25T10:00:00.5Z"), Some(1_795_600_800.5));
        assert_eq!(parse_rfc3339_s("yesterday"), None);
    }

    #[test]
    fn selectors_are_encoded() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "frontend", "tier": "web"}}}});
        assert_eq!(label_selector(&d).unwrap(), "app%3Dfrontend%2Ctier%3Dweb");
    }
}
