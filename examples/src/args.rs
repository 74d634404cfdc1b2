//! `pgha run`'s and `pgha check-config`'s command line: an optional
//! configuration file, and flags that override what it says.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use pgha_core::{NodeState, Role};
use pgha_proxy::{Consistency, PoolMode, TlsConfig};

use crate::config::units::{ByteLimit, Dur, DurLimit};
pub use crate::config::ServerTlsMode;
use crate::config::{self, ConfigError, Problem, RunConfig, ServerTlsProblem};

/// Where the settings come from. Each flag given wins over the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// The configuration file (pgha.toml); see examples/pgha.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address clients connect to [default: the file's `listen`, else
    /// 127.0.0.1:6432].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A backend as NAME=HOST:PORT; repeat. Replaces the file's [[node]]s.
    /// The first is the primary until the state file or the probes say
    /// otherwise.
    #[arg(long = "node", value_name = "NAME=HOST:PORT")]
    pub nodes: Vec<String>,
    /// Where the term and primary are kept across restarts.
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// The proxy's flags.
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

/// The proxy's settings on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProxyArgs {
    /// When server connections go back to the pool: at the end of each
    /// session or of each transaction [default: session].
    #[arg(long, value_enum)]
    pub pool_mode: Option<Mode>,
    /// Read-your-writes with load balancing [default: pin]: `lsn` sends a
    /// client's reads only to standbys that replayed its last commit.
    #[arg(long, value_enum)]
    pub consistency: Option<ReadConsistency>,
    /// Most server connections per node, database and user [default: 20].
    #[arg(long)]
    pub pool_size: Option<usize>,
    /// Threads that run client and server connections [default: 1, like
    /// PgBouncer]; more spread the proxy over more cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Server connections each pool keeps open once a client has used it,
    /// at most --pool-size [default: 0].
    #[arg(long)]
    pub min_pool_size: Option<usize>,
    /// Most clients connected at once; more get `53300` [default: 10000].
    #[arg(long)]
    pub max_client_conn: Option<usize>,
    /// Send every read to the primary (no load balancing).
    #[arg(long)]
    pub no_load_balance: bool,
    /// Standbys with more WAL than this not yet replayed (bytes, or e.g.
    /// "16MB") get no reads, nor do standbys whose position is unknown; "none" for no
    /// limit [default: the file's max_standby_lag, else 1MB].
    #[arg(long, value_name = "BYTES")]
    pub max_standby_lag: Option<ByteLimit>,
    /// Standbys replaying later than this (e.g. "10s") get no reads, nor
    /// do standbys whose delay is unknown; "none" for no limit
    /// [default: the file's max_standby_lag_time, else 10s].
    #[arg(long, value_name = "DURATION")]
    pub max_standby_lag_time: Option<DurLimit>,
    /// Deadline for connecting and logging in to a standby for a read
    /// (e.g. "500ms"): past it the read goes to the primary and new reads
    /// avoid the standby until the monitor probes it healthy [default: the
    /// file's standby_connect_timeout, else 1s].
    #[arg(long, value_name = "DURATION")]
    pub standby_connect_timeout: Option<Dur>,
    /// How long a read on a standby may go without a word from it (e.g.
    /// "2s"; "0s": no limit): past it the read fails (08006) and new reads
    /// avoid the standby [default: the file's standby_read_timeout, else 1s].
    #[arg(long, value_name = "DURATION")]
    pub standby_read_timeout: Option<Dur>,
    /// A user allowed on the admin console (database `pgha`); repeat.
    /// Replaces the file's `admin_users`.
    #[arg(long = "admin-user")]
    pub admin_users: Vec<String>,
    /// Address of the HTTP port serving /metrics (Prometheus) and /status
    /// (JSON); none by default.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Also listen on a Unix socket in this directory, named like
    /// PostgreSQL's: DIR/.s.PGSQL.<listen port> (psql -h DIR -p PORT)
    /// [default: the file's [proxy] unix_socket_dir, else none].
    #[arg(long, value_name = "DIR")]
    pub unix_socket_dir: Option<PathBuf>,
    /// PEM certificate chain for TLS with clients (with --tls-key);
    /// replaces the file's [tls] cert_file and key_file.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse TCP clients that do not use TLS (Unix-socket clients are
    /// exempt); needs --tls-cert or the file's [tls] cert_file.
    #[arg(long)]
    pub tls_required: bool,
    /// TLS to the servers over TCP, as libpq's sslmode: disable, prefer
    /// (encrypt if the server agrees), require (encrypt, certificate not
    /// checked), verify-full (checked against --server-tls-ca and the
    /// node's host) [default: the file's [server_tls] mode, else disable].
    #[arg(long, value_enum)]
    pub server_tls: Option<ServerTlsMode>,
    /// PEM CA certificates the servers' certificates must chain to
    /// (verify-full) [default: the file's [server_tls] ca_file].
    #[arg(long, value_name = "FILE")]
    pub server_tls_ca: Option<PathBuf>,
    /// User the proxy logs in to servers as (default: the client's).
    #[arg(long)]
    pub server_user: Option<String>,
    /// Password for that user (or set PGHA_SERVER_PASSWORD).
    #[arg(long, env = "PGHA_SERVER_PASSWORD", hide_env_values = true)]
    pub server_password: Option<String>,
}

