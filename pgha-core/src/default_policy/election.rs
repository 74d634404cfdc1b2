//! Choosing and promoting a new primary.

use std::cmp::Reverse;

use super::DefaultPolicy;
use crate::{Action, Lsn, NodeId, NodeState, QuarantineReason, Role, Status, Topology};

/// How a candidate ranks: answering its last probe, priority, received
/// LSN, replayed LSN, then the smallest id.
type Rank<'a> = (bool, u32, Lsn, Lsn, Reverse<&'a NodeId>);

/// The standby to promote, and why better-ranked ones were not.
pub(super) struct Chosen {
    pub(super) node: NodeId,
    pub(super) refusals: Vec<Action>,
}

impl DefaultPolicy {
    /// Replace `failed` (the primary, if any) by the best candidate.
    pub(super) fn failover(&self, topology: &Topology, failed: Option<&NodeId>) -> Vec<Action> {
        match self.choose(topology, failed) {
            Ok(chosen) => {
                let mut actions = chosen.refusals;
                actions.extend(self.promotion(topology, &chosen.node, failed, false));
                actions
            }
            Err(mut actions) => {
                actions.push(Action::NoPromotionCandidate {
                    failed: failed.cloned(),
                });
                if let Some(failed) = failed {
                    if topology.node(failed).map(|n| n.status) == Some(Status::Up) {
                        actions.push(Action::Detach {
                            node: failed.clone(),
                        });
                    }
                }
                actions
            }
        }
    }

    /// The best candidate other than `exclude`, with the refusals of
    /// standbys that would have ranked above it; or, when there is no
    /// candidate, every refusal.
    pub(super) fn choose(
        &self,
        topology: &Topology,
        exclude: Option<&NodeId>,
    ) -> Result<Chosen, Vec<Action>> {
        let mut refused = Vec::new();
        let mut best: Option<Rank<'_>> = None;
        for node in topology.nodes() {
            if Some(&node.id) == exclude
                || node.role != Role::Standby
                || node.status != Status::Up
                || node.priority == 0
            {
                continue;
            }
            let received = node.received_lsn.or(node.replayed_lsn).unwrap_or(Lsn::ZERO);
            let replayed = node.replayed_lsn.unwrap_or(Lsn::ZERO);
            // A standby whose last probe failed is not yet counted down,
            // but it is the worse bet while another one answers: its
            // promotion would likely fail and cost another round.
            let answering = node.consecutive_failures == 0;
            let rank = (
                answering,
                node.priority,
                received,
                replayed,
                Reverse(&node.id),
            );
            let behind = topology.bytes_behind(&node.id).unwrap_or(u64::MAX);
            if let Some(refusal) = self.refusal(node, behind) {
                refused.push((rank, refusal));
                continue;
            }
            match &best {
                Some(b) if *b >= rank => {}
                _ => best = Some(rank),
            }
        }
        match best {
            Some(best) => Ok(Chosen {
                node: best.4 .0.clone(),
                refusals: refused
                    .into_iter()
                    .filter(|(rank, _)| *rank > best)
                    .map(|(_, refusal)| refusal)
                    .collect(),
            }),
            None => Err(refused.into_iter().map(|(_, refusal)| refusal).collect()),
        }
    }

    pub(super) fn within_limit(&self, behind: u64) -> bool {
        match self.maximum_lag_bytes {
            Some(limit) => behind <= limit,
            None => true,
        }
    }

    pub(super) fn refusal(&self, node: &NodeState, behind: u64) -> Option<Action> {
        let limit = self.maximum_lag_bytes?;
        (behind > limit).then(|| Action::RefusePromotion {
            candidate: node.id.clone(),
            behind_bytes: behind,
            limit,
        })
    }

    /// A standby is caught up with `primary`: same timeline (when both are
    /// known) and within the lag limit of its current position.
    pub(super) fn caught_up(&self, node: &NodeState, primary: &NodeState) -> bool {
        if let (Some(mine), Some(theirs)) = (node.timeline, primary.timeline) {
            if mine != theirs {
                return false;
            }
        }
        let position = node.received_lsn.or(node.replayed_lsn).unwrap_or(Lsn::ZERO);
        let target = primary.current_lsn.unwrap_or(Lsn::ZERO);
        self.within_limit(position.bytes_behind(target))
    }

    /// An operator's promotion of `node`: any priority, within the lag limit.
    pub(super) fn promote_by_hand(
        &self,
        topology: &Topology,
        node: &NodeId,
        planned: bool,
    ) -> Vec<Action> {
        let Some(state) = topology.node(node) else {
            return Vec::new();
        };
        if state.role != Role::Standby || state.status != Status::Up {
            return Vec::new();
        }
        let behind = topology.bytes_behind(node).unwrap_or(u64::MAX);
        if let Some(refusal) = self.refusal(state, behind) {
            return vec![refusal];
        }
        self.promotion(topology, node, topology.primary_id(), planned)
    }

    /// The actions making `new` the primary of the next term. `planned`
    /// (a switchover) fences the old primary first and rejoins it after.
    pub(super) fn promotion(
        &self,
        topology: &Topology,
        new: &NodeId,
        old: Option<&NodeId>,
        planned: bool,
    ) -> Vec<Action> {
        let term = topology.term() + 1;
        let mut actions = Vec::new();
        let old = old.filter(|old| *old != new);
        if let (Some(old), true) = (old, planned) {
            actions.push(Action::Fence {
                node: old.clone(),
                term,
            });
        }
        actions.push(Action::Promote {
            node: new.clone(),
            term,
        });
        for node in topology.standbys() {
            if &node.id != new && matches!(node.status, Status::Up | Status::Detached) {
                actions.push(Action::Follow {
                    node: node.id.clone(),
                    primary: new.clone(),
                    term,
                });
            }
        }
        match (old, planned) {
            (Some(old), false) => actions.push(Action::Fence {
                node: old.clone(),
                term,
            }),
            (Some(old), true) if self.auto_rejoin => actions.push(Action::Rejoin {
                node: old.clone(),
                primary: new.clone(),
            }),
            _ => {}
        }
        if self.auto_rejoin {
            for node in topology.nodes() {
                let rejoinable = node.status == Status::Quarantined
                    && node.quarantined_for != Some(QuarantineReason::RejoinFailed);
                if rejoinable && Some(&node.id) != old && &node.id != new {
                    actions.push(Action::Rejoin {
                        node: node.id.clone(),
                        primary: new.clone(),
                    });
                }
            }
        }
        actions
    }
}
