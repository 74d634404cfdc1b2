//! `[vip]`: pgpool's `delegate_IP`. When `if_up_cmd` is the usual
//! `ip addr add $_IP_$/N dev IF …`, pgha adds the address itself through
//! netlink, with a kernel lifetime; any other command is kept and run by
//! pgha's command mover.

use pgha_vip::{CommandMover, CommandMoverConfig};

use super::context::{is_empty, origin, origins, Ctx, Toml};
use super::map_watchdog::set;
use super::pgpool_conf::Entry;

/// pgpool's `if_up_cmd` when pgpool.conf does not set it.
const PGPOOL_DEFAULT_UP: &str = "ip addr add $_IP_$/24 dev eth0 label eth0:0";
/// The prefix length assumed when neither delegate_IP nor if_up_cmd gives
/// one.
const DEFAULT_PREFIX: u8 = 24;

/// What pgpool's usual `if_up_cmd` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IpAdd {
    /// `N` of `$_IP_$/N`, if written.
    pub prefix: Option<u8>,
    /// `IF` of `dev IF`.
    pub interface: String,
}

/// Reads `[sudo [-flags]] [/path/]ip [-4|-6] addr add $_IP_$[/N] dev IF
/// [label L] [brd B] [scope S]`; anything else (another program, a second
/// command, options it does not know) is `None`: netlink would not do what
/// it did.
pub(super) fn parse_ip_add(command: &str) -> Option<IpAdd> {
    if command.contains(|c: char| ";&|<>`()\"'\\".contains(c)) {
        return None;
    }
    let program = |w: &str| w.rsplit('/').next().unwrap_or(w).to_owned();
    let mut words = command.split_whitespace();
    let mut word = words.next()?;
    if program(word) == "sudo" {
        // sudo's flags without an argument (-n, -E); `-u user` is not
        // the usual form.
        word = words.next()?;
        while word.starts_with('-') {
            word = words.next()?;
        }
    }
    if program(word) != "ip" {
        return None;
    }
    word = words.next()?;
    while word == "-4" || word == "-6" {
        word = words.next()?;
    }
    if !"address".starts_with(word) || words.next()? != "add" {
        return None;
    }
    let (mut prefix, mut address, mut interface) = (None, false, None);
    while let Some(word) = words.next() {
        match word {
            "dev" => interface = Some(words.next()?),
            "label" | "brd" | "broadcast" | "scope" => {
                words.next()?;
            }
            "local" => {}
            _ => {
                let rest = word.strip_prefix("$_IP_$")?;
                if address || rest.contains('$') {
                    return None;
                }
                address = true;
                if !rest.is_empty() {
                    prefix = Some(rest.strip_prefix('/')?.parse().ok()?);
                }
            }
        }
    }
    let interface = interface?;
    let name_ok = !interface.is_empty()
        && interface.len() <= 15
        && interface
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    (address && name_ok).then(|| IpAdd {
        prefix,
        interface: interface.to_owned(),
    })
}

/// pgpool's virtual IP settings.
struct Pgpool<'a> {
    ip: &'a Entry,
    /// delegate_IP without a `/N`, and the N if written.
    ip_only: String,
    ip_prefix: Option<u8>,
    up: Option<&'a Entry>,
    down: Option<&'a Entry>,
    arping: Option<&'a Entry>,
    /// if_cmd_path and the like: not needed by pgha.
    paths: Vec<&'a Entry>,
}

/// Writes `[vip]`; nothing without a `delegate_IP` or without a watchdog
/// (pgpool brought no address up then, and `[vip]` needs `[watchdog]`).
pub(super) fn vip(ctx: &mut Ctx<'_>, watchdog: bool, out: &mut Toml) {
    if !watchdog || ctx.peek("delegate_IP").is_none_or(|e| is_empty(&e.value)) {
        return;
    }
    let Some(ip) = set(ctx, "delegate_IP") else {
        return;
    };
    let mut unset = Vec::new();
    let up = command(ctx, "if_up_cmd", &mut unset);
    let down = command(ctx, "if_down_cmd", &mut unset);
    let arping = command(ctx, "arping_cmd", &mut unset);
    let ip_text = ip.value.text().trim().to_owned();
    let (ip_only, ip_prefix) = match ip_text.split_once('/') {
        Some((a, p)) => (a.to_owned(), p.parse::<u8>().ok()),
        None => (ip_text.clone(), None),
    };
    let pgpool = Pgpool {
        ip,
        ip_only,
        ip_prefix,
        up,
        down,
        arping,
        paths: ["if_cmd_path", "arping_path", "ifconfig_path"]
            .iter()
            .filter_map(|k| ctx.take(k))
            .collect(),
    };
    let up_text = up.map_or(PGPOOL_DEFAULT_UP.to_owned(), |e| e.value.text());
    out.table("[vip]");
    let mut from = match up {
        Some(e) => format!("pgpool: {}, {}", origin(ip), origin(e)),
        None => format!(
            "pgpool: {}; if_up_cmd not set, so pgpool's default `{PGPOOL_DEFAULT_UP}` \
             (check the interface)",
            origin(ip)
        ),
    };
    if !unset.is_empty() {
        from.push_str(&format!("; not set: {}", unset.join(", ")));
    }
    match parse_ip_add(&up_text) {
        Some(parsed) => {
            let mut others: Vec<&Entry> = [down, arping].into_iter().flatten().collect();
            others.extend(&pgpool.paths);
            out.comment(&format!(
                "{from}. The leader of the [watchdog] members holds the address. pgha adds \
                 it itself through netlink (CAP_NET_ADMIN and CAP_NET_RAW, which \
                 packaging/pgha.service grants) with a kernel lifetime tied to its lease: \
                 that replaces if_up_cmd and if_down_cmd, since a killed, frozen or cut-off \
                 holder loses the address by itself; gratuitous ARP at each takeover and \
                 every announce_interval (2s) replaces arping_cmd.{}",
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" Not needed: {}.", origins(&others))
                }
            ));
            address(ctx, out, &pgpool, parsed.prefix);
            out.key("interface", parsed.interface, "");
        }
        None => commands(ctx, out, &pgpool, &from),
    }
}

