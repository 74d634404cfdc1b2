//! `pgha run`: the daemon — a cluster monitor and the proxy in front of it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use pgha_core::{ClusterMonitor, MonitorHandle, SqlNodeController, SqlProbe};
use pgha_proxy::{Listener, PauseGate, Proxy, ProxyConfig, ProxyHandle};
use tokio::net::TcpListener;

use crate::config::RunConfig;

/// What makes this pgha one of a group, given up when it stops: the VIP
/// (released at once, not left to its kernel lifetime), then the watchdog
/// member (its lease ends, another member can lead).
#[derive(Debug, Clone, Default)]
pub struct Group {
    parts: Arc<tokio::sync::Mutex<GroupParts>>,
}

#[derive(Debug, Default)]
struct GroupParts {
    watchdog: Option<crate::cluster::Watchdog>,
    vip: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Group {
    /// Gives up the VIP and the lease (once; later calls do nothing).
    pub async fn stop(&self) {
        let mut parts = self.parts.lock().await;
        if let Some((stop, keeper)) = parts.vip.take() {
            let _ = stop.send(());
            let _ = keeper.await;
            tracing::warn!("stopping: the VIP is released");
        }
        if let Some(watchdog) = parts.watchdog.take() {
            // Joins the member's thread: off the runtime's worker.
            let _ = tokio::task::spawn_blocking(move || watchdog.stop()).await;
            tracing::warn!("stopping: the watchdog member has stopped (its lease is given up)");
        }
    }
}

/// A started daemon: what [`crate::lifecycle`] stops and reloads.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// The cluster monitor.
    pub monitor: MonitorHandle,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The proxy serving them.
    pub proxy: ProxyHandle,
    /// The watchdog member and the VIP, when this is one of several pgha
    /// nodes.
    pub group: Group,
}

/// The proxy [`serve_proxy`] started.
#[derive(Debug, Clone)]
pub struct Served {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The proxy serving them.
    pub proxy: ProxyHandle,
    /// Its metrics (`/metrics`).
    pub metrics: Arc<pgha_proxy::ProxyMetrics>,
}

/// Starts the monitor and the proxy as `config` says — and, with
/// `[watchdog]`, the member that makes this pgha one of a group (it acts
/// only while it leads, records each promotion in the replicated record
/// before carrying it out, and adopts the leader's decisions), with
/// `[vip]` the keeper of the address, with `[local]` the local agent of
/// this host's PostgreSQL. They run until the process ends or the proxy
/// is drained ([`Group::stop`] then gives up the VIP and the lease).
pub async fn start(config: &RunConfig) -> anyhow::Result<Daemon> {
    for remark in config.remarks() {
        tracing::warn!("{remark}");
    }
    // Planned switchovers hold new transactions in the proxy.
    let gate = PauseGate::new(std::time::Duration::from_secs(30));
    let mut probe: Arc<dyn pgha_core::HealthProbe> =
        Arc::new(SqlProbe::new(config.controller.connect.clone()));
    let watchdog = match &config.watchdog {
        Some(settings) if settings.witnesses.contains(&settings.id) => anyhow::bail!(
            "[watchdog] member {} is a witness: run it with `pgha witness`, not `pgha run`",
            settings.id
        ),
        Some(settings) => {
            let window = crate::witness::contact_window(&config.monitor);
            let w = crate::cluster::Watchdog::start(settings, probe.clone(), window).await?;
            probe = w.probe.clone();
            Some(w)
        }
        None => None,
    };
    let mut builder = ClusterMonitor::builder(config.topology())
        .probe(probe)
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
    let mut vip_status = None;
    let vip = match (&config.vip, &watchdog) {
        (Some(vip), Some(w)) => {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let (keeper, status) = crate::cluster::start_vip(vip, w.lease.clone(), async {
                let _ = stopped.await;
            })?;
            vip_status = Some(status);
            Some((stop, keeper))
        }
        _ => None,
    };
    let served = serve_proxy(
        config.listen,
        &handle,
        config.proxy.clone(),
        Extras {
            http: config.http,
            unix_socket_dir: config.unix_socket_dir.clone(),
            control: watchdog
                .as_ref()
                .map(|w| w.control(handle.clone(), vip_status.clone())),
        },
        gate,
    )
    .await?;
    if let (Some(status), Some(vip)) = (vip_status, &config.vip) {
        tokio::spawn(crate::cluster::vip_metrics(
            status,
            vip.address.to_string(),
            served.metrics.clone(),
        ));
    }
    Ok(Daemon {
        monitor: handle,
        addr: served.addr,
        proxy: served.proxy,
        group: Group {
            parts: Arc::new(tokio::sync::Mutex::new(GroupParts { watchdog, vip })),
        },
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
) -> anyhow::Result<Served> {
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
    .with_pause_gate(gate)
    .with_control(
        extras
            .control
            .clone()
            .unwrap_or_else(|| Arc::new(handle.clone())),
    );
    let proxy_handle = proxy.handle();
    let metrics = proxy.metrics();
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
    Ok(Served {
        addr,
        proxy: proxy_handle,
        metrics,
    })
}

/// Listeners beside the proxy's TCP address.
#[derive(Clone, Default)]
pub struct Extras {
    /// The HTTP monitoring port (/metrics, /status).
    pub http: Option<SocketAddr>,
    /// A directory for the proxy's Unix socket.
    pub unix_socket_dir: Option<std::path::PathBuf>,
    /// What the console's acting commands reach (default: the monitor).
    pub control: Option<Arc<dyn pgha_proxy::ClusterControl>>,
}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extras")
            .field("http", &self.http)
            .field("unix_socket_dir", &self.unix_socket_dir)
            .field("control", &self.control.is_some())
            .finish()
    }
}
