//! `pgha import-pgpool`: a pgpool-II configuration as a commented
//! `pgha.toml`.
//!
//! [`import`] is pure: the texts of `pgpool.conf` and, optionally,
//! `pool_hba.conf` and `pool_passwd` in; the TOML, the converted hba and
//! auth files, and warnings out. Every key it carries over is written
//! under a comment naming the pgpool setting (and line) it came from;
//! every setting it does not carry over is listed at the end under the
//! reason. `cli.rs` is the thin shell that reads and writes the files.
//!
//! ```
//! use pgha::import::{import, Input, Request};
//!
//! let conf = "backend_hostname0 = '10.0.0.1'\nbackend_port0 = 5432\n\
//!             health_check_period = 10\nreplication_mode = off\n";
//! let imported = import(&Request::new(Input::new("pgpool.conf", conf)))?;
//! assert!(imported.toml.contains("host = \"10.0.0.1\""));
//! assert!(imported.toml.contains("probe_interval = \"10s\""));
//! assert!(imported.toml.contains("replication_mode = off (line 4)"));
//! # Ok::<(), pgha::import::ImportError>(())
//! ```

mod cli;
mod context;
mod hba;
mod map_ha;
mod map_local;
mod map_monitor;
mod map_nodes;
mod map_proxy;
mod map_vip;
mod map_watchdog;
mod passwd;
pub mod pgpool_conf;
mod unmapped;

use std::fmt;

pub use cli::{ImportArgs, Outcome};
use context::{origin, Ctx, Toml};
use pgpool_conf::{LineError, PgpoolConf};

/// A file given to the import: its name (for messages and comments) and
/// its text.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The file's name as the operator gave it.
    pub name: &'a str,
    /// Its text.
    pub text: &'a str,
}

impl<'a> Input<'a> {
    /// A file named `name` holding `text`.
    pub fn new(name: &'a str, text: &'a str) -> Self {
        Input { name, text }
    }
}

/// What to import.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `pgpool.conf`.
    pub pgpool_conf: Input<'a>,
    /// `pool_hba.conf`, if given.
    pub pool_hba: Option<Input<'a>>,
    /// `pool_passwd`, if given.
    pub pool_passwd: Option<Input<'a>>,
    /// The name the converted hba file gets, relative to the TOML.
    pub hba_name: &'a str,
    /// The name the converted auth file gets, relative to the TOML.
    pub auth_name: &'a str,
    /// The name the watchdog's secret file gets, relative to the TOML
    /// (pgpool's `wd_authkey` goes there); `None` when the TOML is not
    /// written to a file, so nothing can be written beside it.
    pub secret_name: Option<&'a str>,
    /// pgpool 4.2+'s `pgpool_node_id` file (this host's number among
    /// `hostnameN`), if there is one.
    pub pgpool_node_id: Option<Input<'a>>,
}

impl<'a> Request<'a> {
    /// `pgpool.conf` alone; the converted files would be `hba.conf`,
    /// `userlist.txt` and `watchdog.key`.
    pub fn new(pgpool_conf: Input<'a>) -> Self {
        Request {
            pgpool_conf,
            pool_hba: None,
            pool_passwd: None,
            hba_name: "hba.conf",
            auth_name: "userlist.txt",
            secret_name: Some("watchdog.key"),
            pgpool_node_id: None,
        }
    }
}

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The commented `pgha.toml`.
    pub toml: String,
    /// The hba file, converted from `pool_hba.conf`.
    pub hba: Option<String>,
    /// The auth file, converted from `pool_passwd`.
    pub auth_file: Option<String>,
    /// The watchdog's secret file (pgpool's `wd_authkey`), to be written
    /// readable by its owner only.
    pub watchdog_key: Option<String>,
    /// What the operator must look at, one `file:line: what` each.
    pub warnings: Vec<String>,
}

/// Lines of an input that pgpool itself would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// The file they are in.
    pub file: String,
    /// The bad lines (never empty).
    pub errors: Vec<LineError>,
}

