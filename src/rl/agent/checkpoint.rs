//! Checkpoints: networks, optimiser moments, observation normaliser and hyper-parameters in one
//! file, written atomically (temporary file, then rename).
//!
//! Layout: `SCALESIM` (8 bytes), format version (u32 LE), header length (u64 LE), the JSON header
//! (shapes, hyper-parameters, counters), the f32 payload (actor and critic parameters, then Adam's
//! first and second moments of each), the f64 normaliser (mean, then M2), and an FNV-1a checksum
//! (u64 LE) of everything before it. Loading checks each part and says what is wrong, naming the
//! file; a checkpoint never loads into a network of another shape.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::{AgentConfig, Encoder};
use super::graph::GraphNet;
use super::nn::{Actor, Adam, Critic, ObsNorm, Params, ReturnNorm, Shapes, ACTIONS, HIDDEN, OBS_MAX};
use crate::engine::fnv1a64;

/// 2: the actor has node-type and CPU-quota heads (version 1 had the joint action only).
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"SCALESIM";

#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub config: AgentConfig,
    pub flat_len: usize,
    pub steps: u64,
    pub actor: Vec<Vec<f32>>,
    pub critic: Vec<Vec<f32>>,
    pub actor_opt: Adam,
    pub critic_opt: Adam,
    pub norm: ObsNorm,
    /// The returns' running statistics (`normalize_returns`; empty otherwise).
    pub returns: ReturnNorm,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct CheckpointError {
    pub file: String,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    kind: String,
    obs_max: usize,
    hidden: usize,
    actions: usize,
    flat_len: usize,
    steps: u64,
    config: AgentConfig,
    actor: Vec<(String, usize)>,
    critic: Vec<(String, usize)>,
    lr: f64,
    max_grad_norm: f64,
    actor_t: u64,
    critic_t: u64,
    norm_count: f64,
    /// Only with `normalize_returns`, so other checkpoints are byte-identical to earlier ones:
    /// count, mean and M2 as the bits of their f64s (JSON's decimal text does not always read
    /// back to the same last bit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    returns: Option<[u64; 3]>,
}

/// The largest observation size a checkpoint may declare (far above any application's).
const MAX_FLAT_LEN: usize = 1 << 20;

/// Which part of a checkpoint, if any, holds a non-finite number.
fn non_finite(groups: &[&Vec<Vec<f32>>; 6], norm: &[f64]) -> Option<&'static str> {
    const NAMES: [&str; 6] = [
        "the actor",
        "the critic",
        "the actor's optimiser",
        "the actor's optimiser",
        "the critic's optimiser",
        "the critic's optimiser",
    ];
    for (g, name) in groups.iter().zip(NAMES) {
        if g.iter().any(|t| t.iter().any(|x| !x.is_finite())) {
            return Some(name);
        }
    }
    norm.iter().any(|x| !x.is_finite()).then_some("the observation normaliser")
}

