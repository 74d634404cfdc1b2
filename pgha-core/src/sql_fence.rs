//! The part of the SQL fence that turns ordinary users away: every
//! database's connection limit set to 0 (superusers are exempt, so pgha
//! still probes the node), the limits it had kept in the server's own
//! `postgresql.auto.conf` (`pgha.fenced_connlimit`, JSON) and put back
//! when the node is promoted again. A pg_rewind undoes it by itself: the
//! catalog and `postgresql.auto.conf` come from the new primary.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::sql_controller::sql_literal;
use crate::{Error, NodeState, SqlNodeController};

/// Where the limits in force before the fence are kept, on the node.
const SAVED: &str = "pgha.fenced_connlimit";

impl SqlNodeController {
    /// Sets every connectable database's connection limit to 0, keeping
    /// the limits it replaces (once: a fence repeated keeps the first).
    pub(crate) async fn refuse_logins(
        &self,
        client: &Client,
        node: &NodeState,
    ) -> Result<(), Error> {
        writable_session(self, client, node).await?;
        let saved = self
            .value(
                client,
                node,
                &format!("SELECT current_setting('{SAVED}', true)"),
            )
            .await?;
        if saved.as_deref().is_none_or(str::is_empty) {
            let limits = self
                .value(
                    client,
                    node,
                    "SELECT coalesce(json_object_agg(datname, datconnlimit), '{}')::text \
                     FROM pg_database WHERE datallowconn",
                )
                .await?
                .unwrap_or_else(|| "{}".into());
            // Kept before any limit changes: a crash in between leaves
            // nothing unrecorded. ALTER SYSTEM knows a custom setting only
            // once the session has a placeholder for it.
            self.value(client, node, &format!("SET {SAVED} = ''"))
                .await?;
            self.value(
                client,
                node,
                &format!("ALTER SYSTEM SET {SAVED} = {}", sql_literal(&limits)),
            )
            .await?;
        }
        self.value(
            client,
            node,
            "DO $$DECLARE d text; BEGIN \
               FOR d IN SELECT datname FROM pg_database WHERE datallowconn AND datconnlimit <> 0 LOOP \
                 EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT 0', d); \
               END LOOP; END$$",
        )
        .await
        .map(drop)
    }

    /// Puts back the connection limits a fence replaced, if it did. The
    /// caller reloads the configuration.
    pub(crate) async fn lift_refusal(
        &self,
        client: &Client,
        node: &NodeState,
    ) -> Result<(), Error> {
        let saved = self
            .value(
                client,
                node,
                &format!("SELECT current_setting('{SAVED}', true)"),
            )
            .await?;
        let Some(saved) = saved.filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        writable_session(self, client, node).await?;
        let limits: BTreeMap<String, i32> =
            serde_json::from_str(&saved).map_err(|e| Error::UnexpectedReply {
                node: node.id.to_string(),
                what: format!("{SAVED} = {saved:?}: {e}"),
            })?;
        for (database, limit) in &limits {
            self.value(
                client,
                node,
                &format!(
                    "ALTER DATABASE {} CONNECTION LIMIT {limit}",
                    quote_ident(database)
                ),
            )
            .await?;
        }
        self.value(client, node, &format!("SET {SAVED} = ''"))
            .await?;
        self.value(client, node, &format!("ALTER SYSTEM RESET {SAVED}"))
            .await?;
        tracing::info!(node = %node.id, databases = limits.len(), "fence lifted: connection limits restored");
        Ok(())
    }
}

/// pgha's own session may change the catalog on a node that a fence made
/// read-only by default.
async fn writable_session(
    controller: &SqlNodeController,
    client: &Client,
    node: &NodeState,
) -> Result<(), Error> {
    controller
        .value(client, node, "SET default_transaction_read_only = off")
        .await
        .map(drop)
}

/// A SQL identifier, always quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_their_quotes() {
        assert_eq!(quote_ident("my \"db\""), "\"my \"\"db\"\"\"");
    }
}
