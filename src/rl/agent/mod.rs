//! RL agents: networks on dfdx, PPO and A2C training, checkpoints, and the agent as a policy.

pub mod allocator;
pub mod checkpoint;
pub mod config;
pub mod decision;
pub mod graph;
pub mod nn;
pub mod policy;
pub mod ppo;
