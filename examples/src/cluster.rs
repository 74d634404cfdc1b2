//! `pgha run` as one of several pgha nodes: the watchdog member (Raft) on
//! a thread of its own, and the VIP keeper following its lease.
//!
//! The member runs on its own single-threaded runtime so that no load on
//! the proxy's runtime (thousands of clients on one thread) can delay a
//! heartbeat: a leader that answers late loses its lease, and a follower
//! that hears late campaigns.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pgha_core::{Coordinator, HealthProbe, TermLedger};
use pgha_vip::{AddressMover, CommandMover, NetlinkMover, VipKeeper};
use pgha_watchdog::network::tcp::{serve, TcpNetwork};
use pgha_watchdog::{Member, MemberConfig, MemberId, SharedSecret};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::config::{Mover, VipSettings, WatchdogSettings};

/// What the rest of the daemon uses of the running member.
pub struct Watchdog {
    /// Permission to act: leader with a valid lease.
    pub coordinator: Arc<dyn Coordinator>,
    /// The replicated record as the monitor's ledger.
    pub ledger: Arc<dyn TermLedger>,
    /// The monitor's probe, judged by the group (`QuorumProbe`).
    pub probe: Arc<dyn HealthProbe>,
    /// The local lease (`Some(valid_until)` while leading).
    pub lease: watch::Receiver<Option<Instant>>,
    id: MemberId,
    members: std::collections::BTreeMap<MemberId, String>,
    metrics: watch::Receiver<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("lease", &*self.lease.borrow())
            .finish_non_exhaustive()
    }
}

impl Watchdog {
    /// Starts the member described by `settings` (peers' calls answered on
    /// `settings.listen`) and returns once it runs.
    ///
    /// `probe` is the monitor's own probe: the member wraps it so that the
    /// monitor sees the group's view of each node (a node counts as failed
    /// only when a majority of the members in contact that probe it say so;
    /// `contact_window`: how recent a member's views must be to count).
    pub async fn start(
        settings: &WatchdogSettings,
        probe: Arc<dyn HealthProbe>,
        contact_window: Duration,
    ) -> anyhow::Result<Watchdog> {
        let config = settings.member_config();
        std::fs::create_dir_all(&config.state_dir).with_context(|| {
            format!(
                "creating the watchdog state_dir {}",
                config.state_dir.display()
            )
        })?;
        let listen = settings.listen;
        let secret = settings.secret.clone();
        let (ready_tx, ready) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pgha-watchdog".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                runtime.block_on(run_member(
                    config,
                    listen,
                    secret,
                    (probe, contact_window),
                    ready_tx,
                    stopped,
                ));
            })
            .context("starting the watchdog thread")?;
        let (coordinator, ledger, lease, metrics, probe) = ready
            .await
            .context("the watchdog thread ended while starting")??;
        Ok(Watchdog {
            coordinator,
            ledger,
            probe,
            lease,
            id: settings.id,
            members: settings.members.clone(),
            metrics,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// What the admin console's commands reach on this member: the
    /// monitor while it leads, a refusal naming the leader otherwise; and
    /// who leads and holds the VIP for `SHOW STATUS`.
    pub fn control(
        &self,
        monitor: pgha_core::MonitorHandle,
        vip: Option<watch::Receiver<pgha_vip::KeeperStatus>>,
    ) -> Arc<dyn pgha_proxy::ClusterControl> {
        Arc::new(GroupControl {
            monitor,
            id: self.id,
            members: self.members.clone(),
            metrics: self.metrics.clone(),
            lease: self.lease.clone(),
            vip,
        })
    }

    /// Stops the member (its lease ends at once) and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.halt();
    }
}

type Metrics = openraft::RaftMetrics<MemberId, openraft::BasicNode>;

type Started = (
    Arc<dyn Coordinator>,
    Arc<dyn TermLedger>,
    watch::Receiver<Option<Instant>>,
    watch::Receiver<Metrics>,
    Arc<dyn HealthProbe>,
);

async fn run_member(
    config: MemberConfig,
    listen: std::net::SocketAddr,
    secret: Vec<u8>,
    (probe, contact_window): (Arc<dyn HealthProbe>, Duration),
    ready: oneshot::Sender<anyhow::Result<Started>>,
    stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!(
                "watchdog: listening for peers on {listen}: {e}"
            )));
            return;
        }
    };
    let network = TcpNetwork::new(
        config.id,
        SharedSecret::new(secret.clone()),
        config.timing.rpc_timeout,
    );
    let member = match Member::start(&config, network).await {
        Ok(member) => member,
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("watchdog member {}: {e}", config.id)));
            return;
        }
    };
    tracing::info!(member = config.id, %listen, members = config.members.len(), "watchdog member running");
    let started: Started = (
        Arc::new(member.coordinator()),
        Arc::new(member.ledger()),
        member.lease(),
        member.raft().metrics(),
        Arc::new(member.quorum_probe(probe, contact_window)),
    );
    let _ = ready.send(Ok(started));
    let (stop_serving, serving_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        member.inbox(),
        config.id,
        SharedSecret::new(secret),
        Duration::from_secs(30),
        async {
            let _ = serving_stopped.await;
        },
    ));
    let _ = stopped.await;
    tracing::info!(member = config.id, "watchdog member stopping");
    let _ = stop_serving.send(());
    member.shutdown().await;
    let _ = server.await;
}

