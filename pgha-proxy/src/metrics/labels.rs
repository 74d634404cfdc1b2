//! The label values of pgha's metrics: a node name made once and shared,
//! and closed sets of words as enums, so recording never formats a string.

use std::fmt::{self, Write};
use std::sync::Arc;

use pgha_core::NodeId;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::classify;

/// A node's name as a label value. Cloning it copies a pointer, so a
/// session makes one per server connection (or the pool one per node) and
/// passes it to every record call instead of building a label each time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeLabel(Arc<str>);

impl NodeLabel {
    /// The label for the node named `name`.
    pub fn new(name: &str) -> Self {
        NodeLabel(Arc::from(name))
    }

    /// The node's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&NodeId> for NodeLabel {
    fn from(id: &NodeId) -> Self {
        NodeLabel::new(id.as_str())
    }
}

impl EncodeLabelValue for NodeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(&self.0)
    }
}

/// Which kind of server a transaction ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// The primary of the current term.
    Primary,
    /// A standby.
    Standby,
}

impl RouteTarget {
    /// The label value: `primary` or `standby`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteTarget::Primary => "primary",
            RouteTarget::Standby => "standby",
        }
    }

    /// Both targets, in the order of their index in per-target arrays.
    pub(crate) const ALL: [RouteTarget; 2] = [RouteTarget::Primary, RouteTarget::Standby];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Why the router sent a transaction where it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteReason {
    /// A read that any server may answer, sent to a standby, or to the
    /// primary for its share of the weight.
    Read,
    /// The classifier said the statement needs the primary; the label is
    /// the classifier's reason (`write`, `hint`, `set`, …).
    Statement(classify::Reason),
    /// It ran inside a transaction block, which stays on the server that
    /// began it.
    Transaction,
    /// A read sent to the primary because the session had already used the
    /// primary (read-your-writes).
    Pinned,
    /// A read sent to the primary because every standby was further behind
    /// than `max_standby_lag_bytes` or `max_standby_lag_time` (or its lag
    /// was unknown).
    Lag,
    /// A read sent to the primary because no standby was up and probed.
    NoStandby,
}

impl RouteReason {
    /// The label value, snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteReason::Read => "read",
            RouteReason::Statement(reason) => reason.as_str(),
            RouteReason::Transaction => "transaction",
            RouteReason::Pinned => "pinned",
            RouteReason::Lag => "lag",
            RouteReason::NoStandby => "no_standby",
        }
    }
}

impl From<classify::Reason> for RouteReason {
    fn from(reason: classify::Reason) -> Self {
        RouteReason::Statement(reason)
    }
}

/// Why a client was turned away before its session began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// Wrong password, or an unknown user (the two look alike on purpose).
    Password,
    /// An hba rule rejected the connection, or none matched.
    HbaReject,
    /// The database asked for is not served.
    UnknownDatabase,
    /// The connection limit was reached.
    TooMany,
    /// The client broke the startup or authentication protocol.
    Protocol,
    /// The client did not finish startup and authentication in time.
    Timeout,
}

impl AuthFailure {
    /// The label value, snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Password => "password",
            AuthFailure::HbaReject => "hba_reject",
            AuthFailure::UnknownDatabase => "unknown_database",
            AuthFailure::TooMany => "too_many",
            AuthFailure::Protocol => "protocol",
            AuthFailure::Timeout => "timeout",
        }
    }

    /// Every reason, in declaration order (`reason as usize` indexes it).
    pub(crate) const ALL: [AuthFailure; 6] = [
        AuthFailure::Password,
        AuthFailure::HbaReject,
        AuthFailure::UnknownDatabase,
        AuthFailure::TooMany,
        AuthFailure::Protocol,
        AuthFailure::Timeout,
    ];
}

/// Implements [`EncodeLabelValue`] from `as_str`, so the label text is
/// written straight into the output without an intermediate `String`.
macro_rules! encode_as_str {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}

encode_as_str!(RouteTarget, RouteReason, AuthFailure, ServerState, Outcome);

/// Whether a server connection is lent to a client right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ServerState {
    Idle,
    Active,
}

impl ServerState {
    fn as_str(self) -> &'static str {
        match self {
            ServerState::Idle => "idle",
            ServerState::Active => "active",
        }
    }
}

/// How a connect to a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    Ok,
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }
}

// The label sets: one struct per combination, field names are label names.

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct AddrLabels {
    /// The virtual IP, as `198.18.0.100/24 on eth0`.
    pub(crate) addr: NodeLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct NodeLabels {
    pub(crate) node: NodeLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ServerLabels {
    pub(crate) node: NodeLabel,
    pub(crate) state: ServerState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ConnectLabels {
    pub(crate) node: NodeLabel,
    pub(crate) outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TransactionLabels {
    pub(crate) node: NodeLabel,
    pub(crate) route: RouteTarget,
    pub(crate) reason: RouteReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) route: RouteTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct AuthLabels {
    pub(crate) reason: AuthFailure,
}
