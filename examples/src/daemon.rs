//! `pgha run`: the daemon — a cluster monitor and the proxy in front of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use pgha_core::{
    ClusterMonitor, MonitorConfig, MonitorHandle, NodeState, Role, SqlNodeController, Topology,
};
use pgha_proxy::{
    Listener, PauseGate, PoolMode, Proxy, ProxyConfig, ServerAuth, ServerTls, TlsConfig,
};
use tokio::net::TcpListener;

/// The proxy's settings on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// When server connections go back to the pool: at the end of each
    /// session or of each transaction.
    #[arg(long, value_enum, default_value_t = Mode::Session)]
    pub pool_mode: Mode,
    /// Most server connections per node, database and user.
    #[arg(long, default_value_t = 20)]
    pub pool_size: usize,
    /// Send every read to the primary (no load balancing).
    #[arg(long)]
    pub no_load_balance: bool,
    /// A user allowed on the admin console (database `pgha`); repeat.
    #[arg(long = "admin-user")]
    pub admin_users: Vec<String>,
    /// Address of the HTTP port serving /metrics (Prometheus) and /status
    /// (JSON); none by default.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// User the proxy logs in to servers as (default: the client's).
    #[arg(long)]
    pub server_user: Option<String>,
    /// Password for that user (or set PGHA_SERVER_PASSWORD).
    #[arg(long, env = "PGHA_SERVER_PASSWORD", hide_env_values = true)]
    pub server_password: Option<String>,
    /// Also listen on a Unix socket in this directory, named like
    /// PostgreSQL's: DIR/.s.PGSQL.<listen port> (psql -h DIR -p PORT).
    #[arg(long, value_name = "DIR")]
    pub unix_socket_dir: Option<PathBuf>,
    /// PEM certificate chain for TLS with clients (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse TCP clients that do not use TLS (Unix-socket clients are
    /// exempt).
    #[arg(long, requires = "tls_cert")]
    pub tls_required: bool,
    /// TLS to the servers over TCP, as libpq's sslmode: disable, prefer
    /// (encrypt if the server agrees), require (encrypt, certificate not
    /// checked), verify-full (checked against --server-tls-ca and the
    /// node's host).
    #[arg(long, value_enum, default_value_t = ServerTlsMode::Disable)]
    pub server_tls: ServerTlsMode,
    /// PEM CA certificates the servers' certificates must chain to
    /// (--server-tls verify-full).
    #[arg(long, value_name = "FILE")]
    pub server_tls_ca: Option<PathBuf>,
}

/// `--server-tls`: libpq's sslmode names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerTlsMode {
    /// Plain connections.
    Disable,
    /// TLS when the server offers it.
    Prefer,
    /// TLS or no connection; any certificate.
    Require,
    /// TLS with a certificate from --server-tls-ca naming the host.
    VerifyFull,
}

/// [`PoolMode`] for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A server connection per client session.
    Session,
    /// A server connection per transaction.
    Transaction,
}

impl Default for ProxyArgs {
    fn default() -> Self {
        Self {
            pool_mode: Mode::Session,
            pool_size: 20,
            no_load_balance: false,
            admin_users: Vec::new(),
            http: None,
            server_user: None,
            server_password: None,
            unix_socket_dir: None,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
            server_tls: ServerTlsMode::Disable,
            server_tls_ca: None,
        }
    }
}

impl ProxyArgs {
    /// The proxy configuration these arguments describe; fails on TLS
    /// files that cannot be used.
    pub fn config(&self) -> anyhow::Result<ProxyConfig> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig::from_pem_files(cert, key)?),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        if self.tls_required && tls.is_none() {
            bail!("--tls-required needs --tls-cert and --tls-key");
        }
        let server_tls = match (self.server_tls, &self.server_tls_ca) {
            (ServerTlsMode::VerifyFull, Some(ca)) => Some(ServerTls::verify_full(ca)?),
            (ServerTlsMode::VerifyFull, None) => {
                bail!("--server-tls verify-full needs --server-tls-ca")
            }
            (_, Some(_)) => bail!("--server-tls-ca goes with --server-tls verify-full"),
            (ServerTlsMode::Disable, None) => None,
            (ServerTlsMode::Prefer, None) => Some(ServerTls::encrypt_only(false)?),
            (ServerTlsMode::Require, None) => Some(ServerTls::encrypt_only(true)?),
        };
        Ok(ProxyConfig {
            server_auth: ServerAuth {
                user: self.server_user.clone(),
                password: self.server_password.clone(),
            },
            pool_mode: match self.pool_mode {
                Mode::Session => PoolMode::Session,
                Mode::Transaction => PoolMode::Transaction,
            },
            pool_size: self.pool_size,
            load_balance: !self.no_load_balance,
            admin_users: self.admin_users.clone(),
            tls,
            tls_required: self.tls_required,
            server_tls,
            ..ProxyConfig::default()
        })
    }
}

