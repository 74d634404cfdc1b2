//! The replicated cluster record: the truth every member publishes.
//!
//! Pure data and pure transitions: the state machine applies committed
//! [`RecordChange`]s with [`ClusterRecord::apply`], and every member that
//! applies the same log reaches the same record.

use pgha_core::NodeId;
use serde::{Deserialize, Serialize};

/// The cluster's committed truth.
///
/// Today: the PostgreSQL term and its primary. Per-node administrative and
/// desired states join it in a later slice of issue #12.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// The PostgreSQL term (raised by every promotion); 0 before the first.
    pub term: u64,
    /// The primary of `term`, if one was ever named.
    pub primary: Option<NodeId>,
}

/// A change to the record, proposed by the leader and applied once
/// committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordChange {
    /// `primary` is the primary of `term` (committed before `pg_promote()`
    /// runs). `term` must be above the record's: the term never goes back.
    Promote {
        /// The new PostgreSQL term.
        term: u64,
        /// The node promoted in it.
        primary: NodeId,
    },
}

/// Why a change was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A promotion must raise the term.
    #[error("term {proposed} is not above the committed term {committed}")]
    StaleTerm {
        /// The record's term.
        committed: u64,
        /// The change's term.
        proposed: u64,
    },
}

impl ClusterRecord {
    /// The record after `change`, or why it stays as it is.
    ///
    /// ```
    /// use pgha_watchdog::{ClusterRecord, RecordChange};
    ///
    /// let r = ClusterRecord::default();
    /// let r = r.apply(&RecordChange::Promote { term: 2, primary: "node1".into() }).unwrap();
    /// assert_eq!(r.term, 2);
    /// // A promotion in an older term is refused: the term never goes back.
    /// assert!(r.apply(&RecordChange::Promote { term: 1, primary: "node0".into() }).is_err());
    /// ```
    pub fn apply(&self, change: &RecordChange) -> Result<ClusterRecord, Refusal> {
        match change {
            RecordChange::Promote { term, primary } => {
                // The first primary may be named in the term the record
                // already has (a new cluster settles on the nodes'
                // evidence); the same promotion twice changes nothing.
                let names_first = *term == self.term && self.primary.is_none();
                let again = *term == self.term && self.primary.as_ref() == Some(primary);
                if *term <= self.term && !names_first && !again {
                    return Err(Refusal::StaleTerm {
                        committed: self.term,
                        proposed: *term,
                    });
                }
                Ok(ClusterRecord {
                    term: *term,
                    primary: Some(primary.clone()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promote(term: u64, primary: &str) -> RecordChange {
        RecordChange::Promote {
            term,
            primary: primary.into(),
        }
    }

    #[test]
    fn a_promotion_raises_the_term_and_names_the_primary() {
        let r = ClusterRecord::default()
            .apply(&promote(1, "node0"))
            .and_then(|r| r.apply(&promote(3, "node1")));
        assert_eq!(
            r,
            Ok(ClusterRecord {
                term: 3,
                primary: Some("node1".into())
            })
        );
    }

    #[test]
    fn a_promotion_in_the_same_or_an_older_term_is_refused() {
        let r = ClusterRecord {
            term: 3,
            primary: Some("node1".into()),
        };
        for term in [1, 3] {
            assert_eq!(
                r.apply(&promote(term, "node0")),
                Err(Refusal::StaleTerm {
                    committed: 3,
                    proposed: term
                })
            );
        }
    }
}
