//! The shape of `pgha.toml` as serde reads (and `check-config` writes) it.
//!
//! Every key is optional except a node's `name` and `host`: a key left out
//! keeps the library's default, so defaults live in one place
//! (`ProxyConfig`, `MonitorConfig`, `DefaultPolicy`, `ConnectConfig`, …).
//! Unknown keys are errors, so a typo never silently keeps a default.
//! Values whose later checks need a place to point at are `Spanned`.

use std::net::SocketAddr;
use std::path::PathBuf;

use pgha_proxy::{Consistency, PoolMode};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::cluster::{VipSection, WatchdogSection};
use super::local::LocalSection;
use super::tls::ServerTlsMode;
use super::units::{ByteLimit, Dur, DurLimit};

/// A whole `pgha.toml`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `[proxy]`: what clients see.
    pub proxy: ProxySection,
    /// `[tls]`: TLS with clients.
    pub tls: TlsSection,
    /// `[server]`: how the proxy logs in to the backends.
    pub server: ServerSection,
    /// `[server_tls]`: TLS to the backends.
    pub server_tls: ServerTlsSection,
    /// `[auth]`: how clients log in to the proxy.
    pub auth: AuthSection,
    /// `[monitor]`: probes and the failover policy.
    pub monitor: MonitorSection,
    /// `[[node]]`: the backends, the first being the primary until the
    /// state file or the probes say otherwise.
    #[serde(rename = "node", skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeSection>,
    /// `[watchdog]`: the pgha nodes that agree through Raft.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<WatchdogSection>,
    /// `[vip]`: the address the leader holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip: Option<VipSection>,
    /// `[local]`: the PostgreSQL server on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSection>,
}

/// `[proxy]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySection {
    /// Address clients connect to (pgpool's listen_addresses + port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Address of the HTTP port with /metrics and /status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
    /// Also listen on a Unix socket in this directory, named like
    /// PostgreSQL's: `<dir>/.s.PGSQL.<listen port>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unix_socket_dir: Option<PathBuf>,
    /// Threads that run client and server connections: 1 (the default)
    /// like PgBouncer; more to spread the proxy over more cores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<Spanned<usize>>,
    /// `session` or `transaction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_mode: Option<PoolMode>,
    /// Read-your-writes with load balancing: `pin`, `lsn`,
    /// `lsn_per_user` or `lsn_per_application`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
    /// Most server connections per node, database and user (pgpool opens
    /// up to num_init_children × max_pool in all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<Spanned<usize>>,
    /// Server connections each pool keeps open once a client has used it
    /// (PgBouncer's min_pool_size; at most pool_size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_pool_size: Option<usize>,
    /// How long a client waits for a connection from a full pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_timeout: Option<Dur>,
    /// Most clients connected at once (pgpool's num_init_children).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_client_conn: Option<Spanned<usize>>,
    /// Send lone reads to standbys (pgpool's load_balance_mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balance: Option<bool>,
    /// Standbys with more WAL not yet replayed get no reads (pgpool's
    /// delay_threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_standby_lag: Option<ByteLimit>,
    /// Standbys replaying later than this get no reads (pgpool's
    /// delay_threshold_by_time); `"10s"` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_standby_lag_time: Option<DurLimit>,
    /// How long clients are held while there is no primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_primary_wait: Option<Dur>,
    /// How long SIGTERM lets running transactions finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<Dur>,
    /// Idle server connections are closed after this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_idle_timeout: Option<Dur>,
    /// Server connections are closed at their first release after this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_lifetime: Option<Dur>,
    /// Run before a session-mode server connection changes hands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_reset_query: Option<String>,
    /// Deadline for connecting and logging in to a server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Deadline for connecting and logging in to a standby for a read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_connect_timeout: Option<Dur>,
    /// How long a read on a standby may go without a word from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_read_timeout: Option<Dur>,
    /// The most proxy statements one shared server connection keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prepared_statements: Option<usize>,
    /// A client must finish its startup within this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_timeout: Option<Dur>,
    /// Users allowed on the admin console (database `pgha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_users: Option<Vec<String>>,
}

/// `[tls]`: PEM files, relative to the configuration file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// The certificate chain shown to clients (the proxy's first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<Spanned<PathBuf>>,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<Spanned<PathBuf>>,
    /// Refuse TCP clients that do not use TLS (Unix-socket clients are
    /// exempt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<Spanned<bool>>,
}

/// `[server_tls]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTlsSection {
    /// libpq's sslmode: `disable`, `prefer`, `require` or `verify-full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Spanned<ServerTlsMode>>,
    /// PEM CA certificates the servers' must chain to (verify-full).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<Spanned<PathBuf>>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// User the proxy logs in as (default: the client's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Its password, written in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Spanned<String>>,
    /// The environment variable holding its password instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<Spanned<String>>,
}

/// `[auth]`: both files in the formats `pgha_proxy::auth` reads;
/// relative paths are relative to the configuration file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// pg_hba.conf-style rules (pgpool's pool_hba.conf).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hba_file: Option<Spanned<PathBuf>>,
    /// Users and secrets, PgBouncer userlist style (pgpool's pool_passwd
    /// holds the same secrets in another layout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<Spanned<PathBuf>>,
    /// Looks up users missing from the auth file on the primary: a query
    /// with the user name as `$1` returning its stored secret (PgBouncer's
    /// auth_query), e.g. `SELECT rolpassword FROM pg_authid WHERE rolname = $1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_query: Option<String>,
}

/// `[monitor]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSection {
    /// Time between probe rounds (pgpool's health_check_period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_interval: Option<Spanned<Dur>>,
    /// Deadline for one probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_timeout: Option<Spanned<Dur>>,
    /// Consecutive failed probes before a node counts as down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures_before_down: Option<Spanned<u32>>,
    /// The failed probes must span at least this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_down_time: Option<Dur>,
    /// Never promote a standby further behind than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_lag: Option<ByteLimit>,
    /// Rewind and re-attach a failed primary by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_rejoin: Option<bool>,
    /// Where the term and primary are kept across restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<Spanned<PathBuf>>,
    /// How long a switchover waits for its target to catch up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catch_up_timeout: Option<Dur>,
    /// Deadline of one promotion or re-point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_timeout: Option<Dur>,
    /// User of pgha's own connections (pgpool's health_check_user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Spanned<String>>,
    /// The environment variable holding its password instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<Spanned<String>>,
    /// Database of pgha's own connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    /// User standbys replicate as, in `primary_conninfo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_user: Option<String>,
    /// Its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_password: Option<Spanned<String>>,
    /// The environment variable holding its password instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_password_env: Option<Spanned<String>>,
}

/// One `[[node]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Its name, unique (in logs, metrics, the state file).
    pub name: Spanned<String>,
    /// Host name or address (pgpool's backend_hostnameN).
    pub host: Spanned<String>,
    /// Port (default 5432).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Spanned<u16>>,
    /// Share of load-balanced reads; 0 takes none (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Promotion preference; 0 is never promoted (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}
