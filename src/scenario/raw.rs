//! Serde mirror of the scenario YAML. Unknown fields are refused everywhere, so a typo is an error,
//! not a silently ignored setting. Numbers that must be positive or non-negative are checked while
//! parsing, so their errors carry serde's line and column.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// A number that must be > 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Positive(pub f64);

/// A number that must be >= 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NonNegative(pub f64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() && v > 0.0 {
            Ok(Positive(v))
        } else {
            Err(serde::de::Error::custom(format!("must be a number > 0, got {v}")))
        }
    }
}

/// A duration in seconds: finite and at least the engine's resolution (1 us), so that it never
/// rounds to zero (a zero interval would be an endless loop, a zero horizon an empty run).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seconds(pub f64);

/// The shortest duration the engine can represent, in seconds.
pub const RESOLUTION_S: f64 = 1e-6;

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() && v >= RESOLUTION_S {
            Ok(Seconds(v))
        } else {
            Err(serde::de::Error::custom(format!(
                "must be a duration of at least 0.000001 s (1 us, the simulator's resolution), got {v}"
            )))
        }
    }
}

impl<'de> Deserialize<'de> for NonNegative {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() && v >= 0.0 {
            Ok(NonNegative(v))
        } else {
            Err(serde::de::Error::custom(format!("must be a number >= 0, got {v}")))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    #[serde(default = "one")]
    pub format_version: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "one_u64")]
    pub seed: u64,
    #[serde(default)]
    pub fidelity: RawFidelity,
    /// Default: the end of the workload.
    pub horizon_s: Option<Seconds>,
    pub slo_ms: Positive,
    #[serde(default)]
    pub network_latency_ms: Option<NonNegative>,
    #[serde(default)]
    pub metrics: RawMetrics,
    pub cluster: RawCluster,
    #[serde(default)]
    pub services: Vec<RawService>,
    #[serde(default)]
    pub request_types: Vec<RawRequestType>,
    /// Shorthand for a chain of N identical services (`services` and `request_types` generated).
    pub chain: Option<RawChain>,
    /// An LLM serving application (prompt and token pools) instead of services.
    pub llm: Option<RawLlm>,
    pub workload: RawWorkload,
    /// Settings for running this scenario on real backends (`--backend local|kubernetes`).
    #[serde(default)]
    pub backends: RawBackends,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackends {
    #[serde(default)]
    pub local: RawLocalBackend,
    pub kubernetes: Option<RawKubernetes>,
}

/// Where the scenario's services live on a user's cluster. Nothing outside `namespace` and the
/// deployments named here is ever read or changed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    pub namespace: String,
    /// Scenario service -> Deployment name.
    pub deployments: std::collections::BTreeMap<String, String>,
    /// Where pod CPU comes from: `metrics-server` (metrics.k8s.io, default) or `prometheus`.
    pub cpu_source: Option<String>,
    pub prometheus: Option<RawPrometheus>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrometheus {
    pub url: String,
    /// Metric names for RPS, latency and CPU: `istio`, `linkerd` or `scalesim` (local workers).
    #[serde(default)]
    pub preset: Option<String>,
    /// Rate window, seconds (default 60).
    pub window_s: Option<Seconds>,
    /// PromQL overriding the preset's, with `{namespace}`, `{deployment}` and `{window}` filled in.
    pub rps_query: Option<String>,
    pub p95_ms_query: Option<String>,
    /// One series per pod, labelled `pod`.
    pub cpu_cores_query: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocalBackend {
    /// Scenario seconds per wall second (default 1).
    pub time_compression: Option<Positive>,
}

/// LLM serving with phase splitting: a prompt (prefill) pool and a token (decode) pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLlm {
    pub prompt: RawPool,
    pub token: RawPool,
    #[serde(default)]
    pub performance: RawPerformance,
    /// KV-cache bytes per token (default: Llama-2-70B with GQA, 327,680).
    pub kv_bytes_per_token: Option<Positive>,
    /// Prompt-to-token instance link, Gbit/s (default 200).
    pub link_gbps: Option<Positive>,
    /// Time to first token SLO (default 1000 ms) and time between tokens SLO (default 50 ms).
    pub ttft_slo_ms: Option<Positive>,
    pub tbt_slo_ms: Option<Positive>,
    /// Time for an instance to switch between the prompt and token roles (default 10 s).
    pub switch_delay_s: Option<NonNegative>,
    /// Token sizes for workloads whose trace has no token columns.
    pub prompt_tokens: Option<RawTokens>,
    pub output_tokens: Option<RawTokens>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub sku: Option<String>,
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default = "one")]
    pub min_replicas: u32,
    #[serde(default = "ten")]
    pub max_replicas: u32,
    #[serde(default = "default_llm_delay")]
    pub scale_up_delay_s: NonNegative,
    #[serde(default)]
    pub scheduler: RawLlmScheduler,
    /// Prompt pool: most prompt tokens prefilled in one batch (default 8192).
    pub max_batch_tokens: Option<u32>,
    /// Token pool: most requests decoded in one iteration (default 64).
    pub max_batch_size: Option<u32>,
    /// Token pool: KV-cache capacity of one instance, tokens (default 1,500,000).
    pub kv_capacity_tokens: Option<u32>,
}

