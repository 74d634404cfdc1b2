//! One event in, the exact actions out: failures, hints, priorities,
//! lag limits, permission and operator hand-overs.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

mod common;

use std::time::Duration;

use common::*;
use pgha_core::{
    Action, ClusterState, Command, DefaultPolicy, Event, FailureReason, Health, Lsn, Observation,
    Role, Status, Topology,
};

#[test]
fn primary_down_after_two_failures_promotes_most_advanced_standby() {
    let mut nodes = three_nodes();
    nodes[0] = failing(nodes[0].clone(), 1);
    let mut cluster = cluster(nodes);

    let actions = cluster.handle(failed("a"));

    assert_eq!(
        actions,
        vec![
            Action::Promote {
                node: id("c"),
                term: 2
            },
            Action::Follow {
                node: id("b"),
                primary: id("c"),
                term: 2
            },
            Action::Fence {
                node: id("a"),
                term: 2
            },
        ]
    );
    let topology = cluster.snapshot();
    assert_eq!(topology.term(), 2);
    assert_eq!(topology.primary_id(), Some(&id("c")));
    assert!(topology.is_writable(&id("c")));
    assert!(!topology.is_writable(&id("a")));
    assert_eq!(topology.node(&id("a")).unwrap().status, Status::Down);
    assert_eq!(topology.node(&id("b")).unwrap().upstream, Some(id("c")));
}

#[test]
fn a_standby_that_just_failed_a_probe_is_promoted_only_if_no_other_answers() {
    // c is ahead but its last probe failed: b, answering, is the better bet.
    let mut nodes = three_nodes();
    nodes[0] = failing(nodes[0].clone(), 1);
    nodes[2] = failing(nodes[2].clone(), 1);
    let mut cluster = cluster(nodes.clone());
    let actions = cluster.handle(failed("a"));
    assert_eq!(
        actions.first(),
        Some(&Action::Promote {
            node: id("b"),
            term: 2
        })
    );
    // With b gone too, c is still better than no primary.
    nodes[1].status = Status::Detached;
    let mut cluster = self::cluster(nodes);
    let actions = cluster.handle(failed("a"));
    assert_eq!(
        actions.first(),
        Some(&Action::Promote {
            node: id("c"),
            term: 2
        })
    );
}

#[test]
fn one_failed_probe_of_the_primary_changes_nothing() {
    let mut cluster = cluster(three_nodes());

    assert_eq!(cluster.handle(failed("a")), vec![]);

    let topology = cluster.snapshot();
    assert_eq!(topology.term(), 1);
    assert!(topology.is_writable(&id("a")));
    assert_eq!(topology.node(&id("a")).unwrap().consecutive_failures, 1);
}

#[test]
fn a_healthy_probe_resets_the_failure_count() {
    let mut nodes = three_nodes();
    nodes[0] = failing(nodes[0].clone(), 1);
    let mut cluster = cluster(nodes);

    assert_eq!(
        cluster.handle(healthy("a", Health::primary(Lsn(10 * MIB)))),
        vec![]
    );
    assert_eq!(cluster.handle(failed("a")), vec![]);
    assert_eq!(cluster.snapshot().term(), 1);
}

#[test]
fn standby_down_is_only_detached() {
    let mut nodes = three_nodes();
    nodes[2] = failing(nodes[2].clone(), 1);
    let mut cluster = cluster(nodes);

    assert_eq!(
        cluster.handle(failed("c")),
        vec![Action::Detach { node: id("c") }]
    );
    let topology = cluster.snapshot();
    assert_eq!(topology.term(), 1);
    assert_eq!(topology.node(&id("c")).unwrap().status, Status::Detached);
    assert_eq!(topology.readable_nodes().count(), 2);
}

#[test]
fn admin_shutdown_seen_by_a_session_only_probes_the_primary() {
    let mut cluster = cluster(three_nodes());

    let actions = cluster.handle(Event::SessionHint {
        node: id("a"),
        at: Duration::from_secs(3),
        sqlstate: "57P01".into(),
    });

    assert_eq!(actions, vec![Action::Probe { node: id("a") }]);
    assert_eq!(cluster.snapshot().term(), 1);
    assert!(cluster.snapshot().is_writable(&id("a")));
}

