//! The proxy with real clients in front and real servers behind.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_core::{ClusterMonitor, LocalNodeController, MonitorConfig, SqlNodeController};
use pgha_proxy::{PoolMode, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio_postgres::NoTls;

type R = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{client, reads_to_standbys, server_port, start_proxy};

#[tokio::test]
async fn tokio_postgres_works_through_the_proxy_with_both_protocols() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(ProxyConfig::default(), topology).await;
    let c = client(proxy.port).await?;
    // Simple protocol, several statements.
    c.batch_execute("CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'a')")
        .await?;
    // Extended protocol with parameters and a prepared statement.
    let insert = c.prepare("INSERT INTO t VALUES ($1, $2)").await?;
    for i in 2..=10 {
        c.execute(&insert, &[&i, &format!("v{i}")]).await?;
    }
    let n: i64 = c
        .query_one("SELECT count(*) FROM t WHERE id > $1", &[&0i32])
        .await?
        .get(0);
    assert_eq!(n, 10);
    // A transaction, and an error inside one that leaves the session usable.
    c.batch_execute("BEGIN; INSERT INTO t VALUES (11, 'x')")
        .await?;
    let err = c
        .batch_execute("SELECT * FROM missing")
        .await
        .expect_err("no such table");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
    );
    c.batch_execute("ROLLBACK").await?;
    let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
    assert_eq!(n, 10);
    assert_eq!(server_port(&c).await?, i32::from(cluster.primary().port()));
    Ok(())
}

#[tokio::test]
async fn psql_works_through_the_proxy_including_copy() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(ProxyConfig::default(), topology).await;
    let psql = cluster.primary().bins().bin("psql");
    let port = proxy.port.to_string();
    let mut child = tokio::process::Command::new(psql)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-At",
        ])
        .args([
            "-c",
            "CREATE TABLE p (v int)",
            "-c",
            "COPY p FROM STDIN",
            "-c",
            "SELECT sum(v) FROM p",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(b"1\n2\n3\n\\.\n").await?;
    }
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await??;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines().any(|l| l == "6"),
        "COPY and SELECT through the proxy: {text}"
    );
    Ok(())
}

