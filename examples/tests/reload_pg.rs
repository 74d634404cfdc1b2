//! `pgha run` reloading its configuration file on SIGHUP and on the
//! console's RELOAD (through `pgha-ctl reload`): the real binary, a file
//! the test rewrites, a real PostgreSQL, the effect seen by clients.

use nix::sys::signal::Signal;
use pgha_core::testing::PgCluster;
use serde_json::Value;

mod common;
use common::{column, connect, ctl, free_port, nodes_toml, sqlstate, Pgha, R};

/// A configuration: `proxy` lines under [proxy] (after `listen`), the
/// hba file `hba` next to it.
fn config(cluster: &PgCluster, port: u16, proxy: &str) -> String {
    format!(
        "[proxy]\nlisten = \"127.0.0.1:{port}\"\nadmin_users = [\"postgres\"]\n{proxy}\n\n\
         [auth]\nhba_file = \"pool_hba.conf\"\n\n[monitor]\nuser = \"postgres\"\n\n{}",
        nodes_toml(cluster)
    )
}

const TRUST: &str = "host all all 127.0.0.1/32 trust\n";

fn start(dir: &std::path::Path, toml: &str, port: u16) -> Result<Pgha, Box<dyn std::error::Error>> {
    std::fs::write(dir.join("pool_hba.conf"), TRUST)?;
    Pgha::start(dir, toml, port)
}

/// The value of `key` in SHOW CONFIG.
async fn setting(port: u16, key: &str) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let console = connect(port, "postgres", "pgha").await?;
    Ok(console
        .simple_query("SHOW CONFIG")
        .await?
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some(key) => {
                r.get(1).map(str::to_string)
            }
            _ => None,
        }))
}

#[tokio::test]
async fn sighup_resizes_a_pool_a_waiting_client_gets_in_and_no_connection_is_cut() -> R {
    let cluster = PgCluster::builder().start().await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let pool = |size: usize| {
        format!("pool_mode = \"transaction\"\npool_size = {size}\npool_timeout = \"1s\"")
    };
    let pgha = start(dir.path(), &config(&cluster, port, &pool(1)), port)?;
    let holder = pgha.client("postgres", "postgres").await?;
    let waiter = pgha.client("postgres", "postgres").await?;
    holder.batch_execute("BEGIN; SELECT 1").await?;
    // The one server connection is taken: the second client times out.
    let full = waiter.simple_query("SELECT 1").await.err();
    assert_eq!(full.as_ref().and_then(sqlstate).as_deref(), Some("53400"));

    std::fs::write(&pgha.config, config(&cluster, port, &pool(2)))?;
    pgha.signal(Signal::SIGHUP)?;
    pgha.wait_for_log("configuration reloaded").await?;
    let line = pgha.wait_for_log("pool_size").await?;
    assert!(
        line.contains("applied") && line.contains("1 -> 2"),
        "{line}"
    );
    // Same clients, the first still inside its transaction.
    assert_eq!(column(&waiter, "SELECT 2").await?, ["2"]);

    // Shrinking back takes no connection from under a client: the
    // transaction still running commits, then the pool is one again.
    std::fs::write(&pgha.config, config(&cluster, port, &pool(1)))?;
    pgha.signal(Signal::SIGHUP)?;
    pgha.wait_for_log("2 -> 1").await?;
    holder.batch_execute("COMMIT").await?;
    holder.batch_execute("BEGIN; SELECT 1").await?;
    let full = waiter.simple_query("SELECT 3").await.err();
    assert_eq!(full.as_ref().and_then(sqlstate).as_deref(), Some("53400"));
    holder.batch_execute("COMMIT").await?;
    assert_eq!(column(&waiter, "SELECT 4").await?, ["4"]);
    Ok(())
}

