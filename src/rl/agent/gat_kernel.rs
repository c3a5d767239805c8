//! One GAT layer (every attention head, attention restricted to the graph's edges and self loops)
//! as a single dfdx operation on the CPU, its forward and backward written by hand.
//!
//! Why by hand: built from dfdx's operations, a layer is about fifty small tensor operations, each
//! with its own allocation and tape entry. At the sizes PPO trains on (minibatch halves of 32
//! graphs of 11 services, heads 8 wide) that bookkeeping, not arithmetic, was a third of GAT-PPO's
//! training time. Here the layer reads its input and weights once, walks only the graph's edges (a
//! masked pair's attention weight is exactly 0 in the dense formulation, so skipping it changes
//! nothing), and adds its gradients straight into dfdx's gradient buffers. The arithmetic is the
//! one `graph.rs` documents; a test holds it to the composite dfdx formulation, values and
//! gradients.
//!
//! Owns: the layer's arithmetic over a batch of graphs that share one adjacency. Must never know:
//! observations, PPO, or what the layer's input means.

// Index loops here mirror the formulas (src_i, dst_j, z_i[d]) and walk several arrays at once.
#![allow(clippy::needless_range_loop)]

use std::sync::Arc;

use dfdx::prelude::*;

use super::graph::{GatHead, GH, HD, HEADS};
use super::nn::{values, Dev};
use crate::rl::observation::EDGE_FEATURES;

/// LeakyReLU's slope below zero, as in the GAT paper.
const LEAK: f32 = 0.2;

/// Every node's neighbourhood (itself and the nodes it shares a call edge with, either direction,
/// ascending), compressed-row: node `i`'s entries are `node[start[i]..start[i + 1]]`.
#[derive(Debug, PartialEq)]
pub struct Neighbours {
    pub start: Vec<usize>,
    pub node: Vec<usize>,
}

impl Neighbours {
    /// From a dense `n x n` adjacency (non-zero = connected).
    pub fn of(adj: &[f32], n: usize) -> Neighbours {
        let mut start = vec![0];
        let mut node = Vec::new();
        for i in 0..n {
            node.extend((0..n).filter(|&j| adj[i * n + j] != 0.0));
            start.push(node.len());
        }
        Neighbours { start, node }
    }

    fn of_node(&self, i: usize) -> std::ops::Range<usize> {
        self.start[i]..self.start[i + 1]
    }
}

/// What the layer reads besides its input: the shared neighbourhoods and, per sample and
/// neighbourhood entry, the edge's features `(B, entries, EDGE_FEATURES)` (zero on self loops).
pub struct GatGraph {
    pub b: usize,
    pub n: usize,
    pub neighbours: Arc<Neighbours>,
    pub edge_features: Arc<Vec<f32>>,
}

impl GatGraph {
    /// From the dense adjacency `n x n` shared by the batch and the dense edge features of every
    /// ordered pair, per sample `(B, n, n, EDGE_FEATURES)`.
    pub fn new(b: usize, n: usize, adj: &[f32], dense_features: &[f32]) -> GatGraph {
        let neighbours = Neighbours::of(adj, n);
        let mut edge_features = Vec::with_capacity(b * neighbours.node.len() * EDGE_FEATURES);
        for s in 0..b {
            for i in 0..n {
                for &j in &neighbours.node[neighbours.of_node(i)] {
                    let at = ((s * n + i) * n + j) * EDGE_FEATURES;
                    edge_features.extend_from_slice(&dense_features[at..at + EDGE_FEATURES]);
                }
            }
        }
        GatGraph { b, n, neighbours: Arc::new(neighbours), edge_features: Arc::new(edge_features) }
    }
}

/// One head's weights (or their gradients) as plain values, dfdx's `[out][in]` layout.
#[derive(Clone)]
struct HeadValues {
    w: Vec<f32>,
    b: Vec<f32>,
    src: Vec<f32>,
    src_b: f32,
    dst: Vec<f32>,
    dst_b: f32,
    edge: Vec<f32>,
    edge_b: f32,
}

