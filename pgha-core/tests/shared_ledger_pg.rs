//! Several monitors sharing one ledger, as the members of a pgha group do
//! (the watchdog's replicated record in production; an in-memory ledger
//! here), on real PostgreSQL servers: only a member that can record a
//! decision acts on it, the others adopt what was recorded, and a member
//! that has not learned the committed term routes no write.

#[path = "common/pg.rs"]
mod pg;

use std::sync::Arc;

use pg::{fast_config, healthy, id, init_tracing, local, primary_is, run, Running, R, WAIT};
use pgha_core::testing::{MemberLedger, MemoryLedger, PgCluster};
use pgha_core::{
    AdminState, ClusterMonitor, Command, ConnectConfig, LedgerView, ManualCoordinator,
    MonitorEventKind, SqlProbe, Status, TermLedger, TermRecord,
};

fn committed(term: u64, primary: &str) -> LedgerView {
    LedgerView::Committed(TermRecord::new(term, Some(id(primary))))
}

/// A member: its monitor, gated by `leading` (coordinator permission and
/// the ledger's acceptance start equal; tests may split them).
fn member(
    cluster: &Arc<PgCluster>,
    ledger: Arc<MemberLedger>,
    gate: Arc<ManualCoordinator>,
) -> Running {
    init_tracing();
    let (monitor, handle) = ClusterMonitor::builder(cluster.topology())
        .probe(Arc::new(SqlProbe::new(ConnectConfig::default())))
        .controller(local(cluster))
        .coordinator(gate)
        .ledger(ledger)
        .config(fast_config(None))
        .build()
        .expect("monitor builds");
    run(monitor, handle)
}

/// Two members of `group`: one that leads (its commits succeed, its
/// coordinator grants), one that follows.
fn leader_and_follower(cluster: &Arc<PgCluster>, group: &MemoryLedger) -> (Running, Running) {
    let (leader_ledger, follower_ledger) = (group.member(), group.member());
    leader_ledger.set_leading(true);
    let leader = member(
        cluster,
        leader_ledger,
        Arc::new(ManualCoordinator::new(true)),
    );
    let follower = member(
        cluster,
        follower_ledger,
        Arc::new(ManualCoordinator::new(false)),
    );
    (leader, follower)
}

#[tokio::test]
async fn a_follower_adopts_the_leaders_promotion_and_never_decides_itself() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let group = MemoryLedger::new(committed(1, "node0"));
    let (leader, follower) = leader_and_follower(&cluster, &group);
    let mut follower_events = follower.handle.events();
    healthy(&leader.handle).await?;
    healthy(&follower.handle).await?;

    cluster.nodes()[0].kill9()?;
    let on_leader = primary_is(&leader.handle, "node1").await?;
    let on_follower = primary_is(&follower.handle, "node1").await?;
    assert_eq!((on_leader.term(), on_follower.term()), (2, 2));
    assert!(!cluster.nodes()[1].is_in_recovery().await?);

    let mut adopted = None;
    while let Ok(event) = follower_events.try_recv() {
        match event.kind {
            MonitorEventKind::Decided { actions, .. } => {
                panic!("the follower decided {actions:?} itself")
            }
            MonitorEventKind::Adopted { term, primary } => adopted = Some((term, primary)),
            _ => {}
        }
    }
    assert_eq!(adopted, Some((2, Some("node1".to_string()))));
    Ok(())
}

#[tokio::test]
async fn a_leader_whose_decision_cannot_be_recorded_does_not_promote() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let group = MemoryLedger::new(committed(1, "node0"));
    let ledger = group.member();
    // Permission says "lead", but the group no longer takes its decisions:
    // the window in which a deposed leader has not yet heard so.
    let leader = member(
        &cluster,
        ledger.clone(),
        Arc::new(ManualCoordinator::new(true)),
    );
    healthy(&leader.handle).await?;
    cluster.nodes()[0].kill9()?;
    leader
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.consecutive_failures >= 4)
        })
        .await?;
    assert!(
        cluster.nodes()[1].is_in_recovery().await?,
        "no promotion that was not recorded first"
    );
    let now = leader.handle.current();
    assert_eq!(
        (now.term(), now.primary_id()),
        (1, Some(&id("node0"))),
        "the unrecorded decision is not kept in the model either"
    );
    ledger.set_leading(true);
    let after = primary_is(&leader.handle, "node1").await?;
    assert_eq!(after.term(), 2);
    assert_eq!(*group.member().view().borrow(), committed(2, "node1"));
    Ok(())
}

