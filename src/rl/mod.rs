//! Reinforcement learning: the environment agents train in, and (later) the agents.
//!
//! - [`mod@env`]: gymnasium-shaped `reset(seed)` / `step(action)` over any [`ClusterBackend`], a
//!   decision every `decision_interval`, domain randomisation, a vectorised wrapper, episode logs.
//! - [`observation`]: the state collector: a heterogeneous graph of services, call edges and server
//!   SKUs, plus global scalars, normalised; and its flat view for MLP agents. It counts only
//!   Active instances as serving capacity.
//! - [`action`]: the action executor: (service, node type, delta replicas, delta CPU quota),
//!   through the backend's scale commands only, with an action mask.
//! - [`load_trend`]: the optional forecast of each service's load, a minute's trend ahead.
//! - [`reward`]: the reward calculator and its terms.
//!
//! [`ClusterBackend`]: crate::backend::ClusterBackend

pub mod action;
pub mod agent;
pub mod env;
pub mod load_trend;
pub mod observation;
pub mod reward;

pub use action::{
    Action, ActionConfig, ActionMask, ActionReport, CeilingHold, DownscaleStabilizer, PeakSpan, ServiceAction, DELTAS,
};
pub use env::{Env, EnvConfig, EnvError, Randomization, SimFactory, Step, StepInfo, VecEnv};
pub use observation::{Observation, ObservationLayout};
pub use reward::{RewardConfig, RewardTerms, SlackBasis};
