//! What the monitor tells the failover machinery.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Action, Lsn, NodeId};

/// Something that happened, fed to [`ClusterState::handle`](crate::ClusterState::handle).
///
/// Every event carries its time `at` as data: a logical clock (time since
/// the monitor started) chosen by the caller. The core never reads a clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A health probe of `node` finished.
    Observed {
        /// The probed node.
        node: NodeId,
        /// When the probe finished.
        at: Duration,
        /// What it found.
        observation: Observation,
    },
    /// A client session to `node` ended with an error (a proxy saw e.g.
    /// `57P01 admin_shutdown`). Only a hint: `pg_terminate_backend()` gives
    /// the same error on a healthy node, so the answer is a probe, never a
    /// failover.
    SessionHint {
        /// The node the session was connected to.
        node: NodeId,
        /// When the error was seen.
        at: Duration,
        /// The SQLSTATE of the error, e.g. `"57P01"`.
        sqlstate: String,
    },
    /// An operator asked for something.
    Command {
        /// When the command arrived.
        at: Duration,
        /// What was asked.
        command: Command,
    },
    /// The coordinator (watchdog) granted or withdrew permission to act.
    /// The first such event turns a cluster into a gated one.
    Permission {
        /// When the verdict arrived.
        at: Duration,
        /// Whether acting is allowed.
        granted: bool,
    },
    /// Executing an action the failover machinery decided failed.
    ActionFailed {
        /// When the failure was reported.
        at: Duration,
        /// The action, as it was decided.
        action: Action,
        /// What went wrong, for logs and alerts.
        error: String,
    },
}

impl Event {
    /// When the event happened, on the monitor's logical clock.
    pub fn at(&self) -> Duration {
        match self {
            Event::Observed { at, .. }
            | Event::SessionHint { at, .. }
            | Event::Command { at, .. }
            | Event::Permission { at, .. }
            | Event::ActionFailed { at, .. } => *at,
        }
    }
}

/// The result of one health probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observation {
    /// The node answered.
    Healthy(Health),
    /// The node did not answer properly.
    Failed {
        /// How it failed.
        reason: FailureReason,
    },
}

/// What a healthy node reported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// `pg_is_in_recovery()`: true on a standby.
    pub in_recovery: bool,
    /// The node's timeline.
    pub timeline: Option<u32>,
    /// On a primary, `pg_current_wal_lsn()`.
    pub current_lsn: Option<Lsn>,
    /// On a standby, `pg_last_wal_receive_lsn()`.
    pub received_lsn: Option<Lsn>,
    /// On a standby, `pg_last_wal_replay_lsn()`.
    pub replayed_lsn: Option<Lsn>,
    /// Replication lag in bytes, when the probe measured it.
    pub lag_bytes: Option<u64>,
    /// Replication lag in time, when the probe measured it.
    pub lag_time: Option<Duration>,
    /// On a node not in recovery, whether new transactions are read-only
    /// by default (`default_transaction_read_only`): the mark the SQL fence
    /// leaves. `None` when the probe cannot tell.
    pub read_only: Option<bool>,
    /// On a standby whose WAL receiver is streaming, the host and port it
    /// streams from (`pg_stat_wal_receiver`), as its `primary_conninfo`
    /// names them.
    pub streaming_from: Option<(String, u16)>,
}

impl Health {
    /// A node that is not in recovery, writing at `lsn`.
    pub fn primary(lsn: Lsn) -> Self {
        Health {
            in_recovery: false,
            current_lsn: Some(lsn),
            ..Health::default()
        }
    }

    /// A standby that has received and replayed up to `lsn`.
    pub fn standby(lsn: Lsn) -> Self {
        Health {
            in_recovery: true,
            received_lsn: Some(lsn),
            replayed_lsn: Some(lsn),
            ..Health::default()
        }
    }
}

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureReason {
    /// Nothing listens on the port.
    ConnectRefused,
    /// No answer within the probe's deadline.
    Timeout,
    /// The monitoring connection broke.
    ConnectionLost,
    /// Connected, but the probe query failed.
    Query,
    /// The monitoring connection ended without a word from the server (no
    /// error, no shutdown notice: the backend process died) and a new
    /// connection was refused: two independent signs that the server
    /// process is gone. Enough on its own to count the node as down.
    Crashed,
}

/// An operator command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Make `node` the primary now (the old one, if any, is fenced). Any
    /// priority is accepted, the lag limit still holds.
    Promote {
        /// The standby to promote.
        node: NodeId,
    },
    /// Planned hand-over: fence the primary, promote `target` (or the best
    /// candidate), re-point the others and rejoin the old primary.
    Switchover {
        /// The standby to promote; `None` picks as a failover would.
        target: Option<NodeId>,
    },
    /// Put a node back into routing.
    Attach {
        /// The node.
        node: NodeId,
    },
    /// Take a node out of routing (for the primary: fail over).
    Detach {
        /// The node.
        node: NodeId,
    },
    /// Start or end maintenance of a node.
    Maintenance {
        /// The node.
        node: NodeId,
        /// `true` to start, `false` to end.
        enabled: bool,
    },
}
