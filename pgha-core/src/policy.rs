//! The failover decision plug-in point.

use crate::{Action, Event, Topology};

/// Decides what to do about an [`Event`]: the pure heart of failover.
///
/// # Contract
///
/// * `decide` does no IO and reads no clock or randomness: the same
///   topology and event always give the same actions. Time is in the event.
/// * `topology` already records the facts the event carries: an observed
///   node's failure counter, WAL positions and timeline, the coordinator's
///   permission. The policy decides what to *do* about them.
/// * It is only called while [`Topology::permission`] allows actions.
/// * Actions are applied to the model in order by
///   [`ClusterState`](crate::ClusterState), which drops actions naming an
///   unknown node, a [`Action::Promote`] whose term is not greater than the
///   current one, and a follow, fence or rejoin of an older term.
/// * Every promotion should fence the old primary and re-point the other
///   standbys: the model makes the promoted node the only primary.
///
/// # A custom policy
///
/// Wrap [`DefaultPolicy`](crate::DefaultPolicy) and veto what it decides,
/// here: never promote the disaster-recovery site automatically.
///
/// ```
/// use pgha_core::{
///     Action, ClusterState, DefaultPolicy, Event, FailoverPolicy, FailureReason, Lsn,
///     NodeState, Observation, Role, Topology,
/// };
/// use std::time::Duration;
///
/// struct NeverPromoteDr(DefaultPolicy);
///
/// impl FailoverPolicy for NeverPromoteDr {
///     fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action> {
///         let actions = self.0.decide(topology, event);
///         let promotes_dr = actions.iter().any(
///             |a| matches!(a, Action::Promote { node, .. } if node.as_str() == "dr-site"),
///         );
///         if promotes_dr {
///             let failed = topology.primary_id().cloned();
///             return vec![Action::NoPromotionCandidate { failed }];
///         }
///         actions
///     }
///
///     fn name(&self) -> &str {
///         "never-promote-dr"
///     }
/// }
///
/// let topology = Topology::new([
///     NodeState::new("main", Role::Primary, "10.0.0.1", 5432).with_lsn(Lsn(100)),
///     NodeState::new("dr-site", Role::Standby, "10.9.0.1", 5432).with_lsn(Lsn(100)),
/// ]);
/// let mut cluster = ClusterState::new(topology, NeverPromoteDr(DefaultPolicy::default()));
/// let failed = |secs| Event::Observed {
///     node: "main".into(),
///     at: Duration::from_secs(secs),
///     observation: Observation::Failed { reason: FailureReason::ConnectRefused },
/// };
/// assert_eq!(cluster.handle(failed(1)), vec![]);
/// assert_eq!(
///     cluster.handle(failed(2)),
///     vec![Action::NoPromotionCandidate { failed: Some("main".into()) }],
/// );
/// assert_eq!(cluster.snapshot().term(), 1);
/// ```
pub trait FailoverPolicy: Send + Sync {
    /// What to do about `event`, given the cluster as it now stands.
    fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action>;

    /// A short name for logs and metrics.
    fn name(&self) -> &str {
        "custom"
    }
}
