//! How pgha connects to its backends for monitoring and control.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

use crate::{Error, NodeState};

/// Credentials and settings for pgha's own connections to backends (the
/// monitoring connection, `pg_promote()`, `ALTER SYSTEM`). The user must be
/// a superuser, or hold `pg_monitor` plus EXECUTE on `pg_promote` for
/// probing and promotion only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectConfig {
    /// User name (default `postgres`).
    pub user: String,
    /// Password, if the server asks for one (default none).
    pub password: Option<String>,
    /// Database (default `postgres`).
    pub dbname: String,
    /// `application_name` of pgha's sessions (default `pgha`), so an
    /// operator can tell them apart in `pg_stat_activity`.
    pub application_name: String,
    /// User that standbys replicate as, written into `primary_conninfo`
    /// (default `postgres`).
    pub replication_user: String,
    /// Password for `primary_conninfo` (default none: use `.pgpass` or
    /// trust).
    pub replication_password: Option<String>,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            user: "postgres".into(),
            password: None,
            dbname: "postgres".into(),
            application_name: "pgha".into(),
            replication_user: "postgres".into(),
            replication_password: None,
        }
    }
}

impl ConnectConfig {
    /// A driver configuration for `node`, with a connect timeout.
    pub fn for_node(&self, node: &NodeState, connect_timeout: Duration) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&node.host)
            .port(node.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .connect_timeout(connect_timeout)
            // A dead peer behind a live network must not hold a socket
            // forever: keepalives bound what a deadline does not cover.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    /// Connects to `node`; the whole attempt is bounded by `timeout`.
    /// The connection is driven by a spawned task that ends with it.
    pub async fn connect(&self, node: &NodeState, timeout: Duration) -> Result<Client, Error> {
        self.connect_then(node, timeout, |_| {}).await
    }

    /// Like [`connect`](Self::connect); `on_close` runs when the connection
    /// ends, told how (the monitoring connection's loss is a failure
    /// signal).
    pub async fn connect_then(
        &self,
        node: &NodeState,
        timeout: Duration,
        on_close: impl FnOnce(ConnectionEnd) + Send + 'static,
    ) -> Result<Client, Error> {
        let config = self.for_node(node, timeout);
        let attempt = tokio::time::timeout(timeout, config.connect(NoTls)).await;
        let (client, connection) = match attempt {
            Err(_) => {
                return Err(Error::Timeout {
                    node: node.id.to_string(),
                    after: timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    node: node.id.to_string(),
                    source,
                })
            }
            Ok(Ok(pair)) => pair,
        };
        tokio::spawn(async move {
            on_close(drive(connection).await);
        });
        Ok(client)
    }

    /// The `primary_conninfo` a standby named `standby` uses to stream from
    /// `primary` (its `application_name` is the standby's node id, which
    /// `synchronous_standby_names` can name).
    pub fn primary_conninfo(&self, primary: &NodeState, standby: &str) -> String {
        let mut s = format!(
            "host={} port={} user={} application_name={}",
            quote_conninfo(&primary.host),
            primary.port,
            quote_conninfo(&self.replication_user),
            quote_conninfo(standby)
        );
        if let Some(password) = &self.replication_password {
            s.push_str(&format!(" password={}", quote_conninfo(password)));
        }
        s
    }
}

/// How a connection to a backend ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// pgha closed it (its client was dropped).
    ByUs,
    /// The server said why before closing: an error or notice of class 57
    /// (operator intervention: `pg_terminate_backend`, a fast or immediate
    /// shutdown), or any other error message.
    Announced,
    /// The server end vanished without a word (EOF or reset): the backend
    /// process died, as it does when the server is killed.
    Abrupt,
}

/// Drives a connection to its end and tells how it ended. Notices are
/// watched because an immediate shutdown only warns (57P01) before the
/// backend exits.
async fn drive<S, T>(mut connection: tokio_postgres::Connection<S, T>) -> ConnectionEnd
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut announced = false;
    loop {
        let next = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
        match next {
            Some(Ok(tokio_postgres::AsyncMessage::Notice(notice))) => {
                announced |= notice.code().code().starts_with("57");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) if e.as_db_error().is_some() => return ConnectionEnd::Announced,
            Some(Err(_)) if announced => return ConnectionEnd::Announced,
            Some(Err(_)) => return ConnectionEnd::Abrupt,
            None => return ConnectionEnd::ByUs,
        }
    }
}

/// Quotes a libpq connection-string value: `'…'` with `\` and `'`
/// escaped, so any value is one value.
fn quote_conninfo(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

/// Runs a query with a deadline; the text of each column of the first row.
pub(crate) async fn query_row(
    client: &Client,
    node: &NodeState,
    sql: &str,
    timeout: Duration,
) -> Result<Vec<Option<String>>, Error> {
    let rows = match tokio::time::timeout(timeout, client.simple_query(sql)).await {
        Err(_) => {
            return Err(Error::Timeout {
                node: node.id.to_string(),
                after: timeout,
            })
        }
        Ok(Err(source)) => {
            return Err(Error::Query {
                node: node.id.to_string(),
                source,
            })
        }
        Ok(Ok(rows)) => rows,
    };
    Ok(rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    #[test]
    fn primary_conninfo_quotes_every_value() {
        let primary = NodeState::new("a", Role::Primary, "10.0.0.1", 5433);
        let config = ConnectConfig {
            replication_password: Some("it's".into()),
            ..ConnectConfig::default()
        };
        assert_eq!(
            config.primary_conninfo(&primary, "b"),
            "host='10.0.0.1' port=5433 user='postgres' application_name='b' password='it\\'s'"
        );
    }
}
