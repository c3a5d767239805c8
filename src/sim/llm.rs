//! LLM serving inside the simulator: prompt (prefill) and token (decode) pools, iteration-level
//! batching, KV-cache transfer and capacity. The performance model is `app::llm`.
//!
//! A request arrives at a prompt instance (round-robin, or fewest pending prompt tokens) and waits
//! in its FIFO queue. An idle prompt instance prefills a batch: queued requests in order while their
//! prompt tokens fit `max_batch_tokens` (at least one). The batch's end is every request's first
//! token (TTFT). A request with more tokens to generate is sent to a token instance (round-robin,
//! or least KV memory in use or promised) and its KV cache moves there (`kv_transfer`). A token
//! instance admits waiting requests, in order, while the batch has room (`max_batch_size`) and the
//! request's whole final KV size fits the capacity; every decode iteration gives each running
//! request one token. A request ends with its last token.
//!
//! An instance's `outstanding` is the prompt tokens it holds (prompt pool) or the KV tokens it
//! holds, waits for or is receiving (token pool): scale-down drains the least-loaded instance,
//! which finishes its queue, batch and incoming transfers before it goes.
//!
//! SLO: a request violates it if it is dropped, its TTFT exceeds `ttft_slo`, or the mean time
//! between its tokens exceeds `tbt_slo`.

use std::collections::VecDeque;
use std::sync::Arc;

use hdrhistogram::Histogram;
use rand_distr::{Distribution, LogNormal};

use super::slab::Slab;
use super::Event;
use crate::app::llm::{LlmScheduler, LlmSpec, TokenSizes};
use crate::cluster::{InstanceId, InstanceState};
use crate::engine::{EventQueue, SimRng, SimTime};
use crate::metrics::{latency_histogram, quantile_ms, record_latency, DropKind, GroundTruth, LlmSummary, Percentiles};
use crate::scaling::ScalingManager;

pub const PROMPT: usize = 0;
pub const TOKEN: usize = 1;

#[derive(Clone, Copy, Debug)]
struct Request {
    arrived: SimTime,
    prompt_tokens: u32,
    output_tokens: u32,
    first_token: SimTime,
    last_token: SimTime,
    produced: u32,
    gap_sum_us: u64,
    token_instance: InstanceId,
    at_token_instance: SimTime,
}

impl Request {
    fn kv_tokens(&self) -> u64 {
        self.prompt_tokens as u64 + self.output_tokens as u64
    }
}

#[derive(Clone, Debug, Default)]
struct PromptInstance {
    queue: VecDeque<u32>,
    batch: Vec<u32>,
    pending_tokens: u64,
    /// A batch start is scheduled for the current instant.
    starting: bool,
}

#[derive(Clone, Debug, Default)]
struct TokenInstance {
    waiting: VecDeque<u32>,
    running: Vec<u32>,
    /// KV tokens of running requests (admitted, so reserved in full).
    kv_used: u64,
    /// KV tokens of requests waiting or still in transfer here.
    kv_promised: u64,
    iterating: bool,
}

pub struct LlmModel {
    spec: LlmSpec,
    tokens: Option<Arc<Vec<(u32, u32)>>>,
    size_rng: SimRng,
    requests: Slab<Request>,
    live: u64,
    prompt: Vec<PromptInstance>,
    token: Vec<TokenInstance>,
    rr: [usize; 2],
    ttft: Histogram<u64>,
    tbt: Histogram<u64>,
    e2e: Histogram<u64>,
    ttft_sum_us: f64,
    ttft_n: u64,
    max_kv_used: u64,
    ttft_violations: u64,
    tbt_violations: u64,
}

impl LlmModel {
    pub fn new(spec: LlmSpec, tokens: Option<Arc<Vec<(u32, u32)>>>, size_rng: SimRng) -> Self {
        LlmModel {
            spec,
            tokens,
            size_rng,
            requests: Slab::new(),
            live: 0,
            prompt: Vec::new(),
            token: Vec::new(),
            rr: [0, 0],
            ttft: latency_histogram(3),
            tbt: latency_histogram(3),
            e2e: latency_histogram(3),
            ttft_sum_us: 0.0,
            ttft_n: 0,
            max_kv_used: 0,
            ttft_violations: 0,
            tbt_violations: 0,
        }
    }

    /// Requests in the system.
    pub fn live_requests(&self) -> u64 {
        self.live
    }

