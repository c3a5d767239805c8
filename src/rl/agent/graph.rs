//! Graph encoders on dfdx: GCN and GAT over the service graph, heterogeneous (separate weights for
//! service -> service calls and for the service <-> server-type relation), with per-service action
//! heads so one trained policy runs on a graph of any size.
//!
//! A batch holds `B` observations of one application (`n` services, `k` SKUs):
//! - node encoder: `h0 = relu(X W_in)` over the 12 service features; SKU encoder
//!   `s = mean_k relu(Y W_sku_in)` over the 3 SKU features;
//! - GCN layer: `h' = relu(Â (h W_call) + s W_rel)`, with `Â = D^-1/2 (A + I) D^-1/2` over the
//!   undirected call graph;
//! - GAT layer: 4 heads; for head `q`, `z = h W_q`, `e_ij = LeakyReLU(a_src(z_i) + a_dst(z_j) +
//!   a_edge(f_ij))` over edges and self loops (others masked), `alpha = softmax_j(e)`,
//!   `h'_i = relu(concat_q(sum_j alpha_ij z_j) + s W_rel)`; edge features `f_ij` are the call
//!   edge's (rate, p95, error rate), zero on self loops;
//! - readout: `state = tanh(mean_i(h) W_n + s W_s + g W_g)`; per service, from
//!   `z_i = relu(h_i W_a + state W_b)`, the logits of the 5 replica deltas (`z_i W_out`) and the
//!   quota head's mean (`z_i w_mu`) and log standard deviation (squashed `z_i w_std`); per server
//!   type `j`, the node-type logit `relu(relu(y_j W_sku_in) W_c + state W_d) w_sku`; value from
//!   `state W_v`, or, with credit per service, a value per service from its own node's readout,
//!   `tanh(h_i W_n + s W_s + g W_g) W_v` (the same weights: no parameter is added, and a checkpoint
//!   has the same shapes either way). Every head scores nodes, so the network runs on any number
//!   of services and types.
//!
//! Two layers of either kind. Hidden width [`GH`]. On the CPU the GAT layer is one hand-written
//! operation (`gat_kernel`, walking only the edges); on the GPU, and as the tests' reference, it
//! is built from dfdx's operations (`gat_layer_ops`).

use dfdx::nn::modules::Linear;
use dfdx::prelude::*;

#[cfg(not(feature = "cuda"))]
use super::gat_kernel::{gat_layer, GatGraph};
use super::nn::{squash_log_std, Dev, Heads, HeadsOn, Params, Shapes};
use crate::rl::observation::{Observation, EDGE_FEATURES, GLOBAL_FEATURES, SERVICE_FEATURES, SKU_FEATURES};

pub const GH: usize = 32;
pub const HEADS: usize = 4;
pub const HD: usize = GH / HEADS;

type Lin<const I: usize, const O: usize> = Linear<I, O, f32, Dev>;

