//! HPA configuration: `autoscaling/v2` HorizontalPodAutoscaler fields, as a user pastes them, and
//! the controller's own settings.
//!
//! A policy config file is either one or more HPA manifests (`kind: HorizontalPodAutoscaler`,
//! separated by `---`; `scaleTargetRef.name` names the service), or a scalesim file:
//!
//! ```yaml
//! controller: { sync_period_s: 15, tolerance: 0.1, cpu_initialization_period_s: 300,
//!               initial_readiness_delay_s: 30, downscale_stabilization_s: 300 }
//! default:            # an HPA `spec` for every service without an HPA of its own
//!   minReplicas: 1
//!   maxReplicas: 7
//!   metrics: [ { type: Resource, resource: { name: cpu, target: { type: Utilization, averageUtilization: 60 } } } ]
//! hpas: [ ...manifests... ]
//! ```
//!
//! Metric names the simulator provides: Resource `cpu` and `memory` (also as ContainerResource);
//! Pods metrics `rps` (requests/s per pod) and `concurrency` (requests held per pod); Object
//! metrics (any `describedObject`) `rps` (service requests/s), `p95_latency_ms`, `queue_length`.

use std::path::Path;

use serde::Deserialize;

use super::behavior::{PolicyKind, RatePolicy, ScalingBehavior, ScalingRules, SelectPolicy};
use crate::engine::SimTime;
use crate::scenario::{parse_yaml, parse_yaml_documents, ConfigError, Scenario};

