//! The networks, on dfdx (the only part of the crate that knows it), and the optimiser.
//!
//! The MLP actor-critic of the gym-hpa baseline: the flat observation, zero-padded to
//! [`OBS_MAX`] features, through two tanh layers of [`HIDDEN`] units, to the logits of the joint
//! `(service, delta replicas)` action ([`MAX_SERVICES`] x 5; services beyond the application's are
//! masked), and a separate critic of the same trunk shape to the state value. The actor's trunk
//! also feeds the node-type head (logits over [`MAX_SKUS`] server types, those the scenario lacks
//! masked) and the CPU-quota head (per service, the mean and log standard deviation of a Gaussian
//! whose sample is squashed by tanh into [-1, 1]).
//!
//! Parameters live in dfdx tensors; the optimiser (Adam, with global gradient-norm clipping) is
//! written here over their flattened values, so that clipping, checkpoints and determinism stay in
//! our hands (dfdx 0.13 has no gradient clipping).

use dfdx::nn::modules::Linear;
use dfdx::prelude::*;

pub const OBS_MAX: usize = 256;
pub const HIDDEN: usize = 64;
pub const MAX_SERVICES: usize = 16;
pub const ACTIONS: usize = MAX_SERVICES * 5;
/// Server types (SKUs) the MLP's node-type head scores (graph encoders score any number).
pub const MAX_SKUS: usize = 8;

/// The device the agents' tensors live on: the CPU, or with the `cuda` build feature an NVIDIA GPU
/// (dfdx's CUDA backend; needs the CUDA toolkit to build; not built on the 2-core CI machine).
#[cfg(not(feature = "cuda"))]
pub type Dev = Cpu;
#[cfg(feature = "cuda")]
pub type Dev = dfdx::tensor::Cuda;
type Lin<const I: usize, const O: usize> = Linear<I, O, f32, Dev>;

/// A batch of padded, normalised observations.
pub type ObsBatch<T> = Tensor<(usize, Const<OBS_MAX>), f32, Dev, T>;

/// `(name, length)` of every parameter tensor of a network, in order.
pub type Shapes = Vec<(String, usize)>;

/// Access to a network's parameters as flat vectors, in a fixed order.
pub trait Params {
    fn shapes(&self) -> Shapes;
    fn get(&self) -> Vec<Vec<f32>>;
    fn set(&mut self, values: &[Vec<f32>]);
    /// The gradient of every parameter tensor, zero for those the loss did not reach (a head
    /// that is switched off).
    fn grads(&self, g: &mut Gradients<f32, Dev>) -> Vec<Vec<f32>>;
}

/// The gradient of `t` in `g`, zero when the backward pass did not reach it.
pub fn grad_or_zero<S: Shape>(g: &mut Gradients<f32, Dev>, t: &Tensor<S, f32, Dev>) -> Vec<f32> {
    // Allocating a zero gradient on the CPU fails only when memory runs out.
    g.try_alloc_for(t).expect("allocating a gradient");
    values(&g.get(t))
}

