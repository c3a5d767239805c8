//! Integration tests: one binary, one module per concern.

mod agents;
mod architecture;
mod bad_input;
mod determinism;
mod fluid;
mod fresh_loads;
mod fuzz;
mod hardening;
mod held_capacity;
mod kubernetes;
mod llm;
mod newcomer;
mod pareto;
mod policies;
mod queueing;
mod reaction_limit;
mod report;
mod rl_env;
mod scenarios;
mod slurm;
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

/// Replaces a checkpoint's trailing FNV-1a checksum by the right one for its (edited) body, so a
/// test can reach the checks behind the checksum.
pub fn reseal_checkpoint(bytes: &mut [u8]) {
    if bytes.len() < 8 {
        return;
    }
    let n = bytes.len() - 8;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &bytes[..n] {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    bytes[n..].copy_from_slice(&h.to_le_bytes());
}
