//! Health probes: how pgha learns the state of each backend.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{NodeId, NodeState, Observation};

/// Looks at one backend and says what it saw.
///
/// # Contract
///
/// * [`probe`](HealthProbe::probe) returns within `timeout`; a probe that
///   cannot get an answer in time returns
///   `Observation::Failed { reason: FailureReason::Timeout }`. (The monitor
///   also enforces this: a probe that overruns counts as failed.)
/// * It never panics on what a backend sends.
/// * Probes may keep state (a monitoring connection per node); they are
///   called concurrently for different nodes, never twice at once for the
///   same node.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// Probes `node`.
    async fn probe(&self, node: &NodeState, timeout: Duration) -> Observation;

    /// Gives the probe a way to ask for an immediate probe of a node (for
    /// example when its monitoring connection drops). Called once by the
    /// monitor before the first probe. The default ignores it.
    fn set_wake(&self, wake: mpsc::UnboundedSender<NodeId>) {
        let _ = wake;
    }

    /// The parent timelines in the history of the timeline `node` (a
    /// writable node) runs on; `None` when the probe cannot tell. Asked
    /// only when no durable term says who is primary (see
    /// [`evidence`](crate::evidence)). The default cannot tell.
    async fn timeline_ancestors(&self, node: &NodeState, timeout: Duration) -> Option<Vec<u32>> {
        let _ = (node, timeout);
        None
    }

    /// pgha is about to cut `node`'s sessions itself (a fence): drop any
    /// connection kept to it without taking its end as a failure signal.
    /// The default keeps nothing, so does nothing.
    fn release(&self, node: &NodeId) {
        let _ = node;
    }

    /// A short name for logs.
    fn name(&self) -> &str {
        "custom probe"
    }
}