/// A command setting; an empty one is pgpool's "not set": named in
/// `unset`, then left aside.
fn command<'a>(ctx: &mut Ctx<'a>, key: &str, unset: &mut Vec<String>) -> Option<&'a Entry> {
    let entry = ctx.take(key)?;
    if is_empty(&entry.value) {
        unset.push(origin(entry));
        return None;
    }
    Some(entry)
}

/// `address`, with the prefix length found (delegate_IP's first), or /24
/// and a warning.
fn address(ctx: &mut Ctx<'_>, out: &mut Toml, pgpool: &Pgpool<'_>, from_command: Option<u8>) {
    let ip = &pgpool.ip_only;
    match pgpool.ip_prefix.or(from_command) {
        Some(p) => out.key("address", format!("{ip}/{p}"), ""),
        None => {
            out.key(
                "address",
                format!("{ip}/{DEFAULT_PREFIX}"),
                &format!(
                    "No prefix length in delegate_IP nor if_up_cmd: /{DEFAULT_PREFIX} assumed. \
                     Check it is the subnet's (`ip -o addr show` on the interface)."
                ),
            );
            ctx.warn(
                pgpool.ip,
                format!("[vip] address: prefix length /{DEFAULT_PREFIX} assumed, check it"),
            );
        }
    }
}

/// pgpool's own commands, for pgha's command mover.
fn commands(ctx: &mut Ctx<'_>, out: &mut Toml, pgpool: &Pgpool<'_>, from: &str) {
    let up_text = pgpool
        .up
        .map_or(PGPOOL_DEFAULT_UP.to_owned(), |e| e.value.text());
    out.comment(&format!(
        "{from}. That if_up_cmd is not the usual `ip addr add $_IP_$/N dev IF`, so pgha runs \
         pgpool's commands (the command mover; $_IP_$ as in pgpool, run with the daemon's \
         PATH{}, and without root they need sudo). What that costs: the kernel puts no \
         lifetime on the address, so a holder that is killed, frozen or cut off from the \
         other members keeps it until if_down_cmd runs there — two hosts can answer for the \
         VIP meanwhile. If `ip addr add` can do what the command does, write it so and \
         re-import: pgha then uses netlink and the kernel removes the address on time.",
        if pgpool.paths.is_empty() {
            String::new()
        } else {
            format!(", so {} are not needed", origins(&pgpool.paths))
        }
    ));
    let prefix = up_text.split("$_IP_$/").nth(1).and_then(|after| {
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    address(ctx, out, pgpool, prefix);
    let interface = word_after(&up_text, "dev").or_else(|| {
        pgpool
            .arping
            .and_then(|a| word_after(&a.value.text(), "-I"))
    });
    match interface {
        Some(interface) => out.key(
            "interface",
            interface,
            "The interface, read from the commands: pgha checks it exists.",
        ),
        None => {
            out.comment(
                "interface = ? — the commands name none: set the interface the address \
                 goes on; check-config refuses the file until then.",
            );
            ctx.warn(pgpool.ip, "[vip] interface: not found in if_up_cmd, set it");
        }
    }
    let Some(down) = pgpool.down else {
        out.key("if_up_cmd", up_text, "");
        out.comment(
            "if_down_cmd = ? — pgpool.conf has none: pgha needs both (or neither, for netlink).",
        );
        ctx.warn(
            pgpool.ip,
            "[vip] if_down_cmd: not set in pgpool.conf, set it",
        );
        return;
    };
    let config = CommandMoverConfig {
        arping_cmd: pgpool.arping.map(|e| e.value.text()),
        ..CommandMoverConfig::new(up_text, down.value.text())
    };
    if let Err(e) = CommandMover::new(config.clone()) {
        out.comment(&format!("pgha would refuse them as they stand: {e}"));
        ctx.warn(
            pgpool.up.unwrap_or(down),
            format!("if_up_cmd/if_down_cmd/arping_cmd: pgha would refuse them: {e}"),
        );
    }
    out.key("if_up_cmd", config.if_up_cmd, "");
    out.key("if_down_cmd", config.if_down_cmd, "");
    if let Some(cmd) = config.arping_cmd {
        out.key("arping_cmd", cmd, "");
    }
}

/// The word right after the word `marker` in `text`.
fn word_after(text: &str, marker: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == marker)?;
    words.next().map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
#[path = "map_vip_tests.rs"]
mod tests;
