//! Pools and transaction mode with real clients and real servers: few
//! server connections for many clients, prepared statements and settings
//! that follow a client from one server connection to another, the
//! session-mode reset, a full pool, too many clients, `min_pool_size`
//! (what drivers rely on across pooled connections: `driver_fidelity_pg`).

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_core::{Status, Topology};
use pgha_proxy::ProxyConfig;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

mod common;
use common::{client, first_column, start_proxy, transaction_mode};

type R = Result<(), Box<dyn std::error::Error>>;

/// Server connections the proxy holds open (every client backend but the
/// one asking).
async fn server_connections(cluster: &PgCluster) -> Result<i64, Box<dyn std::error::Error>> {
    let n = cluster
        .primary()
        .query_one_text(
            "SELECT count(*)::text FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .await?
        .unwrap_or_default();
    Ok(n.parse()?)
}

#[tokio::test]
async fn transaction_mode_serves_many_clients_with_few_server_connections() -> R {
    let cluster = PgCluster::builder().start().await?;
    cluster
        .primary()
        .execute("CREATE TABLE hits (client int, n int)")
        .await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(2), topology).await;
    let mut tasks = Vec::new();
    for id in 0..8 {
        let c = client(proxy.port).await?;
        tasks.push(tokio::spawn(async move {
            let insert = c.prepare("INSERT INTO hits VALUES ($1, $2)").await?;
            for n in 0..20 {
                if n % 2 == 0 {
                    c.execute(&insert, &[&id, &n]).await?;
                } else {
                    c.batch_execute(&format!(
                        "BEGIN; INSERT INTO hits VALUES ({id}, {n}); COMMIT"
                    ))
                    .await?;
                }
            }
            Ok::<_, tokio_postgres::Error>(c)
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await??);
    }
    let total = cluster
        .primary()
        .query_one_text("SELECT count(*)::text FROM hits")
        .await?;
    assert_eq!(total.as_deref(), Some("160"));
    let open = server_connections(&cluster).await?;
    assert!(
        (1..=2).contains(&open),
        "8 connected clients, pool_size 2: {open} server connections"
    );
    Ok(())
}

#[tokio::test]
async fn prepared_statements_follow_each_client_to_any_server_connection() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(2), topology).await;
    // tokio-postgres names every client's first statement "s0": on a
    // shared server connection the two would collide without pgha's names.
    let a = client(proxy.port).await?;
    let b = client(proxy.port).await?;
    let plus = a.prepare("SELECT $1::int + 1").await?;
    let times = b.prepare("SELECT $1::int * 10").await?;
    for i in 0..5i32 {
        let x: i32 = a.query_one(&plus, &[&i]).await?.get(0);
        let y: i32 = b.query_one(&times, &[&i]).await?.get(0);
        assert_eq!((x, y), (i + 1, i * 10));
    }
    // A third client holds one connection in a transaction: the next
    // statements must run on the other one, prepared there on the fly.
    let holder = client(proxy.port).await?;
    holder.batch_execute("BEGIN; SELECT 1").await?;
    let other = client(proxy.port).await?;
    other.batch_execute("BEGIN; SELECT 1").await?;
    other.batch_execute("COMMIT").await?;
    for i in 0..3i32 {
        let x: i32 = a.query_one(&plus, &[&i]).await?.get(0);
        let y: i32 = b.query_one(&times, &[&i]).await?.get(0);
        assert_eq!((x, y), (i + 1, i * 10));
    }
    holder.batch_execute("COMMIT").await?;
    // Closing a statement is answered; the client can prepare it again.
    drop(plus);
    let again = a.prepare("SELECT $1::int + 1").await?;
    let x: i32 = a.query_one(&again, &[&41i32]).await?.get(0);
    assert_eq!(x, 42);
    // An error in a prepared statement is the client's, as without pgha.
    let bad = a.prepare("SELECT 1 / $1::int").await?;
    let err = a
        .query_one(&bad, &[&0i32])
        .await
        .expect_err("division by zero");
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    let x: i32 = a.query_one(&again, &[&1i32]).await?.get(0);
    assert_eq!(x, 2);
    Ok(())
}