    /// What instance `id`'s serving engine exports now (see [`crate::metrics::LlmPodMetrics`]).
    pub fn pod_metrics(&self, id: InstanceId, pool: usize) -> crate::metrics::LlmPodMetrics {
        let i = id as usize;
        match pool {
            PROMPT => crate::metrics::LlmPodMetrics {
                queued_prompt_tokens: self.prompt.get(i).map_or(0.0, |p| p.pending_tokens as f64),
                ..Default::default()
            },
            _ => {
                let t = self.token.get(i);
                let (max_batch, cap) =
                    (self.spec.token.max_batch_size.max(1) as f64, self.spec.token.kv_capacity_tokens.max(1) as f64);
                crate::metrics::LlmPodMetrics {
                    batch_occupancy: t.map_or(0.0, |t| t.running.len() as f64 / max_batch),
                    kv_cache_usage: t.map_or(0.0, |t| ((t.kv_used + t.kv_promised) as f64 / cap).min(1.0)),
                    queued_prompt_tokens: 0.0,
                }
            }
        }
    }

    /// Requests waiting at each pool (queued for prefill; waiting for admission to decode).
    pub fn queue_len(&self, pool: usize) -> u32 {
        match pool {
            PROMPT => self.prompt.iter().map(|p| p.queue.len() as u32).sum(),
            _ => self.token.iter().map(|t| t.waiting.len() as u32).sum(),
        }
    }

    fn ensure(&mut self, n: usize) {
        if self.prompt.len() < n {
            self.prompt.resize(n, PromptInstance::default());
            self.token.resize(n, TokenInstance::default());
        }
    }

    fn draw(&mut self, sizes: TokenSizes) -> u32 {
        let v = match sizes {
            TokenSizes::Constant(m) => m,
            TokenSizes::LogNormal { mean, cv } => {
                let s2 = (1.0 + cv * cv).ln();
                LogNormal::new(mean.ln() - s2 / 2.0, s2.sqrt()).map_or(mean, |d| d.sample(&mut self.size_rng))
            }
        };
        v.round().clamp(1.0, u32::MAX as f64) as u32
    }

    fn pick(&mut self, pool: usize, scaling: &ScalingManager) -> Option<InstanceId> {
        let list = scaling.active_instances(pool);
        if list.is_empty() {
            return None;
        }
        let sched = if pool == PROMPT { self.spec.prompt.scheduler } else { self.spec.token.scheduler };
        Some(match sched {
            LlmScheduler::RoundRobin => {
                let k = self.rr[pool] % list.len();
                self.rr[pool] = k + 1;
                list[k]
            }
            LlmScheduler::ShortestQueue => *list
                .iter()
                .min_by_key(|&&id| {
                    let i = id as usize;
                    let load = if pool == PROMPT {
                        self.prompt.get(i).map_or(0, |p| p.pending_tokens)
                    } else {
                        self.token.get(i).map_or(0, |t| t.kv_used + t.kv_promised)
                    };
                    (load, id)
                })
                .expect("non-empty"),
        })
    }

    fn set_load(&self, now: SimTime, id: InstanceId, scaling: &mut ScalingManager) {
        let i = id as usize;
        let inst = scaling.instance_mut(id);
        let load = if inst.service() == PROMPT {
            self.prompt[i].pending_tokens
        } else {
            self.token[i].kv_used + self.token[i].kv_promised
        };
        inst.outstanding = load.min(u32::MAX as u64) as u32;
        if inst.outstanding == 0 && inst.state() == InstanceState::Draining {
            scaling.finish_drain(now, id);
        }
    }

    fn set_busy(id: InstanceId, busy: bool, now: SimTime, scaling: &mut ScalingManager) {
        let inst = scaling.instance_mut(id);
        inst.integrate_cpu(now);
        inst.busy = u32::from(busy);
    }

    /// A request arrives (`row`: its trace row, for token counts).
    pub(super) fn on_arrival(
        &mut self,
        now: SimTime,
        row: Option<usize>,
        scaling: &mut ScalingManager,
        truth: &mut GroundTruth,
        queue: &mut EventQueue<Event>,
    ) {
        self.ensure(scaling.instances().len());
        let (p, o) = match (row, &self.tokens) {
            (Some(r), Some(t)) => t[r],
            _ => (self.draw(self.spec.prompt_tokens), self.draw(self.spec.output_tokens)),
        };
        truth.request_arrived(now);
        truth.visit_arrived(PROMPT, false);
        self.live += 1;
        let Some(id) = self.pick(PROMPT, scaling) else {
            truth.visit_dropped(PROMPT);
            truth.request_dropped(now, DropKind::NoActiveInstance, PROMPT);
            self.live -= 1;
            return;
        };
        let req = self.requests.insert(Request {
            arrived: now,
            prompt_tokens: p,
            output_tokens: o,
            first_token: now,
            last_token: now,
            produced: 0,
            gap_sum_us: 0,
            token_instance: u32::MAX,
            at_token_instance: now,
        });
        let st = &mut self.prompt[id as usize];
        st.queue.push_back(req);
        st.pending_tokens += p as u64;
        let idle = st.batch.is_empty() && !st.starting;
        self.set_load(now, id, scaling);
        if idle {
            // Form the batch at the end of this instant, so that requests arriving at the same
            // moment share it.
            self.prompt[id as usize].starting = true;
            queue.push(now, Event::LlmPrefillStart(id));
        }
    }

