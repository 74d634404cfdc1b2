//! The gate between pgha nodes: may this monitor act on failures now?

use tokio::sync::watch;

/// Says whether this pgha node may carry out failover actions — in a
/// multi-node deployment, whether it is the leader of a quorum.
///
/// # Contract
///
/// * The receiver always holds the current answer; a change is announced
///   at once (a node that loses quorum must stop acting before anything
///   else happens).
/// * `false` is the safe answer: a coordinator that cannot tell says
///   `false`.
///
/// While permission is withheld the monitor still probes and records what
/// it sees, but decides nothing; once permission is granted the policy
/// catches up on what was confirmed in the meantime.
pub trait Coordinator: Send + Sync {
    /// The current permission, and every change to it.
    fn permission(&self) -> watch::Receiver<bool>;

    /// A short name for logs.
    fn name(&self) -> &str {
        "coordinator"
    }
}

/// A coordinator whose permission is set by hand (by an embedder's own
/// leader election, an operator, or a test).
///
/// ```
/// use pgha_core::{Coordinator, ManualCoordinator};
///
/// let gate = ManualCoordinator::new(false);
/// let seen = gate.permission();
/// assert!(!*seen.borrow());
/// gate.grant(true);
/// assert!(*seen.borrow());
/// ```
#[derive(Debug)]
pub struct ManualCoordinator {
    permission: watch::Sender<bool>,
}

impl ManualCoordinator {
    /// A gate that starts open (`true`) or closed.
    pub fn new(granted: bool) -> Self {
        Self {
            permission: watch::channel(granted).0,
        }
    }

    /// Opens (`true`) or closes the gate.
    pub fn grant(&self, granted: bool) {
        self.permission.send_replace(granted);
    }
}

impl Coordinator for ManualCoordinator {
    fn permission(&self) -> watch::Receiver<bool> {
        self.permission.subscribe()
    }

    fn name(&self) -> &str {
        "manual coordinator"
    }
}
