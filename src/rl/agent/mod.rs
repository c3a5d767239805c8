//! RL agents: networks on dfdx, PPO and A2C training, checkpoints, and the agent as a policy.

pub mod allocator;
pub mod checkpoint;
pub mod config;
pub mod decision;
// The hand-written GAT layer reads and writes dfdx's CPU buffers; on the GPU the layer is built
// from dfdx's operations instead.
#[cfg(not(feature = "cuda"))]
pub mod gat_kernel;
pub mod graph;
pub mod nn;
pub mod policy;
pub mod ppo;
