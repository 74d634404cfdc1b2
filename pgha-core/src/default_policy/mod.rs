//! The failover policy pgha ships with.

mod election;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    Action, Command, Event, FailoverPolicy, FailureReason, Health, NodeId, NodeState, Observation,
    QuarantineReason, Role, Status, Topology,
};

/// Promote the best healthy standby when the primary is confirmed down;
/// detach failed standbys; quarantine and fence stale primaries.
///
/// # Rules
///
/// * **Confirmed down**: a node is acted on after `failures_before_down`
///   consecutive failed observations spanning `minimum_down_time`, or at
///   once after one [`FailureReason::Crashed`] (its monitoring connection
///   vanished without a word and a new connection was refused). A session
///   error (`SessionHint`) only asks for a probe; hints about quarantined
///   or rejoining nodes (whose sessions pgha's own fence ends) are ignored.
/// * **Back by another hand**: a quarantined or fenced node that reports
///   itself in recovery, streaming from the primary, on its timeline and
///   within the lag limit, is attached (no rejoin needed).
/// * **Writes held** ([`Topology::held`]: who is primary is not settled,
///   see [`evidence`](crate::evidence)): nothing but operator commands;
///   `Promote` may then name a node that is already writable, which is
///   adopted as the primary of the next term.
/// * **Stale primaries are fenced once per term**: again only when the
///   probe shows the fence's mark gone ([`Health::read_only`] false).
/// * **Candidates** are standbys that are up, have a priority above 0 and
///   are at most `maximum_lag_bytes` behind the most advanced WAL position
///   the cluster is known to have reached
///   ([`Topology::bytes_behind`]). A standby over the limit that would
///   otherwise have been chosen is reported with
///   [`Action::RefusePromotion`] (all of them when none can be promoted).
/// * **Choice**: a standby that answered its last probe beats one whose
///   last probe failed (not yet counted down, but a worse bet); then the
///   highest priority wins; among equal priorities the most
///   advanced (received, then replayed LSN); then the smallest id. The lag
///   limit is the data-loss budget, priority is the operator's preference
///   inside it.
/// * **Failover**: `Promote` (term + 1), `Follow` for every other standby
///   that is up or detached, `Fence` the old primary, `Rejoin` quarantined
///   nodes when `auto_rejoin`. With no candidate: the refusals,
///   `NoPromotionCandidate`, and the primary is detached; every further
///   failed observation of it (and every healthy observation of a standby)
///   tries again.
/// * **Standby down**: `Detach`, never a promotion. Back, following the
///   primary and within the lag limit: `Attach`; following another node:
///   `Follow` first.
/// * **Stale primary** (not in recovery, not the primary of the current
///   term): `Quarantine` + `Fence`, then `Rejoin` when `auto_rejoin` and a
///   primary is up. Exception: when the term has no primary at all, such a
///   node (priority above 0, within the lag limit) is promoted in the next
///   term.
/// * **Failed actions**: a failed promotion fences that node and fails over
///   to the next candidate; a failed follow or attach detaches; a failed
///   fence or rejoin quarantines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultPolicy {
    /// Consecutive failed observations before a node counts as down.
    /// Default: 2.
    pub failures_before_down: u32,
    /// Never promote (nor attach) a standby further behind than this many
    /// bytes; `None` for no limit. Default: 1 MiB (Patroni's
    /// `maximum_lag_on_failover`).
    pub maximum_lag_bytes: Option<u64>,
    /// Rewind and re-point a stale or fenced primary automatically.
    /// Default: true.
    pub auto_rejoin: bool,
    /// The failed observations must span at least this long (from the
    /// first to the last) before a node counts as down. Several signals of
    /// one event — a lost monitoring connection, a proxy's hint, a regular
    /// probe — can arrive within milliseconds; without a span they would
    /// fail over a server that a DBA merely restarted. Default: 500ms.
    #[serde(with = "crate::duration_serde")]
    pub minimum_down_time: Duration,
}

impl Default for DefaultPolicy {
    fn default() -> Self {
        DefaultPolicy {
            failures_before_down: 2,
            maximum_lag_bytes: Some(1024 * 1024),
            auto_rejoin: true,
            minimum_down_time: Duration::from_millis(500),
        }
    }
}

