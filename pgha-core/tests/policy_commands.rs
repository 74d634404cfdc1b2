//! One event in, the exact actions out: the default policy through the
//! state machine, one scenario per test.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::time::Duration;

use pgha_core::{
    Action, ClusterState, Command, DefaultPolicy, Event, FailureReason, Health, Lsn, NodeId,
    NodeState, Observation, QuarantineReason, Role, Status, Topology,
};

const MIB: u64 = 1024 * 1024;

fn id(name: &str) -> NodeId {
    NodeId::new(name)
}

fn primary(name: &str, lsn: u64) -> NodeState {
    NodeState::new(name, Role::Primary, format!("{name}.db"), 5432).with_lsn(Lsn(lsn))
}

fn standby(name: &str, lsn: u64) -> NodeState {
    NodeState::new(name, Role::Standby, format!("{name}.db"), 5432).with_lsn(Lsn(lsn))
}

fn failing(mut node: NodeState, failures: u32) -> NodeState {
    node.consecutive_failures = failures;
    node
}

/// `a` primary at 10 MiB, `b` and `c` standbys slightly behind, `c` ahead.
fn three_nodes() -> Vec<NodeState> {
    vec![
        primary("a", 10 * MIB),
        standby("b", 10 * MIB - 900),
        standby("c", 10 * MIB - 100),
    ]
}

fn cluster(nodes: Vec<NodeState>) -> ClusterState {
    ClusterState::new(Topology::new(nodes), DefaultPolicy::default())
}

fn failed(node: &str) -> Event {
    Event::Observed {
        node: id(node),
        at: Duration::from_secs(10),
        observation: Observation::Failed {
            reason: FailureReason::ConnectRefused,
        },
    }
}

fn healthy(node: &str, health: Health) -> Event {
    Event::Observed {
        node: id(node),
        at: Duration::from_secs(10),
        observation: Observation::Healthy(health),
    }
}

fn command(command: Command) -> Event {
    Event::Command {
        at: Duration::from_secs(10),
        command,
    }
}

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

/// After a failover to `b` in term 2, the old primary `a` is fenced (down).
fn after_failover_to_b() -> Topology {
    let mut old = primary("a", 10 * MIB);
    old.role = Role::Unknown;
    old.status = Status::Down;
    Topology::new([old, primary("b", 11 * MIB), standby("c", 11 * MIB)]).with_term(2)
}

#[test]
fn stale_primary_is_quarantined_fenced_and_rejoined() {
    let mut cluster = ClusterState::new(after_failover_to_b(), DefaultPolicy::default());

    let actions = cluster.handle(healthy("a", Health::primary(Lsn(10 * MIB + 5))));

    assert_eq!(
        actions,
        vec![
            Action::Quarantine {
                node: id("a"),
                reason: QuarantineReason::StalePrimary
            },
            Action::Fence {
                node: id("a"),
                term: 2
            },
            Action::Rejoin {
                node: id("a"),
                primary: id("b")
            },
        ]
    );
    let topology = cluster.snapshot();
    assert!(!topology.is_writable(&id("a")));
    assert!(topology.readable_nodes().all(|n| n.id != id("a")));
    assert_eq!(topology.node(&id("a")).unwrap().status, Status::Rejoining);
}

#[test]
fn stale_primary_without_auto_rejoin_stays_quarantined() {
    let policy = DefaultPolicy {
        auto_rejoin: false,
        ..DefaultPolicy::default()
    };
    let mut cluster = ClusterState::new(after_failover_to_b(), policy);

    let actions = cluster.handle(healthy("a", Health::primary(Lsn(10 * MIB + 5))));

    assert_eq!(
        actions,
        vec![
            Action::Quarantine {
                node: id("a"),
                reason: QuarantineReason::StalePrimary
            },
            Action::Fence {
                node: id("a"),
                term: 2
            },
        ]
    );
    assert_eq!(
        cluster.snapshot().node(&id("a")).unwrap().status,
        Status::Quarantined
    );
}

