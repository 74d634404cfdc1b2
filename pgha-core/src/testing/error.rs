//! The harness's error type.

use std::time::Duration;

/// Why the harness could not do what a test asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "no PostgreSQL server binaries found (tried {tried}); install postgresql or set PG_BINDIR"
    )]
    NoPostgres {
        /// Where the harness looked.
        tried: String,
    },
    /// The user to run PostgreSQL as could not be found or created.
    #[error("cannot choose a user for PostgreSQL: {what}")]
    User {
        /// What went wrong.
        what: String,
    },
    /// A helper program failed.
    #[error("{program} failed ({status}): {output}")]
    Command {
        /// The program that ran.
        program: String,
        /// Its exit status.
        status: String,
        /// The tail of what it printed.
        output: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A server did not start.
    #[error("node {node} did not start: {reason}\n--- tail of {log} ---\n{tail}")]
    Start {
        /// The node's name.
        node: String,
        /// Why, as far as the harness knows.
        reason: String,
        /// The server log's path.
        log: String,
        /// The end of the server log.
        tail: String,
    },
    /// Something the harness waited for did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        after: Duration,
    },
    /// A SQL command through the harness failed.
    #[error("node {node}: {}", crate::error::describe_pg(source))]
    Sql {
        /// The node's name.
        node: String,
        /// What the driver said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A signal could not be sent.
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        /// The signal's name.
        signal: String,
        /// The target process.
        pid: i32,
        /// What the kernel said.
        #[source]
        source: nix::Error,
    },
    /// An implementation broke its trait's contract in a conformance suite;
    /// the report says which clauses and what was seen.
    #[error("contract violated: {report}")]
    Contract {
        /// Every check of the suite and its outcome.
        report: Box<super::conformance::Report>,
    },
    /// The operation needs root (network namespaces).
    #[error("needs root: {what}")]
    NotRoot {
        /// What needed it.
        what: String,
    },
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}
