//! What the admin console's acting commands reach: the cluster monitor
//! (`PROMOTE`, `SWITCHOVER`, `ATTACH`, `DETACH`) and whoever can read the
//! configuration again (`RELOAD`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use pgha_core::{Command, MonitorEventKind, MonitorHandle};

use crate::admin::{Acted, ControlError, Membership, ReloadReport};

/// Runs operator commands on the cluster. [`MonitorHandle`] is one; a
/// multi-node deployment wraps it to forward to the leader.
#[async_trait]
pub trait ClusterControl: Send + Sync {
    /// Runs `command` and returns the actions it led to once they are
    /// done, each with how it went.
    async fn command(&self, command: Command) -> Result<Vec<Acted>, pgha_core::Error>;

    /// Who leads and holds the VIP, for `SHOW STATUS` (default: a single
    /// node).
    fn membership(&self) -> Membership {
        Membership::default()
    }
}

/// The monitor returns every action it decided, carried out or not; which
/// failed it tells on its event channel, read here from before the command
/// was sent.
#[async_trait]
impl ClusterControl for MonitorHandle {
    async fn command(&self, command: Command) -> Result<Vec<Acted>, pgha_core::Error> {
        let mut events = self.events();
        let actions = MonitorHandle::command(self, command).await?;
        let mut acted: Vec<Acted> = actions
            .into_iter()
            .map(|action| Acted {
                action,
                failed: None,
            })
            .collect();
        while let Ok(event) = events.try_recv() {
            if let MonitorEventKind::ActionFailed { action, error } = event.kind {
                let unmarked = acted
                    .iter_mut()
                    .find(|a| a.action == action && a.failed.is_none());
                if let Some(a) = unmarked {
                    a.failed = Some(error);
                }
            }
        }
        Ok(acted)
    }
}

/// A reload's result: what changed, or why nothing did
/// ([`ControlError::ConfigInvalid`] with every mistake found, one
/// `file:line:column: what is wrong` per item).
pub type ReloadResult = Result<ReloadReport, ControlError>;

/// Reads the configuration again and applies it; called on `RELOAD`.
pub type ReloadHook =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ReloadResult> + Send>> + Send + Sync>;
