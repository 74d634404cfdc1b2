//! Helpers for tests that run the monitor on real PostgreSQL servers.
#![allow(dead_code)] // each test file uses a subset

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_core::{
    ClusterMonitor, ConnectConfig, LocalNodeController, MonitorConfig, MonitorEvent,
    MonitorEventKind, MonitorHandle, NodeController, NodeId, SqlNodeController, SqlProbe, Status,
    Topology,
};
use tokio::sync::{broadcast, oneshot};

pub type R = Result<(), Box<dyn std::error::Error>>;

pub const WAIT: Duration = Duration::from_secs(30);

/// A running monitor; dropping it stops the monitor.
pub struct Running {
    pub handle: MonitorHandle,
    _stop: oneshot::Sender<()>,
}

pub fn fast_config(state_file: Option<std::path::PathBuf>) -> MonitorConfig {
    MonitorConfig {
        probe_interval: Duration::from_millis(300),
        probe_timeout: Duration::from_millis(500),
        state_file,
        ..MonitorConfig::default()
    }
}

pub fn init_tracing() {
    // RUST_LOG=pgha_core=debug shows the monitor's reasoning on failure.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn start_monitor(
    topology: Topology,
    controller: Arc<dyn NodeController>,
    config: MonitorConfig,
) -> Running {
    init_tracing();
    let (monitor, handle) = ClusterMonitor::builder(topology)
        .probe(Arc::new(SqlProbe::new(ConnectConfig::default())))
        .controller(controller)
        .config(config)
        .build()
        .expect("monitor builds");
    run(monitor, handle)
}

/// Runs an already built monitor until the returned value is dropped.
pub fn run(monitor: ClusterMonitor, handle: MonitorHandle) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    Running {
        handle,
        _stop: stop,
    }
}

pub fn local(cluster: &Arc<PgCluster>) -> Arc<dyn NodeController> {
    Arc::new(LocalNodeController::new(
        SqlNodeController::default(),
        cluster.clone(),
        cluster.local_controller_config(),
    ))
}

pub fn sql() -> Arc<dyn NodeController> {
    Arc::new(SqlNodeController::default())
}

pub fn id(name: &str) -> NodeId {
    NodeId::new(name)
}

/// Waits until node0 is primary and every node was seen up.
pub async fn healthy(handle: &MonitorHandle) -> Result<(), pgha_core::Error> {
    handle
        .wait_for(WAIT, |t| {
            t.primary_id() == Some(&id("node0"))
                && t.nodes()
                    .iter()
                    .all(|n| n.status == Status::Up && n.in_recovery.is_some())
        })
        .await
        .map(drop)
}

pub async fn primary_is(
    handle: &MonitorHandle,
    name: &str,
) -> Result<Arc<Topology>, pgha_core::Error> {
    handle
        .wait_for(WAIT, |t| {
            t.primary_id() == Some(&id(name)) && t.is_writable(&id(name))
        })
        .await
}

/// How many events matching `what` arrived on `events` by now; a lagged
/// receiver (more than the channel holds) counts as `usize::MAX`.
pub fn count_events(
    events: &mut broadcast::Receiver<MonitorEvent>,
    what: impl Fn(&MonitorEventKind) -> bool,
) -> usize {
    let mut n = 0usize;
    loop {
        match events.try_recv() {
            Ok(event) if what(&event.kind) => n += 1,
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Lagged(_)) => return usize::MAX,
            Err(_) => return n,
        }
    }
}