#[tokio::test]
async fn reported_settings_follow_each_client_across_pooled_connections() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(1), topology).await;
    let connect = |app: &'static str| {
        let port = proxy.port;
        async move {
            let (c, conn) = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres application_name={app}"),
                NoTls,
            )
            .await?;
            tokio::spawn(conn);
            Ok::<_, tokio_postgres::Error>(c)
        }
    };
    let a = connect("alpha").await?;
    let b = connect("beta").await?;
    let b_zone = first_column(b.simple_query("SHOW TimeZone").await?);
    a.simple_query("SET TimeZone = 'Asia/Tokyo'").await?;
    // One server connection for both: each still sees its own settings.
    for _ in 0..2 {
        assert_eq!(
            first_column(a.simple_query("SHOW TimeZone").await?),
            ["Asia/Tokyo"]
        );
        assert_eq!(first_column(b.simple_query("SHOW TimeZone").await?), b_zone);
        assert_eq!(
            first_column(a.simple_query("SHOW application_name").await?),
            ["alpha"]
        );
        assert_eq!(
            first_column(b.simple_query("SHOW application_name").await?),
            ["beta"]
        );
    }
    Ok(())
}

/// What one client SETs never reaches the greeting or the server
/// connection of a client that comes after it, and a client is told its
/// parameters as the server spells them.
#[tokio::test]
async fn a_later_client_gets_the_servers_defaults_not_an_earlier_clients_settings() -> R {
    use common::wire::Wire;
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(1), topology).await;
    let reported = |all: &[(String, String)], name: &str| {
        all.iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (_, first) = Wire::connect_with(proxy.port, &[]).await?;
    let a = client(proxy.port).await?;
    a.batch_execute("SET standard_conforming_strings TO off; SET TimeZone TO 'Asia/Tokyo'")
        .await?;
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, later) = Wire::connect_with(proxy.port, &[]).await?;
    for name in ["standard_conforming_strings", "TimeZone"] {
        assert_eq!(reported(&later, name), reported(&first, name), "{name}");
    }
    let b = client(proxy.port).await?;
    assert_eq!(
        first_column(b.simple_query("SHOW standard_conforming_strings").await?),
        ["on"]
    );
    assert_eq!(
        first_column(b.simple_query("SELECT E'a\\\\b'").await?),
        ["a\\b"],
        "string escaping as the server's defaults have it"
    );
    // Spelled by the client, reported by the server's spelling.
    let (_, spelled) = Wire::connect_with(
        proxy.port,
        &[("client_encoding", "utf8"), ("DateStyle", "iso, dmy")],
    )
    .await?;
    assert_eq!(
        reported(&spelled, "client_encoding").as_deref(),
        Some("UTF8")
    );
    assert_eq!(reported(&spelled, "DateStyle").as_deref(), Some("ISO, DMY"));
    // What the server says about a startup parameter reaches the client, as
    // it would at a direct login.
    let long = "x".repeat(65);
    let (c, _) = Wire::connect_with(proxy.port, &[("application_name", long.as_str())]).await?;
    let told = c
        .notices
        .iter()
        .any(|n| String::from_utf8_lossy(n).contains("will be truncated"));
    assert!(told, "{:?}", c.notices);
    Ok(())
}

#[tokio::test]
async fn session_mode_resets_a_server_connection_before_reusing_it() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let config = ProxyConfig {
        pool_size: 1,
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;
    let a = client(proxy.port).await?;
    let a_pid = first_column(a.simple_query("SELECT pg_backend_pid()").await?);
    a.batch_execute("SET work_mem = '77MB'; CREATE TEMP TABLE scratch (v int)")
        .await?;
    drop(a);
    let b = client(proxy.port).await?;
    let b_pid = first_column(b.simple_query("SELECT pg_backend_pid()").await?);
    assert_eq!(
        a_pid, b_pid,
        "the server connection was pooled, not reopened"
    );
    assert_eq!(
        first_column(b.simple_query("SHOW work_mem").await?),
        ["4MB"]
    );
    let temp = first_column(
        b.simple_query("SELECT count(*) FROM pg_tables WHERE tablename = 'scratch'")
            .await?,
    );
    assert_eq!(temp, ["0"], "DISCARD ALL dropped the temp table");
    Ok(())
}

