//! The watchdog record as pgha-core's `TermLedger`: only the leader's
//! decisions are recorded, every member learns them, and a member that has
//! not heard a leader yet knows no term (so its proxy routes no write).

use std::time::Duration;

use pgha_core::{LedgerView, TermLedger, TermRecord};
use pgha_watchdog::testing::SimCluster;
use pgha_watchdog::{Member, Timing};

fn record(term: u64, primary: &str) -> TermRecord {
    TermRecord::new(term, Some(primary.into()))
}

async fn leader(cluster: &SimCluster) -> &Member {
    loop {
        let now = tokio::time::Instant::now();
        if let Some(id) = cluster.lease_holders(now).first() {
            if let Some(member) = cluster.member(*id) {
                return member;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_leaders_decision_reaches_every_members_ledger_and_a_follower_cannot_decide() {
    let cluster = SimCluster::start(3, Timing::default(), 7)
        .await
        .expect("cluster starts");
    // Member 3 hears nobody from the start: like a member restarted with
    // an empty state directory before it reaches its peers.
    cluster.net.isolate(3, [1, 2]);
    let late = cluster.member(3).expect("member 3 runs").ledger();
    let leader = leader(&cluster).await;
    let follower = cluster
        .running()
        .find(|m| m.id() != leader.id() && m.id() != 3)
        .expect("a follower");
    let (leader_ledger, follower_ledger) = (leader.ledger(), follower.ledger());

    let refused = follower_ledger.commit(&record(2, "node1")).await;
    assert!(
        matches!(refused, Err(pgha_core::Error::NotLeading { .. })),
        "{refused:?}"
    );
    leader_ledger
        .commit(&record(2, "node1"))
        .await
        .expect("the leader records");
    let mut seen = follower_ledger.view();
    tokio::time::timeout(
        Duration::from_secs(5),
        seen.wait_for(|v| *v == LedgerView::Committed(record(2, "node1"))),
    )
    .await
    .expect("the follower learns the decision")
    .expect("ledger runs");

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        *late.view().borrow(),
        LedgerView::Unknown,
        "a member that never heard a leader knows no term"
    );
    // A term going backwards is refused, the same decision twice is not.
    assert!(leader_ledger.commit(&record(1, "node0")).await.is_err());
    assert!(leader_ledger.commit(&record(2, "node1")).await.is_ok());

    cluster.net.heal();
    let mut late_view = late.view();
    tokio::time::timeout(
        Duration::from_secs(5),
        late_view.wait_for(|v| *v == LedgerView::Committed(record(2, "node1"))),
    )
    .await
    .expect("after the heal the late member learns the committed term")
    .expect("ledger runs");
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_cluster_reads_empty_and_its_first_primary_may_be_named_in_term_zero() {
    let cluster = SimCluster::start(3, Timing::default(), 11)
        .await
        .expect("cluster starts");
    let leader = leader(&cluster).await.ledger();
    let mut view = leader.view();
    tokio::time::timeout(
        Duration::from_secs(5),
        view.wait_for(|v| *v == LedgerView::Empty),
    )
    .await
    .expect("nothing committed yet reads as empty")
    .expect("ledger runs");
    leader
        .commit(&record(0, "node0"))
        .await
        .expect("the settled primary is named");
    assert_eq!(*view.borrow(), LedgerView::Committed(record(0, "node0")));
    assert!(
        leader.commit(&record(0, "node1")).await.is_err(),
        "once named, another primary needs a new term"
    );
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn node_states_the_leader_records_reach_every_member_and_a_promotion_carries_its_own() {
    use pgha_core::AdminState;
    let cluster = SimCluster::start(3, Timing::default(), 11)
        .await
        .expect("cluster starts");
    let leader = leader(&cluster).await;
    let leader_ledger = leader.ledger();
    let followers: Vec<_> = cluster
        .running()
        .filter(|m| m.id() != leader.id())
        .map(|m| m.ledger())
        .collect();
    leader_ledger
        .commit(&record(2, "node0"))
        .await
        .expect("the leader records the term");
    let mut detached = record(2, "node0");
    detached
        .admin
        .insert("node1".into(), AdminState::DetachedByOperator);
    detached.admin.insert(
        "node2".into(),
        AdminState::Quarantined(pgha_core::QuarantineReason::FenceFailed),
    );
    leader_ledger
        .commit(&detached)
        .await
        .expect("the leader records node states");
    for ledger in &followers {
        let mut view = ledger.view();
        tokio::time::timeout(
            Duration::from_secs(5),
            view.wait_for(|v| *v == LedgerView::Committed(detached.clone())),
        )
        .await
        .expect("every member learns the node states")
        .expect("ledger runs");
    }
    // A failover decides a new term with its own node states: node0, the
    // old primary, detached; node1 promoted (and so attached).
    let mut failover = record(3, "node1");
    failover.admin.insert("node0".into(), AdminState::Detached);
    leader_ledger
        .commit(&failover)
        .await
        .expect("the leader records the failover");
    let mut view = followers[0].view();
    tokio::time::timeout(
        Duration::from_secs(5),
        view.wait_for(|v| *v == LedgerView::Committed(failover.clone())),
    )
    .await
    .expect("the failover's states replace the old ones")
    .expect("ledger runs");
    // Node states decided under the old term no longer apply.
    assert!(leader_ledger.commit(&detached).await.is_err());
    cluster.shutdown().await;
}
