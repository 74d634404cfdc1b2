//! The replicated cluster record: the truth every member publishes.
//!
//! Pure data and pure transitions: the state machine applies committed
//! [`RecordChange`]s with [`ClusterRecord::apply`], and every member that
//! applies the same log reaches the same record.

use pgha_core::{AdminStates, NodeId};
use serde::{Deserialize, Serialize};

/// The cluster's committed truth: the PostgreSQL term, its primary, and
/// each node's administrative state (detached, quarantined, rejoining, in
/// maintenance; a node not named is attached).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// The PostgreSQL term (raised by every promotion); 0 before the first.
    pub term: u64,
    /// The primary of `term`, if one was ever named.
    pub primary: Option<NodeId>,
    /// The nodes that are not simply attached.
    #[serde(default)]
    pub admin: AdminStates,
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
        /// The nodes' administrative states once it is carried out
        /// (entries written before these were kept: all attached).
        #[serde(default)]
        admin: AdminStates,
    },
    /// The nodes' administrative states in `term` (a detach, an attach, a
    /// quarantine, maintenance). Refused unless `term` is the record's: a
    /// decision about an older term's cluster must not undo a newer one's.
    States {
        /// The term the decision was made in.
        term: u64,
        /// Every node that is not simply attached.
        admin: AdminStates,
    },
}

impl RecordChange {
    /// `primary` promoted in `term`, every other node attached.
    pub fn promote(term: u64, primary: impl Into<NodeId>) -> Self {
        RecordChange::Promote {
            term,
            primary: primary.into(),
            admin: AdminStates::new(),
        }
    }
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
    /// Node states decided in another term than the record's.
    #[error("node states of term {proposed} do not apply to the committed term {committed}")]
    OtherTerm {
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
    /// let promote = |term, primary: &str| RecordChange::Promote {
    ///     term,
    ///     primary: primary.into(),
    ///     admin: Default::default(),
    /// };
    /// let r = r.apply(&promote(2, "node1")).unwrap();
    /// assert_eq!(r.term, 2);
    /// // A promotion in an older term is refused: the term never goes back.
    /// assert!(r.apply(&promote(1, "node0")).is_err());
    /// ```
    pub fn apply(&self, change: &RecordChange) -> Result<ClusterRecord, Refusal> {
        match change {
            RecordChange::States { term, admin } => {
                if *term != self.term {
                    return Err(Refusal::OtherTerm {
                        committed: self.term,
                        proposed: *term,
                    });
                }
                Ok(ClusterRecord {
                    admin: admin.clone(),
                    ..self.clone()
                })
            }
            RecordChange::Promote {
                term,
                primary,
                admin,
            } => {
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
                    admin: admin.clone(),
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
            admin: AdminStates::new(),
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
                primary: Some("node1".into()),
                admin: AdminStates::new(),
            })
        );
    }

    #[test]
    fn a_promotion_in_the_same_or_an_older_term_is_refused() {
        let r = ClusterRecord {
            term: 3,
            primary: Some("node1".into()),
            admin: AdminStates::new(),
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

    #[test]
    fn node_states_apply_only_in_the_records_term() {
        use pgha_core::AdminState;
        let r = ClusterRecord::default()
            .apply(&promote(2, "node0"))
            .unwrap_or_default();
        let detached = AdminStates::from([("node1".into(), AdminState::Detached)]);
        let states = |term| RecordChange::States {
            term,
            admin: detached.clone(),
        };
        let after = r.apply(&states(2));
        assert_eq!(after.as_ref().map(|a| &a.admin), Ok(&detached));
        assert_eq!(after.as_ref().map(|a| a.term), Ok(2));
        assert_eq!(
            r.apply(&states(1)),
            Err(Refusal::OtherTerm {
                committed: 2,
                proposed: 1
            })
        );
        // A promotion carries the states decided with it.
        let promoted = after
            .and_then(|a| a.apply(&promote(3, "node1")))
            .map(|a| a.admin);
        assert_eq!(promoted, Ok(AdminStates::new()));
    }

    #[test]
    fn a_log_entry_from_before_node_states_reads_back() {
        let old = r#"{"Promote":{"term":4,"primary":"node1"}}"#;
        let change: Result<RecordChange, _> = serde_json::from_str(old);
        assert_eq!(change.ok(), Some(promote(4, "node1")));
    }
}
