//! From [`RawScenario`] to a validated [`Scenario`]: names become indices, and every rule a run
//! relies on is checked here, once, with an error that names the file, line and field.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::raw::*;
use super::yaml::parse_yaml;
use super::{ConfigError, Fidelity, HttpRoute, MetricsConfig, Scenario};
use crate::app::llm::{Curve, LlmScheduler, LlmSpec, Performance, PoolSpec, TokenSizes};
use crate::app::{AppSpec, CallNode, Demand, LoadBalancing, RequestType, ServiceSpec, StatefulSpec};
use crate::cluster::{ClusterSpec, InstanceShape, ServerSku};
use crate::engine::SimTime;
use crate::text::clip_quote;
use crate::workload::{
    read_trace, resolve_path, ArrivalProcess, ArrivalSource, RateSchedule, Stage, StageLevel, TraceData, TraceFormat,
    TraceSpec, Workload,
};

/// The format this build reads.
pub const SCENARIO_FORMAT_VERSION: u32 = 1;

/// Reads and validates a scenario file.
pub fn load_scenario(path: &Path) -> Result<Scenario, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Io { file: path.display().to_string(), message: e.to_string() })?;
    parse_scenario(&text, path)
}

/// Validates scenario YAML `text`; `path` names it in errors and anchors relative trace paths.
pub fn parse_scenario(text: &str, path: &Path) -> Result<Scenario, ConfigError> {
    let file = path.display().to_string();
    let raw: RawScenario = parse_yaml(text, &file)?;
    Resolver { file, text, path }.resolve(raw)
}

struct Resolver<'a> {
    file: String,
    text: &'a str,
    path: &'a Path,
}

