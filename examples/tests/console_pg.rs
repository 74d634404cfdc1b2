//! The admin console's commands that act, on the real `pgha` binary in
//! front of a real primary and standby: answers as a client reads them,
//! and their effect seen through the proxy.

use std::time::Duration;

use pgha_core::testing::PgCluster;
use tokio_postgres::Client;

mod common;
use common::{column, connect, sqlstate, Pgha, R};

/// Rows of a simple query as (column → value) maps.
async fn rows(
    c: &Client,
    sql: &str,
) -> Result<Vec<Vec<(String, Option<String>)>>, tokio_postgres::Error> {
    Ok(pgha::ctl::console::rows_of(c.simple_query(sql).await?))
}

fn get<'a>(row: &'a [(String, Option<String>)], column: &str) -> Option<&'a str> {
    row.iter()
        .find(|(c, _)| c == column)
        .and_then(|(_, v)| v.as_deref())
}

/// SHOW STATUS's row for `node`.
async fn status_of(
    console: &Client,
    node: &str,
) -> Result<Vec<(String, Option<String>)>, Box<dyn std::error::Error>> {
    rows(console, "SHOW STATUS")
        .await?
        .into_iter()
        .find(|r| get(r, "node") == Some(node))
        .ok_or_else(|| format!("no SHOW STATUS row for {node}").into())
}

/// Waits until `node`'s SHOW STATUS row satisfies `ok` (the monitor's
/// next probes; the bound only keeps a broken daemon from hanging).
async fn until(
    console: &Client,
    node: &str,
    ok: impl Fn(&[(String, Option<String>)]) -> bool,
) -> R {
    for _ in 0..300 {
        if ok(&status_of(console, node).await?) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "{node} never got there: {:?}",
        status_of(console, node).await?
    )
    .into())
}

async fn refused_with(console: &Client, sql: &str) -> Option<String> {
    console
        .simple_query(sql)
        .await
        .err()
        .and_then(|e| sqlstate(&e))
}

#[tokio::test]
async fn console_commands_act_on_the_cluster_and_refuse_what_cannot_work() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let (primary, standby) = (cluster.primary().name(), cluster.standbys()[0].name());
    let dir = tempfile::tempdir()?;
    let pgha = Pgha::with_console(dir.path(), &cluster)?;
    let console = connect(pgha.port, "postgres", "pgha").await?;

    let status = rows(&console, "SHOW STATUS").await?;
    assert_eq!(status.len(), 2);
    assert_eq!(get(&status[0], "leader"), Some("single node"));
    assert_eq!(get(&status[0], "vip_holder"), Some("single node"));
    // The policy promotes only a standby whose position it knows.
    until(&console, standby, |r| get(r, "lag_bytes").is_some()).await?;

    // Refused before anything runs.
    assert_eq!(
        refused_with(&console, "PROMOTE nope").await.as_deref(),
        Some("42704")
    );
    let promote_primary = format!("PROMOTE '{primary}'");
    assert_eq!(
        refused_with(&console, &promote_primary).await.as_deref(),
        Some("55000")
    );
    assert_eq!(
        refused_with(&console, &format!("ATTACH '{standby}'"))
            .await
            .as_deref(),
        Some("55000")
    );
    assert_eq!(
        refused_with(&console, "PAUSE; RELOAD").await.as_deref(),
        Some("0A000")
    );
    assert_eq!(
        get(&status_of(&console, primary).await?, "term_primary"),
        Some("t"),
        "nothing ran"
    );

    // DETACH and ATTACH answer with what the monitor did.
    let detached = rows(&console, &format!("DETACH '{standby}'")).await?;
    assert_eq!(get(&detached[0], "action"), Some("detach"));
    assert_eq!(
        get(&status_of(&console, standby).await?, "status"),
        Some("detached")
    );
    let attached = rows(&console, &format!("ATTACH '{standby}'")).await?;
    assert_eq!(get(&attached[0], "action"), Some("attach"));
    until(&console, standby, |r| {
        get(r, "status") == Some("up") && get(r, "lag_bytes").is_some()
    })
    .await?;

    // PROMOTE: the standby takes over in a new term; clients' writes go there.
    let promoted = rows(&console, &format!("PROMOTE '{standby}'")).await?;
    let promote = promoted
        .iter()
        .find(|r| get(r, "action") == Some("promote"))
        .ok_or("no promote row")?;
    assert_eq!(get(promote, "node"), Some(standby));
    assert_eq!(get(promote, "term"), Some("2"));
    let row = status_of(&console, standby).await?;
    assert_eq!(
        (get(&row, "term_primary"), get(&row, "term")),
        (Some("t"), Some("2"))
    );
    let client = pgha.client("postgres", "postgres").await?;
    let port_of_writes = column(
        &client,
        "CREATE TABLE after_promote (v int); SELECT inet_server_port()",
    )
    .await?;
    assert_eq!(port_of_writes, [cluster.standbys()[0].port().to_string()]);
    Ok(())
}
