//! Failover on real PostgreSQL servers: the monitor, the SQL probe and the
//! controllers against crashes, hangs, restarts and operator commands.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::{PgCluster, PgNode};
use pgha_core::{
    ClusterMonitor, Command, ConnectConfig, LocalNodeController, MonitorConfig, MonitorHandle,
    NodeController, NodeId, Role, SqlNodeController, SqlProbe, Status, Topology,
};
use tokio::sync::oneshot;

type R = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(30);

/// A running monitor; dropping it stops the monitor.
struct Running {
    handle: MonitorHandle,
    _stop: oneshot::Sender<()>,
}

fn fast_config(state_file: Option<std::path::PathBuf>) -> MonitorConfig {
    MonitorConfig {
        probe_interval: Duration::from_millis(300),
        probe_timeout: Duration::from_millis(500),
        state_file,
        ..MonitorConfig::default()
    }
}

fn start_monitor(
    topology: Topology,
    controller: Arc<dyn NodeController>,
    config: MonitorConfig,
) -> Running {
    // RUST_LOG=pgha_core=debug shows the monitor's reasoning on failure.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (monitor, handle) = ClusterMonitor::builder(topology)
        .probe(Arc::new(SqlProbe::new(ConnectConfig::default())))
        .controller(controller)
        .config(config)
        .build()
        .expect("monitor builds");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    Running {
        handle,
        _stop: stop,
    }
}

fn local(cluster: &Arc<PgCluster>) -> Arc<dyn NodeController> {
    Arc::new(LocalNodeController::new(
        SqlNodeController::default(),
        cluster.clone(),
        cluster.local_controller_config(),
    ))
}

fn id(name: &str) -> NodeId {
    NodeId::new(name)
}

async fn healthy(handle: &MonitorHandle) -> Result<(), pgha_core::Error> {
    handle
        .wait_for(WAIT, |t| {
            t.primary_id() == Some(&id("node0"))
                && t.nodes()
                    .iter()
                    .all(|n| n.status == Status::Up && n.in_recovery.is_some())
        })
        .await
        .map(drop)
}

async fn primary_is(handle: &MonitorHandle, name: &str) -> Result<Arc<Topology>, pgha_core::Error> {
    handle
        .wait_for(WAIT, |t| {
            t.primary_id() == Some(&id(name)) && t.is_writable(&id(name))
        })
        .await
}

async fn write(node: &PgNode, sql: &str) -> Result<(), pgha_core::testing::HarnessError> {
    node.execute(sql).await
}

#[tokio::test]
async fn writes_move_to_the_standby_when_the_primary_is_killed_and_the_old_primary_rejoins() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let running = start_monitor(cluster.topology(), local(&cluster), fast_config(None));
    healthy(&running.handle).await?;
    let (node0, node1) = (&cluster.nodes()[0], &cluster.nodes()[1]);
    write(node0, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)").await?;

    node0.kill9()?;
    let after = primary_is(&running.handle, "node1").await?;
    assert_eq!(after.term(), 2);
    assert!(!node1.is_in_recovery().await?, "node1 was really promoted");
    write(node1, "INSERT INTO t VALUES (2)").await?;

    // The old primary comes back still thinking it is primary: it is never
    // writable in the model, and is rewound into a streaming standby.
    node0.start().await?;
    let rejoined = running
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.role == Role::Standby && n.status == Status::Up)
        })
        .await
        .inspect_err(|_| eprintln!("topology: {:#?}", running.handle.current()));
    if rejoined.is_err() {
        eprintln!(
            "DBG receiver: {:?}",
            node0
                .query_one_text("SELECT row(w.*)::text FROM pg_stat_wal_receiver w")
                .await
        );
        eprintln!("DBG replay: {:?}", node0.query_one_text("SELECT pg_last_wal_replay_lsn()::text || ' ' || pg_last_wal_receive_lsn()::text").await);
        eprintln!(
            "DBG primary: {:?}",
            node1
                .query_one_text("SELECT row(r.*)::text FROM pg_stat_replication r")
                .await
        );
        eprintln!(
            "DBG primary lsn: {:?}",
            node1
                .query_one_text("SELECT pg_current_wal_lsn()::text")
                .await
        );
    }
    let rejoined = rejoined?;
    assert!(!rejoined.is_writable(&id("node0")));
    assert_eq!(rejoined.primary_id(), Some(&id("node1")));
    assert!(node0.is_in_recovery().await?, "node0 runs as a standby");
    let streaming = node1
        .query_one_text("SELECT count(*)::text FROM pg_stat_replication WHERE application_name = 'node0' AND state = 'streaming'")
        .await?;
    assert_eq!(streaming.as_deref(), Some("1"));
    // It has the write made on the new primary while it was away.
    for _ in 0..100 {
        if node0
            .query_one_text("SELECT count(*)::text FROM t")
            .await?
            .as_deref()
            == Some("2")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node0 never replayed the new primary's write");
}