impl Resolver<'_> {
    /// An error at the first line that mentions `needle` (a key, or `key: value`).
    fn err(&self, field: impl Into<String>, needle: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::invalid_at(&self.file, self.text, needle, field, message)
    }

    fn resolve(&self, raw: RawScenario) -> Result<Scenario, ConfigError> {
        if raw.format_version != SCENARIO_FORMAT_VERSION {
            return Err(self.err(
                "format_version",
                "format_version",
                format!("is {}; this build reads version {SCENARIO_FORMAT_VERSION}", raw.format_version),
            ));
        }
        if raw.name.trim().is_empty() {
            return Err(self.err("name", "name:", "must not be empty"));
        }
        let cluster = self.cluster(&raw.cluster)?;
        let (app, llm, http) = match &raw.llm {
            Some(llm) => {
                if !raw.services.is_empty() || !raw.request_types.is_empty() || raw.chain.is_some() {
                    return Err(self.err(
                        "llm",
                        "llm",
                        "an LLM scenario has pools, not `services`, `request_types` or `chain`",
                    ));
                }
                if matches!(raw.fidelity, RawFidelity::Fluid) {
                    return Err(self.err(
                        "fidelity",
                        "fidelity",
                        "an LLM scenario is simulated request by request; `fluid` is for microservices",
                    ));
                }
                let (app, spec) = self.llm(llm, &cluster)?;
                self.check_initial_instances(&app, &cluster, "pools")?;
                (app, Some(spec), Vec::new())
            }
            None => {
                let (raw_services, raw_types) = match raw.chain {
                    None => (raw.services, raw.request_types),
                    Some(chain) => {
                        if !raw.services.is_empty() || !raw.request_types.is_empty() {
                            return Err(self.err(
                                "chain",
                                "chain",
                                "give either `chain` or `services` and `request_types`, not both",
                            ));
                        }
                        self.expand_chain(chain)?
                    }
                };
                let services = self.services(&raw_services, &cluster)?;
                let network_latency = SimTime::from_secs_f64(raw.network_latency_ms.map_or(0.0, |v| v.0) / 1000.0);
                let mut app = AppSpec {
                    services,
                    nodes: Vec::new(),
                    children: Vec::new(),
                    request_types: Vec::new(),
                    network_latency,
                    overhead: None,
                };
                self.check_initial_instances(&app, &cluster, "services")?;
                let http = self.request_types(&raw_types, &mut app)?;
                (app, None, http)
            }
        };
        let mut workload = self.workload(&raw.workload, &app)?;
        // LLM requests have no request types: their sizes come from the trace or the token model.
        let fidelity = if llm.is_some() {
            workload.mix = Vec::new();
            Fidelity::Request
        } else {
            match raw.fidelity {
                RawFidelity::Request => Fidelity::Request,
                RawFidelity::Fluid => Fidelity::Fluid,
            }
        };
        let metrics = self.metrics(&raw.metrics)?;
        let horizon = raw.horizon_s.map_or(workload.duration, |h| SimTime::from_secs_f64(h.0));
        if horizon == SimTime::ZERO {
            return Err(self.err(
                "horizon_s",
                "horizon_s",
                "the run would be empty: set horizon_s or give the workload a duration",
            ));
        }
        let backends = self.backends(&raw.backends, &app)?;
        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            source: self.path.to_path_buf(),
            seed: raw.seed,
            fidelity,
            horizon,
            slo: SimTime::from_secs_f64(raw.slo_ms.0 / 1000.0),
            metrics,
            cluster,
            app,
            workload,
            llm,
            backends,
            http,
        })
    }

    fn backends(&self, raw: &super::raw::RawBackends, app: &AppSpec) -> Result<super::BackendsConfig, ConfigError> {
        let k = raw.local.time_compression.map_or(1.0, |v| v.0);
        if !(1.0..=1000.0).contains(&k) {
            return Err(self.err(
                "backends.local.time_compression",
                "time_compression",
                format!("is {k}; it must be between 1 (real time) and 1000"),
            ));
        }
        let kubernetes = match &raw.kubernetes {
            Some(k) => Some(self.kubernetes(k, app)?),
            None => None,
        };
        Ok(super::BackendsConfig { local_time_compression: k, kubernetes })
    }

    fn kubernetes(
        &self,
        raw: &super::raw::RawKubernetes,
        app: &AppSpec,
    ) -> Result<super::KubernetesConfig, ConfigError> {
        // Names go into API paths: only what Kubernetes itself allows (RFC 1123 labels), so no
        // name can reach outside the namespace or the deployment it stands for.
        let dns_label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !dns_label(&raw.namespace) {
            return Err(self.err(
                "backends.kubernetes.namespace",
                "namespace",
                format!("`{}` is not a valid namespace name (lowercase letters, digits, '-')", raw.namespace),
            ));
        }
        let mut deployments = vec![None; app.services.len()];
        for (service, deployment) in &raw.deployments {
            let Some(i) = app.service_index(service) else {
                return Err(self.err(
                    format!("backends.kubernetes.deployments.{service}"),
                    service,
                    format!("`{service}` is not a service of this scenario"),
                ));
            };
            if !deployment.split('.').all(dns_label) {
                return Err(self.err(
                    format!("backends.kubernetes.deployments.{service}"),
                    deployment,
                    format!("`{deployment}` is not a valid Deployment name"),
                ));
            }
            deployments[i] = Some(deployment.clone());
        }
        if deployments.iter().all(Option::is_none) {
            return Err(self.err("backends.kubernetes.deployments", "deployments", "names no deployment"));
        }
        let cpu_from_prometheus = match raw.cpu_source.as_deref() {
            None | Some("metrics-server") => false,
            Some("prometheus") => true,
            Some(o) => {
                return Err(self.err(
                    "backends.kubernetes.cpu_source",
                    "cpu_source",
                    format!("`{o}`: expected metrics-server or prometheus"),
                ))
            }
        };
        let prometheus = match &raw.prometheus {
            None => None,
            Some(p) => {
                let preset_name = p.preset.as_deref().unwrap_or("istio");
                let Some([rps, p95, cpu]) = super::PrometheusConfig::preset(preset_name) else {
                    return Err(self.err(
                        "backends.kubernetes.prometheus.preset",
                        "preset",
                        format!("`{preset_name}`: expected one of {}", super::PROMETHEUS_PRESETS.join(", ")),
                    ));
                };
                if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                    return Err(self.err(
                        "backends.kubernetes.prometheus.url",
                        "url",
                        format!("`{}` is not an http(s) URL", p.url),
                    ));
                }
                Some(super::PrometheusConfig {
                    url: p.url.trim_end_matches('/').to_string(),
                    window_s: p.window_s.map_or(60.0, |w| w.0),
                    rps_query: p.rps_query.clone().unwrap_or_else(|| rps.to_string()),
                    p95_ms_query: p.p95_ms_query.clone().unwrap_or_else(|| p95.to_string()),
                    cpu_cores_query: p.cpu_cores_query.clone().unwrap_or_else(|| cpu.to_string()),
                })
            }
        };
        if cpu_from_prometheus && prometheus.is_none() {
            return Err(self.err(
                "backends.kubernetes.cpu_source",
                "cpu_source",
                "is prometheus but no `prometheus:` section says where it is",
            ));
        }
        Ok(super::KubernetesConfig { namespace: raw.namespace.clone(), deployments, cpu_from_prometheus, prometheus })
    }

    /// Refuses an application whose `what` (services, pools) start with more instances than the
    /// cluster allows.
    fn check_initial_instances(&self, app: &AppSpec, cluster: &ClusterSpec, what: &str) -> Result<(), ConfigError> {
        let initial: u32 = app.services.iter().map(|s| s.initial_replicas).sum();
        if initial > cluster.max_instances {
            return Err(self.err(
                "cluster.max_instances",
                "max_instances",
                format!("is {} but the {what} start with {initial} replicas in all", cluster.max_instances),
            ));
        }
        Ok(())
    }

    /// The two pools as services (`prompt`, `token`): one instance per GPU server, a whole server's
    /// worth of CPU request so that "CPU utilisation" is the share of time the instance computes.
    fn llm(&self, raw: &RawLlm, cluster: &ClusterSpec) -> Result<(AppSpec, LlmSpec), ConfigError> {
        let mut services = Vec::new();
        let mut pools = Vec::new();
        for (name, p) in [("prompt", &raw.prompt), ("token", &raw.token)] {
            let at = |f: &str| format!("llm.{name}.{f}");
            let sku = match &p.sku {
                None => 0,
                Some(n) => cluster.skus.iter().position(|k| &k.name == n).ok_or_else(|| {
                    self.err(at("sku"), &format!("sku: {n}"), format!("`{n}` is not one of the cluster's SKUs"))
                })?,
            };
            if p.min_replicas == 0
                || p.min_replicas > p.max_replicas
                || p.replicas < p.min_replicas
                || p.replicas > p.max_replicas
            {
                return Err(self.err(
                    at("min_replicas"),
                    &format!("{name}:"),
                    format!(
                        "need 1 <= min_replicas ({}) <= replicas ({}) <= max_replicas ({}): every pool keeps an instance",
                        p.min_replicas, p.replicas, p.max_replicas
                    ),
                ));
            }
            for (v, f) in [
                (p.max_batch_tokens, "max_batch_tokens"),
                (p.max_batch_size, "max_batch_size"),
                (p.kv_capacity_tokens, "kv_capacity_tokens"),
            ] {
                if v == Some(0) {
                    return Err(self.err(at(f), f, "must be at least 1"));
                }
            }
            services.push(ServiceSpec {
                name: name.to_string(),
                sku,
                initial_replicas: p.replicas,
                min_replicas: p.min_replicas,
                max_replicas: p.max_replicas,
                shape: InstanceShape {
                    cpu_request: 1.0,
                    cpu_limit: 1.0,
                    memory_mib: 1.0,
                    concurrency: 1,
                    queue_capacity: u32::MAX,
                },
                scale_up_delay: SimTime::from_secs_f64(p.scale_up_delay_s.0),
                load_balancing: LoadBalancing::RoundRobin,
                demand: Demand::constant(1.0),
                stateful: None,
                memory_idle_mib: 0.0,
                memory_per_request_mib: 0.0,
            });
            pools.push(PoolSpec {
                scheduler: match p.scheduler {
                    RawLlmScheduler::RoundRobin => LlmScheduler::RoundRobin,
                    RawLlmScheduler::Jsq => LlmScheduler::ShortestQueue,
                },
                max_batch_tokens: p.max_batch_tokens.unwrap_or(8192),
                max_batch_size: p.max_batch_size.unwrap_or(64),
                kv_capacity_tokens: p.kv_capacity_tokens.unwrap_or(1_500_000),
            });
        }
        let perf = &raw.performance;
        let ms = |v: Option<NonNegative>, d: f64| v.map_or(d, |x| x.0);
        let tokens = |t: Option<RawTokens>, d: f64| match t {
            None => TokenSizes::Constant(d),
            Some(RawTokens { mean, cv: None }) => TokenSizes::Constant(mean.0),
            Some(RawTokens { mean, cv: Some(cv) }) => TokenSizes::LogNormal { mean: mean.0, cv: cv.0 },
        };
        let spec = LlmSpec {
            prompt: pools[0],
            token: pools[1],
            performance: Performance {
                prefill_curve: self.curve(
                    &perf.prefill_ms,
                    "prefill_ms",
                    perf.prefill_base_ms.or(perf.prefill_ms_per_token).is_some(),
                )?,
                decode_curve: self.curve(
                    &perf.decode_ms,
                    "decode_ms",
                    perf.decode_base_ms.or(perf.decode_ms_per_request).is_some(),
                )?,
                ..Performance::linear(
                    ms(perf.prefill_base_ms, 25.0),
                    ms(perf.prefill_ms_per_token, 0.12),
                    ms(perf.decode_base_ms, 28.0),
                    ms(perf.decode_ms_per_request, 0.35),
                )
            },
            kv_bytes_per_token: raw.kv_bytes_per_token.map_or(327_680.0, |v| v.0),
            link_gbps: raw.link_gbps.map_or(200.0, |v| v.0),
            ttft_slo: SimTime::from_secs_f64(raw.ttft_slo_ms.map_or(1000.0, |v| v.0) / 1000.0),
            tbt_slo: SimTime::from_secs_f64(raw.tbt_slo_ms.map_or(50.0, |v| v.0) / 1000.0),
            switch_delay: SimTime::from_secs_f64(raw.switch_delay_s.map_or(10.0, |v| v.0)),
            prompt_tokens: tokens(raw.prompt_tokens, 1024.0),
            output_tokens: tokens(raw.output_tokens, 64.0),
        };
        let app = AppSpec {
            services,
            nodes: Vec::new(),
            children: Vec::new(),
            request_types: Vec::new(),
            network_latency: SimTime::ZERO,
            overhead: None,
        };
        Ok((app, spec))
    }

    fn expand_chain(&self, chain: RawChain) -> Result<(Vec<RawService>, Vec<RawRequestType>), ConfigError> {
        if chain.length == 0 || chain.length > 1000 {
            return Err(self.err("chain.length", "length", format!("{} is outside 1..=1000", chain.length)));
        }
        let prefix = if chain.service.name.is_empty() { "s".to_string() } else { chain.service.name.clone() };
        let services: Vec<RawService> =
            (1..=chain.length).map(|i| RawService { name: format!("{prefix}{i}"), ..chain.service.clone() }).collect();
        let mut call: Option<RawCall> = None;
        for s in services.iter().rev() {
            call = Some(RawCall {
                service: s.name.clone(),
                demand: None,
                parallel: false,
                write: false,
                calls: call.into_iter().collect(),
            });
        }
        let types = vec![RawRequestType { name: "chain".into(), call: call.expect("length >= 1"), http: None }];
        Ok((services, types))
    }

    /// A measured curve of `llm.performance.<key>`; refused beside the same phase's line.
    fn curve(&self, points: &Option<Vec<[f64; 2]>>, key: &str, line_too: bool) -> Result<Option<Curve>, ConfigError> {
        let Some(points) = points else { return Ok(None) };
        let field = format!("llm.performance.{key}");
        if line_too {
            return Err(self.err(
                &field,
                key,
                "give either the measured curve or the phase's base/per-unit line, not both",
            ));
        }
        let pts: Vec<(f64, f64)> = points.iter().map(|p| (p[0], p[1])).collect();
        Curve::new(&pts).map(Some).map_err(|m| self.err(&field, key, m))
    }

    fn metrics(&self, m: &RawMetrics) -> Result<MetricsConfig, ConfigError> {
        let scrape = SimTime::from_secs_f64(m.scrape_interval_s.map_or(15.0, |v| v.0));
        let timeline = SimTime::from_secs_f64(m.timeline_interval_s.map_or(1.0, |v| v.0));
        if timeline < SimTime::from_millis(1) {
            return Err(self.err("metrics.timeline_interval_s", "timeline_interval_s", "must be at least 0.001 s"));
        }
        if scrape < timeline || scrape.0 % timeline.0 != 0 {
            return Err(self.err(
                "metrics.scrape_interval_s",
                "scrape_interval_s",
                format!("{scrape} is not a whole number of timeline intervals ({timeline})"),
            ));
        }
        Ok(MetricsConfig { scrape_interval: scrape, timeline_interval: timeline })
    }

    fn cluster(&self, c: &RawCluster) -> Result<ClusterSpec, ConfigError> {
        if c.skus.is_empty() {
            return Err(self.err("cluster.skus", "skus", "needs at least one server SKU"));
        }
        if c.max_instances == 0 {
            return Err(self.err("cluster.max_instances", "max_instances", "must be at least 1"));
        }
        let mut seen = BTreeSet::new();
        let mut skus = Vec::new();
        for (i, s) in c.skus.iter().enumerate() {
            if !seen.insert(s.name.as_str()) {
                return Err(self.err(
                    format!("cluster.skus[{i}].name"),
                    &s.name,
                    format!("`{}` is defined twice", s.name),
                ));
            }
            skus.push(ServerSku {
                name: s.name.clone(),
                cores: s.cores.0,
                memory_gib: s.memory_gib.0,
                price_per_hour: s.price_per_hour.0,
            });
        }
        Ok(ClusterSpec { skus, max_instances: c.max_instances })
    }

    fn services(&self, raw: &[RawService], cluster: &ClusterSpec) -> Result<Vec<ServiceSpec>, ConfigError> {
        if raw.is_empty() {
            return Err(self.err("services", "services", "needs at least one service"));
        }
        if raw.len() > u16::MAX as usize {
            return Err(self.err("services", "services", "too many services (at most 65535)"));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let at = |f: &str| format!("services[{i}].{f}");
            let anchor = format!("name: {}", s.name);
            if s.name.trim().is_empty() {
                return Err(self.err(at("name"), "services", "every service needs a `name`"));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(self.err(at("name"), &anchor, format!("service `{}` is defined twice", s.name)));
            }
            let sku = match &s.sku {
                None => 0,
                Some(n) => cluster.skus.iter().position(|k| &k.name == n).ok_or_else(|| {
                    self.err(at("sku"), &format!("sku: {n}"), format!("`{n}` is not one of the cluster's SKUs"))
                })?,
            };
            if s.max_replicas == 0 || s.min_replicas > s.max_replicas {
                return Err(self.err(
                    at("max_replicas"),
                    &anchor,
                    format!(
                        "min_replicas {} and max_replicas {} need 1 <= max and min <= max",
                        s.min_replicas, s.max_replicas
                    ),
                ));
            }
            if s.replicas < s.min_replicas || s.replicas > s.max_replicas {
                return Err(self.err(
                    at("replicas"),
                    &anchor,
                    format!(
                        "{} is outside [min_replicas {}, max_replicas {}]",
                        s.replicas, s.min_replicas, s.max_replicas
                    ),
                ));
            }
            if s.concurrency == 0 {
                return Err(self.err(at("concurrency"), &anchor, "must be at least 1"));
            }
            let request = s.cpu_request_m.0 / 1000.0;
            let limit = s.cpu_limit_m.map_or(request, |l| l.0 / 1000.0);
            if limit < request {
                return Err(self.err(
                    at("cpu_limit_m"),
                    &anchor,
                    format!("{} is below cpu_request_m {}", limit * 1000.0, request * 1000.0),
                ));
            }
            let k = &cluster.skus[sku];
            if request > k.cores {
                return Err(self.err(
                    at("cpu_request_m"),
                    &anchor,
                    format!("{} m does not fit SKU `{}` ({} cores)", request * 1000.0, k.name, k.cores),
                ));
            }
            if s.memory_mib.0 > k.memory_gib * 1024.0 {
                return Err(self.err(
                    at("memory_mib"),
                    &anchor,
                    format!("{} MiB does not fit SKU `{}` ({} GiB)", s.memory_mib.0, k.name, k.memory_gib),
                ));
            }
            out.push(ServiceSpec {
                name: s.name.clone(),
                sku,
                initial_replicas: s.replicas,
                min_replicas: s.min_replicas,
                max_replicas: s.max_replicas,
                shape: InstanceShape {
                    cpu_request: request,
                    cpu_limit: limit,
                    memory_mib: s.memory_mib.0,
                    concurrency: s.concurrency,
                    queue_capacity: s.queue_capacity,
                },
                scale_up_delay: SimTime::from_secs_f64(s.scale_up_delay_s.0),
                load_balancing: match s.load_balancing {
                    RawLoadBalancing::RoundRobin => LoadBalancing::RoundRobin,
                    RawLoadBalancing::LeastOutstanding => LoadBalancing::LeastOutstanding,
                    RawLoadBalancing::Random => LoadBalancing::Random,
                },
                demand: demand(s.demand),
                stateful: None,
                memory_idle_mib: s.memory_idle_mib.map_or(s.memory_mib.0 / 2.0, |v| v.0),
                memory_per_request_mib: s.memory_per_request_mib.map_or(1.0, |v| v.0),
            });
        }
        // Second pass: stateful specs may name any service.
        for (i, s) in raw.iter().enumerate() {
            if let Some(st) = &s.stateful {
                let from = match &st.replicates_from {
                    None => None,
                    Some(n) => {
                        let j = raw.iter().position(|x| &x.name == n).ok_or_else(|| {
                            self.err(
                                format!("services[{i}].stateful.replicates_from"),
                                &format!("replicates_from: {n}"),
                                format!("`{n}` is not a service"),
                            )
                        })?;
                        if j == i {
                            return Err(self.err(
                                format!("services[{i}].stateful.replicates_from"),
                                &format!("replicates_from: {n}"),
                                "a service cannot replicate from itself",
                            ));
                        }
                        Some(j)
                    }
                };
                out[i].stateful = Some(StatefulSpec {
                    dataset_mb: st.dataset_mb.0,
                    sync_mbps: st.sync_mbps.0,
                    replicates_from: from,
                    base_lag_ms: st.base_lag_ms.0,
                    lag_ms_per_write_rps: st.lag_ms_per_write_rps.0,
                });
            }
        }
        Ok(out)
    }

    /// Resolves the request types into `app`; returns their HTTP routes.
    fn request_types(&self, raw: &[RawRequestType], app: &mut AppSpec) -> Result<Vec<Option<HttpRoute>>, ConfigError> {
        if raw.is_empty() {
            return Err(self.err("request_types", "request_types", "needs at least one request type"));
        }
        let mut seen = BTreeSet::new();
        let mut routes = Vec::with_capacity(raw.len());
        for (i, rt) in raw.iter().enumerate() {
            if !seen.insert(rt.name.as_str()) {
                return Err(self.err(
                    format!("request_types[{i}].name"),
                    &format!("name: {}", rt.name),
                    format!("request type `{}` is defined twice", rt.name),
                ));
            }
            let mut ancestors = Vec::new();
            let root = self.call(&rt.call, app, &format!("request_types[{i}].call"), &mut ancestors)?;
            app.request_types.push(RequestType { name: rt.name.clone(), root });
            routes.push(rt.http.as_ref().map(|h| self.http_route(h, &format!("request_types[{i}].http"))).transpose()?);
        }
        Ok(routes)
    }

    /// Checks a request type's HTTP route: a known method, an absolute path, and every `{name}`
    /// placeholder backed by a non-empty list of choices.
    fn http_route(&self, h: &super::raw::RawHttp, at: &str) -> Result<HttpRoute, ConfigError> {
        let method = h.method.to_ascii_uppercase();
        if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
            return Err(self.err(
                format!("{at}.method"),
                &h.method,
                format!("`{}`: expected GET, POST, PUT, PATCH or DELETE", clip_quote(&h.method)),
            ));
        }
        if !h.path.starts_with('/') {
            return Err(self.err(format!("{at}.path"), &h.path, "must start with `/`"));
        }
        for (k, v) in &h.choices {
            if v.is_empty() {
                return Err(self.err(format!("{at}.choices.{k}"), k, "needs at least one value"));
            }
        }
        for (field, text) in std::iter::once(("path", &h.path)).chain(h.form.iter().map(|(k, v)| (k.as_str(), v))) {
            for name in placeholders(text) {
                if !h.choices.contains_key(name) {
                    return Err(self.err(
                        format!("{at}.{field}"),
                        &format!("{{{name}}}"),
                        format!("placeholder `{{{name}}}` has no `choices.{name}` list"),
                    ));
                }
            }
            if text.matches('{').count() != text.matches('}').count() {
                return Err(self.err(format!("{at}.{field}"), text, "unbalanced `{` or `}`"));
            }
        }
        Ok(HttpRoute {
            method,
            path: h.path.clone(),
            form: h.form.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            choices: h.choices.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }

    /// Flattens one call subtree into `app.nodes`, refusing unknown services and calls back into a
    /// service already on the path (that would be a cycle: a visit waiting on itself).
    fn call(&self, c: &RawCall, app: &mut AppSpec, at: &str, ancestors: &mut Vec<usize>) -> Result<u32, ConfigError> {
        let svc = app.service_index(&c.service).ok_or_else(|| {
            self.err(
                format!("{at}.service"),
                &format!("service: {}", c.service),
                format!("`{}` is not a service of this scenario", c.service),
            )
        })?;
        if ancestors.contains(&svc) {
            return Err(self.err(
                format!("{at}.service"),
                &format!("service: {}", c.service),
                format!("`{}` calls itself through its callees; call graphs must be acyclic", c.service),
            ));
        }
        let idx = app.nodes.len() as u32;
        app.nodes.push(CallNode {
            service: svc as u16,
            demand: c.demand.map(demand).unwrap_or(app.services[svc].demand),
            parallel: c.parallel,
            write: c.write,
            first_child: 0,
            n_children: 0,
        });
        ancestors.push(svc);
        let mut kids = Vec::new();
        for (j, child) in c.calls.iter().enumerate() {
            kids.push(self.call(child, app, &format!("{at}.calls[{j}]"), ancestors)?);
        }
        ancestors.pop();
        let first = app.children.len() as u32;
        app.children.extend_from_slice(&kids);
        let node = &mut app.nodes[idx as usize];
        node.first_child = first;
        node.n_children = kids.len() as u32;
        Ok(idx)
    }

    fn workload(&self, w: &RawWorkload, app: &AppSpec) -> Result<Workload, ConfigError> {
        let mix = match &w.mix {
            None if app.request_types.is_empty() => vec![1.0], // LLM: no request types
            None => vec![1.0; app.request_types.len()],
            Some(m) => {
                let mut mix = vec![0.0; app.request_types.len()];
                for (name, weight) in m {
                    let k = app.request_types.iter().position(|r| &r.name == name).ok_or_else(|| {
                        self.err(
                            format!("workload.mix.{name}"),
                            &format!("{name}:"),
                            format!("`{name}` is not a request type"),
                        )
                    })?;
                    mix[k] = weight.0;
                }
                mix
            }
        };
        if mix.iter().sum::<f64>() <= 0.0 {
            return Err(self.err("workload.mix", "mix", "the weights sum to 0: no request could be drawn"));
        }
        let process = match (w.arrivals.process, w.arrivals.cv) {
            (RawArrivalKind::Poisson, None) => ArrivalProcess::Poisson,
            (RawArrivalKind::Deterministic, None) => ArrivalProcess::Deterministic,
            (RawArrivalKind::Gamma, Some(cv)) => ArrivalProcess::gamma(cv.0),
            (RawArrivalKind::Gamma, None) => {
                return Err(self.err("workload.arrivals.cv", "process", "gamma arrivals need `cv`"))
            }
            (_, Some(_)) => return Err(self.err("workload.arrivals.cv", "cv:", "`cv` applies to gamma arrivals only")),
        };
        let source = match (&w.trace, w.stages.is_empty()) {
            (Some(_), false) => {
                return Err(self.err("workload", "stages", "give either `stages` or `trace`, not both"))
            }
            (None, true) => return Err(self.err("workload", "workload", "needs `stages` or a `trace`")),
            (None, false) => {
                let mut stages = Vec::new();
                for (i, s) in w.stages.iter().enumerate() {
                    let level = match (s.users, s.rps) {
                        (Some(u), None) => StageLevel::Users(u.0),
                        (None, Some(r)) => StageLevel::Rps(r.0),
                        _ => {
                            return Err(self.err(
                                format!("workload.stages[{i}]"),
                                "stages",
                                "give exactly one of `users` and `rps`",
                            ))
                        }
                    };
                    stages.push(Stage { duration_s: s.duration_s.0, level, spawn_rate: s.spawn_rate.map(|v| v.0) });
                }
                ArrivalSource::Rate { schedule: RateSchedule::from_stages(&stages, w.think_time_s.0), process }
            }
            (Some(t), true) => {
                let spec = TraceSpec {
                    file: resolve_path(self.path, &t.file),
                    format: match t.format {
                        RawTraceFormat::Requests => TraceFormat::Requests,
                        RawTraceFormat::RateTable => TraceFormat::RateTable,
                    },
                    column: t.column.clone(),
                    time_scale: t.time_scale.0,
                    rate_scale: t.rate_scale.0,
                    token_columns: match (&t.prompt_tokens_column, &t.output_tokens_column) {
                        (Some(p), Some(o)) => Some((p.clone(), o.clone())),
                        (None, None) => None,
                        _ => {
                            return Err(self.err(
                                "workload.trace",
                                "tokens_column",
                                "give both prompt_tokens_column and output_tokens_column, or neither",
                            ))
                        }
                    },
                };
                match read_trace(&spec)? {
                    TraceData::Requests { times, tokens } => ArrivalSource::Replay {
                        times: Arc::new(times),
                        rate_scale: t.rate_scale.0,
                        tokens: tokens.map(Arc::new),
                    },
                    TraceData::Rates(schedule) => ArrivalSource::Rate { schedule, process },
                }
            }
        };
        let duration = match &source {
            ArrivalSource::Rate { schedule, .. } => SimTime::from_secs_f64(schedule.end),
            // One microsecond past the last recorded arrival, so it falls inside the run.
            ArrivalSource::Replay { times, .. } => SimTime(times.last().copied().unwrap_or(0) + 1),
        };
        Ok(Workload { source, mix, duration })
    }
}

/// The `{name}` placeholders of `text`.
fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{').skip(1).filter_map(|part| part.split_once('}').map(|(name, _)| name))
}

fn demand(d: RawDemand) -> Demand {
    match d {
        RawDemand::Constant { ms } => Demand::constant(ms.0),
        RawDemand::Exponential { mean_ms } => Demand::exponential(mean_ms.0),
        RawDemand::Lognormal { mean_ms, cv } => Demand::lognormal(mean_ms.0, cv.0),
        RawDemand::Gamma { mean_ms, cv } => Demand::gamma(mean_ms.0, cv.0),
    }
}
