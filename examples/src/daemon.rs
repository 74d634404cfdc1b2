//! `pgha run`: the daemon — a cluster monitor and the proxy in front of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use pgha_core::{
    ClusterMonitor, MonitorConfig, MonitorHandle, NodeState, Role, SqlNodeController, Topology,
};
use pgha_proxy::{Proxy, ProxyConfig, ServerAuth};
use tokio::net::TcpListener;

/// `NAME=HOST:PORT` as given on the command line.
pub fn parse_node(text: &str) -> anyhow::Result<(String, String, u16)> {
    let (name, address) = text
        .split_once('=')
        .with_context(|| format!("--node {text:?}: expected NAME=HOST:PORT"))?;
    let (host, port) = address
        .rsplit_once(':')
        .with_context(|| format!("--node {text:?}: expected NAME=HOST:PORT"))?;
    let port = port
        .parse()
        .with_context(|| format!("--node {text:?}: port {port:?} is not a number"))?;
    if name.is_empty() || host.is_empty() {
        bail!("--node {text:?}: name and host must not be empty");
    }
    Ok((name.to_string(), host.to_string(), port))
}

/// The nodes as configured: the first is the primary until the state
/// file or the probes say otherwise.
pub fn topology(nodes: &[(String, String, u16)]) -> Topology {
    Topology::new(nodes.iter().enumerate().map(|(i, (name, host, port))| {
        let role = if i == 0 { Role::Primary } else { Role::Standby };
        NodeState::new(name.as_str(), role, host.as_str(), *port)
    }))
}

/// Starts the monitor and the proxy; returns the monitor's handle and the
/// proxy's address. Both run until the process ends.
pub async fn start(
    listen: SocketAddr,
    topology: Topology,
    state_file: Option<PathBuf>,
    server_auth: ServerAuth,
) -> anyhow::Result<(MonitorHandle, SocketAddr)> {
    let config = MonitorConfig {
        state_file,
        ..MonitorConfig::default()
    };
    let (monitor, handle) = ClusterMonitor::builder(topology)
        .controller(Arc::new(SqlNodeController::default()))
        .config(config)
        .build()?;
    tokio::spawn(monitor.run(std::future::pending()));
    serve_proxy(listen, &handle, server_auth)
        .await
        .map(|addr| (handle, addr))
}

/// Starts a proxy following `handle`'s topology, reporting broken server
/// connections back to the monitor.
pub async fn serve_proxy(
    listen: SocketAddr,
    handle: &MonitorHandle,
    server_auth: ServerAuth,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let hints = handle.clone();
    let config = ProxyConfig {
        server_auth,
        ..ProxyConfig::default()
    };
    let proxy = Proxy::with_hint(config, handle.topology(), move |node, sqlstate| {
        hints.hint(node, sqlstate)
    });
    tokio::spawn(async move { proxy.serve(listener, std::future::pending()).await });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_arguments_are_checked() {
        assert_eq!(
            parse_node("db1=10.0.0.1:5432").ok(),
            Some(("db1".into(), "10.0.0.1".into(), 5432))
        );
        assert!(parse_node("db1").is_err());
        assert!(parse_node("db1=host").is_err());
        assert!(parse_node("db1=host:x").is_err());
        assert!(parse_node("=host:1").is_err());
    }
}
