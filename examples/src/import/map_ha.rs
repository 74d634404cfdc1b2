//! pgpool's failover commands, watchdog and virtual IP, as commented
//! proposals: `pgha run` does not read `[commands]`, `[watchdog]` or
//! `[vip]` yet (their schema is being written), so they are TOML comments
//! that carry every value over, named as the libraries name them
//! (`pgha_core::CommandControllerConfig`, `pgha_vip::CommandMoverConfig`).

use pgha_core::CommandTemplate;
use pgha_vip::{CommandMover, CommandMoverConfig};

use super::context::{is_empty, origin, Ctx, Toml};
use super::map_nodes::Node;
use super::pgpool_conf::Entry;

const NOT_READ: &str = "not yet read by `pgha run`: a proposal, kept as comments";

/// Writes the proposals; nothing when pgpool had none of these set.
pub(super) fn proposals(ctx: &mut Ctx<'_>, nodes: &[Node], out: &mut Toml) {
    commands(ctx, nodes, out);
    watchdog(ctx, out);
    vip(ctx, out);
}

/// A setting that is set: pgpool's '' means none, and is left for the
/// list of settings not carried over.
fn set<'a>(ctx: &mut Ctx<'a>, key: &str) -> Option<&'a Entry> {
    ctx.peek(key).filter(|e| !is_empty(&e.value))?;
    ctx.take(key)
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

