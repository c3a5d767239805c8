//! Scenarios: the YAML a user writes (`raw`), and the validated [`Scenario`] the simulator runs.
//!
//! Loading goes file -> [`raw::RawScenario`] (serde mirrors the YAML, unknown fields refused) ->
//! [`Scenario`] (names resolved to indices, every value checked). Every error names the file, the
//! line where it can be found, and the field.

mod error;
pub mod locust;
pub mod raw;
mod resolve;
mod yaml;

pub use crate::text::{clip_message, clip_quote};
pub use error::ConfigError;
pub use resolve::{load_scenario, parse_scenario};
pub use yaml::{find_line, parse_yaml, parse_yaml_documents, ConfigText};

use std::path::PathBuf;

use crate::app::AppSpec;
use crate::cluster::ClusterSpec;
use crate::engine::SimTime;
use crate::workload::Workload;

/// How requests are simulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fidelity {
    /// Every request and every call is simulated (the reference).
    Request,
    /// A per-tick queueing model (`sim/fluid.rs`): the same observations, actions and metrics,
    /// far faster; for training.
    Fluid,
}

impl Fidelity {
    pub fn as_str(self) -> &'static str {
        match self {
            Fidelity::Request => "request",
            Fidelity::Fluid => "fluid",
        }
    }
}

/// Metric collection settings.
#[derive(Clone, Copy, Debug)]
pub struct MetricsConfig {
    /// How often the metrics server scrapes, and the window its rates cover (default 15 s).
    pub scrape_interval: SimTime,
    /// Row spacing of `timeline.csv` (default 1 s).
    pub timeline_interval: SimTime,
}

/// A validated scenario, ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub source: PathBuf,
    /// Default seed; the CLI's `--seed` overrides it.
    pub seed: u64,
    pub fidelity: Fidelity,
    pub horizon: SimTime,
    /// A request slower than this (end to end) violates the SLO.
    pub slo: SimTime,
    pub metrics: MetricsConfig,
    pub cluster: ClusterSpec,
    pub app: AppSpec,
    pub workload: Workload,
    /// An LLM serving application: `app` then holds its two pools as services `prompt` and
    /// `token`, and the LLM simulator runs it.
    pub llm: Option<crate::app::llm::LlmSpec>,
    /// Settings for real backends.
    pub backends: BackendsConfig,
    /// Each request type's HTTP route (indexed like `app.request_types`), for load generators;
    /// `None` where the scenario gives none.
    pub http: Vec<Option<HttpRoute>>,
}

/// How a load generator sends one request type (see `RawHttp`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRoute {
    /// Upper case: GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// Starts with `/`; may hold `{name}` placeholders.
    pub path: String,
    /// Form fields, sent form-encoded; values may hold placeholders.
    pub form: Vec<(String, String)>,
    /// The values a placeholder is drawn from, uniformly, per request.
    pub choices: Vec<(String, Vec<String>)>,
}

/// How the scenario runs on real backends.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendsConfig {
    /// The local process cluster's time compression: scenario seconds per wall second; CPU
    /// demands are divided by it too, so utilisations are unchanged.
    pub local_time_compression: f64,
    pub kubernetes: Option<KubernetesConfig>,
}

impl Default for BackendsConfig {
    fn default() -> Self {
        BackendsConfig { local_time_compression: 1.0, kubernetes: None }
    }
}

/// The scenario's services on a real cluster (see `backend::kubernetes`).
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesConfig {
    pub namespace: String,
    /// The Deployment of each service (indexed like `AppSpec::services`); `None`: not on the
    /// cluster, never touched.
    pub deployments: Vec<Option<String>>,
    pub cpu_from_prometheus: bool,
    pub prometheus: Option<PrometheusConfig>,
}

/// PromQL templates with `{namespace}`, `{deployment}` and `{window}` placeholders.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusConfig {
    pub url: String,
    pub window_s: f64,
    pub rps_query: String,
    pub p95_ms_query: String,
    pub cpu_cores_query: String,
}

/// Metric names of the service meshes (and of the local backend's workers).
pub const PROMETHEUS_PRESETS: [&str; 3] = ["istio", "linkerd", "scalesim"];

impl PrometheusConfig {
    /// The (rps, p95 ms, cpu cores by pod) queries of a preset.
    pub fn preset(name: &str) -> Option<[&'static str; 3]> {
        Some(match name {
            "istio" => [
                r#"sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{namespace}",destination_workload="{deployment}"}[{window}]))"#,
                r#"histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{namespace}",destination_workload="{deployment}"}[{window}])) by (le))"#,
                r#"sum(rate(container_cpu_usage_seconds_total{namespace="{namespace}",pod=~"{deployment}-.*",container!="",container!="POD",container!="istio-proxy"}[{window}])) by (pod)"#,
            ],
            "linkerd" => [
                r#"sum(rate(request_total{direction="inbound",namespace="{namespace}",deployment="{deployment}"}[{window}]))"#,
                r#"histogram_quantile(0.95, sum(rate(response_latency_ms_bucket{direction="inbound",namespace="{namespace}",deployment="{deployment}"}[{window}])) by (le))"#,
                r#"sum(rate(container_cpu_usage_seconds_total{namespace="{namespace}",pod=~"{deployment}-.*",container!="",container!="POD",container!="linkerd-proxy"}[{window}])) by (pod)"#,
            ],
            "scalesim" => [
                r#"sum(rate(scalesim_worker_requests_total{namespace="{namespace}",deployment="{deployment}"}[{window}]))"#,
                r#"histogram_quantile(0.95, sum(rate(scalesim_worker_latency_ms_bucket{namespace="{namespace}",deployment="{deployment}"}[{window}])) by (le))"#,
                r#"sum(rate(process_cpu_seconds_total{namespace="{namespace}",deployment="{deployment}"}[{window}])) by (pod)"#,
            ],
            _ => return None,
        })
    }

    /// `template` with the placeholders filled in for one deployment.
    pub fn render(&self, template: &str, namespace: &str, deployment: &str) -> String {
        template
            .replace("{namespace}", namespace)
            .replace("{deployment}", deployment)
            .replace("{window}", &format!("{}s", self.window_s))
    }
}
