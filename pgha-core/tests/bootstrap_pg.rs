//! A monitor started without its state file, on real PostgreSQL servers:
//! the nodes' evidence, not the configured order, says who is primary.

#[path = "common/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::Duration;

use pg::*;
use pgha_core::testing::PgCluster;
use pgha_core::{ClusterMonitor, Command, ConnectConfig, MonitorEventKind, SqlProbe, Status};

fn build_monitor(
    cluster: &PgCluster,
) -> Result<(ClusterMonitor, pgha_core::MonitorHandle), pgha_core::Error> {
    init_tracing();
    ClusterMonitor::builder(cluster.topology())
        .probe(Arc::new(SqlProbe::new(ConnectConfig::default())))
        .controller(sql())
        .config(fast_config(None))
        .build()
}

#[tokio::test]
async fn without_its_state_file_pgha_routes_writes_to_the_newest_timeline_not_the_configured_primary(
) -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let (node0, node1) = (&cluster.nodes()[0], &cluster.nodes()[1]);
    {
        let first = start_monitor(cluster.topology(), local(&cluster), fast_config(None));
        healthy(&first.handle).await?;
        node0.kill9()?;
        primary_is(&first.handle, "node1").await?;
    }
    // Acknowledged on the new primary (timeline 2)...
    node1
        .execute("CREATE TABLE acked (v int); INSERT INTO acked VALUES (1)")
        .await?;
    // ...while the old one runs writable again on timeline 1, and pgha
    // restarts without a state file, configured with node0 first.
    node0.start().await?;
    assert!(!node0.is_in_recovery().await?);
    let (monitor, handle) = build_monitor(&cluster)?;
    assert!(
        handle
            .current()
            .nodes()
            .iter()
            .all(|n| !handle.current().is_writable(&n.id)),
        "no writes before the nodes are heard"
    );
    let mut events = handle.events();
    let _running = run(monitor, handle.clone());
    let settled = primary_is(&handle, "node1").await?;
    assert!(!settled.is_writable(&id("node0")));
    let named = count_events(
        &mut events,
        |kind| matches!(kind, MonitorEventKind::Settled { primary: Some(p), .. } if p == "node1"),
    );
    assert_eq!(named, 1, "the evidence named node1");
    // The stale node is fenced, not written to; the acknowledged row stays.
    handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.status == Status::Quarantined)
        })
        .await?;
    assert!(!handle.current().is_writable(&id("node0")));
    assert_eq!(
        node1
            .query_one_text("SELECT count(*)::text FROM acked")
            .await?
            .as_deref(),
        Some("1")
    );
    Ok(())
}

#[tokio::test]
async fn two_writable_nodes_on_one_timeline_get_no_writes_until_an_operator_names_one() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(2).start().await?);
    cluster.wait_streaming().await?;
    // Both standbys promoted by hand: two writers on timeline 2.
    for node in &cluster.nodes()[1..] {
        node.execute("SELECT pg_promote()").await?;
    }
    for node in &cluster.nodes()[1..] {
        for _ in 0..100 {
            if !node.is_in_recovery().await? {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (monitor, handle) = build_monitor(&cluster)?;
    let _running = run(monitor, handle.clone());
    let held = handle
        .wait_for(WAIT, |t| {
            t.held().is_some_and(|why| !why.contains("first look"))
        })
        .await?;
    let why = held.held().unwrap_or_default().to_string();
    assert!(why.contains("timeline 2"), "the reason names it: {why}");
    // Several probe rounds: still nobody takes writes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = handle.current();
    assert!(
        now.nodes().iter().all(|n| !now.is_writable(&n.id)),
        "{now:#?}"
    );
    assert_eq!(now.primary_id(), None);
    // The operator names the winner.
    handle
        .command(Command::Promote { node: id("node2") })
        .await?;
    let after = primary_is(&handle, "node2").await?;
    assert_eq!(after.held(), None);
    handle
        .wait_for(WAIT, |t| {
            ["node0", "node1"].iter().all(|n| {
                t.node(&id(n))
                    .is_some_and(|s| s.status == Status::Quarantined)
            })
        })
        .await?;
    Ok(())
}
