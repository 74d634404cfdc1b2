//! Helpers shared by the command-list tests.
#![allow(dead_code)] // each test file uses a subset

use std::time::Duration;

use pgha_core::{
    ClusterState, Command, DefaultPolicy, Event, FailureReason, Health, Lsn, NodeId, NodeState,
    Observation, Role, Status, Topology,
};

pub const MIB: u64 = 1024 * 1024;

pub fn id(name: &str) -> NodeId {
    NodeId::new(name)
}

pub fn primary(name: &str, lsn: u64) -> NodeState {
    NodeState::new(name, Role::Primary, format!("{name}.db"), 5432).with_lsn(Lsn(lsn))
}

pub fn standby(name: &str, lsn: u64) -> NodeState {
    NodeState::new(name, Role::Standby, format!("{name}.db"), 5432).with_lsn(Lsn(lsn))
}

/// A node whose failures began at 1 s (the events here come at 3 s or
/// later, well past the minimum down time).
pub fn failing(mut node: NodeState, failures: u32) -> NodeState {
    node.consecutive_failures = failures;
    node.failing_since = (failures > 0).then_some(Duration::from_secs(1));
    node
}

/// `a` primary at 10 MiB, `b` and `c` standbys slightly behind, `c` ahead.
pub fn three_nodes() -> Vec<NodeState> {
    vec![
        primary("a", 10 * MIB),
        standby("b", 10 * MIB - 900),
        standby("c", 10 * MIB - 100),
    ]
}

pub fn cluster(nodes: Vec<NodeState>) -> ClusterState {
    ClusterState::new(Topology::new(nodes), DefaultPolicy::default())
}

pub fn failed(node: &str) -> Event {
    Event::Observed {
        node: id(node),
        at: Duration::from_secs(10),
        observation: Observation::Failed {
            reason: FailureReason::ConnectRefused,
        },
    }
}

pub fn healthy(node: &str, health: Health) -> Event {
    Event::Observed {
        node: id(node),
        at: Duration::from_secs(10),
        observation: Observation::Healthy(health),
    }
}

pub fn command(command: Command) -> Event {
    Event::Command {
        at: Duration::from_secs(10),
        command,
    }
}

/// After a failover to `b` in term 2, the old primary `a` is fenced (down).
pub fn after_failover_to_b() -> Topology {
    let mut old = primary("a", 10 * MIB);
    old.role = Role::Unknown;
    old.status = Status::Down;
    Topology::new([old, primary("b", 11 * MIB), standby("c", 11 * MIB)]).with_term(2)
}