/// [`PoolMode`] for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A server connection per client session.
    Session,
    /// A server connection per transaction.
    Transaction,
}

/// [`Consistency`] for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadConsistency {
    /// After a write, read from the primary for the rest of the session.
    Pin,
    /// After a write, read from standbys that replayed it.
    Lsn,
    /// As lsn, across every session of the same user.
    LsnPerUser,
    /// As lsn, across every session of the same application_name.
    LsnPerApplication,
}

impl RunArgs {
    /// The settings: the file's (if any), then the flags; at least one node.
    pub fn resolve(&self) -> Result<RunConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => config::load(path)?,
            None => RunConfig::default(),
        };
        self.apply(&mut config)?;
        if config.nodes.is_empty() {
            let message = "no backend: add a [[node]] section or give --node NAME=HOST:PORT";
            return Err(match &self.config {
                Some(path) => Problem::in_file(path, message).into(),
                None => Problem::flag(message).into(),
            });
        }
        Ok(config)
    }

    /// Lays the flags that were given over `config`.
    pub fn apply(&self, config: &mut RunConfig) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !self.nodes.is_empty() {
            let mut names = HashSet::new();
            config.nodes.clear();
            for text in &self.nodes {
                match parse_node(text) {
                    Ok(node) if !names.insert(node.id.clone()) => problems.push(Problem::flag(
                        format!("--node {text:?}: node {} is given twice", node.id),
                    )),
                    Ok(node) => config.nodes.push(node),
                    Err(problem) => problems.push(problem),
                }
            }
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(path) = &self.state_file {
            config.monitor.state_file = Some(path.clone());
        }
        let args = &self.proxy;
        let proxy = &mut config.proxy;
        if let Some(mode) = args.pool_mode {
            proxy.pool_mode = match mode {
                Mode::Session => PoolMode::Session,
                Mode::Transaction => PoolMode::Transaction,
            };
        }
        if let Some(c) = args.consistency {
            proxy.consistency = match c {
                ReadConsistency::Pin => Consistency::Pin,
                ReadConsistency::Lsn => Consistency::Lsn,
                ReadConsistency::LsnPerUser => Consistency::LsnPerUser,
                ReadConsistency::LsnPerApplication => Consistency::LsnPerApplication,
            };
        }
        match args.max_client_conn {
            Some(0) => problems.push(Problem::flag("--max-client-conn must be at least 1")),
            Some(max) => proxy.max_client_conn = max,
            None => {}
        }
        match args.pool_size {
            Some(0) => problems.push(Problem::flag("--pool-size must be at least 1")),
            Some(size) => proxy.pool_size = size,
            None => {}
        }
        match args.threads {
            Some(0) => problems.push(Problem::flag("--threads must be at least 1")),
            Some(n) => config.threads = n,
            None => {}
        }
        if let Some(min) = args.min_pool_size {
            proxy.min_pool_size = min;
        }
        if args.no_load_balance {
            proxy.load_balance = false;
        }
        if let Some(limit) = args.max_standby_lag {
            proxy.max_standby_lag_bytes = limit.0;
        }
        if let Some(limit) = args.max_standby_lag_time {
            proxy.max_standby_lag_time = limit.0;
        }
        if let Some(timeout) = args.standby_connect_timeout {
            proxy.standby_connect_timeout = timeout.0;
        }
        if let Some(timeout) = args.standby_read_timeout {
            proxy.standby_read_timeout = timeout.0;
        }
        if !args.admin_users.is_empty() {
            proxy.admin_users = args.admin_users.clone();
        }
        if args.http.is_some() {
            config.http = args.http;
        }
        if args.server_user.is_some() {
            proxy.server_auth.user = args.server_user.clone();
        }
        if args.unix_socket_dir.is_some() {
            config.unix_socket_dir = args.unix_socket_dir.clone();
        }
        args.apply_tls(config, &mut problems);
        let proxy = &mut config.proxy;
        if args.server_password.is_some() {
            proxy.server_auth.password = args.server_password.clone();
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

impl ProxyArgs {
    /// The TLS flags over the file's `[tls]` and `[server_tls]`: each flag
    /// given replaces its key, and what it changes is built again.
    fn apply_tls(&self, config: &mut RunConfig, problems: &mut Vec<Problem>) {
        let proxy = &mut config.proxy;
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            match TlsConfig::from_pem_files(cert, key) {
                Ok(tls) => {
                    proxy.tls = Some(tls);
                    config.tls.cert_file = Some(cert.clone());
                    config.tls.key_file = Some(key.clone());
                }
                Err(e) => problems.push(Problem::flag(format!("--tls-cert/--tls-key: {e}"))),
            }
        }
        if self.tls_required {
            if proxy.tls.is_none() {
                problems.push(Problem::flag(
                    "--tls-required needs a certificate: --tls-cert and --tls-key, or [tls] cert_file and key_file",
                ));
            }
            proxy.tls_required = true;
        }
        if self.server_tls.is_none() && self.server_tls_ca.is_none() {
            return;
        }
        let mode = self.server_tls.unwrap_or(config.tls.server_mode);
        // The file's CA goes only with verify-full, the file's or a flag's:
        // `--server-tls require` over a verify-full file just drops it.
        let ca = match &self.server_tls_ca {
            Some(ca) => Some(ca.clone()),
            None if mode == ServerTlsMode::VerifyFull => config.tls.server_ca_file.clone(),
            None => None,
        };
        match config::server_tls(mode, ca.as_deref()) {
            Ok(tls) => {
                proxy.server_tls = tls;
                config.tls.server_mode = mode;
                config.tls.server_ca_file = ca;
            }
            Err(ServerTlsProblem::NoCa) => problems.push(Problem::flag(
                "--server-tls verify-full needs --server-tls-ca (or [server_tls] ca_file)",
            )),
            Err(ServerTlsProblem::CaWithoutVerify) => problems.push(Problem::flag(
                "--server-tls-ca goes with --server-tls verify-full (or [server_tls] mode = \"verify-full\")",
            )),
            Err(ServerTlsProblem::Tls(e)) => {
                problems.push(Problem::flag(format!("--server-tls: {e}")))
            }
        }
    }
}

/// `NAME=HOST:PORT` as given on the command line.
pub fn parse_node(text: &str) -> Result<NodeState, Problem> {
    let bad = |what: &str| Problem::flag(format!("--node {text:?}: {what}"));
    let (name, address) = text
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=HOST:PORT"))?;
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| bad("expected NAME=HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(&format!("port {port:?} is not a number from 1 to 65535")))?;
    if name.is_empty() || host.is_empty() {
        return Err(bad("name and host must not be empty"));
    }
    if port == 0 {
        return Err(bad("port must not be 0"));
    }
    // Roles are assigned when the topology is built (first = primary).
    Ok(NodeState::new(name, Role::Standby, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_arguments_are_checked() {
        let node = parse_node("db1=10.0.0.1:5432").map(|n| (n.id.to_string(), n.host, n.port));
        assert_eq!(node.ok(), Some(("db1".into(), "10.0.0.1".into(), 5432)));
        for bad in [
            "db1",
            "db1=host",
            "db1=host:x",
            "=host:1",
            "db1=host:0",
            "db1=:5432",
        ] {
            assert!(parse_node(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
