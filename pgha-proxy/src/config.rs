//! The proxy's settings.

use std::time::Duration;

use crate::server::ServerAuth;

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
    /// Who may connect and how they authenticate; `None` trusts every
    /// client (for embedding behind your own authentication, and tests).
    pub client_auth: Option<crate::ClientAuth>,
    /// Send a client's lone simple-protocol reads to standbys (by weight),
    /// until its session first sends anything else to the primary (a write,
    /// a transaction, a SET, any extended-protocol message): from then on it
    /// reads its own writes there (default true).
    pub load_balance: bool,
    /// Standbys further behind the primary than this get no reads
    /// (default 1 MiB; `None`: no limit).
    pub max_standby_lag_bytes: Option<u64>,
    /// How statements are classified (write functions).
    pub classify: crate::classify::ClassifyConfig,
    /// How long a client is held while there is no primary before it gets
    /// an error (default 30 s).
    pub no_primary_wait: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            server_auth: ServerAuth::default(),
            client_auth: None,
            load_balance: true,
            max_standby_lag_bytes: Some(1 << 20),
            classify: crate::classify::ClassifyConfig::default(),
            max_message: 256 << 20,
            startup_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            no_primary_wait: Duration::from_secs(30),
        }
    }
}
