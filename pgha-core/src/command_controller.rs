//! [`CommandNodeController`]: failover carried out by the operator's own
//! scripts, as pgpool-II does.

mod config;
mod history;
mod run;
mod shell_template;
mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

pub use config::CommandControllerConfig;
pub use run::run_command;
pub use shell_template::{shell_quote, Scan, ShellTemplate};
pub use template::{CommandNode, CommandTemplate, CommandValues};

use crate::{Error, Fenced, NodeController, NodeId, NodeState, Topology};
use history::PrimaryHistory;

/// A [`NodeController`] that runs the operator's shell commands, so that
/// pgpool-II's `failover.sh` and `follow_primary.sh` keep working.
///
/// Each command is a [`CommandTemplate`] checked when the controller is
/// built: an unknown `%x` is a configuration error then, not at failover
/// time. It runs as `sh -c` in its own process group, with stdin closed,
/// for at most [`timeout`](CommandControllerConfig::timeout); then the
/// whole group is killed and the call fails with [`Error::Command`]. What
/// the command printed (stdout and stderr) is logged, and its last 20 lines
/// travel in the error.
///
/// | call | `%d %h %p %D` | `%m %H %r %R` | without a command |
/// |---|---|---|---|
/// | `promote` | the old primary | the node to promote | (required) |
/// | `follow` | the standby | its new primary | `Unsupported` |
/// | `fence` | the node to fence | the current primary | `NotConfirmed` |
/// | `rejoin` | the former primary | its new primary | `Unsupported` |
///
/// `%M %P %N %S` always name the old primary: the primary of the latest
/// earlier term. [`NodeController::promote`] is not told who that was, so
/// the controller learns it from the topology channel given to
/// [`with_topology`](Self::with_topology); without one, old-primary values
/// are `-1` (ids) and empty. A fence command's exit status 0 confirms the
/// fence; a failing or hung fence command gives `NotConfirmed`, as an
/// unreachable node does. A promotion that succeeded is not run again for
/// the same node and term.
///
/// The fence it gives is whatever `fence_command` does (as strong as
/// stopping the server or cutting it off the network); pgha trusts its exit
/// status. Without one, nothing is fenced: a stale primary stays
/// quarantined (never routed) but takes direct writes.
///
/// ```
/// use pgha_core::{CommandControllerConfig, CommandNodeController, NodeState, Role, Topology};
/// use std::sync::Arc;
/// use tokio::sync::watch;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pgha_core::Error> {
/// let mut config = CommandControllerConfig::new("/etc/pgha/failover.sh %d %h %m %H %R %P");
/// config.data_dirs.insert("node1".into(), "/var/lib/pg/node1".into());
/// let old = NodeState::new("node0", Role::Primary, "db0", 5432);
/// let new = NodeState::new("node1", Role::Standby, "db1", 5432);
/// let (_publish, topology) = watch::channel(Arc::new(Topology::new([old, new.clone()])));
///
/// let controller = CommandNodeController::new(config)?.with_topology(topology);
/// assert_eq!(
///     controller.promote_command_line(&new, 2),
///     "/etc/pgha/failover.sh 'node0' 'db0' 'node1' 'db1' '/var/lib/pg/node1' 'node0'",
/// );
///
/// let unknown = CommandControllerConfig::new("failover.sh %d %x");
/// assert!(CommandNodeController::new(unknown).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CommandNodeController {
    promote: CommandTemplate,
    follow: Option<CommandTemplate>,
    fence: Option<CommandTemplate>,
    rejoin: Option<CommandTemplate>,
    timeout: Duration,
    data_dirs: BTreeMap<NodeId, PathBuf>,
    history: Option<PrimaryHistory>,
    /// The last promotion that succeeded: repeating it is a no-op.
    promoted: Mutex<Option<(NodeId, u64)>>,
}

impl CommandNodeController {
    /// A controller running the commands of `config`; fails with
    /// [`Error::Config`] if a command has an unknown or unprotectable
    /// placeholder, or the timeout is zero.
    pub fn new(config: CommandControllerConfig) -> Result<Self, Error> {
        let optional = |setting: &str, command: &Option<String>| {
            command
                .as_deref()
                .map(|c| CommandTemplate::parse(setting, c))
                .transpose()
        };
        if config.timeout.is_zero() {
            return Err(Error::Config {
                what: "timeout: must be more than 0".to_string(),
            });
        }
        Ok(CommandNodeController {
            promote: CommandTemplate::parse("promote_command", &config.promote_command)?,
            follow: optional("follow_command", &config.follow_command)?,
            fence: optional("fence_command", &config.fence_command)?,
            rejoin: optional("rejoin_command", &config.rejoin_command)?,
            timeout: config.timeout,
            data_dirs: config.data_dirs,
            history: None,
            promoted: Mutex::new(None),
        })
    }

