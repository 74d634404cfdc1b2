//! [`QuorumProbe`]: pgha-core's `HealthProbe` that answers with the
//! cluster's agreed view of a node instead of one member's.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pgha_core::{FailureReason, HealthProbe, NodeId, NodeState, Observation};
use tokio::sync::mpsc;

use crate::agreement;
use crate::views::ViewBook;

/// How long past its deadline the wrapped probe may run before it counts
/// as timed out (below the monitor's own 50 ms allowance).
const OVERRUN: Duration = Duration::from_millis(40);

/// A [`HealthProbe`] for pgha-core's monitor that fails a PostgreSQL node
/// only when the members agree (pgpool's `failover_require_consensus`).
/// Made by [`Member::quorum_probe`](crate::Member::quorum_probe).
///
/// `probe(node)` runs the wrapped local probe, sends the result to every
/// peer (over the member's own authenticated transport) and returns:
///
/// | local probe | cluster (see [`agreement::agree`]) | the monitor sees |
/// |---|---|---|
/// | healthy | not failed | the local observation |
/// | failed | failed | the local observation — or a peer's `Crashed`, so pgha-core's policy acts at once on a crash one member saw while it was still outvoted |
/// | failed | not failed | the `Healthy` observation of the in-contact peer whose views arrived last (its LSNs and lag, at most one contact window old); with no such peer (this member's peers' views are late), the latest healthy observation of the node anyone reported; only a node nobody has seen healthy since the member started is reported failed |
/// | healthy | failed | `Failed`, with the reason of the freshest peer that sees it failed (`Crashed` first) |
///
/// The cluster counts a node failed when more than half of the members in
/// contact (views received within `contact_window`) that probe it report
/// it failed, and at least two do. So a member whose own link to the
/// primary broke, while its peers still reach the primary, keeps seeing a
/// healthy primary: the monitor never counts a failure and never fails
/// over. A member that lost its peers' views (cut off, or peers not
/// probing) never sees a failure agreed either — and, cut off, holds no
/// lease to act on one.
///
/// Speed: when a peer's view of a node flips (healthy <-> failed) or
/// changes the agreement, the monitor is woken for that node through the
/// wake channel it gave [`set_wake`](HealthProbe::set_wake), so a crash
/// seen by two members is agreed within a message delay and a probe, not
/// at the next probe round.
///
/// `set_wake`, `timeline_ancestors`, `release` and `name` go to the
/// wrapped probe (the wake channel is also kept for peers' changes).
///
/// `contact_window` should cover a few probe rounds of every member
/// (3 × `probe_interval` + `probe_timeout`, as
/// [`Probing::contact_window`](crate::witness::Probing::contact_window)),
/// so one late or lost message does not put a peer out of contact.
#[derive(Clone)]
pub struct QuorumProbe {
    inner: Arc<dyn HealthProbe>,
    views: Arc<ViewBook>,
    contact_window: Duration,
    reach: Option<Arc<ReachFeed>>,
}

/// What the probe tells the member about its own reach of the committed
/// primary (see [`crate::gate::Reach`]).
pub(crate) struct ReachFeed {
    pub(crate) record: tokio::sync::watch::Receiver<crate::ClusterRecord>,
    pub(crate) plan: std::sync::Mutex<crate::gate::Reach>,
    pub(crate) gate: Arc<crate::gate::Gate>,
}

impl ReachFeed {
    fn observe(&self, node: &NodeId, local_failed: bool, group_failed: bool) {
        if self.record.borrow().primary.as_ref() != Some(node) {
            return;
        }
        let now = tokio::time::Instant::now();
        let change = self.plan.lock().unwrap_or_else(|p| p.into_inner()).observe(
            now,
            local_failed,
            group_failed,
        );
        if let Some(step_aside) = change {
            self.gate
                .set(crate::gate::Reason::PrimaryUnreachable, step_aside);
        }
    }
}

impl std::fmt::Debug for QuorumProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumProbe")
            .field("inner", &self.inner.name())
            .field("contact_window", &self.contact_window)
            .finish()
    }
}

impl QuorumProbe {
    pub(crate) fn new(
        inner: Arc<dyn HealthProbe>,
        views: Arc<ViewBook>,
        contact_window: Duration,
        reach: Option<Arc<ReachFeed>>,
    ) -> Self {
        QuorumProbe {
            inner,
            views,
            contact_window,
            reach,
        }
    }

    /// The contact window peers' views are judged with.
    pub fn contact_window(&self) -> Duration {
        self.contact_window
    }
}

#[async_trait]
impl HealthProbe for QuorumProbe {
    async fn probe(&self, node: &NodeState, timeout: Duration) -> Observation {
        // The contract says a probe returns in time; an overrun must still
        // become a view, or this member's view of the node would go stale
        // and stop counting instead of counting as failed.
        let local = tokio::time::timeout(OVERRUN + timeout, self.inner.probe(node, timeout))
            .await
            .unwrap_or(Observation::Failed {
                reason: FailureReason::Timeout,
            });
        self.views
            .record_mine(&node.id, local.clone(), self.contact_window);
        let verdict = self.views.verdict(&node.id, self.contact_window);
        let local_failed = agreement::is_failed(&local);
        if let Some(reach) = &self.reach {
            reach.observe(&node.id, local_failed, verdict.failed);
        }
        if local_failed && verdict.failed && !agreement::is_crash(&local) {
            // Agreed, and a peer saw the crash signature (the monitoring
            // connection vanished and a reconnect was refused) that this
            // member's probe may have consumed on an earlier, outvoted
            // probe: pass it on, so the policy acts at once.
            if let Some(crash) = verdict
                .freshest_failed
                .as_ref()
                .filter(|o| agreement::is_crash(o))
            {
                return crash.clone();
            }
        }
        if local_failed == verdict.failed {
            return local;
        }
        let (replacement, kind) = if local_failed {
            (verdict.freshest_healthy.or(verdict.last_healthy), "healthy")
        } else {
            (verdict.freshest_failed, "failed")
        };
        tracing::debug!(
            node = %node.id,
            local_failed,
            probers = verdict.probers,
            reporting_failed = verdict.reporting_failed,
            "the cluster disagrees with the local probe: reporting it {kind}"
        );
        // Failed locally but not agreed, with no healthy view ever seen
        // (a node nobody reached since this member started): nothing else
        // to report. Otherwise the verdict contradicts `local`, so a
        // report of the other kind exists.
        replacement.unwrap_or(local)
    }

    fn set_wake(&self, wake: mpsc::UnboundedSender<NodeId>) {
        self.views.set_waker(wake.clone(), self.contact_window);
        self.inner.set_wake(wake);
    }

    async fn timeline_ancestors(&self, node: &NodeState, timeout: Duration) -> Option<Vec<u32>> {
        self.inner.timeline_ancestors(node, timeout).await
    }

    fn release(&self, node: &NodeId) {
        self.inner.release(node);
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}
