//! The monitor and its [`TermLedger`]: decisions recorded before they are
//! carried out; decisions other pgha nodes committed, adopted.

use std::future::Future;
use std::pin::Pin;

use super::{ClusterMonitor, MonitorEventKind};
use crate::{admin_states, Error, LedgerView, TermRecord, Topology};

impl ClusterMonitor {
    /// Records the model's term and primary in the ledger: the promotion
    /// that raised the term may be carried out once this returns `Ok`.
    pub(super) async fn record_decision(&self) -> Result<(), Error> {
        let record = TermRecord::of(self.state.topology());
        self.ledger.commit(&record).await.inspect_err(|e| {
            tracing::error!(term = record.term, primary = ?record.primary, ledger = self.ledger.name(), error = %e, "decision not recorded: not carried out");
        })
    }

    /// Whether the step from `before` decided something the ledger keeps:
    /// a new term, or (once a primary is named, so that a restart does not
    /// take a guess for a decision) a node's administrative state.
    pub(super) fn must_record(&self, before: &Topology) -> bool {
        let now = self.state.topology();
        now.term() != before.term()
            || (now.primary_id().is_some() && admin_states(now) != admin_states(before))
    }

    /// Whether this monitor may record decisions now: always with its own
    /// ledger; with a shared one only while it may act (the leader).
    pub(super) fn may_record(&self) -> bool {
        !self.ledger.shared() || self.state.topology().permission().allows_actions()
    }

    /// Waits until the ledger knows the committed term (a member that has
    /// not heard from its peers yet); `false` if `shutdown` came first.
    pub(super) async fn learn_view(
        &mut self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        if *self.ledger_view.borrow_and_update() != LedgerView::Unknown {
            return true;
        }
        tracing::info!(
            ledger = self.ledger.name(),
            "waiting for the committed term before routing writes"
        );
        let known = self.ledger_view.wait_for(|v| *v != LedgerView::Unknown);
        tokio::select! {
            () = shutdown => return false,
            known = known => if known.is_err() {
                // The ledger is gone; nothing will ever be committed.
                return false;
            },
        }
        let view = self.ledger_view.borrow_and_update().clone();
        if let LedgerView::Committed(record) = view {
            self.take_on(&record);
            self.unsettled = false;
        }
        true
    }

    /// A new committed record: adopt it if another member decided it.
    pub(super) async fn adopt(&mut self) {
        let view = self.ledger_view.borrow_and_update().clone();
        let LedgerView::Committed(record) = view else {
            return;
        };
        let model = TermRecord::of(self.state.topology());
        let newer = record.term > model.term
            || (record.term == model.term
                && record.primary.is_some()
                && record.primary != model.primary);
        if newer {
            self.take_on(&record);
            return;
        }
        // The same term: the leader's administrative decisions (a detach, a
        // quarantine, maintenance). The member that may act wrote them and
        // never reads them back over its own model.
        let writer = self.state.topology().permission().allows_actions();
        if record.same_term(&model) && !writer && self.state.adopt_admin(&record.admin) {
            tracing::info!(admin = ?record.admin, ledger = self.ledger.name(), "adopting the committed node states");
            self.emit(MonitorEventKind::AdoptedStates {
                states: record.admin.clone(),
            });
            self.publish();
        }
    }

    fn take_on(&mut self, record: &TermRecord) {
        tracing::info!(term = record.term, primary = ?record.primary, ledger = self.ledger.name(), "adopting the committed term");
        self.state.adopt(record);
        self.state.adopt_admin(&record.admin);
        // The leader commits before it promotes: until this member sees the
        // new primary writable, a write sent there would only be refused.
        let waiting = record.primary.as_ref().filter(|id| {
            self.state
                .topology()
                .node(id)
                .is_some_and(|n| n.in_recovery != Some(false))
        });
        if let Some(id) = waiting {
            self.state.hold_writes(Some(format!(
                "term {}: waiting for {id} to finish its promotion",
                record.term
            )));
            self.pending_promotion = Some(id.clone());
            let _ = self.wake_tx.send(id.clone());
        } else {
            self.pending_promotion = None;
        }
        self.emit(MonitorEventKind::Adopted {
            term: record.term,
            primary: record.primary.as_ref().map(|p| p.to_string()),
        });
        self.publish();
    }

    /// Lets writes go once an adopted primary is seen writable.
    pub(super) fn check_promoted(&mut self) {
        let Some(id) = &self.pending_promotion else {
            return;
        };
        let promoted = self
            .state
            .topology()
            .node(id)
            .is_some_and(|n| n.in_recovery == Some(false));
        if promoted {
            tracing::info!(primary = %id, "adopted primary seen writable: writes routed");
            self.pending_promotion = None;
            self.state.hold_writes(None);
            self.publish();
        }
    }

    /// A member that just became leader names the primary its evidence
    /// found, when the shared ledger names none yet, so every member routes
    /// writes to the same node.
    pub(super) async fn name_settled_primary(&mut self) {
        if !self.ledger.shared() || self.unsettled {
            return;
        }
        let empty = match &*self.ledger_view.borrow() {
            LedgerView::Empty => true,
            LedgerView::Committed(r) => r.primary.is_none(),
            LedgerView::Unknown => false,
        };
        if empty && self.state.topology().primary_id().is_some() {
            let _ = self.record_decision().await;
        }
    }
}
