//! Assembling a [`ClusterMonitor`] from its parts.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, watch};

use super::{ClusterMonitor, MonitorConfig, MonitorHandle, SwitchoverHook};
use crate::admin::apply_admin_states;
use crate::Coordinator;
use crate::{
    ClusterState, ConnectConfig, DefaultPolicy, Error, FailoverPolicy, HealthProbe, LedgerView,
    NoLedger, NodeController, SqlNodeController, SqlProbe, StateFileLedger, TermLedger, Topology,
};

/// Builds a [`ClusterMonitor`].
pub struct MonitorBuilder {
    topology: Topology,
    policy: Arc<dyn FailoverPolicy>,
    probe: Option<Arc<dyn HealthProbe>>,
    controller: Option<Arc<dyn NodeController>>,
    hook: Option<Arc<dyn SwitchoverHook>>,
    coordinator: Option<Arc<dyn Coordinator>>,
    ledger: Option<Arc<dyn TermLedger>>,
    config: MonitorConfig,
}

impl MonitorBuilder {
    pub(super) fn new(topology: Topology) -> Self {
        MonitorBuilder {
            topology,
            policy: Arc::new(DefaultPolicy::default()),
            probe: None,
            controller: None,
            hook: None,
            coordinator: None,
            ledger: None,
            config: MonitorConfig::default(),
        }
    }

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

    /// A gate (quorum) that must grant permission before any failover
    /// action; without one the monitor acts on its own judgement.
    pub fn coordinator(mut self, coordinator: Arc<dyn Coordinator>) -> Self {
        self.coordinator = Some(coordinator);
        self
    }

    /// Where term decisions are recorded before they are carried out, and
    /// learned from other pgha nodes (default: a [`StateFileLedger`] on
    /// [`MonitorConfig::state_file`], or none).
    pub fn ledger(mut self, ledger: Arc<dyn TermLedger>) -> Self {
        self.ledger = Some(ledger);
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
        let ledger: Arc<dyn TermLedger> = match (self.ledger, &self.config.state_file) {
            (Some(ledger), _) => ledger,
            (None, Some(path)) => Arc::new(StateFileLedger::open(path)?),
            (None, None) => Arc::new(NoLedger::default()),
        };
        let mut ledger_view = ledger.view();
        let view = ledger_view.borrow_and_update().clone();
        let mut topology = self.topology;
        match &view {
            LedgerView::Committed(record) => {
                tracing::info!(term = record.term, primary = ?record.primary, admin = ?record.admin, ledger = ledger.name(), "restored state");
                topology = topology.restored(record.term, record.primary.as_ref());
                apply_admin_states(&mut topology, &record.admin);
            }
            // The configured order may name a former primary: no writes
            // until the nodes themselves have been heard (`settle`).
            LedgerView::Empty => {
                topology = topology
                    .with_writes_held("no durable term: waiting for the first look at every node")
            }
            LedgerView::Unknown => {
                topology = topology
                    .with_writes_held("waiting for the committed term from the other pgha nodes")
            }
        }
        let permission = self.coordinator.as_ref().map(|c| c.permission());
        if permission.is_some() {
            // Closed until the coordinator's first answer is fed in.
            topology = topology.gated();
        }
        let state = ClusterState::with_shared_policy(topology, self.policy);
        let (topology_tx, _) = watch::channel(state.snapshot());
        let (events_tx, _) = broadcast::channel(256);
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (wake_tx, wake) = mpsc::unbounded_channel();
        let probe = self
            .probe
            .unwrap_or_else(|| Arc::new(SqlProbe::new(ConnectConfig::default())));
        probe.set_wake(wake_tx.clone());
        let handle = MonitorHandle::new(topology_tx.subscribe(), events_tx.clone(), requests_tx);
        let monitor = ClusterMonitor {
            state,
            probe,
            controller: self
                .controller
                .unwrap_or_else(|| Arc::new(SqlNodeController::default())),
            hook: self.hook,
            permission,
            config: self.config,
            topology_tx,
            events_tx,
            requests,
            wake,
            started: Instant::now(),
            unsettled: !matches!(view, LedgerView::Committed(_)),
            ledger,
            ledger_view,
            pending_promotion: None,
            wake_tx,
        };
        Ok((monitor, handle))
    }
}
