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

/// Sets the process up for training, once, before the first agent is built: dfdx spreads each
/// small matrix product over rayon's threads, and for networks this size the hand-offs cost more
/// than they save (measured: 14% of training time in thread switches), so its pool gets one thread
/// (the update uses two threads of its own, `ppo::Agent::update`); and freed memory is kept for
/// reuse ([`allocator::keep_freed_memory`]).
pub fn prepare_process_for_training() {
    let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    allocator::keep_freed_memory();
}
