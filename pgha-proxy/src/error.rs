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
            Error::Io(_) | Error::Server { .. } | Error::ServerLost => "08006",
            Error::ServerRefused { code, .. } => code,
            Error::Auth(e) => e.sqlstate(),
            // "cannot connect now": the same class a restarting server uses.
            Error::NoPrimary { .. } => "57P03",
            Error::PoolTimeout { .. } => "53400",
            Error::TooManyClients { .. } => "53300",
            Error::TlsRequired => "28000",
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
        }
    }
}