/// The shapes this build's networks have for `encoder`.
fn expected(encoder: Encoder) -> (Shapes, Shapes) {
    let dev = super::nn::Dev::default();
    match super::ppo::graph_kind(encoder) {
        Some(kind) => (GraphNet::new(&dev, kind).shapes(), Vec::new()),
        None => (Actor::new(&dev, &dev).shapes(), Critic::new(&dev).shapes()),
    }
}

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically. A network with NaN or infinite weights is
    /// refused: it could only act at random, and loading it again would fail.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let err = |e: std::io::Error| CheckpointError { file: path.display().to_string(), message: e.to_string() };
        let groups =
            [&self.actor, &self.critic, &self.actor_opt.m, &self.actor_opt.v, &self.critic_opt.m, &self.critic_opt.v];
        let norm: Vec<f64> = self.norm.mean.iter().chain(&self.norm.m2).copied().collect();
        if let Some(what) = non_finite(&groups, &norm) {
            return Err(CheckpointError {
                file: path.display().to_string(),
                message: format!(
                    "not written: {what} holds NaN or infinite values (the training diverged; lower learning_rate \
                     or max_grad_norm)"
                ),
            });
        }
        let (actor_shapes, critic_shapes) = expected(self.config.encoder);
        let header = Header {
            kind: "scalesim-agent".into(),
            obs_max: OBS_MAX,
            hidden: HIDDEN,
            actions: ACTIONS,
            flat_len: self.flat_len,
            steps: self.steps,
            config: self.config.clone(),
            actor: actor_shapes,
            critic: critic_shapes,
            lr: self.actor_opt.lr,
            max_grad_norm: self.actor_opt.max_grad_norm,
            actor_t: self.actor_opt.t,
            critic_t: self.critic_opt.t,
            norm_count: self.norm.count,
            returns: (!self.returns.is_empty())
                .then(|| [self.returns.count.to_bits(), self.returns.mean.to_bits(), self.returns.m2.to_bits()]),
        };
        let json = serde_json::to_vec(&header)
            .map_err(|e| CheckpointError { file: path.display().to_string(), message: e.to_string() })?;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for group in
            [&self.actor, &self.critic, &self.actor_opt.m, &self.actor_opt.v, &self.critic_opt.m, &self.critic_opt.v]
        {
            for t in group.iter() {
                for x in t {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        for x in self.norm.mean.iter().chain(&self.norm.m2) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let sum = fnv1a64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        let tmp = path.with_extension("ckpt.tmp");
        std::fs::write(&tmp, &out).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let file = path.display().to_string();
        let fail = |m: String| CheckpointError { file: file.clone(), message: m };
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.len() < 28 || &bytes[..8] != MAGIC {
            return Err(fail("not a scalesim checkpoint (no SCALESIM header)".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != CHECKPOINT_FORMAT_VERSION {
            return Err(fail(format!(
                "checkpoint format version {version}; this build reads {CHECKPOINT_FORMAT_VERSION}"
            )));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        if fnv1a64(body) != u64::from_le_bytes(tail.try_into().expect("8 bytes")) {
            return Err(fail("checksum mismatch: the file is truncated or corrupt".into()));
        }
        // Every length read from the file is checked against the file's own size before use.
        let hlen = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        if hlen > (body.len() - 20) as u64 {
            return Err(fail(format!(
                "header length {hlen} is more than the {} bytes the file holds: truncated or corrupt",
                body.len() - 20
            )));
        }
        let hlen = hlen as usize;
        let header: Header =
            serde_json::from_slice(&bytes[20..20 + hlen]).map_err(|e| fail(format!("unreadable header: {e}")))?;
        header.config.validate().map_err(|e| fail(format!("stored agent config: `{}`: {}", e.field, e.message)))?;
        if header.flat_len == 0 || header.flat_len > MAX_FLAT_LEN {
            return Err(fail(format!("observation size {} is outside 1..={MAX_FLAT_LEN}", header.flat_len)));
        }
        let r = header.returns.map_or_else(ReturnNorm::default, |[c, m, m2]| ReturnNorm {
            count: f64::from_bits(c),
            mean: f64::from_bits(m),
            m2: f64::from_bits(m2),
        });
        for (v, f) in [
            (header.lr, "lr"),
            (header.max_grad_norm, "max_grad_norm"),
            (header.norm_count, "norm_count"),
            (r.count, "returns.count"),
            (r.m2, "returns.m2"),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(fail(format!("header field `{f}` is {v}; expected a finite number >= 0")));
            }
        }
        let (actor_shapes, critic_shapes) = expected(header.config.encoder);
        if !r.mean.is_finite() {
            return Err(fail(format!("header field `returns.mean` is {}; expected a finite number", r.mean)));
        }
        if header.kind != "scalesim-agent"
            || header.obs_max != OBS_MAX
            || header.hidden != HIDDEN
            || header.actions != ACTIONS
            || header.actor != actor_shapes
            || header.critic != critic_shapes
        {
            return Err(fail(format!(
                "network shape mismatch for encoder `{}`: the checkpoint has obs {} hidden {} actions {} and {} parameter tensors, this build {} / {} / {} and {}",
                header.config.encoder,
                header.obs_max,
                header.hidden,
                header.actions,
                header.actor.len() + header.critic.len(),
                OBS_MAX,
                HIDDEN,
                ACTIONS,
                actor_shapes.len() + critic_shapes.len()
            )));
        }
        let mut pos = 20 + hlen;
        let mut take_f32 = |shapes: &[(String, usize)]| -> Result<Vec<Vec<f32>>, CheckpointError> {
            let mut out = Vec::new();
            for (_, n) in shapes {
                let end = pos + n * 4;
                if end > body.len() {
                    return Err(fail("payload shorter than its header says: truncated".into()));
                }
                out.push(
                    body[pos..end]
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                        .collect(),
                );
                pos = end;
            }
            Ok(out)
        };
        let actor = take_f32(&actor_shapes)?;
        let critic = take_f32(&critic_shapes)?;
        let am = take_f32(&actor_shapes)?;
        let av = take_f32(&actor_shapes)?;
        let cm = take_f32(&critic_shapes)?;
        let cv = take_f32(&critic_shapes)?;
        let need = OBS_MAX * 2 * 8;
        if pos + need != body.len() {
            return Err(fail(format!(
                "payload has {} bytes after the parameters, expected {need}",
                body.len() as i64 - pos as i64
            )));
        }
        let floats: Vec<f64> =
            body[pos..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        if let Some(what) = non_finite(&[&actor, &critic, &am, &av, &cm, &cv], &floats) {
            return Err(fail(format!("{what} holds NaN or infinite values: the training that wrote it diverged")));
        }
        let norm =
            ObsNorm { count: header.norm_count, mean: floats[..OBS_MAX].to_vec(), m2: floats[OBS_MAX..].to_vec() };
        Ok(Checkpoint {
            config: header.config,
            flat_len: header.flat_len,
            steps: header.steps,
            actor,
            critic,
            actor_opt: Adam { lr: header.lr, max_grad_norm: header.max_grad_norm, m: am, v: av, t: header.actor_t },
            critic_opt: Adam { lr: header.lr, max_grad_norm: header.max_grad_norm, m: cm, v: cv, t: header.critic_t },
            norm,
            returns: r,
        })
    }
}
