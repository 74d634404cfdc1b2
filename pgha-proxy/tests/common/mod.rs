//! Helpers shared by the proxy's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use pgha_core::Topology;
use pgha_proxy::{Listener, Proxy, ProxyConfig};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_postgres::{Client, NoTls};

pub mod wire;

/// A proxy on a free loopback port; stops when dropped.
pub struct Running {
    pub port: u16,
    pub metrics: Arc<pgha_proxy::ProxyMetrics>,
    /// The directory of the proxy's Unix socket (`.s.PGSQL.<port>`), if
    /// it has one.
    pub socket_dir: Option<PathBuf>,
    _stop: oneshot::Sender<()>,
    _dir: Option<tempfile::TempDir>,
}

/// Transaction pooling with `pool_size` server connections per pool.
pub fn transaction_mode(pool_size: usize) -> ProxyConfig {
    ProxyConfig {
        pool_mode: pgha_proxy::PoolMode::Transaction,
        pool_size,
        ..ProxyConfig::default()
    }
}

pub async fn start_proxy(config: ProxyConfig, topology: watch::Receiver<Arc<Topology>>) -> Running {
    start(Proxy::new(config, topology), false).await
}

/// Like [`start_proxy`], reporting to `monitor` what sessions see of the
/// servers (as `pgha run` does), so it probes a node at once.
pub async fn start_proxy_hinting(
    config: ProxyConfig,
    monitor: &pgha_core::MonitorHandle,
) -> Running {
    let hints = monitor.clone();
    let proxy = Proxy::with_hint(config, monitor.topology(), move |node, sqlstate| {
        hints.hint(node, sqlstate)
    });
    start(proxy, false).await
}

/// Like [`start_proxy`], also listening on a Unix socket in a temporary
/// directory, for the same port number.
pub async fn start_proxy_with_unix(
    config: ProxyConfig,
    topology: watch::Receiver<Arc<Topology>>,
) -> Running {
    start(Proxy::new(config, topology), true).await
}

async fn start(proxy: Proxy, unix: bool) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut listeners = vec![Listener::from(listener)];
    let dir = unix.then(|| tempfile::tempdir().expect("temporary directory"));
    if let Some(dir) = &dir {
        let unix = pgha_proxy::bind_unix(dir.path(), port)
            .await
            .expect("bind unix");
        listeners.push(unix.into());
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let metrics = proxy.metrics();
    tokio::spawn(async move {
        proxy
            .serve_listeners(listeners, async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        port,
        metrics,
        socket_dir: dir.as_ref().map(|d| d.path().to_path_buf()),
        _stop: stop,
        _dir: dir,
    }
}

pub async fn client(port: u16) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=10"),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

pub async fn server_port(client: &Client) -> Result<i32, tokio_postgres::Error> {
    client
        .query_one("SELECT inet_server_port()", &[])
        .await
        .map(|r| r.get(0))
}

/// Rows of a simple query, first column, as text.
pub fn first_column(rows: Vec<tokio_postgres::SimpleQueryMessage>) -> Vec<String> {
    rows.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect()
}

/// `topology` with the primary's read weight 0: a test that checks where a
/// read lands wants it on a standby every time, not by the draw.
pub fn reads_to_standbys(topology: Topology) -> Topology {
    Topology::new(topology.nodes().iter().cloned().map(|n| {
        if n.role == pgha_core::Role::Primary {
            n.with_weight(0)
        } else {
            n
        }
    }))
}
