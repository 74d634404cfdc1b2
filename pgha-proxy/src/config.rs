//! The proxy's settings.

use std::time::Duration;

use crate::server::ServerAuth;

/// When a client's server connection goes back to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// At the end of the client's session (after `server_reset_query`):
    /// every PostgreSQL feature works, one server connection per client.
    #[default]
    Session,
    /// At the end of each transaction: many clients share few server
    /// connections. Session state other than the reported parameters and
    /// protocol-level prepared statements (both carried over by pgha) does
    /// not survive a transaction: `SET` of other settings, `LISTEN`,
    /// SQL-level `PREPARE`, advisory locks, `WITH HOLD` cursors, temp tables.
    Transaction,
}

/// How a client reads its own writes when reads are balanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// After its first write (or session-state statement) a client reads
    /// only from the primary, for the rest of its session. Costs nothing.
    #[default]
    Pin,
    /// After a write transaction commits, the proxy asks the primary for
    /// its WAL position on the same connection (one hidden query, after
    /// the client already has its answer) and sends the client's reads only
    /// to standbys that have replayed that far, else to the primary.
    Lsn,
    /// As [`Consistency::Lsn`], and every session of the same user sees
    /// the position: a write through one connection is read through another.
    LsnPerUser,
    /// As [`Consistency::LsnPerUser`], keyed by `application_name`.
    LsnPerApplication,
}

impl Consistency {
    /// Whether write positions are tracked.
    pub fn tracks_lsn(self) -> bool {
        self != Consistency::Pin
    }
}

/// Settings of a [`Proxy`](crate::Proxy).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// How the proxy logs in to servers (default: the client's user name,
    /// no password).
    pub server_auth: ServerAuth,
    /// Largest message accepted from a client or server (default 256 MiB;
    /// PostgreSQL's own limit is 1 GiB).
    pub max_message: usize,
    /// A client must finish its startup within this time (default 10 s).
    pub startup_timeout: Duration,
    /// Deadline for connecting and logging in to a server (default 5 s).
    pub connect_timeout: Duration,
    /// Deadline for connecting and logging in to a standby for a read, and
    /// for a free connection of its full pool (default 1 s). Short, since
    /// the primary can serve the read instead: a standby that does not
    /// answer in time is suspected, and new reads avoid it until the
    /// monitor probes it healthy.
    pub standby_connect_timeout: Duration,
    /// How long a read on a standby may go without a word from it (default
    /// 1 s; zero: no limit). Past it the read fails (`08006`, it is not
    /// sent again) and the standby is suspected: new reads avoid it at
    /// once and the monitor probes it now. Silence, not duration: a read
    /// whose rows keep coming is never cut, but a report that computes for
    /// longer before its first row needs a larger value (or a
    /// `/* pgha:primary */` hint).
    pub standby_read_timeout: Duration,
    /// The most of the proxy's prepared statements one shared server
    /// connection keeps (default 200): past it the least recently used is
    /// closed on the server (and prepared again if used again).
    pub max_prepared_statements: usize,
    /// Who may connect and how they authenticate; `None` trusts every
    /// client (for embedding behind your own authentication, and tests).
    pub client_auth: Option<crate::ClientAuth>,
    /// Send a client's lone simple-protocol reads to standbys (by weight),
    /// until its session first sends anything else to the primary (a write,
    /// a transaction, a SET, any extended-protocol message): from then on it
    /// reads its own writes there (default true).
    pub load_balance: bool,
    /// Standbys with more WAL than this not yet replayed (what a read
    /// there would miss: [`replay_lag_bytes`](crate::route::replay_lag_bytes),
    /// not what they received) get no reads (default 1 MiB; `None`: no
    /// limit).
    pub max_standby_lag_bytes: Option<u64>,
    /// Standbys whose replay delay ([`NodeState::lag_time`]) is longer than
    /// this get no reads, nor do standbys whose delay is unknown (default
    /// 10 s; `None`: no limit). pgha's `SqlProbe` measures it as `now() −
    /// pg_last_xact_replay_timestamp()`, which also grows while the primary
    /// commits nothing: a standby that has replayed up to the newest known
    /// WAL position counts as not late whatever its delay says. A delay
    /// still unknown (no transaction replayed since the standby started)
    /// keeps reads away while it has WAL to replay. On by default because
    /// the byte limit alone lets a standby whose replay stopped serve ever
    /// older data to a primary writing little. The first write after a
    /// quiet spell longer than the limit keeps reads off the standbys until
    /// their next probe shows it replayed.
    ///
    /// [`NodeState::lag_time`]: pgha_core::NodeState::lag_time
    pub max_standby_lag_time: Option<Duration>,
    /// How statements are classified (write functions).
    pub classify: crate::classify::ClassifyConfig,
    /// How long a client is held while there is no primary before it gets
    /// an error (default 30 s).
    pub no_primary_wait: Duration,
    /// How long a graceful stop ([`Drain::run`](crate::Drain::run), the
    /// daemon's SIGTERM) lets running transactions finish before it ends
    /// their sessions (default 30 s).
    pub shutdown_timeout: Duration,
    /// When server connections return to their pool (default session).
    pub pool_mode: PoolMode,
    /// Most server connections per pool, i.e. per node, database, user
    /// and startup options (default 20).
    pub pool_size: usize,
    /// Server connections (idle or lent) each pool keeps open while the
    /// topology allows its node, like PgBouncer's `min_pool_size`: the
    /// upkeep opens the missing ones every second, so a burst of clients
    /// after a quiet spell does not wait for logins. Pools are still
    /// created by a pool's first client. Capped by `pool_size` (default 0:
    /// connections are opened only on demand).
    pub min_pool_size: usize,
    /// How long a client waits for a connection of a full pool before it
    /// gets `53400` (default 30 s).
    pub pool_timeout: Duration,
    /// Idle server connections are closed after this (default 10 min).
    pub server_idle_timeout: Duration,
    /// Server connections are closed at their first release after this
    /// (default 1 h), so settings and memory do not age forever.
    pub server_lifetime: Duration,
    /// Run on a session-mode server connection before another client gets
    /// it (default `DISCARD ALL`; empty: none).
    pub server_reset_query: String,
    /// Most clients connected at once; more get `53300` (default 10,000).
    pub max_client_conn: usize,
    /// Looks up users missing from the auth file on the primary: a query
    /// taking the user name as `$1` and returning its stored secret, e.g.
    /// `SELECT rolpassword FROM pg_authid WHERE rolname = $1` (default
    /// none).
    pub auth_query: Option<String>,
    /// Users allowed on the admin console (database `pgha`); empty: none.
    pub admin_users: Vec<String>,
    /// Read-your-writes with load balancing (default [`Consistency::Pin`]).
    pub consistency: Consistency,
    /// How often standbys' replay positions are polled when
    /// `consistency` tracks write positions (default 20 ms).
    pub replay_poll_interval: Duration,
    /// TLS for clients: an SSLRequest over TCP is answered `S` and the
    /// handshake run with this certificate; `None` answers `N` (default).
    pub tls: Option<crate::TlsConfig>,
    /// Refuse TCP clients that did not switch to TLS (`28000`); clients on
    /// the Unix socket are local and exempt (default false).
    pub tls_required: bool,
    /// TLS to servers reached over TCP (default none; see
    /// [`ServerTls`](crate::ServerTls)).
    pub server_tls: Option<crate::ServerTls>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            server_auth: ServerAuth::default(),
            client_auth: None,
            load_balance: true,
            max_standby_lag_bytes: Some(1 << 20),
            max_standby_lag_time: Some(Duration::from_secs(10)),
            classify: crate::classify::ClassifyConfig::default(),
            max_message: 256 << 20,
            startup_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            standby_connect_timeout: Duration::from_secs(1),
            standby_read_timeout: Duration::from_secs(1),
            max_prepared_statements: 200,
            no_primary_wait: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            pool_mode: PoolMode::Session,
            pool_size: 20,
            min_pool_size: 0,
            pool_timeout: Duration::from_secs(30),
            server_idle_timeout: Duration::from_secs(600),
            server_lifetime: Duration::from_secs(3600),
            server_reset_query: "DISCARD ALL".into(),
            max_client_conn: 10_000,
            auth_query: None,
            admin_users: Vec::new(),
            consistency: Consistency::Pin,
            replay_poll_interval: Duration::from_millis(20),
            tls: None,
            tls_required: false,
            server_tls: None,
        }
    }
}