    pub(super) fn on_prefill_start(
        &mut self,
        now: SimTime,
        id: InstanceId,
        scaling: &mut ScalingManager,
        queue: &mut EventQueue<Event>,
    ) {
        self.prompt[id as usize].starting = false;
        self.start_prefill(now, id, scaling, queue);
    }

    fn start_prefill(
        &mut self,
        now: SimTime,
        id: InstanceId,
        scaling: &mut ScalingManager,
        queue: &mut EventQueue<Event>,
    ) {
        let max = self.spec.prompt.max_batch_tokens as u64;
        let st = &mut self.prompt[id as usize];
        let mut tokens = 0u64;
        while let Some(&r) = st.queue.front() {
            let t = self.requests[r].prompt_tokens as u64;
            if !st.batch.is_empty() && tokens + t > max {
                break;
            }
            st.queue.pop_front();
            st.batch.push(r);
            tokens += t;
        }
        if st.batch.is_empty() {
            return;
        }
        Self::set_busy(id, true, now, scaling);
        queue.push(now + self.spec.performance.prefill(tokens), Event::LlmPrefillDone(id));
    }

    pub(super) fn on_prefill_done(
        &mut self,
        now: SimTime,
        id: InstanceId,
        scaling: &mut ScalingManager,
        truth: &mut GroundTruth,
        queue: &mut EventQueue<Event>,
    ) {
        self.ensure(scaling.instances().len());
        Self::set_busy(id, false, now, scaling);
        let batch = std::mem::take(&mut self.prompt[id as usize].batch);
        for &r in &batch {
            let req = &mut self.requests[r];
            req.first_token = now;
            req.last_token = now;
            req.produced = 1;
            let ttft = (now - req.arrived).0;
            self.prompt[id as usize].pending_tokens -= req.prompt_tokens as u64;
            record_latency(&mut self.ttft, ttft);
            self.ttft_sum_us += ttft as f64;
            self.ttft_n += 1;
            truth.visit_completed(PROMPT, ttft);
            if self.requests[r].output_tokens <= 1 {
                self.complete(now, r, truth);
                continue;
            }
            truth.visit_arrived(TOKEN, false);
            let size = self.requests[r].kv_tokens();
            if size > self.spec.token.kv_capacity_tokens as u64 {
                truth.visit_dropped(TOKEN);
                self.drop_request(now, r, DropKind::TooLarge, truth);
                continue;
            }
            let Some(t) = self.pick(TOKEN, scaling) else {
                truth.visit_dropped(TOKEN);
                self.drop_request(now, r, DropKind::NoActiveInstance, truth);
                continue;
            };
            self.token[t as usize].kv_promised += size;
            self.requests[r].token_instance = t;
            let transfer = self.spec.kv_transfer(self.requests[r].prompt_tokens);
            queue.push(now + transfer, Event::LlmTransferDone(r));
            self.set_load(now, t, scaling);
        }
        self.prompt[id as usize].batch = batch;
        self.prompt[id as usize].batch.clear();
        self.set_load(now, id, scaling);
        if scaling.instance(id).is_live() {
            self.start_prefill(now, id, scaling, queue);
        }
    }

    pub(super) fn on_transfer_done(
        &mut self,
        now: SimTime,
        r: u32,
        scaling: &mut ScalingManager,
        queue: &mut EventQueue<Event>,
    ) {
        let t = self.requests[r].token_instance;
        self.requests[r].at_token_instance = now;
        self.token[t as usize].waiting.push_back(r);
        // Requests join a batch only between iterations (iteration-level batching).
        if !self.token[t as usize].iterating {
            self.admit(t);
            self.start_iteration(now, t, scaling, queue);
        }
    }