/// The values of a parameter tensor (contiguous, as built) in memory order: a copy of its
/// buffer (dfdx's `as_vec` walks the strides element by element, 15% of MLP training time when
/// the optimiser used it).
pub fn values<S: Shape>(t: &Tensor<S, f32, Dev>) -> Vec<f32> {
    let mut v = vec![0.0; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

macro_rules! params_impl {
    ($t:ty, [$($f:ident),+]) => {
        impl Params for $t {
            fn shapes(&self) -> Shapes {
                vec![$(
                    (concat!(stringify!($f), ".weight").to_string(), self.$f.weight.shape().num_elements()),
                    (concat!(stringify!($f), ".bias").to_string(), self.$f.bias.shape().num_elements()),
                )+]
            }
            fn get(&self) -> Vec<Vec<f32>> {
                vec![$(values(&self.$f.weight), values(&self.$f.bias)),+]
            }
            fn set(&mut self, values: &[Vec<f32>]) {
                let mut i = 0;
                $(
                    self.$f.weight.copy_from(&values[i]);
                    self.$f.bias.copy_from(&values[i + 1]);
                    i += 2;
                )+
                let _ = i;
            }
            fn grads(&self, g: &mut Gradients<f32, Dev>) -> Vec<Vec<f32>> {
                vec![$(grad_or_zero(g, &self.$f.weight), grad_or_zero(g, &self.$f.bias)),+]
            }
        }
    };
}

/// A batch of rows of any width.
pub type Rows<T> = Tensor<(usize, usize), f32, Dev, T>;

/// What a policy network computes for a batch of `B` observations of an application with `n`
/// services and `k` server types (the MLP pads both: `n = MAX_SERVICES`, `k = MAX_SKUS`).
/// One of the parts carries the tape of the forward pass, the others an empty one: the losses
/// built on them merge the tapes again (gradients are keyed by tensor, not by tape).
pub struct Heads<T> {
    /// `(B, n * 5)`: logits of the joint `(service, delta replicas)` action, service-major.
    pub joint: Rows<T>,
    /// `(B, k)`: logits of the node type a scale-up rents.
    pub sku: Rows<T>,
    /// `(B, n)`: per service, the mean of the quota head's Gaussian (before tanh).
    pub mu: Rows<T>,
    /// `(B, n)`: per service, its log standard deviation, in
    /// `[LOG_STD_MID - LOG_STD_HALF, LOG_STD_MID + LOG_STD_HALF]`.
    pub log_std: Rows<T>,
}

/// Which of the optional heads a forward pass computes. A head that is off comes out as zeros,
/// with nothing recorded for the backward pass (training the gym-hpa action pays nothing for the
/// heads it does not use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadsOn {
    pub node_type: bool,
    pub quota: bool,
    /// Graph encoders: a value per service node (`(B x n, 1)`, credit per service) instead of one
    /// per observation.
    pub service_values: bool,
}

/// The quota head's log standard deviation is `LOG_STD_MID + LOG_STD_HALF * tanh(raw)`: bounded
/// (a collapsing or exploding deviation stalls PPO) and smooth (a clamp has no gradient outside).
/// Between e^-2 = 0.14 and e^1 = 2.7; e^-0.5 = 0.61 at a fresh network's raw 0.
pub const LOG_STD_MID: f32 = -0.5;
pub const LOG_STD_HALF: f32 = 1.5;

pub fn squash_log_std<S: Shape, T: Tape<f32, Dev>>(raw: Tensor<S, f32, Dev, T>) -> Tensor<S, f32, Dev, T> {
    raw.tanh() * LOG_STD_HALF + LOG_STD_MID
}

/// The hidden layers' activation, `tanh(x) = 2 sigmoid(2x) - 1`: the same function through
/// `exp`, which libm computes several times faster than `tanhf` (measured: `tanhf` was 16% of
/// MLP training time).
fn tanh<S: Shape, T: Tape<f32, Dev>>(x: Tensor<S, f32, Dev, T>) -> Tensor<S, f32, Dev, T> {
    (x * 2.0).sigmoid() * 2.0 - 1.0
}

/// The first layer, `x W^T + b` over a batch of observations, recording for the backward pass only
/// what its weights need. Observations are data, so their gradient is never wanted, but dfdx's
/// matmul computes both operands' gradients: here that was a `B x HIDDEN x OBS_MAX` product, a
/// fifth of each network's backward pass, thrown away.
#[cfg(not(feature = "cuda"))]
fn input_layer<T: Tape<f32, Dev>>(
    l: &Lin<OBS_MAX, HIDDEN>,
    x: ObsBatch<T>,
) -> Tensor<(usize, Const<HIDDEN>), f32, Dev, T> {
    let (x, mut tape) = x.split_tape();
    let y = l.forward(x.clone());
    if T::OWNS_TAPE {
        let (weight, bias, phantom_y) = (l.weight.clone(), l.bias.clone(), y.clone());
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&phantom_y)?;
            let g_y = grads.get(&phantom_y);
            // dW = g_y^T x (dfdx's [out][in] layout), db = column sums of g_y.
            let g_w = g_y.clone().permute::<_, Axes2<1, 0>>().matmul(x);
            let g_b = g_y.sum::<Rank1<HIDDEN>, Axis<0>>();
            let add = |buf: &mut [f32], g: Vec<f32>| buf.iter_mut().zip(g).for_each(|(p, d)| *p += d);
            add(grads.get_or_alloc_mut(&weight)?, values(&g_w));
            add(grads.get_or_alloc_mut(&bias)?, values(&g_b));
            Ok(())
        });
    }
    y.put_tape(tape)
}

