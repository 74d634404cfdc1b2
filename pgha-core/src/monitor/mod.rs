//! The async shell around the pure [`ClusterState`]: probes in, actions out.

mod builder;
mod events;
mod execute;
mod handle;
mod ledger;
mod settle;
pub mod state_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub use builder::MonitorBuilder;
pub use events::{MonitorEvent, MonitorEventKind};
pub use handle::MonitorHandle;

use crate::{
    Action, ClusterState, Command, Error, Event, FailureReason, HealthProbe, LedgerView,
    NodeController, NodeId, Observation, TermLedger, Topology,
};

/// How often and how patiently the monitor probes, and where it keeps its
/// durable state.
///
/// Detection time with the default policy (down after 2 failures at least
/// `minimum_down_time` apart, or one [`FailureReason::Crashed`]):
/// * a killed server: no probe slot is waited for — the monitoring
///   connection vanishes without a word, the re-probe it triggers is
///   refused, and the two signals together confirm the crash (a few ms);
/// * a frozen or unreachable server (nothing answers): the next probe slot
///   (≤ `probe_interval`), its timeout, then the re-probe that the dropped
///   connection triggers times out too: ≤ `probe_interval` +
///   2 × `probe_timeout`.
///
/// With the defaults (500 ms, 500 ms): a crash in milliseconds, a hang
/// ≤ 1.5 s, each plus the promotion. The price: two probes a second per
/// node, and a server that does not answer a trivial query within 500 ms
/// twice in a row, 500 ms apart, is taken for dead — under a CPU-saturating
/// load `benches/false-failovers.sh` is the check. Raise both for slow
/// links or overloaded hosts.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Time between probe rounds (default 500 ms).
    pub probe_interval: Duration,
    /// Deadline for one probe, connect included (default 500 ms).
    pub probe_timeout: Duration,
    /// Where the term and primary are persisted (default: nowhere; a
    /// daemon should always set it).
    pub state_file: Option<PathBuf>,
    /// How long a planned switchover waits for the target to replay the
    /// old primary's last WAL (default 30 s).
    pub catch_up_timeout: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(500),
            state_file: None,
            catch_up_timeout: Duration::from_secs(30),
        }
    }
}

/// Called around a planned switchover so a proxy can hold new
/// transactions while the primary changes.
#[async_trait]
pub trait SwitchoverHook: Send + Sync {
    /// New transactions must wait; returns once running ones are done.
    async fn pause(&self);
    /// Routing may resume (on the new primary).
    async fn resume(&self);
}

pub(crate) enum Request {
    Hint {
        node: NodeId,
        sqlstate: String,
    },
    Command {
        command: Command,
        reply: oneshot::Sender<Result<Vec<Action>, Error>>,
    },
}

/// Ties probes, the failover policy and the node controller together and
/// publishes every new [`Topology`] on a `watch` channel.
///
/// ```no_run
/// use pgha_core::{ClusterMonitor, NodeState, Role, Topology};
///
/// # async fn demo() -> Result<(), pgha_core::Error> {
/// let topology = Topology::new([
///     NodeState::new("a", Role::Primary, "10.0.0.1", 5432),
///     NodeState::new("b", Role::Standby, "10.0.0.2", 5432),
/// ]);
/// let (monitor, handle) = ClusterMonitor::builder(topology).build()?;
/// tokio::spawn(monitor.run(std::future::pending()));
/// let mut topology = handle.topology();
/// while topology.changed().await.is_ok() {
///     let now = topology.borrow_and_update().clone();
///     println!("term {}: primary {:?}", now.term(), now.primary_id());
/// }
/// # Ok(()) }
/// ```
pub struct ClusterMonitor {
    state: ClusterState,
    probe: Arc<dyn HealthProbe>,
    controller: Arc<dyn NodeController>,
    hook: Option<Arc<dyn SwitchoverHook>>,
    permission: Option<watch::Receiver<bool>>,
    config: MonitorConfig,
    topology_tx: watch::Sender<Arc<Topology>>,
    events_tx: broadcast::Sender<MonitorEvent>,
    requests: mpsc::UnboundedReceiver<Request>,
    wake: mpsc::UnboundedReceiver<NodeId>,
    started: Instant,
    /// No durable term was loaded: the evidence decides who is primary.
    unsettled: bool,
    ledger: Arc<dyn TermLedger>,
    ledger_view: watch::Receiver<LedgerView>,
    /// A primary adopted from the shared ledger that this member has not
    /// yet seen writable: writes are held until it is.
    pending_promotion: Option<NodeId>,
    /// Asks for an immediate probe of a node (the probe holds the other end's twin).
    wake_tx: mpsc::UnboundedSender<NodeId>,
}