/// Starts the VIP keeper: it holds `settings.address` exactly while the
/// address lease derived from `lease` lasts, and releases it when
/// `shutdown` completes.
pub fn start_vip(
    settings: &VipSettings,
    lease: watch::Receiver<Option<Instant>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(
    tokio::task::JoinHandle<()>,
    watch::Receiver<pgha_vip::KeeperStatus>,
)> {
    let mover: Arc<dyn AddressMover> = match &settings.mover {
        Mover::Netlink => Arc::new(NetlinkMover::new().context("[vip]: netlink")?),
        Mover::Commands(config) => {
            Arc::new(CommandMover::new(config.clone()).context("[vip]: commands")?)
        }
    };
    let keeper = VipKeeper::new(Arc::clone(&mover), settings.address.clone())
        .with_config(settings.keeper.clone());
    let status = keeper.status();
    let address_lease = pgha_vip::follow_leader_lease(
        lease,
        settings.handover.clone(),
        mover,
        settings.address.clone(),
    );
    tracing::info!(address = %settings.address, "VIP keeper running");
    Ok((tokio::spawn(keeper.run(address_lease, shutdown)), status))
}

/// The controller the local agent rejoins this host's server through.
pub fn local_controller(
    local: &crate::config::LocalSettings,
    sql: &pgha_core::SqlControllerConfig,
) -> Arc<dyn pgha_core::NodeController> {
    use crate::config::LocalStart;
    let dirs: std::collections::BTreeMap<_, _> =
        [(local.node.clone(), local.data_dir.clone())].into();
    let run_as = local.run_as.as_ref().map(|(_, uid, gid)| (*uid, *gid));
    let service: Arc<dyn pgha_core::LocalService> = match &local.start {
        LocalStart::PgCtl(options) => {
            let mut s = pgha_core::PgCtlService::new(&local.bindir, dirs.clone());
            s.options = options.clone();
            s.run_as = run_as;
            Arc::new(s)
        }
        LocalStart::Systemd(unit) => Arc::new(pgha_core::SystemdService::new(
            [(local.node.clone(), unit.clone())].into(),
        )),
    };
    let mut config = pgha_core::LocalControllerConfig::new(&local.bindir, dirs);
    config.run_as = run_as;
    Arc::new(pgha_core::LocalNodeController::new(
        pgha_core::SqlNodeController::new(sql.clone()),
        service,
        config,
    ))
}

/// The console's [`pgha_proxy::ClusterControl`] on a watchdog member.
struct GroupControl {
    monitor: pgha_core::MonitorHandle,
    id: MemberId,
    members: std::collections::BTreeMap<MemberId, String>,
    metrics: watch::Receiver<Metrics>,
    lease: watch::Receiver<Option<Instant>>,
    vip: Option<watch::Receiver<pgha_vip::KeeperStatus>>,
}

impl GroupControl {
    fn leader(&self) -> String {
        match self.metrics.borrow().current_leader {
            Some(id) if id == self.id => format!("member {id} (this node)"),
            Some(id) => format!(
                "member {id} at {}",
                self.members.get(&id).map_or("?", String::as_str)
            ),
            None => "unknown (an election is running)".into(),
        }
    }
}

#[async_trait::async_trait]
impl pgha_proxy::ClusterControl for GroupControl {
    async fn command(
        &self,
        command: pgha_core::Command,
    ) -> Result<Vec<pgha_proxy::admin::Acted>, pgha_core::Error> {
        if self.lease.borrow().is_none() {
            return Err(pgha_core::Error::NotLeader {
                leader: self.leader(),
            });
        }
        pgha_proxy::ClusterControl::command(&self.monitor, command).await
    }

    fn membership(&self) -> pgha_proxy::admin::Membership {
        let lease = match *self.lease.borrow() {
            Some(until) => format!(
                "held by this node, {} ms left",
                until.saturating_duration_since(Instant::now()).as_millis()
            ),
            None => "not held by this node".into(),
        };
        let vip_holder = match &self.vip {
            None => "no [vip]".into(),
            Some(status) if status.borrow().held => format!("member {} (this node)", self.id),
            Some(_) => "not this node".into(),
        };
        pgha_proxy::admin::Membership {
            leader: self.leader(),
            lease,
            vip_holder,
        }
    }
}

/// Keeps the proxy's `pgha_vip_*` metrics in step with the keeper.
pub async fn vip_metrics(
    mut status: watch::Receiver<pgha_vip::KeeperStatus>,
    addr: String,
    metrics: Arc<pgha_proxy::ProxyMetrics>,
) {
    loop {
        let s = status.borrow_and_update().clone();
        metrics.vip(
            &addr,
            s.held,
            [s.acquisitions, s.renewals, s.announcements, s.failures],
        );
        if status.changed().await.is_err() {
            return;
        }
    }
}