#[tokio::test]
async fn a_full_pool_queues_clients_and_times_them_out_with_53400() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let config = ProxyConfig {
        pool_timeout: Duration::from_millis(300),
        ..transaction_mode(1)
    };
    let proxy = start_proxy(config, topology).await;
    let a = client(proxy.port).await?;
    let b = client(proxy.port).await?;
    a.batch_execute("BEGIN; SELECT 1").await?;
    let err = b.simple_query("SELECT 1").await.expect_err("pool full");
    assert_eq!(err.code(), Some(&SqlState::CONFIGURATION_LIMIT_EXCEEDED));
    // A client that waits less than the timeout is served in turn.
    let waiting = tokio::spawn(async move { b.simple_query("SELECT 2").await.map(first_column) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.batch_execute("COMMIT").await?;
    assert_eq!(waiting.await??, ["2"]);
    Ok(())
}

#[tokio::test]
async fn clients_over_max_client_conn_get_53300() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let config = ProxyConfig {
        max_client_conn: 1,
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;
    let a = client(proxy.port).await?;
    let err = client(proxy.port).await.expect_err("one client only");
    assert_eq!(err.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    client(proxy.port).await?.simple_query("SELECT 1").await?;
    Ok(())
}

#[tokio::test]
async fn a_backend_killed_mid_query_ends_that_client_only() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(2), topology).await;
    let a = client(proxy.port).await?;
    let b = client(proxy.port).await?;
    let slow = tokio::spawn(async move {
        let r = a.simple_query("SELECT pg_sleep(30)").await;
        (a, r)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster
        .primary()
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query = 'SELECT pg_sleep(30)' AND pid <> pg_backend_pid()",
        )
        .await?;
    let (a, result) = tokio::time::timeout(Duration::from_secs(10), slow).await??;
    let e = result.expect_err("the running query failed");
    assert_eq!(
        e.code().map(|c| c.code()),
        Some("57P01"),
        "the server's own FATAL"
    );
    // As with PostgreSQL itself, a FATAL ends the client's session; other
    // clients and the pool go on.
    assert!(a.simple_query("SELECT 1").await.is_err());
    assert_eq!(first_column(b.simple_query("SELECT 2").await?), ["2"]);
    assert_eq!(
        first_column(client(proxy.port).await?.simple_query("SELECT 3").await?),
        ["3"]
    );
    Ok(())
}

/// pgbench's three protocols through the proxy in transaction mode.
#[tokio::test]
async fn pgbench_runs_through_transaction_mode_with_every_protocol() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(2), topology).await;
    let pgbench = cluster.primary().bins().bin("pgbench");
    let port = proxy.port.to_string();
    let base = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
    let init = tokio::process::Command::new(&pgbench)
        .args(base)
        .args(["-i", "-s", "1", "-q", "postgres"])
        .output()
        .await?;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for protocol in ["simple", "extended", "prepared"] {
        let run = tokio::process::Command::new(&pgbench)
            .args(base)
            .args(["-c", "4", "-j", "4", "-t", "50", "-M", protocol, "postgres"])
            .output()
            .await?;
        let out = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{protocol}: {out} {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            out.contains("number of transactions actually processed: 200/200"),
            "{protocol}: {out}"
        );
    }
    Ok(())
}