/// kube-controller-manager settings of the HPA controller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControllerSettings {
    pub sync_period: SimTime,
    pub tolerance: f64,
    pub cpu_initialization_period: SimTime,
    pub initial_readiness_delay: SimTime,
    pub downscale_stabilization: SimTime,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            sync_period: SimTime::from_secs(15),
            tolerance: 0.1,
            cpu_initialization_period: SimTime::from_secs(300),
            initial_readiness_delay: SimTime::from_secs(30),
            downscale_stabilization: SimTime::from_secs(300),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceName {
    Cpu,
    Memory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodSignal {
    Rps,
    Concurrency,
    /// LLM token pods: running decode batch over its maximum size, in [0, 1].
    BatchOccupancy,
    /// LLM token pods: KV cache in use or promised over capacity, in [0, 1].
    KvCacheUsage,
    /// LLM prompt pods: prompt tokens queued or prefilling.
    QueuedPromptTokens,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectSignal {
    Rps,
    P95LatencyMs,
    QueueLength,
}

/// A target in base units (cores, MiB, requests/s, ms) or percent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    Utilization(i64),
    Value(f64),
    AverageValue(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricRule {
    Resource { name: ResourceName, target: Target },
    Pods { signal: PodSignal, target: f64 },
    Object { signal: ObjectSignal, target: Target },
}

/// One service's HPA, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceHpa {
    pub service: usize,
    pub min: u32,
    pub max: u32,
    pub metrics: Vec<MetricRule>,
    /// `None`: the spec has no `behavior` and Go's older path decides
    /// ([`super::BehaviorState::normalize_without_behavior`]); `Some` (even `behavior: {}`): the
    /// behavior path with Kubernetes' defaults for what it leaves out.
    pub behavior: Option<ScalingBehavior>,
}

// ---- raw YAML ------------------------------------------------------------------------------

/// A Kubernetes quantity: a number, or a string such as `500m`, `1.5`, `256Mi`, `2k`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Quantity {
    Number(f64),
    Text(String),
}

impl Quantity {
    /// Value in base units (`500m` -> 0.5, `256Mi` -> 268435456).
    fn value(&self) -> Option<f64> {
        match self {
            Quantity::Number(v) => Some(*v),
            Quantity::Text(s) => parse_quantity(s),
        }
    }
}

pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let suffixes: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("", 1.0),
    ];
    for (suf, mult) in suffixes {
        if let Some(num) = s.strip_suffix(suf) {
            if let Ok(v) = num.parse::<f64>() {
                return v.is_finite().then_some(v * mult);
            }
        }
    }
    None
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    controller: RawController,
    default: Option<RawSpec>,
    #[serde(default)]
    hpas: Vec<RawManifest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    sync_period_s: Option<f64>,
    tolerance: Option<f64>,
    cpu_initialization_period_s: Option<f64>,
    initial_readiness_delay_s: Option<f64>,
    downscale_stabilization_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawManifest {
    api_version: Option<String>,
    kind: Option<String>,
    /// Free-form (labels, annotations): not used.
    #[allow(dead_code)]
    metadata: Option<serde_yaml_ng::Value>,
    spec: RawSpec,
    /// A pasted `kubectl get -o yaml` carries it: not used.
    #[allow(dead_code)]
    status: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    scale_target_ref: Option<RawTargetRef>,
    min_replicas: Option<i64>,
    max_replicas: Option<i64>,
    metrics: Option<Vec<RawMetric>>,
    behavior: Option<RawBehavior>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTargetRef {
    #[allow(dead_code)]
    api_version: Option<String>,
    #[allow(dead_code)]
    kind: Option<String>,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMetric {
    #[serde(rename = "type")]
    kind: String,
    resource: Option<RawResource>,
    container_resource: Option<RawContainerResource>,
    pods: Option<RawPods>,
    object: Option<RawObject>,
    external: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    name: String,
    target: RawTarget,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainerResource {
    name: String,
    container: String,
    target: RawTarget,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPods {
    metric: RawMetricId,
    target: RawTarget,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawObject {
    #[allow(dead_code)]
    described_object: serde_yaml_ng::Value,
    metric: RawMetricId,
    target: RawTarget,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetricId {
    name: String,
    #[allow(dead_code)]
    selector: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTarget {
    #[serde(rename = "type")]
    kind: String,
    average_utilization: Option<i64>,
    value: Option<Quantity>,
    average_value: Option<Quantity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBehavior {
    scale_up: Option<RawRules>,
    scale_down: Option<RawRules>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRules {
    stabilization_window_seconds: Option<i64>,
    select_policy: Option<String>,
    policies: Option<Vec<RawRatePolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRatePolicy {
    #[serde(rename = "type")]
    kind: String,
    value: i64,
    period_seconds: i64,
}

// ---- resolution ----------------------------------------------------------------------------

/// The HPAs of a run and the controller's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaConfig {
    pub controller: ControllerSettings,
    pub hpas: Vec<ServiceHpa>,
}

struct Ctx<'a> {
    file: String,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, needle: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::invalid_at(&self.file, self.text, needle, field, message)
    }

    /// [`Self::err`] for a value inside the `scaleTargetRef` of HPA `index` (a manifest document, or
    /// an entry of `hpas:`): located at the first line holding `needle` from that HPA's
    /// `scaleTargetRef` on, not at an earlier line that happens to hold it too (`metadata.name`).
    fn err_in_target(&self, index: usize, field: String, needle: &str, message: impl Into<String>) -> ConfigError {
        let lines: Vec<&str> = self.text.lines().collect();
        let targets: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with('#') && l.contains("scaleTargetRef"))
            .map(|(i, _)| i)
            .collect();
        let line = targets
            .get(index)
            .and_then(|&from| lines[from..].iter().position(|l| l.contains(needle)).map(|k| from + k + 1));
        match line {
            Some(l) => ConfigError::Invalid { file: self.file.clone(), line: Some(l), field, message: message.into() },
            None => self.err(field, needle, message),
        }
    }
}

/// The configuration used when `--policy hpa` has no `--policy-config`: every service gets an HPA
/// on CPU at 60% of its request, between the scenario's min and max replicas, no `behavior` (as
/// `kubectl autoscale` makes it).
pub fn default_config(scenario: &Scenario, cpu_target_pct: i64) -> HpaConfig {
    let controller = ControllerSettings::default();
    let hpas = scenario
        .app
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| ServiceHpa {
            service: i,
            min: s.min_replicas,
            max: s.max_replicas,
            metrics: vec![MetricRule::Resource {
                name: ResourceName::Cpu,
                target: Target::Utilization(cpu_target_pct),
            }],
            // An HPA made without `behavior` (`kubectl autoscale`, or a manifest that leaves it
            // out): Go's older path.
            behavior: None,
        })
        .collect();
    HpaConfig { controller, hpas }
}

/// Reads an HPA policy config (manifests or a scalesim config) for `scenario`.
pub fn load_config(path: &Path, scenario: &Scenario) -> Result<HpaConfig, ConfigError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Io { file: file.clone(), message: e.to_string() })?;
    parse_config(&text, &file, scenario)
}

pub fn parse_config(text: &str, file: &str, scenario: &Scenario) -> Result<HpaConfig, ConfigError> {
    let ctx = Ctx { file: file.to_string(), text };
    let is_manifest = text.lines().any(|l| l.starts_with("kind:"));
    let (raw_controller, default, manifests) = if is_manifest {
        let docs: Vec<RawManifest> = parse_yaml_documents(text, file)?;
        (RawController::default(), None, docs)
    } else {
        let c: RawConfig = parse_yaml(text, file)?;
        (c.controller, c.default, c.hpas)
    };
    let controller = resolve_controller(&ctx, &raw_controller)?;
    let mut hpas: Vec<ServiceHpa> = Vec::new();
    for (i, m) in manifests.iter().enumerate() {
        let at = if is_manifest { format!("document {}", i + 1) } else { format!("hpas[{i}]") };
        if let Some(k) = &m.kind {
            if k != "HorizontalPodAutoscaler" {
                return Err(ctx.err(
                    format!("{at}.kind"),
                    &format!("kind: {k}"),
                    format!("`{k}` is not a HorizontalPodAutoscaler"),
                ));
            }
        }
        if let Some(v) = &m.api_version {
            if !matches!(v.as_str(), "autoscaling/v2" | "autoscaling/v2beta2") {
                return Err(ctx.err(
                    format!("{at}.apiVersion"),
                    &format!("apiVersion: {v}"),
                    format!("`{v}`: only autoscaling/v2 is read"),
                ));
            }
        }
        let Some(target) = &m.spec.scale_target_ref else {
            return Err(ctx.err(
                format!("{at}.spec.scaleTargetRef"),
                "spec:",
                "missing: it names the service to scale",
            ));
        };
        let service = scenario.app.service_index(&target.name).ok_or_else(|| {
            ctx.err_in_target(
                i,
                format!("{at}.spec.scaleTargetRef.name"),
                &target.name,
                format!("`{}` is not a service of scenario `{}`", target.name, scenario.name),
            )
        })?;
        if hpas.iter().any(|h| h.service == service) {
            return Err(ctx.err_in_target(
                i,
                format!("{at}.spec.scaleTargetRef.name"),
                &target.name,
                "a second HPA for the same service",
            ));
        }
        hpas.push(resolve_spec(&ctx, &format!("{at}.spec"), &m.spec, service, scenario, &controller)?);
    }
    if let Some(d) = &default {
        if d.scale_target_ref.is_some() {
            return Err(ctx.err(
                "default.scaleTargetRef",
                "scaleTargetRef",
                "the default HPA applies to every service: no scaleTargetRef",
            ));
        }
        for s in 0..scenario.app.services.len() {
            if !hpas.iter().any(|h| h.service == s) {
                hpas.push(resolve_spec(&ctx, "default", d, s, scenario, &controller)?);
            }
        }
    }
    if hpas.is_empty() {
        return Err(ctx.err("hpas", "hpas", "no HPA: give `default`, `hpas` or HorizontalPodAutoscaler manifests"));
    }
    hpas.sort_by_key(|h| h.service);
    Ok(HpaConfig { controller, hpas })
}

fn resolve_controller(ctx: &Ctx, c: &RawController) -> Result<ControllerSettings, ConfigError> {
    let d = ControllerSettings::default();
    let secs = |v: Option<f64>, name: &str, def: SimTime, min: f64| -> Result<SimTime, ConfigError> {
        match v {
            None => Ok(def),
            Some(x) if x.is_finite() && x >= min => Ok(SimTime::from_secs_f64(x)),
            Some(x) => {
                Err(ctx.err(format!("controller.{name}"), name, format!("{x} is not a number of seconds >= {min}")))
            }
        }
    };
    let tolerance = match c.tolerance {
        None => d.tolerance,
        Some(t) if (0.0..1.0).contains(&t) => t,
        Some(t) => return Err(ctx.err("controller.tolerance", "tolerance", format!("{t} is outside [0, 1)"))),
    };
    let sync = secs(c.sync_period_s, "sync_period_s", d.sync_period, 0.001)?;
    Ok(ControllerSettings {
        sync_period: sync,
        tolerance,
        cpu_initialization_period: secs(
            c.cpu_initialization_period_s,
            "cpu_initialization_period_s",
            d.cpu_initialization_period,
            0.0,
        )?,
        initial_readiness_delay: secs(
            c.initial_readiness_delay_s,
            "initial_readiness_delay_s",
            d.initial_readiness_delay,
            0.0,
        )?,
        downscale_stabilization: secs(
            c.downscale_stabilization_s,
            "downscale_stabilization_s",
            d.downscale_stabilization,
            0.0,
        )?,
    })
}

fn resolve_spec(
    ctx: &Ctx,
    at: &str,
    spec: &RawSpec,
    service: usize,
    scenario: &Scenario,
    controller: &ControllerSettings,
) -> Result<ServiceHpa, ConfigError> {
    let svc = &scenario.app.services[service];
    let min = spec.min_replicas.unwrap_or(svc.min_replicas as i64);
    let max = spec.max_replicas.unwrap_or(svc.max_replicas as i64);
    if min < 0 || max < 1 || min > max || max > u32::MAX as i64 {
        return Err(ctx.err(
            format!("{at}.minReplicas"),
            "minReplicas",
            format!("minReplicas {min} and maxReplicas {max} need 0 <= min <= max and max >= 1"),
        ));
    }
    let mut metrics = Vec::new();
    // autoscaling/v2 defaults an HPA without metrics to CPU at 80%.
    let raw_metrics = spec.metrics.as_deref().unwrap_or(&[]);
    if raw_metrics.is_empty() {
        metrics.push(MetricRule::Resource { name: ResourceName::Cpu, target: Target::Utilization(80) });
    }
    for (i, m) in raw_metrics.iter().enumerate() {
        metrics.push(resolve_metric(ctx, &format!("{at}.metrics[{i}]"), m)?);
    }
    let up_default = ScalingRules::default_scale_up();
    let down_default =
        ScalingRules { stabilization_window: controller.downscale_stabilization, ..ScalingRules::default_scale_down() };
    let behavior = match &spec.behavior {
        None => None,
        Some(b) => Some(ScalingBehavior {
            scale_up: resolve_rules(ctx, &format!("{at}.behavior.scaleUp"), b.scale_up.as_ref(), up_default)?,
            scale_down: resolve_rules(ctx, &format!("{at}.behavior.scaleDown"), b.scale_down.as_ref(), down_default)?,
        }),
    };
    Ok(ServiceHpa { service, min: min as u32, max: max as u32, metrics, behavior })
}

fn resolve_target(ctx: &Ctx, at: &str, t: &RawTarget, allow_utilization: bool) -> Result<Target, ConfigError> {
    let positive = |q: &Option<Quantity>, name: &str| -> Result<f64, ConfigError> {
        let q = q.as_ref().ok_or_else(|| {
            ctx.err(format!("{at}.{name}"), "target", format!("`{name}` is required for type {}", t.kind))
        })?;
        match q.value() {
            Some(v) if v > 0.0 => Ok(v),
            _ => Err(ctx.err(format!("{at}.{name}"), name, format!("{q:?} is not a quantity > 0"))),
        }
    };
    match t.kind.as_str() {
        "Utilization" if allow_utilization => match t.average_utilization {
            Some(u) if u > 0 => Ok(Target::Utilization(u)),
            Some(u) => {
                Err(ctx.err(format!("{at}.averageUtilization"), "averageUtilization", format!("{u} must be > 0")))
            }
            None => Err(ctx.err(format!("{at}.averageUtilization"), "Utilization", "required for type Utilization")),
        },
        "Utilization" => {
            Err(ctx.err(format!("{at}.type"), "Utilization", "Utilization targets apply to Resource metrics only"))
        }
        "Value" => Ok(Target::Value(positive(&t.value, "value")?)),
        "AverageValue" => Ok(Target::AverageValue(positive(&t.average_value, "averageValue")?)),
        other => {
            Err(ctx.err(format!("{at}.type"), other, format!("`{other}`: expected Utilization, Value or AverageValue")))
        }
    }
}

fn resolve_metric(ctx: &Ctx, at: &str, m: &RawMetric) -> Result<MetricRule, ConfigError> {
    let resource = |name: &str, target: &RawTarget, at: &str| -> Result<MetricRule, ConfigError> {
        let n = match name {
            "cpu" => ResourceName::Cpu,
            "memory" => ResourceName::Memory,
            other => {
                return Err(ctx.err(
                    format!("{at}.name"),
                    other,
                    format!("resource `{other}`: the simulator has cpu and memory"),
                ))
            }
        };
        let target = resolve_target(ctx, &format!("{at}.target"), target, true)?;
        if matches!(target, Target::Value(_)) {
            return Err(ctx.err(
                format!("{at}.target.type"),
                "Value",
                "Resource targets are Utilization or AverageValue",
            ));
        }
        Ok(MetricRule::Resource { name: n, target })
    };
    match m.kind.as_str() {
        "Resource" => {
            let r = m
                .resource
                .as_ref()
                .ok_or_else(|| ctx.err(format!("{at}.resource"), "Resource", "missing for type Resource"))?;
            resource(&r.name, &r.target, &format!("{at}.resource"))
        }
        "ContainerResource" => {
            let r = m.container_resource.as_ref().ok_or_else(|| {
                ctx.err(format!("{at}.containerResource"), "ContainerResource", "missing for type ContainerResource")
            })?;
            if r.container.is_empty() {
                return Err(ctx.err(format!("{at}.containerResource.container"), "container", "must name a container"));
            }
            // One container per pod in the simulator: a container metric is the pod's.
            resource(&r.name, &r.target, &format!("{at}.containerResource"))
        }
        "Pods" => {
            let p = m.pods.as_ref().ok_or_else(|| ctx.err(format!("{at}.pods"), "Pods", "missing for type Pods"))?;
            let signal = match p.metric.name.as_str() {
                "rps" | "requests_per_second" => PodSignal::Rps,
                "concurrency" | "inflight_requests" => PodSignal::Concurrency,
                // LLM serving pods (the names vLLM-style exporters use, shortened).
                "batch_occupancy" => PodSignal::BatchOccupancy,
                "kv_cache_usage" => PodSignal::KvCacheUsage,
                "queued_prompt_tokens" => PodSignal::QueuedPromptTokens,
                other => {
                    return Err(ctx.err(
                        format!("{at}.pods.metric.name"),
                        other,
                        format!(
                            "`{other}`: Pods metrics are rps, concurrency, and for LLM pools batch_occupancy, kv_cache_usage and queued_prompt_tokens"
                        ),
                    ))
                }
            };
            match resolve_target(ctx, &format!("{at}.pods.target"), &p.target, false)? {
                Target::AverageValue(v) => Ok(MetricRule::Pods { signal, target: v }),
                _ => Err(ctx.err(format!("{at}.pods.target.type"), "type", "Pods metrics take an AverageValue target")),
            }
        }
        "Object" => {
            let o = m
                .object
                .as_ref()
                .ok_or_else(|| ctx.err(format!("{at}.object"), "Object", "missing for type Object"))?;
            let signal = match o.metric.name.as_str() {
                "rps" | "requests_per_second" => ObjectSignal::Rps,
                "p95_latency_ms" => ObjectSignal::P95LatencyMs,
                "queue_length" => ObjectSignal::QueueLength,
                other => {
                    return Err(ctx.err(
                        format!("{at}.object.metric.name"),
                        other,
                        format!("`{other}`: Object metrics are rps, p95_latency_ms and queue_length"),
                    ))
                }
            };
            Ok(MetricRule::Object {
                signal,
                target: resolve_target(ctx, &format!("{at}.object.target"), &o.target, false)?,
            })
        }
        "External" => {
            let _ = &m.external;
            Err(ctx.err(format!("{at}.type"), "External", "External metrics have no source in the simulator"))
        }
        other => Err(ctx.err(
            format!("{at}.type"),
            other,
            format!("`{other}`: expected Resource, ContainerResource, Pods or Object"),
        )),
    }
}

fn resolve_rules(
    ctx: &Ctx,
    at: &str,
    raw: Option<&RawRules>,
    default: ScalingRules,
) -> Result<ScalingRules, ConfigError> {
    let Some(r) = raw else { return Ok(default) };
    let stabilization_window = match r.stabilization_window_seconds {
        None => default.stabilization_window,
        Some(s) if (0..=3600).contains(&s) => SimTime::from_secs(s as u64),
        Some(s) => {
            return Err(ctx.err(
                format!("{at}.stabilizationWindowSeconds"),
                "stabilizationWindowSeconds",
                format!("{s} is outside 0..=3600"),
            ))
        }
    };
    let select = match r.select_policy.as_deref() {
        None | Some("Max") => SelectPolicy::Max,
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        Some(o) => {
            return Err(ctx.err(format!("{at}.selectPolicy"), o, format!("`{o}`: expected Max, Min or Disabled")))
        }
    };
    let policies = match &r.policies {
        None => default.policies,
        Some(ps) => {
            let mut out = Vec::new();
            for (i, p) in ps.iter().enumerate() {
                let kind = match p.kind.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    o => {
                        return Err(ctx.err(
                            format!("{at}.policies[{i}].type"),
                            o,
                            format!("`{o}`: expected Pods or Percent"),
                        ))
                    }
                };
                if p.value <= 0 {
                    return Err(ctx.err(
                        format!("{at}.policies[{i}].value"),
                        "value",
                        format!("{} must be > 0", p.value),
                    ));
                }
                if !(1..=1800).contains(&p.period_seconds) {
                    return Err(ctx.err(
                        format!("{at}.policies[{i}].periodSeconds"),
                        "periodSeconds",
                        format!("{} is outside 1..=1800", p.period_seconds),
                    ));
                }
                out.push(RatePolicy {
                    kind,
                    value: p.value as u32,
                    period: SimTime::from_secs(p.period_seconds as u64),
                });
            }
            if out.is_empty() && select != SelectPolicy::Disabled {
                return Err(ctx.err(
                    format!("{at}.policies"),
                    "policies",
                    "needs at least one policy unless selectPolicy is Disabled",
                ));
            }
            out
        }
    };
    Ok(ScalingRules { stabilization_window, select, policies })
}
