//! What the failover machinery decides to do.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// A data-complete verb: everything a `NodeController` needs to carry it
/// out, and everything the model needs to record it.
///
/// Some actions only change the model ([`Action::Attach`],
/// [`Action::Detach`], [`Action::Quarantine`], [`Action::Maintenance`]) or
/// only report ([`Action::RefusePromotion`],
/// [`Action::NoPromotionCandidate`]); a controller may treat them as no-ops.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Promote `node` to primary; it becomes the primary of `term`.
    Promote {
        /// The standby to promote.
        node: NodeId,
        /// The new term.
        term: u64,
    },
    /// Re-point standby `node` at `primary`.
    Follow {
        /// The standby.
        node: NodeId,
        /// Its new upstream.
        primary: NodeId,
        /// The term `primary` is primary of.
        term: u64,
    },
    /// Make sure `node` takes no writes: demote or stop it. It is no longer
    /// routed; writes of any older term on it are suspect.
    Fence {
        /// The node to fence.
        node: NodeId,
        /// The term it is fenced in.
        term: u64,
    },
    /// Take `node` out of routing.
    Detach {
        /// The node.
        node: NodeId,
    },
    /// Put `node` back into routing.
    Attach {
        /// The node.
        node: NodeId,
    },
    /// Never route to `node` until it has rejoined or an operator attaches it.
    Quarantine {
        /// The node.
        node: NodeId,
        /// Why.
        reason: QuarantineReason,
    },
    /// Probe `node` now rather than at the next period.
    Probe {
        /// The node.
        node: NodeId,
    },
    /// Rewind `node` (`pg_rewind`) and start it as a standby of `primary`.
    Rejoin {
        /// The node.
        node: NodeId,
        /// Its new upstream.
        primary: NodeId,
    },
    /// Start (`enabled`) or end maintenance of `node`.
    Maintenance {
        /// The node.
        node: NodeId,
        /// `true` to start, `false` to end.
        enabled: bool,
    },
    /// `candidate` would have been promoted but is further behind than the
    /// configured limit; it is not promoted. An alert for the operator.
    RefusePromotion {
        /// The refused standby.
        candidate: NodeId,
        /// How far behind it is.
        behind_bytes: u64,
        /// The configured maximum.
        limit: u64,
    },
    /// A primary is needed and no standby can be promoted; the cluster has
    /// no writable node until one can. An alert for the operator.
    NoPromotionCandidate {
        /// The failed primary, if there was one.
        failed: Option<NodeId>,
    },
}

impl Action {
    /// The node the action is about.
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            Action::Promote { node, .. }
            | Action::Follow { node, .. }
            | Action::Fence { node, .. }
            | Action::Detach { node }
            | Action::Attach { node }
            | Action::Quarantine { node, .. }
            | Action::Probe { node }
            | Action::Rejoin { node, .. }
            | Action::Maintenance { node, .. } => Some(node),
            Action::RefusePromotion { candidate, .. } => Some(candidate),
            Action::NoPromotionCandidate { failed } => failed.as_ref(),
        }
    }
}

/// Why a node was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QuarantineReason {
    /// It reported itself primary without being the primary of the current
    /// term.
    StalePrimary,
    /// Fencing it failed: it may still take writes.
    FenceFailed,
    /// Rejoining it failed: it needs an operator.
    RejoinFailed,
}
