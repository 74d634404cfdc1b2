//! `[watchdog]`: pgpool's watchdog hosts become pgha's Raft members.
//!
//! pgpool 4.0/4.1 name this host with `wd_hostname`/`wd_port` and the
//! others with `other_pgpool_hostnameN`/`other_wd_portN`; 4.2+ list every
//! host as `hostnameN`/`wd_portN` and name this one by the number in the
//! `pgpool_node_id` file beside pgpool.conf.

use std::net::Ipv6Addr;

use super::context::{is_empty, origin, origins, Ctx, Toml};
use super::map_nodes::Node;
use super::pgpool_conf::Entry;

/// The port pgha's members talk to each other on. pgpool's `wd_port`
/// speaks pgpool's protocol, and pgpool may still run beside pgha during
/// the switch: reusing it would clash.
pub(super) const PEER_PORT: u16 = 7400;
/// Where the shared secret goes when the import cannot write it.
pub(super) const KEY_FILE: &str = "/etc/pgha/watchdog.key";
/// Where each member keeps its Raft vote and log (packaging/pgha.service's
/// StateDirectory).
const STATE_DIR: &str = "/var/lib/pgha/watchdog";
/// pgha's watchdog refuses a shorter secret (config/cluster.rs).
const MIN_SECRET: usize = 16;

/// What the rest of the import needs to know about the watchdog.
#[derive(Debug, Default)]
pub(super) struct Watchdog {
    /// This host as pgpool.conf names it, when it does.
    pub this_host: Option<String>,
    /// The secret file's text, when the import writes it.
    pub key_file: Option<String>,
}

/// Where the secret file is written, and this host's pgpool 4.2+ id.
#[derive(Debug, Clone, Copy)]
pub(super) struct Options<'a> {
    /// The secret file's name relative to the TOML; `None` when the TOML
    /// goes to stdout (then nothing is written beside it).
    pub key_name: Option<&'a str>,
    /// The `pgpool_node_id` file's number.
    pub node_id: Option<u32>,
}

struct Member<'a> {
    host: String,
    port: Vec<&'a Entry>,
    from: Vec<&'a Entry>,
    this: bool,
}

/// Writes `[watchdog]` and its members; `None` when pgpool ran without a
/// watchdog (its settings are then listed with those not carried over).
pub(super) fn watchdog(
    ctx: &mut Ctx<'_>,
    nodes: &[Node],
    options: Options<'_>,
    out: &mut Toml,
) -> Option<Watchdog> {
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
        return None;
    }
    let on = ctx.bool("use_watchdog");
    let mut members = collect(ctx, options.node_id);
    // The same order from every host's pgpool.conf, so the imports on each
    // host give each member the same id: the backends' order first, then
    // the address.
    let backend = |host: &str| {
        nodes
            .iter()
            .find(|n| n.host.as_deref() == Some(host))
            .map_or(u32::MAX, |n| n.index)
    };
    members.sort_by(|a, b| (backend(&a.host), &a.host).cmp(&(backend(&b.host), &b.host)));
    let this = members.iter().position(|m| m.this);

    out.table("[watchdog]");
    let mut intro = String::from(
        "pgha's members elect a leader with Raft: only the leader fails over and holds \
         the VIP, and only while a majority of the members acknowledges it.",
    );
    if let Some((_, entry)) = on {
        intro.push_str(&format!(" pgpool: {}.", origin(entry)));
    }
    out.comment(&intro);
    let mut key_file = None;
    match this {
        Some(i) => {
            let m = &members[i];
            out.key(
                "id",
                i64::try_from(i + 1).unwrap_or(i64::MAX),
                &format!(
                    "This host: {} ({}). This file is this host's: import each host's own \
                     pgpool.conf there.",
                    m.host,
                    origins(&m.from)
                ),
            );
        }
        None => {
            let why = if options.node_id.is_some() {
                "the pgpool_node_id file names no hostnameN"
            } else if members
                .iter()
                .any(|m| m.from.iter().any(|e| e.key == "hostname0"))
            {
                "pgpool 4.2+ names this host in the pgpool_node_id file beside pgpool.conf, \
                 and none was found"
            } else {
                "no wd_hostname"
            };
            out.comment(&format!(
                "This host is not known ({why}): set id to its member id below; check-config \
                 refuses the file until then."
            ));
            out.comment("id = ?");
            ctx.warnings.push((
                0,
                format!("[watchdog] id left out ({why}): set it to this host's member id"),
            ));
        }
    }
    out.key(
        "state_dir",
        STATE_DIR,
        "This member's Raft vote and log (fsync'd): keep them across restarts.",
    );
    secret(ctx, options, out, &mut key_file);
    timers(ctx, out);
    other_settings(ctx, out);
    for (i, m) in members.iter().enumerate() {
        out.table("[[watchdog.member]]");
        let port_note = if m.port.is_empty() {
            String::new()
        } else {
            format!(
                " Port {PEER_PORT}, not pgpool's {}: that port speaks pgpool's protocol, \
                 and pgpool may still run beside pgha during the switch. Open {PEER_PORT}/tcp \
                 between the members.",
                origins(&m.port)
            )
        };
        out.comment(&format!("pgpool: {}.{port_note}", origins(&m.from)));
        out.key("id", i64::try_from(i + 1).unwrap_or(i64::MAX), "");
        out.key("address", address(&m.host), "");
    }
    if members.len() == 2 {
        out.blank();
        out.comment(
            "A third member, a witness (`pgha witness`, being added, on a third machine): it \
             votes but never leads. Two members are no majority once one is gone, so a \
             two-member group never fails over nor moves the VIP after losing one member — \
             by design: pgpool's two-host watchdog, deciding on half the votes, could leave \
             the VIP on both hosts. Add it to every member's file:",
        );
        out.comment("[[watchdog.member]]");
        out.comment("id = 3");
        out.comment(&format!("address = \"WITNESS-HOST:{PEER_PORT}\""));
        out.comment("witness = true");
    }
    Some(Watchdog {
        this_host: this.map(|i| members[i].host.clone()),
        key_file,
    })
}

