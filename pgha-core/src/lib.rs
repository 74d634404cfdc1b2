//! # pgha-core
//!
//! The heart of pgha: the model of a PostgreSQL streaming-replication
//! cluster, health probes, pure failover decisions and the controllers that
//! carry them out.
//!
//! The failover core is pure (no IO, no clock): a [`ClusterState`] owns the
//! current [`Topology`], takes [`Event`]s (probe results, session hints,
//! operator commands, coordinator permission, failed actions) and returns
//! the [`Action`]s a [`FailoverPolicy`] decided, already recorded in the
//! next snapshot.
//!
//! With the `testing` feature, the `testing` module holds the harness every pgha test
//! is built on: real PostgreSQL clusters on loopback ports, fault injection
//! (kill, freeze, cut a connection) and Linux network namespaces.
//!
//! ## Embedding: always know the primary
//!
//! ```no_run
//! use pgha_core::{ClusterMonitor, MonitorConfig, NodeState, Role, Topology};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), pgha_core::Error> {
//!     let topology = Topology::new([
//!         NodeState::new("db1", Role::Primary, "10.0.0.1", 5432),
//!         NodeState::new("db2", Role::Standby, "10.0.0.2", 5432),
//!     ]);
//!     let config = MonitorConfig {
//!         state_file: Some("/var/lib/pgha/state.json".into()),
//!         ..MonitorConfig::default()
//!     };
//!     // Defaults: SqlProbe, SqlNodeController, DefaultPolicy.
//!     let (monitor, handle) = ClusterMonitor::builder(topology).config(config).build()?;
//!     tokio::spawn(monitor.run(std::future::pending()));
//!
//!     let mut topology = handle.topology();
//!     loop {
//!         let now = topology.borrow_and_update().clone();
//!         if let Some(primary) = now.usable_primary() {
//!             tracing::info!(term = now.term(), "writes go to {}:{}", primary.host, primary.port);
//!         }
//!         if topology.changed().await.is_err() {
//!             return Ok(());
//!         }
//!     }
//! }
//! ```
//!
//! A custom failover rule is a [`FailoverPolicy`]: see its docs for a
//! plugin that wraps [`DefaultPolicy`] and vetoes some promotions.
//!
//! ## Pieces
//!
//! | trait | default | others |
//! |---|---|---|
//! | [`HealthProbe`] | [`SqlProbe`] | [`TcpProbe`] |
//! | [`NodeController`] | [`SqlNodeController`] | [`LocalNodeController`] (fence by stop, rejoin by pg_rewind), [`CommandNodeController`] (pgpool-style scripts) |
//! | [`FailoverPolicy`] | [`DefaultPolicy`] | yours |
//! | [`Coordinator`] | none (act alone) | [`ManualCoordinator`]; the watchdog's quorum |
//!
//! Errors are one enum:
//!
//! ```
//! use pgha_core::{Error, ErrorKind};
//! use std::time::Duration;
//!
//! let e = Error::Timeout { node: "node0".into(), after: Duration::from_secs(1) };
//! assert_eq!(e.kind(), ErrorKind::Unavailable);
//! assert_eq!(e.to_string(), "node node0: no answer within 1s");
//! ```

mod action;
mod admin;
mod cluster_state;
mod command_controller;
mod connect;
mod controller;
mod coordinator;
mod default_policy;
pub mod duration_serde;
mod error;
mod event;
pub mod evidence;
mod ledger;
mod local_agent;
mod local_controller;
mod local_service;
mod lsn;
mod monitor;
mod node;
mod policy;
mod probe;
mod sql_controller;
mod sql_fence;
mod sql_probe;
mod tcp_probe;
#[cfg(feature = "testing")]
pub mod testing;
mod topology;

pub use action::{Action, QuarantineReason};
pub use admin::{admin_states, AdminState, AdminStates};
pub use cluster_state::ClusterState;
pub use command_controller::{
    run_command, shell_quote, CommandControllerConfig, CommandNode, CommandNodeController,
    CommandTemplate, CommandValues, Scan, ShellTemplate,
};
pub use connect::{ConnectConfig, ConnectionEnd};
pub use controller::{Fenced, NodeController};
pub use coordinator::{Coordinator, ManualCoordinator};
pub use default_policy::DefaultPolicy;
pub use error::{describe_pg, Error, ErrorKind};
pub use event::{Command, Event, FailureReason, Health, Observation};
pub use ledger::{LedgerView, NoLedger, StateFileLedger, TermLedger, TermRecord};
pub use local_agent::{run_agent, AgentConfig, AgentPlan, AgentStep};
pub use local_controller::{LocalControllerConfig, LocalNodeController, LocalService};
pub use local_service::{PgCtlService, SystemdService};
pub use lsn::Lsn;
pub use monitor::{
    state_file, ClusterMonitor, MonitorBuilder, MonitorConfig, MonitorEvent, MonitorEventKind,
    MonitorHandle, SwitchoverHook,
};
pub use node::{NodeId, NodeState, Role, Status};
pub use policy::FailoverPolicy;
pub use probe::HealthProbe;
pub use sql_controller::{SqlControllerConfig, SqlNodeController};
pub use sql_probe::SqlProbe;
pub use tcp_probe::TcpProbe;
pub use topology::{Permission, Topology};