impl HeadValues {
    fn of(h: &GatHead) -> HeadValues {
        HeadValues {
            w: values(&h.w.weight),
            b: values(&h.w.bias),
            src: values(&h.src.weight),
            src_b: values(&h.src.bias)[0],
            dst: values(&h.dst.weight),
            dst_b: values(&h.dst.bias)[0],
            edge: values(&h.edge.weight),
            edge_b: values(&h.edge.bias)[0],
        }
    }

    fn zero() -> HeadValues {
        HeadValues {
            w: vec![0.0; HD * GH],
            b: vec![0.0; HD],
            src: vec![0.0; HD],
            src_b: 0.0,
            dst: vec![0.0; HD],
            dst_b: 0.0,
            edge: vec![0.0; EDGE_FEATURES],
            edge_b: 0.0,
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn leaky(e: f32) -> f32 {
    e.max(LEAK * e)
}

/// Adds `v` into a gradient buffer.
fn accumulate(buf: &mut [f32], v: &[f32]) {
    buf.iter_mut().zip(v).for_each(|(g, x)| *g += x);
}

/// The forward pass's intermediate values, kept for the backward pass.
struct Forward {
    graph_b: usize,
    graph_n: usize,
    neighbours: Arc<Neighbours>,
    edge_features: Arc<Vec<f32>>,
    weights: Vec<HeadValues>,
    /// The layer's input `(B n, GH)`.
    x: Vec<f32>,
    /// Every head's projection side by side, `(B n, GH)`; head `q` is columns `q HD..(q+1) HD`.
    z: Vec<f32>,
    /// Pre-activation attention scores `e`, `(B, HEADS, entries)`.
    score: Vec<f32>,
    /// Attention weights, `(B, HEADS, entries)`.
    alpha: Vec<f32>,
}

/// The layer: input `(B n, GH)` to every head's attention-weighted sum, concatenated `(B, n, GH)`.
pub(super) fn gat_layer<T: Tape<f32, Dev>>(
    h: Tensor<(usize, Const<GH>), f32, Dev, T>,
    heads: &[GatHead],
    graph: &GatGraph,
) -> Tensor<(usize, usize, Const<GH>), f32, Dev, T> {
    let (hv, mut tape) = h.split_tape();
    let fwd = Forward::run(values(&hv), heads, graph);
    let dev = hv.device().clone();
    let out = dev.tensor_from_vec(fwd.out(), (graph.b, graph.n, Const::<GH>));
    if T::OWNS_TAPE {
        let heads = heads.to_vec();
        let phantom_out = out.clone();
        tape.add_backward_op(move |grads| {
            let g_out = grads.get_or_alloc_mut(&phantom_out)?.to_vec();
            let (dx, dw) = fwd.backward(&g_out);
            accumulate(grads.get_or_alloc_mut(&hv)?, &dx);
            for (hd, g) in heads.iter().zip(&dw) {
                accumulate(grads.get_or_alloc_mut(&hd.w.weight)?, &g.w);
                accumulate(grads.get_or_alloc_mut(&hd.w.bias)?, &g.b);
                accumulate(grads.get_or_alloc_mut(&hd.src.weight)?, &g.src);
                accumulate(grads.get_or_alloc_mut(&hd.src.bias)?, &[g.src_b]);
                accumulate(grads.get_or_alloc_mut(&hd.dst.weight)?, &g.dst);
                accumulate(grads.get_or_alloc_mut(&hd.dst.bias)?, &[g.dst_b]);
                accumulate(grads.get_or_alloc_mut(&hd.edge.weight)?, &g.edge);
                accumulate(grads.get_or_alloc_mut(&hd.edge.bias)?, &[g.edge_b]);
            }
            Ok(())
        });
    }
    out.put_tape(tape)
}

impl Forward {
    fn run(x: Vec<f32>, heads: &[GatHead], graph: &GatGraph) -> Forward {
        assert_eq!(heads.len(), HEADS);
        let (b, n) = (graph.b, graph.n);
        let nb = &graph.neighbours;
        let entries = nb.node.len();
        let weights: Vec<HeadValues> = heads.iter().map(HeadValues::of).collect();
        // z = x W^T + bias for every head. Every head's weights transposed side by side,
        // `wt[c][q HD + o] = W_q[o][c]`, so that the inner loop runs over the 32 outputs at once
        // (vector instructions) while each output still sums its products in `dot`'s order
        // (from -0.0, input 0 first): the same bits as 32 separate dot products, several times
        // faster, since those were chains of dependent additions.
        let mut wt = [0f32; GH * GH];
        let mut bias = [0f32; GH];
        for (q, p) in weights.iter().enumerate() {
            for o in 0..HD {
                bias[q * HD + o] = p.b[o];
                for c in 0..GH {
                    wt[c * GH + q * HD + o] = p.w[o * GH + c];
                }
            }
        }
        let mut z = vec![0f32; b * n * GH];
        for (xr, zr) in x.chunks_exact(GH).zip(z.chunks_exact_mut(GH)) {
            let mut acc = [-0.0f32; GH];
            for (c, &xc) in xr.iter().enumerate() {
                let w = &wt[c * GH..(c + 1) * GH];
                acc.iter_mut().zip(w).for_each(|(a, w)| *a += w * xc);
            }
            zr.iter_mut().zip(acc.iter().zip(&bias)).for_each(|(z, (a, b))| *z = b + a);
        }
        let mut score = vec![0f32; b * HEADS * entries];
        let mut alpha = vec![0f32; b * HEADS * entries];
        let (mut src, mut dst) = (vec![0f32; n], vec![0f32; n]);
        for s in 0..b {
            let f = &graph.edge_features[s * entries * EDGE_FEATURES..(s + 1) * entries * EDGE_FEATURES];
            for (q, p) in weights.iter().enumerate() {
                let zq = |i: usize| &z[(s * n + i) * GH + q * HD..][..HD];
                for i in 0..n {
                    src[i] = p.src_b + dot(&p.src, zq(i));
                    dst[i] = p.dst_b + dot(&p.dst, zq(i));
                }
                let base = (s * HEADS + q) * entries;
                for i in 0..n {
                    // Softmax over i's neighbourhood of LeakyReLU(e_ij).
                    let mut max = f32::NEG_INFINITY;
                    for k in nb.of_node(i) {
                        let edge = p.edge_b + dot(&p.edge, &f[k * EDGE_FEATURES..(k + 1) * EDGE_FEATURES]);
                        let e = edge + src[i] + dst[nb.node[k]];
                        score[base + k] = e;
                        max = max.max(leaky(e));
                    }
                    let mut sum = 0.0;
                    for k in nb.of_node(i) {
                        let a = (leaky(score[base + k]) - max).exp();
                        alpha[base + k] = a;
                        sum += a;
                    }
                    for k in nb.of_node(i) {
                        alpha[base + k] /= sum;
                    }
                }
            }
        }
        Forward {
            graph_b: b,
            graph_n: n,
            neighbours: graph.neighbours.clone(),
            edge_features: graph.edge_features.clone(),
            weights,
            x,
            z,
            score,
            alpha,
        }
    }

    fn z_of(&self, s: usize, i: usize, q: usize) -> &[f32] {
        &self.z[(s * self.graph_n + i) * GH + q * HD..][..HD]
    }

    /// `out_i = concat_q sum_j alpha_qij z_qj`, `(B n, GH)`.
    fn out(&self) -> Vec<f32> {
        let (b, n, nb) = (self.graph_b, self.graph_n, &self.neighbours);
        let entries = nb.node.len();
        let mut out = vec![0f32; b * n * GH];
        for s in 0..b {
            for q in 0..HEADS {
                let base = (s * HEADS + q) * entries;
                for i in 0..n {
                    let o = &mut out[(s * n + i) * GH + q * HD..][..HD];
                    for k in nb.of_node(i) {
                        let a = self.alpha[base + k];
                        o.iter_mut().zip(self.z_of(s, nb.node[k], q)).for_each(|(o, z)| *o += a * z);
                    }
                }
            }
        }
        out
    }

    /// The gradients of the input `(B n, GH)` and of every head's weights, given the output's.
    fn backward(&self, g_out: &[f32]) -> (Vec<f32>, Vec<HeadValues>) {
        let (b, n, nb) = (self.graph_b, self.graph_n, &self.neighbours);
        let entries = nb.node.len();
        let mut dz = vec![0f32; b * n * GH];
        let mut dw = vec![HeadValues::zero(); HEADS];
        let (mut dsrc, mut ddst) = (vec![0f32; n], vec![0f32; n]);
        let mut dalpha = vec![0f32; n];
        for s in 0..b {
            let f = &self.edge_features[s * entries * EDGE_FEATURES..(s + 1) * entries * EDGE_FEATURES];
            for q in 0..HEADS {
                let (p, g) = (&self.weights[q], &mut dw[q]);
                let base = (s * HEADS + q) * entries;
                dsrc.fill(0.0);
                ddst.fill(0.0);
                for i in 0..n {
                    let gi = &g_out[(s * n + i) * GH + q * HD..][..HD];
                    // Through the weighted sum: d alpha_ij = g_i . z_j, d z_j += alpha_ij g_i.
                    let mut expected = 0.0;
                    for (slot, k) in nb.of_node(i).enumerate() {
                        let j = nb.node[k];
                        let a = self.alpha[base + k];
                        dalpha[slot] = dot(gi, self.z_of(s, j, q));
                        expected += a * dalpha[slot];
                        let dzj = &mut dz[(s * n + j) * GH + q * HD..][..HD];
                        dzj.iter_mut().zip(gi).for_each(|(d, g)| *d += a * g);
                    }
                    // Through the softmax and the LeakyReLU to e_ij = edge_ij + src_i + dst_j.
                    for (slot, k) in nb.of_node(i).enumerate() {
                        let dl = self.alpha[base + k] * (dalpha[slot] - expected);
                        let de = if self.score[base + k] > 0.0 { dl } else { LEAK * dl };
                        dsrc[i] += de;
                        ddst[nb.node[k]] += de;
                        g.edge_b += de;
                        let fk = &f[k * EDGE_FEATURES..(k + 1) * EDGE_FEATURES];
                        g.edge.iter_mut().zip(fk).for_each(|(d, f)| *d += de * f);
                    }
                }
                // Through src_i = a_src . z_i + c and dst_i = a_dst . z_i + c'.
                for i in 0..n {
                    g.src_b += dsrc[i];
                    g.dst_b += ddst[i];
                    let zi = self.z_of(s, i, q);
                    for d in 0..HD {
                        g.src[d] += dsrc[i] * zi[d];
                        g.dst[d] += ddst[i] * zi[d];
                    }
                    let dzi = &mut dz[(s * n + i) * GH + q * HD..][..HD];
                    for d in 0..HD {
                        dzi[d] += p.src[d] * dsrc[i] + p.dst[d] * ddst[i];
                    }
                }
            }
        }
        // Through z = x W^T + bias, in two passes whose running sums stay in registers: the input
        // gradient row by row, then each weight row's gradient over every row of the batch. Each
        // element still adds its terms in the order of one pass over rows, heads and outputs
        // (the same bits), with far fewer loads and stores than updating both in one pass.
        let mut dx = vec![0f32; b * n * GH];
        for (dzr, dxr) in dz.chunks_exact(GH).zip(dx.chunks_exact_mut(GH)) {
            let mut acc = [0f32; GH];
            for (p, dzq) in self.weights.iter().zip(dzr.chunks_exact(HD)) {
                for (o, &d) in dzq.iter().enumerate() {
                    let w = &p.w[o * GH..(o + 1) * GH];
                    acc.iter_mut().zip(w).for_each(|(a, w)| *a += d * w);
                }
            }
            dxr.copy_from_slice(&acc);
        }
        for (q, g) in dw.iter_mut().enumerate() {
            for o in 0..HD {
                let col = q * HD + o;
                let (mut gb, mut gw) = (g.b[o], [0f32; GH]);
                gw.copy_from_slice(&g.w[o * GH..(o + 1) * GH]);
                for (xr, dzr) in self.x.chunks_exact(GH).zip(dz.chunks_exact(GH)) {
                    let d = dzr[col];
                    gb += d;
                    gw.iter_mut().zip(xr).for_each(|(g, x)| *g += d * x);
                }
                g.b[o] = gb;
                g.w[o * GH..(o + 1) * GH].copy_from_slice(&gw);
            }
        }
        (dx, dw)
    }
}
