//! The [`FailoverPolicy`] suite: seeded random histories through
//! [`ClusterState`], and what any policy must guarantee about them.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::histories::History;
use super::{CheckResult, Outcome, Report};
use crate::{Action, ClusterState, Event, FailoverPolicy, Observation, Role, Status, Topology};

/// The checks of [`failover_policy`], in report order.
pub const POLICY_CHECKS: [&str; 8] = [
    "never_panics",
    "deterministic",
    "no_hidden_state",
    "actions_are_valid",
    "promotes_only_standbys_that_are_up",
    "never_fences_a_healthy_primary_unasked",
    "a_standby_failure_never_promotes",
    "a_session_hint_only_probes",
];

/// The clause each check stands for, as the report shows it.
const CLAUSES: [&str; 8] = [
    "decide never panics",
    "the same topology and event always give the same actions",
    "decisions depend on the topology and event only: the policy is not called while permission is denied, so state it keeps between calls goes stale",
    "every action is valid for the model (none dropped by ClusterState)",
    "a promoted node is a standby that the model counts as up (or, while the term has no primary, a node just seen writable)",
    "the primary of the term, last seen healthy and writable, is fenced only on an operator command or a failed action",
    "a standby's failed probe never promotes anyone",
    "a session hint (e.g. 57P01, also sent by pg_terminate_backend()) leads to probes only",
];

/// The node names [`failover_policy`] generates clusters of.
const NAMES: [&str; 4] = ["n0", "n1", "n2", "n3"];

/// Drives [`ClusterState`] with `policy` through `histories` seeded random
/// event histories and checks every [`POLICY_CHECKS`] on every step:
///
/// * `never_panics`: no history makes `decide` panic;
/// * `deterministic`: deciding again on the same topology and event gives
///   the same actions;
/// * `no_hidden_state`: after each history, every decision is taken again,
///   last one first, and comes out the same (a policy that counts failures
///   itself would not: it is not called while permission is denied);
/// * `actions_are_valid`: [`ClusterState`] applied every action `decide`
///   returned (none named an unknown node or an outdated term);
/// * `promotes_only_standbys_that_are_up`: a promoted node has
///   [`Role::Standby`] (or the term has no primary and the node was just
///   seen writable: adopting it is a promotion too) with
///   [`Status::Up`]: not down, detached, quarantined, rejoining or in
///   maintenance. (Not checked:
///   that its last probe succeeded. [`DefaultPolicy`](crate::DefaultPolicy)
///   counts a node down only after `failures_before_down` failed probes;
///   it prefers a standby that answered, and promotes one that failed
///   fewer only when none did);
/// * `never_fences_a_healthy_primary_unasked`: on a probe result or session
///   hint, the primary of the term is never fenced while its last
///   observation was healthy and writable;
/// * `a_standby_failure_never_promotes`, `a_session_hint_only_probes`:
///   a standby dying must not cost the primary its role, and a hint is not
///   evidence.
///
/// A history is a cluster of two to four nodes `n0`…`n3` (`n0` primary;
/// random priorities and WAL positions; gated behind a coordinator one time
/// in four) and up to 60 events 100 ms apart: probe results (failed, or
/// healthy as standby or primary with WAL that moves forward), session
/// hints, operator commands, permission changes, and failures of the
/// actions just decided. History `k` is generated from `seed + k`: a
/// violation names that seed, and `failover_policy(policy, 1, that_seed)`
/// replays it. Use [`failover_policy_on`] to name the nodes (e.g. to reach
/// a rule about some of them).
///
/// The checks run together, history by history: each shows the time of the
/// whole run. A panic ends its history (the panic message is in the
/// report, and printed by the panic hook) and the suite goes on.
///
/// ```
/// use std::sync::Arc;
/// use pgha_core::testing::conformance::{self, POLICY_CHECKS};
/// use pgha_core::DefaultPolicy;
///
/// let report = conformance::failover_policy(Arc::new(DefaultPolicy::default()), 200, 1);
/// assert_eq!(report.passed(), POLICY_CHECKS, "{report}");
/// ```
pub fn failover_policy(policy: Arc<dyn FailoverPolicy>, histories: usize, seed: u64) -> Report {
    failover_policy_on(policy, &NAMES, histories, seed)
}

/// [`failover_policy`] on clusters of two to `names.len()` of `names`, the
/// first one primary. Fewer than two names: `n0`…`n3`.
pub fn failover_policy_on(
    policy: Arc<dyn FailoverPolicy>,
    names: &[&str],
    histories: usize,
    seed: u64,
) -> Report {
    let names = if names.len() < 2 { &NAMES[..] } else { names };
    let started = Instant::now();
    let mut findings = Findings::default();
    for k in 0..histories {
        let history_seed = seed.wrapping_add(k as u64);
        let mut events = Vec::new();
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            run_history(&policy, names, history_seed, &mut events, &mut findings)
        }));
        if let Err(payload) = ran {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            findings.violated(0, history_seed, &events, format!("panicked: {message}"));
        }
    }
    let took = started.elapsed();
    let mut report = Report::new(policy.name());
    for (i, name) in POLICY_CHECKS.iter().enumerate() {
        let outcome = match findings.first.remove(&i) {
            None => Outcome::Passed {
                note: Some(format!("{histories} histories from seed {seed}")),
            },
            Some(detail) => Outcome::Violated {
                clause: CLAUSES[i],
                detail: format!("{detail} ({} violations in all)", findings.count[i]),
            },
        };
        report.checks.push(CheckResult {
            name,
            outcome,
            took,
        });
    }
    report
}