    /// Admits waiting requests in order while the batch has room and their KV fits.
    fn admit(&mut self, t: InstanceId) {
        let cap = self.spec.token.kv_capacity_tokens as u64;
        let max_batch = self.spec.token.max_batch_size as usize;
        let st = &mut self.token[t as usize];
        while let Some(&r) = st.waiting.front() {
            let size = self.requests[r].kv_tokens();
            if st.running.len() >= max_batch || st.kv_used + size > cap {
                break;
            }
            st.waiting.pop_front();
            st.running.push(r);
            st.kv_used += size;
            st.kv_promised -= size;
        }
        self.max_kv_used = self.max_kv_used.max(st.kv_used);
    }

    fn start_iteration(
        &mut self,
        now: SimTime,
        t: InstanceId,
        scaling: &mut ScalingManager,
        queue: &mut EventQueue<Event>,
    ) {
        let st = &mut self.token[t as usize];
        if st.running.is_empty() {
            st.iterating = false;
            return;
        }
        st.iterating = true;
        let dt = self.spec.performance.decode_iteration(st.running.len());
        Self::set_busy(t, true, now, scaling);
        queue.push(now + dt, Event::LlmIterationDone(t));
    }

    pub(super) fn on_iteration_done(
        &mut self,
        now: SimTime,
        t: InstanceId,
        scaling: &mut ScalingManager,
        truth: &mut GroundTruth,
        queue: &mut EventQueue<Event>,
    ) {
        Self::set_busy(t, false, now, scaling);
        let mut running = std::mem::take(&mut self.token[t as usize].running);
        let mut i = 0;
        while i < running.len() {
            let r = running[i];
            let req = &mut self.requests[r];
            let gap = (now - req.last_token).0;
            record_latency(&mut self.tbt, gap);
            req.gap_sum_us += gap;
            req.last_token = now;
            req.produced += 1;
            if req.produced >= req.output_tokens {
                running.swap_remove(i);
                self.token[t as usize].kv_used -= self.requests[r].kv_tokens();
                truth.visit_completed(TOKEN, (now - self.requests[r].at_token_instance).0);
                self.complete(now, r, truth);
            } else {
                i += 1;
            }
        }
        // Keep the batch in arrival order for determinism of later admissions' iteration order.
        running.sort_unstable();
        self.token[t as usize].running = running;
        self.admit(t);
        self.start_iteration(now, t, scaling, queue);
        self.set_load(now, t, scaling);
    }

    fn complete(&mut self, now: SimTime, r: u32, truth: &mut GroundTruth) {
        let req = self.requests[r];
        self.requests.remove(r);
        self.live -= 1;
        let e2e = (now - req.arrived).0;
        record_latency(&mut self.e2e, e2e);
        let ttft_ok = req.first_token - req.arrived <= self.spec.ttft_slo;
        let gaps = req.produced.saturating_sub(1) as u64;
        let tbt_ok = gaps == 0 || req.gap_sum_us / gaps <= self.spec.tbt_slo.0;
        self.ttft_violations += u64::from(!ttft_ok);
        self.tbt_violations += u64::from(!tbt_ok);
        truth.request_completed_judged(now, e2e, ttft_ok && tbt_ok);
    }

    fn drop_request(&mut self, now: SimTime, r: u32, kind: DropKind, truth: &mut GroundTruth) {
        self.requests.remove(r);
        self.live -= 1;
        truth.request_dropped(now, kind, TOKEN);
    }

    pub fn summary(&self) -> LlmSummary {
        let p = |h: &Histogram<u64>, mean: f64| Percentiles {
            mean,
            p50: quantile_ms(h, 0.5),
            p90: quantile_ms(h, 0.9),
            p99: quantile_ms(h, 0.99),
            max: quantile_ms(h, 1.0),
        };
        LlmSummary {
            ttft_ms: p(&self.ttft, if self.ttft_n > 0 { self.ttft_sum_us / self.ttft_n as f64 / 1000.0 } else { 0.0 }),
            tbt_ms: p(&self.tbt, self.tbt.mean() / 1000.0),
            e2e_ms: p(&self.e2e, self.e2e.mean() / 1000.0),
            ttft_slo_ms: self.spec.ttft_slo.as_millis_f64(),
            tbt_slo_ms: self.spec.tbt_slo.as_millis_f64(),
            ttft_violations: self.ttft_violations,
            tbt_violations: self.tbt_violations,
            max_kv_tokens_used: self.max_kv_used,
            kv_capacity_tokens: self.spec.token.kv_capacity_tokens as u64,
        }
    }
}