/// Polls the primary's server connections until `done` holds (or a
/// generous deadline passes); every count seen must stay within
/// `pool_size`. The last count seen.
async fn connections_when(
    cluster: &PgCluster,
    pool_size: i64,
    done: impl Fn(i64) -> bool,
) -> Result<i64, Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let open = server_connections(cluster).await?;
        assert!(
            open <= pool_size,
            "{open} server connections, pool_size {pool_size}"
        );
        if done(open) || tokio::time::Instant::now() >= deadline {
            return Ok(open);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn min_pool_size_keeps_a_used_pool_filled_while_its_node_is_allowed() -> R {
    let cluster = PgCluster::builder().start().await?;
    let up = cluster.topology();
    let (publish, topology) = watch::channel(Arc::new(up.clone()));
    let config = ProxyConfig {
        min_pool_size: 3,
        ..transaction_mode(5)
    };
    let proxy = start_proxy(config, topology).await;
    // The pool is created by its first client; the upkeep fills it.
    let c = client(proxy.port).await?;
    assert_eq!(first_column(c.simple_query("SELECT 1").await?), ["1"]);
    assert_eq!(connections_when(&cluster, 5, |n| n == 3).await?, 3);
    // Later rounds (every second) keep it at 3: they count what is open.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(connections_when(&cluster, 5, |_| true).await?, 3);

    // A node the topology no longer allows: its idle connections are
    // closed and none are opened for it.
    let down = Topology::new(up.nodes().iter().cloned().map(|mut n| {
        n.status = Status::Down;
        n
    }));
    publish.send(Arc::new(down))?;
    assert_eq!(connections_when(&cluster, 5, |n| n == 0).await?, 0);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(connections_when(&cluster, 5, |_| true).await?, 0);

    // Allowed again: filled again, with no client asking.
    publish.send(Arc::new(up))?;
    assert_eq!(connections_when(&cluster, 5, |n| n == 3).await?, 3);
    assert_eq!(first_column(c.simple_query("SELECT 2").await?), ["2"]);
    Ok(())
}

/// Clients waiting for a server connection, as the admin console shows
/// them (`SHOW POOLS`, summed over pools).
async fn clients_waiting(
    admin: &tokio_postgres::Client,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut waiting = 0;
    for message in admin.simple_query("SHOW POOLS").await? {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            waiting += row.get("cl_waiting").unwrap_or("0").parse::<u64>()?;
        }
    }
    Ok(waiting)
}

#[tokio::test]
async fn a_full_pool_serves_waiting_clients_in_arrival_order() -> R {
    let cluster = PgCluster::builder().start().await?;
    cluster
        .primary()
        .execute("CREATE TABLE served (n serial, who text)")
        .await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let config = ProxyConfig {
        admin_users: vec!["postgres".into()],
        pool_timeout: Duration::from_secs(8),
        ..transaction_mode(1)
    };
    let proxy = start_proxy(config, topology).await;
    let (admin, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=pgha",
            proxy.port
        ),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    // Logged in first: a login is checked on the server.
    let holder = client(proxy.port).await?;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(client(proxy.port).await?);
    }
    holder
        .batch_execute("BEGIN; INSERT INTO served (who) VALUES ('holder')")
        .await?;
    // Three clients queue for the one connection, one after the other:
    // each is seen waiting before the next one asks.
    let mut queued = Vec::new();
    for (i, (who, c)) in ["first", "second", "third"]
        .into_iter()
        .zip(others)
        .enumerate()
    {
        queued.push(tokio::spawn(async move {
            c.batch_execute(&format!("INSERT INTO served (who) VALUES ('{who}')"))
                .await
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while clients_waiting(&admin).await? < i as u64 + 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{who} never showed as waiting"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The holder gives its connection back and at once wants one again:
    // it is served after the three that were waiting, not before them.
    holder.batch_execute("COMMIT").await?;
    holder
        .batch_execute("INSERT INTO served (who) VALUES ('holder again')")
        .await?;
    for q in queued {
        q.await??;
    }
    let order = first_column(
        cluster
            .primary()
            .connect()
            .await?
            .simple_query("SELECT who FROM served ORDER BY n")
            .await?,
    );
    assert_eq!(
        order,
        ["holder", "first", "second", "third", "holder again"]
    );
    Ok(())
}
