//! The local demo behind `pgha demo`: a real primary and standby, the
//! cluster monitor in front, a fault injected, and every step timed.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pgha_core::testing::PgCluster;
use pgha_core::{
    Action, ClusterMonitor, LocalNodeController, MonitorConfig, MonitorEventKind, MonitorHandle,
    NodeController, NodeId, Role, SqlNodeController, Status, Topology,
};
use tokio::sync::oneshot;

/// The fault the demo injects into the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// `kill -9` of the postmaster and all its children: a crash.
    Kill,
    /// SIGSTOP of every server process: a hung server whose kernel still
    /// accepts connections.
    Freeze,
}

/// Starts a primary and `standbys` streaming standbys on loopback.
pub async fn start_cluster(standbys: usize) -> anyhow::Result<Arc<PgCluster>> {
    let cluster = PgCluster::builder().standbys(standbys).start().await?;
    cluster.wait_streaming().await?;
    Ok(Arc::new(cluster))
}

/// A running monitor with pgha's default timing (probes every 500 ms,
/// 500 ms timeout, down after 2 failures or one crash) and local control of the demo's servers, and the
/// proxy in front.
pub struct Monitor {
    /// Talks to the monitor.
    pub handle: MonitorHandle,
    /// Where clients connect.
    pub proxy: std::net::SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Starts the monitor over `cluster`.
pub async fn start_monitor(cluster: &Arc<PgCluster>) -> anyhow::Result<Monitor> {
    let controller: Arc<dyn NodeController> = Arc::new(LocalNodeController::new(
        SqlNodeController::default(),
        cluster.clone(),
        cluster.local_controller_config(),
    ));
    let config = MonitorConfig {
        state_file: Some(cluster.dir().join("pgha-state.json")),
        ..MonitorConfig::default()
    };
    let (monitor, handle) = ClusterMonitor::builder(cluster.topology())
        .controller(controller)
        .config(config)
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    let proxy = crate::daemon::serve_proxy(
        "127.0.0.1:0".parse()?,
        &handle,
        // Transaction pooling: a client between transactions owns no
        // server state, so it keeps its connection across the failover (in
        // session mode its session would end with its server's).
        pgha_proxy::ProxyConfig {
            pool_mode: pgha_proxy::PoolMode::Transaction,
            ..pgha_proxy::ProxyConfig::default()
        },
        crate::daemon::Extras::default(),
        pgha_proxy::PauseGate::new(Duration::from_secs(30)),
    )
    .await?
    .addr;
    Ok(Monitor {
        handle,
        proxy,
        _stop: stop,
    })
}

async fn connect(address: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(address, tokio_postgres::NoTls)
        .await
        .context("connecting through pgha")?;
    tokio::spawn(connection);
    Ok(client)
}

/// Writes one row through pgha as a careful application does: a write
/// held by pgha while there is no primary simply succeeds; one that pgha
/// reports failed did not run and may be sent again; one whose outcome is
/// unknown (08007: it reached the old primary) is looked up before it is
/// sent again. Returns when it committed, the port of the server that
/// committed it, and the error of a first attempt that did not.
async fn write_once(
    mut client: tokio_postgres::Client,
    address: String,
    t0: Instant,
) -> anyhow::Result<(Duration, i32, Option<String>)> {
    let token = format!("demo-{}", std::process::id());
    let insert = "INSERT INTO demo (token) VALUES ($1) RETURNING inet_server_port()";
    let mut failed = None;
    for _ in 0..3 {
        match client.query_one(insert, &[&token]).await {
            Ok(row) => return Ok((t0.elapsed(), row.get::<_, i32>(0), failed)),
            Err(e) => {
                let unknown = e.code().map(|c| c.code()) == Some("08007");
                failed = Some(pgha_core::describe_pg(&e));
                if client.is_closed() {
                    client = connect(&address).await?;
                }
                if unknown {
                    let found = client
                        .query_opt(
                            "SELECT inet_server_port() FROM demo WHERE token = $1",
                            &[&token],
                        )
                        .await?;
                    if let Some(row) = found {
                        return Ok((t0.elapsed(), row.get::<_, i32>(0), failed));
                    }
                }
            }
        }
    }
    Err(anyhow::anyhow!("the write failed three times: {failed:?}"))
}

/// Waits until every node is probed and up.
pub async fn wait_healthy(handle: &MonitorHandle) -> anyhow::Result<Arc<Topology>> {
    Ok(handle
        .wait_for(Duration::from_secs(30), |t| {
            t.primary().is_some()
                && t.nodes()
                    .iter()
                    .all(|n| n.status == Status::Up && n.in_recovery.is_some())
        })
        .await?)
}

/// Injects `fault` into node0 and narrates the failover and the rejoin
/// through `say`, each step with its time since the fault.
pub async fn failover(
    cluster: &Arc<PgCluster>,
    monitor: &Monitor,
    fault: Fault,
    mut say: impl FnMut(String),
) -> anyhow::Result<()> {
    let handle = &monitor.handle;
    let mut events = handle.events();
    // One client connection through pgha, kept across the failover.
    let address = format!(
        "host={} port={} user=postgres dbname=postgres",
        monitor.proxy.ip(),
        monitor.proxy.port()
    );
    let client = connect(&address).await?;
    let old = &cluster.nodes()[0];
    old.execute("CREATE TABLE IF NOT EXISTS demo (at timestamptz DEFAULT now(), token text)")
        .await?;
    let t0 = Instant::now();
    let mut step = |what: String| say(format!("{:>8.3}s  {what}", t0.elapsed().as_secs_f64()));
    client.batch_execute("SELECT 1").await?;
    match fault {
        Fault::Kill => old.kill9()?,
        Fault::Freeze => old.freeze()?,
    }
    let write = tokio::spawn(write_once(client, address, t0));
    step(format!(
        "node0 (primary) {}",
        match fault {
            Fault::Kill => "killed: kill -9 of every server process",
            Fault::Freeze => "frozen: SIGSTOP, its TCP port still accepts",
        }
    ));
    let new_primary = loop {
        let event = events.recv().await.context("monitor events")?;
        match event.kind {
            MonitorEventKind::Decided { actions, term, .. } => {
                if let Some(Action::Promote { node, .. }) =
                    actions.iter().find(|a| matches!(a, Action::Promote { .. }))
                {
                    step(format!(
                        "failure confirmed; decided: promote {node}, term {term}"
                    ));
                }
            }
            MonitorEventKind::Executed {
                action: Action::Promote { node, .. },
                took,
            } => {
                step(format!("{node} promoted (pg_promote took {took:.1?})"));
                break node;
            }
            _ => {}
        }
    };
    let (committed_at, port, failed) = write.await.context("write task")??;
    if let Some(error) = &failed {
        step(format!(
            "the write in flight on the old primary: {error}; the client found it not committed and sent it again"
        ));
    }
    let on = cluster
        .nodes()
        .iter()
        .find(|n| i32::from(n.port()) == port)
        .map(|n| n.name().to_string())
        .unwrap_or_else(|| format!("port {port}"));
    step(format!(
        "the write sent through pgha at 0.0s ({}) committed on {on} at {:.3}s",
        if failed.is_some() {
            "after one reconnect"
        } else {
            "same client connection"
        },
        committed_at.as_secs_f64()
    ));
    anyhow::ensure!(
        on == new_primary.as_str(),
        "the write reached {on}, not the new primary"
    );

    // The old primary is fenced right after the promotion.
    loop {
        match events.recv().await.context("monitor events")?.kind {
            MonitorEventKind::Executed {
                action: Action::Fence { node, .. },
                ..
            } => {
                step(format!("{node} fenced (stopped)"));
                break;
            }
            MonitorEventKind::FenceNotConfirmed { node, why } => {
                step(format!(
                    "{node} fence not confirmed ({why}); it stays quarantined"
                ));
                break;
            }
            _ => {}
        }
    }
    if fault == Fault::Freeze {
        old.thaw()?;
    }
    if old.pid().is_none() {
        // Killed, or stopped by the fence while it hung: start it again.
        old.start().await?;
    }
    step("node0 back (it still believes it is the primary)".into());
    let deadline = Duration::from_secs(60);
    let rejoined = tokio::time::timeout(deadline, async {
        loop {
            let event = events.recv().await?;
            match event.kind {
                // Seen by a probe (an unconfirmed fence was quarantined
                // before it came back, without being seen).
                MonitorEventKind::Decided {
                    event: pgha_core::Event::Observed { .. },
                    actions,
                    ..
                } if actions.iter().any(|a| matches!(a, Action::Fence { .. })) => {
                    step("node0 seen as a stale primary: quarantined, never routed, fenced".into());
                }
                MonitorEventKind::Executed {
                    action: Action::Rejoin { node, primary },
                    took,
                } => {
                    step(format!(
                        "{node} rewound and streaming from {primary} (rejoin took {took:.1?})"
                    ));
                    return Ok::<_, anyhow::Error>(());
                }
                MonitorEventKind::ActionFailed { action, error } => {
                    step(format!("{action:?} failed: {error}"));
                }
                _ => {}
            }
        }
    })
    .await;
    rejoined.context("node0 did not rejoin within 60 s")??;
    handle
        .wait_for(Duration::from_secs(30), |t| {
            t.node(&NodeId::new("node0"))
                .is_some_and(|n| n.role == Role::Standby && n.status == Status::Up)
        })
        .await?;
    step("node0 attached as a standby".into());
    Ok(())
}

/// One line per node: role, status, address, timeline, WAL position, lag.
pub fn topology_table(topology: &Topology) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "term {}", topology.term())?;
    writeln!(
        out,
        "{:<7} {:<8} {:<8} {:<16} {:>8} {:>12} {:>10}",
        "node", "role", "status", "address", "timeline", "wal_lsn", "behind"
    )?;
    for node in topology.nodes() {
        let lsn = node.current_lsn.or(node.replayed_lsn);
        let role = match node.role {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Unknown => "unknown",
        };
        writeln!(
            out,
            "{:<7} {:<8} {:<8} {:<16} {:>8} {:>12} {:>10}",
            node.id.as_str(),
            role,
            format!("{:?}", node.status).to_lowercase(),
            format!("{}:{}", node.host, node.port),
            node.timeline
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            lsn.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            match node.role {
                Role::Primary => "-".into(),
                _ => topology
                    .bytes_behind(&node.id)
                    .map(|b| format!("{b} B"))
                    .unwrap_or_else(|| "-".into()),
            },
        )?;
    }
    Ok(out)
}
