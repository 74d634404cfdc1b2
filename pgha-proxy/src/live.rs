//! The settings a reload changes while the proxy serves, and the plan of
//! a reload: which changed settings take effect now, which need a restart.
//!
//! What the relay reads is fixed at start (`Shared::config`); the rest of
//! the proxy reads the live copy (`Shared::live`). A reload builds the next
//! live copy from the running one with the live settings taken from the new
//! configuration, so a setting that needs a restart never half-changes.

use std::sync::{Arc, RwLock};

use crate::admin::ReloadLine;
use crate::ProxyConfig;

/// The settings a reload applies at once. Each is read where it is used,
/// per new client, transaction or connection: pool sizes (existing pools
/// resize), `pool_timeout`, `min_pool_size`, `max_client_conn`, the lag
/// limits of read balancing, `no_primary_wait`, `server_idle_timeout`,
/// the connect and startup deadlines, `shutdown_timeout`, `admin_users`,
/// `auth_query`, and client authentication (the hba rules and the auth
/// file, for clients that log in from now on).
pub const LIVE_SETTINGS: &[&str] = &[
    "pool_size",
    "min_pool_size",
    "pool_timeout",
    "max_client_conn",
    "max_standby_lag_bytes",
    "max_standby_lag_time",
    "no_primary_wait",
    "server_idle_timeout",
    "connect_timeout",
    "standby_connect_timeout",
    "startup_timeout",
    "shutdown_timeout",
    "admin_users",
    "auth_query",
    "client_auth",
];

/// Settings whose values are secrets: a reload says they changed, never
/// to what.
const SECRET: &[&str] = &["server_password", "client_auth"];

/// Why a setting needs a restart: the sessions running hold it.
const RESTART: &str = "needs a restart: running sessions hold it";

/// The live settings.
#[derive(Debug)]
pub(crate) struct Live(RwLock<Arc<ProxyConfig>>);

impl Live {
    pub(crate) fn new(config: ProxyConfig) -> Self {
        Self(RwLock::new(Arc::new(config)))
    }

    /// The settings now.
    pub(crate) fn get(&self) -> Arc<ProxyConfig> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, config: ProxyConfig) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }
}

/// The next live settings after a reload from `running` to `wanted`, and
/// one line per setting whose value differs, applied or not.
pub fn plan(running: &ProxyConfig, wanted: &ProxyConfig) -> (ProxyConfig, Vec<ReloadLine>) {
    let mut next = running.clone();
    next.pool_size = wanted.pool_size;
    next.min_pool_size = wanted.min_pool_size;
    next.pool_timeout = wanted.pool_timeout;
    next.max_client_conn = wanted.max_client_conn;
    next.max_standby_lag_bytes = wanted.max_standby_lag_bytes;
    next.max_standby_lag_time = wanted.max_standby_lag_time;
    next.no_primary_wait = wanted.no_primary_wait;
    next.server_idle_timeout = wanted.server_idle_timeout;
    next.connect_timeout = wanted.connect_timeout;
    next.standby_connect_timeout = wanted.standby_connect_timeout;
    next.startup_timeout = wanted.startup_timeout;
    next.shutdown_timeout = wanted.shutdown_timeout;
    next.admin_users = wanted.admin_users.clone();
    next.auth_query = wanted.auth_query.clone();
    next.client_auth = wanted.client_auth.clone();

    let mut lines = Vec::new();
    let old = running.settings();
    for (name, value) in wanted.settings() {
        let before = old
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str());
        if before == Some(value.as_str()) || name == "client_auth" {
            continue;
        }
        lines.push(line(name, before.unwrap_or(""), &value));
    }
    // Rules and secrets are not in the settings' text: compared whole.
    if format!("{:?}", running.client_auth) != format!("{:?}", wanted.client_auth) {
        lines.push(line("client_auth", "", ""));
    }
    if format!("{:?}", running.classify) != format!("{:?}", wanted.classify) {
        lines.push(line("classify", "", ""));
    }
    (next, lines)
}

fn line(setting: &str, before: &str, after: &str) -> ReloadLine {
    let applied = LIVE_SETTINGS.contains(&setting);
    let change = if SECRET.contains(&setting) || (before.is_empty() && after.is_empty()) {
        "changed".to_string()
    } else {
        format!("{before} -> {after}")
    };
    ReloadLine {
        setting: setting.to_string(),
        applied,
        detail: if applied {
            change
        } else {
            format!("{change}; {RESTART}")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoolMode;

    #[test]
    fn live_settings_are_applied_and_the_others_named_and_kept() {
        let running = ProxyConfig::default();
        let wanted = ProxyConfig {
            pool_size: 5,
            pool_mode: PoolMode::Transaction,
            ..ProxyConfig::default()
        };
        let (next, lines) = plan(&running, &wanted);
        assert_eq!(next.pool_size, 5);
        assert_eq!(next.pool_mode, PoolMode::Session, "kept until a restart");
        let pool_size = lines.iter().find(|l| l.setting == "pool_size");
        assert_eq!(
            pool_size.map(|l| (l.applied, l.detail.as_str())),
            Some((true, "20 -> 5"))
        );
        let mode = lines.iter().find(|l| l.setting == "pool_mode");
        assert!(mode.is_some_and(|l| !l.applied && l.detail.contains("restart")));
        assert_eq!(lines.len(), 2, "{lines:?}");
    }

    #[test]
    fn an_unchanged_configuration_reports_nothing() {
        let (_, lines) = plan(&ProxyConfig::default(), &ProxyConfig::default());
        assert_eq!(lines, []);
    }

    #[test]
    fn a_changed_secret_is_named_but_not_shown() {
        let mut wanted = ProxyConfig::default();
        wanted.server_auth.password = Some("s3cret".into());
        let (_, lines) = plan(&ProxyConfig::default(), &wanted);
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].applied);
        assert!(!lines[0].detail.contains("s3cret"));
    }
}
