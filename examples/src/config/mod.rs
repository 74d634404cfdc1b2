//! `pgha.toml`: the daemon's configuration file.
//!
//! Settings come in three layers: the libraries' defaults, then the file
//! ([`load`]), then command-line flags ([`crate::args`]). The file's shape
//! is in `file.rs`; `resolve.rs` maps it onto `ProxyConfig`,
//! `MonitorConfig`, `DefaultPolicy` and `SqlControllerConfig` (TLS through
//! `tls.rs`, shared with the flags); `show.rs` writes the effective
//! settings back as a file. Every mistake is reported
//! as `file:line:column: what is wrong`.

mod cluster;
mod error;
mod file;
mod local;
mod resolve;
mod show;
mod tls;
pub mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pgha_core::{DefaultPolicy, MonitorConfig, NodeState, Role, SqlControllerConfig, Topology};
use pgha_proxy::ProxyConfig;

pub use cluster::{Mover, VipSettings, WatchdogSettings};
pub use error::{ConfigError, Problem, Source};
pub use local::{LocalSettings, LocalStart};
pub use resolve::Env;
pub(crate) use tls::{server_tls, ServerTlsProblem};
pub use tls::{ServerTlsMode, TlsSettings};

/// Where clients connect when neither the file nor `--listen` says.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 6432);

/// Everything `pgha run` needs, resolved.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Address clients connect to.
    pub listen: SocketAddr,
    /// Address of the HTTP monitoring port, if any.
    pub http: Option<SocketAddr>,
    /// Directory of the proxy's Unix socket (`.s.PGSQL.<listen port>`), if
    /// any.
    pub unix_socket_dir: Option<PathBuf>,
    /// Threads of the daemon's runtime (1: one thread, like PgBouncer).
    pub threads: usize,
    /// The backends; the first is the primary until the state file or the
    /// probes say otherwise (see [`RunConfig::topology`]).
    pub nodes: Vec<NodeState>,
    /// Probe timing and the state file.
    pub monitor: MonitorConfig,
    /// When to fail over and whom to promote.
    pub policy: DefaultPolicy,
    /// pgha's own connections to the backends, and action deadlines.
    pub controller: SqlControllerConfig,
    /// The proxy, client authentication included.
    pub proxy: ProxyConfig,
    /// What `proxy.tls` and `proxy.server_tls` were built from.
    pub tls: TlsSettings,
    /// The hba file `proxy.client_auth` was read from.
    pub hba_file: Option<PathBuf>,
    /// The auth file `proxy.client_auth` was read from.
    pub auth_file: Option<PathBuf>,
    /// The configuration file, if one was read.
    pub source: Option<PathBuf>,
    /// The watchdog member this daemon runs, if it is one of several pgha
    /// nodes.
    pub watchdog: Option<WatchdogSettings>,
    /// The virtual IP it holds while it leads.
    pub vip: Option<VipSettings>,
    /// The PostgreSQL server on this host, kept in line by the local agent.
    pub local: Option<LocalSettings>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            listen: DEFAULT_LISTEN,
            http: None,
            unix_socket_dir: None,
            threads: 1,
            nodes: Vec::new(),
            monitor: MonitorConfig::default(),
            policy: DefaultPolicy::default(),
            controller: SqlControllerConfig::default(),
            proxy: ProxyConfig::default(),
            tls: TlsSettings::default(),
            hba_file: None,
            auth_file: None,
            source: None,
            watchdog: None,
            vip: None,
            local: None,
        }
    }
}

impl RunConfig {
    /// The nodes as a topology: the first is the primary, the others
    /// standbys.
    pub fn topology(&self) -> Topology {
        Topology::new(self.nodes.iter().enumerate().map(|(i, node)| {
            let mut node = node.clone();
            node.role = if i == 0 { Role::Primary } else { Role::Standby };
            node
        }))
    }

    /// One-line remarks about valid settings an operator should know
    /// (`check-config` prints them; `pgha run` logs them).
    pub fn remarks(&self) -> Vec<String> {
        cluster::remarks(self.watchdog.as_ref())
    }

    /// The effective settings as a `pgha.toml` (passwords left out).
    pub fn render(&self) -> String {
        show::render(self)
    }
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::in_file(path, format!("cannot read it: {e}")))?;
    let config = parse(&text, path, &|name| std::env::var(name).ok())?;
    tracing::info!(path = %path.display(), nodes = config.nodes.len(), "configuration read");
    Ok(config)
}

/// Checks configuration `text` as if read from `path` (which places error
/// messages and anchors relative paths); `*_env` keys are looked up in
/// `env`.
pub fn parse(text: &str, path: &Path, env: Env<'_>) -> Result<RunConfig, ConfigError> {
    let src = Source { path, text };
    let file = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    resolve::resolve(file, src, env)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests;