impl fmt::Display for ImportError {
    /// One `file:line: what is wrong` per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{}: {}", self.file, e.line, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportError {}

/// Imports a pgpool-II configuration.
pub fn import(request: &Request<'_>) -> Result<Imported, ImportError> {
    let source = request.pgpool_conf.name;
    let conf = PgpoolConf::parse(request.pgpool_conf.text).map_err(|errors| ImportError {
        file: source.to_owned(),
        errors,
    })?;
    let passwd = request
        .pool_passwd
        .map(|input| {
            passwd::convert(input.text, input.name).map_err(|errors| ImportError {
                file: input.name.to_owned(),
                errors,
            })
        })
        .transpose()?;
    let node_id = request.pgpool_node_id.map(node_id).transpose()?;
    let hba = request
        .pool_hba
        .map(|input| hba::convert(input.text, input.name));
    let mut ctx = Ctx::new(&conf);
    clustering_mode(&mut ctx);
    let mut out = Toml::default();
    out.comment(&format!(
        "pgha.toml, imported from {source} by `pgha import-pgpool`.\n\
         Check it with `pgha check-config --config FILE` (it prints every effective setting).\n\
         This file is for the host whose pgpool.conf was read: [watchdog] id and [local] \
         name this host. pgpool kept one pgpool.conf per host; import each host's own on \
         that host (the [[watchdog.member]] ids come out the same on every host).\n\
         Each key names the pgpool setting (and line) it came from. The proposed \
         [commands], which pgha run does not read yet, and every pgpool setting not carried \
         over with the reason, follow the [[node]], [watchdog], [vip] and [local] sections."
    ));
    map_proxy::proxy(&mut ctx, &mut out);
    server(&mut out);
    auth(&mut ctx, request, hba.as_ref(), passwd.as_ref(), &mut out);
    map_monitor::monitor(&mut ctx, &mut out);
    let nodes = map_nodes::nodes(&mut ctx, &mut out);
    let options = map_watchdog::Options {
        key_name: request.secret_name,
        node_id,
    };
    let watchdog = map_ha::ha(&mut ctx, &nodes, options, &mut out);
    let rest: Vec<_> = ctx.rest().collect();
    unmapped::render(&rest, &mut out);
    if !ctx.problems.is_empty() {
        let mut errors = std::mem::take(&mut ctx.problems);
        errors.sort_by_key(|e| e.line);
        return Err(ImportError {
            file: source.to_owned(),
            errors,
        });
    }
    let mut warnings: Vec<String> = ctx
        .warnings
        .iter()
        .map(|(line, w)| match line {
            0 => format!("{source}: {w}"),
            l => format!("{source}:{l}: {w}"),
        })
        .collect();
    if let (Some(input), Some(hba)) = (request.pool_hba, &hba) {
        warnings.extend(
            hba.left_out
                .iter()
                .map(|(line, why)| format!("{}:{line}: left out: {why}", input.name)),
        );
    }
    if let (Some(input), Some(passwd)) = (request.pool_passwd, &passwd) {
        warnings.extend(
            passwd
                .skipped
                .iter()
                .map(|(line, why)| format!("{}:{line}: left out: {why}", input.name)),
        );
    }
    Ok(Imported {
        toml: out.into_string(),
        hba: hba.map(|h| h.text),
        auth_file: passwd.map(|p| p.text),
        watchdog_key: watchdog.key_file,
        warnings,
    })
}

/// The number in pgpool 4.2+'s `pgpool_node_id` file.
fn node_id(input: Input<'_>) -> Result<u32, ImportError> {
    let (line, text) = input
        .text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .find(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or((1, ""));
    text.parse().map_err(|_| ImportError {
        file: input.name.to_owned(),
        errors: vec![LineError {
            line,
            message: format!("{text:?} is not a pgpool node id (0, 1, …)"),
        }],
    })
}

/// Warns when pgpool ran in a mode pgha cannot take over (the settings
/// themselves are listed with the others not carried over).
fn clustering_mode(ctx: &mut Ctx<'_>) {
    for (key, supported) in [
        ("replication_mode", "off"),
        ("master_slave_sub_mode", "stream"),
        ("backend_clustering_mode", "streaming_replication"),
    ] {
        let Some(entry) = ctx.peek(key) else {
            continue;
        };
        let value = entry.value.text().trim().to_ascii_lowercase();
        let ok = match entry.value.as_bool() {
            Some(b) if key == "replication_mode" => !b,
            _ => value == supported,
        };
        if !ok {
            ctx.warn(
                entry,
                format!(
                    "{key} = {}: pgha works with PostgreSQL streaming replication only",
                    entry.value
                ),
            );
        }
    }
}

fn server(out: &mut Toml) {
    out.table("[server]");
    out.comment(
        "pgpool logged in to PostgreSQL with each client's own password (from pool_passwd). \
         pgha logs in as the client's user (or `user`) with one password: if the servers ask \
         for one (md5/scram in pg_hba.conf), set it here — password_env names the variable \
         holding it.",
    );
    out.proposal("user", "postgres");
    out.proposal("password_env", "PGHA_SERVER_PASSWORD");
}

/// `[auth]`: the converted pool_hba.conf and pool_passwd.
fn auth(
    ctx: &mut Ctx<'_>,
    request: &Request<'_>,
    hba: Option<&hba::Converted>,
    passwd: Option<&passwd::Converted>,
    out: &mut Toml,
) {
    out.table("[auth]");
    let enabled = ctx.bool("enable_pool_hba");
    let passwd_key = ctx.take("pool_passwd");
    let off = enabled.is_none_or(|(on, _)| !on);
    let enabled_note = enabled.map_or("enable_pool_hba not set (off)".to_owned(), |(_, e)| {
        origin(e)
    });
    let passwd_note = passwd_key
        .map(|e| format!(" pgpool: {}.", origin(e)))
        .unwrap_or_default();
    let Some(hba) = hba else {
        if passwd.is_none() && !passwd_note.is_empty() {
            out.comment(&format!(
                "{} — give the file as the third argument to carry its users over.",
                passwd_note.trim()
            ));
        }
        if off {
            out.comment(&format!(
                "{enabled_note}: pgpool let PostgreSQL authenticate each client. pgha checks \
                 clients itself: without hba_file it lets every client in. Give pool_hba.conf \
                 (or a pg_hba.conf-style file) to `pgha import-pgpool`, or write hba_file."
            ));
        } else {
            out.comment(&format!(
                "{enabled_note}: give pool_hba.conf as the second argument of `pgha \
                 import-pgpool` to carry its rules over; without hba_file pgha lets every \
                 client in."
            ));
        }
        if let Some((_, entry)) = enabled {
            ctx.warn(
                entry,
                "no pool_hba.conf given: without [auth] hba_file pgha lets every client in",
            );
        } else {
            ctx.warnings.push((
                0,
                "no pool_hba.conf given: without [auth] hba_file pgha lets every client in".into(),
            ));
        }
        return;
    };
    let hba_input = request.pool_hba.map_or("pool_hba.conf", |i| i.name);
    let mut note = format!(
        "{hba_input}, converted ({} rules; lines pgha cannot use are kept there as comments \
         with the reason).",
        hba.rules
    );
    if off {
        note.push_str(&format!(
            " pgpool had {enabled_note} and let PostgreSQL authenticate clients; pgha checks \
             them itself with these rules."
        ));
    } else {
        note.push_str(&format!(" pgpool: {enabled_note}."));
    }
    match passwd {
        Some(passwd) => {
            out.key("hba_file", request.hba_name, &note);
            let input = request.pool_passwd.map_or("pool_passwd", |i| i.name);
            let mut note = format!(
                "{input}, converted ({} user{}",
                passwd.users,
                if passwd.users == 1 { "" } else { "s" }
            );
            if !passwd.skipped.is_empty() {
                note.push_str(&format!(
                    "; {} left out, each named in the file with the reason",
                    passwd.skipped.len()
                ));
            }
            note.push_str(&format!(").{passwd_note}"));
            out.key("auth_file", request.auth_name, &note);
        }
        None if hba.asks_password => {
            out.comment(&format!(
                "{note} Its rules ask for passwords, and no pool_passwd was given: give it \
                 as the third argument (or write auth_file / auth_query), then uncomment.{passwd_note}"
            ));
            out.proposal("hba_file", request.hba_name);
            ctx.warnings.push((
                0,
                "pool_hba.conf asks for passwords but no pool_passwd was given: [auth] left commented".into(),
            ));
        }
        None => out.key(
            "hba_file",
            request.hba_name,
            &format!("{note}{passwd_note}"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests_ha;
