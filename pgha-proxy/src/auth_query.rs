//! `auth_query`: a user missing from the auth file is looked up on the
//! primary (PgBouncer's idea), so passwords live in PostgreSQL alone.
//!
//! The query gets the user name as `$1` and returns the stored secret
//! (a SCRAM verifier or an md5 hash, as in `pg_authid.rolpassword`), e.g.
//! `SELECT rolpassword FROM pg_authid WHERE rolname = $1` for a superuser,
//! or a `SECURITY DEFINER` function for a less privileged server user. It
//! runs on a fresh connection to the primary of the current term as the
//! proxy's server user; a failure is logged and the user treated as unknown
//! (the client then fails authentication like any unknown user: `28P01`).

use pgha_core::ConnectConfig;

use crate::auth::Secret;
use crate::Shared;

/// The secret of `user` from the primary, if `auth_query` is configured
/// and finds one.
pub(crate) async fn lookup(shared: &Shared, user: &str) -> Option<Secret> {
    let live = shared.live();
    let query = live.auth_query.as_deref()?;
    let primary = shared.topology.borrow().usable_primary().cloned()?;
    let auth = &shared.config.server_auth;
    let connect = ConnectConfig {
        user: auth
            .user
            .clone()
            .unwrap_or_else(|| ConnectConfig::default().user),
        password: auth.password.clone(),
        application_name: "pgha auth_query".into(),
        ..ConnectConfig::default()
    };
    let timeout = shared.config.connect_timeout;
    let client = match connect.connect(&primary, timeout).await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(node = %primary.id, error = %e, "auth_query: cannot connect to the primary");
            return None;
        }
    };
    let row = match tokio::time::timeout(timeout, client.query_opt(query, &[&user])).await {
        Ok(Ok(row)) => row?,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "auth_query failed");
            return None;
        }
        Err(_) => {
            tracing::warn!(?timeout, "auth_query: no answer in time");
            return None;
        }
    };
    let text: Option<String> = row.try_get(0).ok()?;
    match Secret::parse(&text?) {
        Ok(secret) => Some(secret),
        Err(e) => {
            tracing::warn!(user, error = %e, "auth_query returned an unusable secret");
            None
        }
    }
}