#[test]
fn rejoined_node_is_attached_once_caught_up_on_the_timeline() {
    let mut topology = after_failover_to_b();
    let mut nodes = topology.nodes().to_vec();
    nodes[0].role = Role::Standby;
    nodes[0].status = Status::Rejoining;
    nodes[0].upstream = Some(id("b"));
    topology = Topology::new(nodes).with_term(2);
    let mut cluster = ClusterState::new(topology, DefaultPolicy::default());

    let behind = Health::standby(Lsn(11 * MIB - 2 * MIB));
    assert_eq!(cluster.handle(healthy("a", behind)), vec![]);
    let caught_up = Health::standby(Lsn(11 * MIB));
    assert_eq!(
        cluster.handle(healthy("a", caught_up)),
        vec![Action::Attach { node: id("a") }]
    );
    assert!(cluster.snapshot().readable_nodes().any(|n| n.id == id("a")));
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
fn primary_back_before_any_promotion_is_attached_again() {
    let nodes = vec![failing(primary("a", 10 * MIB), 1), standby("b", 7 * MIB)];
    let mut cluster = cluster(nodes);
    cluster.handle(failed("a"));

    let actions = cluster.handle(healthy("a", Health::primary(Lsn(10 * MIB))));

    assert_eq!(actions, vec![Action::Attach { node: id("a") }]);
    assert!(cluster.snapshot().is_writable(&id("a")));
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
fn a_failed_promotion_fences_that_node_and_promotes_the_next() {
    let mut nodes = three_nodes();
    nodes[0] = failing(nodes[0].clone(), 1);
    let mut cluster = cluster(nodes);
    cluster.handle(failed("a"));

    let actions = cluster.handle(Event::ActionFailed {
        at: Duration::from_secs(11),
        action: Action::Promote {
            node: id("c"),
            term: 2,
        },
        error: "pg_promote() timed out".into(),
    });

    assert_eq!(
        actions,
        vec![
            Action::Promote {
                node: id("b"),
                term: 3
            },
            Action::Fence {
                node: id("c"),
                term: 3
            },
        ]
    );
    let topology = cluster.snapshot();
    assert_eq!(topology.primary_id(), Some(&id("b")));
    assert!(!topology.is_writable(&id("c")));
}

#[test]
fn a_failed_promotion_without_alternative_leaves_no_primary_until_a_standby_is_back() {
    let nodes = vec![failing(primary("a", 10 * MIB), 1), standby("b", 10 * MIB)];
    let mut cluster = cluster(nodes);
    cluster.handle(failed("a"));

    let actions = cluster.handle(Event::ActionFailed {
        at: Duration::from_secs(11),
        action: Action::Promote {
            node: id("b"),
            term: 2,
        },
        error: "connection refused".into(),
    });

    assert_eq!(
        actions,
        vec![
            Action::NoPromotionCandidate {
                failed: Some(id("b"))
            },
            Action::Fence {
                node: id("b"),
                term: 2
            },
        ]
    );
    assert_eq!(cluster.snapshot().primary_id(), None);

    // The old primary comes back still primary: with nobody primary of the
    // term, it is adopted in a new term rather than quarantined.
    let actions = cluster.handle(healthy("a", Health::primary(Lsn(10 * MIB))));
    assert_eq!(
        actions,
        vec![Action::Promote {
            node: id("a"),
            term: 3
        }]
    );
    assert!(cluster.snapshot().is_writable(&id("a")));
}

#[test]
fn an_outdated_failed_promotion_is_ignored() {
    let topology = Topology::new([primary("b", MIB), standby("c", MIB)]).with_term(5);
    let mut cluster = ClusterState::new(topology, DefaultPolicy::default());
    let actions = cluster.handle(Event::ActionFailed {
        at: Duration::from_secs(1),
        action: Action::Promote {
            node: id("b"),
            term: 4,
        },
        error: "late report".into(),
    });
    assert_eq!(actions, vec![]);
    assert!(cluster.snapshot().is_writable(&id("b")));
}

#[test]
fn a_detached_standby_back_and_caught_up_is_attached() {
    let nodes = vec![
        primary("a", 10 * MIB),
        standby("b", 9 * MIB).with_status(Status::Detached),
    ];
    let mut cluster = cluster(nodes);

    assert_eq!(
        cluster.handle(healthy("b", Health::standby(Lsn(8 * MIB)))),
        vec![]
    );
    assert_eq!(
        cluster.handle(healthy("b", Health::standby(Lsn(10 * MIB - 10)))),
        vec![Action::Attach { node: id("b") }]
    );
}

#[test]
fn a_standby_back_after_a_failover_is_repointed_before_it_is_attached() {
    let mut b = standby("b", 10 * MIB).with_status(Status::Detached);
    b.upstream = Some(id("old"));
    let mut cluster = cluster(vec![primary("a", 10 * MIB), b]);

    assert_eq!(
        cluster.handle(healthy("b", Health::standby(Lsn(10 * MIB)))),
        vec![Action::Follow {
            node: id("b"),
            primary: id("a"),
            term: 1
        }]
    );
    assert_eq!(
        cluster.handle(healthy("b", Health::standby(Lsn(10 * MIB)))),
        vec![Action::Attach { node: id("b") }]
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

#[test]
fn a_node_in_maintenance_is_not_acted_on() {
    let nodes = vec![
        primary("a", 10 * MIB),
        failing(standby("b", 10 * MIB), 5).with_status(Status::Maintenance),
    ];
    let mut cluster = cluster(nodes);
    assert_eq!(cluster.handle(failed("b")), vec![]);
    assert_eq!(
        cluster.handle(command(Command::Maintenance {
            node: id("b"),
            enabled: false
        })),
        vec![Action::Maintenance {
            node: id("b"),
            enabled: false
        }]
    );
    assert_eq!(
        cluster.snapshot().node(&id("b")).unwrap().status,
        Status::Detached
    );
}