fn watchdog(ctx: &mut Ctx<'_>, out: &mut Toml) {
    let peer_keys = [
        ("other_pgpool_hostname", "other_wd_port"),
        ("hostname", "wd_port"),
    ];
    let has_peers = peer_keys.iter().any(|(host, _)| {
        indices(ctx, host).iter().any(|i| {
            ctx.peek(&format!("{host}{i}"))
                .is_some_and(|e| !is_empty(&e.value))
        })
    });
    let on = ctx.peek("use_watchdog").and_then(|e| e.value.as_bool());
    if on != Some(true) && !has_peers {
        // No watchdog: its settings are listed with the others not
        // carried over.
        return;
    }
    let on = ctx.bool("use_watchdog");
    let own = set(ctx, "wd_hostname");
    let own_port = ctx.int("wd_port", 1);
    let mut peers: Vec<(String, Vec<&Entry>)> = Vec::new();
    // pgpool up to 4.1: other_pgpool_hostnameN + other_wd_portN; 4.2+:
    // hostnameN + wd_portN for every member, this one included.
    for (host_key, port_key) in peer_keys {
        for index in indices(ctx, host_key) {
            let host = ctx.take(&format!("{host_key}{index}"));
            let port = ctx.take(&format!("{port_key}{index}"));
            if let Some(host) = host.filter(|e| !is_empty(&e.value)) {
                let port_text = port.map_or("9000".to_owned(), |p| p.value.text());
                let from: Vec<&Entry> = [Some(host), port].into_iter().flatten().collect();
                peers.push((format!("{}:{port_text}", host.value.text()), from));
            }
        }
    }
    let mut client_ports = Vec::new();
    for key in ["other_pgpool_port", "pgpool_port"] {
        for index in indices(ctx, key) {
            client_ports.extend(ctx.take(&format!("{key}{index}")));
        }
    }
    let trusted = set(ctx, "trusted_servers");
    let priority = ctx.take("wd_priority");
    out.blank();
    out.comment(&format!(
        "[watchdog] — {NOT_READ}. pgha's members elect a leader with Raft (openraft); a \
         failover and the VIP need a majority. Two hosts are no majority once one is gone: \
         add a witness (`pgha witness` on a third machine), or neither survivor acts alone \
         — by design, since pgpool's two-host watchdog can leave the VIP on both hosts."
    ));
    out.comment("[watchdog]");
    let mut members = Vec::new();
    let mut from = Vec::new();
    if let Some(own) = own {
        let port = own_port.map_or("9000".to_owned(), |(p, _)| p.to_string());
        members.push(format!("{}:{port}", own.value.text()));
        from.push(origin(own));
        if let Some((_, e)) = own_port {
            from.push(origin(e));
        }
    }
    for (address, entries) in &peers {
        if !members.contains(address) {
            members.push(address.clone());
        }
        from.extend(entries.iter().map(|e| origin(e)));
    }
    if let Some((_, entry)) = on {
        from.insert(0, origin(entry));
    }
    out.comment(&format!("pgpool: {}", from.join(", ")));
    out.proposal(
        "members",
        toml::Value::Array(members.into_iter().map(toml::Value::String).collect()),
    );
    let heartbeat: Vec<&Entry> = ctx
        .entries()
        .iter()
        .filter(|e| e.key.starts_with("heartbeat_") || e.key.starts_with("wd_heartbeat_"))
        .collect();
    if !heartbeat.is_empty() {
        for entry in &heartbeat {
            ctx.mark(entry);
        }
        out.comment(&format!(
            "{}: pgha's leader heartbeats its members over the members' addresses \
             (every 100ms, lease 400ms); a separate heartbeat address or device has no \
             counterpart: give members addresses on the network the heartbeat used.",
            heartbeat
                .iter()
                .map(|e| origin(e))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !client_ports.is_empty() {
        out.comment(&format!(
            "{}: the other members' client ports; each pgha serves clients on its own \
             [proxy] listen.",
            client_ports
                .iter()
                .map(|e| origin(e))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(entry) = trusted {
        out.comment(&format!(
            "{}: pgpool pinged these to tell a network cut from a dead peer; in pgha the \
             witness's vote does that job. Run the witness on one of them.",
            origin(entry)
        ));
    }
    if let Some(entry) = priority {
        out.comment(&format!(
            "{}: no counterpart — Raft elects whichever member is most up to date.",
            origin(entry)
        ));
    }
}

/// The indices N of the settings `<base>N`, ascending.
fn indices(ctx: &Ctx<'_>, base: &str) -> Vec<u32> {
    let mut found: Vec<u32> = ctx
        .entries()
        .iter()
        .filter_map(|e| e.key.strip_prefix(base)?.parse().ok())
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

fn vip(ctx: &mut Ctx<'_>, out: &mut Toml) {
    // Without delegate_IP pgpool brought no VIP up: the commands are
    // listed with the settings not carried over.
    let Some(ip) = set(ctx, "delegate_IP") else {
        return;
    };
    let up = ctx.take("if_up_cmd");
    let down = ctx.take("if_down_cmd");
    let arping = ctx.take("arping_cmd");
    out.blank();
    out.comment(&format!(
        "[vip] — {NOT_READ}. The leader holds the address with a kernel lifetime tied to \
         its lease, so a killed or cut-off holder loses it by itself, and announces it with \
         gratuitous ARP on every takeover. pgha adds it through netlink (needs \
         CAP_NET_ADMIN and CAP_NET_RAW, which packaging/pgha.service grants); pgpool's \
         commands are kept below for networks netlink cannot serve."
    ));
    out.comment("[vip]");
    let up_text = up.map(|e| e.value.text()).unwrap_or_default();
    let prefix = word_after(&up_text, "$_IP_$/")
        .map(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit()).to_owned());
    let device = word_after(&up_text, "dev ");
    let address = match &prefix {
        Some(p) if !p.is_empty() => format!("{}/{p}", ip.value.text()),
        _ => ip.value.text(),
    };
    out.comment(&format!(
        "pgpool: {}{}",
        origin(ip),
        if prefix.is_some() || device.is_some() {
            " (prefix length and interface read from if_up_cmd)"
        } else {
            ""
        }
    ));
    out.proposal("address", address);
    if let Some(device) = device {
        out.proposal("interface", device);
    }
    let (Some(up), Some(down)) = (up, down) else {
        return;
    };
    out.comment(
        "Only with the command mover (the default is netlink): pgpool's commands, \
         $_IP_$ as in pgpool; they run with the daemon's PATH, so ifconfig_path and \
         arping_path are not needed, and without root they need sudo.",
    );
    let config = CommandMoverConfig {
        arping_cmd: arping
            .filter(|e| !is_empty(&e.value))
            .map(|e| e.value.text()),
        ..CommandMoverConfig::new(up.value.text(), down.value.text())
    };
    if let Err(e) = CommandMover::new(config.clone()) {
        out.comment(&format!("pgha would refuse them as they stand: {e}"));
        ctx.warn(
            up,
            format!("if_up_cmd/if_down_cmd/arping_cmd: pgha would refuse them: {e}"),
        );
    }
    out.comment(&format!("pgpool: {} (line {})", up.key, up.line));
    out.proposal("if_up_cmd", config.if_up_cmd);
    out.comment(&format!("pgpool: {} (line {})", down.key, down.line));
    out.proposal("if_down_cmd", config.if_down_cmd);
    if let (Some(cmd), Some(entry)) = (config.arping_cmd, arping) {
        out.comment(&format!("pgpool: {} (line {})", entry.key, entry.line));
        out.proposal("arping_cmd", cmd);
    }
}

/// The word right after `marker` in `text`.
fn word_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let word = text[start..].split_whitespace().next()?;
    Some(word.to_owned())
}
