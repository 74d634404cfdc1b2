//! One event in, the exact actions out: stale primaries, rejoins,
//! nodes coming back, failed actions and maintenance.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

mod common;

use std::time::Duration;

use common::*;
use pgha_core::{
    Action, ClusterState, Command, DefaultPolicy, Event, Health, Lsn, QuarantineReason, Role,
    Status, Topology,
};

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
fn a_quarantined_node_streaming_from_the_primary_on_its_timeline_is_attached() {
    let mut topology = after_failover_to_b();
    let mut nodes = topology.nodes().to_vec();
    nodes[0].status = Status::Quarantined;
    nodes[0].quarantined_for = Some(QuarantineReason::RejoinFailed);
    nodes[1].timeline = Some(2);
    topology = Topology::new(nodes).with_term(2);
    let mut cluster = ClusterState::new(topology, DefaultPolicy::default());
    let standby_of = |host: &str, timeline| Health {
        timeline: Some(timeline),
        streaming_from: Some((host.to_string(), 5432)),
        ..Health::standby(Lsn(11 * MIB))
    };
    // Streaming from someone else, or on another timeline: no evidence.
    assert_eq!(cluster.handle(healthy("a", standby_of("c.db", 2))), vec![]);
    assert_eq!(cluster.handle(healthy("a", standby_of("b.db", 1))), vec![]);
    assert_eq!(
        cluster.handle(healthy("a", standby_of("b.db", 2))),
        vec![Action::Attach { node: id("a") }]
    );
    let now = cluster.snapshot();
    let a = now.node(&id("a"));
    assert_eq!(
        a.map(|n| (n.role, n.status)),
        Some((Role::Standby, Status::Up))
    );
    assert_eq!(a.and_then(|n| n.upstream.clone()), Some(id("b")));
    assert!(now.readable_nodes().any(|n| n.id == id("a")));
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
fn an_operators_detach_sticks_until_the_operators_attach() {
    let mut cluster = cluster(vec![primary("a", 10 * MIB), standby("b", 10 * MIB)]);
    let detach = command(Command::Detach { node: id("b") });
    assert_eq!(
        cluster.handle(detach),
        vec![Action::Detach { node: id("b") }]
    );
    // Healthy and caught up: a detach after a failure would end here.
    assert_eq!(
        cluster.handle(healthy("b", Health::standby(Lsn(10 * MIB)))),
        vec![]
    );
    let b = cluster.snapshot().node(&id("b")).cloned().unwrap();
    assert_eq!((b.status, b.detached_by_operator), (Status::Detached, true));
    assert_eq!(
        cluster.handle(command(Command::Attach { node: id("b") })),
        vec![Action::Attach { node: id("b") }]
    );
    let b = cluster.snapshot().node(&id("b")).cloned().unwrap();
    assert_eq!((b.status, b.detached_by_operator), (Status::Up, false));
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

#[test]
fn a_stale_primary_is_fenced_once_per_term_and_again_only_when_the_fence_is_gone() {
    let policy = DefaultPolicy {
        auto_rejoin: false,
        ..DefaultPolicy::default()
    };
    let mut cluster = ClusterState::new(after_failover_to_b(), policy);
    let seen = |read_only| {
        healthy(
            "a",
            Health {
                read_only: Some(read_only),
                ..Health::primary(Lsn(10 * MIB + 5))
            },
        )
    };
    let fence = Action::Fence {
        node: id("a"),
        term: 2,
    };
    assert!(cluster.handle(seen(false)).contains(&fence));
    // The fence held: seen again and again, nothing more is done.
    assert_eq!(cluster.handle(seen(true)), vec![]);
    assert_eq!(cluster.handle(seen(true)), vec![]);
    // Someone turned read-only off again: fenced again.
    assert_eq!(cluster.handle(seen(false)), vec![fence]);
}

#[test]
fn sessions_ended_on_a_quarantined_node_ask_for_nothing() {
    let mut cluster = ClusterState::new(after_failover_to_b(), DefaultPolicy::default());
    cluster.handle(healthy("a", Health::primary(Lsn(10 * MIB + 5))));
    let hint = Event::SessionHint {
        node: id("a"),
        at: Duration::from_secs(11),
        sqlstate: "57P01".into(),
    };
    assert_eq!(cluster.handle(hint), vec![]);
}