#[tokio::test]
async fn a_frozen_primary_is_failed_over_and_fenced_read_only_once_it_thaws() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    // No local control: the frozen node can only be fenced over SQL.
    let running = start_monitor(
        cluster.topology(),
        Arc::new(SqlNodeController::default()),
        fast_config(None),
    );
    healthy(&running.handle).await?;
    let node0 = &cluster.nodes()[0];
    node0.freeze()?;
    let after = primary_is(&running.handle, "node1").await?;
    assert_eq!(after.term(), 2);
    node0.thaw()?;
    running
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.status == Status::Quarantined)
        })
        .await?;
    // Fenced: a client that reaches node0 directly cannot write.
    let mut refused = None;
    for _ in 0..100 {
        match node0.execute("CREATE TABLE lost (v int)").await {
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
            Ok(()) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let refused = refused.expect("the stale primary must refuse writes once fenced");
    assert!(refused.contains("read-only"), "{refused}");
    assert!(!running.handle.current().is_writable(&id("node0")));
    Ok(())
}

#[tokio::test]
async fn terminating_the_monitoring_session_on_a_healthy_primary_does_not_fail_over() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let running = start_monitor(cluster.topology(), local(&cluster), fast_config(None));
    healthy(&running.handle).await?;
    let mut events = running.handle.events();
    let killed = cluster
        .primary()
        .query_one_text(
            "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity WHERE application_name = 'pgha'",
        )
        .await?;
    assert_eq!(
        killed.as_deref(),
        Some("1"),
        "pgha's monitoring session was terminated"
    );
    // Several probe rounds later, nothing has moved.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = running.handle.current();
    assert_eq!(now.term(), 1);
    assert_eq!(now.primary_id(), Some(&id("node0")));
    while let Ok(event) = events.try_recv() {
        assert!(
            !format!("{event:?}").contains("Promote"),
            "no promotion may follow a terminated session: {event:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_killed_standby_is_detached_without_promotion_and_reattached_when_back() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let running = start_monitor(cluster.topology(), local(&cluster), fast_config(None));
    healthy(&running.handle).await?;
    let node1 = &cluster.nodes()[1];
    node1.kill9()?;
    let detached = running
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node1")).is_some_and(|n| n.status != Status::Up)
        })
        .await?;
    assert_eq!(detached.term(), 1);
    assert_eq!(detached.primary_id(), Some(&id("node0")));
    assert!(detached.readable_nodes().all(|n| n.id != id("node1")));
    node1.start().await?;
    let back = running
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node1")).is_some_and(|n| n.status == Status::Up)
        })
        .await?;
    assert_eq!(back.term(), 1);
    assert!(back.readable_nodes().any(|n| n.id == id("node1")));
    Ok(())
}