/// The first violation of each check (by index), and how many there were.
#[derive(Default)]
struct Findings {
    first: BTreeMap<usize, String>,
    count: [usize; POLICY_CHECKS.len()],
}

impl Findings {
    fn violated(&mut self, check: usize, seed: u64, events: &[Event], what: String) {
        self.count[check] += 1;
        self.first.entry(check).or_insert_with(|| {
            format!(
                "history seed {seed}, event {}: {what}; replay with seed {seed} and 1 history; events: {events:?}",
                events.len()
            )
        });
    }
}

/// The user's policy, recording what it was asked and what it answered.
struct Recorder {
    inner: Arc<dyn FailoverPolicy>,
    seen: Mutex<Option<(Topology, Vec<Action>)>>,
}

impl FailoverPolicy for Recorder {
    fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action> {
        let decided = self.inner.decide(topology, event);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((topology.clone(), decided.clone()));
        }
        decided
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

impl Recorder {
    fn take(&self) -> Option<(Topology, Vec<Action>)> {
        self.seen.lock().ok().and_then(|mut seen| seen.take())
    }
}

/// One history through a fresh [`ClusterState`], judging every step.
fn run_history(
    policy: &Arc<dyn FailoverPolicy>,
    names: &[&str],
    seed: u64,
    events: &mut Vec<Event>,
    findings: &mut Findings,
) {
    let (mut history, topology, steps) = History::start(names, seed);
    let recorder = Arc::new(Recorder {
        inner: Arc::clone(policy),
        seen: Mutex::new(None),
    });
    let mut cluster = ClusterState::with_shared_policy(topology, recorder.clone());
    let mut decisions = Vec::new();
    let mut last = Vec::new();
    for _ in 0..steps {
        let event = history.next_event(&last);
        events.push(event.clone());
        let before = cluster.snapshot();
        let applied = cluster.handle(event.clone());
        // Not asked: permission was denied (the model's guarantee).
        if let Some((seen, decided)) = recorder.take() {
            let mut fail = |check, what| findings.violated(check, seed, events, what);
            let again = policy.decide(&seen, &event);
            if again != decided {
                fail(1, format!("decided {decided:?}, then {again:?}"));
            }
            if applied != decided {
                fail(
                    3,
                    format!("decided {decided:?}, the model applied {applied:?}"),
                );
            }
            for problem in judge(&before, &seen, &event, &decided) {
                fail(problem.0, problem.1);
            }
            decisions.push((seen, event, decided));
        }
        last = applied;
    }
    for (i, (seen, event, decided)) in decisions.iter().enumerate().rev() {
        let again = policy.decide(seen, event);
        if &again != decided {
            let what = format!(
                "event {} decided {decided:?} then, {again:?} when asked again after the history",
                i + 1
            );
            findings.violated(2, seed, events, what);
        }
    }
}

/// What is wrong with deciding `decided` about `event`, `seen` being the
/// topology the policy was given (`before` plus the event's facts).
fn judge(
    before: &Topology,
    seen: &Topology,
    event: &Event,
    decided: &[Action],
) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    for action in decided {
        match action {
            Action::Promote { node, .. } => match seen.node(node) {
                // Adopting a node seen writable just now, whatever the model
                // made of it before.
                Some(n) if adopts(seen, n) => {}
                Some(n) if n.role != Role::Standby || n.status != Status::Up => problems.push((
                    4,
                    format!("promoted {node}, which is {:?} and {:?}", n.role, n.status),
                )),
                _ => {}
            },
            Action::Fence { node, .. } if seen.primary_id() == Some(node) => {
                let healthy = seen.node(node).is_some_and(|n| {
                    n.last_observed_at.is_some()
                        && n.consecutive_failures == 0
                        && n.in_recovery == Some(false)
                });
                let unasked = matches!(event, Event::Observed { .. } | Event::SessionHint { .. });
                if healthy && unasked {
                    problems.push((5, format!("fenced {node}, the healthy primary")));
                }
            }
            _ => {}
        }
    }
    let promotes = decided.iter().any(|a| matches!(a, Action::Promote { .. }));
    if let Event::Observed {
        node,
        observation: Observation::Failed { .. },
        ..
    } = event
    {
        if before.primary_id() != Some(node) && promotes {
            problems.push((6, format!("standby {node} failing led to {decided:?}")));
        }
    }
    if matches!(event, Event::SessionHint { .. })
        && !decided.iter().all(|a| matches!(a, Action::Probe { .. }))
    {
        problems.push((7, format!("a hint led to {decided:?}")));
    }
    problems
}

/// Whether promoting `node` adopts a node that already is a primary while
/// the term has none (e.g. after its promotion was reported failed): its
/// last probe found it writable.
fn adopts(topology: &Topology, node: &crate::NodeState) -> bool {
    topology.primary_id().is_none()
        && node.consecutive_failures == 0
        && node.in_recovery == Some(false)
}
