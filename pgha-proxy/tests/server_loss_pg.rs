//! What a client is told when its server connection is lost, as the client
//! sees it: a statement that reached a server is never sent again, an error
//! never hides a commit, and nothing runs outside a transaction the client
//! opened.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_core::{
    ClusterMonitor, LocalNodeController, MonitorConfig, MonitorHandle, NodeId, SqlNodeController,
};
use pgha_proxy::{PoolMode, ProxyConfig};
use tokio::sync::{oneshot, watch};

type R = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::wire::{error_field, Wire};
use common::{client, first_column, start_proxy};

/// The client's messages up to ReadyForQuery or the end of the stream,
/// failing the test (rather than hanging it) if neither comes.
async fn until_ready(
    c: &mut Wire,
) -> Result<Vec<common::wire::Message>, Box<dyn std::error::Error>> {
    Ok(tokio::time::timeout(Duration::from_secs(30), c.until_ready()).await??)
}

fn config(mode: PoolMode) -> ProxyConfig {
    ProxyConfig {
        pool_mode: mode,
        ..ProxyConfig::default()
    }
}

/// Terminates, from a direct connection, every other session on `node`
/// whose current or last query is `query`.
async fn terminate(cluster: &PgCluster, query: &str) -> R {
    let sql = format!(
        "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity \
         WHERE query = '{}' AND pid <> pg_backend_pid()",
        query.replace('\'', "''")
    );
    let n = cluster.primary().query_one_text(&sql).await?;
    // An error, not a panic: a caller may wait for the statement to start.
    if n.as_deref() != Some("1") {
        return Err(format!("{n:?} sessions ran {query}, not one").into());
    }
    Ok(())
}

