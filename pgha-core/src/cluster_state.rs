//! The pure state machine owning the current topology.

use std::sync::Arc;

use crate::admin::{admin_states, apply_admin_states};
use crate::evidence::Verdict;
use crate::{
    Action, AdminStates, Command, Event, FailoverPolicy, NodeId, Observation, Permission, Role,
    Status, TermRecord, Topology,
};

/// The cluster model: the current [`Topology`] and the policy that decides
/// about it. Feed it [`Event`]s; it returns the [`Action`]s to carry out and
/// records them, so the next snapshot already shows the new term and roles.
///
/// The async monitor around it executes the actions and reports an action
/// that could not be carried out as [`Event::ActionFailed`]; the policy then
/// repairs the model (a failed promotion fences that node and tries the next
/// candidate).
///
/// Two guarantees hold whatever the policy returns:
/// * while [`Topology::permission`] denies acting, `handle` returns nothing
///   (the facts are still recorded);
/// * at most one node is primary, and a promotion always raises the term.
///
/// ```
/// use pgha_core::{Action, ClusterState, DefaultPolicy, Event, Health, Lsn, NodeState, Observation, Role, Topology};
/// use std::time::Duration;
///
/// let topology = Topology::new([
///     NodeState::new("a", Role::Primary, "10.0.0.1", 5432),
///     NodeState::new("b", Role::Standby, "10.0.0.2", 5432),
/// ]);
/// let mut cluster = ClusterState::new(topology, DefaultPolicy::default());
/// let actions = cluster.handle(Event::Observed {
///     node: "a".into(),
///     at: Duration::from_secs(1),
///     observation: Observation::Healthy(Health::primary(Lsn(0x3000060))),
/// });
/// assert!(actions.is_empty());
/// assert_eq!(cluster.snapshot().primary().and_then(|p| p.current_lsn), Some(Lsn(0x3000060)));
/// ```
pub struct ClusterState {
    topology: Arc<Topology>,
    policy: Arc<dyn FailoverPolicy>,
}

impl std::fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState")
            .field("topology", &self.topology)
            .field("policy", &self.policy.name())
            .finish()
    }
}

impl ClusterState {
    /// A model starting from `topology`, deciding with `policy`.
    pub fn new(topology: Topology, policy: impl FailoverPolicy + 'static) -> Self {
        Self::with_shared_policy(topology, Arc::new(policy))
    }

    /// Like [`new`](Self::new), with a policy chosen at run time.
    pub fn with_shared_policy(topology: Topology, policy: Arc<dyn FailoverPolicy>) -> Self {
        ClusterState {
            topology: Arc::new(topology),
            policy,
        }
    }

    /// The current topology, cheap to clone and publish.
    pub fn snapshot(&self) -> Arc<Topology> {
        Arc::clone(&self.topology)
    }

    /// The current topology, borrowed.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Record `event`, ask the policy what to do, record the actions it
    /// decided and return those that were valid, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let topology = Arc::make_mut(&mut self.topology);
        record(topology, &event);
        if !topology.permission().allows_actions() {
            return Vec::new();
        }
        let decided = self.policy.decide(topology, &event);
        let mut applied = Vec::with_capacity(decided.len());
        for action in decided {
            if apply(topology, &action) {
                applied.push(action);
            } else {
                tracing::warn!(
                    policy = self.policy.name(),
                    ?action,
                    "invalid action dropped"
                );
            }
        }
        if let Event::Command {
            command: Command::Detach { node },
            ..
        } = &event
        {
            // The operator's detach sticks until the operator's attach; a
            // policy's detach after a failure may be undone by the policy.
            if applied
                .iter()
                .any(|a| matches!(a, Action::Detach { node: n } if n == node))
            {
                with_node(topology, node, |n| n.detached_by_operator = true);
            }
        }
        if !applied.is_empty() {
            tracing::info!(
                term = topology.term(),
                ?event,
                ?applied,
                "failover decision"
            );
        }
        applied
    }
}

