//! The local demo cluster behind `pgha demo`.

use std::fmt::Write;

use anyhow::Context;
use pgha_core::testing::{PgCluster, PgNode};

/// Starts a primary and `standbys` streaming standbys on loopback.
pub async fn start_cluster(standbys: usize) -> anyhow::Result<PgCluster> {
    let cluster = PgCluster::builder().standbys(standbys).start().await?;
    cluster.wait_streaming().await?;
    Ok(cluster)
}

/// One line per node: name, role, address, timeline, WAL position, lag.
pub async fn topology_table(cluster: &PgCluster) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "{:<7} {:<8} {:<16} {:>8} {:>12} {:>10}",
        "node", "role", "address", "timeline", "wal_lsn", "lag_bytes"
    )?;
    let primary_lsn = cluster.primary().current_wal_lsn().await?;
    for node in cluster.nodes() {
        let standby = node.is_in_recovery().await?;
        let (role, lsn) = if standby {
            ("standby", node.replay_lsn().await?)
        } else {
            ("primary", node.current_wal_lsn().await?)
        };
        let lag = lag_bytes(node, &primary_lsn, &lsn).await?;
        writeln!(
            out,
            "{:<7} {:<8} {:<16} {:>8} {:>12} {:>10}",
            node.name(),
            role,
            format!("{}:{}", node.host(), node.port()),
            node.timeline().await?,
            lsn,
            lag
        )?;
    }
    Ok(out)
}

async fn lag_bytes(node: &PgNode, primary_lsn: &str, lsn: &str) -> anyhow::Result<String> {
    let sql = format!("SELECT pg_wal_lsn_diff('{primary_lsn}', '{lsn}')::bigint::text");
    node.query_one_text(&sql)
        .await?
        .context("pg_wal_lsn_diff returned NULL")
}
