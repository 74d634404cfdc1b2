//! pgha-core's [`TermLedger`] on the replicated record: a promotion is
//! committed to a quorum before it is carried out, and every member's
//! monitor adopts what the leader committed.

use async_trait::async_trait;
use openraft::error::{ClientWriteError, RaftError};
use pgha_core::{LedgerView, TermLedger, TermRecord};
use tokio::sync::watch;

use crate::record::{ClusterRecord, RecordChange};
use crate::types::{ChangeOutcome, MemberId, Raft};

/// One member's view of the cluster record as a [`TermLedger`]
/// (from [`crate::Member::ledger`]).
///
/// Its view is [`LedgerView::Unknown`] until the member has heard a leader
/// and applied every entry it holds: a member restarted with an empty state
/// directory learns the committed term from its peers before its proxy
/// routes a single write. Once known it stays known (a member that later
/// loses contact keeps the last record; it cannot act on it anyway).
#[derive(Clone)]
pub struct WatchdogLedger {
    pub(crate) member: MemberId,
    pub(crate) raft: Raft,
    pub(crate) view: watch::Receiver<LedgerView>,
}

impl std::fmt::Debug for WatchdogLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogLedger")
            .field("member", &self.member)
            .field("view", &*self.view.borrow())
            .finish()
    }
}

impl WatchdogLedger {
    pub(crate) fn start(
        member: MemberId,
        raft: Raft,
        record: watch::Receiver<ClusterRecord>,
    ) -> WatchdogLedger {
        let (tx, view) = watch::channel(LedgerView::Unknown);
        tokio::spawn(publish(raft.clone(), record, tx));
        WatchdogLedger { member, raft, view }
    }
}

/// Turns openraft's metrics and the applied record into the ledger's view
/// until the member stops.
async fn publish(
    raft: Raft,
    mut record: watch::Receiver<ClusterRecord>,
    tx: watch::Sender<LedgerView>,
) {
    let mut metrics = raft.metrics();
    let mut known = false;
    loop {
        if !known {
            let m = metrics.borrow_and_update().clone();
            let applied = m.last_applied.map(|l| l.index);
            // Heard a leader, and nothing it sent is still unapplied: the
            // record is at least as new as the leader's commit we know of.
            known = m.current_leader.is_some() && applied >= m.last_log_index;
        }
        if known {
            let view = view_of(&record.borrow_and_update());
            tx.send_if_modified(|current| {
                if *current == view {
                    false
                } else {
                    *current = view;
                    true
                }
            });
        }
        tokio::select! {
            changed = metrics.changed(), if !known => if changed.is_err() { return },
            changed = record.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
        }
    }
}

fn view_of(record: &ClusterRecord) -> LedgerView {
    match &record.primary {
        None if record.term == 0 => LedgerView::Empty,
        primary => LedgerView::Committed(TermRecord {
            term: record.term,
            primary: primary.clone(),
            admin: record.admin.clone(),
        }),
    }
}

#[async_trait]
impl TermLedger for WatchdogLedger {
    async fn commit(&self, record: &TermRecord) -> Result<(), pgha_core::Error> {
        let same_term = match &*self.view.borrow() {
            LedgerView::Committed(committed) => committed.same_term(record),
            LedgerView::Unknown | LedgerView::Empty => false,
        };
        let change = if same_term {
            // Only node states changed: the record refuses them if the
            // term moved on meanwhile.
            RecordChange::States {
                term: record.term,
                admin: record.admin.clone(),
            }
        } else {
            let Some(primary) = record.primary.clone() else {
                return Err(ledger_error("a term without a primary is not recorded"));
            };
            RecordChange::Promote {
                term: record.term,
                primary,
                admin: record.admin.clone(),
            }
        };
        match self.raft.client_write(change).await {
            Ok(written) => match written.data {
                ChangeOutcome::Applied(_) => Ok(()),
                ChangeOutcome::Refused { reason, .. } => Err(ledger_error(&reason)),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                tracing::info!(member = self.member, leader = ?f.leader_id, "not the leader: decision not recorded");
                Err(pgha_core::Error::NotLeading {
                    ledger: "watchdog record".into(),
                })
            }
            Err(e) => Err(ledger_error(&e.to_string())),
        }
    }

    fn view(&self) -> watch::Receiver<LedgerView> {
        self.view.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "watchdog record"
    }
}

fn ledger_error(problem: &str) -> pgha_core::Error {
    pgha_core::Error::Ledger {
        ledger: "watchdog record".into(),
        problem: problem.to_string(),
    }
}
