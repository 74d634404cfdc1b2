//! The openraft type configuration: what the log carries and what a member is.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::record::{ClusterRecord, RecordChange};

/// A member's Raft id (stable across restarts; configured statically).
pub type MemberId = u64;

openraft::declare_raft_types!(
    /// pgha's Raft type configuration: log entries carry [`RecordChange`]s,
    /// members are addressed by `host:port` ([`openraft::BasicNode`]).
    pub TypeConfig:
        D = RecordChange,
        R = ChangeOutcome,
        NodeId = MemberId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What applying a committed [`RecordChange`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeOutcome {
    /// The record now reads as given.
    Applied(ClusterRecord),
    /// The change was refused (it would move the term backwards, …); the
    /// record is unchanged and reads as given.
    Refused {
        /// Why, for logs.
        reason: String,
        /// The record as it stays.
        record: ClusterRecord,
    },
}

/// The openraft handle of one member.
pub type Raft = openraft::Raft<TypeConfig>;
