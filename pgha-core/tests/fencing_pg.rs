//! Fencing a stale primary on real PostgreSQL servers: once per term, not
//! on every sight of it, and as strong as each controller can make it.

#[path = "common/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::Duration;

use pg::*;
use pgha_core::testing::PgCluster;
use pgha_core::{Action, MonitorEventKind, NodeController, Status};

fn fence_of(node: &str) -> impl Fn(&MonitorEventKind) -> bool + '_ {
    move |kind| {
        matches!(kind, MonitorEventKind::Executed { action: Action::Fence { node: n, .. }, .. }
            if n.as_str() == node)
    }
}

#[tokio::test]
async fn a_stale_primary_is_fenced_once_per_term_and_its_later_sessions_live() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    // The SQL controller leaves the old primary running (read-only), so
    // every probe sees it again: the case that used to fence it for ever.
    let running = start_monitor(cluster.topology(), sql(), fast_config(None));
    healthy(&running.handle).await?;
    let node0 = &cluster.nodes()[0];
    node0.freeze()?;
    primary_is(&running.handle, "node1").await?;
    let mut events = running.handle.events();
    node0.thaw()?;
    running
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.status == Status::Quarantined && n.fenced_in == Some(t.term()))
        })
        .await?;
    // A session opened after the fence (a DBA looking at the old primary).
    let dba = node0.connect().await?;
    // Ten probe intervals and more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let fences = count_events(&mut events, fence_of("node0"));
    assert_eq!(
        fences, 1,
        "node0 must be fenced once in term 2, not {fences} times"
    );
    let alive = dba.simple_query("SELECT 1").await;
    assert!(alive.is_ok(), "a later session was cut: {alive:?}");
    // The fence itself still holds.
    let write = node0.execute("CREATE TABLE lost (v int)").await;
    assert!(write.is_err(), "the stale primary took a write");
    assert!(!running.handle.current().is_writable(&id("node0")));
    Ok(())
}

#[tokio::test]
async fn a_fenced_old_primary_rewound_by_hand_is_attached_without_restarting_pgha() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    // pgha cannot rewind with the SQL controller: the operator does it.
    let running = start_monitor(cluster.topology(), sql(), fast_config(None));
    healthy(&running.handle).await?;
    let (node0, node1) = (&cluster.nodes()[0], &cluster.nodes()[1]);
    node0.freeze()?;
    primary_is(&running.handle, "node1").await?;
    node0.thaw()?;
    let fenced = running
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.status == Status::Quarantined)
        })
        .await?;
    node1
        .execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .await?;
    let mut events = running.handle.events();
    // By hand: stop, pg_rewind against node1, start as its standby.
    let (Some(old), Some(new)) = (fenced.node(&id("node0")), fenced.node(&id("node1"))) else {
        panic!("both nodes are in the topology");
    };
    local(&cluster).rejoin(old, new).await?;
    assert!(node0.is_in_recovery().await?, "node0 runs as a standby");
    let back = running
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.status == Status::Up && n.role == pgha_core::Role::Standby)
        })
        .await?;
    assert_eq!(back.primary_id(), Some(&id("node1")));
    assert_eq!(back.term(), 2, "no failover on the way");
    assert!(back.readable_nodes().any(|n| n.id == id("node0")));
    assert!(!back.is_writable(&id("node0")));
    let attached = count_events(&mut events, |kind| {
        matches!(kind, MonitorEventKind::Decided { actions, .. }
            if actions.contains(&Action::Attach { node: id("node0") }))
    });
    assert_eq!(attached, 1, "the attach is announced as an event");
    Ok(())
}

/// A direct write as an ordinary user, turning read-only off first: what
/// the fence must stop.
async fn write_as_app(node: &pgha_core::testing::PgNode) -> Result<(), tokio_postgres::Error> {
    let conninfo = node.local_conninfo().replace("user=postgres", "user=app");
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute("SET default_transaction_read_only = off; INSERT INTO t VALUES (1)")
        .await
}

#[tokio::test]
async fn the_sql_fence_turns_ordinary_users_away_even_read_write_and_a_promotion_lets_them_back(
) -> R {
    let cluster = PgCluster::builder().start().await?;
    let node0 = cluster.primary();
    node0
        .execute("CREATE ROLE app LOGIN; CREATE TABLE t (v int); GRANT ALL ON t TO app")
        .await?;
    node0
        .execute("CREATE DATABASE other CONNECTION LIMIT 7")
        .await?;
    write_as_app(node0).await?;
    let state = cluster
        .topology()
        .node(&id("node0"))
        .cloned()
        .expect("node0");
    let controller = pgha_core::SqlNodeController::default();
    assert_eq!(
        controller.fence(&state).await?,
        pgha_core::Fenced::Confirmed
    );
    // Twice, as a re-check would: the limits kept are the first ones.
    assert_eq!(
        controller.fence(&state).await?,
        pgha_core::Fenced::Confirmed
    );
    let refused = write_as_app(node0).await;
    let code = refused.as_ref().err().and_then(|e| e.code().cloned());
    assert_eq!(
        code,
        Some(tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS),
        "an ordinary user must not even log in to a fenced node: {refused:?}"
    );
    // pgha itself (a superuser) still sees it, read-only.
    assert!(node0.execute("CREATE TABLE lost (v int)").await.is_err());
    // Promoted again (adopted by an operator): everything as before.
    controller.promote(&state, 2).await?;
    write_as_app(node0).await?;
    let limit = node0
        .query_one_text("SELECT datconnlimit::text FROM pg_database WHERE datname = 'other'")
        .await?;
    assert_eq!(limit.as_deref(), Some("7"));
    Ok(())
}
