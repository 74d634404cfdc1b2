//! What the monitor tells embedders, on a broadcast channel.

use std::time::Duration;

use crate::{Action, AdminStates, Event};

/// One thing the monitor did, with its time since the monitor started.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorEvent {
    /// Time since the monitor started.
    pub at: Duration,
    /// What happened.
    pub kind: MonitorEventKind,
}

/// The kinds of [`MonitorEvent`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MonitorEventKind {
    /// The policy decided `actions` about `event`; `term` is the term after.
    Decided {
        /// What triggered the decision.
        event: Event,
        /// What was decided.
        actions: Vec<Action>,
        /// The term once the actions are recorded.
        term: u64,
    },
    /// A controller carried out an action.
    Executed {
        /// The action.
        action: Action,
        /// How long it took.
        took: Duration,
    },
    /// A controller could not carry out an action.
    ActionFailed {
        /// The action.
        action: Action,
        /// Why.
        error: String,
    },
    /// A fence could not be confirmed (the node was unreachable): it stays
    /// quarantined and is fenced again when it is seen.
    FenceNotConfirmed {
        /// The node.
        node: String,
        /// Why.
        why: String,
    },
    /// A term another pgha node committed to the shared ledger was taken
    /// on: `primary` is the primary of `term`.
    Adopted {
        /// The committed term.
        term: u64,
        /// Its primary, if named.
        primary: Option<String>,
    },
    /// Node states another pgha node (the leader) committed in the
    /// current term were taken on: every node not named is attached.
    AdoptedStates {
        /// The committed administrative states.
        states: AdminStates,
    },
    /// Started without a durable term, the monitor weighed the nodes'
    /// evidence: `primary` is the node it names, or `held` why no node may
    /// take writes until an operator promotes one.
    Settled {
        /// The primary the evidence names, if any.
        primary: Option<String>,
        /// Why writes are held, if they are.
        held: Option<String>,
    },
    /// A planned switchover paused new transactions (`true`) or resumed
    /// them (`false`).
    Paused(bool),
}