fn lin<const I: usize, const O: usize>(dev: &Dev) -> Lin<I, O> {
    dev.build_module::<dfdx::nn::builders::Linear<I, O>, f32>()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphKind {
    Gcn,
    Gat,
}

/// A batch of graph observations as tensors.
pub struct GraphBatch {
    pub b: usize,
    pub n: usize,
    pub k: usize,
    pub x: Tensor<(usize, Const<SERVICE_FEATURES>), f32, Dev>,
    pub y: Tensor<(usize, Const<SKU_FEATURES>), f32, Dev>,
    pub g: Tensor<(usize, Const<GLOBAL_FEATURES>), f32, Dev>,
    /// GCN: the normalised adjacency, per sample.
    pub a_hat: Tensor<(usize, usize, usize), f32, Dev>,
    /// GAT on the CPU: the neighbourhoods and edge features the hand-written layer walks.
    #[cfg(not(feature = "cuda"))]
    pub gat: GatGraph,
    /// GAT from dfdx's operations (on the GPU, and the tests' reference): 0 on edges and self
    /// loops, -1e9 elsewhere.
    #[cfg(any(test, feature = "cuda"))]
    pub mask: Tensor<(usize, usize, usize), f32, Dev>,
    /// GAT from dfdx's operations: edge features of every ordered pair (zero off the edges),
    /// `(B n n, 3)`.
    #[cfg(any(test, feature = "cuda"))]
    pub f: Tensor<(usize, Const<EDGE_FEATURES>), f32, Dev>,
}

impl GraphBatch {
    pub fn new(dev: &Dev, obs: &[&Observation]) -> GraphBatch {
        let b = obs.len();
        let n = obs[0].services.len() / SERVICE_FEATURES;
        let k = obs[0].skus.len() / SKU_FEATURES;
        let mut adj = vec![0f32; n * n];
        let mut edge_f = vec![0f32; n * n * EDGE_FEATURES];
        for i in 0..n {
            adj[i * n + i] = 1.0;
        }
        for &(from, to) in obs[0].edge_index.iter() {
            adj[from * n + to] = 1.0;
            adj[to * n + from] = 1.0;
        }
        let deg: Vec<f32> = (0..n).map(|i| adj[i * n..(i + 1) * n].iter().sum()).collect();
        let mut a_hat = Vec::with_capacity(b * n * n);
        for _ in 0..b {
            for i in 0..n {
                for j in 0..n {
                    a_hat.push(adj[i * n + j] / (deg[i] * deg[j]).sqrt());
                }
            }
        }
        // Edge features of every ordered pair, per sample (a call edge's features both ways).
        let mut f = Vec::with_capacity(b * n * n * EDGE_FEATURES);
        for o in obs {
            edge_f.iter_mut().for_each(|v| *v = 0.0);
            for (e, &(from, to)) in o.edge_index.iter().enumerate() {
                for c in 0..EDGE_FEATURES {
                    let v = o.edges[e * EDGE_FEATURES + c];
                    edge_f[(from * n + to) * EDGE_FEATURES + c] = v;
                    edge_f[(to * n + from) * EDGE_FEATURES + c] = v;
                }
            }
            f.extend_from_slice(&edge_f);
        }
        let flat = |pick: &dyn Fn(&Observation) -> &Vec<f32>| {
            obs.iter().flat_map(|o| pick(o).iter().copied()).collect::<Vec<f32>>()
        };
        GraphBatch {
            b,
            n,
            k,
            x: dev.tensor_from_vec(flat(&|o| &o.services), (b * n, Const)),
            y: dev.tensor_from_vec(flat(&|o| &o.skus), (b * k, Const)),
            g: dev.tensor_from_vec(flat(&|o| &o.global), (b, Const)),
            a_hat: dev.tensor_from_vec(a_hat, (b, n, n)),
            #[cfg(not(feature = "cuda"))]
            gat: GatGraph::new(b, n, &adj, &f),
            #[cfg(any(test, feature = "cuda"))]
            mask: dev.tensor_from_vec(
                (0..b).flat_map(|_| adj.iter().map(|&a| if a > 0.0 { 0.0 } else { -1e9 })).collect(),
                (b, n, n),
            ),
            #[cfg(any(test, feature = "cuda"))]
            f: dev.tensor_from_vec(f, (b * n * n, Const)),
        }
    }
}

/// One GAT head's weights.
#[derive(Clone, Debug)]
pub(super) struct GatHead {
    pub(super) w: Lin<GH, HD>,
    pub(super) src: Lin<HD, 1>,
    pub(super) dst: Lin<HD, 1>,
    pub(super) edge: Lin<EDGE_FEATURES, 1>,
}

/// A graph encoder with actor and value heads.
#[derive(Clone, Debug)]
pub struct GraphNet {
    pub kind: GraphKind,
    inp: Lin<SERVICE_FEATURES, GH>,
    sku_in: Lin<SKU_FEATURES, GH>,
    /// GCN: the call-relation weights of each layer (`None` for GAT).
    call1: Option<Lin<GH, GH>>,
    call2: Option<Lin<GH, GH>>,
    rel1: Lin<GH, GH>,
    rel2: Lin<GH, GH>,
    /// GAT: the attention heads of each layer (empty for GCN).
    heads1: Vec<GatHead>,
    heads2: Vec<GatHead>,
    read_n: Lin<GH, GH>,
    read_s: Lin<GH, GH>,
    read_g: Lin<GLOBAL_FEATURES, GH>,
    act_node: Lin<GH, GH>,
    act_state: Lin<GH, GH>,
    act_out: Lin<GH, 5>,
    q_mu: Lin<GH, 1>,
    q_std: Lin<GH, 1>,
    sku_node: Lin<GH, GH>,
    sku_state: Lin<GH, GH>,
    sku_out: Lin<GH, 1>,
    value: Lin<GH, 1>,
}

pub type Taped<S> = Tensor<S, f32, Dev, OwnedTape<f32, Dev>>;

/// The policy heads and the values of a batch, `(B, 1)` or per service `(B x n, 1)`
/// (service-major within each observation), on tape `T` (`NoneTape` to act, `OwnedTape` to learn).
pub type GraphOutput<T> = (Heads<T>, Tensor<(usize, Const<1>), f32, Dev, T>);

impl GraphNet {
    pub fn new(dev: &Dev, kind: GraphKind) -> GraphNet {
        let gat = kind == GraphKind::Gat;
        let heads = |dev: &Dev| -> Vec<GatHead> {
            if gat {
                (0..HEADS).map(|_| GatHead { w: lin(dev), src: lin(dev), dst: lin(dev), edge: lin(dev) }).collect()
            } else {
                Vec::new()
            }
        };
        let call = |dev: &Dev| if gat { None } else { Some(lin(dev)) };
        GraphNet {
            kind,
            inp: lin(dev),
            sku_in: lin(dev),
            call1: call(dev),
            call2: call(dev),
            rel1: lin(dev),
            rel2: lin(dev),
            heads1: heads(dev),
            heads2: heads(dev),
            read_n: lin(dev),
            read_s: lin(dev),
            read_g: lin(dev),
            act_node: lin(dev),
            act_state: lin(dev),
            act_out: lin(dev),
            // Built before the node-type and quota heads, so a seed gives the encoder and the
            // replica head the same initial weights as before those heads existed.
            value: lin(dev),
            q_mu: lin(dev),
            q_std: lin(dev),
            sku_node: lin(dev),
            sku_state: lin(dev),
            sku_out: lin(dev),
        }
    }

    /// The policy heads (per-service logits `(B, n * 5)`, service-major) and values (`(B, 1)`, or
    /// `(B x n, 1)` with `on.service_values`).
    pub fn forward<T: Tape<f32, Dev> + std::fmt::Debug>(
        &self,
        batch: &GraphBatch,
        tape: T,
        on: HeadsOn,
    ) -> GraphOutput<T> {
        let (b, n, k) = (batch.b, batch.n, batch.k);
        let h = self.inp.forward(batch.x.clone().put_tape(tape)).relu();
        let (h, tape) = h.split_tape();
        let (sku_h, tape) = self.sku_in.forward(batch.y.clone().put_tape(tape)).relu().split_tape();
        let s = sku_h.clone().put_tape(tape).reshape_like(&(b, k, Const::<GH>)).mean::<(usize, Const<GH>), Axis<1>>();
        let (s, tape) = s.split_tape();
        let mut h = h.put_tape(tape);
        let layers = [(&self.call1, &self.rel1, &self.heads1), (&self.call2, &self.rel2, &self.heads2)];
        for (call, rel, heads) in layers {
            let msg = match call {
                Some(call) => {
                    let hw = call.forward(h).reshape_like(&(b, n, Const::<GH>));
                    let (hw, tape) = hw.split_tape();
                    batch.a_hat.clone().put_tape(tape).matmul(hw)
                }
                #[cfg(not(feature = "cuda"))]
                None => gat_layer(h, heads, &batch.gat),
                #[cfg(feature = "cuda")]
                None => gat_layer_ops(h, heads, batch),
            };
            let (msg, tape) = msg.split_tape();
            let r = rel.forward(s.clone().put_tape(tape));
            let r = r.broadcast_like::<_, Axis<1>>(&(b, n, Const::<GH>));
            h = (r + msg).relu().reshape_like(&(b * n, Const::<GH>));
        }
        // Readout.
        let (hv, tape) = h.split_tape();
        let mean_h = hv.clone().put_tape(tape).reshape_like(&(b, n, Const::<GH>)).mean::<(usize, Const<GH>), Axis<1>>();
        let a = self.read_n.forward(mean_h);
        let (a, tape) = a.split_tape();
        let c = self.read_s.forward(s.put_tape(tape));
        let (c, tape) = c.split_tape();
        let (d, tape) = self.read_g.forward(batch.g.clone().put_tape(tape)).split_tape();
        let state = (d.clone().put_tape(tape) + a + c.clone()).tanh();
        let (state, tape) = state.split_tape();
        let (value, tape) = if on.service_values {
            // Each node's own readout: the graph's mean replaced by the node's embedding.
            let (own, tape) = self.read_n.forward(hv.clone().put_tape(tape)).split_tape();
            let ctx = (d.put_tape(tape) + c)
                .broadcast_like::<_, Axis<1>>(&(b, n, Const::<GH>))
                .reshape_like(&(b * n, Const::<GH>));
            self.value.forward((ctx + own).tanh()).split_tape()
        } else {
            self.value.forward(state.clone().put_tape(tape)).split_tape()
        };
        let ctx = self
            .act_state
            .forward(state.clone().put_tape(tape))
            .broadcast_like::<_, Axis<1>>(&(b, n, Const::<GH>))
            .reshape_like(&(b * n, Const::<GH>));
        let (ctx, tape) = ctx.split_tape();
        let node = self.act_node.forward(hv.put_tape(tape));
        let (z, tape) = (node + ctx).relu().split_tape();
        let (joint, mut tape) = self.act_out.forward(z.clone().put_tape(tape)).reshape_like(&(b, n * 5)).split_tape();
        let zeros = |w: usize| batch.x.device().zeros_like(&(b, w));
        let (mu, log_std) = if on.quota {
            let (mu, t) = self.q_mu.forward(z.clone().put_tape(tape)).reshape_like(&(b, n)).split_tape();
            let (log_std, t) = squash_log_std(self.q_std.forward(z.put_tape(t))).reshape_like(&(b, n)).split_tape();
            tape = t;
            (mu, log_std)
        } else {
            (zeros(n), zeros(n))
        };
        let sku = if on.node_type {
            let sku_ctx = self
                .sku_state
                .forward(state.put_tape(tape))
                .broadcast_like::<_, Axis<1>>(&(b, k, Const::<GH>))
                .reshape_like(&(b * k, Const::<GH>));
            let (sku_ctx, t) = sku_ctx.split_tape();
            let sku = self.sku_out.forward((self.sku_node.forward(sku_h.put_tape(t)) + sku_ctx).relu());
            let (sku, t) = sku.reshape_like(&(b, k)).split_tape();
            tape = t;
            sku
        } else {
            zeros(k)
        };
        // Give the value the whole tape; the heads keep theirs through the shared gradients.
        let fresh = T::default;
        let heads = Heads {
            joint: joint.put_tape(fresh()),
            sku: sku.put_tape(fresh()),
            mu: mu.put_tape(fresh()),
            log_std: log_std.put_tape(fresh()),
        };
        (heads, value.put_tape(tape))
    }

    /// A copy of this network whose tensors live on `dev`.
    pub fn on_device(&self, dev: &Dev) -> GraphNet {
        let mut copy = GraphNet::new(dev, self.kind);
        copy.set(&self.get());
        copy
    }
}

/// The GAT layer from dfdx's operations, dense over every pair with closed pairs masked: what
/// runs on the GPU, and the reference the tests hold the CPU's hand-written layer
/// ([`gat_layer`]) to.
#[cfg(any(test, feature = "cuda"))]
fn gat_layer_ops<T: Tape<f32, Dev> + std::fmt::Debug>(
    h: Tensor<(usize, Const<GH>), f32, Dev, T>,
    heads: &[GatHead],
    batch: &GraphBatch,
) -> Tensor<(usize, usize, Const<GH>), f32, Dev, T> {
    let (b, n) = (batch.b, batch.n);
    let (hv, mut tape) = h.split_tape();
    let mut outs: Vec<Tensor<(usize, usize, Const<HD>), f32, Dev>> = Vec::new();
    for head in heads {
        let z = head.w.forward(hv.clone().put_tape(tape)); // (B n, HD)
        let (z, t) = z.split_tape();
        let src =
            head.src.forward(z.clone().put_tape(t)).reshape_like(&(b, n)).broadcast_like::<_, Axis<2>>(&(b, n, n));
        let (src, t) = src.split_tape();
        let dst =
            head.dst.forward(z.clone().put_tape(t)).reshape_like(&(b, n)).broadcast_like::<_, Axis<1>>(&(b, n, n));
        let (dst, t) = dst.split_tape();
        let edge = head.edge.forward(batch.f.clone().put_tape(t)).reshape_like(&(b, n, n));
        let e = edge + src + dst;
        let alpha = (e.prelu(0.2) + batch.mask.clone()).softmax::<Axis<2>>();
        let zr = z.reshape_like(&(b, n, Const::<HD>));
        let out = alpha.matmul(zr); // (B, n, HD)
        let (out, t) = out.split_tape();
        outs.push(out);
        tape = t;
    }
    let mut it = outs.into_iter();
    let first = it.next().expect("HEADS >= 1").put_tape(tape);
    let cat = it.fold(first.realize::<(usize, usize, usize)>(), |acc, o| {
        (acc, o.realize::<(usize, usize, usize)>()).concat_along(Axis::<2>)
    });
    cat.realize::<(usize, usize, Const<GH>)>()
}

impl GraphNet {
    fn visit(&self, f: &mut dyn FnMut(&str, &dyn ParamTensor)) {
        macro_rules! one {
            ($name:expr, $l:expr) => {
                f(&format!("{}.weight", $name), &$l.weight);
                f(&format!("{}.bias", $name), &$l.bias);
            };
        }
        one!("inp", self.inp);
        one!("sku_in", self.sku_in);
        if let Some(c) = &self.call1 {
            one!("call1", c);
        }
        if let Some(c) = &self.call2 {
            one!("call2", c);
        }
        one!("rel1", self.rel1);
        one!("rel2", self.rel2);
        for (layer, hs) in [("heads1", &self.heads1), ("heads2", &self.heads2)] {
            for (q, hd) in hs.iter().enumerate() {
                one!(format!("{layer}.{q}.w"), hd.w);
                one!(format!("{layer}.{q}.src"), hd.src);
                one!(format!("{layer}.{q}.dst"), hd.dst);
                one!(format!("{layer}.{q}.edge"), hd.edge);
            }
        }
        one!("read_n", self.read_n);
        one!("read_s", self.read_s);
        one!("read_g", self.read_g);
        one!("act_node", self.act_node);
        one!("act_state", self.act_state);
        one!("act_out", self.act_out);
        one!("q_mu", self.q_mu);
        one!("q_std", self.q_std);
        one!("sku_node", self.sku_node);
        one!("sku_state", self.sku_state);
        one!("sku_out", self.sku_out);
        one!("value", self.value);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut dyn ParamTensor)) {
        macro_rules! one {
            ($l:expr) => {
                f(&mut $l.weight);
                f(&mut $l.bias);
            };
        }
        one!(self.inp);
        one!(self.sku_in);
        if let Some(c) = &mut self.call1 {
            one!(c);
        }
        if let Some(c) = &mut self.call2 {
            one!(c);
        }
        one!(self.rel1);
        one!(self.rel2);
        for hs in [&mut self.heads1, &mut self.heads2] {
            for hd in hs.iter_mut() {
                one!(hd.w);
                one!(hd.src);
                one!(hd.dst);
                one!(hd.edge);
            }
        }
        one!(self.read_n);
        one!(self.read_s);
        one!(self.read_g);
        one!(self.act_node);
        one!(self.act_state);
        one!(self.act_out);
        one!(self.q_mu);
        one!(self.q_std);
        one!(self.sku_node);
        one!(self.sku_state);
        one!(self.sku_out);
        one!(self.value);
    }
}

