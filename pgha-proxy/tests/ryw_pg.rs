//! Read-your-writes by WAL position: reads are balanced to a standby only
//! once it has replayed the client's last write. The standby here applies
//! WAL half a second late, so a read sent there too early would miss the
//! row just written.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_core::{ClusterMonitor, MonitorConfig, MonitorHandle, NodeId};
use pgha_proxy::{Consistency, PoolMode, ProxyConfig};
use tokio::sync::oneshot;

mod common;
use common::{client, first_column, start_proxy};

type R = Result<(), Box<dyn std::error::Error>>;

struct Setup {
    cluster: Arc<PgCluster>,
    handle: MonitorHandle,
    _stop: oneshot::Sender<()>,
}

async fn delayed_standby() -> Result<Setup, Box<dyn std::error::Error>> {
    let cluster = Arc::new(PgCluster::builder().standbys(1).start().await?);
    cluster.wait_streaming().await?;
    let standby = &cluster.nodes()[1];
    standby
        .execute("ALTER SYSTEM SET recovery_min_apply_delay = '500ms'")
        .await?;
    standby.execute("SELECT pg_reload_conf()").await?;
    let (monitor, handle) = ClusterMonitor::builder(common::reads_to_standbys(cluster.topology()))
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
                && t.bytes_behind(&NodeId::new("node1")).is_some()
        })
        .await?;
    cluster.primary().execute("CREATE TABLE w (v int)").await?;
    // The table itself was not written through the proxy: wait until the
    // standby has it.
    let mut there = None;
    for _ in 0..100 {
        there = cluster.nodes()[1]
            .query_one_text("SELECT (to_regclass('w') IS NOT NULL)::text")
            .await?;
        if there.as_deref() == Some("true") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        there.as_deref(),
        Some("true"),
        "the standby never got the table"
    );
    Ok(Setup {
        cluster,
        handle,
        _stop: stop,
    })
}

fn config(consistency: Consistency) -> ProxyConfig {
    ProxyConfig {
        pool_mode: PoolMode::Transaction,
        consistency,
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn a_client_reads_its_writes_and_still_reads_from_the_standby_later() -> R {
    let setup = delayed_standby().await?;
    let proxy = start_proxy(config(Consistency::Lsn), setup.handle.topology()).await;
    let c = client(proxy.port).await?;
    let mut on_standby = 0;
    for i in 1..=5 {
        c.simple_query(&format!("INSERT INTO w VALUES ({i})"))
            .await?;
        // At once: only the primary has the row.
        let seen = first_column(c.simple_query("SELECT count(*) FROM w").await?);
        assert_eq!(seen, [i.to_string()], "read right after write {i}");
        // Later the standby has replayed it and serves the read.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let rows = c
            .simple_query("SELECT count(*)::text || ' ' || pg_is_in_recovery()::text FROM w")
            .await?;
        let row = first_column(rows).join("");
        assert!(row.starts_with(&format!("{i} ")), "{row}");
        on_standby += usize::from(row.ends_with("true"));
    }
    assert!(
        on_standby >= 4,
        "reads after replay go to the standby ({on_standby}/5)"
    );
    drop(setup.cluster);
    Ok(())
}

#[tokio::test]
async fn per_user_positions_let_another_session_read_a_write() -> R {
    let setup = delayed_standby().await?;
    let proxy = start_proxy(config(Consistency::LsnPerUser), setup.handle.topology()).await;
    let writer = client(proxy.port).await?;
    let reader = client(proxy.port).await?;
    // The reader has read from the standby before (not pinned anywhere).
    reader.simple_query("SELECT 1").await?;
    for i in 1..=5 {
        writer
            .simple_query(&format!("INSERT INTO w VALUES ({i})"))
            .await?;
        let seen = first_column(reader.simple_query("SELECT count(*) FROM w").await?);
        assert_eq!(seen, [i.to_string()], "another session of the same user");
    }
    Ok(())
}
