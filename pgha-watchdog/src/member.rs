//! One watchdog member: openraft with pgha's storage and a network, plus
//! the lease and the published record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::BasicNode;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::coordinator::LeaseCoordinator;
use crate::lease::{self, LeaseTracker};
use crate::record::{ClusterRecord, RecordChange};
use crate::timing::{Timing, TimingError};
use crate::types::{ChangeOutcome, MemberId, Raft, TypeConfig};
use crate::{store, Error};

/// What a member needs to start.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// This member's id.
    pub id: MemberId,
    /// Every voting member (this one included) and its peer address
    /// (`host:port`). Static: membership changes come later (issue #12).
    pub members: BTreeMap<MemberId, String>,
    /// Where vote, log and record are kept.
    pub state_dir: PathBuf,
    /// The cluster's timers.
    pub timing: Timing,
}

/// A running member.
pub struct Member {
    id: MemberId,
    raft: Raft,
    lease: watch::Receiver<Option<Instant>>,
    permission: watch::Receiver<bool>,
    record: watch::Receiver<ClusterRecord>,
    lease_task: JoinHandle<()>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").field("id", &self.id).finish()
    }
}

impl Member {
    /// Opens the state directory, starts openraft over `network` and, on a
    /// fresh state directory, initializes the static membership (every
    /// member may do so; openraft keeps the first).
    pub async fn start<N>(config: &MemberConfig, network: N) -> Result<Member, Error>
    where
        N: RaftNetworkFactory<TypeConfig>,
    {
        let raft_config = config.timing.raft_config()?;
        let (log, sm) = store::open(&config.state_dir).map_err(Error::Storage)?;
        let record = sm.record();
        let raft = Raft::new(config.id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        let members: BTreeMap<MemberId, BasicNode> = config
            .members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => tracing::info!(member = config.id, "membership initialized"),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(Error::Raft(e.to_string())),
        }
        let (lease_tx, lease) = watch::channel(None);
        let (permission_tx, permission) = watch::channel(false);
        let tracker = LeaseTracker::new(config.timing.lease, config.timing.new_leader_wait());
        let lease_task = tokio::spawn(lease::run(
            config.id,
            raft.clone(),
            config.timing.heartbeat,
            tracker,
            lease_tx,
            permission_tx,
        ));
        Ok(Member {
            id: config.id,
            raft,
            lease,
            permission,
            record,
            lease_task,
        })
    }

    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// The openraft handle (for an RPC server, metrics, …).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The local lease: `Some(valid_until)` while this member leads and a
    /// quorum acknowledged it recently, `None` otherwise. Strictly before
    /// any other member can report one (see `docs/watchdog.md`). A holder
    /// must stop acting at `valid_until` even if no new value arrives (a
    /// frozen process publishes nothing).
    pub fn lease(&self) -> watch::Receiver<Option<Instant>> {
        self.lease.clone()
    }

    /// The committed record as this member applied it.
    pub fn record(&self) -> watch::Receiver<ClusterRecord> {
        self.record.clone()
    }

    /// pgha-core's gate: act only while holding the lease.
    pub fn coordinator(&self) -> LeaseCoordinator {
        LeaseCoordinator {
            permission: self.permission.clone(),
        }
    }

    /// pgha-core's ledger on this member's record: the monitor commits a
    /// promotion here before carrying it out, and adopts what other members
    /// committed.
    pub fn ledger(&self) -> crate::WatchdogLedger {
        crate::WatchdogLedger::start(self.id, self.raft.clone(), self.record.clone())
    }

    /// Commits `change` (only the leader can) and returns what applying it
    /// did. The record change is durable on a quorum when this returns —
    /// the point after which a promotion may be carried out.
    pub async fn propose(&self, change: RecordChange) -> Result<ChangeOutcome, Error> {
        match self.raft.client_write(change).await {
            Ok(written) => Ok(written.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(Error::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }

    /// The voting members as openraft currently sees them.
    pub fn voters(&self) -> BTreeSet<MemberId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .voter_ids()
            .collect()
    }

    /// Stops openraft and the lease (which falls to `None`).
    pub async fn shutdown(self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(member = self.id, error = %e, "raft shutdown");
        }
        // The lease task ends when the metrics channel closes (it holds a
        // Raft handle, so that is on shutdown, not on drop).
        if let Err(e) = self.lease_task.await {
            tracing::warn!(member = self.id, error = %e, "lease task");
        }
    }
}

impl From<TimingError> for Error {
    fn from(e: TimingError) -> Self {
        Error::Timing(e)
    }
}
