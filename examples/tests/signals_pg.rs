//! `pgha run` stopping on SIGTERM, seen from its clients: the real binary,
//! a configuration file the test writes, a real PostgreSQL.

use nix::sys::signal::Signal;
use pgha_core::testing::PgCluster;

mod common;
use common::{column, connect, connect_watched, ended_with, free_port, nodes_toml, Pgha, R};

fn config(cluster: &PgCluster, port: u16, shutdown_timeout: &str) -> String {
    format!(
        "[proxy]\nlisten = \"127.0.0.1:{port}\"\nshutdown_timeout = \"{shutdown_timeout}\"\n\
         admin_users = [\"postgres\"]\n\n[monitor]\nuser = \"postgres\"\n\n{}",
        nodes_toml(cluster)
    )
}

#[tokio::test]
async fn sigterm_lets_a_running_transaction_commit_ends_idle_clients_and_exits_0() -> R {
    let cluster = PgCluster::builder().start().await?;
    cluster
        .primary()
        .execute("CREATE TABLE drained (id int)")
        .await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut pgha = Pgha::start(dir.path(), &config(&cluster, port, "60s"), port)?;

    let (in_tx, in_tx_conn) = connect_watched(port, "postgres").await?;
    in_tx
        .batch_execute("BEGIN; INSERT INTO drained VALUES (1)")
        .await?;
    let (idle, idle_conn) = connect_watched(port, "postgres").await?;
    assert_eq!(column(&idle, "SELECT 1").await?, ["1"]);

    pgha.signal(Signal::SIGTERM)?;
    pgha.wait_for_log("listeners closed").await?;

    // The idle client is told at once, as PostgreSQL tells it.
    assert_eq!(ended_with(idle_conn).await?.as_deref(), Some("57P01"));
    // Nobody new gets in.
    let refused = connect(port, "postgres", "postgres").await;
    assert!(refused.is_err(), "a new client was accepted while stopping");
    // The transaction that was running finishes and commits…
    in_tx
        .batch_execute("INSERT INTO drained VALUES (2); COMMIT")
        .await?;
    let rows = cluster
        .primary()
        .query_one_text("SELECT count(*) FROM drained")
        .await?;
    assert_eq!(rows.as_deref(), Some("2"));
    // …then its session ends the same way.
    assert_eq!(ended_with(in_tx_conn).await?.as_deref(), Some("57P01"));

    let status = pgha.wait().await?;
    assert_eq!(status.code(), Some(0), "{:?}", pgha.log());
    pgha.wait_for_log("stopped: every client session has ended")
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_transaction_still_open_at_shutdown_timeout_is_rolled_back_and_its_client_told() -> R {
    let cluster = PgCluster::builder().start().await?;
    cluster
        .primary()
        .execute("CREATE TABLE cut (id int)")
        .await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut pgha = Pgha::start(dir.path(), &config(&cluster, port, "1s"), port)?;

    let (in_tx, in_tx_conn) = connect_watched(port, "postgres").await?;
    in_tx
        .batch_execute("BEGIN; INSERT INTO cut VALUES (1)")
        .await?;
    pgha.signal(Signal::SIGTERM)?;

    assert_eq!(ended_with(in_tx_conn).await?.as_deref(), Some("57P01"));
    let status = pgha.wait().await?;
    assert_eq!(status.code(), Some(0), "{:?}", pgha.log());
    pgha.wait_for_log("shutdown_timeout reached").await?;
    // Ended by closing its server connection: the insert never commits.
    let rows = cluster
        .primary()
        .query_one_text("SELECT count(*) FROM cut")
        .await?;
    assert_eq!(rows.as_deref(), Some("0"));
    Ok(())
}

#[tokio::test]
async fn a_second_sigterm_stops_at_once() -> R {
    let cluster = PgCluster::builder().start().await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut pgha = Pgha::start(dir.path(), &config(&cluster, port, "10m"), port)?;

    let (in_tx, _conn) = connect_watched(port, "postgres").await?;
    in_tx.batch_execute("BEGIN; SELECT 1").await?;
    pgha.signal(Signal::SIGTERM)?;
    pgha.wait_for_log("listeners closed").await?;
    pgha.signal(Signal::SIGTERM)?;

    // A ten-minute shutdown_timeout: only the second signal ends it.
    let status = pgha.wait().await?;
    assert_eq!(status.code(), Some(1), "{:?}", pgha.log());
    pgha.wait_for_log("second signal").await?;
    assert!(in_tx.batch_execute("COMMIT").await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_client_held_by_pause_is_told_at_once_and_its_statement_never_runs() -> R {
    let cluster = PgCluster::builder().start().await?;
    cluster
        .primary()
        .execute("CREATE TABLE held (id int)")
        .await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    // Ten minutes: only sessions ending by themselves let pgha exit.
    let mut pgha = Pgha::start(dir.path(), &config(&cluster, port, "10m"), port)?;
    let client = pgha.client("postgres", "postgres").await?;
    let console = connect(port, "postgres", "pgha").await?;
    console.batch_execute("PAUSE").await?;
    let insert = tokio::spawn(async move {
        client
            .simple_query("INSERT INTO held VALUES (1)")
            .await
            .map_err(|e| common::sqlstate(&e))
    });
    // Held: the console shows the client waiting for its transaction.
    let mut held = false;
    for _ in 0..200 {
        let states = console.simple_query("SHOW CLIENTS").await?;
        held = states.iter().any(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get("state") == Some("waiting"),
            _ => false,
        });
        if held {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(held, "the INSERT was never held by PAUSE");
    pgha.signal(Signal::SIGTERM)?;
    // Bounded so that a client left waiting fails the test, not hangs it.
    let answer = tokio::time::timeout(std::time::Duration::from_secs(60), insert).await??;
    assert_eq!(answer.err().flatten().as_deref(), Some("57P01"));
    assert_eq!(pgha.wait().await?.code(), Some(0), "{:?}", pgha.log());
    let rows = cluster
        .primary()
        .query_one_text("SELECT count(*) FROM held")
        .await?;
    assert_eq!(rows.as_deref(), Some("0"));
    Ok(())
}