fn default_llm_delay() -> NonNegative {
    NonNegative(60.0)
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawLlmScheduler {
    RoundRobin,
    /// Join the shortest queue: fewest pending prompt tokens (prompt pool), least KV memory in use
    /// (token pool).
    #[default]
    Jsq,
}

/// Performance model of one instance, ms: a line per phase, or measured curves.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerformance {
    pub prefill_base_ms: Option<NonNegative>,
    pub prefill_ms_per_token: Option<NonNegative>,
    pub decode_base_ms: Option<NonNegative>,
    pub decode_ms_per_request: Option<NonNegative>,
    /// `[[prompt tokens of the batch, ms], ...]`, ascending.
    pub prefill_ms: Option<Vec<[f64; 2]>>,
    /// `[[batch size, ms per iteration], ...]`, ascending.
    pub decode_ms: Option<Vec<[f64; 2]>>,
    /// Where the curves come from (model, hardware, parallelism, data): for the reader.
    pub source: Option<String>,
}

/// A token count: `mean`, log-normal with `cv` when given, else constant.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    pub mean: Positive,
    pub cv: Option<Positive>,
}

/// A chain of `length` services, `{name}1 -> {name}2 -> ... -> {name}N`, each a copy of `service`
/// (whose `name` is the prefix), and one request type `chain` that walks it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChain {
    pub length: u32,
    pub service: RawService,
}

fn one() -> u32 {
    1
}
fn one_u64() -> u64 {
    1
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawFidelity {
    #[default]
    Request,
    Fluid,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub scrape_interval_s: Option<Seconds>,
    pub timeline_interval_s: Option<Seconds>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub max_instances: u32,
    pub skus: Vec<RawSku>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSku {
    pub name: String,
    pub cores: Positive,
    pub memory_gib: Positive,
    pub price_per_hour: NonNegative,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Required for services; for a `chain` template, the name prefix (default `s`).
    #[serde(default)]
    pub name: String,
    /// Default: the cluster's first SKU.
    pub sku: Option<String>,
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default = "one")]
    pub min_replicas: u32,
    #[serde(default = "ten")]
    pub max_replicas: u32,
    pub cpu_request_m: Positive,
    /// Default: the request.
    pub cpu_limit_m: Option<Positive>,
    #[serde(default = "default_memory")]
    pub memory_mib: Positive,
    /// Working set of an idle instance; default: half of `memory_mib`.
    pub memory_idle_mib: Option<NonNegative>,
    /// Working set added per request held; default 1 MiB.
    pub memory_per_request_mib: Option<NonNegative>,
    #[serde(default = "one")]
    pub concurrency: u32,
    #[serde(default = "default_queue")]
    pub queue_capacity: u32,
    #[serde(default = "default_delay")]
    pub scale_up_delay_s: NonNegative,
    #[serde(default)]
    pub load_balancing: RawLoadBalancing,
    pub demand: RawDemand,
    pub stateful: Option<RawStateful>,
}

fn ten() -> u32 {
    10
}
fn default_memory() -> Positive {
    Positive(128.0)
}
fn default_queue() -> u32 {
    1000
}
fn default_delay() -> NonNegative {
    NonNegative(10.0)
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawLoadBalancing {
    #[default]
    RoundRobin,
    LeastOutstanding,
    Random,
}

/// CPU demand of one visit on one full core.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawDemand {
    Constant { ms: Positive },
    Exponential { mean_ms: Positive },
    Lognormal { mean_ms: Positive, cv: Positive },
    Gamma { mean_ms: Positive, cv: Positive },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStateful {
    pub dataset_mb: NonNegative,
    pub sync_mbps: Positive,
    pub replicates_from: Option<String>,
    #[serde(default = "default_base_lag")]
    pub base_lag_ms: NonNegative,
    #[serde(default = "default_lag_per_write")]
    pub lag_ms_per_write_rps: NonNegative,
}

fn default_base_lag() -> NonNegative {
    NonNegative(1.0)
}
fn default_lag_per_write() -> NonNegative {
    NonNegative(0.05)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequestType {
    pub name: String,
    pub call: RawCall,
    /// How a load generator sends it (`export-locust`); the simulator does not read it.
    #[serde(default)]
    pub http: Option<RawHttp>,
}

/// A request type's HTTP route: method, path and form fields; `{name}` placeholders in the path
/// and the form values are filled with a value drawn from `choices[name]` per request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    #[serde(default)]
    pub choices: BTreeMap<String, Vec<String>>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCall {
    pub service: String,
    /// Overrides the service's demand for this call.
    pub demand: Option<RawDemand>,
    #[serde(default)]
    pub parallel: bool,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub calls: Vec<RawCall>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    #[serde(default)]
    pub arrivals: RawArrivals,
    /// Request-type weights; default: all types equally.
    pub mix: Option<BTreeMap<String, NonNegative>>,
    /// For `users` stages: seconds between one user's requests (Locust's wait time, mean).
    #[serde(default = "default_think")]
    pub think_time_s: Positive,
    #[serde(default)]
    pub stages: Vec<RawStage>,
    pub trace: Option<RawTrace>,
}

fn default_think() -> Positive {
    Positive(1.0)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArrivals {
    #[serde(default)]
    pub process: RawArrivalKind,
    /// Coefficient of variation of the gaps, for `gamma`.
    pub cv: Option<Positive>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawArrivalKind {
    #[default]
    Poisson,
    Deterministic,
    Gamma,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub duration_s: Seconds,
    pub users: Option<NonNegative>,
    pub rps: Option<NonNegative>,
    pub spawn_rate: Option<Positive>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    /// Relative to the scenario file's folder.
    pub file: String,
    pub format: RawTraceFormat,
    pub column: Option<String>,
    #[serde(default = "one_f")]
    pub time_scale: Positive,
    #[serde(default = "one_f")]
    pub rate_scale: Positive,
    /// Columns with each request's prompt and output token counts (LLM scenarios).
    pub prompt_tokens_column: Option<String>,
    pub output_tokens_column: Option<String>,
}

fn one_f() -> Positive {
    Positive(1.0)
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawTraceFormat {
    Requests,
    RateTable,
}