/// Every watchdog host, this one marked, duplicates merged.
fn collect<'a>(ctx: &mut Ctx<'a>, node_id: Option<u32>) -> Vec<Member<'a>> {
    let mut members: Vec<Member<'a>> = Vec::new();
    let mut add = |host: &'a Entry, port: Option<&'a Entry>, this: bool| {
        let name = host.value.text().trim().to_owned();
        let port: Vec<&Entry> = port.into_iter().collect();
        match members.iter_mut().find(|m| m.host == name) {
            Some(m) => {
                m.from.push(host);
                m.from.extend(&port);
                m.port.extend(port);
                m.this |= this;
            }
            None => members.push(Member {
                host: name,
                from: [vec![host], port.clone()].concat(),
                port,
                this,
            }),
        }
    };
    if let Some(own) = set(ctx, "wd_hostname") {
        let port = ctx.take("wd_port");
        add(own, port, true);
    }
    for (host_key, port_key) in [
        ("other_pgpool_hostname", "other_wd_port"),
        ("hostname", "wd_port"),
    ] {
        for index in indices(ctx, host_key) {
            let host = ctx.take(&format!("{host_key}{index}"));
            let port = ctx.take(&format!("{port_key}{index}"));
            if let Some(host) = host.filter(|e| !is_empty(&e.value)) {
                add(host, port, host_key == "hostname" && node_id == Some(index));
            }
        }
    }
    members
}

