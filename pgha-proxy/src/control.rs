//! What the admin console's acting commands reach: the cluster monitor
//! (`PROMOTE`, `SWITCHOVER`, `ATTACH`, `DETACH`) and whoever can read the
//! configuration again (`RELOAD`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use pgha_core::{Action, Command, MonitorHandle};

use crate::admin::{Membership, ReloadReport};

/// Runs operator commands on the cluster. [`MonitorHandle`] is one; a
/// multi-node deployment wraps it to forward to the leader.
#[async_trait]
pub trait ClusterControl: Send + Sync {
    /// Runs `command` and returns the actions it led to once they are done.
    async fn command(&self, command: Command) -> Result<Vec<Action>, pgha_core::Error>;

    /// Who leads and holds the VIP, for `SHOW STATUS` (default: a single
    /// node).
    fn membership(&self) -> Membership {
        Membership::default()
    }
}

#[async_trait]
impl ClusterControl for MonitorHandle {
    async fn command(&self, command: Command) -> Result<Vec<Action>, pgha_core::Error> {
        MonitorHandle::command(self, command).await
    }
}

/// A reload's result: what changed, or every mistake found (one
/// `file:line:column: what is wrong` per item; nothing was applied).
pub type ReloadResult = Result<ReloadReport, Vec<String>>;

/// Reads the configuration again and applies it; called on `RELOAD`.
pub type ReloadHook =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ReloadResult> + Send>> + Send + Sync>;
