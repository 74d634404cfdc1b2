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

use openraft::network::RaftNetworkFactory;
use openraft::BasicNode;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::network::{dispatch, Peer, Rpc, RpcReply, Transport, TransportError};
use crate::types::{MemberId, Raft, TypeConfig};
use crate::{Error, Member, MemberConfig, Timing};

/// One way latency of a simulated call.
const LATENCY: Duration = Duration::from_millis(1);

/// The in-memory network.
#[derive(Clone)]
pub struct SimNet {
    state: Arc<Mutex<NetState>>,
}

struct NetState {
    up: BTreeMap<MemberId, Raft>,
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

    fn target(&self, from: MemberId, to: MemberId) -> Option<Raft> {
        let mut state = self.state();
        let chance = state.drop_chance;
        if state.cut.contains(&link(from, to)) || state.rng.random_bool(chance) {
            return None;
        }
        state.up.get(&to).cloned()
    }

    fn attach(&self, id: MemberId, raft: Raft) {
        self.state().up.insert(id, raft);
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

    async fn new_client(&mut self, target: MemberId, _node: &BasicNode) -> Self::Network {
        let transport = SimPeer {
            me: self.me,
            target,
            net: self.net.clone(),
        };
        Peer::new(target, transport, self.timeout)
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
            let Some(raft) = self.net.target(self.me, self.target) else {
                // A black hole: the caller learns nothing until its deadline.
                std::future::pending::<()>().await;
                return Err(TransportError::Unreachable);
            };
            let reply = dispatch(&raft, rpc).await;
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

/// Members `1..=n` on a [`SimNet`], each with its own state directory.
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
        let net = SimNet::new(seed);
        let addrs: BTreeMap<MemberId, String> = (1..=n).map(|i| (i, format!("sim-{i}"))).collect();
        let mut configs = BTreeMap::new();
        let mut dirs = Vec::new();
        for id in 1..=n {
            let dir = tempfile::tempdir().map_err(Error::Storage)?;
            configs.insert(
                id,
                MemberConfig {
                    id,
                    members: addrs.clone(),
                    state_dir: dir.path().to_path_buf(),
                    timing: timing.clone(),
                },
            );
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
        self.net.attach(id, member.raft().clone());
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