/// Session mode without balancing: one server connection for the whole
/// session, so the client is told that server's own pid and key — the pid
/// it reads is the one pg_stat_activity shows and pg_terminate_backend()
/// takes, and a cancel with that key (through pgha) reaches the query.
#[tokio::test]
async fn a_session_mode_client_is_told_its_servers_real_pid() -> R {
    use common::wire::{message, Wire};
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let config = ProxyConfig {
        load_balance: false,
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;
    let (mut c, _) = Wire::connect_with(proxy.port, &[]).await?;
    let (pid, secret) = c.key.ok_or("no BackendKeyData")?;
    c.query("SELECT pg_backend_pid()::text").await?;
    let got = c.until_ready().await?;
    let row = got.iter().find(|m| m.0 == b'D').ok_or("no row")?;
    assert!(
        row.1.ends_with(pid.to_string().as_bytes()),
        "the pid the client was told is its server's: {pid} vs {:?}",
        String::from_utf8_lossy(&row.1)
    );
    // Cancelled by that key, through pgha.
    c.query("SELECT pg_sleep(30)").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cancel = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    let mut request = 16u32.to_be_bytes().to_vec();
    request.extend_from_slice(&80877102u32.to_be_bytes());
    request.extend_from_slice(&pid.to_be_bytes());
    request.extend_from_slice(&secret.to_be_bytes());
    cancel.write_all(&request).await?;
    let got = tokio::time::timeout(Duration::from_secs(20), c.until_ready()).await??;
    let error = got.iter().find(|m| m.0 == b'E').ok_or("not cancelled")?;
    assert!(String::from_utf8_lossy(&error.1).contains("57014"));
    // Terminated by that pid from outside: the client sees its session end.
    cluster
        .primary()
        .execute(&format!("SELECT pg_terminate_backend({pid})"))
        .await?;
    let _ = c.send(&message(b'Q', b"SELECT 1\0")).await;
    let got = tokio::time::timeout(Duration::from_secs(20), c.until_ready()).await??;
    assert!(!got.iter().any(|m| m.0 == b'Z'), "{got:?}");
    Ok(())
}

#[tokio::test]
async fn a_cancel_request_reaches_the_running_query() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(ProxyConfig::default(), topology).await;
    let c = client(proxy.port).await?;
    let token = c.cancel_token();
    let slow = tokio::spawn(async move { c.batch_execute("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(NoTls).await?;
    let result = tokio::time::timeout(Duration::from_secs(5), slow).await??;
    let err = result.expect_err("cancelled");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
    );
    Ok(())
}

/// After login, as PostgreSQL: a length out of range or a message type the
/// protocol does not define gets a FATAL 08P01 and the connection closes;
/// nothing of it reaches the server.
#[tokio::test]
async fn bad_frames_after_login_get_08p01_and_the_connection_closes() -> R {
    use common::wire::{error_field, message, Wire};
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    for mode in [PoolMode::Session, PoolMode::Transaction] {
        let proxy = start_proxy(
            ProxyConfig {
                pool_mode: mode,
                ..ProxyConfig::default()
            },
            topology.clone(),
        )
        .await;
        let length_over_the_limit = [b'Q', 0x7f, 0xff, 0xff, 0xff];
        let length_below_four = [b'Q', 0, 0, 0, 2];
        let unknown_type = message(b'Z', b"");
        let password_after_login = message(b'p', b"secret\0");
        for bad in [
            &length_over_the_limit[..],
            &length_below_four[..],
            &unknown_type[..],
            &password_after_login[..],
        ] {
            let mut c = Wire::connect(proxy.port).await?;
            c.send(bad).await?;
            let got = tokio::time::timeout(Duration::from_secs(10), c.until_ready()).await??;
            let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
            assert_eq!(tags, [b'E'], "{mode:?} {bad:?}: one error, then the end");
            assert_eq!(error_field(&got[0].1, b'C').as_deref(), Some("08P01"));
            assert_eq!(error_field(&got[0].1, b'S').as_deref(), Some("FATAL"));
        }
        // Counted with the clients turned away; nobody else noticed.
        let counted = proxy
            .metrics
            .encode()
            .lines()
            .any(|l| l.starts_with("pgha_client_auth_failures_total{reason=\"protocol\"} 4"));
        assert!(counted, "{}", proxy.metrics.encode());
        let c = client(proxy.port).await?;
        assert_eq!(server_port(&c).await?, i32::from(cluster.primary().port()));
    }
    Ok(())
}

#[tokio::test]
async fn bad_startups_get_clear_errors_and_the_proxy_keeps_serving() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let config = ProxyConfig {
        startup_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;
    // Protocol 2.0: refused with 08P01, not a panic.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    s.write_all(&[0, 0, 0, 8, 0, 2, 0, 0]).await?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await?;
    assert_eq!(reply.first(), Some(&b'E'));
    assert!(String::from_utf8_lossy(&reply).contains("08P01"));
    // An absurd length: refused before anything is allocated.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    s.write_all(&[0x7f, 0xff, 0xff, 0xff]).await?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await?;
    assert_eq!(reply.first(), Some(&b'E'));
    // A client that never finishes its startup is dropped.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    s.write_all(&[0, 0, 0, 40]).await?;
    let mut reply = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    assert!(closed.is_ok(), "the slow client was not dropped");
    // Others are still served.
    let c = client(proxy.port).await?;
    assert_eq!(server_port(&c).await?, i32::from(cluster.primary().port()));
    Ok(())
}

/// Transaction mode: an idle client owns no server state, so a failover is
/// invisible to it. (In session mode its session ends:
/// `server_loss_pg::an_idle_session_mode_client_is_told_its_session_ended_at_a_failover`.)
#[tokio::test]
async fn an_idle_client_keeps_its_connection_across_a_failover_in_transaction_mode() -> R {
    let mode = PoolMode::Transaction;
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let controller = Arc::new(LocalNodeController::new(
        SqlNodeController::default(),
        cluster.clone(),
        cluster.local_controller_config(),
    ));
    let config = MonitorConfig {
        probe_interval: Duration::from_millis(300),
        probe_timeout: Duration::from_millis(500),
        ..MonitorConfig::default()
    };
    let (monitor, handle) = ClusterMonitor::builder(cluster.topology())
        .controller(controller)
        .config(config)
        .build()?;
    let (_stop_monitor, stopped) = oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    let config = ProxyConfig {
        pool_mode: mode,
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, handle.topology()).await;
    let c = client(proxy.port).await?;
    let insert = c.prepare("SELECT 1 + $1::int").await?;
    c.batch_execute("CREATE TABLE f (v int); INSERT INTO f VALUES (1)")
        .await?;
    assert_eq!(server_port(&c).await?, i32::from(cluster.nodes()[0].port()));

    // Asynchronous replication: let the standby have the row first (this
    // test is about the client's connection, not about the async window).
    for _ in 0..200 {
        let seen = cluster.nodes()[1]
            .query_one_text("SELECT count(*)::text FROM f")
            .await;
        if seen.ok().flatten().as_deref() == Some("1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.nodes()[0].kill9()?;
    // The same client connection: its next statements reach the new primary
    // (held while the failover runs).
    c.batch_execute("INSERT INTO f VALUES (2)").await?;
    assert_eq!(server_port(&c).await?, i32::from(cluster.nodes()[1].port()));
    let n: i64 = c.query_one("SELECT count(*) FROM f", &[]).await?.get(0);
    assert_eq!(n, 2);
    // A statement prepared before the failover still works after it.
    let three: i32 = c.query_one(&insert, &[&2i32]).await?.get(0);
    assert_eq!(three, 3);
    Ok(())
}

/// A primary and a probed standby (reads need a known lag), monitored,
/// with the primary's read weight 0: balanced reads go to the standby.
async fn standby_reads() -> Result<
    (
        Arc<PgCluster>,
        pgha_core::MonitorHandle,
        oneshot::Sender<()>,
    ),
    Box<dyn std::error::Error>,
> {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let (monitor, handle) = ClusterMonitor::builder(reads_to_standbys(cluster.topology()))
        .config(MonitorConfig {
            probe_interval: Duration::from_millis(200),
            ..MonitorConfig::default()
        })
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    handle
        .wait_for(Duration::from_secs(30), |t| {
            t.nodes().iter().all(|n| n.in_recovery.is_some())
                && t.bytes_behind(&pgha_core::NodeId::new("node1")).is_some()
        })
        .await?;
    Ok((cluster, handle, stop))
}

/// A driver that parses its unnamed statement in one round trip and binds
/// it in the next (Parse+Sync, then Bind+Execute+Sync), with reads going to
/// a standby: the second round trip finds its statement wherever it runs.
#[tokio::test]
async fn an_unnamed_statement_survives_a_round_trip_with_load_balancing() -> R {
    use common::wire::{message, Wire};
    let (_cluster, handle, _stop_monitor) = standby_reads().await?;
    let parse = message(b'P', b"\0SELECT pg_is_in_recovery()::text\0\0\0");
    let sync = message(b'S', b"");
    let bind = message(b'B', b"\0\0\0\0\0\0\0\0");
    let execute = message(b'E', b"\0\0\0\0\0");
    for mode in [PoolMode::Session, PoolMode::Transaction] {
        let config = ProxyConfig {
            pool_mode: mode,
            ..ProxyConfig::default()
        };
        let proxy = start_proxy(config, handle.topology()).await;
        for _ in 0..20 {
            let mut c = Wire::connect(proxy.port).await?;
            c.send(&[parse.clone(), sync.clone()].concat()).await?;
            let got = c.until_ready().await?;
            assert_eq!(got.iter().map(|m| m.0).collect::<Vec<_>>(), b"1Z");
            c.send(&[bind.clone(), execute.clone(), sync.clone()].concat())
                .await?;
            let got = c.until_ready().await?;
            let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
            assert_eq!(tags, b"2DCZ", "{mode:?}: {got:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn lone_reads_go_to_the_standby_until_the_session_writes() -> R {
    let (_cluster, handle, _stop_monitor) = standby_reads().await?;
    let proxy = start_proxy(ProxyConfig::default(), handle.topology()).await;
    let c = client(proxy.port).await?;
    let in_recovery = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v == "t"),
            _ => None,
        })
    };
    for _ in 0..5 {
        let rows = c.simple_query("SELECT pg_is_in_recovery()").await?;
        assert_eq!(
            in_recovery(rows),
            Some(true),
            "a lone read is served by the standby"
        );
    }
    c.simple_query("CREATE TABLE rw (v int); INSERT INTO rw VALUES (1)")
        .await?;
    for _ in 0..3 {
        let rows = c
            .simple_query("SELECT pg_is_in_recovery(), (SELECT count(*) FROM rw)")
            .await?;
        assert_eq!(
            in_recovery(rows),
            Some(false),
            "after a write the session reads its writes on the primary"
        );
    }
    // In transaction mode, extended-protocol reads (unnamed or prepared)
    // are balanced too.
    let tx_proxy = start_proxy(
        ProxyConfig {
            pool_mode: PoolMode::Transaction,
            ..ProxyConfig::default()
        },
        handle.topology(),
    )
    .await;
    let e = client(tx_proxy.port).await?;
    let recovery = e.prepare("SELECT pg_is_in_recovery()").await?;
    for _ in 0..3 {
        let standby: bool = e.query_one(&recovery, &[]).await?.get(0);
        assert!(standby, "a prepared read is served by the standby");
        let standby: bool = e
            .query_one("SELECT pg_is_in_recovery() AND $1::int = 1", &[&1i32])
            .await?
            .get(0);
        assert!(standby, "an unnamed extended read is served by the standby");
    }
    e.execute("INSERT INTO rw VALUES ($1)", &[&2i32]).await?;
    let standby: bool = e.query_one(&recovery, &[]).await?.get(0);
    assert!(!standby, "after a write the client reads on the primary");
    // A transaction never leaves the primary, even for reads.
    let d = client(proxy.port).await?;
    d.simple_query("BEGIN").await?;
    let rows = d.simple_query("SELECT pg_is_in_recovery()").await?;
    assert_eq!(in_recovery(rows), Some(false));
    d.simple_query("COMMIT").await?;

    // With the primary's weight back to 1 (pgpool's default), lone reads
    // are shared between the primary and the standby.
    let probed = handle.topology().borrow().as_ref().clone();
    let equal = pgha_core::Topology::new(probed.nodes().iter().cloned().map(|n| n.with_weight(1)));
    let (_keep, equal) = watch::channel(Arc::new(equal));
    let shared = start_proxy(ProxyConfig::default(), equal).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let s = client(shared.port).await?;
        let rows = s.simple_query("SELECT pg_is_in_recovery()").await?;
        seen.insert(in_recovery(rows));
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen,
        [Some(false), Some(true)].into(),
        "both nodes serve reads"
    );
    Ok(())
}
