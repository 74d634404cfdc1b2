//! Which node was primary in which term, as published topologies showed.
//!
//! `%P`, `%N`, `%S` name the *old* primary, but by the time a promotion is
//! carried out the published topology may already show the new one (a
//! monitor publishes first so that routers stop writing to the old primary
//! at once). So the controller remembers the primary of each term it has
//! seen, from a task that follows the topology channel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::{NodeId, NodeState, Topology};

/// Terms remembered: failovers are rare, a few are plenty.
const KEEP_TERMS: usize = 8;

type Primaries = Arc<Mutex<BTreeMap<u64, NodeState>>>;

/// The primaries of recent terms, kept up to date from a topology channel.
#[derive(Debug)]
pub(crate) struct PrimaryHistory {
    topology: watch::Receiver<Arc<Topology>>,
    primaries: Primaries,
    follower: Option<AbortHandle>,
}

impl PrimaryHistory {
    /// Starts following `topology` (on the current Tokio runtime, if any;
    /// without one only the topologies seen at calls are remembered).
    pub(crate) fn follow(topology: watch::Receiver<Arc<Topology>>) -> Self {
        let primaries = Primaries::default();
        record(&primaries, &topology.borrow());
        let follower = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let mut changes = topology.clone();
                let primaries = Arc::clone(&primaries);
                let task = runtime.spawn(async move {
                    while changes.changed().await.is_ok() {
                        let snapshot = Arc::clone(&changes.borrow_and_update());
                        record(&primaries, &snapshot);
                    }
                });
                Some(task.abort_handle())
            }
            Err(_) => {
                tracing::warn!(
                    "command controller built outside a Tokio runtime: old primaries are \
                     only known from the topology seen at each call"
                );
                None
            }
        };
        PrimaryHistory {
            topology,
            primaries,
            follower,
        }
    }

    /// The current topology (also remembered).
    pub(crate) fn current(&self) -> Arc<Topology> {
        let snapshot = Arc::clone(&self.topology.borrow());
        record(&self.primaries, &snapshot);
        snapshot
    }

    /// The primary of the latest term before `before_term` (any term when
    /// `None`) that is not `new_primary`.
    pub(crate) fn old_primary(
        &self,
        before_term: Option<u64>,
        new_primary: Option<&NodeId>,
    ) -> Option<NodeState> {
        self.current();
        let primaries = self
            .primaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        primaries
            .iter()
            .rev()
            .filter(|(term, _)| match before_term {
                Some(before) => **term < before,
                None => true,
            })
            .map(|(_, node)| node)
            .find(|node| Some(&node.id) != new_primary)
            .cloned()
    }
}

impl Drop for PrimaryHistory {
    fn drop(&mut self) {
        if let Some(follower) = &self.follower {
            follower.abort();
        }
    }
}

fn record(primaries: &Primaries, topology: &Topology) {
    let Some(primary) = topology.primary() else {
        return;
    };
    let mut primaries = primaries.lock().unwrap_or_else(PoisonError::into_inner);
    primaries.insert(topology.term(), primary.clone());
    while primaries.len() > KEEP_TERMS {
        primaries.pop_first();
    }
}
