//! Helpers shared by the proxy's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use pgha_core::Topology;
use pgha_proxy::{Proxy, ProxyConfig};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_postgres::{Client, NoTls};

/// A proxy on a free loopback port; stops when dropped.
pub struct Running {
    pub port: u16,
    pub metrics: Arc<pgha_proxy::ProxyMetrics>,
    _stop: oneshot::Sender<()>,
}

pub async fn start_proxy(config: ProxyConfig, topology: watch::Receiver<Arc<Topology>>) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = Proxy::new(config, topology);
    let metrics = proxy.metrics();
    tokio::spawn(async move {
        proxy
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        port,
        metrics,
        _stop: stop,
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
