//! The async shell around the pure [`ClusterState`]: probes in, actions out.

mod events;
mod handle;
pub mod state_file;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub use events::{MonitorEvent, MonitorEventKind};
pub use handle::MonitorHandle;

use crate::{
    Action, ClusterState, Command, ConnectConfig, DefaultPolicy, Error, Event, FailoverPolicy,
    FailureReason, Fenced, HealthProbe, NodeController, NodeId, Observation, SqlNodeController,
    SqlProbe, Topology,
};

/// How often and how patiently the monitor probes, and where it keeps its
/// durable state.
///
/// Detection time, worst case, with `failures_before_down` = *f* (the
/// policy's setting, default 2):
/// * a crashed server (connection refused, monitoring connection lost):
///   about (*f* − 1) × `probe_interval`, because the lost monitoring
///   connection triggers the first failed probe at once;
/// * a frozen or unreachable server (nothing answers):
///   *f* × (`probe_interval` + `probe_timeout`).
///
/// With the defaults (1 s, 1 s, *f* = 2): ≈ 1 s and ≤ 4 s.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Time between probe rounds (default 1 s).
    pub probe_interval: Duration,
    /// Deadline for one probe, connect included (default 1 s).
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
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
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

/// Builds a [`ClusterMonitor`].
pub struct MonitorBuilder {
    topology: Topology,
    policy: Arc<dyn FailoverPolicy>,
    probe: Option<Arc<dyn HealthProbe>>,
    controller: Option<Arc<dyn NodeController>>,
    hook: Option<Arc<dyn SwitchoverHook>>,
    config: MonitorConfig,
}

