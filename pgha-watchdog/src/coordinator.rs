//! pgha-core's [`Coordinator`]: a monitor may act only while its member is
//! the Raft leader with a valid lease.

use pgha_core::Coordinator;
use tokio::sync::watch;

/// The permission of one watchdog member: `true` exactly while its lease
/// is held (see [`crate::Member::lease`]). A follower, a candidate, a
/// leader still waiting out an older lease, a leader that lost its quorum
/// and a stopped member all say `false`.
#[derive(Debug, Clone)]
pub struct LeaseCoordinator {
    pub(crate) permission: watch::Receiver<bool>,
}

impl Coordinator for LeaseCoordinator {
    fn permission(&self) -> watch::Receiver<bool> {
        self.permission.clone()
    }

    fn name(&self) -> &str {
        "watchdog lease"
    }
}
