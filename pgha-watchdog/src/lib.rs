//! # pgha-watchdog
//!
//! pgha nodes agree through Raft: [openraft] elects the leader and
//! replicates the log; this crate supplies what sits around it — the
//! replicated [`ClusterRecord`] (the state machine), file storage
//! ([`store`]), the authenticated peer transport ([`network`]), the leader
//! lease ([`Member::lease`]), pgha-core's `Coordinator`
//! ([`LeaseCoordinator`]), and pgha-core's `HealthProbe` that fails a
//! node only when the members agree ([`QuorumProbe`]). A [`witness`] votes
//! and probes but never leads.
//!
//! ```
//! use pgha_watchdog::{ClusterRecord, RecordChange};
//!
//! let record = ClusterRecord::default()
//!     .apply(&RecordChange::promote(1, "node0"))
//!     .unwrap();
//! assert_eq!(record.primary.as_ref().map(|p| p.as_str()), Some("node0"));
//! ```
//!
//! A single-member cluster over TCP leads at once and commits a promotion:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use pgha_watchdog::network::tcp::TcpNetwork;
//! use pgha_watchdog::{Member, MemberConfig, RecordChange, SharedSecret};
//!
//! let dir = tempfile::tempdir()?;
//! let config = MemberConfig::new(1, [(1, "127.0.0.1:1".to_string())].into(), dir.path().into());
//! let secret = SharedSecret::new(*b"a secret all members share......");
//! let member = Member::start(&config, TcpNetwork::new(1, secret, Duration::from_millis(150))).await?;
//! let mut lease = member.lease();
//! lease.wait_for(|l| l.is_some()).await?;
//! member.propose(RecordChange::promote(1, "node0")).await?;
//! assert_eq!(member.record().borrow().term, 1);
//! member.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod agreement;
mod ballot;
mod coordinator;
mod gate;
pub mod lease;
mod ledger;
mod member;
pub mod network;
mod quorum_probe;
mod record;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod timing;
pub mod trusted;
mod types;
mod views;
pub mod witness;

pub use coordinator::LeaseCoordinator;
pub use ledger::WatchdogLedger;
pub use member::{Member, MemberConfig};
pub use network::SharedSecret;
pub use quorum_probe::QuorumProbe;
pub use record::{ClusterRecord, RecordChange, Refusal};
pub use timing::{Timing, TimingError};
pub use trusted::TrustedServers;
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
    /// The state directory could not be read or written.
    #[error("state directory: {0}")]
    Storage(std::io::Error),
    /// The timers cannot give a safe lease.
    #[error(transparent)]
    Timing(TimingError),
    /// Only the leader commits changes.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<MemberId>,
    },
    /// openraft reported an error.
    #[error("raft: {0}")]
    Raft(String),
    /// The configuration cannot work (a member missing from `members`, an
    /// address that cannot be listened on).
    #[error("configuration: {0}")]
    Config(String),
}
