//! From a parsed `pgha.toml` to the library's settings: each key present
//! replaces one default, and what serde cannot see (zero sizes, duplicate
//! names, the hba and auth files) is checked here, pointing at the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pgha_core::{NodeState, Role};
use pgha_proxy::auth::{AuthFile, HbaRules, Method};
use pgha_proxy::{ClientAuth, TlsConfig, TlsError};
use toml::Spanned;

use super::error::{Problem, Source};
use super::file::{
    AuthSection, FileConfig, MonitorSection, NodeSection, ProxySection, ServerSection,
    ServerTlsSection, TlsSection,
};
use super::tls::{server_tls as build_server_tls, ServerTlsMode, ServerTlsProblem};
use super::{ConfigError, RunConfig};

/// Looks up an environment variable (a parameter, so tests need not touch
/// the process's environment).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The place, text and environment problems are reported against.
pub(super) struct Ctx<'a> {
    pub(super) src: Source<'a>,
    env: Env<'a>,
    problems: Vec<Problem>,
}

/// Maps `file` onto the defaults; every problem found is reported at once.
pub(super) fn resolve(
    file: FileConfig,
    src: Source<'_>,
    env: Env<'_>,
) -> Result<RunConfig, ConfigError> {
    let mut ctx = Ctx {
        src,
        env,
        problems: Vec::new(),
    };
    let mut cfg = RunConfig {
        source: Some(src.path.to_path_buf()),
        ..RunConfig::default()
    };
    proxy(file.proxy, &mut cfg, &mut ctx);
    tls(file.tls, &mut cfg, &mut ctx);
    server(file.server, &mut cfg, &mut ctx);
    server_tls(file.server_tls, &mut cfg, &mut ctx);
    auth(file.auth, &mut cfg, &mut ctx);
    monitor(file.monitor, &mut cfg, &mut ctx);
    cfg.nodes = nodes(file.nodes, &mut ctx);
    // A [watchdog] with mistakes is reported as such, not again as missing.
    let has_watchdog = file.watchdog.is_some();
    cfg.watchdog = file
        .watchdog
        .and_then(|w| super::cluster::watchdog(w, &mut ctx));
    cfg.vip = file
        .vip
        .and_then(|v| super::cluster::vip(v, has_watchdog, &mut ctx));
    cfg.local = file
        .local
        .and_then(|l| super::local::local(l, &cfg.nodes, &mut ctx));
    if ctx.problems.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError {
            problems: ctx.problems,
        })
    }
}

/// Replaces `target` when the key was given.
fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

