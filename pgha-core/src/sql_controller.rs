//! The default node controller: everything that can be done over SQL.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connect::query_row;
use crate::{ConnectConfig, Error, Fenced, NodeController, NodeState};

/// Settings of [`SqlNodeController`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlControllerConfig {
    /// How pgha connects to backends.
    pub connect: ConnectConfig,
    /// Deadline for one operation: a promotion, a standby starting to
    /// stream from its new primary (default 30 s).
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
    /// Deadline for connecting to a node (default 3 s).
    #[serde(with = "crate::duration_serde")]
    pub connect_timeout: Duration,
    /// After a promotion, clear `synchronous_standby_names` on the new
    /// primary, or with its old partner gone every commit would wait for
    /// a standby that is not there (default true).
    pub clear_synchronous_on_promote: bool,
    /// Create a physical replication slot named after each standby on its
    /// new primary, and use it (default true). Slots are not replicated,
    /// so a promoted standby has none for its former siblings.
    pub manage_slots: bool,
}

impl Default for SqlControllerConfig {
    fn default() -> Self {
        Self {
            connect: ConnectConfig::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            clear_synchronous_on_promote: true,
            manage_slots: true,
        }
    }
}

/// Controls backends over SQL (PostgreSQL ≥ 13): `pg_promote()` to promote;
/// `ALTER SYSTEM SET primary_conninfo` + `pg_reload_conf()` to re-point a
/// standby. It cannot rewind a former primary: pair it with a
/// [`LocalNodeController`](crate::LocalNodeController) for rejoin.
///
/// # The fence it gives
///
/// The strongest it can do over SQL on a primary it can still reach, short
/// of stopping the server (which a local controller does):
/// * `default_transaction_read_only = on` (`ALTER SYSTEM`, reloaded);
/// * every connectable database's connection limit set to 0, so ordinary
///   users cannot log in at all (the limits it had are kept on the node,
///   `pgha.fenced_connlimit`, and put back by [`promote`](NodeController::promote);
///   a pg_rewind undoes it with the rest of the catalog);
/// * every client session terminated, ordinary users' and superusers'.
///
/// What it cannot stop: a **superuser** that connects directly afterwards
/// is exempt from connection limits and may turn read-only off for its
/// session (`SET default_transaction_read_only = off`, `BEGIN READ WRITE`)
/// and write. Only stopping or demoting the server holds against that.
#[derive(Debug, Clone, Default)]
pub struct SqlNodeController {
    config: SqlControllerConfig,
}

impl SqlNodeController {
    /// A controller with these settings.
    pub fn new(config: SqlControllerConfig) -> Self {
        Self { config }
    }

    /// Its settings.
    pub fn config(&self) -> &SqlControllerConfig {
        &self.config
    }

    async fn client(&self, node: &NodeState) -> Result<Client, Error> {
        self.config
            .connect
            .connect(node, self.config.connect_timeout)
            .await
    }

    pub(crate) async fn value(
        &self,
        client: &Client,
        node: &NodeState,
        sql: &str,
    ) -> Result<Option<String>, Error> {
        let row = query_row(client, node, sql, self.config.timeout).await?;
        Ok(row.into_iter().next().flatten())
    }

    async fn in_recovery(&self, client: &Client, node: &NodeState) -> Result<bool, Error> {
        match self
            .value(client, node, "SELECT pg_is_in_recovery()::text")
            .await?
            .as_deref()
        {
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            other => Err(Error::UnexpectedReply {
                node: node.id.to_string(),
                what: format!("pg_is_in_recovery() = {other:?}"),
            }),
        }
    }

    /// Runs a CHECKPOINT on a new primary. Until its end-of-recovery
    /// checkpoint completes, its control file still shows the old timeline,
    /// and pg_rewind against it concludes "same timeline, no rewind
    /// required" for a former primary that has in fact diverged. Failure is
    /// logged, not fatal: the promotion itself succeeded.
    pub(crate) async fn checkpoint(&self, node: &NodeState) {
        let done = async {
            let client = self.client(node).await?;
            query_row(&client, node, "CHECKPOINT", self.config.timeout).await
        };
        if let Err(e) = done.await {
            tracing::warn!(node = %node.id, error = %e, "CHECKPOINT after promotion failed");
        }
    }

    /// Creates `node`'s replication slot on `primary` unless it exists.
    pub(crate) async fn ensure_slot(
        &self,
        primary: &NodeState,
        node: &NodeState,
    ) -> Result<(), Error> {
        let client = self.client(primary).await?;
        let slot = sql_literal(&slot_name(node));
        let sql = format!(
            "SELECT count(pg_create_physical_replication_slot({slot}))::text \
             WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {slot})"
        );
        self.value(&client, primary, &sql).await.map(drop)
    }

    /// Waits until `node` streams from `primary`.
    pub(crate) async fn wait_streaming(
        &self,
        node: &NodeState,
        primary: &NodeState,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.timeout;
        let sql = "SELECT status || ' ' || coalesce(sender_host, '') || ' ' || coalesce(sender_port::text, '') \
                   FROM pg_stat_wal_receiver";
        let want = format!("streaming {} {}", primary.host, primary.port);
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(client) = self.client(node).await {
                last = self.value(&client, node, sql).await.ok().flatten();
                if last.as_deref() == Some(want.as_str()) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout {
            node: format!(
                "{} (streaming from {}: last saw {last:?})",
                node.id, primary.id
            ),
            after: self.config.timeout,
        })
    }
}

