//! Integration tests: one binary, one module per concern.

mod agents;
mod bad_input;
mod determinism;
mod fluid;
mod kubernetes;
mod llm;
mod policies;
mod queueing;
mod rl_env;
mod scenarios;
mod sweeps;
mod timings;

use std::path::{Path, PathBuf};

use scalesim::scenario::{parse_scenario, Scenario};

/// The project root (where `scenarios/` lives).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses scenario YAML written inline in a test.
pub fn scenario(yaml: &str) -> Scenario {
    parse_scenario(yaml, Path::new("inline-test.yaml")).unwrap_or_else(|e| panic!("test scenario invalid: {e}"))
}

/// Path of the built `scalesim` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_scalesim")
}
