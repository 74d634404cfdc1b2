//! Unix sockets on both sides of the proxy: clients on the proxy's socket,
//! the proxy on PostgreSQL's.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_core::{NodeState, Role, Topology};
use pgha_proxy::auth::{AuthFile, HbaRules};
use pgha_proxy::{ClientAuth, ProxyConfig};
use tokio::sync::watch;
use tokio_postgres::NoTls;

type R = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{client, start_proxy, start_proxy_with_unix};

/// A client on the proxy's Unix socket (`host=<dir>`, as libpq spells it).
async fn unix_client(
    dir: &std::path::Path,
    port: u16,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={port} user=postgres dbname=postgres connect_timeout=10",
            dir.display()
        ),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

#[tokio::test]
async fn clients_on_the_unix_socket_match_local_hba_rules() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    // Local clients are trusted; every TCP client is refused.
    let hba = HbaRules::parse("local all all trust\nhost all all all reject\n", "hba")
        .map_err(|e| format!("{e:?}"))?;
    let config = ProxyConfig {
        client_auth: Some(ClientAuth {
            hba,
            users: AuthFile::default(),
        }),
        ..ProxyConfig::default()
    };
    let proxy = start_proxy_with_unix(config, topology).await;
    let dir = proxy.socket_dir.clone().ok_or("no socket directory")?;
    assert!(dir.join(format!(".s.PGSQL.{}", proxy.port)).exists());

    let c = unix_client(&dir, proxy.port).await?;
    let one: i32 = c.query_one("SELECT 1", &[]).await?.get(0);
    assert_eq!(one, 1);

    let err = client(proxy.port).await.err().ok_or("TCP client let in")?;
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );

    // psql too, with its default sslmode=prefer: no TLS over a Unix socket.
    let psql = cluster.primary().bins().bin("psql");
    let out = tokio::process::Command::new(psql)
        .args([
            "-h",
            &dir.display().to_string(),
            "-p",
            &proxy.port.to_string(),
        ])
        .args([
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-At",
            "-c",
            "SELECT 40 + 2",
        ])
        .output()
        .await?;
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    Ok(())
}

/// The cluster's topology with every node reached over its Unix socket.
fn topology_over_sockets(cluster: &PgCluster) -> Topology {
    let primary = cluster.primary();
    Topology::new([NodeState::new(
        primary.name(),
        Role::Primary,
        primary.socket_dir().display().to_string(),
        primary.port(),
    )])
}

#[tokio::test]
async fn the_proxy_reaches_postgresql_over_its_unix_socket_and_cancels_there() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(topology_over_sockets(&cluster)));
    let proxy = start_proxy(ProxyConfig::default(), topology).await;
    let c = client(proxy.port).await?;
    // A backend reached over a Unix socket has no server address.
    let row = c
        .query_one(
            "SELECT inet_server_addr() IS NULL, current_setting('port')::int",
            &[],
        )
        .await?;
    assert!(row.get::<_, bool>(0), "the proxy connected over TCP");
    assert_eq!(row.get::<_, i32>(1), i32::from(cluster.primary().port()));

    // The cancel request goes the same way.
    let token = c.cancel_token();
    let slow = tokio::spawn(async move { c.batch_execute("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(NoTls).await?;
    let result = tokio::time::timeout(Duration::from_secs(5), slow).await??;
    let err = result.err().ok_or("the query was not cancelled")?;
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_server_socket_counts_as_an_unreachable_server() -> R {
    let dir = tempfile::tempdir()?;
    let topology = Topology::new([NodeState::new(
        "node0",
        Role::Primary,
        dir.path().display().to_string(),
        5432,
    )]);
    let (_tx, topology) = watch::channel(Arc::new(topology));
    let config = ProxyConfig {
        no_primary_wait: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;
    let err = client(proxy.port)
        .await
        .err()
        .ok_or("connected to nothing")?;
    let db = err.as_db_error().ok_or("not a server error")?;
    // Held for no_primary_wait like any unreachable primary, then told.
    assert_eq!(db.code().code(), "57P03", "{db:?}");
    Ok(())
}
