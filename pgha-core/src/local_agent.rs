//! The local agent: each pgha converges the PostgreSQL server on its own
//! host to what the cluster decided — no ssh, no scripts.
//!
//! The decision is the committed term's (the leader's, adopted by every
//! member): the node this host runs is a standby of the term's primary
//! unless it is that primary. When the local server is down for a while,
//! or runs as a primary it is not (a former primary back after a
//! failover), the agent rejoins it — stop, `pg_rewind` against the
//! primary (or a fresh base backup), `standby.signal`, `primary_conninfo`,
//! start, wait until it streams — through a [`NodeController`] that owns
//! the data directory ([`LocalNodeController`](crate::LocalNodeController)).
//! The leader's policy then sees a standby streaming from the primary and
//! attaches it. A node in maintenance, or a term whose writes are held, is
//! left alone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::{NodeController, NodeId, NodeState, Status, Topology};

/// When the agent acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// How long the local server must have been failing before it is
    /// rejoined (a restart by a DBA takes a few seconds). Default 5 s.
    pub rejoin_after: Duration,
    /// After a failed rejoin, wait this long before the next. Default 30 s.
    pub retry_after: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            rejoin_after: Duration::from_secs(5),
            retry_after: Duration::from_secs(30),
        }
    }
}

/// What the agent should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStep {
    /// Nothing (yet); look again at the given instant if nothing changes.
    Wait(Option<Instant>),
    /// Rejoin the local node as a standby of `primary`.
    Rejoin {
        /// The primary of the committed term.
        primary: NodeId,
        /// Why, for the log.
        why: &'static str,
    },
}

/// The agent's pure decision part.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    local: NodeId,
    config: AgentConfig,
    failing_since: Option<Instant>,
    next_try: Option<Instant>,
}

impl AgentPlan {
    /// The plan for node `local` on this host.
    pub fn new(local: NodeId, config: AgentConfig) -> Self {
        AgentPlan {
            local,
            config,
            failing_since: None,
            next_try: None,
        }
    }

    /// What to do at `now`, given this member's topology.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pgha_core::{AgentConfig, AgentPlan, AgentStep, Health, Lsn, NodeState, Role, Topology};
    /// use tokio::time::Instant;
    ///
    /// // node1 is the primary of the term; node0 (this host) is back as a
    /// // writable server: a former primary.
    /// let mut node0 = NodeState::new("node0", Role::Standby, "10.0.0.1", 5432);
    /// node0.in_recovery = Some(false);
    /// let mut node1 = NodeState::new("node1", Role::Primary, "10.0.0.2", 5432);
    /// node1.in_recovery = Some(false);
    /// let topology = Topology::new([node0, node1]);
    /// let mut plan = AgentPlan::new("node0".into(), AgentConfig::default());
    /// assert!(matches!(plan.step(Instant::now(), &topology), AgentStep::Rejoin { .. }));
    /// ```
    pub fn step(&mut self, now: Instant, topology: &Topology) -> AgentStep {
        let Some(local) = topology.node(&self.local) else {
            return AgentStep::Wait(None);
        };
        let failing = local.consecutive_failures > 0;
        if !failing {
            self.failing_since = None;
        } else if self.failing_since.is_none() {
            self.failing_since = Some(now);
        }
        let Some(primary) = self.source(topology) else {
            return AgentStep::Wait(None);
        };
        if local.status == Status::Maintenance {
            return AgentStep::Wait(None);
        }
        if let Some(at) = self.next_try.filter(|&at| now < at) {
            return AgentStep::Wait(Some(at));
        }
        if !failing && local.in_recovery == Some(false) {
            return AgentStep::Rejoin {
                primary: primary.id.clone(),
                why: "it runs as a primary, and the committed term names another",
            };
        }
        match self.failing_since {
            Some(since) if now >= since + self.config.rejoin_after => AgentStep::Rejoin {
                primary: primary.id.clone(),
                why: "it has been down, and the committed term has a primary to follow",
            },
            Some(since) => AgentStep::Wait(Some(since + self.config.rejoin_after)),
            None => AgentStep::Wait(None),
        }
    }

    /// The rejoin started at `now` ended (`ok` or not).
    pub fn done(&mut self, now: Instant, ok: bool) {
        self.failing_since = None;
        self.next_try = (!ok).then_some(now + self.config.retry_after);
    }

    /// The primary to rejoin to: the committed term's, seen writable and
    /// answering, and not this node.
    fn source<'t>(&self, topology: &'t Topology) -> Option<&'t NodeState> {
        if topology.held().is_some() {
            return None;
        }
        topology.primary().filter(|p| {
            p.id != self.local && p.in_recovery == Some(false) && p.consecutive_failures == 0
        })
    }
}

