//! The test harness every pgha test is built on (feature `testing`).
//!
//! * [`PgCluster`]: real PostgreSQL servers (a primary and streaming
//!   standbys) on free loopback ports, from one `initdb` template per
//!   machine and PostgreSQL version, torn down on drop — also on panic.
//! * [`PgNode`]: one server, with fault injection by process id
//!   ([`PgNode::kill9`], [`PgNode::stop`], [`PgNode::freeze`],
//!   [`PgNode::thaw`], [`PgNode::restart`]) and SQL helpers.
//! * [`FaultProxy`]: an in-process TCP relay that can cut, black-hole or
//!   delay the traffic between a client and a server.
//! * [`conformance`]: the suites any `NodeController`, `HealthProbe` or
//!   `FailoverPolicy` must pass.
//! * [`NetLab`]: Linux network namespaces joined by a bridge (that lives in a
//!   namespace too), for multi-host tests; needs root.
//!
//! As root (CI), PostgreSQL runs as the `postgres` user, or as `pgha-test`
//! which the harness creates when `postgres` does not exist.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgha_core::testing::HarnessError> {
//! use pgha_core::testing::PgCluster;
//!
//! let cluster = PgCluster::builder().standbys(1).start().await?;
//! cluster.wait_streaming().await?;
//! assert!(!cluster.primary().is_in_recovery().await?);
//! cluster.primary().kill9()?;
//! # Ok(()) }
//! ```

mod cluster;
pub mod conformance;
mod error;
mod fault_proxy;
mod memory_ledger;
mod netlab;
mod node;
mod os_user;
mod pg_bin;
mod procs;
mod service;
mod sweep;
mod template;

pub use cluster::{PgCluster, PgClusterBuilder};
pub use error::HarnessError;
pub use fault_proxy::FaultProxy;
pub use memory_ledger::{MemberLedger, MemoryLedger};
pub use netlab::{require_root_or_skip, NetLab, NetLabBuilder, NetnsTask, CLIENT};
pub use node::PgNode;
pub use os_user::RunAs;
pub use pg_bin::PgBinaries;

/// Whether the tests run in CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