#[tokio::test]
async fn in_sync_mode_the_new_primary_accepts_writes_after_failover() -> R {
    let cluster = Arc::new(
        PgCluster::builder()
            .standbys(1)
            .synchronous(true)
            .start()
            .await?,
    );
    let running = start_monitor(cluster.topology(), local(&cluster), fast_config(None));
    healthy(&running.handle).await?;
    let node1 = &cluster.nodes()[1];
    cluster.nodes()[0].kill9()?;
    primary_is(&running.handle, "node1").await?;
    // With synchronous_standby_names still set, this commit would wait for
    // a standby that is gone.
    let write = tokio::time::timeout(
        Duration::from_secs(5),
        write(node1, "CREATE TABLE after_failover (v int)"),
    )
    .await;
    assert!(
        matches!(write, Ok(Ok(()))),
        "the write must commit: {write:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_switchover_swaps_roles_and_loses_nothing() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let running = start_monitor(cluster.topology(), local(&cluster), fast_config(None));
    healthy(&running.handle).await?;
    let (node0, node1) = (&cluster.nodes()[0], &cluster.nodes()[1]);
    write(
        node0,
        "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 1000)",
    )
    .await?;
    running
        .handle
        .command(Command::Switchover {
            target: Some(id("node1")),
        })
        .await?;
    let after = primary_is(&running.handle, "node1").await?;
    assert_eq!(after.term(), 2);
    assert!(!node1.is_in_recovery().await?);
    assert_eq!(
        node1
            .query_one_text("SELECT count(*)::text FROM t")
            .await?
            .as_deref(),
        Some("1000")
    );
    write(node1, "INSERT INTO t VALUES (1001)").await?;
    running
        .handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.role == Role::Standby && n.status == Status::Up)
        })
        .await?;
    assert!(node0.is_in_recovery().await?, "the old primary now follows");
    Ok(())
}

#[tokio::test]
async fn a_restarted_monitor_keeps_the_term_and_primary_from_its_state_file() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let state_file = cluster.dir().join("pgha-state.json");
    {
        let running = start_monitor(
            cluster.topology(),
            local(&cluster),
            fast_config(Some(state_file.clone())),
        );
        healthy(&running.handle).await?;
        cluster.nodes()[0].kill9()?;
        primary_is(&running.handle, "node1").await?;
    }
    // The configuration still names node0 as primary; the state file wins.
    let (monitor, handle) = ClusterMonitor::builder(cluster.topology())
        .config(fast_config(Some(state_file)))
        .build()?;
    let restored = handle.current();
    assert_eq!(restored.term(), 2);
    assert_eq!(restored.primary_id(), Some(&id("node1")));
    assert!(!restored.is_writable(&id("node0")));
    drop(monitor);
    Ok(())
}

#[tokio::test]
async fn without_the_coordinators_permission_nothing_is_promoted_until_it_is_granted() -> R {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let gate = Arc::new(pgha_core::ManualCoordinator::new(false));
    let (monitor, handle) = ClusterMonitor::builder(cluster.topology())
        .controller(local(&cluster))
        .coordinator(gate.clone())
        .config(fast_config(None))
        .build()?;
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    healthy(&handle).await?;
    cluster.nodes()[0].kill9()?;
    // Many probe rounds: the failure is seen, but nothing is done.
    handle
        .wait_for(WAIT, |t| {
            t.node(&id("node0"))
                .is_some_and(|n| n.consecutive_failures >= 3)
        })
        .await?;
    let gated = handle.current();
    assert_eq!(gated.term(), 1);
    assert_eq!(gated.primary_id(), Some(&id("node0")));
    assert!(
        cluster.nodes()[1].is_in_recovery().await?,
        "no promotion without permission"
    );
    gate.grant(true);
    let after = primary_is(&handle, "node1").await?;
    assert_eq!(after.term(), 2);
    assert!(!cluster.nodes()[1].is_in_recovery().await?);
    Ok(())
}
