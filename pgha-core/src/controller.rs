//! How pgha acts on a PostgreSQL backend: the `NodeController` trait.

use async_trait::async_trait;

use crate::{Error, NodeState};

/// What a controller could establish about a fence request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced {
    /// The node no longer accepts writes (demoted, stopped, or made
    /// read-only), as far as the controller could verify.
    Confirmed,
    /// The controller could not reach the node or verify the result. The
    /// node stays quarantined (never routed) until it is seen again.
    NotConfirmed {
        /// Why not.
        why: String,
    },
}

/// Carries out the failover actions a policy decides on one backend.
///
/// # Contract
///
/// * [`promote`](NodeController::promote) is idempotent: promoting a node
///   that is already a primary returns `Ok`. It returns only once the node
///   accepts writes (or fails).
/// * [`follow`](NodeController::follow) makes a running standby stream from
///   `primary`; [`rejoin`](NodeController::rejoin) turns a former primary
///   into a standby of `primary` (rewinding it if its history diverged).
/// * [`fence`](NodeController::fence) of an unreachable node returns
///   `Ok(Fenced::NotConfirmed)`, never `Confirmed`.
/// * Every call is bounded in time: a controller that cannot finish
///   returns an error rather than hanging.
/// * Operations a controller does not support return
///   [`Error::Unsupported`] (the defaults below).
#[async_trait]
pub trait NodeController: Send + Sync {
    /// Promotes `node` to primary for `term`.
    async fn promote(&self, node: &NodeState, term: u64) -> Result<(), Error>;

    /// Re-points a standby at a new primary.
    async fn follow(&self, node: &NodeState, primary: &NodeState) -> Result<(), Error> {
        let _ = (node, primary);
        Err(self.unsupported("follow"))
    }

    /// Stops a node that must not take writes any more (an old or stale
    /// primary) from taking them.
    async fn fence(&self, node: &NodeState) -> Result<Fenced, Error> {
        let _ = node;
        Ok(Fenced::NotConfirmed {
            why: format!("{} cannot fence", self.name()),
        })
    }

    /// Brings a former primary back as a standby of `primary`.
    async fn rejoin(&self, node: &NodeState, primary: &NodeState) -> Result<(), Error> {
        let _ = (node, primary);
        Err(self.unsupported("rejoin"))
    }

    /// A short name for logs and errors.
    fn name(&self) -> &str {
        "custom controller"
    }

    /// The error an unsupported operation returns.
    fn unsupported(&self, operation: &'static str) -> Error {
        Error::Unsupported {
            controller: self.name().to_string(),
            operation,
        }
    }
}
