//! Assembling a [`ClusterMonitor`] from its parts.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, watch};

use super::{state_file, ClusterMonitor, MonitorConfig, MonitorHandle, SwitchoverHook};
use crate::Coordinator;
use crate::{
    ClusterState, ConnectConfig, DefaultPolicy, Error, FailoverPolicy, HealthProbe, NodeController,
    SqlNodeController, SqlProbe, Topology,
};

/// Builds a [`ClusterMonitor`].
pub struct MonitorBuilder {
    topology: Topology,
    policy: Arc<dyn FailoverPolicy>,
    probe: Option<Arc<dyn HealthProbe>>,
    controller: Option<Arc<dyn NodeController>>,
    hook: Option<Arc<dyn SwitchoverHook>>,
    coordinator: Option<Arc<dyn Coordinator>>,
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
        let mut restored = false;
        if let Some(path) = &self.config.state_file {
            if let Some(saved) = state_file::load(path)? {
                tracing::info!(term = saved.term, primary = ?saved.primary, "restored state");
                topology = topology.restored(saved.term, saved.primary.as_ref());
                restored = true;
            }
        }
        if !restored {
            // The configured order may name a former primary: no writes
            // until the nodes themselves have been heard (`settle`).
            topology = topology
                .with_writes_held("no durable term: waiting for the first look at every node");
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
        probe.set_wake(wake_tx);
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
            unsettled: !restored,
        };
        Ok((monitor, handle))
    }
}
