//! `pgha run`: the daemon — a cluster monitor and the proxy in front of it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use pgha_core::{ClusterMonitor, MonitorHandle, SqlNodeController, SqlProbe};
use pgha_proxy::{Listener, PauseGate, Proxy, ProxyConfig};
use tokio::net::TcpListener;

use crate::config::RunConfig;

/// What `pgha run` started; dropping it stops the watchdog member (the
/// proxy and monitor run until the process ends).
#[derive(Debug)]
pub struct Running {
    /// The monitor's handle.
    pub handle: MonitorHandle,
    /// The proxy's address.
    pub addr: SocketAddr,
    /// The watchdog member, when this is one of several pgha nodes.
    pub watchdog: Option<crate::cluster::Watchdog>,
    vip: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Running {
    /// Gives up what this node holds for the group: the VIP first
    /// (released at once, not left to its kernel lifetime), then the
    /// watchdog member (its lease ends, another member can lead).
    pub async fn stop(mut self) {
        if let Some((stop, keeper)) = self.vip.take() {
            let _ = stop.send(());
            let _ = keeper.await;
        }
        if let Some(watchdog) = self.watchdog.take() {
            // Joins the member's thread: off the runtime's worker.
            let _ = tokio::task::spawn_blocking(move || watchdog.stop()).await;
        }
    }
}

/// Starts the monitor and the proxy as `config` says — and, with
/// `[watchdog]`, the member that makes this pgha one of a group (it acts
/// only while it leads, records each promotion in the replicated record
/// before carrying it out, and adopts the leader's decisions), and with
/// `[vip]` the keeper of the address. Both run until the process ends.
pub async fn start(config: &RunConfig) -> anyhow::Result<Running> {
    for remark in config.remarks() {
        tracing::warn!("{remark}");
    }
    // Planned switchovers hold new transactions in the proxy.
    let gate = PauseGate::new(std::time::Duration::from_secs(30));
    let probe = SqlProbe::new(config.controller.connect.clone());
    let watchdog = match &config.watchdog {
        Some(settings) => Some(crate::cluster::Watchdog::start(settings).await?),
        None => None,
    };
    let mut builder = ClusterMonitor::builder(config.topology())
        .probe(Arc::new(probe))
        .controller(Arc::new(SqlNodeController::new(config.controller.clone())))
        .policy(config.policy.clone())
        .switchover_hook(gate.clone())
        .config(config.monitor.clone());
    if let Some(w) = &watchdog {
        if config.monitor.state_file.is_some() {
            tracing::warn!("[monitor] state_file is not used with [watchdog]: the replicated record holds the term");
        }
        builder = builder
            .coordinator(w.coordinator.clone())
            .ledger(w.ledger.clone());
    }
    let (monitor, handle) = builder.build()?;
    tokio::spawn(monitor.run(std::future::pending()));
    if let Some(local) = &config.local {
        tokio::spawn(pgha_core::run_agent(
            local.node.clone(),
            handle.topology(),
            crate::cluster::local_controller(local, &config.controller),
            local.agent.clone(),
            std::future::pending(),
        ));
        tracing::info!(node = %local.node, data_dir = %local.data_dir.display(), "local agent running");
    }
    let vip = match (&config.vip, &watchdog) {
        (Some(vip), Some(w)) => {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let keeper = crate::cluster::start_vip(vip, w.lease.clone(), async {
                let _ = stopped.await;
            })?;
            Some((stop, keeper))
        }
        _ => None,
    };
    let addr = serve_proxy(
        config.listen,
        &handle,
        config.proxy.clone(),
        Extras {
            http: config.http,
            unix_socket_dir: config.unix_socket_dir.clone(),
        },
        gate,
    )
    .await?;
    Ok(Running {
        handle,
        addr,
        watchdog,
        vip,
    })
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