#[test]
fn an_unrelated_session_error_asks_for_nothing() {
    let mut cluster = cluster(three_nodes());
    let actions = cluster.handle(Event::SessionHint {
        node: id("a"),
        at: Duration::from_secs(3),
        sqlstate: "23505".into(), // unique_violation: the node is fine
    });
    assert_eq!(actions, vec![]);
}

#[test]
fn candidate_past_maximum_lag_is_refused_and_nothing_is_promoted() {
    let nodes = vec![failing(primary("a", 10 * MIB), 1), standby("b", 7 * MIB)];
    let mut cluster = cluster(nodes);

    let actions = cluster.handle(failed("a"));

    assert_eq!(
        actions,
        vec![
            Action::RefusePromotion {
                candidate: id("b"),
                behind_bytes: 3 * MIB,
                limit: MIB
            },
            Action::NoPromotionCandidate {
                failed: Some(id("a"))
            },
            Action::Detach { node: id("a") },
        ]
    );
    let topology = cluster.snapshot();
    assert_eq!(topology.term(), 1);
    assert_eq!(topology.primary_id(), Some(&id("a")));
    assert_eq!(topology.node(&id("b")).unwrap().role, Role::Standby);
}

#[test]
fn priority_zero_is_never_promoted_even_when_most_advanced() {
    let nodes = vec![
        failing(primary("a", 10 * MIB), 1),
        standby("b", 10 * MIB - 500),
        standby("dr", 10 * MIB).with_priority(0),
    ];
    let mut cluster = cluster(nodes);

    assert_eq!(
        cluster.handle(failed("a")),
        vec![
            Action::Promote {
                node: id("b"),
                term: 2
            },
            Action::Follow {
                node: id("dr"),
                primary: id("b"),
                term: 2
            },
            Action::Fence {
                node: id("a"),
                term: 2
            },
        ]
    );
}

#[test]
fn only_priority_zero_standbys_means_no_promotion() {
    let nodes = vec![
        failing(primary("a", 10 * MIB), 1),
        standby("dr", 10 * MIB).with_priority(0),
    ];
    let mut cluster = cluster(nodes);

    assert_eq!(
        cluster.handle(failed("a")),
        vec![
            Action::NoPromotionCandidate {
                failed: Some(id("a"))
            },
            Action::Detach { node: id("a") },
        ]
    );
    assert_eq!(cluster.snapshot().term(), 1);
}

#[test]
fn higher_priority_wins_within_the_lag_limit() {
    let nodes = vec![
        failing(primary("a", 10 * MIB), 1),
        standby("b", 10 * MIB - 1000).with_priority(5),
        standby("c", 10 * MIB).with_priority(1),
        standby("d", 5 * MIB).with_priority(9), // preferred, but over the limit
    ];
    let mut cluster = cluster(nodes);

    assert_eq!(
        cluster.handle(failed("a")),
        vec![
            Action::RefusePromotion {
                candidate: id("d"),
                behind_bytes: 5 * MIB,
                limit: MIB
            },
            Action::Promote {
                node: id("b"),
                term: 2
            },
            Action::Follow {
                node: id("c"),
                primary: id("b"),
                term: 2
            },
            Action::Follow {
                node: id("d"),
                primary: id("b"),
                term: 2
            },
            Action::Fence {
                node: id("a"),
                term: 2
            },
        ]
    );
}

#[test]
fn gated_without_permission_nothing_is_done_until_it_is_granted() {
    let nodes = vec![failing(primary("a", 10 * MIB), 1), standby("b", 10 * MIB)];
    let mut cluster = ClusterState::new(Topology::new(nodes).gated(), DefaultPolicy::default());

    assert_eq!(cluster.handle(failed("a")), vec![]);
    assert_eq!(cluster.handle(failed("a")), vec![]);
    assert_eq!(
        cluster.handle(Event::SessionHint {
            node: id("a"),
            at: Duration::from_secs(3),
            sqlstate: "57P01".into()
        }),
        vec![]
    );
    assert_eq!(cluster.snapshot().term(), 1);
    assert_eq!(
        cluster
            .snapshot()
            .node(&id("a"))
            .unwrap()
            .consecutive_failures,
        3
    );

    let granted = Event::Permission {
        at: Duration::from_secs(11),
        granted: true,
    };
    assert_eq!(
        cluster.handle(granted),
        vec![
            Action::Promote {
                node: id("b"),
                term: 2
            },
            Action::Fence {
                node: id("a"),
                term: 2
            },
        ]
    );
}