/// `NAME=HOST:PORT` as given on the command line; a HOST starting with
/// `/` is the directory of the server's Unix socket.
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
    proxy: &ProxyArgs,
) -> anyhow::Result<(MonitorHandle, SocketAddr)> {
    let config = MonitorConfig {
        state_file,
        ..MonitorConfig::default()
    };
    // Planned switchovers hold new transactions in the proxy.
    let gate = PauseGate::new(std::time::Duration::from_secs(30));
    let (monitor, handle) = ClusterMonitor::builder(topology)
        .controller(Arc::new(SqlNodeController::default()))
        .switchover_hook(gate.clone())
        .config(config)
        .build()?;
    tokio::spawn(monitor.run(std::future::pending()));
    serve_proxy(listen, &handle, proxy, gate)
        .await
        .map(|addr| (handle, addr))
}

/// Starts a proxy following `handle`'s topology, reporting broken server
/// connections back to the monitor.
pub async fn serve_proxy(
    listen: SocketAddr,
    handle: &MonitorHandle,
    args: &ProxyArgs,
    gate: Arc<PauseGate>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let mut listeners = vec![Listener::from(listener)];
    if let Some(dir) = &args.unix_socket_dir {
        let unix = pgha_proxy::bind_unix(dir, addr.port())
            .await
            .with_context(|| format!("listening in {} (--unix-socket-dir)", dir.display()))?;
        listeners.push(unix.into());
    }
    let hints = handle.clone();
    let proxy = Proxy::with_hint(args.config()?, handle.topology(), move |node, sqlstate| {
        hints.hint(node, sqlstate)
    })
    .with_pause_gate(gate);
    if let Some(http) = args.http {
        let http_listener = TcpListener::bind(http)
            .await
            .with_context(|| format!("listening on {http} (--http)"))?;
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
        assert_eq!(
            parse_node("db1=/run/postgresql:5432").ok(),
            Some(("db1".into(), "/run/postgresql".into(), 5432))
        );
    }

    #[test]
    fn tls_arguments_are_checked() {
        let args = |cert: Option<&str>, key: Option<&str>, required| ProxyArgs {
            tls_cert: cert.map(PathBuf::from),
            tls_key: key.map(PathBuf::from),
            tls_required: required,
            ..ProxyArgs::default()
        };
        assert!(args(None, None, false).config().is_ok());
        assert!(args(None, None, true).config().is_err());
        assert!(args(Some("/nonexistent.crt"), None, false)
            .config()
            .is_err());
        let err = args(Some("/nonexistent.crt"), Some("/nonexistent.key"), false)
            .config()
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("/nonexistent.crt")));
    }

    #[test]
    fn server_tls_arguments_are_checked() {
        let args = |mode, ca: Option<&str>| ProxyArgs {
            server_tls: mode,
            server_tls_ca: ca.map(PathBuf::from),
            ..ProxyArgs::default()
        };
        let config = |mode, ca| args(mode, ca).config().map(|c| c.server_tls);
        assert!(config(ServerTlsMode::Disable, None).is_ok_and(|t| t.is_none()));
        assert!(config(ServerTlsMode::Prefer, None).is_ok_and(|t| t.is_some_and(|t| !t.required())));
        assert!(config(ServerTlsMode::Require, None).is_ok_and(|t| t.is_some_and(|t| t.required())));
        assert!(config(ServerTlsMode::VerifyFull, None).is_err());
        assert!(config(ServerTlsMode::Require, Some("/ca.crt")).is_err());
        assert!(config(ServerTlsMode::VerifyFull, Some("/nonexistent.crt")).is_err());
    }
}
