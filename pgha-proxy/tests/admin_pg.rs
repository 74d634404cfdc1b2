//! The admin console (database `pgha`), PAUSE/RESUME and the metrics, with
//! real clients and a real server.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_proxy::{PoolMode, ProxyConfig};
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

mod common;
use common::{client, first_column, start_proxy};

type R = Result<(), Box<dyn std::error::Error>>;

async fn connect(port: u16, user: &str, db: &str) -> Result<Client, tokio_postgres::Error> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname={db}"),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(c)
}

/// Rows of a simple query as (column name → value) lists.
async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<(String, String)>>, tokio_postgres::Error> {
    Ok(c.simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, col)| (col.name().to_string(), r.get(i).unwrap_or("").to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

fn value<'a>(row: &'a [(String, String)], column: &str) -> &'a str {
    row.iter()
        .find(|(c, _)| c == column)
        .map_or("<missing>", |(_, v)| v.as_str())
}

fn config() -> ProxyConfig {
    ProxyConfig {
        pool_mode: PoolMode::Transaction,
        admin_users: vec!["postgres".into()],
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn the_admin_console_shows_nodes_pools_clients_stats_and_config() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(config(), topology).await;
    let app = client(proxy.port).await?;
    for _ in 0..3 {
        app.simple_query("SELECT 1").await?;
    }
    let admin = connect(proxy.port, "postgres", "pgha").await?;

    let nodes = rows(&admin, "SHOW NODES").await?;
    assert_eq!(nodes.len(), 1);
    assert_eq!(value(&nodes[0], "node"), "node0");
    assert_eq!(value(&nodes[0], "role"), "primary");

    let pools = rows(&admin, "show pools;").await?;
    assert_eq!(pools.len(), 1, "{pools:?}");
    assert_eq!(value(&pools[0], "database"), "postgres");
    assert_eq!(value(&pools[0], "sv_idle"), "1", "{pools:?}");

    let clients = rows(&admin, "SHOW CLIENTS").await?;
    assert_eq!(clients.len(), 1, "the admin session is not a pooled client");
    assert_eq!(value(&clients[0], "database"), "postgres");

    let stats = rows(&admin, "SHOW STATS").await?;
    let xacts: u64 = value(&stats[0], "total_xact_count").parse().unwrap_or(0);
    assert!(xacts >= 3, "{stats:?}");

    let config = rows(&admin, "SHOW CONFIG").await?;
    let mode = config.iter().find(|r| value(r, "key") == "pool_mode");
    assert_eq!(mode.map(|r| value(r, "value")), Some("transaction"));

    let err = admin
        .simple_query("SHOW NONSENSE")
        .await
        .expect_err("unknown");
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"));
    // The console is still usable after an error.
    assert_eq!(rows(&admin, "SHOW POOL_NODES").await?.len(), 1);

    // Only admin_users get in.
    let refused = connect(proxy.port, "someone", "pgha")
        .await
        .expect_err("not an admin");
    assert_eq!(refused.code().map(|c| c.code()), Some("28000"));

    let text = proxy.metrics.encode();
    assert!(
        text.lines()
            .any(|l| l.starts_with("pgha_transactions_total{") && l.contains("node=\"node0\"")),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn pause_holds_new_transactions_until_resume() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(config(), topology).await;
    let app = client(proxy.port).await?;
    let admin = connect(proxy.port, "postgres", "pgha").await?;
    admin.simple_query("PAUSE").await?;
    let held = tokio::spawn(async move { app.simple_query("SELECT 42").await.map(first_column) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a new transaction waits while paused");
    let paused = rows(&admin, "SHOW CLIENTS").await?;
    assert_eq!(value(&paused[0], "state"), "waiting", "{paused:?}");
    admin.simple_query("RESUME").await?;
    let result = tokio::time::timeout(Duration::from_secs(5), held).await???;
    assert_eq!(result, ["42"]);
    Ok(())
}
