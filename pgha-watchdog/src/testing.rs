//! A simulated cluster for tests (feature `testing`): members in one
//! process over an in-memory network that can cut links, isolate members,
//! drop calls at random, and crash and restart members on their state
//! directories. Built for tokio's paused clock (`start_paused = true`):
//! the network's latency and deadlines, openraft's timers and the lease
//! all run on tokio time, and blocking file IO holds the clock still.
//!
//! The seed of [`SimNet::new`] drives the network's drops; openraft's own
//! election jitter comes from its thread RNG, so a seed replays the fault
//! schedule, not every election.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use pgha_core::{FailureReason, HealthProbe, NodeId, NodeState, Observation};

use openraft::network::RaftNetworkFactory;
use openraft::BasicNode;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::network::{dispatch, Connect, Inbox, Peer, Rpc, RpcReply, Transport, TransportError};
use crate::types::{MemberId, TypeConfig};
use crate::{Error, Member, MemberConfig, Timing};

/// One way latency of a simulated call.
const LATENCY: Duration = Duration::from_millis(1);

/// The in-memory network.
#[derive(Clone)]
pub struct SimNet {
    state: Arc<Mutex<NetState>>,
}

struct NetState {
    up: BTreeMap<MemberId, Inbox>,
    cut: BTreeSet<(MemberId, MemberId)>,
    drop_chance: f64,
    rng: StdRng,
}

fn link(a: MemberId, b: MemberId) -> (MemberId, MemberId) {
    (a.min(b), a.max(b))
}

