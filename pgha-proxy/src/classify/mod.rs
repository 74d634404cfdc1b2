//! Read/write statement classification: which statements must run on the
//! primary and which any server may run.
//!
//! [`classify`] reads a simple-query string (or the text of one `Parse`) in
//! one pass of a real PostgreSQL [`lexer`], so keywords inside strings,
//! comments, dollar quotes and quoted identifiers never count. It is pure:
//! no IO, no allocation, no panic on any input.
//!
//! Rules, per statement (a string routes to the primary if any statement
//! does; a `/* pgha:primary */` comment anywhere forces it):
//!
//! * `SELECT`, `VALUES`, `TABLE`, `WITH`, `DECLARE … FOR`, `COPY … TO` read,
//!   unless they lock rows (`FOR UPDATE / NO KEY UPDATE / SHARE / KEY
//!   SHARE`), call a function of [`ClassifyConfig::write_functions`], create
//!   a table (`SELECT … INTO`) or modify data (`WITH x AS (DELETE …)`).
//! * `SHOW`, `FETCH`, `MOVE`, `CLOSE`, `SAVEPOINT`, `RELEASE`, `COMMIT`,
//!   `ROLLBACK`, `END`, `ABORT` go anywhere: the router keeps a transaction
//!   on the server that holds it.
//! * `EXPLAIN` goes anywhere unless `ANALYZE` runs a statement that writes.
//! * `BEGIN` / `START TRANSACTION` go to the primary unless `READ ONLY`
//!   (and not `SERIALIZABLE`, which a hot standby refuses).
//! * `SET`, `RESET`, `DISCARD`, `LISTEN`, `NOTIFY`, `UNLISTEN`, `LOAD`,
//!   `PREPARE`, `DEALLOCATE`, `DECLARE … WITH HOLD` change session state and
//!   go to the primary; so do `LOCK` and every write, DDL and maintenance
//!   statement, and anything not recognised.
//!
//! ```
//! use pgha_proxy::classify::{classify, ClassifyConfig, Reason, Route};
//!
//! let config = ClassifyConfig::default();
//! assert_eq!(classify("SELECT * FROM t WHERE note = 'delete me'", &config).route, Route::Any);
//!
//! let c = classify("select 1; SELECT nextval('s')", &config);
//! assert_eq!(c.route, Route::Primary(Reason::WriteFunction));
//! assert_eq!(c.statements, 2);
//!
//! let c = classify("BEGIN READ ONLY", &config);
//! assert_eq!(c.route, Route::Any);
//! assert!(c.starts_transaction && c.read_only_transaction);
//! ```

use std::fmt;

pub mod lexer;
mod statement;
mod stream;

use stream::Stream;

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Only on the primary, for this reason.
    Primary(Reason),
    /// On any healthy server, standbys included.
    Any,
}

impl Route {
    /// Whether the statement needs the primary.
    pub fn is_primary(self) -> bool {
        matches!(self, Route::Primary(_))
    }
}

/// Why a statement needs the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// It writes data or schema: DML, DDL, maintenance, `COPY … FROM`,
    /// `CALL`, `DO`, two-phase commit.
    Write,
    /// `BEGIN` / `START TRANSACTION` without `READ ONLY`.
    TransactionStart,
    /// A serializable transaction, which a hot standby refuses.
    Serializable,
    /// `SELECT … FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE`.
    LockingRead,
    /// It calls a function of [`ClassifyConfig::write_functions`].
    WriteFunction,
    /// `SELECT … INTO` creates a table.
    SelectInto,
    /// `LOCK TABLE`.
    Lock,
    /// A `pgha:primary` comment asked for it.
    Hint,
    /// `SET` / `RESET`: settings must stay with the session.
    Set,
    /// Other session state: `DISCARD`, `LISTEN`, `NOTIFY`, `UNLISTEN`,
    /// `LOAD`, `PREPARE`, `DEALLOCATE`, `DECLARE … WITH HOLD`.
    Session,
    /// `CREATE TEMP …`: the object lives in this session on the primary.
    TempTable,
    /// Not recognised (including `EXECUTE` of a prepared statement), so the
    /// safe choice.
    Unknown,
    /// Session mode: a named statement is prepared on the session's own
    /// server connection, where SQL (`EXECUTE`, `DEALLOCATE`) finds it by
    /// the client's name. Does not keep later reads on the primary.
    Prepare,
}

