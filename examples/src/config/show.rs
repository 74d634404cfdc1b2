//! The effective settings, written as a `pgha.toml` that reads back to the
//! same settings (`pgha check-config`). Passwords are never written: a
//! comment says which are set.

use toml::Spanned;

use super::file::{
    AuthSection, FileConfig, MonitorSection, NodeSection, ProxySection, ServerSection,
    ServerTlsSection, TlsSection,
};
use super::units::{ByteLimit, Dur, DurLimit};
use super::RunConfig;

/// A value without a place: written, never reported against.
fn sp<T>(value: T) -> Option<Spanned<T>> {
    Some(Spanned::new(0..0, value))
}

pub(super) fn render(cfg: &RunConfig) -> String {
    let p = &cfg.proxy;
    let connect = &cfg.controller.connect;
    let file = FileConfig {
        proxy: ProxySection {
            listen: Some(cfg.listen),
            http: cfg.http,
            unix_socket_dir: cfg.unix_socket_dir.clone(),
            threads: sp(cfg.threads),
            pool_mode: Some(p.pool_mode),
            consistency: Some(p.consistency),
            pool_size: sp(p.pool_size),
            min_pool_size: Some(p.min_pool_size),
            pool_timeout: Some(Dur(p.pool_timeout)),
            max_client_conn: sp(p.max_client_conn),
            load_balance: Some(p.load_balance),
            max_standby_lag: Some(ByteLimit(p.max_standby_lag_bytes)),
            max_standby_lag_time: Some(DurLimit(p.max_standby_lag_time)),
            no_primary_wait: Some(Dur(p.no_primary_wait)),
            shutdown_timeout: Some(Dur(p.shutdown_timeout)),
            server_idle_timeout: Some(Dur(p.server_idle_timeout)),
            server_lifetime: Some(Dur(p.server_lifetime)),
            server_reset_query: Some(p.server_reset_query.clone()),
            connect_timeout: Some(Dur(p.connect_timeout)),
            standby_connect_timeout: Some(Dur(p.standby_connect_timeout)),
            standby_read_timeout: Some(Dur(p.standby_read_timeout)),
            max_prepared_statements: Some(p.max_prepared_statements),
            startup_timeout: Some(Dur(p.startup_timeout)),
            admin_users: Some(p.admin_users.clone()),
        },
        tls: TlsSection {
            cert_file: cfg.tls.cert_file.clone().and_then(sp),
            key_file: cfg.tls.key_file.clone().and_then(sp),
            required: sp(p.tls_required),
        },
        server_tls: ServerTlsSection {
            mode: sp(cfg.tls.server_mode),
            ca_file: cfg.tls.server_ca_file.clone().and_then(sp),
        },
        server: ServerSection {
            user: p.server_auth.user.clone(),
            password: None,
            password_env: None,
        },
        auth: AuthSection {
            hba_file: cfg.hba_file.clone().and_then(sp),
            auth_file: cfg.auth_file.clone().and_then(sp),
            auth_query: p.auth_query.clone(),
        },
        monitor: MonitorSection {
            probe_interval: sp(Dur(cfg.monitor.probe_interval)),
            probe_timeout: sp(Dur(cfg.monitor.probe_timeout)),
            failures_before_down: sp(cfg.policy.failures_before_down),
            minimum_down_time: Some(Dur(cfg.policy.minimum_down_time)),
            maximum_lag: Some(ByteLimit(cfg.policy.maximum_lag_bytes)),
            auto_rejoin: Some(cfg.policy.auto_rejoin),
            state_file: cfg.monitor.state_file.clone().and_then(sp),
            catch_up_timeout: Some(Dur(cfg.monitor.catch_up_timeout)),
            action_timeout: Some(Dur(cfg.controller.timeout)),
            user: Some(connect.user.clone()),
            password: None,
            password_env: None,
            dbname: Some(connect.dbname.clone()),
            replication_user: Some(connect.replication_user.clone()),
            replication_password: None,
            replication_password_env: None,
        },
        nodes: cfg
            .nodes
            .iter()
            .map(|n| NodeSection {
                name: Spanned::new(0..0, n.id.as_str().to_owned()),
                host: Spanned::new(0..0, n.host.clone()),
                port: sp(n.port),
                weight: Some(n.weight),
                priority: Some(n.priority),
            })
            .collect(),
        watchdog: cfg.watchdog.as_ref().map(super::cluster::render_watchdog),
        vip: cfg.vip.as_ref().map(super::cluster::render_vip),
        local: cfg.local.as_ref().map(super::local::render),
    };
    let mut out = String::from("# pgha: effective settings");
    if let Some(source) = &cfg.source {
        out.push_str(&format!(" (from {} and the flags)", source.display()));
    }
    out.push('\n');
    for (what, set) in [
        ("[server] password", p.server_auth.password.is_some()),
        ("[monitor] password", connect.password.is_some()),
        (
            "[monitor] replication_password",
            connect.replication_password.is_some(),
        ),
    ] {
        if set {
            out.push_str(&format!("# {what}: set (not shown)\n"));
        }
    }
    if cfg.watchdog.is_some() {
        out.push_str("# [watchdog] secret: set (not shown)\n");
    }
    for remark in cfg.remarks() {
        out.push_str(&format!("# note: {remark}\n"));
    }
    if cfg.proxy.client_auth.is_none() {
        out.push_str("# no [auth] hba_file: every client is trusted\n");
    }
    out.push('\n');
    match toml::to_string_pretty(&file) {
        Ok(text) => out.push_str(&text),
        Err(e) => out.push_str(&format!("# the settings cannot be written: {e}\n")),
    }
    out
}