impl SimNet {
    /// A network with every link up, drops driven by `seed`.
    pub fn new(seed: u64) -> Self {
        SimNet {
            state: Arc::new(Mutex::new(NetState {
                up: BTreeMap::new(),
                cut: BTreeSet::new(),
                drop_chance: 0.0,
                rng: StdRng::seed_from_u64(seed),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts the link between `a` and `b` (both ways).
    pub fn cut(&self, a: MemberId, b: MemberId) {
        self.state().cut.insert(link(a, b));
    }

    /// Cuts every link of `member` to the `others`.
    pub fn isolate(&self, member: MemberId, others: impl IntoIterator<Item = MemberId>) {
        for other in others {
            if other != member {
                self.cut(member, other);
            }
        }
    }

    /// Restores every link and stops dropping calls.
    pub fn heal(&self) {
        let mut state = self.state();
        state.cut.clear();
        state.drop_chance = 0.0;
    }

    /// Drops each call (or its answer) with this chance.
    pub fn drop_calls(&self, chance: f64) {
        self.state().drop_chance = chance;
    }

    /// Whether `a` and `b` can talk.
    pub fn connected(&self, a: MemberId, b: MemberId) -> bool {
        !self.state().cut.contains(&link(a, b))
    }

    fn target(&self, from: MemberId, to: MemberId) -> Option<Inbox> {
        let mut state = self.state();
        let chance = state.drop_chance;
        if state.cut.contains(&link(from, to)) || state.rng.random_bool(chance) {
            return None;
        }
        state.up.get(&to).cloned()
    }

    fn attach(&self, id: MemberId, inbox: Inbox) {
        self.state().up.insert(id, inbox);
    }

    fn detach(&self, id: MemberId) {
        self.state().up.remove(&id);
    }
}

/// Member `me`'s view of the [`SimNet`] (openraft's network factory).
#[derive(Clone)]
pub struct SimClients {
    me: MemberId,
    net: SimNet,
    timeout: Duration,
}

impl RaftNetworkFactory<TypeConfig> for SimClients {
    type Network = Peer<SimPeer>;

    async fn new_client(&mut self, target: MemberId, node: &BasicNode) -> Self::Network {
        Peer::new(target, self.connect(target, &node.addr), self.timeout)
    }
}

impl Connect for SimClients {
    type Transport = SimPeer;

    fn connect(&self, target: MemberId, _addr: &str) -> SimPeer {
        SimPeer {
            me: self.me,
            target,
            net: self.net.clone(),
        }
    }
}

/// The simulated [`Transport`] to one member.
pub struct SimPeer {
    me: MemberId,
    target: MemberId,
    net: SimNet,
}

impl Transport for SimPeer {
    async fn call(&mut self, rpc: Rpc, deadline: Duration) -> Result<RpcReply, TransportError> {
        let exchange = async {
            tokio::time::sleep(LATENCY).await;
            let Some(inbox) = self.net.target(self.me, self.target) else {
                // A black hole: the caller learns nothing until its deadline.
                std::future::pending::<()>().await;
                return Err(TransportError::Unreachable);
            };
            let reply = dispatch(&inbox, self.me, rpc).await;
            tokio::time::sleep(LATENCY).await;
            match self.net.target(self.target, self.me) {
                Some(_) => Ok(reply),
                None => {
                    std::future::pending::<()>().await;
                    Err(TransportError::Unreachable)
                }
            }
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Deadline(deadline)),
        }
    }
}

/// Members `1..=n` on a [`SimNet`], each with its own state directory;
/// the last `witnesses` of them are witnesses.
pub struct SimCluster {
    /// The network between them.
    pub net: SimNet,
    configs: BTreeMap<MemberId, MemberConfig>,
    members: BTreeMap<MemberId, Member>,
    _dirs: Vec<TempDir>,
}

impl SimCluster {
    /// Starts `n` members with `timing`.
    pub async fn start(n: u64, timing: Timing, seed: u64) -> Result<SimCluster, Error> {
        Self::start_with_witnesses(n, 0, timing, seed).await
    }

    /// Starts `n` members with `timing`, the last `witnesses` of them
    /// witnesses.
    pub async fn start_with_witnesses(
        n: u64,
        witnesses: u64,
        timing: Timing,
        seed: u64,
    ) -> Result<SimCluster, Error> {
        let net = SimNet::new(seed);
        let addrs: BTreeMap<MemberId, String> = (1..=n).map(|i| (i, format!("sim-{i}"))).collect();
        let mut configs = BTreeMap::new();
        let mut dirs = Vec::new();
        for id in 1..=n {
            let dir = tempfile::tempdir().map_err(Error::Storage)?;
            let mut config = MemberConfig::new(id, addrs.clone(), dir.path().to_path_buf());
            config.timing = timing.clone();
            config.witness = id + witnesses > n;
            configs.insert(id, config);
            dirs.push(dir);
        }
        let mut cluster = SimCluster {
            net,
            configs,
            members: BTreeMap::new(),
            _dirs: dirs,
        };
        for id in 1..=n {
            cluster.restart(id).await?;
        }
        Ok(cluster)
    }

    /// The member ids.
    pub fn ids(&self) -> Vec<MemberId> {
        self.configs.keys().copied().collect()
    }

    /// The running members.
    pub fn running(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// A running member.
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// Stops `id` (as a crash would: nothing more is written; what was
    /// fsync'd stays).
    pub async fn crash(&mut self, id: MemberId) {
        self.net.detach(id);
        if let Some(member) = self.members.remove(&id) {
            member.shutdown().await;
        }
    }

    /// Starts `id` again on its state directory (no-op if it runs).
    pub async fn restart(&mut self, id: MemberId) -> Result<(), Error> {
        if self.members.contains_key(&id) {
            return Ok(());
        }
        let config = &self.configs[&id];
        let clients = SimClients {
            me: id,
            net: self.net.clone(),
            timeout: config.timing.rpc_timeout,
        };
        let member = Member::start(config, clients).await?;
        self.net.attach(id, member.inbox());
        self.members.insert(id, member);
        Ok(())
    }

    /// The members holding a lease valid at `now`.
    pub fn lease_holders(&self, now: Instant) -> Vec<MemberId> {
        self.members
            .values()
            .filter(|m| matches!(*m.lease().borrow(), Some(until) if until > now))
            .map(|m| m.id())
            .collect()
    }

    /// Shuts every member down.
    pub async fn shutdown(mut self) {
        for id in self.ids() {
            self.crash(id).await;
        }
    }
}

/// A [`HealthProbe`] that reports what the test scripted for each node
/// (`Failed { ConnectRefused }` for a node never scripted), and remembers
/// when it last reported each node failed.
#[derive(Clone, Default)]
pub struct ScriptedProbe {
    state: Arc<Mutex<Scripted>>,
}

#[derive(Default)]
struct Scripted {
    views: BTreeMap<NodeId, Observation>,
    last_failed: BTreeMap<NodeId, Instant>,
}

impl ScriptedProbe {
    fn state(&self) -> MutexGuard<'_, Scripted> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, probing `node` reports `observation`.
    pub fn set(&self, node: &NodeId, observation: Observation) {
        self.state().views.insert(node.clone(), observation);
    }

    /// When a probe of `node` last reported it failed.
    pub fn last_failed(&self, node: &NodeId) -> Option<Instant> {
        self.state().last_failed.get(node).copied()
    }
}

#[async_trait]
impl HealthProbe for ScriptedProbe {
    async fn probe(&self, node: &NodeState, _timeout: Duration) -> Observation {
        let mut state = self.state();
        let seen = state
            .views
            .get(&node.id)
            .cloned()
            .unwrap_or(Observation::Failed {
                reason: FailureReason::ConnectRefused,
            });
        if matches!(seen, Observation::Failed { .. }) {
            state.last_failed.insert(node.id.clone(), Instant::now());
        }
        seen
    }

    fn name(&self) -> &str {
        "scripted probe"
    }
}