impl Reason {
    /// A stable snake_case name, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Write => "write",
            Reason::TransactionStart => "transaction_start",
            Reason::Serializable => "serializable",
            Reason::LockingRead => "locking_read",
            Reason::WriteFunction => "write_function",
            Reason::SelectInto => "select_into",
            Reason::Lock => "lock",
            Reason::Hint => "hint",
            Reason::Set => "set",
            Reason::Session => "session",
            Reason::TempTable => "temp_table",
            Reason::Prepare => "prepare",
            Reason::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the classifier needs to know beyond the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifyConfig {
    /// Functions that write or take locks, lowercased, unqualified: a call
    /// to one anywhere in a reading statement sends it to the primary.
    /// Defaults to [`ClassifyConfig::DEFAULT_WRITE_FUNCTIONS`].
    pub write_functions: Vec<String>,
}

impl ClassifyConfig {
    /// Built-in functions that write, take locks or need the primary:
    /// sequences, advisory locks, `pg_notify`, `set_config`, xid and WAL
    /// position functions, replication slots and large objects.
    pub const DEFAULT_WRITE_FUNCTIONS: &'static [&'static str] = &[
        "nextval",
        "setval",
        "currval",
        "lastval",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
        "pg_advisory_unlock",
        "pg_advisory_unlock_shared",
        "pg_advisory_unlock_all",
        "pg_notify",
        "set_config",
        "txid_current",
        "pg_current_xact_id",
        "pg_current_wal_lsn",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_drop_replication_slot",
        "pg_logical_emit_message",
        "lo_create",
        "lo_creat",
        "lo_import",
        "lo_unlink",
        "lo_from_bytea",
        "lo_put",
        "lowrite",
        "lo_truncate",
    ];
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        ClassifyConfig {
            write_functions: Self::DEFAULT_WRITE_FUNCTIONS
                .iter()
                .map(|f| (*f).to_owned())
                .collect(),
        }
    }
}

/// The verdict on one query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// Where it may run: the primary if any statement needs it (the reason
    /// is the first statement's that does, or [`Reason::Hint`]).
    pub route: Route,
    /// A statement opens a transaction block (`BEGIN`, `START
    /// TRANSACTION`, `… AND CHAIN`).
    pub starts_transaction: bool,
    /// The transaction is read only: `BEGIN READ ONLY`, `START TRANSACTION
    /// READ ONLY`, `SET TRANSACTION READ ONLY`.
    pub read_only_transaction: bool,
    /// A statement ends a transaction block (`COMMIT`, `END`, `ROLLBACK`,
    /// `ABORT`, `PREPARE TRANSACTION`; not `ROLLBACK TO SAVEPOINT`).
    pub ends_transaction: bool,
    /// Non-empty statements in the string.
    pub statements: usize,
}

/// Classifies a query string of zero or more `;`-separated statements.
///
/// Empty strings and strings of only comments go anywhere. Never panics,
/// never allocates; one pass over the input.
///
/// ```
/// use pgha_proxy::classify::{classify, ClassifyConfig, Reason, Route};
///
/// let config = ClassifyConfig::default();
/// let c = classify("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", &config);
/// assert_eq!(c.route, Route::Primary(Reason::Write));
///
/// // Keywords in dollar quotes and comments do not count.
/// let c = classify("SELECT $$ insert $$ -- ; DROP TABLE t", &config);
/// assert_eq!((c.route, c.statements), (Route::Any, 1));
///
/// let c = classify("/* pgha:primary */ SELECT 1", &config);
/// assert_eq!(c.route, Route::Primary(Reason::Hint));
/// ```
pub fn classify(sql: &str, config: &ClassifyConfig) -> Classification {
    let mut out = Classification {
        route: Route::Any,
        starts_transaction: false,
        read_only_transaction: false,
        ends_transaction: false,
        statements: 0,
    };
    let mut s = Stream::new(sql);
    loop {
        if let Some(first) = s.next() {
            out.statements += 1;
            let class = statement::statement(first, &mut s, config, false);
            if let (Route::Any, Some(reason)) = (out.route, class.primary) {
                out.route = Route::Primary(reason);
            }
            out.starts_transaction |= class.starts;
            out.ends_transaction |= class.ends;
            out.read_only_transaction |= class.read_only;
        }
        if !s.next_statement() {
            break;
        }
    }
    if s.hint {
        out.route = Route::Primary(Reason::Hint);
    }
    out
}
