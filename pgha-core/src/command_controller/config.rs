//! The settings of [`CommandNodeController`](crate::CommandNodeController).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// The operator's commands, as pgpool-II's `failover_command` and
/// `follow_primary_command` (see [`CommandTemplate`](crate::CommandTemplate)
/// for the placeholders).
///
/// ```
/// use pgha_core::CommandControllerConfig;
/// use std::time::Duration;
///
/// let config = CommandControllerConfig {
///     follow_command: Some("/etc/pgha/follow_primary.sh %d %h %p %D %m %H %M %P %r %R".into()),
///     ..CommandControllerConfig::new("/etc/pgha/failover.sh %d %h %p %D %m %H %M %P %r %R %N %S")
/// };
/// assert_eq!(config.timeout, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandControllerConfig {
    /// Promotes a standby: pgpool's `failover_command`. `%d %h %p %D` are
    /// the failed (old) primary, `-1`/empty when unknown, and `%m %H %r %R`
    /// the node to promote, so pgpool's `failover.sh` works unchanged.
    /// Must succeed when the node already is a primary. Required.
    pub promote_command: String,
    /// Re-points a standby (`%d`…) at the new primary (`%m`…): pgpool's
    /// `follow_primary_command`. Default: none (follow is unsupported).
    #[serde(default)]
    pub follow_command: Option<String>,
    /// Fences a node (`%d`…): demotes or stops it. Default: none (fencing
    /// is never confirmed).
    #[serde(default)]
    pub fence_command: Option<String>,
    /// Rewinds a former primary (`%d`…) and starts it as a standby of the
    /// primary (`%m`…). Default: none (rejoin is unsupported).
    #[serde(default)]
    pub rejoin_command: Option<String>,
    /// How long one command may run before it is killed (with every process
    /// it started) and counted as failed. Written with a unit: `"90s"`,
    /// `"500ms"`, `"2m"`. Default: `"60s"`.
    #[serde(default = "default_timeout", with = "crate::duration_serde")]
    pub timeout: Duration,
    /// Each node's data directory, for `%D` and `%R`; a node without one
    /// renders as an empty word. Default: empty.
    #[serde(default)]
    pub data_dirs: BTreeMap<NodeId, PathBuf>,
}

/// 60 s: pgpool runs failover commands without a limit, but a promotion
/// that takes a minute has hung (`pg_ctl promote -w` waits at most 60 s).
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

impl CommandControllerConfig {
    /// Only a promote command; everything else at its default.
    pub fn new(promote_command: impl Into<String>) -> Self {
        CommandControllerConfig {
            promote_command: promote_command.into(),
            follow_command: None,
            fence_command: None,
            rejoin_command: None,
            timeout: default_timeout(),
            data_dirs: BTreeMap::new(),
        }
    }
}
