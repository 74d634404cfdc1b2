//! Each node's administrative state: the part of a node's status that is a
//! decision (a detach, a quarantine, a rejoin, maintenance) rather than an
//! observation. Decisions are recorded in the [`TermLedger`](crate::TermLedger)
//! with the term, so that they survive a restart and, in a group of pgha
//! nodes, every member routes by the leader's decisions — a standby the
//! leader detached is read from by no member's proxy.
//!
//! `Up` and `Down` are not here: they follow from what each member's own
//! probes see (and a fence, which the term already records).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{NodeId, NodeState, QuarantineReason, Status, Topology};

/// A node's administrative state; a node not named in [`AdminStates`] is
/// attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    /// Out of routing after a failure: attached again by the policy once
    /// healthy and caught up.
    Detached,
    /// Detached by an operator: out of routing until an operator attaches
    /// it.
    DetachedByOperator,
    /// A stale or unfenceable primary: routed nowhere until it rejoins.
    Quarantined(QuarantineReason),
    /// Being rewound and re-pointed at the primary (after a quarantine, if
    /// the reason is given).
    Rejoining(Option<QuarantineReason>),
    /// Taken out by an operator.
    Maintenance,
}

/// Every node that is not simply attached, by name.
pub type AdminStates = BTreeMap<NodeId, AdminState>;

impl AdminState {
    /// `node`'s administrative state; `None` while it is attached (up or
    /// down).
    pub fn of(node: &NodeState) -> Option<AdminState> {
        match node.status {
            Status::Up | Status::Down => None,
            Status::Detached if node.detached_by_operator => Some(AdminState::DetachedByOperator),
            Status::Detached => Some(AdminState::Detached),
            Status::Quarantined => Some(AdminState::Quarantined(
                node.quarantined_for
                    .unwrap_or(QuarantineReason::StalePrimary),
            )),
            Status::Rejoining => Some(AdminState::Rejoining(node.quarantined_for)),
            Status::Maintenance => Some(AdminState::Maintenance),
        }
    }

    /// The status a node in this state has.
    pub fn status(self) -> Status {
        match self {
            AdminState::Detached | AdminState::DetachedByOperator => Status::Detached,
            AdminState::Quarantined(_) => Status::Quarantined,
            AdminState::Rejoining(_) => Status::Rejoining,
            AdminState::Maintenance => Status::Maintenance,
        }
    }

    fn reason(self) -> Option<QuarantineReason> {
        match self {
            AdminState::Quarantined(reason) => Some(reason),
            AdminState::Rejoining(reason) => reason,
            AdminState::Detached | AdminState::DetachedByOperator | AdminState::Maintenance => None,
        }
    }
}

/// The administrative states of `topology`'s nodes.
///
/// ```
/// use pgha_core::{admin_states, AdminState, NodeState, Role, Status, Topology};
///
/// let mut b = NodeState::new("b", Role::Standby, "10.0.0.2", 5432);
/// b.status = Status::Detached;
/// let topology = Topology::new([NodeState::new("a", Role::Primary, "10.0.0.1", 5432), b]);
/// let states = admin_states(&topology);
/// assert_eq!(states.len(), 1);
/// assert_eq!(states.get(&"b".into()), Some(&AdminState::Detached));
/// ```
pub fn admin_states(topology: &Topology) -> AdminStates {
    topology
        .nodes()
        .iter()
        .filter_map(|n| AdminState::of(n).map(|s| (n.id.clone(), s)))
        .collect()
}

/// Gives `topology`'s nodes the recorded `states`: a named node takes its
/// state, a node not named that has one is attached again (up; its own
/// probes decide from there). Names of nodes this topology does not have
/// are ignored. Returns whether anything changed.
pub(crate) fn apply_admin_states(topology: &mut Topology, states: &AdminStates) -> bool {
    let mut changed = false;
    for node in topology.nodes_mut() {
        let want = states.get(&node.id).copied();
        if AdminState::of(node) == want {
            continue;
        }
        changed = true;
        match want {
            Some(state) => {
                node.status = state.status();
                node.quarantined_for = state.reason();
                node.detached_by_operator = state == AdminState::DetachedByOperator;
            }
            None => {
                node.status = Status::Up;
                node.quarantined_for = None;
                node.detached_by_operator = false;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn topology() -> Topology {
        Topology::new([
            NodeState::new("a", Role::Primary, "h", 1),
            NodeState::new("b", Role::Standby, "h", 2),
            NodeState::new("c", Role::Standby, "h", 3),
        ])
    }

    #[test]
    fn recorded_states_are_taken_on_and_missing_ones_attach() {
        let mut t = topology();
        let states = AdminStates::from([
            (
                NodeId::from("b"),
                AdminState::Quarantined(QuarantineReason::FenceFailed),
            ),
            (NodeId::from("c"), AdminState::Maintenance),
            (NodeId::from("gone"), AdminState::Detached),
        ]);
        assert!(apply_admin_states(&mut t, &states));
        let b = t.node(&"b".into()).cloned();
        assert_eq!(b.as_ref().map(|n| n.status), Some(Status::Quarantined));
        assert_eq!(
            b.and_then(|n| n.quarantined_for),
            Some(QuarantineReason::FenceFailed)
        );
        assert_eq!(admin_states(&t).len(), 2, "unknown names are ignored");
        assert!(!apply_admin_states(&mut t, &states), "nothing new");

        assert!(apply_admin_states(&mut t, &AdminStates::new()));
        assert!(t.nodes().iter().all(|n| n.status == Status::Up));
        assert!(t.nodes().iter().all(|n| n.quarantined_for.is_none()));
    }

    #[test]
    fn down_is_an_observation_not_a_decision() {
        let mut t = topology();
        if let Some(n) = t.node_mut(&"b".into()) {
            n.status = Status::Down;
        }
        assert!(admin_states(&t).is_empty());
        assert!(!apply_admin_states(&mut t, &AdminStates::new()));
        assert_eq!(t.node(&"b".into()).map(|n| n.status), Some(Status::Down));
    }

    #[test]
    fn states_read_back_from_json() {
        let states = AdminStates::from([
            (NodeId::from("b"), AdminState::Rejoining(None)),
            (
                NodeId::from("c"),
                AdminState::Quarantined(QuarantineReason::StalePrimary),
            ),
        ]);
        let json = serde_json::to_string(&states).unwrap_or_default();
        let back: Result<AdminStates, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(states));
    }
}
