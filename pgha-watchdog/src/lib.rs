//! # pgha-watchdog
//!
//! pgha nodes agree through Raft: [openraft] elects the leader and
//! replicates the log; this crate supplies what sits around it — the
//! replicated [`ClusterRecord`] (the state machine), file storage
//! ([`store`]), and the authenticated peer transport.
//!
//! Status (issue #12, in slices): the record and its file storage.
//!
//! ```
//! use pgha_watchdog::{ClusterRecord, RecordChange};
//!
//! let record = ClusterRecord::default()
//!     .apply(&RecordChange::Promote { term: 1, primary: "node0".into() })
//!     .unwrap();
//! assert_eq!(record.primary.as_ref().map(|p| p.as_str()), Some("node0"));
//! ```

mod record;
pub mod store;
mod types;

pub use record::{ClusterRecord, RecordChange, Refusal};
pub use types::{ChangeOutcome, MemberId, Raft, TypeConfig};

/// Everything that can go wrong in the watchdog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer nodes are reachable than a quorum needs.
    #[error("no quorum: {seen} of {needed} needed nodes seen")]
    NoQuorum {
        /// Nodes seen, this one included.
        seen: usize,
        /// Nodes a quorum needs.
        needed: usize,
    },
}
