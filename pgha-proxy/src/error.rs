//! The proxy's one error type, with the SQLSTATE a client is sent.

use std::time::Duration;

/// Everything that can go wrong in the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A client sent bytes that are not valid protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A client asked for a protocol version other than 3.0.
    #[error("unsupported frontend protocol {major}.{minor}")]
    UnsupportedProtocol {
        /// Major version asked for.
        major: u32,
        /// Minor version asked for.
        minor: u32,
    },
    /// A socket failed.
    #[error("i/o: {0}")]
    Io(#[source] std::io::Error),
    /// A server could not be reached or logged in to.
    #[error("server {node}: {what}")]
    Server {
        /// `host:port`.
        node: String,
        /// What went wrong.
        what: String,
    },
    /// A server refused the login (its SQLSTATE and message are passed on).
    #[error("server {node} refused: {code} {message}")]
    ServerRefused {
        /// `host:port`.
        node: String,
        /// The server's SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server connection broke while a request was running.
    #[error("server connection lost")]
    ServerLost,
    /// The primary's connection was lost after it received a client's
    /// statement: whether it committed cannot be known (`08007`).
    #[error("server connection lost after a statement was sent: outcome unknown")]
    OutcomeUnknown,
    /// The primary's connection was lost while the client was inside a
    /// transaction (nothing in flight): the transaction did not commit.
    #[error("server connection lost inside a transaction")]
    TransactionLost,
    /// Session mode: the primary connection that held the session's state
    /// was lost between transactions.
    #[error("the session's server connection was lost")]
    SessionLost,
    /// A standby's connection was lost (or gave no answer in time) while it
    /// ran a read; the read is not retried.
    #[error("standby connection lost during a read")]
    ReadLost,
    /// The client did not authenticate.
    #[error("authentication: {0}")]
    Auth(#[source] crate::auth::AuthError),
    /// The pool stayed full (every server connection busy) for the
    /// configured time.
    #[error("no server connection free within {waited:?}")]
    PoolTimeout {
        /// How long the client waited.
        waited: Duration,
    },
    /// The proxy has as many clients as it is configured to take.
    #[error("too many clients (max_client_conn {max})")]
    TooManyClients {
        /// The limit.
        max: usize,
    },
    /// A TCP client did not switch to TLS, and the proxy requires it.
    #[error("TLS required")]
    TlsRequired,
    /// The proxy is shutting down: the session ends between transactions
    /// (or at the end of the shutdown timeout).
    #[error("the proxy is shutting down")]
    AdminShutdown,
    /// No primary became available in time.
    #[error("no primary within {waited:?}")]
    NoPrimary {
        /// How long the client was held.
        waited: Duration,
    },
}

impl Error {
    /// The SQLSTATE a client is sent for this error.
    pub fn sqlstate(&self) -> &str {
        match self {
            Error::Protocol(_) | Error::UnsupportedProtocol { .. } => "08P01",
            Error::Io(_)
            | Error::Server { .. }
            | Error::ServerLost
            | Error::TransactionLost
            | Error::SessionLost
            | Error::ReadLost => "08006",
            Error::OutcomeUnknown => "08007",
            Error::ServerRefused { code, .. } => code,
            Error::Auth(e) => e.sqlstate(),
            // "cannot connect now": the same class a restarting server uses.
            Error::NoPrimary { .. } => "57P03",
            Error::PoolTimeout { .. } => "53400",
            Error::TooManyClients { .. } => "53300",
            Error::TlsRequired => "28000",
            Error::AdminShutdown => "57P01",
        }
    }

    /// The message a client is sent: says what happened, never an internal
    /// address.
    pub fn client_message(&self) -> String {
        match self {
            Error::Protocol(what) => format!("protocol violation: {what}"),
            Error::UnsupportedProtocol { major, minor } => {
                format!("unsupported frontend protocol {major}.{minor}: only 3.0 is supported")
            }
            Error::Io(_) | Error::Server { .. } => "pgha: cannot reach the database server".into(),
            Error::ServerRefused { message, .. } => message.clone(),
            Error::Auth(e) => e.client_message(),
            Error::ServerLost => {
                "pgha: the database server connection was lost; the running statement (and its transaction, if any) did not complete".into()
            }
            Error::OutcomeUnknown => {
                "pgha: the connection to the primary was lost after it received the statement; whether it committed is unknown (the session has ended; check before retrying)".into()
            }
            Error::TransactionLost => {
                "pgha: the connection to the primary was lost inside the transaction; the transaction did not commit (the session has ended)".into()
            }
            Error::SessionLost => {
                "pgha: this session's server connection was lost; its session state is gone (the session has ended; reconnect)".into()
            }
            Error::ReadLost => {
                "pgha: the standby running this read was lost or did not answer in time; the read did not complete and was not retried".into()
            }
            Error::PoolTimeout { waited } => {
                format!("pgha: every server connection stayed busy for {waited:?} (pool_size reached); retry later")
            }
            Error::TooManyClients { .. } => "sorry, too many clients already".into(),
            Error::TlsRequired => {
                "pgha: this proxy accepts TCP clients over TLS only (tls_required); connect with sslmode=require".into()
            }
            Error::NoPrimary { waited } => {
                format!("pgha: no primary server is available (waited {waited:?}); retry later")
            }
            // PostgreSQL's own words: drivers and poolers match on them.
            Error::AdminShutdown => "terminating connection due to administrator command".into(),
        }
    }
}
