//! The test harness itself, against real PostgreSQL servers: each fault
//! does what it says, and nothing is left behind.

use std::net::SocketAddr;
use std::time::Duration;

use pgha_core::testing::{FaultProxy, HarnessError, PgCluster, PgNode};
use tokio::net::TcpStream;

type R = Result<(), HarnessError>;

async fn wait_for_row(node: &PgNode, sql: &str, want: &str) -> R {
    for _ in 0..200 {
        // Errors (the table not replayed yet) just mean "not yet".
        if node.query_one_text(sql).await.ok().flatten().as_deref() == Some(want) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{}: {sql} never returned {want}", node.name());
}

fn addr(node: &PgNode) -> SocketAddr {
    SocketAddr::new(node.host(), node.port())
}

#[tokio::test]
async fn standby_streams_what_the_primary_writes() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let (primary, standby) = (cluster.primary(), &cluster.standbys()[0]);
    assert!(!primary.is_in_recovery().await?);
    assert!(standby.is_in_recovery().await?);
    primary
        .execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42);")
        .await?;
    wait_for_row(standby, "SELECT v::text FROM t", "42").await?;
    // The standby cannot take writes.
    assert!(standby.execute("INSERT INTO t VALUES (1)").await.is_err());
    Ok(())
}

#[tokio::test]
async fn kill9_refuses_connections_and_start_recovers_the_data() -> R {
    let cluster = PgCluster::builder().start().await?;
    let node = cluster.primary();
    node.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (7);")
        .await?;
    let pid = node.pid().expect("running");
    node.kill9()?;
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let err = TcpStream::connect(addr(node)).await.expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    node.start().await?;
    assert_eq!(
        node.query_one_text("SELECT v::text FROM t")
            .await?
            .as_deref(),
        Some("7")
    );
    Ok(())
}

#[tokio::test]
async fn freeze_makes_a_connect_hang_and_thaw_answers_again() -> R {
    let cluster = PgCluster::builder().start().await?;
    let node = cluster.primary();
    node.freeze()?;
    // The kernel still completes the TCP handshake…
    let _tcp = TcpStream::connect(addr(node))
        .await
        .expect("kernel accepts");
    // …but no server answers the startup: the attempt hangs, not fails.
    let attempt = tokio::time::timeout(Duration::from_secs(2), node.connect()).await;
    assert!(
        attempt.is_err(),
        "a frozen server must not answer: {attempt:?}"
    );
    node.thaw()?;
    assert!(!node.is_in_recovery().await?);
    Ok(())
}

#[tokio::test]
async fn stop_is_a_clean_shutdown_and_restart_brings_it_back() -> R {
    let cluster = PgCluster::builder().start().await?;
    let node = cluster.primary();
    node.stop().await?;
    assert!(node.pid().is_none());
    let log = std::fs::read_to_string(node.log_path()).expect("log");
    assert!(log.contains("database system is shut down"), "{log}");
    node.restart().await?;
    assert!(node.pid().is_some());
    assert!(!node.is_in_recovery().await?);
    Ok(())
}

#[tokio::test]
async fn synchronous_cluster_has_a_sync_standby() -> R {
    let cluster = PgCluster::builder()
        .standbys(1)
        .synchronous(true)
        .start()
        .await?;
    let state = cluster
        .primary()
        .query_one_text("SELECT sync_state FROM pg_stat_replication")
        .await?;
    assert_eq!(state.as_deref(), Some("sync"));
    // A commit waits for the standby; with it frozen, commits block.
    cluster.standbys()[0].freeze()?;
    let write = tokio::time::timeout(
        Duration::from_secs(2),
        cluster.primary().execute("CREATE TABLE blocked (v int)"),
    )
    .await;
    assert!(write.is_err(), "a sync commit must wait for the standby");
    cluster.standbys()[0].thaw()?;
    Ok(())
}

#[tokio::test]
async fn dropping_a_cluster_kills_every_process_and_removes_its_files() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    let pids: Vec<i32> = cluster.nodes().iter().filter_map(|n| n.pid()).collect();
    let dir = cluster.dir().to_path_buf();
    // A panicking test drops its cluster while unwinding.
    let handle = tokio::spawn(async move {
        let _owned = cluster;
        panic!("test failure while a cluster runs");
    });
    assert!(handle.await.expect_err("panicked").is_panic());
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} left running"
        );
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
    Ok(())
}

mod fault_proxy {
    use super::*;

    async fn client_via(proxy: &FaultProxy) -> tokio_postgres::Client {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            proxy.addr().port()
        );
        let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .expect("connect through the fault proxy");
        tokio::spawn(conn);
        client
    }

    #[tokio::test]
    async fn blackhole_hangs_a_query_and_heal_completes_it() -> R {
        let cluster = PgCluster::builder().start().await?;
        let proxy = FaultProxy::start(addr(cluster.primary())).await?;
        let client = client_via(&proxy).await;
        assert_eq!(
            client.simple_query("SELECT 1").await.map(|r| r.len()).ok(),
            Some(3)
        );
        proxy.blackhole();
        let query = client.simple_query("SELECT 2");
        tokio::pin!(query);
        assert!(tokio::time::timeout(Duration::from_millis(500), &mut query)
            .await
            .is_err());
        proxy.heal();
        let rows = tokio::time::timeout(Duration::from_secs(5), query)
            .await
            .expect("answered after heal")
            .expect("query ok");
        assert!(!rows.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn cut_mid_query_gives_the_client_an_error() -> R {
        let cluster = PgCluster::builder().start().await?;
        let proxy = FaultProxy::start(addr(cluster.primary())).await?;
        let client = client_via(&proxy).await;
        let slow = client.simple_query("SELECT pg_sleep(5)");
        tokio::pin!(slow);
        assert!(tokio::time::timeout(Duration::from_millis(300), &mut slow)
            .await
            .is_err());
        proxy.cut();
        let err = tokio::time::timeout(Duration::from_secs(2), slow)
            .await
            .expect("the cut is noticed at once")
            .expect_err("the query cannot succeed");
        assert!(
            err.is_closed() || err.to_string().contains("connection"),
            "{err}"
        );
        assert_eq!(proxy.open_connections(), 0);
        // The server itself is fine.
        assert!(!cluster.primary().is_in_recovery().await?);
        Ok(())
    }

    #[tokio::test]
    async fn delay_slows_every_round_trip() -> R {
        let cluster = PgCluster::builder().start().await?;
        let proxy = FaultProxy::start(addr(cluster.primary())).await?;
        let client = client_via(&proxy).await;
        proxy.delay(Duration::from_millis(300));
        let query = client.simple_query("SELECT 1");
        tokio::pin!(query);
        // Not answered within the delay (200 ms < 2 × 300 ms)…
        assert!(tokio::time::timeout(Duration::from_millis(200), &mut query)
            .await
            .is_err());
        // …but answered after it.
        assert!(query.await.is_ok());
        Ok(())
    }
}