#[tokio::test]
async fn sighup_applies_a_new_hba_file_to_clients_that_log_in_from_then_on() -> R {
    let cluster = PgCluster::builder().start().await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let pgha = start(dir.path(), &config(&cluster, port, ""), port)?;
    let before = pgha.client("postgres", "postgres").await?;

    std::fs::write(
        dir.path().join("pool_hba.conf"),
        "host pgha all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n",
    )?;
    pgha.signal(Signal::SIGHUP)?;
    let line = pgha.wait_for_log("client_auth").await?;
    assert!(line.contains("applied"), "{line}");

    let refused = pgha.client("postgres", "postgres").await.err();
    assert_eq!(
        refused.as_ref().and_then(sqlstate).as_deref(),
        Some("28000")
    );
    // A session that logged in before keeps going; the console is allowed.
    assert_eq!(column(&before, "SELECT 1").await?, ["1"]);
    assert!(connect(port, "postgres", "pgha").await.is_ok());
    Ok(())
}

#[tokio::test]
async fn a_setting_that_needs_a_restart_is_named_not_applied_and_the_rest_applies() -> R {
    let cluster = PgCluster::builder().start().await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let pgha = start(
        dir.path(),
        &config(&cluster, port, "max_client_conn = 100"),
        port,
    )?;

    let moved = free_port()?;
    let changed = config(
        &cluster,
        moved,
        "max_client_conn = 50\npool_mode = \"transaction\"",
    );
    std::fs::write(&pgha.config, changed)?;
    let (out, code) = ctl(&["--port", &port.to_string(), "reload", "--json"]).await?;
    assert_eq!(code, Some(0), "{out}");
    let reply: Value = serde_json::from_str(&out)?;
    let settings = reply["settings"].as_array().cloned().unwrap_or_default();
    let find = |name: &str| settings.iter().find(|s| s["setting"] == name).cloned();
    let listen = find("listen").ok_or("listen not named")?;
    assert_eq!(listen["applied"], false);
    assert!(listen["detail"]
        .as_str()
        .is_some_and(|d| d.contains("restart")));
    assert_eq!(
        find("pool_mode").map(|s| s["applied"].clone()),
        Some(false.into())
    );
    assert_eq!(
        find("max_client_conn").map(|s| s["applied"].clone()),
        Some(true.into())
    );
    let logged = pgha.wait_for_log("setting=listen").await?;
    assert!(logged.contains("NOT applied"), "{logged}");

    // Still on the old address, in the old pool mode, with the new limit.
    assert_eq!(
        setting(port, "pool_mode").await?.as_deref(),
        Some("session")
    );
    assert_eq!(
        setting(port, "max_client_conn").await?.as_deref(),
        Some("50")
    );
    assert!(connect(moved, "postgres", "postgres").await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_configuration_with_mistakes_is_refused_whole_and_the_running_one_stays() -> R {
    let cluster = PgCluster::builder().start().await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let pgha = start(dir.path(), &config(&cluster, port, "pool_size = 7"), port)?;

    // One good change, one mistake: neither is applied.
    let broken = config(&cluster, port, "pool_size = 3\npool_timeout = \"soon\"");
    std::fs::write(&pgha.config, broken)?;
    pgha.signal(Signal::SIGHUP)?;
    let line = pgha.wait_for_log("reload refused").await?;
    assert!(line.contains("pgha.toml:5:"), "file:line:column: {line}");
    pgha.wait_for_log("the running settings stay").await?;
    assert_eq!(setting(port, "pool_size").await?.as_deref(), Some("7"));

    let (out, code) = ctl(&["--port", &port.to_string(), "--json", "reload"]).await?;
    assert_eq!(code, Some(1), "{out}");
    let reply: Value = serde_json::from_str(&out)?;
    assert_eq!(reply["error"]["sqlstate"], "F0000");
    let detail = reply["error"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("pgha.toml:5:") && detail.contains("soon"),
        "{detail}"
    );
    assert_eq!(setting(port, "pool_size").await?.as_deref(), Some("7"));
    Ok(())
}