/// A parameter tensor of any shape, as flat values.
pub trait ParamTensor {
    fn values(&self) -> Vec<f32>;
    fn set_values(&mut self, v: &[f32]);
    fn grad(&self, g: &mut Gradients<f32, Dev>) -> Vec<f32>;
}

impl<S: Shape> ParamTensor for Tensor<S, f32, Dev> {
    fn values(&self) -> Vec<f32> {
        super::nn::values(self)
    }
    fn set_values(&mut self, v: &[f32]) {
        self.copy_from(v);
    }
    fn grad(&self, g: &mut Gradients<f32, Dev>) -> Vec<f32> {
        super::nn::grad_or_zero(g, self)
    }
}

impl Params for GraphNet {
    fn shapes(&self) -> Shapes {
        let mut v = Vec::new();
        self.visit(&mut |name, t| v.push((name.to_string(), t.values().len())));
        v
    }
    fn get(&self) -> Vec<Vec<f32>> {
        let mut v = Vec::new();
        self.visit(&mut |_, t| v.push(t.values()));
        v
    }
    fn set(&mut self, values: &[Vec<f32>]) {
        let mut i = 0;
        self.visit_mut(&mut |t| {
            t.set_values(&values[i]);
            i += 1;
        });
    }
    fn grads(&self, g: &mut Gradients<f32, Dev>) -> Vec<Vec<f32>> {
        let mut v = Vec::new();
        self.visit(&mut |_, t| v.push(t.grad(g)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: HeadsOn = HeadsOn { node_type: true, quota: true, service_values: false };

    fn obs(services: Vec<[f32; SERVICE_FEATURES]>, edges: Vec<((usize, usize), [f32; EDGE_FEATURES])>) -> Observation {
        Observation {
            services: services.iter().flatten().copied().collect(),
            edges: edges.iter().flat_map(|e| e.1).collect(),
            edge_index: edges.iter().map(|e| e.0).collect::<Vec<_>>().into(),
            // Two server types, so the node-type head has something to tell apart.
            skus: vec![0.5, 0.25, 1.0, 0.2, 0.6, 0.4],
            global: vec![0.3, 0.1, 0.2],
            time_s: 0.0,
        }
    }

    fn features(seed: f32) -> [f32; SERVICE_FEATURES] {
        let mut f = [0.0; SERVICE_FEATURES];
        for (i, v) in f.iter_mut().enumerate() {
            *v = ((seed * 7.0 + i as f32 * 3.0) % 10.0) / 10.0;
        }
        f
    }

    #[test]
    fn gcn_propagation_matrix_by_hand() {
        // Path 0 - 1 - 2 with self loops: degrees 2, 3, 2.
        // A_hat = D^-1/2 (A + I) D^-1/2: [0][0] = 1/2, [0][1] = 1/sqrt(6), [0][2] = 0,
        // [1][1] = 1/3, [1][2] = 1/sqrt(6), [2][2] = 1/2.
        let o = obs(
            vec![features(1.0), features(2.0), features(3.0)],
            vec![((0, 1), [0.1, 0.2, 0.0]), ((1, 2), [0.3, 0.1, 0.0])],
        );
        let batch = GraphBatch::new(&Dev::default(), &[&o]);
        let a = batch.a_hat.as_vec();
        let s6 = 1.0 / 6f32.sqrt();
        let want = [0.5, s6, 0.0, s6, 1.0 / 3.0, s6, 0.0, s6, 0.5];
        for (g, w) in a.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{a:?}");
        }
        // GAT mask: edges and self loops open, 0 <-> 2 closed.
        let m = batch.mask.as_vec();
        assert_eq!((m[0], m[1], m[2]), (0.0, 0.0, -1e9));
    }

    #[test]
    fn per_service_scores_follow_a_renumbering() {
        for kind in [GraphKind::Gcn, GraphKind::Gat] {
            let dev = Dev::seed_from_u64(4);
            let net = GraphNet::new(&dev, kind);
            let f = [features(1.0), features(2.0), features(3.0)];
            let e01 = [0.4, 0.2, 0.1];
            let e12 = [0.7, 0.5, 0.0];
            let a = obs(f.to_vec(), vec![((0, 1), e01), ((1, 2), e12)]);
            // Renumber: old 0 -> new 2, old 1 -> new 0, old 2 -> new 1.
            let p = [2usize, 0, 1];
            let mut g = [[0.0; SERVICE_FEATURES]; 3];
            for i in 0..3 {
                g[p[i]] = f[i];
            }
            let b = obs(g.to_vec(), vec![((p[0], p[1]), e01), ((p[1], p[2]), e12)]);
            let (ha, va) = net.forward(&GraphBatch::new(&dev, &[&a]), OwnedTape::default(), ALL);
            let (hb, vb) = net.forward(&GraphBatch::new(&dev, &[&b]), OwnedTape::default(), ALL);
            let (la, lb) = (ha.joint.as_vec(), hb.joint.as_vec());
            let (ma, mb) = (ha.mu.as_vec(), hb.mu.as_vec());
            let (sa, sb) = (ha.log_std.as_vec(), hb.log_std.as_vec());
            for i in 0..3 {
                for d in 0..5 {
                    assert!((la[i * 5 + d] - lb[p[i] * 5 + d]).abs() < 1e-5, "{kind:?}: service {i} delta {d}");
                }
                assert!((ma[i] - mb[p[i]]).abs() < 1e-5, "{kind:?}: quota mean of service {i}");
                assert!((sa[i] - sb[p[i]]).abs() < 1e-5, "{kind:?}: quota deviation of service {i}");
            }
            for (x, y) in ha.sku.as_vec().iter().zip(hb.sku.as_vec()) {
                assert!((x - y).abs() < 1e-5, "{kind:?}: node-type logits do not depend on service numbering");
            }
            assert!((va.as_vec()[0] - vb.as_vec()[0]).abs() < 1e-5, "{kind:?}: the value is permutation invariant");
        }
    }

    #[test]
    #[cfg(not(feature = "cuda"))]
    fn the_hand_written_gat_layer_matches_dfdx_operations_in_values_and_gradients() {
        // Two samples of a 4-node graph (0 - 1 - 2 plus 3 - 1; 0 and 2, 0 and 3, 2 and 3 are not
        // connected), random input and weights, and a loss that weights every output differently:
        // the layer's output and the gradients of its input and of every head's weights must agree
        // with dfdx's composite, dense, masked formulation.
        let dev = Dev::seed_from_u64(5);
        let net = GraphNet::new(&dev, GraphKind::Gat);
        let edges = |scale: f32| {
            vec![((0, 1), [0.4 * scale, 0.2, 0.1]), ((1, 2), [0.7, 0.5 * scale, 0.0]), ((3, 1), [0.1, 0.9, scale])]
        };
        let a = obs(vec![features(1.0), features(2.0), features(3.0), features(4.0)], edges(1.0));
        let b = obs(vec![features(5.0), features(6.0), features(7.0), features(8.0)], edges(0.3));
        let batch = GraphBatch::new(&dev, &[&a, &b]);
        let h: Tensor<(usize, Const<GH>), f32, Dev> = dev.sample_normal_like(&(8, Const));
        let weights: Tensor<(usize, usize, Const<GH>), f32, Dev> = dev.sample_normal_like(&(2, 4, Const));
        let run = |hand_written: bool| {
            let input = h.clone().leaky_trace();
            let out = if hand_written {
                gat_layer(input, &net.heads1, &batch.gat)
            } else {
                gat_layer_ops(input, &net.heads1, &batch)
            };
            let values = out.retaped::<NoneTape>().as_vec();
            let grads = (out * weights.clone()).sum::<Rank0, _>().backward();
            let mut all = vec![("input".to_string(), grads.get(&h).as_vec())];
            for (q, hd) in net.heads1.iter().enumerate() {
                for (part, lin) in [("src", &hd.src), ("dst", &hd.dst)] {
                    all.push((format!("head {q} {part} weight"), grads.get(&lin.weight).as_vec()));
                    all.push((format!("head {q} {part} bias"), grads.get(&lin.bias).as_vec()));
                }
                all.push((format!("head {q} w weight"), grads.get(&hd.w.weight).as_vec()));
                all.push((format!("head {q} w bias"), grads.get(&hd.w.bias).as_vec()));
                all.push((format!("head {q} edge weight"), grads.get(&hd.edge.weight).as_vec()));
                all.push((format!("head {q} edge bias"), grads.get(&hd.edge.bias).as_vec()));
            }
            (values, all)
        };
        let (got, got_grads) = run(true);
        let (want, want_grads) = run(false);
        assert_eq!(got.len(), 2 * 4 * GH);
        for (x, y) in got.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5, "output {x} vs {y}");
        }
        for ((name, g), (_, w)) in got_grads.iter().zip(&want_grads) {
            assert_eq!(g.len(), w.len(), "{name}");
            assert!(w.iter().any(|v| v.abs() > 1e-3), "{name}: the loss reaches it");
            for (x, y) in g.iter().zip(w) {
                assert!((x - y).abs() < 1e-4 * (1.0 + y.abs()), "{name}: {g:?} vs {w:?}");
            }
        }
    }