impl ProxyConfig {
    /// The standby lag limits reads are routed by.
    pub fn lag_limits(&self) -> crate::route::LagLimits {
        crate::route::LagLimits {
            bytes: self.max_standby_lag_bytes,
            time: self.max_standby_lag_time,
        }
    }

    /// Every setting as (name, value) text, for `SHOW CONFIG`.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let d = |d: Duration| format!("{d:?}");
        vec![
            ("pool_mode", format!("{:?}", self.pool_mode).to_lowercase()),
            ("pool_size", self.pool_size.to_string()),
            ("min_pool_size", self.min_pool_size.to_string()),
            ("pool_timeout", d(self.pool_timeout)),
            ("max_client_conn", self.max_client_conn.to_string()),
            ("load_balance", self.load_balance.to_string()),
            (
                "max_standby_lag_bytes",
                self.max_standby_lag_bytes
                    .map_or("none".into(), |b| b.to_string()),
            ),
            (
                "max_standby_lag_time",
                self.max_standby_lag_time.map_or("none".into(), d),
            ),
            ("no_primary_wait", d(self.no_primary_wait)),
            ("shutdown_timeout", d(self.shutdown_timeout)),
            ("server_idle_timeout", d(self.server_idle_timeout)),
            ("server_lifetime", d(self.server_lifetime)),
            ("server_reset_query", self.server_reset_query.clone()),
            ("connect_timeout", d(self.connect_timeout)),
            ("standby_connect_timeout", d(self.standby_connect_timeout)),
            ("standby_read_timeout", d(self.standby_read_timeout)),
            (
                "max_prepared_statements",
                self.max_prepared_statements.to_string(),
            ),
            ("startup_timeout", d(self.startup_timeout)),
            ("max_message", self.max_message.to_string()),
            (
                "server_user",
                self.server_auth.user.clone().unwrap_or_default(),
            ),
            (
                "server_password",
                self.server_auth.password.clone().unwrap_or_default(),
            ),
            ("admin_users", self.admin_users.join(",")),
            ("auth_query", self.auth_query.clone().unwrap_or_default()),
            ("client_auth", self.client_auth.is_some().to_string()),
            (
                "consistency",
                format!("{:?}", self.consistency).to_lowercase(),
            ),
            ("replay_poll_interval", d(self.replay_poll_interval)),
            ("tls", self.tls.is_some().to_string()),
            ("tls_required", self.tls_required.to_string()),
            (
                "server_tls",
                match &self.server_tls {
                    None => "none",
                    Some(t) if t.required() => "required",
                    Some(_) => "preferred",
                }
                .into(),
            ),
        ]
    }
}
