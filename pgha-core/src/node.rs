//! One backend node as the cluster model sees it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::FailureReason;
use crate::{Lsn, QuarantineReason};

/// The name of a backend node, unique in a cluster (`"node0"`, `"dr-site"`).
///
/// Names, not numbers: they appear in logs, metrics and operator commands.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// A node id from its name.
    pub fn new(name: impl Into<String>) -> Self {
        NodeId(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(name: &str) -> Self {
        NodeId::new(name)
    }
}

impl From<String> for NodeId {
    fn from(name: String) -> Self {
        NodeId(name)
    }
}

/// What the cluster model intends a node to be.
///
/// This is pgha's decision, not the node's claim: a stale primary that says
/// it is not in recovery is still not [`Role::Primary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Takes writes (only while it is the primary of the current term).
    Primary,
    /// Replays WAL from the primary.
    Standby,
    /// Fenced out or never classified: never routed.
    Unknown,
}

/// Whether a node is in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Healthy and routed to.
    Up,
    /// Confirmed failed, or fenced (demoted or stopped).
    Down,
    /// Taken out of routing after a failure (the policy attaches it again
    /// once healthy and caught up) or by an operator (until an operator
    /// attaches it: [`NodeState::detached_by_operator`]).
    Detached,
    /// Reported itself primary without being the primary of the current
    /// term; never routed until it has rejoined.
    Quarantined,
    /// Being rewound and re-pointed at the primary.
    Rejoining,
    /// Taken out by an operator; its observations are recorded but the
    /// policy does not act on them.
    Maintenance,
}

/// Everything the model knows about one node.
///
/// The observation fields (`timeline` to `lag_time`) hold the last healthy
/// observation; they are not cleared by failures, so a dead primary's last
/// known WAL position is still there when choosing its successor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node's name.
    pub id: NodeId,
    /// Host name or address PostgreSQL listens on.
    pub host: String,
    /// PostgreSQL's port.
    pub port: u16,
    /// What the model intends the node to be.
    pub role: Role,
    /// Whether it is in service.
    pub status: Status,
    /// Relative share of load-balanced reads.
    pub weight: u32,
    /// Candidate priority for promotion; higher wins, 0 = never promote
    /// automatically.
    pub priority: u32,
    /// The primary this node is meant to follow, when it is a standby.
    pub upstream: Option<NodeId>,
    /// Why the node was last quarantined, while it is quarantined or
    /// rejoining after a quarantine.
    pub quarantined_for: Option<QuarantineReason>,
    /// Detached by an operator: it stays out of routing, healthy or not,
    /// until an operator attaches it. (A node detached after a failure
    /// comes back by itself once it is healthy and caught up.)
    #[serde(default)]
    pub detached_by_operator: bool,
    /// The term in which pgha last fenced this node and the fence was not
    /// reported as failed. A stale primary is fenced once per term; the
    /// probe's view of the fence (`Health::read_only`) decides whether it
    /// must be fenced again.
    pub fenced_in: Option<u64>,
    /// Failed observations since the last healthy one.
    pub consecutive_failures: u32,
    /// Why the last observation failed, while `consecutive_failures > 0`.
    pub last_failure: Option<FailureReason>,
    /// When the current run of failed observations began (`None` while
    /// healthy).
    pub failing_since: Option<Duration>,
    /// When (monitor's logical clock) the node was last observed at all.
    pub last_observed_at: Option<Duration>,
    /// Whether the node said it was in recovery (a standby), last time.
    pub in_recovery: Option<bool>,
    /// The node's timeline.
    pub timeline: Option<u32>,
    /// A primary's current WAL write position (`pg_current_wal_lsn()`).
    pub current_lsn: Option<Lsn>,
    /// A standby's last received WAL position.
    pub received_lsn: Option<Lsn>,
    /// A standby's last replayed WAL position.
    pub replayed_lsn: Option<Lsn>,
    /// Replication lag in bytes, as reported by the probe.
    pub lag_bytes: Option<u64>,
    /// Replication lag in time, as reported by the probe.
    pub lag_time: Option<Duration>,
}

impl NodeState {
    /// A node that is up, with no observation yet, weight 1 and priority 1.
    pub fn new(id: impl Into<NodeId>, role: Role, host: impl Into<String>, port: u16) -> Self {
        NodeState {
            id: id.into(),
            host: host.into(),
            port,
            role,
            status: Status::Up,
            weight: 1,
            priority: 1,
            upstream: None,
            quarantined_for: None,
            detached_by_operator: false,
            fenced_in: None,
            consecutive_failures: 0,
            last_failure: None,
            failing_since: None,
            last_observed_at: None,
            in_recovery: None,
            timeline: None,
            current_lsn: None,
            received_lsn: None,
            replayed_lsn: None,
            lag_bytes: None,
            lag_time: None,
        }
    }

    /// The same node with another promotion priority.
    pub fn with_priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// The same node with another load-balancing weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The same node with another status.
    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// The same node with a known WAL position: `current_lsn` for a primary,
    /// `received_lsn` and `replayed_lsn` otherwise.
    pub fn with_lsn(mut self, lsn: Lsn) -> Self {
        if self.role == Role::Primary {
            self.current_lsn = Some(lsn);
        } else {
            self.received_lsn = Some(lsn);
            self.replayed_lsn = Some(lsn);
        }
        self
    }

    /// The most advanced WAL position this node is known to hold.
    pub fn known_lsn(&self) -> Option<Lsn> {
        [self.current_lsn, self.received_lsn, self.replayed_lsn]
            .into_iter()
            .flatten()
            .max()
    }
}
