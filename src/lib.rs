//! scalesim: a deterministic discrete-event cluster simulator for autoscaling research.
//!
//! A run takes a [`scenario::Scenario`] (application graph, server SKUs, workload, SLO), an
//! [`autoscale::Autoscaler`] and a seed, and produces a timeline, an action log and a summary. See
//! `ARCHITECTURE.md` for the map of modules and the rules that cross them.

pub mod app;
pub mod autoscale;
pub mod backend;
pub mod cluster;
pub mod engine;
pub mod experiment;
pub mod metrics;
pub mod report;
pub mod rl;
pub mod scaling;
pub mod scenario;
pub mod sim;
pub mod text;
pub mod workload;
