//! Standbys suspected of not answering: new reads avoid them at once,
//! without waiting for the monitor's verdict.
//!
//! A standby that froze (SIGSTOP, a stalled disk, a dropped link) keeps its
//! place in the topology until the monitor's probes fail often enough, and
//! every read routed to it meanwhile waits. A session that sees one read go
//! unanswered past its deadline, or a connect fail, suspects the node: the
//! monitor is asked to probe it now, and reads go elsewhere until the
//! monitor says again that it answers (a healthy probe after the
//! suspicion). Without any probe since (no monitor behind the topology), a
//! suspicion lapses after [`LAPSE`], so a node is tried again.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pgha_core::{NodeId, NodeState, Topology};

/// How long a suspicion holds when no probe of the node arrives at all: a
/// few of the monitor's default probe intervals (1 s).
pub(crate) const LAPSE: Duration = Duration::from_secs(5);

/// When a node was suspected and what the monitor had said of it by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Suspicion {
    since: Instant,
    /// The node's `last_observed_at` when suspected: a later one is the
    /// monitor's next verdict.
    observed: Option<Duration>,
}

/// Whether `suspicion` of `node` still holds at `now`: until a probe after
/// it found the node healthy; a failed one confirms it; with none, until it
/// lapses.
fn holds(suspicion: Suspicion, node: &NodeState, now: Instant) -> bool {
    if node.last_observed_at > suspicion.observed {
        node.consecutive_failures > 0
    } else {
        now.saturating_duration_since(suspicion.since) < LAPSE
    }
}

/// The suspected nodes of one proxy.
#[derive(Debug, Default)]
pub(crate) struct Suspects {
    /// How many there are: a routed read checks this one atomic while
    /// there are none (almost always).
    count: AtomicUsize,
    nodes: Mutex<HashMap<NodeId, Suspicion>>,
}

impl Suspects {
    /// Suspects `node` (as the topology shows it now); `false` if it
    /// already was.
    pub(crate) fn suspect(&self, node: &NodeState, now: Instant) -> bool {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Suspicion {
            since: now,
            observed: node.last_observed_at,
        };
        let new = !nodes.get(&node.id).is_some_and(|s| holds(*s, node, now));
        if new {
            nodes.insert(node.id.clone(), fresh);
            self.count.store(nodes.len(), Ordering::Relaxed);
        }
        new
    }

    /// Whether reads should avoid `node` now; forgets a suspicion that no
    /// longer holds.
    pub(crate) fn avoid(&self, node: &NodeState, now: Instant) -> bool {
        if self.count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(suspicion) = nodes.get(&node.id).copied() else {
            return false;
        };
        if holds(suspicion, node, now) {
            return true;
        }
        nodes.remove(&node.id);
        self.count.store(nodes.len(), Ordering::Relaxed);
        tracing::info!(node = %node.id, "standby no longer suspected: reads may go to it again");
        false
    }

    /// The nodes of `topology` whose suspicion holds at `now`, for the
    /// admin console.
    pub(crate) fn holding(&self, topology: &Topology, now: Instant) -> BTreeSet<NodeId> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes
            .iter()
            .filter(|(id, s)| topology.node(id).is_some_and(|n| holds(**s, n, now)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether any node is suspected (not checking whether it still holds).
    pub(crate) fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgha_core::Role;

    fn standby(observed: Option<u64>, failures: u32) -> NodeState {
        let mut n = NodeState::new("s", Role::Standby, "h", 5432);
        n.last_observed_at = observed.map(Duration::from_secs);
        n.consecutive_failures = failures;
        n
    }

    #[test]
    fn a_suspicion_holds_until_a_healthy_probe_after_it() {
        let suspects = Suspects::default();
        let t0 = Instant::now();
        assert!(!suspects.avoid(&standby(Some(1), 0), t0), "none yet");
        assert!(suspects.suspect(&standby(Some(1), 0), t0));
        assert!(!suspects.suspect(&standby(Some(1), 0), t0), "already");
        // No verdict since: avoided.
        assert!(suspects.avoid(&standby(Some(1), 0), t0));
        // The probe it triggered failed: still avoided, even past the lapse.
        assert!(suspects.avoid(&standby(Some(2), 1), t0 + LAPSE * 2));
        // A healthy probe after the suspicion clears it.
        assert!(!suspects.avoid(&standby(Some(3), 0), t0));
        assert!(!suspects.any());
        // Another node was never suspected.
        let mut other = standby(Some(1), 0);
        other.id = NodeId::new("other");
        suspects.suspect(&standby(Some(3), 0), t0);
        assert!(!suspects.avoid(&other, t0));
    }

    #[test]
    fn the_console_lists_the_suspicions_that_hold() {
        let suspects = Suspects::default();
        let t0 = Instant::now();
        suspects.suspect(&standby(Some(1), 0), t0);
        let list = |node: NodeState| {
            let topology = Topology::new([NodeState::new("p", Role::Primary, "h", 1), node]);
            suspects
                .holding(&topology, t0)
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(list(standby(Some(1), 0)), [NodeId::new("s")]);
        assert!(list(standby(Some(2), 0)).is_empty(), "probed healthy since");
    }

    #[test]
    fn without_any_probe_a_suspicion_lapses() {
        let suspects = Suspects::default();
        let t0 = Instant::now();
        suspects.suspect(&standby(None, 0), t0);
        assert!(suspects.avoid(&standby(None, 0), t0 + LAPSE / 2));
        assert!(!suspects.avoid(&standby(None, 0), t0 + LAPSE));
        // Lapsed: suspecting again starts a new one.
        assert!(suspects.suspect(&standby(None, 0), t0 + LAPSE));
    }
}