/// On the GPU, dfdx's own layer (its gradient buffers are not host memory).
#[cfg(feature = "cuda")]
fn input_layer<T: Tape<f32, Dev>>(
    l: &Lin<OBS_MAX, HIDDEN>,
    x: ObsBatch<T>,
) -> Tensor<(usize, Const<HIDDEN>), f32, Dev, T> {
    l.forward(x)
}

/// Policy network: observation -> the joint action's logits, node-type logits and quota head.
#[derive(Clone, Debug)]
pub struct Actor {
    l1: Lin<OBS_MAX, HIDDEN>,
    l2: Lin<HIDDEN, HIDDEN>,
    out: Lin<HIDDEN, ACTIONS>,
    out_sku: Lin<HIDDEN, MAX_SKUS>,
    out_mu: Lin<HIDDEN, MAX_SERVICES>,
    out_std: Lin<HIDDEN, MAX_SERVICES>,
}

/// Value network: observation -> state value.
#[derive(Clone, Debug)]
pub struct Critic {
    l1: Lin<OBS_MAX, HIDDEN>,
    l2: Lin<HIDDEN, HIDDEN>,
    out: Lin<HIDDEN, 1>,
}

params_impl!(Actor, [l1, l2, out, out_sku, out_mu, out_std]);
params_impl!(Critic, [l1, l2, out]);

impl Actor {
    /// The trunk and the joint-action layer draw their initial weights from `dev`, the node-type
    /// and quota heads from `heads_dev`: a seed then gives the trunk (and the critic built after
    /// it on `dev`) the same weights as before those heads existed.
    pub fn new(dev: &Dev, heads_dev: &Dev) -> Self {
        Actor {
            l1: dev.build_module::<dfdx::nn::builders::Linear<OBS_MAX, HIDDEN>, f32>(),
            l2: dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, HIDDEN>, f32>(),
            out: dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, ACTIONS>, f32>(),
            out_sku: heads_dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, MAX_SKUS>, f32>(),
            out_mu: heads_dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, MAX_SERVICES>, f32>(),
            out_std: heads_dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, MAX_SERVICES>, f32>(),
        }
    }

    pub fn forward<T: Tape<f32, Dev>>(&self, x: ObsBatch<T>, on: HeadsOn) -> Heads<T> {
        let b = x.shape().0;
        let dev = x.device().clone();
        let h = tanh(self.l2.forward(tanh(input_layer(&self.l1, x))));
        let (h, tape) = h.split_tape();
        let (joint, mut tape) = self.out.forward(h.clone().put_tape(tape)).split_tape();
        let zeros = |w: usize| dev.zeros_like(&(b, w));
        let sku = if on.node_type {
            let (sku, t) = self.out_sku.forward(h.clone().put_tape(tape)).split_tape();
            tape = t;
            sku.realize::<(usize, usize)>()
        } else {
            zeros(MAX_SKUS)
        };
        let (mu, log_std) = if on.quota {
            let (mu, t) = self.out_mu.forward(h.clone().put_tape(tape)).split_tape();
            let (log_std, t) = squash_log_std(self.out_std.forward(h.put_tape(t))).split_tape();
            tape = t;
            (mu.realize::<(usize, usize)>(), log_std.realize::<(usize, usize)>())
        } else {
            (zeros(MAX_SERVICES), zeros(MAX_SERVICES))
        };
        Heads {
            joint: joint.realize::<(usize, usize)>().put_tape(tape),
            sku: sku.put_tape(T::default()),
            mu: mu.put_tape(T::default()),
            log_std: log_std.put_tape(T::default()),
        }
    }
}

