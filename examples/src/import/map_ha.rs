//! pgpool's high availability: the failover commands as a commented
//! proposal (`pgha run` does not read `[commands]` yet, so they are TOML
//! comments that carry every value over, named as
//! `pgha_core::CommandControllerConfig` names them), then the watchdog,
//! the virtual IP and this host's backend as `[watchdog]`, `[vip]` and
//! `[local]`.

use pgha_core::CommandTemplate;

use super::context::{origin, Ctx, Toml};
use super::map_nodes::Node;
use super::map_watchdog::{self, set, Watchdog};
use super::pgpool_conf::Entry;
use super::{map_local, map_vip};

const NOT_READ: &str = "not yet read by `pgha run`: a proposal, kept as comments";

/// Writes the sections; nothing for what pgpool did not have set.
pub(super) fn ha(
    ctx: &mut Ctx<'_>,
    nodes: &[Node],
    options: map_watchdog::Options<'_>,
    out: &mut Toml,
) -> Watchdog {
    commands(ctx, nodes, out);
    let watchdog = map_watchdog::watchdog(ctx, nodes, options, out);
    map_vip::vip(ctx, watchdog.is_some(), out);
    let watchdog = watchdog.unwrap_or_default();
    map_local::local(watchdog.this_host.as_deref(), nodes, &mut ctx.warnings, out);
    watchdog
}

fn commands(ctx: &mut Ctx<'_>, nodes: &[Node], out: &mut Toml) {
    let failover = set(ctx, "failover_command");
    let follow = set(ctx, "follow_primary_command").or(set(ctx, "follow_master_command"));
    let failback = set(ctx, "failback_command");
    if failover.is_none() && follow.is_none() && failback.is_none() {
        return;
    }
    out.blank();
    out.comment(&format!(
        "[commands] — {NOT_READ}. pgha promotes with pg_promote() and re-points standbys \
         with ALTER SYSTEM + pg_reload_conf() by itself (no ssh, no scripts), and the pgha on \
         each host rewinds its own old primary; these carry pgpool's scripts over for nodes \
         without a co-located pgha. Placeholders are pgpool's, but %d/%m/%M/%P are node \
         names (node0…), not pgpool's indices: a script testing `$1 = 1` must test \
         node1."
    ));
    out.comment("[commands]");
    if let Some(entry) = failover {
        out.comment(&format!(
            "pgpool: {} — pgpool ran it for every failed node and the script chose what to \
             do; pgha runs it only to promote (%m/%H: the node to promote, %d: the failed \
             primary).",
            origin(entry)
        ));
        template_check(ctx, out, "promote_command", entry);
        out.proposal("promote_command", entry.value.text());
    }
    if let Some(entry) = follow {
        out.comment(&format!(
            "pgpool: {} — run for each standby (%d) to follow the new primary (%m).",
            origin(entry)
        ));
        template_check(ctx, out, "follow_command", entry);
        out.proposal("follow_command", entry.value.text());
    }
    if let Some(entry) = failback {
        out.comment(&format!(
            "{}: no counterpart — pgha attaches a returning standby by itself once it \
             streams within the lag limit.",
            origin(entry)
        ));
    }
    let dirs: Vec<_> = nodes
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.data_dir.as_deref()?)))
        .collect();
    if !dirs.is_empty() {
        out.comment("%D and %R, from backend_data_directoryN:");
        out.comment("[commands.data_dirs]");
        for (name, dir) in dirs {
            out.proposal(name, dir);
        }
    }
}

/// Says so when pgha would refuse the command line.
fn template_check(ctx: &mut Ctx<'_>, out: &mut Toml, key: &str, entry: &Entry) {
    if let Err(e) = CommandTemplate::parse(key, &entry.value.text()) {
        out.comment(&format!("pgha would refuse it as it stands: {e}"));
        ctx.warn(
            entry,
            format!("{}: pgha would refuse this command: {e}", entry.key),
        );
    }
}