/// Waits until the primary runs `sql` (a client sent it through pgha).
async fn running_on_primary(cluster: &PgCluster, sql: &str) -> R {
    let active = format!(
        "SELECT count(*)::text FROM pg_stat_activity WHERE query = '{}' AND state = 'active'",
        sql.replace('\'', "''")
    );
    let mut waited = 0;
    while cluster.primary().query_one_text(&active).await?.as_deref() != Some("1") {
        waited += 1;
        assert!(waited < 100, "the statement never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// After a FATAL the client sees its connection close, never a
/// ReadyForQuery (a protocol violation) and never a fresh backend in its
/// place.
#[tokio::test]
async fn a_fatal_from_the_server_ends_the_client_session_in_both_modes() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    for mode in [PoolMode::Session, PoolMode::Transaction] {
        let proxy = start_proxy(config(mode), topology.clone()).await;
        let mut c = Wire::connect(proxy.port).await?;
        c.query("SELECT pg_terminate_backend(pg_backend_pid())")
            .await?;
        let got = until_ready(&mut c).await?;
        // (The row of the function's own result may come first.)
        let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
        let last = got.last().ok_or("nothing came back")?;
        assert!(
            last.0 == b'E' && !tags.contains(&b'Z'),
            "{mode:?}: a FATAL, then the end of the stream: {tags:?}"
        );
        assert_eq!(error_field(&last.1, b'S').as_deref(), Some("FATAL"));
        assert_eq!(error_field(&last.1, b'C').as_deref(), Some("57P01"));
    }
    Ok(())
}

/// A DBA's pg_terminate_backend (or a crashed backend) inside a client's
/// transaction: the statements after it never run, in or out of a
/// transaction.
#[tokio::test]
async fn a_transaction_whose_server_is_lost_commits_nothing_later() -> R {
    let cluster = PgCluster::builder().start().await?;
    cluster.primary().execute("CREATE TABLE t (v int)").await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    for mode in [PoolMode::Session, PoolMode::Transaction] {
        let proxy = start_proxy(config(mode), topology.clone()).await;
        // Terminated while the client sits idle in its transaction.
        let c = client(proxy.port).await?;
        c.batch_execute("BEGIN").await?;
        c.batch_execute("INSERT INTO t VALUES (10)").await?;
        terminate(&cluster, "INSERT INTO t VALUES (10)").await?;
        let after = c.batch_execute("INSERT INTO t VALUES (11)").await;
        assert!(
            after.is_err(),
            "{mode:?}: the statement after the loss fails"
        );
        let commit = c.batch_execute("COMMIT").await;
        assert!(commit.is_err(), "{mode:?}: the session is over");
        // Terminated while a statement of the transaction runs.
        let c = client(proxy.port).await?;
        c.batch_execute("BEGIN").await?;
        c.batch_execute("INSERT INTO t VALUES (20)").await?;
        let slow = tokio::spawn(async move {
            let r = c.batch_execute("SELECT pg_sleep(30)").await;
            (c, r)
        });
        let mut waited = 0;
        while terminate(&cluster, "SELECT pg_sleep(30)").await.is_err() {
            waited += 1;
            assert!(waited < 100, "the slow statement never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (c, r) = tokio::time::timeout(Duration::from_secs(10), slow).await??;
        assert!(r.is_err(), "{mode:?}: the running statement failed");
        let after = c.batch_execute("INSERT INTO t VALUES (21)").await;
        assert!(after.is_err(), "{mode:?}: nothing runs after the loss");
        assert!(c.batch_execute("COMMIT").await.is_err());
    }
    let rows = cluster
        .primary()
        .query_one_text("SELECT count(*)::text FROM t")
        .await?;
    assert_eq!(
        rows.as_deref(),
        Some("0"),
        "no row of a lost transaction committed"
    );
    Ok(())
}

/// A session-mode client owns its server session: when it is terminated
/// between transactions the client is told at once, and its next statement
/// is not run on a fresh backend. In transaction mode the client owns no
/// server state: its next statement runs on a live connection and is not
/// answered with the dead one's stale error.
#[tokio::test]
async fn a_server_terminated_between_transactions_never_answers_the_next_statement() -> R {
    let cluster = PgCluster::builder().start().await?;
    cluster.primary().execute("CREATE TABLE t (v int)").await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));

    // A client that reads only after it sends, as libpq does.
    let proxy = start_proxy(config(PoolMode::Session), topology.clone()).await;
    let mut c = Wire::connect(proxy.port).await?;
    c.query("SELECT 1 AS before_termination").await?;
    until_ready(&mut c).await?;
    terminate(&cluster, "SELECT 1 AS before_termination").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The write may be refused at the socket: the session is over.
    let _ = c.query("INSERT INTO t VALUES (1)").await;
    let got = until_ready(&mut c).await?;
    let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
    assert!(
        !tags.contains(&b'C') && !tags.contains(&b'Z'),
        "session mode: the session ended with its server: {tags:?}"
    );

    let proxy = start_proxy(config(PoolMode::Transaction), topology).await;
    let mut c = Wire::connect(proxy.port).await?;
    c.query("SELECT 2 AS before_termination").await?;
    until_ready(&mut c).await?;
    terminate(&cluster, "SELECT 2 AS before_termination").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.query("INSERT INTO t VALUES (2)").await?;
    let got = until_ready(&mut c).await?;
    let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
    assert_eq!(
        tags,
        [b'C', b'Z'],
        "transaction mode: the insert ran on a live connection"
    );

    let rows = cluster
        .primary()
        .query_one_text("SELECT string_agg(v::text, ',') FROM t")
        .await?;
    assert_eq!(
        rows.as_deref(),
        Some("2"),
        "exactly the acknowledged insert"
    );
    Ok(())
}

struct Monitored {
    cluster: Arc<PgCluster>,
    handle: MonitorHandle,
    _stop: oneshot::Sender<()>,
}

async fn monitored_cluster() -> Result<Monitored, Box<dyn std::error::Error>> {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let controller = Arc::new(LocalNodeController::new(
        SqlNodeController::default(),
        cluster.clone(),
        cluster.local_controller_config(),
    ));
    let (monitor, handle) = ClusterMonitor::builder(cluster.topology())
        .controller(controller)
        .config(MonitorConfig {
            probe_interval: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(500),
            ..MonitorConfig::default()
        })
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    Ok(Monitored {
        cluster,
        handle,
        _stop: stop,
    })
}

async fn primary_is(handle: &MonitorHandle, node: &str) -> R {
    let node = NodeId::new(node);
    handle
        .wait_for(Duration::from_secs(30), |t| {
            t.primary().is_some_and(|p| p.id == node)
        })
        .await?;
    Ok(())
}

/// A statement running on the primary when it dies may have committed:
/// the client is told so (08007) and the session ends; the statement is
/// not sent to the new primary.
#[tokio::test]
async fn a_statement_in_flight_when_the_primary_dies_gets_outcome_unknown() -> R {
    let m = monitored_cluster().await?;
    let proxy = start_proxy(config(PoolMode::Transaction), m.handle.topology()).await;
    let mut c = Wire::connect(proxy.port).await?;
    // On the primary (a lone read could be balanced to the standby).
    c.query("/* pgha:primary */ SELECT pg_sleep(30)").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    m.cluster.nodes()[0].kill9()?;
    let got = until_ready(&mut c).await?;
    let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
    assert_eq!(tags, [b'E'], "an error, then the end of the stream");
    assert_eq!(error_field(&got[0].1, b'C').as_deref(), Some("08007"));
    assert_eq!(error_field(&got[0].1, b'S').as_deref(), Some("FATAL"));
    // New sessions reach the new primary.
    primary_is(&m.handle, "node1").await?;
    let c = client(proxy.port).await?;
    assert_eq!(first_column(c.simple_query("SELECT 1").await?), ["1"]);
    Ok(())
}

/// Session mode: an idle client's session state lived on the old primary;
/// it is told its session ended (08006) rather than being moved silently.
#[tokio::test]
async fn an_idle_session_mode_client_is_told_its_session_ended_at_a_failover() -> R {
    let m = monitored_cluster().await?;
    let proxy = start_proxy(config(PoolMode::Session), m.handle.topology()).await;
    let mut c = Wire::connect(proxy.port).await?;
    c.query("CREATE TEMP TABLE mine (v int)").await?;
    assert_eq!(until_ready(&mut c).await?.last().map(|m| m.0), Some(b'Z'));
    m.cluster.nodes()[0].kill9()?;
    let got = until_ready(&mut c).await?;
    let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
    assert_eq!(tags, [b'E'], "told, then the end of the stream");
    assert_eq!(error_field(&got[0].1, b'C').as_deref(), Some("08006"));
    primary_is(&m.handle, "node1").await?;
    let c = client(proxy.port).await?;
    assert_eq!(first_column(c.simple_query("SELECT 1").await?), ["1"]);
    Ok(())
}

/// The issue's count: a write loop through pgha while the primary's
/// postmaster is killed (its backends then say FATAL 57P01 on their own)
/// and pgha fails over. No row may be present whose INSERT the client was
/// told failed, unless the error said the outcome is unknown (08007).
#[tokio::test]
async fn no_insert_told_failed_is_committed_across_a_kill() -> R {
    for mode in [PoolMode::Session, PoolMode::Transaction] {
        let m = monitored_cluster().await?;
        m.cluster
            .primary()
            .execute("CREATE TABLE w (v int PRIMARY KEY)")
            .await?;
        let proxy = start_proxy(config(mode), m.handle.topology()).await;
        let port = proxy.port;
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let writer = tokio::spawn(async move {
            let mut told_failed = Vec::new();
            let mut unknown = Vec::new();
            let mut acked = 0;
            let mut c = None;
            for i in 0..100_000i32 {
                if *stop_rx.borrow_and_update() {
                    break;
                }
                if c.is_none() {
                    c = Wire::connect(port).await.ok();
                }
                let Some(conn) = c.as_mut() else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // As libpq: the answer is read after the statement is sent,
                // so whatever waits in the socket is taken as its answer.
                let sent = conn.query(&format!("INSERT INTO w VALUES ({i})")).await;
                let got = match sent {
                    Ok(()) => until_ready(conn).await.unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                let error = got.iter().find(|m| m.0 == b'E');
                match (error, got.last().map(|m| m.0)) {
                    (None, Some(b'Z')) => acked += 1,
                    (Some((_, body)), _) => match error_field(body, b'C') {
                        Some(code) if code == "08007" => unknown.push(i),
                        Some(code) => told_failed.push((i, code)),
                        None => {}
                    },
                    // The connection closed with no answer: nothing was
                    // claimed.
                    (None, _) => {}
                }
                if got.last().map(|m| m.0) != Some(b'Z') {
                    c = None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, told_failed, unknown)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pid = m.cluster.nodes()[0].pid().ok_or("no postmaster pid")?;
        // The postmaster alone: its backends notice and say FATAL 57P01.
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        assert!(killed.success());
        primary_is(&m.handle, "node1").await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop_tx.send(true)?;
        let (acked, told_failed, unknown) = writer.await?;
        m.cluster.nodes()[0].kill9()?;
        assert!(acked > 0, "{mode:?}: writes went through");
        let present: std::collections::HashSet<i32> = first_column(
            m.cluster.nodes()[1]
                .connect()
                .await?
                .simple_query("SELECT v::text FROM w")
                .await?,
        )
        .iter()
        .filter_map(|v| v.parse().ok())
        .collect();
        let lies: Vec<_> = told_failed
            .iter()
            .filter(|(i, _)| present.contains(i))
            .collect();
        tracing::info!(
            ?mode,
            acked,
            ?told_failed,
            ?unknown,
            "write loop across a kill"
        );
        assert!(
            lies.is_empty(),
            "{mode:?}: told failed, yet committed: {lies:?}"
        );
    }
    Ok(())
}

/// A monitor whose probes time out on an overloaded primary, with no
/// standby to promote, detaches it (same term, same primary): a statement
/// already running there is not cut off (it would be told "outcome
/// unknown" for nothing). From the client's chair: exactly its
/// CommandComplete and ReadyForQuery, no error; in the table, its one row
/// (run once, not again).
#[tokio::test]
async fn a_statement_running_on_a_primary_detached_without_a_successor_finishes() -> R {
    let cluster = PgCluster::builder().start().await?;
    cluster.primary().execute("CREATE TABLE d (v int)").await?;
    let before = cluster.topology();
    let (tx, topology) = watch::channel(Arc::new(before.clone()));
    let proxy = start_proxy(config(PoolMode::Transaction), topology).await;
    let mut c = Wire::connect(proxy.port).await?;
    let sql = "INSERT INTO d SELECT 1 FROM pg_sleep(2)";
    c.query(sql).await?;
    running_on_primary(&cluster, sql).await?;
    let detached = pgha_core::Topology::new(before.nodes().iter().cloned().map(|n| {
        if before.primary_id() == Some(&n.id) {
            n.with_status(pgha_core::Status::Detached)
        } else {
            n
        }
    }))
    .with_term(before.term());
    assert_eq!(detached.primary_id(), before.primary_id());
    tx.send_replace(Arc::new(detached));
    assert_eq!(
        until_ready(&mut c).await?,
        vec![(b'C', b"INSERT 0 1\0".to_vec()), (b'Z', b"I".to_vec())],
        "the client is told its statement ran, and nothing else"
    );
    let rows = cluster
        .primary()
        .query_one_text("SELECT count(*)::text FROM d")
        .await?;
    assert_eq!(rows.as_deref(), Some("1"), "run once");
    Ok(())
}

/// A statement running on the primary when another node is promoted and
/// named primary (the old one hung, say, and is being fenced): the client
/// is told at once that the outcome is unknown (08007), not when the old
/// primary answers; nothing but the new topology tells the session, its
/// server says nothing. Then, in the databases: the statement ran once, on
/// the old primary (so "unknown" was the truth), and never on the new one.
#[tokio::test]
async fn a_statement_running_on_a_replaced_primary_is_told_outcome_unknown_at_once() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    cluster.primary().execute("CREATE TABLE r (v int)").await?;
    let old = &cluster.nodes()[0];
    let new = &cluster.nodes()[1];
    let exists = "SELECT (to_regclass('r') IS NOT NULL)::text";
    let mut waited = 0;
    while new.query_one_text(exists).await?.as_deref() != Some("true") {
        waited += 1;
        assert!(waited < 250, "the table never reached the standby");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = cluster.topology();
    let (tx, topology) = watch::channel(Arc::new(before.clone()));
    let proxy = start_proxy(config(PoolMode::Transaction), topology).await;
    let mut c = Wire::connect(proxy.port).await?;
    let sql = "/* pgha:primary */ INSERT INTO r SELECT 1 FROM pg_sleep(3)";
    c.query(sql).await?;
    running_on_primary(&cluster, sql).await?;
    new.execute("SELECT pg_promote()").await?;
    let standby = pgha_core::NodeId::new(new.name());
    let replaced = before.clone().restored(before.term() + 1, Some(&standby));
    assert_eq!(replaced.primary_id(), Some(&standby));
    tx.send_replace(Arc::new(replaced));
    let got = until_ready(&mut c).await?;
    let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
    assert_eq!(tags, [b'E'], "an error, then the end of the stream");
    assert_eq!(error_field(&got[0].1, b'C').as_deref(), Some("08007"));
    // The old primary finishes the statement on its own.
    let count = "SELECT count(*)::text FROM r";
    let mut waited = 0;
    while old.query_one_text(count).await?.as_deref() != Some("1") {
        waited += 1;
        assert!(
            waited < 500,
            "the statement never finished on the old primary"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        new.query_one_text(count).await?.as_deref(),
        Some("0"),
        "never sent to the new primary"
    );
    Ok(())
}