impl MonitorBuilder {
    /// The failover policy (default [`DefaultPolicy`]).
    pub fn policy(mut self, policy: impl FailoverPolicy + 'static) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// The health probe (default [`SqlProbe`] as user `postgres`).
    pub fn probe(mut self, probe: Arc<dyn HealthProbe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// The node controller (default [`SqlNodeController`]).
    pub fn controller(mut self, controller: Arc<dyn NodeController>) -> Self {
        self.controller = Some(controller);
        self
    }

    /// A hook paused and resumed around planned switchovers.
    pub fn switchover_hook(mut self, hook: Arc<dyn SwitchoverHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Timing and state file.
    pub fn config(mut self, config: MonitorConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the monitor, restoring the term and primary from the state
    /// file if there is one. Run it with [`ClusterMonitor::run`]; talk to it
    /// through the returned handle.
    pub fn build(self) -> Result<(ClusterMonitor, MonitorHandle), Error> {
        let mut topology = self.topology;
        if let Some(path) = &self.config.state_file {
            if let Some(saved) = state_file::load(path)? {
                tracing::info!(term = saved.term, primary = ?saved.primary, "restored state");
                topology = topology.restored(saved.term, saved.primary.as_ref());
            }
        }
        let state = ClusterState::with_shared_policy(topology, self.policy);
        let (topology_tx, _) = watch::channel(state.snapshot());
        let (events_tx, _) = broadcast::channel(256);
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (wake_tx, wake) = mpsc::unbounded_channel();
        let probe = self
            .probe
            .unwrap_or_else(|| Arc::new(SqlProbe::new(ConnectConfig::default())));
        probe.set_wake(wake_tx);
        let handle = MonitorHandle::new(topology_tx.subscribe(), events_tx.clone(), requests_tx);
        let monitor = ClusterMonitor {
            state,
            probe,
            controller: self
                .controller
                .unwrap_or_else(|| Arc::new(SqlNodeController::default())),
            hook: self.hook,
            config: self.config,
            topology_tx,
            events_tx,
            requests,
            wake,
            started: Instant::now(),
        };
        Ok((monitor, handle))
    }
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
    config: MonitorConfig,
    topology_tx: watch::Sender<Arc<Topology>>,
    events_tx: broadcast::Sender<MonitorEvent>,
    requests: mpsc::UnboundedReceiver<Request>,
    wake: mpsc::UnboundedReceiver<NodeId>,
    started: Instant,
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
        MonitorBuilder {
            topology,
            policy: Arc::new(DefaultPolicy::default()),
            probe: None,
            controller: None,
            hook: None,
            config: MonitorConfig::default(),
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
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
            }
        }
        tracing::info!("cluster monitor stopped");
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

    /// Feeds one event, executes what it decided, and feeds back failures
    /// until nothing is left to do.
    async fn feed_planned(&mut self, event: Event, planned: bool) -> Result<Vec<Action>, Error> {
        let mut queue = VecDeque::from([event]);
        let mut all = Vec::new();
        while let Some(event) = queue.pop_front() {
            let term_before = self.state.topology().term();
            let actions = self.state.handle(event.clone());
            if actions.is_empty() {
                self.publish();
                continue;
            }
            self.emit(MonitorEventKind::Decided {
                event,
                actions: actions.clone(),
                term: self.state.topology().term(),
            });
            if self.state.topology().term() != term_before {
                // Record the decision before acting on it.
                self.persist()?;
            }
            let mut fenced_old = None;
            for action in &actions {
                if planned {
                    if let (Action::Promote { node, .. }, Some(old)) = (action, &fenced_old) {
                        self.wait_caught_up(old, node).await;
                    }
                }
                match self.execute(action).await {
                    Some(next) => queue.push_back(next),
                    // The new primary takes writes now: say so before the
                    // slower follow/fence/rejoin steps.
                    None if matches!(action, Action::Promote { .. }) => self.publish(),
                    None => {}
                }
                if let Action::Fence { node, .. } = action {
                    fenced_old = Some(node.clone());
                }
            }
            // Published once carried out: a proxy must not send writes to a
            // node that the model calls primary before it really is one.
            // (A failed action was fed back above and repairs the model
            // before anyone sees it.)
            if !queue
                .iter()
                .any(|e| matches!(e, Event::ActionFailed { .. }))
            {
                self.publish();
            }
            all.extend(actions);
        }
        Ok(all)
    }

    /// Carries out one action; returns the event to feed back, if any.
    async fn execute(&mut self, action: &Action) -> Option<Event> {
        let started = Instant::now();
        let topology = self.state.snapshot();
        let node = |id: &NodeId| topology.node(id).cloned();
        let result: Result<(), Error> = match action {
            Action::Promote { node: id, term } => match node(id) {
                Some(n) => self.controller.promote(&n, *term).await,
                None => Ok(()),
            },
            Action::Follow {
                node: id, primary, ..
            }
            | Action::Rejoin { node: id, primary } => match (node(id), node(primary)) {
                (Some(n), Some(p)) if matches!(action, Action::Follow { .. }) => {
                    self.controller.follow(&n, &p).await
                }
                (Some(n), Some(p)) => self.controller.rejoin(&n, &p).await,
                _ => Ok(()),
            },
            Action::Fence { node: id, .. } => match node(id) {
                Some(n) => match self.controller.fence(&n).await {
                    Ok(Fenced::Confirmed) => Ok(()),
                    Ok(Fenced::NotConfirmed { why }) => {
                        tracing::warn!(node = %id, %why, "fence not confirmed; the node stays quarantined");
                        self.emit(MonitorEventKind::FenceNotConfirmed {
                            node: id.to_string(),
                            why,
                        });
                        return None;
                    }
                    Err(e) => Err(e),
                },
                None => Ok(()),
            },
            Action::Probe { node: id } => {
                let node = id.clone();
                let timeout = self.config.probe_timeout;
                let seen = match topology.node(&node) {
                    Some(n) => self.probe.probe(n, timeout).await,
                    None => return None,
                };
                return Some(Event::Observed {
                    node,
                    at: self.now(),
                    observation: seen,
                });
            }
            // The rest only change the model, which already records them.
            _ => return None,
        };
        match result {
            Ok(()) => {
                tracing::info!(?action, took = ?started.elapsed(), "action done");
                self.emit(MonitorEventKind::Executed {
                    action: action.clone(),
                    took: started.elapsed(),
                });
                None
            }
            Err(e) => {
                tracing::error!(?action, error = %e, "action failed");
                self.emit(MonitorEventKind::ActionFailed {
                    action: action.clone(),
                    error: e.to_string(),
                });
                Some(Event::ActionFailed {
                    at: self.now(),
                    action: action.clone(),
                    error: e.to_string(),
                })
            }
        }
    }

    /// Before a planned promotion: wait until `target` has replayed the
    /// fenced primary's last WAL position, so the switchover loses nothing.
    async fn wait_caught_up(&self, old: &NodeId, target: &NodeId) {
        let topology = self.state.snapshot();
        let (Some(old), Some(target)) = (topology.node(old), topology.node(target)) else {
            return;
        };
        let timeout = self.config.probe_timeout;
        let goal = match self.probe.probe(old, timeout).await {
            Observation::Healthy(h) => h.current_lsn,
            // A stopped primary shipped its WAL on the way down.
            Observation::Failed { .. } => None,
        };
        let Some(goal) = goal else { return };
        let deadline = Instant::now() + self.config.catch_up_timeout;
        while Instant::now() < deadline {
            if let Observation::Healthy(h) = self.probe.probe(target, timeout).await {
                if h.replayed_lsn.is_some_and(|l| l >= goal) {
                    tracing::info!(target = %target.id, %goal, "switchover target caught up");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(target = %target.id, %goal, "switchover target did not catch up in time; promoting anyway");
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

    fn persist(&self) -> Result<(), Error> {
        match &self.config.state_file {
            Some(path) => {
                state_file::store(path, &state_file::PersistedState::of(self.state.topology()))
            }
            None => Ok(()),
        }
    }

    fn emit(&self, kind: MonitorEventKind) {
        let _ = self.events_tx.send(MonitorEvent {
            at: self.now(),
            kind,
        });
    }
}
