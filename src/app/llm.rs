//! LLM serving with phase splitting (Splitwise-style): a prompt pool runs prefill, a token pool
//! runs decode, and a request's KV cache moves from its prompt instance to a token instance.
//!
//! Performance model of one instance: measured curves where a scenario gives them
//! (`prefill_ms: [[tokens, ms], ...]`, `decode_ms: [[batch, ms], ...]`, linear between the points;
//! `scenarios/llm_azure_code.yaml` carries splitwise-sim's measured profile of Llama-2-70B on
//! A100-80GB with tensor parallelism 8), else a two-parameter line per phase (defaults from the
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

/// The most points a measured curve holds.
pub const MAX_CURVE_POINTS: usize = 32;

/// A measured curve, `y(x)` in ms: linear between its points, flat below the first (a batch never
/// takes less than the smallest one measured), continued along its last segment beyond the last.
/// Fixed-size, so a performance model stays `Copy`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Curve {
    xs: [f64; MAX_CURVE_POINTS],
    ys: [f64; MAX_CURVE_POINTS],
    len: usize,
}

impl Curve {
    /// From `(x, ms)` points with strictly ascending `x`, at least 2 and at most
    /// [`MAX_CURVE_POINTS`], every number finite and `>= 0`.
    pub fn new(points: &[(f64, f64)]) -> Result<Curve, String> {
        if points.len() < 2 || points.len() > MAX_CURVE_POINTS {
            return Err(format!("has {} points; a curve takes 2 to {MAX_CURVE_POINTS}", points.len()));
        }
        let mut c = Curve { xs: [0.0; MAX_CURVE_POINTS], ys: [0.0; MAX_CURVE_POINTS], len: points.len() };
        for (k, &(x, y)) in points.iter().enumerate() {
            if !(x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0) {
                return Err(format!("point {} ({x}, {y}) is not two finite numbers >= 0", k + 1));
            }
            if k > 0 && x <= c.xs[k - 1] {
                return Err(format!("point {} has x = {x}, not above the previous {}", k + 1, c.xs[k - 1]));
            }
            c.xs[k] = x;
            c.ys[k] = y;
        }
        Ok(c)
    }

    pub fn at(&self, x: f64) -> f64 {
        let (xs, ys) = (&self.xs[..self.len], &self.ys[..self.len]);
        if x <= xs[0] {
            return ys[0];
        }
        // The segment that holds x, or the last one beyond the end.
        let k = xs.partition_point(|&p| p < x).clamp(1, self.len - 1);
        let (x0, x1, y0, y1) = (xs[k - 1], xs[k], ys[k - 1], ys[k]);
        (y0 + (y1 - y0) * (x - x0) / (x1 - x0)).max(0.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Performance {
    pub prefill_base_ms: f64,
    pub prefill_ms_per_token: f64,
    pub decode_base_ms: f64,
    pub decode_ms_per_request: f64,
    /// Measured prefill time against a batch's prompt tokens (replaces the line when given).
    pub prefill_curve: Option<Curve>,
    /// Measured decode iteration time against the batch size (replaces the line when given).
    pub decode_curve: Option<Curve>,
}

impl Performance {
    /// The line model only.
    pub fn linear(
        prefill_base_ms: f64,
        prefill_ms_per_token: f64,
        decode_base_ms: f64,
        decode_ms_per_request: f64,
    ) -> Self {
        Performance {
            prefill_base_ms,
            prefill_ms_per_token,
            decode_base_ms,
            decode_ms_per_request,
            prefill_curve: None,
            decode_curve: None,
        }
    }

    /// Milliseconds to prefill a batch of `tokens` prompt tokens.
    pub fn prefill_ms(&self, tokens: u64) -> f64 {
        match &self.prefill_curve {
            Some(c) => c.at(tokens as f64),
            None => self.prefill_base_ms + self.prefill_ms_per_token * tokens as f64,
        }
    }

    /// Milliseconds of one decode iteration over `batch` requests.
    pub fn decode_ms(&self, batch: usize) -> f64 {
        match &self.decode_curve {
            Some(c) => c.at(batch as f64),
            None => self.decode_base_ms + self.decode_ms_per_request * batch as f64,
        }
    }

    pub fn prefill(&self, tokens: u64) -> SimTime {
        SimTime::from_secs_f64(self.prefill_ms(tokens) / 1000.0)
    }

    pub fn decode_iteration(&self, batch: usize) -> SimTime {
        SimTime::from_secs_f64(self.decode_ms(batch) / 1000.0)
    }
}

#[cfg(test)]
mod curve_tests {
    use super::*;

    #[test]
    fn a_curve_interpolates_holds_below_and_extends_its_last_segment() {
        let c = Curve::new(&[(128.0, 65.0), (512.0, 95.0), (1024.0, 155.0)]).unwrap();
        assert_eq!(c.at(0.0), 65.0);
        assert_eq!(c.at(128.0), 65.0);
        assert!((c.at(320.0) - 80.0).abs() < 1e-12); // halfway from 128 to 512
        assert_eq!(c.at(1024.0), 155.0);
        assert!((c.at(1536.0) - 215.0).abs() < 1e-12); // the last slope, 60 ms per 512 tokens
        assert!(Curve::new(&[(1.0, 1.0)]).unwrap_err().contains("2 to 32"));
        assert!(Curve::new(&[(2.0, 1.0), (2.0, 3.0)]).unwrap_err().contains("not above"));
        assert!(Curve::new(&[(1.0, f64::NAN), (2.0, 3.0)]).unwrap_err().contains("finite"));
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