impl FailoverPolicy for DefaultPolicy {
    fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action> {
        if topology.held().is_some() && !matches!(event, Event::Command { .. }) {
            // Writes are held (who is primary is not settled): only an
            // operator moves the cluster on.
            return Vec::new();
        }
        match event {
            Event::Observed {
                node, observation, ..
            } => {
                let Some(node) = topology.node(node) else {
                    return Vec::new();
                };
                if node.status == Status::Maintenance {
                    return Vec::new();
                }
                match observation {
                    Observation::Healthy(health) => self.on_healthy(topology, node, health),
                    Observation::Failed { .. } => self.on_failed(topology, node),
                }
            }
            Event::SessionHint { node, sqlstate, .. } => {
                // Sessions on a fenced node end by pgha's own hand (the
                // fence terminates them): that is no news about it.
                let known = topology.node(node).is_some_and(|n| {
                    !matches!(
                        n.status,
                        Status::Maintenance | Status::Quarantined | Status::Rejoining
                    )
                });
                // Class 57 (operator intervention: admin shutdown, crash
                // shutdown, cannot connect now) and class 08 (connection
                // exception) say something about the node; others do not.
                if known && (sqlstate.starts_with("57") || sqlstate.starts_with("08")) {
                    vec![Action::Probe { node: node.clone() }]
                } else {
                    Vec::new()
                }
            }
            Event::Command { command, .. } => self.on_command(topology, command),
            Event::Permission { granted: true, .. } => self.reconcile(topology),
            Event::Permission { granted: false, .. } => Vec::new(),
            Event::ActionFailed { action, .. } => self.on_action_failed(topology, action),
        }
    }

    fn name(&self) -> &str {
        "default"
    }
}

impl DefaultPolicy {
    fn confirmed_down(&self, node: &NodeState) -> bool {
        // Two independent signals in one observation (see
        // `FailureReason::Crashed`); a terminated session alone never
        // gives it: its server says why, and a fresh connect succeeds.
        if node.consecutive_failures > 0 && node.last_failure == Some(FailureReason::Crashed) {
            return true;
        }
        let span = match (node.failing_since, node.last_observed_at) {
            (Some(first), Some(last)) => last.saturating_sub(first),
            _ => Duration::ZERO,
        };
        node.consecutive_failures >= self.failures_before_down.max(1)
            && (self.failures_before_down <= 1 || span >= self.minimum_down_time)
    }