#[tokio::test]
async fn a_member_routes_no_write_before_it_learns_the_committed_term() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    // A member restarted with an empty state directory: the record exists
    // on its peers, but it has not heard from them yet.
    let group = MemoryLedger::new(LedgerView::Unknown);
    let member = member(
        &cluster,
        group.member(),
        Arc::new(ManualCoordinator::new(false)),
    );
    tokio::time::sleep(fast_config(None).probe_interval * 3).await;
    let before = member.handle.current();
    assert!(
        before.nodes().iter().all(|n| !before.is_writable(&n.id)),
        "no node takes writes before the term is known: {before:?}"
    );
    assert!(before
        .held()
        .is_some_and(|why| why.contains("committed term")));
    group.publish(committed(5, "node0"));
    let after = primary_is(&member.handle, "node0").await?;
    assert_eq!(after.term(), 5);
    Ok(())
}

#[tokio::test]
async fn the_leaders_detach_and_maintenance_reach_every_members_routing() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let group = MemoryLedger::new(committed(1, "node0"));
    let (leader, follower) = leader_and_follower(&cluster, &group);
    let mut events = follower.handle.events();
    healthy(&leader.handle).await?;
    healthy(&follower.handle).await?;
    let node1 = id("node1");
    let reads_from_node1 = |t: &pgha_core::Topology| t.readable_nodes().any(|n| n.id == node1);
    assert!(reads_from_node1(&follower.handle.current()));

    // An operator detaches the standby on the leader: no member's proxy
    // reads from it any more, though every member's probe sees it healthy.
    leader
        .handle
        .command(Command::Detach {
            node: node1.clone(),
        })
        .await?;
    let seen = follower
        .handle
        .wait_for(WAIT, |t| {
            t.node(&node1).is_some_and(|n| n.status == Status::Detached)
        })
        .await?;
    assert!(!reads_from_node1(&seen));
    let LedgerView::Committed(record) = group.member().view().borrow().clone() else {
        panic!("nothing committed");
    };
    assert_eq!(
        record.admin.get(&node1),
        Some(&AdminState::DetachedByOperator)
    );
    // Healthy and caught up, it still stays out: the operator said so.
    tokio::time::sleep(fast_config(None).probe_interval * 3).await;
    let later = leader.handle.current();
    assert_eq!(
        later.node(&node1).map(|n| n.status),
        Some(Status::Detached),
        "an operator's detach is not undone by the next probe"
    );
    assert!(!reads_from_node1(&follower.handle.current()));
    assert_eq!((record.term, record.primary), (1, Some(id("node0"))));

    leader
        .handle
        .command(Command::Maintenance {
            node: node1.clone(),
            enabled: true,
        })
        .await?;
    follower
        .handle
        .wait_for(WAIT, |t| {
            t.node(&node1)
                .is_some_and(|n| n.status == Status::Maintenance)
        })
        .await?;
    leader
        .handle
        .command(Command::Maintenance {
            node: node1.clone(),
            enabled: false,
        })
        .await?;
    leader
        .handle
        .command(Command::Attach {
            node: node1.clone(),
        })
        .await?;
    let back = follower
        .handle
        .wait_for(WAIT, |t| {
            t.node(&node1).is_some_and(|n| n.status == Status::Up)
        })
        .await?;
    assert!(reads_from_node1(&back), "attached: read from again");

    // A follower's model only ever changes by the record: it decided
    // nothing itself.
    while let Ok(event) = events.try_recv() {
        if let MonitorEventKind::Decided { actions, .. } = event.kind {
            panic!("the follower decided {actions:?} itself");
        }
    }
    Ok(())
}