    #[test]
    fn gcn_and_gat_outputs_match_an_independent_implementation_on_three_nodes() {
        // A 3-node path with edge features; every output of the dfdx network against the plain
        // loop implementation in `reference` (f64), for both encoders.
        let o = obs(
            vec![features(1.0), features(2.0), features(3.0)],
            vec![((0, 1), [0.4, 0.2, 0.1]), ((1, 2), [0.7, 0.5, 0.0])],
        );
        for kind in [GraphKind::Gcn, GraphKind::Gat] {
            let dev = Dev::seed_from_u64(11);
            let net = GraphNet::new(&dev, kind);
            let (h, v) = net.forward(&GraphBatch::new(&dev, &[&o]), OwnedTape::default(), ALL);
            let r = reference::Ref::new(&net).forward(kind, &o);
            for (part, got, want, len) in [
                ("logits", h.joint.as_vec(), &r.logits, 15),
                ("node-type logits", h.sku.as_vec(), &r.sku, 2),
                ("quota means", h.mu.as_vec(), &r.mu, 3),
                ("quota log deviations", h.log_std.as_vec(), &r.log_std, 3),
            ] {
                assert_eq!(got.len(), len, "{kind:?}: {part}");
                for (a, b) in got.iter().zip(want) {
                    assert!((*a as f64 - b).abs() < 1e-4, "{kind:?}: {part} {got:?} vs {want:?}");
                }
            }
            assert!((v.as_vec()[0] as f64 - r.value).abs() < 1e-4, "{kind:?}: value {} vs {}", v.as_vec()[0], r.value);
        }
    }
}