    /// The same controller, learning the old primary (`%d` of promote and
    /// `%M %P %N %S`) from the topologies published on `topology`. Build it
    /// inside a Tokio runtime: it follows the channel from a small task
    /// (stopped when the controller is dropped), so that it has seen the
    /// old primary even if the topology naming the new one is published
    /// before the promotion runs.
    pub fn with_topology(mut self, topology: watch::Receiver<Arc<Topology>>) -> Self {
        self.history = Some(PrimaryHistory::follow(topology));
        self
    }

    /// The command line [`promote`](NodeController::promote) would run for
    /// `node` in `term`.
    pub fn promote_command_line(&self, node: &NodeState, term: u64) -> String {
        self.promote.render(&self.promote_values(node, term))
    }

    fn promote_values(&self, node: &NodeState, term: u64) -> CommandValues {
        let old = self
            .history
            .as_ref()
            .and_then(|h| h.old_primary(Some(term), Some(&node.id)));
        CommandValues {
            node: old.as_ref().map(|o| self.describe(o)),
            new_main: Some(self.describe(node)),
            old_primary: old.as_ref().map(|o| self.describe(o)),
        }
    }

    /// Values for a command about `node` under `primary`.
    fn values(&self, node: &NodeState, primary: Option<&NodeState>) -> CommandValues {
        let old = self
            .history
            .as_ref()
            .and_then(|h| h.old_primary(None, primary.map(|p| &p.id)));
        CommandValues {
            node: Some(self.describe(node)),
            new_main: primary.map(|p| self.describe(p)),
            old_primary: old.as_ref().map(|o| self.describe(o)),
        }
    }

    fn describe(&self, node: &NodeState) -> CommandNode {
        CommandNode::new(node, self.data_dirs.get(&node.id).cloned())
    }

    async fn run(
        &self,
        operation: &'static str,
        node: &NodeId,
        template: &CommandTemplate,
        values: &CommandValues,
    ) -> Result<(), Error> {
        let line = template.render(values);
        run_command(operation, &format!("node {node}"), &line, self.timeout).await
    }
}

#[async_trait]
impl NodeController for CommandNodeController {
    async fn promote(&self, node: &NodeState, term: u64) -> Result<(), Error> {
        let done = Some((node.id.clone(), term));
        if *self.promoted.lock().unwrap_or_else(PoisonError::into_inner) == done {
            tracing::debug!(node = %node.id, term, "already promoted, not running it again");
            return Ok(());
        }
        let values = self.promote_values(node, term);
        self.run("promote", &node.id, &self.promote, &values)
            .await?;
        *self.promoted.lock().unwrap_or_else(PoisonError::into_inner) = done;
        Ok(())
    }

    async fn follow(&self, node: &NodeState, primary: &NodeState) -> Result<(), Error> {
        let Some(template) = &self.follow else {
            return Err(self.unsupported("follow"));
        };
        let values = self.values(node, Some(primary));
        self.run("follow", &node.id, template, &values).await
    }

    async fn fence(&self, node: &NodeState) -> Result<Fenced, Error> {
        let Some(template) = &self.fence else {
            return Ok(Fenced::NotConfirmed {
                why: "no fence_command configured".to_string(),
            });
        };
        let topology = self.history.as_ref().map(PrimaryHistory::current);
        let primary = topology
            .as_deref()
            .and_then(Topology::primary)
            .filter(|p| p.id != node.id);
        let values = self.values(node, primary);
        match self.run("fence", &node.id, template, &values).await {
            Ok(()) => Ok(Fenced::Confirmed),
            // The command could not make sure: as for an unreachable node.
            Err(error @ Error::Command { .. }) => Ok(Fenced::NotConfirmed {
                why: error.to_string(),
            }),
            Err(error) => Err(error),
        }
    }

    async fn rejoin(&self, node: &NodeState, primary: &NodeState) -> Result<(), Error> {
        let Some(template) = &self.rejoin else {
            return Err(self.unsupported("rejoin"));
        };
        let values = self.values(node, Some(primary));
        self.run("rejoin", &node.id, template, &values).await
    }

    fn name(&self) -> &str {
        "command controller"
    }
}
