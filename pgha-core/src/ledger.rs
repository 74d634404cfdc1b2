//! Where the monitor records a term decision before carrying it out, and
//! learns the decisions other pgha nodes made.
//!
//! One pgha node keeps its decisions in a state file ([`StateFileLedger`]).
//! Several pgha nodes in front of the same servers share one ledger (the
//! watchdog's replicated record): a promotion is committed there before
//! `pg_promote()` runs, and every member's monitor adopts what was
//! committed, so each member's proxy routes writes to the primary of the
//! committed term only.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::admin::{admin_states, AdminStates};
use crate::monitor::state_file;
use crate::{Error, NodeId, Topology};

/// A decided term: `primary` is the primary of `term`; `admin` holds the
/// nodes' administrative states decided so far (detached, quarantined,
/// rejoining, in maintenance).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermRecord {
    /// pgha's term, raised by every promotion.
    pub term: u64,
    /// The primary of that term, if one was named.
    pub primary: Option<NodeId>,
    /// Every node that is not simply attached (records written before
    /// these were kept read back as "all attached").
    #[serde(default, skip_serializing_if = "AdminStates::is_empty")]
    pub admin: AdminStates,
}

impl TermRecord {
    /// `primary` as the primary of `term`, every node attached.
    pub fn new(term: u64, primary: Option<NodeId>) -> Self {
        TermRecord {
            term,
            primary,
            admin: AdminStates::new(),
        }
    }

    /// The term, primary and administrative states of `topology`.
    pub fn of(topology: &Topology) -> Self {
        TermRecord {
            term: topology.term(),
            primary: topology.primary_id().cloned(),
            admin: admin_states(topology),
        }
    }

    /// Whether `other` names the same term and primary (the administrative
    /// states may differ).
    pub fn same_term(&self, other: &TermRecord) -> bool {
        self.term == other.term && self.primary == other.primary
    }
}

/// What a ledger knows right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerView {
    /// Not known yet: a member that has not heard from its peers since it
    /// started. No write is routed until it is known.
    Unknown,
    /// Nothing was ever committed: the nodes' own evidence decides who is
    /// primary ([`evidence`](crate::evidence)).
    Empty,
    /// The last committed decision.
    Committed(TermRecord),
}

/// The durable (and, in a group of pgha nodes, agreed) memory of term
/// decisions.
///
/// # Contract
///
/// * `commit` returns `Ok` only once `record` is durable where every later
///   reader of this ledger will see it; the monitor carries out a
///   promotion only after that. An error means the decision must not be
///   acted on (for a shared ledger: this member no longer leads).
/// * `view` always holds the latest committed record and announces every
///   change, including records committed by other pgha nodes.
#[async_trait]
pub trait TermLedger: Send + Sync {
    /// Makes `record` durable before it is acted on.
    async fn commit(&self, record: &TermRecord) -> Result<(), Error>;

    /// The committed record, and every change to it.
    fn view(&self) -> watch::Receiver<LedgerView>;

    /// Whether other pgha nodes commit to this ledger too: then the monitor
    /// adopts their decisions, and a member that leads names the primary
    /// its evidence found when nothing was committed yet.
    fn shared(&self) -> bool {
        false
    }

    /// A short name for logs.
    fn name(&self) -> &str {
        "ledger"
    }
}

/// A ledger in one local file: written atomically and fsync'd
/// ([`state_file`]). What a single pgha node uses.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pgha_core::Error> {
/// use pgha_core::{LedgerView, StateFileLedger, TermLedger, TermRecord};
///
/// let dir = std::env::temp_dir().join(format!("pgha-ledger-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).ok();
/// let ledger = StateFileLedger::open(dir.join("state.json"))?;
/// assert_eq!(*ledger.view().borrow(), LedgerView::Empty);
/// let record = TermRecord::new(2, Some("b".into()));
/// ledger.commit(&record).await?;
/// assert_eq!(*ledger.view().borrow(), LedgerView::Committed(record));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StateFileLedger {
    path: PathBuf,
    view: watch::Sender<LedgerView>,
}

impl StateFileLedger {
    /// Reads `path` (a missing file is an empty ledger).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let view = match state_file::load(&path)? {
            Some(saved) => LedgerView::Committed(TermRecord {
                term: saved.term,
                primary: saved.primary,
                admin: saved.admin,
            }),
            None => LedgerView::Empty,
        };
        Ok(StateFileLedger {
            path,
            view: watch::channel(view).0,
        })
    }
}

#[async_trait]
impl TermLedger for StateFileLedger {
    async fn commit(&self, record: &TermRecord) -> Result<(), Error> {
        let saved = state_file::PersistedState {
            term: record.term,
            primary: record.primary.clone(),
            admin: record.admin.clone(),
        };
        // A few hundred bytes and two fsyncs: cheap next to the promotion
        // it precedes, but kept off the runtime's workers all the same.
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || state_file::store(&path, &saved))
            .await
            .map_err(|e| Error::StateFile {
                path: self.path.display().to_string(),
                problem: e.to_string(),
            })??;
        self.view
            .send_replace(LedgerView::Committed(record.clone()));
        Ok(())
    }

    fn view(&self) -> watch::Receiver<LedgerView> {
        self.view.subscribe()
    }

    fn name(&self) -> &str {
        "state file"
    }
}

/// A ledger that keeps nothing: what a monitor without a state file uses
/// (tests, embedders that keep the term themselves).
#[derive(Debug)]
pub struct NoLedger {
    view: watch::Sender<LedgerView>,
}

impl Default for NoLedger {
    fn default() -> Self {
        NoLedger {
            view: watch::channel(LedgerView::Empty).0,
        }
    }
}

#[async_trait]
impl TermLedger for NoLedger {
    async fn commit(&self, _record: &TermRecord) -> Result<(), Error> {
        Ok(())
    }

    fn view(&self) -> watch::Receiver<LedgerView> {
        self.view.subscribe()
    }

    fn name(&self) -> &str {
        "no ledger"
    }
}