impl Critic {
    pub fn new(dev: &Dev) -> Self {
        Critic {
            l1: dev.build_module::<dfdx::nn::builders::Linear<OBS_MAX, HIDDEN>, f32>(),
            l2: dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, HIDDEN>, f32>(),
            out: dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, 1>, f32>(),
        }
    }

    /// A copy of this network whose tensors live on `dev`.
    pub fn on_device(&self, dev: &Dev) -> Critic {
        let mut copy = Critic {
            l1: dev.build_module::<dfdx::nn::builders::Linear<OBS_MAX, HIDDEN>, f32>(),
            l2: dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, HIDDEN>, f32>(),
            out: dev.build_module::<dfdx::nn::builders::Linear<HIDDEN, 1>, f32>(),
        };
        copy.set(&self.get());
        copy
    }

    pub fn forward<T: Tape<f32, Dev>>(&self, x: ObsBatch<T>) -> Tensor<(usize, Const<1>), f32, Dev, T> {
        self.out.forward(tanh(self.l2.forward(tanh(input_layer(&self.l1, x)))))
    }
}

/// Adam with global gradient-norm clipping, over a network's flattened parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub max_grad_norm: f64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    pub t: u64,
}

impl Adam {
    pub fn new(shapes: &[(String, usize)], lr: f64, max_grad_norm: f64) -> Self {
        Adam {
            lr,
            max_grad_norm,
            m: shapes.iter().map(|s| vec![0.0; s.1]).collect(),
            v: shapes.iter().map(|s| vec![0.0; s.1]).collect(),
            t: 0,
        }
    }

    /// One step on `net` with gradients `g`; returns the gradient norm before clipping.
    ///
    /// Moments and the update are f32 (as the parameters are), with the bias corrections folded
    /// into two per-step constants, over zipped slices (no bounds checks in the loop, which runs
    /// once per parameter per minibatch): `w -= (lr / c1) m / (sqrt(v) / sqrt(c2) + eps)`, which is
    /// `lr (m / c1) / (sqrt(v / c2) + eps)`. (In f64 with both divisions per parameter it was 15%
    /// of MLP training time.)
    pub fn step<N: Params>(&mut self, net: &mut N, g: &mut Gradients<f32, Dev>) -> f64 {
        let grads = net.grads(g);
        self.step_with(net, grads)
    }

    /// [`Self::step`] with the gradients given as flat vectors, in [`Params`] order.
    pub fn step_with<N: Params>(&mut self, net: &mut N, grads: Vec<Vec<f32>>) -> f64 {
        let norm = grads.iter().map(|p| p.iter().map(|&x| x as f64 * x as f64).sum::<f64>()).sum::<f64>().sqrt();
        let scale = if self.max_grad_norm > 0.0 && norm > self.max_grad_norm { self.max_grad_norm / norm } else { 1.0 };
        self.t += 1;
        let (b1, b2) = (0.9f64, 0.999f64);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        let step = (self.lr / c1) as f32;
        let inv_sqrt_c2 = (1.0 / c2.sqrt()) as f32;
        let (b1, b2, eps, scale) = (b1 as f32, b2 as f32, 1e-8f32, scale as f32);
        let mut params = net.get();
        for (k, p) in params.iter_mut().enumerate() {
            let (ms, vs) = (&mut self.m[k], &mut self.v[k]);
            for (((w, &g), m_k), v_k) in p.iter_mut().zip(&grads[k]).zip(ms.iter_mut()).zip(vs.iter_mut()) {
                let gj = g * scale;
                let m = b1 * *m_k + (1.0 - b1) * gj;
                let v = b2 * *v_k + (1.0 - b2) * gj * gj;
                *m_k = m;
                *v_k = v;
                *w -= step * m / (v.sqrt() * inv_sqrt_c2 + eps);
            }
        }
        net.set(&params);
        norm
    }
}