#[test]
fn switchover_fences_first_and_rejoins_the_old_primary() {
    let mut cluster = cluster(three_nodes());

    let actions = cluster.handle(command(Command::Switchover {
        target: Some(id("b")),
    }));

    assert_eq!(
        actions,
        vec![
            Action::Fence {
                node: id("a"),
                term: 2
            },
            Action::Promote {
                node: id("b"),
                term: 2
            },
            Action::Follow {
                node: id("c"),
                primary: id("b"),
                term: 2
            },
            Action::Rejoin {
                node: id("a"),
                primary: id("b")
            },
        ]
    );
    assert!(cluster.snapshot().is_writable(&id("b")));
}

#[test]
fn operator_detach_of_the_primary_fails_over() {
    let mut cluster = cluster(three_nodes());
    let actions = cluster.handle(command(Command::Detach { node: id("a") }));
    assert_eq!(
        actions[0],
        Action::Promote {
            node: id("c"),
            term: 2
        }
    );
    assert_eq!(cluster.snapshot().primary_id(), Some(&id("c")));
}

/// Several signals of one crash (lost monitoring connection, a proxy's
/// hint, a regular probe) arrive within milliseconds: they must not add up
/// to "down" before the minimum down time, or a quick restart by a DBA
/// would fail the primary over.
#[test]
fn failures_in_quick_succession_wait_for_the_minimum_down_time() {
    let mut cluster = ClusterState::new(Topology::new(three_nodes()), DefaultPolicy::default());
    let refused = |ms| Event::Observed {
        node: id("a"),
        at: Duration::from_millis(ms),
        observation: Observation::Failed {
            reason: FailureReason::ConnectRefused,
        },
    };
    assert_eq!(cluster.handle(refused(1000)), vec![]);
    assert_eq!(
        cluster.handle(refused(1003)),
        vec![],
        "3 ms apart: not yet down"
    );
    let actions = cluster.handle(refused(1600));
    assert!(
        matches!(actions.first(), Some(Action::Promote { node, term: 2 }) if node == &id("c")),
        "{actions:?}"
    );
}

/// A monitoring connection that vanished without a word, then a refused
/// connect: the crash is confirmed by that one observation.
#[test]
fn one_crashed_observation_fails_over_at_once() {
    let mut cluster = ClusterState::new(Topology::new(three_nodes()), DefaultPolicy::default());
    let actions = cluster.handle(Event::Observed {
        node: id("a"),
        at: Duration::from_millis(1000),
        observation: Observation::Failed {
            reason: FailureReason::Crashed,
        },
    });
    assert!(
        matches!(actions.first(), Some(Action::Promote { node, term: 2 }) if node == &id("c")),
        "{actions:?}"
    );
}

/// Writes held (no durable term, ambiguous evidence): observations change
/// nothing; an operator's promotion of a writable node adopts it.
#[test]
fn with_writes_held_only_an_operator_names_the_primary() {
    let mut a = primary("a", 10 * MIB);
    a.role = Role::Unknown;
    a.in_recovery = Some(false);
    let mut b = standby("b", 10 * MIB);
    b.role = Role::Unknown;
    b.in_recovery = Some(false);
    let topology =
        Topology::new([a, b]).with_writes_held("a and b are both writable on timeline 1");
    let mut cluster = ClusterState::new(topology, DefaultPolicy::default());
    assert_eq!(
        cluster.handle(healthy("a", Health::primary(Lsn(10 * MIB)))),
        vec![]
    );
    assert_eq!(cluster.handle(failed("b")), vec![]);
    assert!(cluster
        .snapshot()
        .nodes()
        .iter()
        .all(|n| !cluster.snapshot().is_writable(&n.id)));
    let actions = cluster.handle(command(Command::Promote { node: id("b") }));
    assert_eq!(
        actions.first(),
        Some(&Action::Promote {
            node: id("b"),
            term: 2
        })
    );
    let now = cluster.snapshot();
    assert!(now.is_writable(&id("b")));
    assert_eq!(now.held(), None);
}
