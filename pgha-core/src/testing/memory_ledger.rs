//! A shared ledger in memory: several monitors in one test act as the
//! members of one pgha cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::{Error, LedgerView, TermLedger, TermRecord};

/// One cluster-wide record; [`MemoryLedger::member`] hands out a ledger per
/// monitor. A member's commits succeed only while the test says it leads
/// ([`MemberLedger::set_leading`]), like a watchdog member's.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use pgha_core::testing::MemoryLedger;
/// use pgha_core::{LedgerView, TermLedger, TermRecord};
///
/// let cluster = MemoryLedger::new(LedgerView::Empty);
/// let (a, b) = (cluster.member(), cluster.member());
/// let record = TermRecord::new(2, Some("node1".into()));
/// assert!(a.commit(&record).await.is_err(), "a does not lead");
/// a.set_leading(true);
/// assert!(a.commit(&record).await.is_ok());
/// assert_eq!(*b.view().borrow(), LedgerView::Committed(record));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryLedger {
    view: Arc<watch::Sender<LedgerView>>,
}

/// One member's handle on a [`MemoryLedger`].
#[derive(Debug)]
pub struct MemberLedger {
    view: Arc<watch::Sender<LedgerView>>,
    leading: AtomicBool,
}

impl MemoryLedger {
    /// A cluster record starting as `view`.
    pub fn new(view: LedgerView) -> Self {
        MemoryLedger {
            view: Arc::new(watch::channel(view).0),
        }
    }

    /// A new member's ledger (not leading).
    pub fn member(&self) -> Arc<MemberLedger> {
        Arc::new(MemberLedger {
            view: self.view.clone(),
            leading: AtomicBool::new(false),
        })
    }

    /// Sets the record as if the members had just learned it.
    pub fn publish(&self, view: LedgerView) {
        self.view.send_replace(view);
    }
}

impl MemberLedger {
    /// Whether this member's commits succeed.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }
}

#[async_trait]
impl TermLedger for MemberLedger {
    async fn commit(&self, record: &TermRecord) -> Result<(), Error> {
        if !self.leading.load(Ordering::SeqCst) {
            return Err(Error::NotLeading {
                ledger: "memory ledger".into(),
            });
        }
        self.view
            .send_replace(LedgerView::Committed(record.clone()));
        Ok(())
    }

    fn view(&self) -> watch::Receiver<LedgerView> {
        self.view.subscribe()
    }

    fn shared(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "memory ledger"
    }
}