/// Running mean and variance of the discounted returns an agent's environments accumulate
/// (`normalize_returns`): rewards are divided by their standard deviation before advantages and
/// value targets are computed, so that the critic's targets stay near unit scale whatever the
/// reward's weights (the SB3 `VecNormalize` reward scaling). Welford's update.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReturnNorm {
    pub count: f64,
    pub mean: f64,
    pub m2: f64,
}

impl ReturnNorm {
    pub fn update(&mut self, x: f64) {
        self.count += 1.0;
        let d = x - self.mean;
        self.mean += d / self.count;
        self.m2 += d * (x - self.mean);
    }

    /// The standard deviation of the returns seen (1 before two are seen).
    pub fn std(&self) -> f64 {
        if self.count > 1.0 {
            (self.m2 / (self.count - 1.0)).sqrt()
        } else {
            1.0
        }
    }

    /// `reward` divided by the returns' standard deviation, clipped to [-10, 10] as SB3 clips.
    pub fn scale(&self, reward: f64) -> f64 {
        (reward / (self.std() * self.std() + 1e-8).sqrt()).clamp(-10.0, 10.0)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0.0
    }
}

/// Running mean and variance of observations (Welford), applied as `(x - mean) / sqrt(var)`
/// clipped to [-5, 5].
#[derive(Clone, Debug, PartialEq)]
pub struct ObsNorm {
    pub count: f64,
    pub mean: Vec<f64>,
    pub m2: Vec<f64>,
}

impl ObsNorm {
    pub fn new(n: usize) -> Self {
        ObsNorm { count: 0.0, mean: vec![0.0; n], m2: vec![0.0; n] }
    }

    pub fn update(&mut self, x: &[f32]) {
        self.count += 1.0;
        for (i, &v) in x.iter().enumerate().take(self.mean.len()) {
            let d = v as f64 - self.mean[i];
            self.mean[i] += d / self.count;
            self.m2[i] += d * (v as f64 - self.mean[i]);
        }
    }

