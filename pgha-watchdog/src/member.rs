//! One watchdog member: openraft with pgha's storage and a network, plus
//! the lease and the published record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::BasicNode;
use pgha_core::HealthProbe;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ballot::Ballot;
use crate::coordinator::LeaseCoordinator;
use crate::gate::Reason;
use crate::lease::{self, LeaseTracker};
use crate::network::{Connect, Heard, Inbox};
use crate::quorum_probe::QuorumProbe;
use crate::record::{ClusterRecord, RecordChange};
use crate::timing::{Timing, TimingError};
use crate::trusted::{self, TrustedServers};
use crate::types::{ChangeOutcome, MemberId, Raft, TypeConfig};
use crate::views::{self, ViewBook};
use crate::{store, witness, Error};

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
    /// A witness votes and sends probe views but never campaigns, so it
    /// never leads and never holds a lease (see `docs/watchdog.md`).
    pub witness: bool,
    /// Upstream addresses this member must reach to hold a lease
    /// (pgpool's `trusted_servers`); none by default.
    pub trusted: TrustedServers,
}

impl MemberConfig {
    /// A voting, campaigning member with the default timers and no
    /// trusted servers.
    pub fn new(id: MemberId, members: BTreeMap<MemberId, String>, state_dir: PathBuf) -> Self {
        MemberConfig {
            id,
            members,
            state_dir,
            timing: Timing::default(),
            witness: false,
            trusted: TrustedServers::default(),
        }
    }
}

/// A running member.
pub struct Member {
    id: MemberId,
    raft: Raft,
    lease: watch::Receiver<Option<Instant>>,
    permission: watch::Receiver<bool>,
    record: watch::Receiver<ClusterRecord>,
    lease_task: JoinHandle<()>,
    witness: bool,
    views: Arc<ViewBook>,
    heard: Arc<Mutex<Heard>>,
    ballot: Arc<Mutex<Ballot>>,
    upstream: watch::Receiver<bool>,
    /// Whether this member may lead (a witness's stays shut).
    gate: Arc<crate::gate::Gate>,
    /// Probe-view senders and the trusted-server check.
    helpers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").field("id", &self.id).finish()
    }
}

impl Member {
    /// Opens the state directory, starts openraft over `network` and, on a
    /// fresh state directory, initializes the static membership (every
    /// member but a witness may do so; openraft keeps the first: a
    /// witness's initialization would start a campaign).
    pub async fn start<N>(config: &MemberConfig, network: N) -> Result<Member, Error>
    where
        N: RaftNetworkFactory<TypeConfig> + Connect,
    {
        let mut raft_config = config.timing.raft_config()?;
        // openraft 0.9: a follower with elections disabled never becomes a
        // candidate on its own; it still votes and follows. A witness
        // sends no heartbeats either, so if it ever leads (to hand over a
        // log the hosts lack: `witness::rescue`) the hosts soon campaign.
        // Nobody campaigns before `election_timeout_max` has passed since
        // the start (the gate's `Starting` reason opens it).
        raft_config.enable_elect = false;
        raft_config.enable_heartbeat = !config.witness;
        let (log, sm) = store::open(&config.state_dir).map_err(Error::Storage)?;
        let record = sm.record();
        let views = Arc::new(ViewBook::new(
            config.id,
            config.members.keys().copied().collect(),
        ));
        let mut helpers = Vec::new();
        for (&peer, addr) in config.members.iter().filter(|(id, _)| **id != config.id) {
            helpers.push(tokio::spawn(views::send_to(
                peer,
                network.connect(peer, addr),
                views.outbox(),
                config.timing.rpc_timeout,
            )));
        }
        let raft = Raft::new(config.id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        let members: BTreeMap<MemberId, BasicNode> = config
            .members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        let initialized = match config.witness {
            true => Ok(()),
            false => raft.initialize(members).await,
        };
        match initialized {
            Ok(()) => tracing::info!(member = config.id, "membership initialized"),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(Error::Raft(e.to_string())),
        }
        let heard = Heard::new();
        let hold = config.timing.election_timeout_max;
        let ballot = Arc::new(Mutex::new(Ballot::new(Instant::now() + hold)));
        if config.witness {
            let t = &config.timing;
            helpers.push(tokio::spawn(witness::rescue(
                config.id,
                raft.clone(),
                heard.clone(),
                t.election_timeout_max * 4,
                t.election_timeout_min / 2,
            )));
        }
        let gate = crate::gate::Gate::new(config.id, raft.clone(), config.witness);
        gate.set(Reason::Starting, true);
        let starting = gate.clone();
        helpers.push(tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            starting.set(Reason::Starting, false);
        }));
        let upstream = match (config.witness, config.trusted.addrs.is_empty()) {
            (false, false) => {
                let (reachable_tx, reachable) = watch::channel(true);
                helpers.push(tokio::spawn(trusted::run(
                    config.id,
                    config.trusted.clone(),
                    reachable_tx,
                    gate.clone(),
                )));
                reachable
            }
            _ => watch::channel(true).1,
        };
        let (lease_tx, lease) = watch::channel(None);
        let (permission_tx, permission) = watch::channel(false);
        // No wait for a new leader: the ballot keeps every vote it won from
        // vouching for an older lease (docs/watchdog.md, step 3).
        let tracker = LeaseTracker::new(config.timing.lease, Duration::ZERO);
        let lease_task = tokio::spawn(lease::run(
            config.id,
            raft.clone(),
            config.timing.heartbeat,
            tracker,
            ballot.clone(),
            gate.subscribe(),
            (lease_tx, permission_tx),
        ));
        Ok(Member {
            id: config.id,
            raft,
            lease,
            permission,
            record,
            lease_task,
            witness: config.witness,
            views,
            heard,
            ballot,
            upstream,
            gate,
            helpers,
        })
    }

    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// The openraft handle (for metrics, …).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Where peers' calls go: hand it to the RPC server
    /// ([`tcp::serve`](crate::network::tcp::serve)).
    pub fn inbox(&self) -> Inbox {
        Inbox {
            raft: self.raft.clone(),
            views: self.views.clone(),
            heard: self.heard.clone(),
            ballot: self.ballot.clone(),
        }
    }

    /// Whether this member is a witness (it never leads or holds a lease).
    pub fn is_witness(&self) -> bool {
        self.witness
    }

    /// `true` while some configured trusted server answers (always, when
    /// none are configured); while `false` this member holds no lease.
    pub fn upstream_reachable(&self) -> watch::Receiver<bool> {
        self.upstream.clone()
    }

    /// pgha-core's probe for this member's monitor: wraps the local
    /// `inner` probe, shares its results with the peers and reports the
    /// cluster's agreed view (see [`QuorumProbe`]). Peers whose views
    /// arrived longer than `contact_window` ago do not count.
    pub fn quorum_probe(
        &self,
        inner: Arc<dyn HealthProbe>,
        contact_window: Duration,
    ) -> QuorumProbe {
        // A member that cannot reach the primary the others reach steps
        // aside after a contact window of that (crate::gate::Reach).
        let reach = crate::quorum_probe::ReachFeed {
            record: self.record.clone(),
            plan: std::sync::Mutex::new(crate::gate::Reach::new(contact_window)),
            gate: self.gate.clone(),
        };
        QuorumProbe::new(
            inner,
            self.views.clone(),
            contact_window,
            Some(Arc::new(reach)),
        )
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

    /// Stops openraft, the probe views, the trusted-server check and the
    /// lease (which falls to `None`).
    pub async fn shutdown(self) {
        for helper in &self.helpers {
            helper.abort();
        }
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
