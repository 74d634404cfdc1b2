//! `pgha run`: the daemon — a cluster monitor and the proxy in front of it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use pgha_core::{ClusterMonitor, MonitorHandle, SqlNodeController, SqlProbe};
use pgha_proxy::{Listener, PauseGate, Proxy, ProxyConfig};
use tokio::net::TcpListener;

use crate::config::RunConfig;

/// Starts the monitor and the proxy as `config` says; returns the
/// monitor's handle and the proxy's address. Both run until the process
/// ends.
pub async fn start(config: &RunConfig) -> anyhow::Result<(MonitorHandle, SocketAddr)> {
    // Planned switchovers hold new transactions in the proxy.
    let gate = PauseGate::new(std::time::Duration::from_secs(30));
    let probe = SqlProbe::new(config.controller.connect.clone());
    let (monitor, handle) = ClusterMonitor::builder(config.topology())
        .probe(Arc::new(probe))
        .controller(Arc::new(SqlNodeController::new(config.controller.clone())))
        .policy(config.policy.clone())
        .switchover_hook(gate.clone())
        .config(config.monitor.clone())
        .build()?;
    tokio::spawn(monitor.run(std::future::pending()));
    serve_proxy(
        config.listen,
        &handle,
        config.proxy.clone(),
        Extras {
            http: config.http,
            unix_socket_dir: config.unix_socket_dir.clone(),
        },
        gate,
    )
    .await
    .map(|addr| (handle, addr))
}

/// Starts a proxy following `handle`'s topology, reporting broken server
/// connections back to the monitor, and the HTTP monitoring port when
/// `http` is given.
pub async fn serve_proxy(
    listen: SocketAddr,
    handle: &MonitorHandle,
    config: ProxyConfig,
    extras: Extras,
    gate: Arc<PauseGate>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let mut listeners = vec![Listener::from(listener)];
    if let Some(dir) = &extras.unix_socket_dir {
        let unix = pgha_proxy::bind_unix(dir, addr.port())
            .await
            .with_context(|| format!("listening in {} (unix_socket_dir)", dir.display()))?;
        listeners.push(unix.into());
    }
    let http = extras.http;
    let hints = handle.clone();
    let proxy = Proxy::with_hint(config, handle.topology(), move |node, sqlstate| {
        hints.hint(node, sqlstate)
    })
    .with_pause_gate(gate);
    if let Some(http) = http {
        let http_listener = TcpListener::bind(http)
            .await
            .with_context(|| format!("listening on {http} (http)"))?;
        let topology = handle.topology();
        let status = move || pgha_proxy::http::topology_json(&topology.borrow());
        tokio::spawn(pgha_proxy::http::serve_http(
            http_listener,
            proxy.metrics(),
            status,
            std::future::pending(),
        ));
    }
    tokio::spawn(async move {
        proxy
            .serve_listeners(listeners, std::future::pending())
            .await
    });
    Ok(addr)
}

/// Listeners beside the proxy's TCP address.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The HTTP monitoring port (/metrics, /status).
    pub http: Option<SocketAddr>,
    /// A directory for the proxy's Unix socket.
    pub unix_socket_dir: Option<std::path::PathBuf>,
}