    fn on_healthy(&self, topology: &Topology, node: &NodeState, health: &Health) -> Vec<Action> {
        let id = node.id.clone();
        let is_primary = topology.primary_id() == Some(&node.id);
        if !health.in_recovery {
            if is_primary {
                // The primary of the term is back before anyone replaced it.
                return match node.status {
                    Status::Up => Vec::new(),
                    _ => vec![Action::Attach { node: id }],
                };
            }
            if topology.primary_id().is_none() && node.priority > 0 {
                // Nobody is primary of this term (a promotion failed with no
                // alternative) and this node already is one: adopt it in
                // the next term rather than leave the cluster without one.
                let behind = topology.bytes_behind(&node.id).unwrap_or(u64::MAX);
                if self.within_limit(behind) {
                    return self.promotion(topology, &id, None, false);
                }
            }
            return self.stale_primary(topology, node, health);
        }
        if is_primary {
            // A promotion not visible yet; the next probe will tell.
            return Vec::new();
        }
        if node.role == Role::Unknown || node.status == Status::Quarantined {
            // Rewound and restarted by someone else (an operator, a
            // script): once it streams from the primary on its timeline,
            // the evidence says it is a standby like any other.
            if let Some(primary) = topology.usable_primary() {
                if self.follows(node, health, primary) {
                    return vec![Action::Attach { node: id }];
                }
            }
            return self.rejoin(topology, node);
        }
        if node.status == Status::Up {
            return self.elect_if_needed(topology);
        }
        if node.detached_by_operator {
            // Out until the operator attaches it, however healthy.
            return Vec::new();
        }
        // Down, detached or rejoining, and back.
        match topology.usable_primary() {
            Some(primary) if node.upstream.as_ref() != Some(&primary.id) => {
                vec![Action::Follow {
                    node: id,
                    primary: primary.id.clone(),
                    term: topology.term(),
                }]
            }
            Some(primary) if self.caught_up(node, primary) => vec![Action::Attach { node: id }],
            Some(_) => Vec::new(),
            None => {
                // No primary to compare with: make it a candidate if it
                // could be promoted.
                let behind = topology.bytes_behind(&node.id).unwrap_or(u64::MAX);
                if self.within_limit(behind) {
                    vec![Action::Attach { node: id }]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// A node not in recovery that is not the primary of the term:
    /// quarantined, fenced once per term (again only when the probe shows
    /// the fence gone), rejoined when possible.
    fn stale_primary(&self, topology: &Topology, node: &NodeState, health: &Health) -> Vec<Action> {
        let term = topology.term();
        let handled = matches!(node.status, Status::Quarantined | Status::Rejoining);
        let mut actions = Vec::new();
        if !handled {
            actions.push(Action::Quarantine {
                node: node.id.clone(),
                reason: QuarantineReason::StalePrimary,
            });
        }
        // Each fence ends every session on the node: repeating it on every
        // sight cuts pgha's own monitoring connection, whose loss looks
        // like news, and so on. A fence of this term stands until the
        // probe sees its mark gone (or, for a stop, sees the server again
        // taking writes by default).
        let fenced = node.fenced_in == Some(term) && health.read_only != Some(false);
        if !fenced {
            actions.push(Action::Fence {
                node: node.id.clone(),
                term,
            });
        }
        let gave_up = node.quarantined_for == Some(QuarantineReason::RejoinFailed);
        if self.auto_rejoin && node.status != Status::Rejoining && !gave_up {
            if let Some(primary) = topology.usable_primary() {
                actions.push(Action::Rejoin {
                    node: node.id.clone(),
                    primary: primary.id.clone(),
                });
            }
        }
        actions
    }

    /// A standby streaming from `primary`, on its timeline (both known),
    /// within the lag limit.
    fn follows(&self, node: &NodeState, health: &Health, primary: &NodeState) -> bool {
        let streams = health
            .streaming_from
            .as_ref()
            .is_some_and(|(host, port)| *host == primary.host && *port == primary.port);
        streams
            && node.timeline.is_some()
            && node.timeline == primary.timeline
            && self.caught_up(node, primary)
    }

    fn on_failed(&self, topology: &Topology, node: &NodeState) -> Vec<Action> {
        if !self.confirmed_down(node) {
            return Vec::new();
        }
        if topology.primary_id() == Some(&node.id) {
            return match node.status {
                Status::Up | Status::Detached => self.failover(topology, Some(&node.id)),
                _ => Vec::new(),
            };
        }
        if node.status == Status::Up {
            return vec![Action::Detach {
                node: node.id.clone(),
            }];
        }
        Vec::new()
    }

    fn on_command(&self, topology: &Topology, command: &Command) -> Vec<Action> {
        match command {
            Command::Promote { node } => {
                let writable = topology
                    .node(node)
                    .is_some_and(|n| n.in_recovery == Some(false) && n.status == Status::Up);
                if topology.held().is_some() && writable {
                    // The operator names the winner among writable nodes:
                    // adopt it (its promotion is a no-op) in a new term.
                    return self.promotion(topology, node, None, false);
                }
                self.promote_by_hand(topology, node, false)
            }
            Command::Switchover { target: Some(node) } => {
                self.promote_by_hand(topology, node, true)
            }
            Command::Switchover { target: None } => {
                let old = topology.primary_id();
                match self.choose(topology, old) {
                    Ok(chosen) => {
                        let mut actions = chosen.refusals;
                        actions.extend(self.promotion(topology, &chosen.node, old, true));
                        actions
                    }
                    Err(refusals) => refusals,
                }
            }
            Command::Attach { node } => {
                let Some(node) = topology.node(node) else {
                    return Vec::new();
                };
                if node.role == Role::Unknown || node.status == Status::Quarantined {
                    // A fenced node comes back only through a rejoin.
                    let Some(primary) = topology.usable_primary() else {
                        return Vec::new();
                    };
                    return vec![Action::Rejoin {
                        node: node.id.clone(),
                        primary: primary.id.clone(),
                    }];
                }
                match node.status {
                    Status::Up => Vec::new(),
                    _ => vec![Action::Attach {
                        node: node.id.clone(),
                    }],
                }
            }
            Command::Detach { node } => {
                let Some(state) = topology.node(node) else {
                    return Vec::new();
                };
                if topology.primary_id() == Some(node) {
                    // pgpool semantics: detaching the primary fails over.
                    return self.failover(topology, Some(node));
                }
                match state.status {
                    Status::Detached => Vec::new(),
                    _ => vec![Action::Detach { node: node.clone() }],
                }
            }
            Command::Maintenance { node, enabled } => {
                let Some(state) = topology.node(node) else {
                    return Vec::new();
                };
                if (state.status == Status::Maintenance) == *enabled {
                    return Vec::new();
                }
                vec![Action::Maintenance {
                    node: node.clone(),
                    enabled: *enabled,
                }]
            }
        }
    }

    fn on_action_failed(&self, topology: &Topology, action: &Action) -> Vec<Action> {
        let status = |node: &NodeId| topology.node(node).map(|n| n.status);
        match action {
            Action::Promote { node, term }
                if *term == topology.term() && topology.primary_id() == Some(node) =>
            {
                // It may be half-promoted: fence it, then try the next one.
                let mut actions = self.failover(topology, Some(node));
                if !actions.iter().any(|a| matches!(a, Action::Promote { .. })) {
                    actions.retain(|a| !matches!(a, Action::Detach { .. }));
                    actions.push(Action::Fence {
                        node: node.clone(),
                        term: topology.term(),
                    });
                }
                actions
            }
            Action::Follow { node, .. } | Action::Attach { node }
                if status(node) == Some(Status::Up) =>
            {
                vec![Action::Detach { node: node.clone() }]
            }
            Action::Fence { node, .. } if status(node).is_some() => vec![Action::Quarantine {
                node: node.clone(),
                reason: QuarantineReason::FenceFailed,
            }],
            Action::Rejoin { node, .. } if status(node).is_some() => vec![Action::Quarantine {
                node: node.clone(),
                reason: QuarantineReason::RejoinFailed,
            }],
            _ => Vec::new(),
        }
    }

    /// What a newly granted permission makes due: whatever was confirmed
    /// while the policy could not act.
    fn reconcile(&self, topology: &Topology) -> Vec<Action> {
        let mut actions = match topology.primary() {
            Some(p)
                if self.confirmed_down(p) && matches!(p.status, Status::Up | Status::Detached) =>
            {
                self.failover(topology, Some(&p.id))
            }
            Some(_) => Vec::new(),
            None => self.failover(topology, None),
        };
        for node in topology.nodes() {
            let handled = actions.iter().any(|a| a.node() == Some(&node.id));
            if !handled
                && topology.primary_id() != Some(&node.id)
                && node.status == Status::Up
                && self.confirmed_down(node)
            {
                actions.push(Action::Detach {
                    node: node.id.clone(),
                });
            }
        }
        actions
    }

    fn elect_if_needed(&self, topology: &Topology) -> Vec<Action> {
        match topology.primary() {
            None => self.failover(topology, None),
            Some(p)
                if matches!(p.status, Status::Detached | Status::Down)
                    && self.confirmed_down(p) =>
            {
                self.failover(topology, Some(&p.id))
            }
            Some(_) => Vec::new(),
        }
    }

    fn rejoin(&self, topology: &Topology, node: &NodeState) -> Vec<Action> {
        let gave_up = node.quarantined_for == Some(QuarantineReason::RejoinFailed);
        match topology.usable_primary() {
            Some(primary) if self.auto_rejoin && !gave_up => vec![Action::Rejoin {
                node: node.id.clone(),
                primary: primary.id.clone(),
            }],
            _ => Vec::new(),
        }
    }
}
