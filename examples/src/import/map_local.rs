//! `[local]`: the backend on this host, which this pgha's local agent keeps
//! a standby of the primary (and rewinds after a failover).

use super::context::Toml;
use super::map_nodes::Node;

/// Writes `[local]` for the backend whose host is `this_host` (the
/// watchdog's name for this host); a comment when there is none.
pub(super) fn local(
    this_host: Option<&str>,
    nodes: &[Node],
    warnings: &mut Vec<(usize, String)>,
    out: &mut Toml,
) {
    let Some(host) = this_host else {
        out.blank();
        out.comment(
            "[local] left out: pgpool.conf does not say which host this is (no watchdog, \
             or no wd_hostname / pgpool_node_id). On each database host, add [local] with node = the [[node]] \
             on that host and data_dir = its data directory, so pgha keeps it a standby of \
             the primary.",
        );
        return;
    };
    let Some(node) = nodes.iter().find(|n| n.host.as_deref() == Some(host)) else {
        out.blank();
        out.comment(&format!(
            "[local] left out: this host ({host}) is none of the backend_hostnameN, so \
             pgpool ran apart from PostgreSQL. pgha's local agent keeps the PostgreSQL on its \
             own host a standby: run pgha on each database host with its [local]."
        ));
        return;
    };
    out.table("[local]");
    out.comment(&format!(
        "The backend on this host ({host}): pgha keeps it a standby of the primary and \
         rewinds it after a failover, which pgpool's follow and recovery scripts did."
    ));
    out.key("node", node.name.clone(), "");
    let Some(dir) = node.data_dir.as_deref() else {
        out.comment(&format!(
            "data_dir = ? — pgpool.conf has no backend_data_directory{}: set it; \
             check-config refuses the file until then.",
            node.index
        ));
        warnings.push((0, format!("[local] data_dir: set it for {}", node.name)));
        return;
    };
    out.key(
        "data_dir",
        dir,
        &format!("pgpool: backend_data_directory{}.", node.index),
    );
    match pgdg_version(dir) {
        Some(version) => out.key(
            "bindir",
            format!("/usr/pgsql-{version}/bin"),
            "pg_ctl, pg_rewind, pg_basebackup: the PGDG RPM layout the data directory \
             suggests (the default is Debian's /usr/lib/postgresql/15/bin). Check it.",
        ),
        None => out.comment(
            "bindir = \"/usr/lib/postgresql/15/bin\" — the default (Debian's): set it to \
             where pg_ctl, pg_rewind and pg_basebackup are.",
        ),
    }
    out.key(
        "run_as",
        "postgres",
        "pgpool's failover and recovery scripts ran as postgres, the data directory's \
         owner; pgha runs pg_ctl and pg_rewind as this user (switching to it needs pgha \
         started as root).",
    );
    match pgdg_version(dir) {
        Some(version) => {
            // PGDG's RPMs start PostgreSQL with systemd; pgha starting it
            // with pg_ctl beside systemd would fight it.
            out.comment(&format!(
                "systemd_unit = \"postgresql-{version}\" — PGDG's RPMs start PostgreSQL \
                 with systemd: if this host does (systemctl status postgresql-{version}), \
                 uncomment it so pgha and systemd do not fight over the server (else pgha \
                 uses pg_ctl)."
            ));
            warnings.push((
                0,
                format!(
                    "[local]: if systemd starts PostgreSQL here (postgresql-{version}.service), \
                     set systemd_unit"
                ),
            ));
        }
        None => out.comment(
            "systemd_unit = \"…\" — if systemd starts this PostgreSQL, name its unit so \
             pgha and systemd do not fight over it (else pgha uses pg_ctl).",
        ),
    }
}

/// `10` of the PGDG RPM data directory `/var/lib/pgsql/10/data`.
fn pgdg_version(dir: &str) -> Option<&str> {
    let version = dir
        .trim_end_matches('/')
        .strip_prefix("/var/lib/pgsql/")?
        .strip_suffix("/data")?;
    let numeric = !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.');
    numeric.then_some(version)
}
