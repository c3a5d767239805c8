//! What the ScalingManager reports: lifecycle history, readable events and refusals.

use std::fmt;

use crate::cluster::{InstanceId, InstanceState, ServerId};
use crate::engine::SimTime;

/// One lifecycle transition; the run's accounting (instance-seconds, cost) is computed from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusChange {
    pub time: SimTime,
    pub instance: InstanceId,
    pub service: usize,
    /// `None` for a new instance.
    pub from: Option<InstanceState>,
    pub to: InstanceState,
}

/// Why an action was not carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    MaxReplicas {
        service: String,
        max: u32,
    },
    MinReplicas {
        service: String,
        min: u32,
    },
    ClusterFull {
        service: String,
        max: u32,
    },
    SkuTooSmall {
        service: String,
        sku: String,
    },
    NoSuchSku {
        service: String,
        sku: usize,
    },
    NotScalable {
        instance: InstanceId,
        state: &'static str,
    },
    /// A real backend's guardrail: the service is not in the scenario's allowlist.
    NotAllowed {
        service: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MaxReplicas { service, max } => {
                write!(f, "blocked: {service} at max_replicas {max}")
            }
            Refusal::MinReplicas { service, min } => {
                write!(f, "blocked: {service} at min_replicas {min}")
            }
            Refusal::ClusterFull { service, max } => {
                write!(f, "blocked: cluster maximum {max} reached (scaling {service})")
            }
            Refusal::SkuTooSmall { service, sku } => {
                write!(f, "blocked: a {service} instance does not fit SKU {sku}")
            }
            Refusal::NoSuchSku { service, sku } => {
                write!(f, "blocked: no SKU #{sku} for {service}")
            }
            Refusal::NotScalable { instance, state } => {
                write!(f, "blocked: instance {instance} is {state}")
            }
            Refusal::NotAllowed { service } => {
                write!(f, "blocked: {service} is not in the backend's allowlist")
            }
        }
    }
}

/// A readable scaling event, for `--log-events`.
#[derive(Clone, Debug, PartialEq)]
pub enum ScalingEvent {
    Added {
        time: SimTime,
        service: String,
        instance: InstanceId,
        server: ServerId,
        sku: String,
    },
    Active {
        time: SimTime,
        service: String,
        instance: InstanceId,
    },
    Draining {
        time: SimTime,
        service: String,
        instance: InstanceId,
    },
    Cancelled {
        time: SimTime,
        service: String,
        instance: InstanceId,
    },
    /// Pods of a scale-up left Pending: the cluster has no room for them yet (Kubernetes'
    /// FailedScheduling); they start when room frees.
    Pending {
        time: SimTime,
        service: String,
        pods: u32,
    },
    /// Pending pods of `service` deleted by a scale-down before they were placed.
    PendingCancelled {
        time: SimTime,
        service: String,
        pods: u32,
    },
    Removed {
        time: SimTime,
        service: String,
        instance: InstanceId,
        server: ServerId,
        server_removed: bool,
    },
    Refused {
        time: SimTime,
        reason: Refusal,
    },
}

impl ScalingEvent {
    pub fn time(&self) -> SimTime {
        match self {
            ScalingEvent::Added { time, .. }
            | ScalingEvent::Active { time, .. }
            | ScalingEvent::Draining { time, .. }
            | ScalingEvent::Cancelled { time, .. }
            | ScalingEvent::Pending { time, .. }
            | ScalingEvent::PendingCancelled { time, .. }
            | ScalingEvent::Removed { time, .. }
            | ScalingEvent::Refused { time, .. } => *time,
        }
    }
}

impl fmt::Display for ScalingEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:>10.3}s] ", self.time().as_secs_f64())?;
        match self {
            ScalingEvent::Added { service, instance, server, sku, .. } => {
                write!(f, "added {service} instance {instance} on server {server} ({sku})")
            }
            ScalingEvent::Active { service, instance, .. } => write!(f, "{service} instance {instance} is active"),
            ScalingEvent::Draining { service, instance, .. } => write!(f, "draining {service} instance {instance}"),
            ScalingEvent::Cancelled { service, instance, .. } => {
                write!(f, "cancelled starting {service} instance {instance}")
            }
            ScalingEvent::Pending { service, pods, .. } => {
                write!(f, "{pods} {service} pod(s) Pending: the cluster is at its maximum")
            }
            ScalingEvent::PendingCancelled { service, pods, .. } => {
                write!(f, "deleted {pods} Pending {service} pod(s)")
            }
            ScalingEvent::Removed { service, instance, server, server_removed, .. } => {
                write!(f, "removed {service} instance {instance}")?;
                if *server_removed {
                    write!(f, " and its server {server}")?;
                }
                Ok(())
            }
            ScalingEvent::Refused { reason, .. } => write!(f, "{reason}"),
        }
    }
}