impl std::fmt::Debug for ClusterMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMonitor")
            .field("state", &self.state)
            .field("probe", &self.probe.name())
            .field("controller", &self.controller.name())
            .field("config", &self.config)
            .finish()
    }
}

impl ClusterMonitor {
    /// A builder starting from the configured nodes.
    pub fn builder(topology: Topology) -> MonitorBuilder {
        MonitorBuilder::new(topology)
    }

    /// Runs until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        if let Some(granted) = self.permission.as_mut().map(|p| *p.borrow_and_update()) {
            self.grant(granted).await;
        }
        if !self.learn_view(&mut shutdown).await {
            tracing::info!("cluster monitor stopped before the committed term was known");
            return;
        }
        if self.unsettled {
            self.settle().await;
        }
        let mut tick = tokio::time::interval(self.config.probe_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    tracing::trace!("probe round");
                    self.probe_all().await
                }
                Some(node) = self.wake.recv() => self.probe_nodes(vec![node]).await,
                Some(request) = self.requests.recv() => self.serve(request).await,
                Some(granted) = permission_changed(&mut self.permission) => self.grant(granted).await,
                Ok(()) = self.ledger_view.changed() => self.adopt().await,
            }
        }
        tracing::info!("cluster monitor stopped");
    }

    async fn grant(&mut self, granted: bool) {
        tracing::info!(granted, "coordinator permission");
        let at = self.now();
        self.feed(Event::Permission { at, granted }).await;
        if granted {
            self.name_settled_primary().await;
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    async fn probe_all(&mut self) {
        let ids = self
            .state
            .topology()
            .nodes()
            .iter()
            .map(|n| n.id.clone())
            .collect();
        self.probe_nodes(ids).await;
    }

    /// Probes nodes concurrently, then feeds the results in node order.
    async fn probe_nodes(&mut self, ids: Vec<NodeId>) {
        let mut probes = JoinSet::new();
        for id in ids {
            let Some(node) = self.state.topology().node(&id).cloned() else {
                continue;
            };
            let probe = self.probe.clone();
            let timeout = self.config.probe_timeout;
            probes.spawn(async move {
                // The contract says a probe returns in time; do not rely on
                // it: an overrun counts as a failure.
                let seen = tokio::time::timeout(
                    timeout + Duration::from_millis(50),
                    probe.probe(&node, timeout),
                )
                .await
                .unwrap_or(Observation::Failed {
                    reason: FailureReason::Timeout,
                });
                (node.id, seen)
            });
        }
        let mut results = Vec::new();
        tracing::trace!(probes = probes.len(), "waiting for probes");
        while let Some(done) = probes.join_next().await {
            if let Ok(result) = done {
                results.push(result);
            }
        }
        results.sort_by(|a, b| a.0.cmp(&b.0));
        let at = self.now();
        for (node, observation) in results {
            self.feed(Event::Observed {
                node,
                at,
                observation,
            })
            .await;
        }
        self.check_promoted();
    }

    async fn serve(&mut self, request: Request) {
        match request {
            Request::Hint { node, sqlstate } => {
                let at = self.now();
                self.feed(Event::SessionHint { node, at, sqlstate }).await;
            }
            Request::Command { command, reply } => {
                let planned = matches!(command, Command::Switchover { .. });
                if planned {
                    self.pause(true).await;
                }
                let at = self.now();
                let result = self
                    .feed_planned(Event::Command { at, command }, planned)
                    .await;
                if planned {
                    self.pause(false).await;
                }
                let _ = reply.send(result);
            }
        }
    }

    async fn pause(&self, on: bool) {
        if let Some(hook) = &self.hook {
            if on {
                hook.pause().await;
            } else {
                hook.resume().await;
            }
        }
        self.emit(MonitorEventKind::Paused(on));
    }

    async fn feed(&mut self, event: Event) {
        if let Err(e) = self.feed_planned(event, false).await {
            tracing::error!(error = %e, "monitor step failed");
        }
    }

    fn publish(&self) {
        let snapshot = self.state.snapshot();
        self.topology_tx.send_if_modified(|current| {
            if Arc::ptr_eq(current, &snapshot) {
                false
            } else {
                *current = snapshot;
                true
            }
        });
    }

    fn emit(&self, kind: MonitorEventKind) {
        let _ = self.events_tx.send(MonitorEvent {
            at: self.now(),
            kind,
        });
    }
}

/// The next permission change; never resolves without a coordinator (or
/// once it is gone: a vanished coordinator keeps the last answer, and the
/// contract makes a lost quorum announce `false` first).
async fn permission_changed(permission: &mut Option<watch::Receiver<bool>>) -> Option<bool> {
    if let Some(rx) = permission {
        if rx.changed().await.is_ok() {
            return Some(*rx.borrow_and_update());
        }
    }
    std::future::pending().await
}