impl ClusterState {
    /// Settles who is primary from the nodes' evidence, for a monitor
    /// started without a durable term: `Primary` makes that node the
    /// primary (a configured primary that is not becomes a standby, and is
    /// then seen as a stale primary if it writes); `Ambiguous` leaves no
    /// primary, writes held with the reason, until an operator's promotion;
    /// `NoEvidence` keeps the configuration. Lifts the startup hold.
    pub fn settle(&mut self, verdict: &Verdict) {
        let topology = Arc::make_mut(&mut self.topology);
        match verdict {
            Verdict::Primary(id) => {
                let term = topology.term();
                *topology = topology.clone().restored(term, Some(id));
                // Another writable node is a stale primary: routed nowhere
                // (not even reads) before the policy quarantines it.
                for node in topology.nodes_mut() {
                    if &node.id != id && node.in_recovery == Some(false) {
                        node.role = Role::Unknown;
                        node.upstream = None;
                    }
                }
            }
            Verdict::Ambiguous(why) => {
                topology.set_primary(None);
                for node in topology.nodes_mut() {
                    if node.in_recovery == Some(false) || node.role == Role::Primary {
                        node.role = Role::Unknown;
                    }
                    node.upstream = None;
                }
                topology.set_held(Some(why.clone()));
            }
            Verdict::NoEvidence => topology.set_held(None),
        }
    }
}

impl ClusterState {
    /// Takes on a decision another pgha node committed to the shared
    /// ledger: `record.primary` is the primary of `record.term`. Any other
    /// node this model calls primary, or has seen writable, is a stale
    /// primary: routed nowhere until seen again as a standby. The facts
    /// observed so far are kept; permission is unchanged.
    pub fn adopt(&mut self, record: &TermRecord) {
        let topology = Arc::make_mut(&mut self.topology);
        let stale: Vec<NodeId> = topology
            .nodes()
            .iter()
            .filter(|n| {
                Some(&n.id) != record.primary.as_ref()
                    && (n.role == Role::Primary || n.in_recovery == Some(false))
            })
            .map(|n| n.id.clone())
            .collect();
        *topology = topology
            .clone()
            .restored(record.term, record.primary.as_ref());
        for node in topology.nodes_mut() {
            if stale.contains(&node.id) {
                node.role = Role::Unknown;
            }
        }
    }

    /// Takes on the administrative states another pgha node committed
    /// (detached, quarantined, rejoining, maintenance; a node not named is
    /// attached). Returns whether anything changed.
    pub fn adopt_admin(&mut self, states: &AdminStates) -> bool {
        if admin_states(&self.topology) == *states {
            return false;
        }
        apply_admin_states(Arc::make_mut(&mut self.topology), states)
    }

    /// Holds writes from every node (`Some(why)`) or lets them go.
    pub fn hold_writes(&mut self, why: Option<String>) {
        Arc::make_mut(&mut self.topology).set_held(why);
    }

    /// Puts the model back to `earlier` and records only the facts
    /// `event` carries: a decision that could not be recorded is not kept,
    /// what was observed is.
    pub(crate) fn rewind(&mut self, earlier: Arc<Topology>, event: &Event) {
        self.topology = earlier;
        record(Arc::make_mut(&mut self.topology), event);
    }
}

/// Record the facts an event carries, before anyone decides about them.
fn record(topology: &mut Topology, event: &Event) {
    match event {
        Event::Observed {
            node,
            at,
            observation,
        } => {
            let Some(state) = topology.node_mut(node) else {
                return;
            };
            state.last_observed_at = Some(*at);
            match observation {
                Observation::Healthy(health) => {
                    state.consecutive_failures = 0;
                    state.last_failure = None;
                    state.failing_since = None;
                    state.in_recovery = Some(health.in_recovery);
                    state.timeline = health.timeline.or(state.timeline);
                    state.current_lsn = health.current_lsn;
                    state.received_lsn = health.received_lsn;
                    state.replayed_lsn = health.replayed_lsn;
                    state.lag_bytes = health.lag_bytes;
                    state.lag_time = health.lag_time;
                }
                Observation::Failed { reason } => {
                    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                    state.last_failure = Some(*reason);
                    state.failing_since.get_or_insert(*at);
                }
            }
        }
        Event::Permission { granted, .. } => topology.set_permission(if *granted {
            Permission::Granted
        } else {
            Permission::Denied
        }),
        Event::ActionFailed {
            action: Action::Follow { node, .. },
            ..
        } => {
            // Whatever it follows now, it is not known to follow the primary.
            if let Some(state) = topology.node_mut(node) {
                state.upstream = None;
            }
        }
        Event::ActionFailed {
            action: Action::Fence { node, .. },
            ..
        } => {
            // Not fenced after all: the next sight of it must fence again.
            if let Some(state) = topology.node_mut(node) {
                state.fenced_in = None;
            }
        }
        Event::SessionHint { .. } | Event::Command { .. } | Event::ActionFailed { .. } => {}
    }
}