/// `secret_file`: pgpool's wd_authkey when it is long enough, else a key
/// the operator creates.
fn secret(ctx: &mut Ctx<'_>, options: Options<'_>, out: &mut Toml, key_file: &mut Option<String>) {
    let authkey = ctx.take("wd_authkey");
    let key = authkey
        .map(|e| e.value.text().trim().to_owned())
        .unwrap_or_default();
    let create = format!(
        "Create it once and copy the same file to every member (mode 0600, owned by the \
         user pgha runs as): `head -c 32 /dev/urandom | base64 > {KEY_FILE}`."
    );
    let Some(entry) = authkey.filter(|_| !key.is_empty()) else {
        out.key(
            "secret_file",
            KEY_FILE,
            &format!(
                "The secret the members authenticate each other with (at least \
                 {MIN_SECRET} bytes). pgpool's watchdog had no wd_authkey{}: its members \
                 took any peer's word. {create}",
                authkey.map_or(String::new(), |e| format!(" ({})", origin(e)))
            ),
        );
        ctx.warnings.push((
            0,
            format!("[watchdog] secret_file: create {KEY_FILE}, the same on every member"),
        ));
        return;
    };
    if key.len() < MIN_SECRET {
        out.key(
            "secret_file",
            KEY_FILE,
            &format!(
                "The secret the members authenticate each other with. pgpool's {} is \
                 shorter than the {MIN_SECRET} bytes pgha needs: a new one is needed. {create}",
                origin(entry)
            ),
        );
        ctx.warn(
            entry,
            format!(
                "wd_authkey is shorter than {MIN_SECRET} bytes: create a new {KEY_FILE} \
                 for pgha, the same on every member"
            ),
        );
        return;
    }
    match options.key_name {
        Some(name) => {
            out.key(
                "secret_file",
                name,
                &format!(
                    "The secret the members authenticate each other with: pgpool's {}, \
                     written to {name} beside this file (mode 0600). It is the same on every \
                     host, as pgpool required, so each host's import writes the same file.",
                    origin(entry)
                ),
            );
            *key_file = Some(format!("{key}\n"));
        }
        None => {
            out.key(
                "secret_file",
                KEY_FILE,
                &format!(
                    "The secret the members authenticate each other with: pgpool's {} can \
                     serve. Write its value into {KEY_FILE} on every member (mode 0600), or \
                     import with -o OUT and it is written beside OUT.",
                    origin(entry)
                ),
            );
            ctx.warn(
                entry,
                format!("wd_authkey is not written to stdout: put it in {KEY_FILE}"),
            );
        }
    }
}

/// pgpool's life-check timers, explained rather than copied: the numbers
/// mean something else in pgha.
fn timers(ctx: &mut Ctx<'_>, out: &mut Toml) {
    let named = ["wd_lifecheck_method", "wd_interval", "wd_life_point"];
    let entries: Vec<&Entry> = ctx
        .entries()
        .iter()
        .filter(|e| {
            named.contains(&e.key.as_str())
                || e.key.starts_with("heartbeat_")
                || e.key.starts_with("wd_heartbeat_")
        })
        .collect();
    for entry in &entries {
        ctx.mark(entry);
    }
    let from = if entries.is_empty() {
        String::new()
    } else {
        format!("pgpool: {}. ", origins(&entries))
    };
    out.comment(&format!(
        "{from}pgpool's timers are not copied: their numbers mean something else here. \
         pgha's leader heartbeats the members over their member addresses every 100ms and \
         holds a 400ms lease that a majority renews; a leader cut off from the majority \
         stops acting when its lease ends, another is elected within about a second, and it \
         takes the VIP once nobody answers ARP probes for it, or after [vip] handover_wait \
         (1.85s) at the latest. The defaults (heartbeat, \
         election_timeout_min/max, lease, lease_margin, rpc_timeout: docs/watchdog.md) suit a \
         LAN. A separate heartbeat network or device has no counterpart: give the members \
         addresses on a network they reach each other through."
    ));
}

/// Client ports, trusted servers and priority: explained.
fn other_settings(ctx: &mut Ctx<'_>, out: &mut Toml) {
    let mut client_ports = Vec::new();
    for key in ["other_pgpool_port", "pgpool_port"] {
        for index in indices(ctx, key) {
            client_ports.extend(ctx.take(&format!("{key}{index}")));
        }
    }
    if !client_ports.is_empty() {
        out.comment(&format!(
            "{}: the other members' client ports; each pgha serves clients on its own \
             [proxy] listen.",
            origins(&client_ports)
        ));
    }
    if let Some(entry) = set(ctx, "trusted_servers") {
        out.comment(&format!(
            "{}: pgpool pinged these to tell a network cut from a dead peer; in pgha the \
             witness's vote does that job. Run the witness on one of them.",
            origin(entry)
        ));
    }
    if let Some(entry) = ctx.take("wd_priority") {
        out.comment(&format!(
            "{}: no counterpart — Raft elects whichever member is most up to date.",
            origin(entry)
        ));
    }
}

/// `host:port` of a member; an IPv6 address in brackets.
fn address(host: &str) -> String {
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]:{PEER_PORT}")
    } else {
        format!("{host}:{PEER_PORT}")
    }
}

/// A setting that is set: pgpool's '' means none, and is left for the
/// list of settings not carried over.
pub(super) fn set<'a>(ctx: &mut Ctx<'a>, key: &str) -> Option<&'a Entry> {
    ctx.peek(key).filter(|e| !is_empty(&e.value))?;
    ctx.take(key)
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
