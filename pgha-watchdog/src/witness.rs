//! The witness: a third member for two-host deployments. It votes, so two
//! hosts + a witness keep a Raft majority when one host is lost, and it
//! probes the PostgreSQL nodes and sends its views, so a failover is
//! decided on two independent views. It runs no proxy, no PostgreSQL and
//! no VIP, and never holds a lease.
//!
//! It does not campaign (openraft's `enable_elect = false`; it never
//! initializes the membership, which would start a campaign) — with one
//! exception, [`rescue`]: a host that comes back while the other is down
//! may lack entries the other host and the witness committed. Raft
//! rightly refuses to elect it (it would lose them), and only the witness
//! holds them. When no leader has been heard for a while but a host is
//! campaigning, the witness campaigns, leads only to replicate its log,
//! holds no lease (so nothing acts) and sends no heartbeats, so the host
//! soon campaigns again and takes over.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use pgha_core::{HealthProbe, NodeState};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::network::tcp::{self, TcpNetwork};
use crate::network::Heard;
use crate::types::{MemberId, Raft};
use crate::{Error, Member, MemberConfig, SharedSecret};

/// What a witness probes and how often.
#[derive(Debug, Clone)]
pub struct Probing {
    /// The PostgreSQL nodes.
    pub nodes: Vec<NodeState>,
    /// Time between probe rounds (use the monitors' `probe_interval`).
    pub interval: Duration,
    /// Deadline of one probe.
    pub timeout: Duration,
}

impl Probing {
    /// The contact window a member probing like this should be judged
    /// with: three rounds and a probe, so one late message does not put it
    /// out of contact.
    pub fn contact_window(&self) -> Duration {
        self.interval * 3 + self.timeout
    }
}

/// Runs a witness over TCP until `shutdown` completes: listens on its own
/// address from `config.members`, follows the cluster, probes
/// `probing.nodes` with `probe` and sends its views to the other members.
/// `config.witness` is forced on.
pub async fn run(
    mut config: MemberConfig,
    secret: SharedSecret,
    probe: Arc<dyn HealthProbe>,
    probing: Probing,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.witness = true;
    let addr = config
        .members
        .get(&config.id)
        .ok_or_else(|| Error::Config(format!("member {} is not in `members`", config.id)))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("listen on {addr}: {e}")))?;
    let network = TcpNetwork::new(config.id, secret.clone(), config.timing.rpc_timeout);
    let member = Member::start(&config, network).await?;
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tcp::serve(
        listener,
        member.inbox(),
        config.id,
        secret,
        Duration::from_secs(60),
        async move {
            let _ = stop.await;
        },
    ));
    tracing::info!(member = config.id, "witness running");
    probe_loop(&member, probe, probing, shutdown).await;
    let _ = stop_tx.send(());
    if let Err(e) = server.await {
        tracing::warn!(error = %e, "witness RPC server");
    }
    member.shutdown().await;
    tracing::info!(member = config.id, "witness stopped");
    Ok(())
}

/// Probes every node each `probing.interval` (and a node again at once
/// when the probe or a peer's changed view asks for it) through
/// `member`'s [`QuorumProbe`](crate::QuorumProbe), so the views reach the
/// peers, until `shutdown` completes.
pub async fn probe_loop(
    member: &Member,
    probe: Arc<dyn HealthProbe>,
    probing: Probing,
    shutdown: impl Future<Output = ()>,
) {
    let quorum = member.quorum_probe(probe, probing.contact_window());
    let (wake_tx, mut wake) = mpsc::unbounded_channel();
    quorum.set_wake(wake_tx);
    let mut tick = tokio::time::interval(probing.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let nodes: Vec<NodeState> = tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => probing.nodes.clone(),
            Some(id) = wake.recv() => probing.nodes.iter().filter(|n| n.id == id).cloned().collect(),
        };
        let mut probes = JoinSet::new();
        for node in nodes {
            let quorum = quorum.clone();
            let timeout = probing.timeout;
            probes.spawn(async move { quorum.probe(&node, timeout).await });
        }
        while probes.join_next().await.is_some() {}
    }
}

/// Campaigns while no append from a leader has arrived for `after` but a
/// vote request has (a host is back and campaigning, but nobody can win:
/// see the module docs), every `every`. A witness that hears nobody (cut
/// off) does not campaign, so its return does not depose a leader.
/// `every` is below the election timeout: the host raises the term with
/// each of its refused campaigns, the witness learns that term from the
/// host's refusal and must ask again before the host's next campaign.
/// Runs until aborted.
pub(crate) async fn rescue(
    me: MemberId,
    raft: Raft,
    heard: Arc<Mutex<Heard>>,
    after: Duration,
    every: Duration,
) {
    let metrics = raft.metrics();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rescuing = false;
    loop {
        tick.tick().await;
        let heard = *heard.lock().unwrap_or_else(|p| p.into_inner());
        let stuck = heard.leader.elapsed() >= after
            && heard.candidate.is_some_and(|at| at.elapsed() < after)
            && metrics.borrow().state != ServerState::Leader;
        if !stuck {
            rescuing = false;
            continue;
        }
        if !rescuing {
            tracing::info!(
                member = me,
                "no leader for {after:?} while a host campaigns: the witness campaigns to hand its log over"
            );
            rescuing = true;
        }
        if raft.trigger().elect().await.is_err() {
            return;
        }
    }
}
