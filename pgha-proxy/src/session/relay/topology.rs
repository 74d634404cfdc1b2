//! A new topology while a session holds server connections: which of
//! them may still be used, and what the client is told about the others.

use pgha_core::{NodeId, Status};

use super::*;

impl Relay<'_> {
    pub(super) async fn on_topology(&mut self) -> Result<(), Error> {
        let holdable = Holdable::of(&self.topology.borrow_and_update());
        self.pools.forget_primary();
        let usable = |s: &Attached| holdable.allows(s);
        if self.parked.as_ref().is_some_and(|s| !usable(s)) {
            self.parked = None;
            if self.shared.config.pool_mode == PoolMode::Session {
                return Err(self.end_session(Error::SessionLost).await);
            }
        }
        if self.server.as_ref().is_some_and(|s| !usable(s)) {
            // A new primary, or none: whatever runs on the old one must not
            // be acknowledged from there (it is being fenced). A running
            // statement fails; an idle client notices nothing.
            tracing::info!(
                busy = !self.tracker.is_empty(),
                "dropping a server connection the topology no longer allows"
            );
            self.server_lost(Lost::Dropped).await?;
        }
        Ok(())
    }
}

/// What of a topology decides whether held connections stay usable
/// ([`Holdable::allows`]), and nothing else: the upkeep rings the
/// sessions' bell when it changes, and only then (a probe publishes a new
/// topology every round). One definition for both, so the ring cannot
/// miss a change the check would act on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Holdable {
    /// The primary of the term, unless it is down.
    primary: Option<NodeId>,
    readable: Vec<NodeId>,
}

impl Holdable {
    pub(crate) fn of(t: &Topology) -> Self {
        Self {
            primary: t
                .primary_id()
                .filter(|id| t.node(id).is_some_and(|n| n.status != Status::Down))
                .cloned(),
            readable: t.readable_nodes().map(|n| n.id.clone()).collect(),
        }
    }

    /// Whether a connection the session holds may still be used.
    fn allows(&self, s: &Attached) -> bool {
        if s.primary {
            // Still the primary of the term and not down: what it commits
            // stays, so a running statement may finish there even while
            // new writes are held or it is detached (a monitor whose probes
            // timed out on an overloaded primary with no standby to promote
            // detaches it: that must not cost its clients their
            // statements). Another primary, or none: it is being fenced.
            self.primary.as_ref() == Some(&s.conn.node)
        } else {
            // A read may finish on a standby just promoted: it still
            // answers from the same data.
            self.readable.contains(&s.conn.node)
        }
    }
}