    /// Normalised and padded to [`OBS_MAX`].
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; OBS_MAX];
        for (i, &v) in x.iter().enumerate().take(OBS_MAX) {
            let var = if self.count > 1.0 { self.m2[i] / (self.count - 1.0) } else { 1.0 };
            out[i] = ((v as f64 - self.mean[i]) / (var + 1e-8).sqrt()).clamp(-5.0, 5.0) as f32;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns 1, 2, 3, 4: sample variance 5/3; a reward of 2 scales to 2 / sqrt(5/3) = 1.549;
    /// a huge one clips at 10.
    #[test]
    fn return_norm_by_hand() {
        let mut r = ReturnNorm::default();
        assert_eq!(r.std(), 1.0);
        for x in [1.0, 2.0, 3.0, 4.0] {
            r.update(x);
        }
        assert!((r.mean - 2.5).abs() < 1e-12);
        assert!((r.std() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((r.scale(2.0) - 2.0 / (5.0f64 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(r.scale(1e6), 10.0);
        assert_eq!(r.scale(-1e6), -10.0);
    }

    /// Two parameter tensors as plain vectors, for driving the optimiser by hand.
    struct Plain(Vec<Vec<f32>>);

    impl Params for Plain {
        fn shapes(&self) -> Shapes {
            self.0.iter().enumerate().map(|(i, p)| (format!("p{i}"), p.len())).collect()
        }
        fn get(&self) -> Vec<Vec<f32>> {
            self.0.clone()
        }
        fn set(&mut self, values: &[Vec<f32>]) {
            self.0 = values.to_vec();
        }
        fn grads(&self, _: &mut Gradients<f32, Dev>) -> Vec<Vec<f32>> {
            self.0.iter().map(|p| vec![0.0; p.len()]).collect()
        }
    }

    #[test]
    #[cfg(not(feature = "cuda"))]
    fn the_input_layer_matches_dfdx_linear_in_values_and_weight_gradients() {
        let dev = Dev::seed_from_u64(9);
        let l: Lin<OBS_MAX, HIDDEN> = dev.build_module::<dfdx::nn::builders::Linear<OBS_MAX, HIDDEN>, f32>();
        let x: Tensor<(usize, Const<OBS_MAX>), f32, Dev> = dev.sample_normal_like(&(5, Const));
        let w: Tensor<(usize, Const<HIDDEN>), f32, Dev> = dev.sample_normal_like(&(5, Const));
        let run = |ours: bool| {
            let input = x.clone().traced(Gradients::leaky());
            let y = if ours { input_layer(&l, input) } else { l.forward(input) };
            let values = y.retaped::<NoneTape>().as_vec();
            // A nonlinearity after the layer, so the gradient reaching it differs per element.
            let grads = (tanh(y) * w.clone()).sum::<Rank0, _>().backward();
            (values, grads.get(&l.weight).as_vec(), grads.get(&l.bias).as_vec())
        };
        let (ours, theirs) = (run(true), run(false));
        for (name, a, b) in
            [("output", &ours.0, &theirs.0), ("weight", &ours.1, &theirs.1), ("bias", &ours.2, &theirs.2)]
        {
            assert_eq!(a.len(), b.len());
            assert!(b.iter().any(|v| v.abs() > 1e-3), "{name}: reached by the loss");
            for (p, q) in a.iter().zip(b) {
                assert!((p - q).abs() < 1e-5 * (1.0 + q.abs()), "{name}: {p} vs {q}");
            }
        }
    }

    #[test]
    fn adam_steps_and_clipping_by_hand() {
        let mut net = Plain(vec![vec![1.0], vec![2.0, 3.0]]);
        let mut opt = Adam::new(&net.shapes(), 0.01, 1.0);
        // Gradient (3; 4, 0), norm 5 > 1: clipped to (0.6; 0.8, 0). Adam's first step moves every
        // parameter with a gradient by lr against its sign (m / c1 = g, v / c2 = g^2); none without.
        let norm = opt.step_with(&mut net, vec![vec![3.0], vec![4.0, 0.0]]);
        assert!((norm - 5.0).abs() < 1e-12);
        let p = net.get();
        assert!((p[0][0] - 0.99).abs() < 1e-6 && (p[1][0] - 1.99).abs() < 1e-6 && p[1][1] == 3.0, "{p:?}");
        // Second step, gradient (-3; 0, 0), norm 3 > 1: clipped to -1. For the first parameter
        // m = 0.9 * 0.06 - 0.1 = -0.046, c1 = 1 - 0.9^2 = 0.19;
        // v = 0.999 * 0.00036 + 0.001 = 0.00135964, c2 = 1 - 0.999^2 = 0.001999;
        // w -= 0.01 * (m / c1) / sqrt(v / c2) = 0.01 * -0.242105 / 0.824718: +0.0029356.
        opt.step_with(&mut net, vec![vec![-3.0], vec![0.0, 0.0]]);
        let p = net.get();
        let want = 0.99 + 0.01 * (0.046 / 0.19) / (0.00135964f64 / 0.001999).sqrt();
        assert!((p[0][0] as f64 - want).abs() < 1e-6, "{} vs {want}", p[0][0]);
    }
}