/// Runs the agent for node `local` until `shutdown` completes: follows
/// `topology` (this member's monitor) and rejoins through `controller`.
pub async fn run_agent(
    local: NodeId,
    mut topology: watch::Receiver<Arc<Topology>>,
    controller: Arc<dyn NodeController>,
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut plan = AgentPlan::new(local.clone(), config);
    tokio::pin!(shutdown);
    loop {
        let now_topology = topology.borrow_and_update().clone();
        let wake = match plan.step(Instant::now(), &now_topology) {
            AgentStep::Wait(at) => at,
            AgentStep::Rejoin { primary, why } => {
                let (Some(node), Some(primary)) =
                    (now_topology.node(&local), now_topology.node(&primary))
                else {
                    continue;
                };
                tracing::warn!(node = %local, primary = %primary.id, why, "local agent: rejoining this host's server as a standby");
                let started = Instant::now();
                let result = controller.rejoin(node, primary).await;
                match &result {
                    Ok(()) => {
                        tracing::warn!(node = %local, primary = %primary.id, took = ?started.elapsed(), "local agent: rejoined, streaming")
                    }
                    Err(e) => {
                        tracing::error!(node = %local, error = %e, "local agent: rejoin failed; trying again later")
                    }
                }
                plan.done(Instant::now(), result.is_ok());
                continue;
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            changed = topology.changed() => if changed.is_err() { return },
            () = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn topology(local: impl FnOnce(&mut NodeState)) -> Topology {
        let mut node0 = NodeState::new("node0", Role::Standby, "h0", 5432);
        node0.in_recovery = Some(true);
        local(&mut node0);
        let mut node1 = NodeState::new("node1", Role::Primary, "h1", 5432);
        node1.in_recovery = Some(false);
        Topology::new([node0, node1])
    }

    fn plan() -> AgentPlan {
        AgentPlan::new("node0".into(), AgentConfig::default())
    }

    #[test]
    fn a_healthy_standby_is_left_alone() {
        let mut p = plan();
        assert_eq!(
            p.step(Instant::now(), &topology(|_| {})),
            AgentStep::Wait(None)
        );
    }

    #[test]
    fn a_server_down_is_rejoined_only_after_rejoin_after_and_retried_after_a_failure() {
        let t0 = Instant::now();
        let mut p = plan();
        let down = topology(|n| n.consecutive_failures = 1);
        assert_eq!(
            p.step(t0, &down),
            AgentStep::Wait(Some(t0 + Duration::from_secs(5)))
        );
        assert_eq!(
            p.step(t0 + Duration::from_secs(4), &down),
            AgentStep::Wait(Some(t0 + Duration::from_secs(5)))
        );
        assert!(matches!(
            p.step(t0 + Duration::from_secs(5), &down),
            AgentStep::Rejoin { .. }
        ));
        p.done(t0 + Duration::from_secs(6), false);
        let retry = t0 + Duration::from_secs(36);
        assert_eq!(
            p.step(t0 + Duration::from_secs(7), &down),
            AgentStep::Wait(Some(retry))
        );
        assert!(matches!(p.step(retry, &down), AgentStep::Rejoin { .. }));
        // Back up by itself before the wait was over: nothing to do.
        let mut p = plan();
        p.step(t0, &down);
        assert_eq!(
            p.step(t0 + Duration::from_secs(1), &topology(|_| {})),
            AgentStep::Wait(None)
        );
    }

    #[test]
    fn nothing_is_done_without_a_primary_to_follow_in_maintenance_or_as_the_primary() {
        let t0 = Instant::now();
        let late = t0 + Duration::from_secs(60);
        let mut held = topology(|n| n.in_recovery = Some(false));
        held = held.with_writes_held("term not known yet");
        let mut p = plan();
        assert_eq!(p.step(t0, &held), AgentStep::Wait(None));
        let mut p = plan();
        let maintenance = topology(|n| {
            n.in_recovery = Some(false);
            n.status = Status::Maintenance;
        });
        assert_eq!(p.step(late, &maintenance), AgentStep::Wait(None));
        // This node is the term's primary: a primary is never rewound.
        let mut p = AgentPlan::new("node1".into(), AgentConfig::default());
        let primary_down = Topology::new([NodeState::new("node0", Role::Standby, "h0", 5432), {
            let mut n = NodeState::new("node1", Role::Primary, "h1", 5432);
            n.consecutive_failures = 3;
            n
        }]);
        p.step(t0, &primary_down);
        assert_eq!(p.step(late, &primary_down), AgentStep::Wait(None));
        // The primary does not answer: no source to rewind from.
        let mut p = plan();
        let mut gone = topology(|n| n.consecutive_failures = 2);
        if let Some(n) = gone.node_mut(&"node1".into()) {
            n.consecutive_failures = 1;
        }
        p.step(t0, &gone);
        assert_eq!(p.step(late, &gone), AgentStep::Wait(None));
    }

    #[test]
    fn a_former_primary_back_writable_is_rejoined_at_once() {
        let mut p = plan();
        let step = p.step(Instant::now(), &topology(|n| n.in_recovery = Some(false)));
        assert!(
            matches!(step, AgentStep::Rejoin { ref primary, .. } if primary.as_str() == "node1"),
            "{step:?}"
        );
    }
}
