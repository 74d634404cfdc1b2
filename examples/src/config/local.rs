//! `[local]`: the PostgreSQL server on this host, which this pgha's local
//! agent keeps a standby of the committed primary (pgha_core::run_agent).
//!
//! ```toml
//! [local]
//! node = "node0"                            # the [[node]] on this host
//! data_dir = "/var/lib/postgresql/15/main"
//! bindir = "/usr/lib/postgresql/15/bin"     # pg_ctl, pg_rewind, pg_basebackup
//! run_as = "postgres"                       # when pgha runs as root
//! # systemd_unit = "postgresql@15-main"     # start/stop through systemd instead of pg_ctl
//! # pg_ctl_options = "-c config_file=/etc/postgresql/15/main/postgresql.conf"
//! rejoin_after = "5s"
//! ```

use std::path::PathBuf;

use pgha_core::{AgentConfig, NodeId};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::resolve::Ctx;
use super::units::Dur;

/// Where PostgreSQL's programs are on Debian when `bindir` is not given.
const DEFAULT_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// `[local]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSection {
    /// The `[[node]]` whose server runs on this host.
    pub node: Spanned<String>,
    /// Its data directory.
    pub data_dir: Spanned<PathBuf>,
    /// PostgreSQL's programs (default /usr/lib/postgresql/15/bin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindir: Option<Spanned<PathBuf>>,
    /// The operating-system user that owns the data directory, when pgha
    /// runs as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<Spanned<String>>,
    /// Start and stop through this systemd unit instead of `pg_ctl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// Server options for `pg_ctl start -o`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_ctl_options: Option<String>,
    /// How long the server must be down before the agent rejoins it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin_after: Option<Dur>,
}

/// How the local server is started and stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalStart {
    /// `pg_ctl`, with these server options.
    PgCtl(Option<String>),
    /// A systemd unit.
    Systemd(String),
}

/// The local server, resolved.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Its node.
    pub node: NodeId,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// PostgreSQL's programs.
    pub bindir: PathBuf,
    /// (name, uid, gid) to run the tools as.
    pub run_as: Option<(String, u32, u32)>,
    /// Start and stop.
    pub start: LocalStart,
    /// When the agent acts.
    pub agent: AgentConfig,
}

pub(super) fn local(
    section: LocalSection,
    nodes: &[pgha_core::NodeState],
    ctx: &mut Ctx<'_>,
) -> Option<LocalSettings> {
    let node = NodeId::new(section.node.get_ref().trim());
    if !nodes.iter().any(|n| n.id == node) {
        ctx.problem(
            section.node.span(),
            format!("[local] node {node:?} is not one of the [[node]] names"),
        );
    }
    let data_dir = ctx.path(section.data_dir.get_ref());
    let bindir = section
        .bindir
        .as_ref()
        .map(|b| ctx.path(b.get_ref()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BINDIR));
    let run_as = match &section.run_as {
        None => None,
        Some(name) => match nix::unistd::User::from_name(name.get_ref()) {
            Ok(Some(user)) => Some((name.get_ref().clone(), user.uid.as_raw(), user.gid.as_raw())),
            Ok(None) => {
                ctx.problem(
                    name.span(),
                    format!("run_as: no user {:?} on this host", name.get_ref()),
                );
                None
            }
            Err(e) => {
                ctx.problem(name.span(), format!("run_as: looking up the user: {e}"));
                None
            }
        },
    };
    let start = match section.systemd_unit {
        Some(unit) => LocalStart::Systemd(unit),
        None => LocalStart::PgCtl(section.pg_ctl_options),
    };
    let mut agent = AgentConfig::default();
    if let Some(d) = section.rejoin_after {
        agent.rejoin_after = d.0;
    }
    Some(LocalSettings {
        node,
        data_dir,
        bindir,
        run_as,
        start,
        agent,
    })
}

/// `[local]` as `check-config` writes it back.
pub(super) fn render(l: &LocalSettings) -> LocalSection {
    let (systemd_unit, pg_ctl_options) = match &l.start {
        LocalStart::PgCtl(options) => (None, options.clone()),
        LocalStart::Systemd(unit) => (Some(unit.clone()), None),
    };
    LocalSection {
        node: Spanned::new(0..0, l.node.to_string()),
        data_dir: Spanned::new(0..0, l.data_dir.clone()),
        bindir: Some(Spanned::new(0..0, l.bindir.clone())),
        run_as: l
            .run_as
            .as_ref()
            .map(|(n, _, _)| Spanned::new(0..0, n.clone())),
        systemd_unit,
        pg_ctl_options,
        rejoin_after: Some(Dur(l.agent.rejoin_after)),
    }
}
