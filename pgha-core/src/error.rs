//! The crate's one error type.

use std::time::Duration;

/// Everything that can go wrong in `pgha-core`.
///
/// Variants carry data, not prose; [`Error::kind`] groups them for retry
/// decisions and metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A connection to a backend could not be made or broke.
    #[error("node {node}: connection failed: {}", describe_pg(source))]
    Connect {
        /// The node's name.
        node: String,
        /// What the driver said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A backend did not answer within its deadline.
    #[error("node {node}: no answer within {after:?}")]
    Timeout {
        /// The node's name.
        node: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// A query on a backend failed.
    #[error("node {node}: query failed: {}", describe_pg(source))]
    Query {
        /// The node's name.
        node: String,
        /// What the driver said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A local file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A backend answered with something pgha did not expect.
    #[error("node {node}: unexpected reply: {what}")]
    UnexpectedReply {
        /// The node's name.
        node: String,
        /// What came back.
        what: String,
    },
    /// A controller cannot carry out this kind of action.
    #[error("{controller} cannot {operation}")]
    Unsupported {
        /// The controller's name.
        controller: String,
        /// What was asked (`follow`, `rejoin`, …).
        operation: &'static str,
    },
    /// An operator command (failover script, pg_ctl, pg_rewind) failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line as run.
        command: String,
        /// Its exit status, or "timed out after …".
        status: String,
        /// The tail of what it printed.
        output: String,
    },
    /// The monitor's state file could not be read or written.
    #[error("state file {path}: {problem}")]
    StateFile {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A shared ledger refused a decision: this pgha node does not lead the
    /// group (any more), so it must not act on it.
    #[error("{ledger}: this pgha node does not lead; the decision is not recorded")]
    NotLeading {
        /// The ledger's name.
        ledger: String,
    },
    /// An operator command reached a pgha node that does not lead its
    /// group: only the leader acts.
    #[error("this pgha node does not lead its group: send the command to the leader ({leader})")]
    NotLeader {
        /// The leader as far as this node knows (`"unknown"` during an
        /// election).
        leader: String,
    },
    /// A shared ledger could not record a decision (no quorum in time, a
    /// storage fault): it must not be acted on.
    #[error("{ledger}: {problem}")]
    Ledger {
        /// The ledger's name.
        ledger: String,
        /// What went wrong.
        problem: String,
    },
    /// A configuration value is invalid (found when it is loaded, never
    /// when it is first used).
    #[error("invalid configuration: {what}")]
    Config {
        /// What is wrong, naming the setting.
        what: String,
    },
    /// Text that should be a PostgreSQL WAL position (`X/Y`, hexadecimal)
    /// is not one.
    #[error("invalid LSN {input:?}: {problem}")]
    InvalidLsn {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// A coarse grouping of [`Error`]s: what a caller should do about one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The node may be down or unreachable; retrying later may work.
    Unavailable,
    /// The request itself failed; retrying the same thing will fail again.
    Failed,
    /// A local problem (disk, process spawn).
    Local,
}

impl Error {
    /// Which [`ErrorKind`] this error belongs to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } => ErrorKind::Unavailable,
            Error::Query { .. } => ErrorKind::Failed,
            Error::Io { .. } => ErrorKind::Local,
            Error::InvalidLsn { .. } | Error::Unsupported { .. } | Error::Config { .. } => {
                ErrorKind::Failed
            }
            Error::Command { .. } | Error::UnexpectedReply { .. } => ErrorKind::Failed,
            Error::StateFile { .. } => ErrorKind::Local,
            Error::NotLeading { .. } | Error::Ledger { .. } | Error::NotLeader { .. } => {
                ErrorKind::Unavailable
            }
        }
    }
}

/// A driver error with the server's SQLSTATE and message when there is
/// one (the driver's own `Display` says only "db error").
pub fn describe_pg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}