impl Ctx<'_> {
    pub(super) fn problem(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        self.problems.push(self.src.at(span, message));
    }

    /// A count that must be at least 1.
    fn positive<T: Copy + PartialEq + Default>(
        &mut self,
        key: &str,
        value: Option<Spanned<T>>,
    ) -> Option<T> {
        let value = value?;
        if *value.get_ref() == T::default() {
            self.problem(value.span(), format!("{key} must be at least 1"));
            return None;
        }
        Some(*value.get_ref())
    }

    /// A secret given in the file (`key`) or named by `key_env`.
    pub(super) fn secret(
        &mut self,
        key: &str,
        value: Option<Spanned<String>>,
        var: Option<Spanned<String>>,
    ) -> Option<String> {
        match (value, var) {
            (Some(_), Some(var)) => {
                self.problem(var.span(), format!("give {key} or {key}_env, not both"));
                None
            }
            (Some(value), None) => Some(value.into_inner()),
            (None, Some(var)) => match (self.env)(var.get_ref()) {
                Some(secret) if !secret.is_empty() => Some(secret),
                _ => {
                    let message = format!(
                        "{key}_env: environment variable {} is not set (or empty)",
                        var.get_ref()
                    );
                    self.problem(var.span(), message);
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// A path from the file, relative to the file's own directory (so the
    /// daemon's working directory does not change what it reads).
    pub(super) fn path(&self, path: &Path) -> PathBuf {
        let base = self.src.path.parent().unwrap_or(Path::new(""));
        let joined = base.join(path);
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// Reads a file named by a key; a failure is reported at the key.
    fn read(&mut self, key: &str, path: &Spanned<PathBuf>) -> Option<(PathBuf, String)> {
        let full = self.path(path.get_ref());
        match std::fs::read_to_string(&full) {
            Ok(text) => Some((full, text)),
            Err(e) => {
                self.problem(path.span(), format!("{key} {}: {e}", full.display()));
                None
            }
        }
    }
}

fn proxy(section: ProxySection, cfg: &mut RunConfig, ctx: &mut Ctx<'_>) {
    let p = &mut cfg.proxy;
    set(&mut cfg.listen, section.listen);
    set(&mut cfg.http, section.http.map(Some));
    if let Some(dir) = section.unix_socket_dir {
        cfg.unix_socket_dir = Some(ctx.path(&dir));
    }
    set(&mut cfg.threads, ctx.positive("threads", section.threads));
    set(&mut p.pool_mode, section.pool_mode);
    set(&mut p.consistency, section.consistency);
    set(
        &mut p.pool_size,
        ctx.positive("pool_size", section.pool_size),
    );
    set(&mut p.min_pool_size, section.min_pool_size);
    set(&mut p.pool_timeout, section.pool_timeout.map(|d| d.0));
    set(
        &mut p.max_client_conn,
        ctx.positive("max_client_conn", section.max_client_conn),
    );
    set(&mut p.load_balance, section.load_balance);
    set(
        &mut p.max_standby_lag_bytes,
        section.max_standby_lag.map(|l| l.0),
    );
    set(
        &mut p.max_standby_lag_time,
        section.max_standby_lag_time.map(|l| l.0),
    );
    set(&mut p.no_primary_wait, section.no_primary_wait.map(|d| d.0));
    set(
        &mut p.shutdown_timeout,
        section.shutdown_timeout.map(|d| d.0),
    );
    set(
        &mut p.server_idle_timeout,
        section.server_idle_timeout.map(|d| d.0),
    );
    set(&mut p.server_lifetime, section.server_lifetime.map(|d| d.0));
    set(&mut p.server_reset_query, section.server_reset_query);
    set(&mut p.connect_timeout, section.connect_timeout.map(|d| d.0));
    set(
        &mut p.standby_connect_timeout,
        section.standby_connect_timeout.map(|d| d.0),
    );
    set(
        &mut p.standby_read_timeout,
        section.standby_read_timeout.map(|d| d.0),
    );
    set(
        &mut p.max_prepared_statements,
        section.max_prepared_statements,
    );
    set(&mut p.startup_timeout, section.startup_timeout.map(|d| d.0));
    set(&mut p.admin_users, section.admin_users);
}

fn tls(section: TlsSection, cfg: &mut RunConfig, ctx: &mut Ctx<'_>) {
    let has_files = section.cert_file.is_some() && section.key_file.is_some();
    match (section.cert_file, section.key_file) {
        (Some(cert), Some(key)) => {
            let (cert_path, key_path) = (ctx.path(cert.get_ref()), ctx.path(key.get_ref()));
            match TlsConfig::from_pem_files(&cert_path, &key_path) {
                Ok(built) => {
                    cfg.proxy.tls = Some(built);
                    cfg.tls.cert_file = Some(cert_path);
                    cfg.tls.key_file = Some(key_path);
                }
                Err(e) => {
                    // At the key whose file is at fault; the error names the file.
                    let (span, key_name) = match &e {
                        TlsError::File { path, .. } if *path == key_path => {
                            (key.span(), "key_file")
                        }
                        TlsError::File { .. } => (cert.span(), "cert_file"),
                        TlsError::Rustls(_) => (cert.span(), "cert_file and key_file:"),
                    };
                    ctx.problem(span, format!("{key_name} {e}"));
                }
            }
        }
        (Some(cert), None) => ctx.problem(cert.span(), "cert_file needs key_file, its private key"),
        (None, Some(key)) => ctx.problem(key.span(), "key_file needs cert_file, its certificate"),
        (None, None) => {}
    }
    if let Some(required) = section.required {
        if *required.get_ref() && !has_files {
            ctx.problem(
                required.span(),
                "required = true needs cert_file and key_file: without them no client can use TLS",
            );
        }
        cfg.proxy.tls_required = required.into_inner();
    }
}

fn server_tls(section: ServerTlsSection, cfg: &mut RunConfig, ctx: &mut Ctx<'_>) {
    let mode = section
        .mode
        .as_ref()
        .map_or(ServerTlsMode::Disable, |m| *m.get_ref());
    let mode_span = section.mode.as_ref().map(Spanned::span).unwrap_or_default();
    let ca_span = section.ca_file.as_ref().map(Spanned::span);
    let ca = section.ca_file.as_ref().map(|c| ctx.path(c.get_ref()));
    match build_server_tls(mode, ca.as_deref()) {
        Ok(built) => {
            cfg.proxy.server_tls = built;
            cfg.tls.server_mode = mode;
            cfg.tls.server_ca_file = ca;
        }
        Err(ServerTlsProblem::NoCa) => ctx.problem(
            mode_span,
            "mode = \"verify-full\" needs ca_file, the CA the servers' certificates chain to",
        ),
        Err(ServerTlsProblem::CaWithoutVerify) => ctx.problem(
            ca_span.unwrap_or_default(),
            "ca_file goes with mode = \"verify-full\" (no other mode checks certificates)",
        ),
        Err(ServerTlsProblem::Tls(e)) => {
            ctx.problem(ca_span.unwrap_or(mode_span), format!("ca_file {e}"));
        }
    }
}

fn server(section: ServerSection, cfg: &mut RunConfig, ctx: &mut Ctx<'_>) {
    let auth = &mut cfg.proxy.server_auth;
    set(&mut auth.user, section.user.map(Some));
    let password = ctx.secret("password", section.password, section.password_env);
    set(&mut auth.password, password.map(Some));
}

fn auth(section: AuthSection, cfg: &mut RunConfig, ctx: &mut Ctx<'_>) {
    if section.auth_query.is_some() {
        cfg.proxy.auth_query = section.auth_query.clone();
    }
    let Some(hba_key) = section.hba_file else {
        if let Some(auth_key) = section.auth_file {
            ctx.problem(
                auth_key.span(),
                "auth_file needs hba_file: the hba rules say which clients give a password",
            );
        }
        return;
    };
    let hba = ctx.read("hba_file", &hba_key).and_then(|(path, text)| {
        let parsed = HbaRules::parse(&text, &path.display().to_string());
        let rules = report(ctx, &path, parsed, |e| (e.line, e.message.clone()))?;
        Some((path, rules))
    });
    let users = match &section.auth_file {
        None => Some(None),
        Some(key) => ctx.read("auth_file", key).and_then(|(path, text)| {
            let parsed = AuthFile::parse(&text, &path.display().to_string());
            report(ctx, &path, parsed, |e| (e.line, e.message.clone()))
                .map(|users| Some((path, users)))
        }),
    };
    let (Some((hba_path, hba)), Some(users)) = (hba, users) else {
        return;
    };
    if users.is_none() {
        // Without an auth file every password exchange fails: say so now
        // rather than at each client's login.
        if let Some(rule) = hba.rules().iter().find(|r| needs_password(r.method())) {
            ctx.problem(
                hba_key.span(),
                format!(
                    "{}:{} asks for a password ({}), but [auth] has no auth_file listing any",
                    hba_path.display(),
                    rule.line(),
                    rule.method()
                ),
            );
            return;
        }
    }
    tracing::debug!(hba = %hba_path.display(), rules = hba.rules().len(), "hba rules read");
    cfg.hba_file = Some(hba_path);
    let users = users.map(|(path, users)| {
        cfg.auth_file = Some(path);
        users
    });
    cfg.proxy.client_auth = Some(ClientAuth {
        hba,
        users: users.unwrap_or_default(),
    });
}

fn needs_password(method: Method) -> bool {
    !matches!(method, Method::Trust | Method::Reject)
}

/// The parsers' own `line: message` errors, as problems in their file.
fn report<T, E>(
    ctx: &mut Ctx<'_>,
    path: &Path,
    parsed: Result<T, Vec<E>>,
    place: impl Fn(&E) -> (usize, String),
) -> Option<T> {
    match parsed {
        Ok(value) => Some(value),
        Err(errors) => {
            ctx.problems.extend(errors.iter().map(|e| {
                let (line, message) = place(e);
                Problem {
                    file: Some(path.to_path_buf()),
                    line: Some(line),
                    column: None,
                    message,
                }
            }));
            None
        }
    }
}

fn monitor(section: MonitorSection, cfg: &mut RunConfig, ctx: &mut Ctx<'_>) {
    for (key, value) in [
        ("probe_interval", &section.probe_interval),
        ("probe_timeout", &section.probe_timeout),
    ] {
        match value {
            Some(d) if d.get_ref().0.is_zero() => {
                ctx.problem(d.span(), format!("{key} must be longer than 0"));
            }
            _ => {}
        }
    }
    let m = &mut cfg.monitor;
    set(
        &mut m.probe_interval,
        section.probe_interval.map(|d| d.into_inner().0),
    );
    set(
        &mut m.probe_timeout,
        section.probe_timeout.map(|d| d.into_inner().0),
    );
    set(
        &mut m.catch_up_timeout,
        section.catch_up_timeout.map(|d| d.0),
    );
    if let Some(path) = section.state_file {
        m.state_file = Some(ctx.path(path.get_ref()));
    }
    let policy = &mut cfg.policy;
    set(
        &mut policy.failures_before_down,
        ctx.positive("failures_before_down", section.failures_before_down),
    );
    set(
        &mut policy.minimum_down_time,
        section.minimum_down_time.map(|d| d.0),
    );
    set(
        &mut policy.maximum_lag_bytes,
        section.maximum_lag.map(|l| l.0),
    );
    set(&mut policy.auto_rejoin, section.auto_rejoin);
    let controller = &mut cfg.controller;
    set(&mut controller.timeout, section.action_timeout.map(|d| d.0));
    let connect = &mut controller.connect;
    set(&mut connect.user, section.user);
    set(&mut connect.dbname, section.dbname);
    set(&mut connect.replication_user, section.replication_user);
    let password = ctx.secret("password", section.password, section.password_env);
    set(&mut connect.password, password.map(Some));
    let password = ctx.secret(
        "replication_password",
        section.replication_password,
        section.replication_password_env,
    );
    set(&mut connect.replication_password, password.map(Some));
}

fn nodes(sections: Vec<NodeSection>, ctx: &mut Ctx<'_>) -> Vec<NodeState> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut nodes = Vec::new();
    for node in sections {
        let name = node.name.get_ref().trim();
        if name.is_empty() {
            ctx.problem(node.name.span(), "a node's name must not be empty");
        } else if let Some(line) = seen.get(name) {
            let message = format!("node name {name:?} is already used on line {line}");
            ctx.problem(node.name.span(), message);
        } else {
            let line = ctx.src.at(node.name.span(), "").line.unwrap_or_default();
            seen.insert(name.to_owned(), line);
        }
        if node.host.get_ref().trim().is_empty() {
            ctx.problem(
                node.host.span(),
                format!("node {name:?}: host must not be empty"),
            );
        }
        let port = match node.port {
            Some(port) if *port.get_ref() == 0 => {
                ctx.problem(port.span(), format!("node {name:?}: port must not be 0"));
                0
            }
            Some(port) => port.into_inner(),
            None => 5432,
        };
        // Roles are assigned when the topology is built (first = primary).
        let mut state = NodeState::new(name, Role::Standby, node.host.get_ref().trim(), port);
        set(&mut state.weight, node.weight);
        set(&mut state.priority, node.priority);
        nodes.push(state);
    }
    nodes
}
