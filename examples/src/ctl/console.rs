//! A connection to pgha's admin console and its answers as plain rows.

use std::time::Duration;

use tokio_postgres::{Config, NoTls, SimpleQueryMessage};

/// Where the console is and who logs in.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name or address, or a Unix socket directory.
    pub host: String,
    /// Port.
    pub port: u16,
    /// An admin user.
    pub user: String,
    /// Its password, if the console asks for one.
    pub password: Option<String>,
    /// Connect deadline.
    pub connect_timeout: Duration,
}

/// One row: (column, value) in order; NULL is `None`.
pub type Row = Vec<(String, Option<String>)>;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlError {
    /// No connection: pgha is not running there, or not reachable.
    Unreachable(String),
    /// The console refused the login (not an admin user, bad password).
    Login {
        /// The SQLSTATE.
        sqlstate: String,
        /// pgha's message.
        message: String,
    },
    /// The console refused the command, or it failed.
    Refused {
        /// The SQLSTATE.
        sqlstate: String,
        /// pgha's message.
        message: String,
        /// pgha's detail (e.g. one configuration mistake per line).
        detail: Option<String>,
    },
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::Unreachable(why) => write!(f, "cannot reach pgha: {why}"),
            CtlError::Login { sqlstate, message } => {
                write!(f, "login to pgha's console refused ({sqlstate}): {message}")
            }
            CtlError::Refused {
                sqlstate,
                message,
                detail,
            } => {
                write!(f, "pgha refused ({sqlstate}): {message}")?;
                if let Some(detail) = detail {
                    write!(f, "\n{detail}")?;
                }
                Ok(())
            }
        }
    }
}

/// A logged-in console session.
pub struct Console {
    client: tokio_postgres::Client,
}

impl Console {
    /// Connects and logs in to database `pgha`.
    pub async fn connect(target: &Target) -> Result<Self, CtlError> {
        let mut config = Config::new();
        config
            .host(&target.host)
            .port(target.port)
            .user(&target.user)
            .dbname("pgha")
            .application_name("pgha-ctl")
            .connect_timeout(target.connect_timeout);
        if let Some(password) = &target.password {
            config.password(password);
        }
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => CtlError::Login {
                        sqlstate: db.code().code().to_string(),
                        message: db.message().to_string(),
                    },
                    None => CtlError::Unreachable(format!("{}:{}: {e}", target.host, target.port)),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "console connection ended");
            }
        });
        Ok(Self { client })
    }

    /// Runs one statement; its rows, or the console's error.
    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, CtlError> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => CtlError::Refused {
                    sqlstate: db.code().code().to_string(),
                    message: db.message().to_string(),
                    detail: db.detail().map(str::to_string),
                },
                None => CtlError::Unreachable(format!("the console connection failed: {e}")),
            })?;
        Ok(rows_of(messages))
    }
}

/// The rows among a simple query's messages, as (column, value) lists.
pub fn rows_of(messages: Vec<SimpleQueryMessage>) -> Vec<Row> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), r.get(i).map(str::to_string)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}
