//! Scenarios: the YAML a user writes (`raw`), and the validated [`Scenario`] the simulator runs.
//!
//! Loading goes file -> [`raw::RawScenario`] (serde mirrors the YAML, unknown fields refused) ->
//! [`Scenario`] (names resolved to indices, every value checked). Every error names the file, the
//! line where it can be found, and the field.

mod error;
pub mod raw;
mod resolve;
mod yaml;

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
}

/// How the scenario runs on real backends.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendsConfig {
    /// The local process cluster's time compression: scenario seconds per wall second; CPU
    /// demands are divided by it too, so utilisations are unchanged.
    pub local_time_compression: f64,
}

impl Default for BackendsConfig {
    fn default() -> Self {
        BackendsConfig { local_time_compression: 1.0 }
    }
}