#[async_trait]
impl NodeController for SqlNodeController {
    async fn promote(&self, node: &NodeState, term: u64) -> Result<(), Error> {
        let client = self.client(node).await?;
        if self.in_recovery(&client, node).await? {
            // pg_promote(wait => true) looks every 100 ms; asking without
            // waiting and looking every 5 ms saves most of that on the
            // path from a crash to writes.
            let asked = self
                .value(&client, node, "SELECT pg_promote(false)::text")
                .await?;
            if asked.as_deref() != Some("true") {
                return Err(Error::UnexpectedReply {
                    node: node.id.to_string(),
                    what: format!("pg_promote() returned {asked:?}"),
                });
            }
            let deadline = Instant::now() + self.config.timeout;
            while self.in_recovery(&client, node).await? {
                if Instant::now() > deadline {
                    return Err(Error::Timeout {
                        node: format!("{} (promotion)", node.id),
                        after: self.config.timeout,
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tracing::info!(node = %node.id, term, "promoted");
            // Writes need no checkpoint, a pg_rewind against this node does
            // (see `checkpoint`): run it beside the publication, not before.
            let this = self.clone();
            let promoted = node.clone();
            tokio::spawn(async move { this.checkpoint(&promoted).await });
        } else {
            tracing::info!(node = %node.id, term, "already primary; promote is a no-op");
        }
        // A node fenced earlier (read-only, logins refused) must take
        // writes again.
        self.value(
            &client,
            node,
            "ALTER SYSTEM RESET default_transaction_read_only",
        )
        .await?;
        self.lift_refusal(&client, node).await?;
        if self.config.clear_synchronous_on_promote {
            let names = self
                .value(&client, node, "SHOW synchronous_standby_names")
                .await?;
            if names.as_deref().is_some_and(|n| !n.is_empty()) {
                tracing::warn!(node = %node.id, ?names, "clearing synchronous_standby_names on the new primary");
                self.value(
                    &client,
                    node,
                    "ALTER SYSTEM SET synchronous_standby_names = ''",
                )
                .await?;
            }
        }
        self.value(&client, node, "SELECT pg_reload_conf()::text")
            .await
            .map(drop)
    }

    async fn follow(&self, node: &NodeState, primary: &NodeState) -> Result<(), Error> {
        if self.config.manage_slots {
            self.ensure_slot(primary, node).await?;
        }
        let client = self.client(node).await?;
        if !self.in_recovery(&client, node).await? {
            return Err(Error::UnexpectedReply {
                node: node.id.to_string(),
                what: "it is not a standby (a former primary needs a rejoin)".into(),
            });
        }
        let conninfo = self
            .config
            .connect
            .primary_conninfo(primary, node.id.as_str());
        let slot = if self.config.manage_slots {
            slot_name(node)
        } else {
            String::new()
        };
        // ALTER SYSTEM cannot run in a transaction block: one at a time.
        for (setting, value) in [("primary_conninfo", conninfo), ("primary_slot_name", slot)] {
            self.value(
                &client,
                node,
                &format!("ALTER SYSTEM SET {setting} = {}", sql_literal(&value)),
            )
            .await?;
        }
        self.value(&client, node, "SELECT pg_reload_conf()::text")
            .await?;
        tracing::info!(node = %node.id, primary = %primary.id, "re-pointed; waiting for it to stream");
        self.wait_streaming(node, primary).await
    }

    async fn fence(&self, node: &NodeState) -> Result<Fenced, Error> {
        let client = match self.client(node).await {
            Ok(client) => client,
            Err(e) => return Ok(Fenced::NotConfirmed { why: e.to_string() }),
        };
        if self.in_recovery(&client, node).await? {
            return Ok(Fenced::Confirmed); // a standby takes no writes
        }
        self.value(
            &client,
            node,
            "ALTER SYSTEM SET default_transaction_read_only = on",
        )
        .await?;
        self.refuse_logins(&client, node).await?;
        self.value(&client, node, "SELECT pg_reload_conf()::text")
            .await?;
        let killed = self
            .value(
                &client,
                node,
                "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            )
            .await?;
        tracing::warn!(node = %node.id, sessions = ?killed, "fenced: read-only by default, ordinary users' logins refused, sessions terminated");
        Ok(Fenced::Confirmed)
    }

    fn name(&self) -> &str {
        "sql controller"
    }
}

/// The replication slot a standby uses: its node id, folded to what slot
/// names allow (lower-case letters, digits, underscore).
pub(crate) fn slot_name(node: &NodeState) -> String {
    node.id
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A SQL string literal (standard_conforming_strings is on since 9.1).
pub(crate) fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    #[test]
    fn slot_names_are_folded_to_what_postgres_allows() {
        let node = NodeState::new("DB-1.east", Role::Standby, "h", 5432);
        assert_eq!(slot_name(&node), "db_1_east");
    }

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(sql_literal("it's"), "'it''s'");
    }
}