/// Record one decided action in the model; `false` if it is invalid (names
/// an unknown node or an outdated term) and was ignored.
fn apply(topology: &mut Topology, action: &Action) -> bool {
    let term = topology.term();
    let is_primary = |id: &NodeId| topology.primary_id() == Some(id);
    if let Some(node) = action.node() {
        if topology.node(node).is_none() {
            return false;
        }
    }
    match action {
        Action::Promote { node, term: new } => {
            if *new <= term {
                return false;
            }
            if let Some(old) = topology.primary_id().cloned() {
                if &old != node {
                    if let Some(old) = topology.node_mut(&old) {
                        old.role = Role::Unknown;
                    }
                }
            }
            topology.set_term(*new);
            topology.set_primary(Some(node.clone()));
            // A promotion names the primary: whatever held writes is moot.
            topology.set_held(None);
            with_node(topology, node, |n| {
                n.role = Role::Primary;
                n.status = Status::Up;
                n.upstream = None;
                n.quarantined_for = None;
                n.fenced_in = None;
            });
        }
        Action::Follow {
            node,
            primary,
            term: of,
        } => {
            if *of < term || is_primary(node) || topology.node(primary).is_none() {
                return false;
            }
            with_node(topology, node, |n| {
                n.role = Role::Standby;
                n.upstream = Some(primary.clone());
            });
        }
        Action::Fence { node, term: of } => {
            if *of < term {
                return false;
            }
            if is_primary(node) {
                topology.set_primary(None);
            }
            with_node(topology, node, |n| {
                n.role = Role::Unknown;
                n.upstream = None;
                n.fenced_in = Some(*of);
                if !matches!(n.status, Status::Quarantined | Status::Maintenance) {
                    n.status = Status::Down;
                }
            });
        }
        Action::Detach { node } => with_node(topology, node, |n| n.status = Status::Detached),
        Action::Attach { node } => {
            let primary = topology.primary_id().cloned();
            with_node(topology, node, |n| {
                n.status = Status::Up;
                n.quarantined_for = None;
                n.fenced_in = None;
                // A fenced node attached in recovery is a standby again.
                if n.role == Role::Unknown && n.in_recovery == Some(true) {
                    n.role = Role::Standby;
                    n.upstream = primary;
                }
            })
        }
        Action::Quarantine { node, reason } => {
            if is_primary(node) {
                topology.set_primary(None);
            }
            with_node(topology, node, |n| {
                if n.role == Role::Primary {
                    n.role = Role::Unknown;
                }
                n.status = Status::Quarantined;
                n.quarantined_for = Some(*reason);
            });
        }
        Action::Rejoin { node, primary } => {
            if is_primary(node) || topology.node(primary).is_none() {
                return false;
            }
            with_node(topology, node, |n| {
                n.role = Role::Standby;
                n.status = Status::Rejoining;
                n.upstream = Some(primary.clone());
            });
        }
        Action::Maintenance { node, enabled } => with_node(topology, node, |n| {
            // Leaving maintenance: back through the usual attach checks.
            n.status = if *enabled {
                Status::Maintenance
            } else {
                Status::Detached
            };
        }),
        Action::Probe { .. }
        | Action::RefusePromotion { .. }
        | Action::NoPromotionCandidate { .. } => {}
    }
    true
}

fn with_node(topology: &mut Topology, id: &NodeId, change: impl FnOnce(&mut crate::NodeState)) {
    if let Some(node) = topology.node_mut(id) {
        change(node);
        if node.status != Status::Detached {
            node.detached_by_operator = false;
        }
    }
}