/// A plain, independent implementation of [`GraphNet::forward`] for one observation (f64, loops,
/// no dfdx), the oracle the tests hold the dfdx network to.
// Index loops here mirror the formulas (A[i][j], z[j][d]) so the oracle reads like the math.
#[cfg(test)]
#[allow(clippy::needless_range_loop)]
pub(crate) mod reference {
    use std::collections::HashMap;

    use super::*;
    use crate::rl::agent::nn::{LOG_STD_HALF, LOG_STD_MID};

    pub struct Ref {
        p: HashMap<String, Vec<f32>>,
    }

    /// The reference's outputs: per-service logits `[n * 5]`, node-type logits `[k]`, the quota
    /// head's `[n]` means and log deviations, and the value.
    pub struct RefOut {
        pub logits: Vec<f64>,
        pub sku: Vec<f64>,
        pub mu: Vec<f64>,
        pub log_std: Vec<f64>,
        pub value: f64,
    }

    fn relu(v: Vec<f64>) -> Vec<f64> {
        v.into_iter().map(|x| x.max(0.0)).collect()
    }

    fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }

    impl Ref {
        pub fn new(net: &GraphNet) -> Ref {
            Ref { p: net.shapes().into_iter().map(|(n, _)| n).zip(net.get()).collect() }
        }

        /// `x W^T + b` of the linear layer `name` (dfdx stores `W` as `[out][in]`).
        fn lin(&self, name: &str, x: &[f64]) -> Vec<f64> {
            let w = &self.p[&format!("{name}.weight")];
            let b = &self.p[&format!("{name}.bias")];
            let (o, i) = (b.len(), x.len());
            (0..o).map(|r| b[r] as f64 + (0..i).map(|c| w[r * i + c] as f64 * x[c]).sum::<f64>()).collect()
        }

        /// Every head's output for one observation.
        pub fn forward(&self, kind: GraphKind, o: &Observation) -> RefOut {
            let n = o.services.len() / SERVICE_FEATURES;
            let k = o.skus.len() / SKU_FEATURES;
            let row =
                |v: &[f32], i: usize, w: usize| v[i * w..(i + 1) * w].iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let mut adj = vec![vec![false; n]; n];
            let mut feat = vec![vec![vec![0.0; EDGE_FEATURES]; n]; n];
            for i in 0..n {
                adj[i][i] = true;
            }
            for (e, &(a, b)) in o.edge_index.iter().enumerate() {
                adj[a][b] = true;
                adj[b][a] = true;
                let f = row(&o.edges, e, EDGE_FEATURES);
                feat[a][b] = f.clone();
                feat[b][a] = f;
            }
            let mut h: Vec<Vec<f64>> =
                (0..n).map(|i| relu(self.lin("inp", &row(&o.services, i, SERVICE_FEATURES)))).collect();
            let mut s = vec![0.0; GH];
            let sku_h: Vec<Vec<f64>> =
                (0..k).map(|j| relu(self.lin("sku_in", &row(&o.skus, j, SKU_FEATURES)))).collect();
            for e in &sku_h {
                for d in 0..GH {
                    s[d] += e[d] / k as f64;
                }
            }
            let deg: Vec<f64> = (0..n).map(|i| adj[i].iter().filter(|&&x| x).count() as f64).collect();
            for layer in 1..=2 {
                let r = self.lin(&format!("rel{layer}"), &s);
                let msg: Vec<Vec<f64>> = match kind {
                    GraphKind::Gcn => {
                        let hw: Vec<Vec<f64>> = h.iter().map(|x| self.lin(&format!("call{layer}"), x)).collect();
                        (0..n)
                            .map(|i| {
                                let mut m = vec![0.0; GH];
                                for j in (0..n).filter(|&j| adj[i][j]) {
                                    let a = 1.0 / (deg[i] * deg[j]).sqrt();
                                    for d in 0..GH {
                                        m[d] += a * hw[j][d];
                                    }
                                }
                                m
                            })
                            .collect()
                    }
                    GraphKind::Gat => {
                        let mut out = vec![Vec::with_capacity(GH); n];
                        for q in 0..HEADS {
                            let name = |part: &str| format!("heads{layer}.{q}.{part}");
                            let z: Vec<Vec<f64>> = h.iter().map(|x| self.lin(&name("w"), x)).collect();
                            let src: Vec<f64> = z.iter().map(|x| self.lin(&name("src"), x)[0]).collect();
                            let dst: Vec<f64> = z.iter().map(|x| self.lin(&name("dst"), x)[0]).collect();
                            for i in 0..n {
                                let e: Vec<Option<f64>> = (0..n)
                                    .map(|j| {
                                        adj[i][j].then(|| {
                                            let v = src[i] + dst[j] + self.lin(&name("edge"), &feat[i][j])[0];
                                            v.max(0.2 * v)
                                        })
                                    })
                                    .collect();
                                let mx = e.iter().flatten().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                                let z_sum: f64 = e.iter().flatten().map(|v| (v - mx).exp()).sum();
                                for d in 0..HD {
                                    let v: f64 =
                                        (0..n).filter_map(|j| e[j].map(|ej| (ej - mx).exp() / z_sum * z[j][d])).sum();
                                    out[i].push(v);
                                }
                            }
                        }
                        out
                    }
                };
                h = msg.iter().map(|m| relu(add(m, &r))).collect();
            }
            let mut mean_h = vec![0.0; GH];
            for x in &h {
                for d in 0..GH {
                    mean_h[d] += x[d] / n as f64;
                }
            }
            let g: Vec<f64> = o.global.iter().map(|&x| x as f64).collect();
            let state: Vec<f64> =
                add(&add(&self.lin("read_n", &mean_h), &self.lin("read_s", &s)), &self.lin("read_g", &g))
                    .into_iter()
                    .map(f64::tanh)
                    .collect();
            let value = self.lin("value", &state)[0];
            let ctx = self.lin("act_state", &state);
            let z: Vec<Vec<f64>> = h.iter().map(|x| relu(add(&self.lin("act_node", x), &ctx))).collect();
            let logits = z.iter().flat_map(|z| self.lin("act_out", z)).collect();
            let mu = z.iter().map(|z| self.lin("q_mu", z)[0]).collect();
            let squash = |raw: f64| LOG_STD_MID as f64 + LOG_STD_HALF as f64 * raw.tanh();
            let log_std = z.iter().map(|z| squash(self.lin("q_std", z)[0])).collect();
            let sku_ctx = self.lin("sku_state", &state);
            let sku =
                sku_h.iter().map(|y| self.lin("sku_out", &relu(add(&self.lin("sku_node", y), &sku_ctx)))[0]).collect();
            RefOut { logits, sku, mu, log_std, value }
        }
    }
}
