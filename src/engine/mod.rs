//! The discrete-event engine: simulated time, the pending-event queue and seeded random streams.
//!
//! This module owns *how* time advances and *where* randomness comes from. It must never know about
//! servers, services, requests or policies: the simulator defines its own closed `Event` enum and uses
//! [`EventQueue`] as a generic container.

mod queue;
mod rng;
mod time;

pub use queue::EventQueue;
pub use rng::{fnv1a64, fnv1a64_extend, stream_seed, RngStreams, SimRng, FNV1A64_START};
pub use time::SimTime;
