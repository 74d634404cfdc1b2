//! # pgha-proxy
//!
//! The PostgreSQL wire-protocol proxy of pgha: client authentication,
//! server pools, read/write routing over the topology published by
//! `pgha-core`, and failover-aware client handling.
//!
//! Status: the crate is being built (issue "pgha-proxy"); today it holds
//! only its error type.
//!
//! ```
//! let e = pgha_proxy::Error::Protocol("message length 3 is below 4".into());
//! assert_eq!(e.sqlstate(), "08P01");
//! ```

pub mod auth;
pub mod classify;

/// Everything that can go wrong in the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A client sent bytes that are not valid protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl Error {
    /// The SQLSTATE a client is sent for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Protocol(_) => "08P01",
        }
    }
}
