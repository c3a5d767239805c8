//! LLM serving with phase splitting (Splitwise-style): a prompt pool runs prefill, a token pool
//! runs decode, and a request's KV cache moves from its prompt instance to a token instance.
//!
//! Performance model of one instance (defaults for Llama-2-70B on one 8xA100 server, taken from the
//! shapes published by Splitwise (Patel et al., ISCA 2024) and Vidur; approximations, not
//! measurements):
//! - a prefill batch of `P` prompt tokens takes `prefill_base_ms + prefill_ms_per_token * P`
//!   (25 ms + 0.12 ms/token: a 1,500-token prompt in about 205 ms);
//! - a decode iteration over `B` requests takes `decode_base_ms + decode_ms_per_request * B`
//!   (28 ms + 0.35 ms/request: 28 ms alone, 50 ms at a batch of 64), producing one token for each;
//! - the KV cache of a request's `C` prompt tokens moves in `C * kv_bytes_per_token * 8 / link`
//!   (327,680 bytes/token, 200 Gbit/s: 2,048 tokens in 27 ms);
//! - a token instance holds at most `kv_capacity_tokens` of KV cache; a request is admitted to its
//!   batch only when its whole final size (prompt + output tokens) fits, so memory never exceeds
//!   the capacity (1.5 M tokens: 500 GB of HBM left beside the weights).

use crate::engine::SimTime;

/// How a pool picks an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlmScheduler {
    RoundRobin,
    /// Fewest pending prompt tokens (prompt pool); least KV memory in use or waiting (token pool).
    ShortestQueue,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolSpec {
    pub scheduler: LlmScheduler,
    pub max_batch_tokens: u32,
    pub max_batch_size: u32,
    pub kv_capacity_tokens: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Performance {
    pub prefill_base_ms: f64,
    pub prefill_ms_per_token: f64,
    pub decode_base_ms: f64,
    pub decode_ms_per_request: f64,
}

impl Performance {
    pub fn prefill(&self, tokens: u64) -> SimTime {
        SimTime::from_secs_f64((self.prefill_base_ms + self.prefill_ms_per_token * tokens as f64) / 1000.0)
    }

    pub fn decode_iteration(&self, batch: usize) -> SimTime {
        SimTime::from_secs_f64((self.decode_base_ms + self.decode_ms_per_request * batch as f64) / 1000.0)
    }
}

/// Token counts for workloads without them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TokenSizes {
    Constant(f64),
    LogNormal { mean: f64, cv: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlmSpec {
    pub prompt: PoolSpec,
    pub token: PoolSpec,
    pub performance: Performance,
    pub kv_bytes_per_token: f64,
    pub link_gbps: f64,
    pub ttft_slo: SimTime,
    pub tbt_slo: SimTime,
    /// Time for an instance to switch roles (a migration between the pools).
    pub switch_delay: SimTime,
    pub prompt_tokens: TokenSizes,
    pub output_tokens: TokenSizes,
}

impl LlmSpec {
    /// Time to move the KV cache of `tokens` prompt tokens to a token instance.
    pub fn kv_transfer(&self, tokens: u32) -> SimTime {
        SimTime::from_secs_f64(tokens as f64 * self.kv_bytes_per_token * 8.0 / (self.link_gbps * 1e9))
    }
}
