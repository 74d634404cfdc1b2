//! `[proxy]` and `[tls]`: what clients see, the pools, load balancing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::context::{dur, is_empty, origin, origins, Ctx, Toml, MILLISECONDS, SECONDS};

/// pgpool's defaults where the file leaves a key out.
const DEFAULT_PORT: i64 = 9999;

/// Writes `[proxy]` (and `[tls]` when pgpool had SSL on).
pub(super) fn proxy(ctx: &mut Ctx<'_>, out: &mut Toml) {
    out.table("[proxy]");
    listen(ctx, out);
    pools(ctx, out);
    timeouts(ctx, out);
    balancing(ctx, out);
    tls(ctx, out);
}

fn listen(ctx: &mut Ctx<'_>, out: &mut Toml) {
    let port = ctx.int("port", 1).filter(|(p, e)| {
        let ok = *p <= 65535;
        if !ok {
            ctx.problems.push(super::pgpool_conf::LineError {
                line: e.line,
                message: format!("port: {p} is not a port (1 to 65535)"),
            });
        }
        ok
    });
    let addresses = ctx.text("listen_addresses");
    let port_number = port.map_or(DEFAULT_PORT, |(p, _)| p);
    let from: Vec<_> = [addresses.as_ref().map(|a| a.1), port.map(|p| p.1)]
        .into_iter()
        .flatten()
        .collect();
    let (text, entry) = match &addresses {
        Some((text, entry)) => (text.trim().to_owned(), Some(*entry)),
        // pgpool's default: localhost only.
        None => ("localhost".to_owned(), None),
    };
    let first = text.split(',').next().unwrap_or("").trim();
    let ip: Option<IpAddr> = match first {
        "*" => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "" => None,
        other => other.parse().ok(),
    };
    let note_more = if text.contains(',') {
        " pgha listens on one TCP address (and optionally a Unix socket): only the first of the list is kept."
    } else {
        ""
    };
    match ip {
        Some(ip) => {
            let addr = match ip {
                IpAddr::V6(v6) if v6 == Ipv6Addr::UNSPECIFIED => format!("[::]:{port_number}"),
                IpAddr::V6(v6) => format!("[{v6}]:{port_number}"),
                IpAddr::V4(v4) => format!("{v4}:{port_number}"),
            };
            let note = if from.is_empty() {
                format!("pgpool's defaults: listen_addresses = 'localhost', port = {DEFAULT_PORT}.")
            } else {
                format!("pgpool: {}.{note_more}", origins(&from))
            };
            out.key("listen", addr, &note);
            if text.contains(',') {
                if let Some(entry) = entry {
                    ctx.warn(
                        entry,
                        format!("listen_addresses = '{text}': pgha listens on {first} only"),
                    );
                }
            }
        }
        None => {
            out.comment(&format!(
                "listen: not carried over from {}: pgha listens on one IP address \
                 (a host name or no TCP at all is not supported); give one.",
                origins(&from)
            ));
            if let Some(entry) = entry {
                ctx.warn(
                    entry,
                    format!("listen_addresses = '{text}' is not an IP address: set [proxy] listen by hand"),
                );
            }
        }
    }
    if let Some((dir, entry)) = ctx.text("socket_dir") {
        if !dir.trim().is_empty() {
            out.key(
                "unix_socket_dir",
                dir.trim(),
                &format!(
                    "pgpool: {} — the socket is <dir>/.s.PGSQL.<port> in both. Under \
                     packaging/pgha.service /tmp is private to pgha (clients would not see \
                     the socket): use /run/pgha there.",
                    origin(entry)
                ),
            );
        }
    }
}

fn pools(ctx: &mut Ctx<'_>, out: &mut Toml) {
    let children = ctx.int("num_init_children", 1);
    let max_pool = ctx.int("max_pool", 1);
    if let Some((n, entry)) = children {
        let mut note = format!(
            "pgpool: {} — each pgpool child serves one client and keeps at most one \
             connection per backend for a given user and database, so pgpool opened at \
             most {n} server connections per node, user and database: the same bound here. \
             More clients than that waited in pgpool's listen queue; pgha accepts them \
             (up to max_client_conn) and they wait up to pool_timeout for a connection.",
            origin(entry)
        );
        if let Some((_, pool_entry)) = max_pool {
            note.push_str(&format!(
                " {}: pgpool's per-child cache of (user, database) pairs has no \
                 counterpart; pgha keeps one pool per node, user and database.",
                origin(pool_entry)
            ));
        }
        out.key("pool_size", n, &note);
    } else if let Some((_, pool_entry)) = max_pool {
        out.comment(&format!(
            "{}: pgpool's per-child cache of (user, database) pairs has no counterpart; \
             pgha keeps one pool per node, user and database (pool_size).",
            origin(pool_entry)
        ));
    }
    if let Some((list, entry)) = ctx.text("reset_query_list") {
        // pgha resets only idle connections, so pgpool's leading ABORT has
        // nothing to abort.
        let queries: Vec<&str> = list
            .split(';')
            .map(str::trim)
            .filter(|q| !q.is_empty() && !q.eq_ignore_ascii_case("abort"))
            .collect();
        if queries.is_empty() {
            out.comment(&format!(
                "{}: nothing left to run once ABORT is dropped; pgha's default applies.",
                origin(entry)
            ));
        } else {
            out.key(
                "server_reset_query",
                queries.join("; "),
                &format!(
                    "pgpool: {} — run when a session-mode connection changes hands; ABORT \
                     is dropped (pgha only hands over connections outside a transaction).",
                    origin(entry)
                ),
            );
        }
    }
    if let Some((d, entry)) = ctx.duration("connection_life_time", SECONDS) {
        if !d.is_zero() {
            out.key(
                "server_idle_timeout",
                dur(d),
                &format!(
                    "pgpool: {} — a pooled server connection unused this long is closed.",
                    origin(entry)
                ),
            );
        } else {
            out.comment(&format!(
                "{}: pgpool kept idle server connections forever; pgha closes them after \
                 server_idle_timeout (default 10m).",
                origin(entry)
            ));
        }
    }
}

fn timeouts(ctx: &mut Ctx<'_>, out: &mut Toml) {
    if let Some((d, entry)) = ctx.duration("connect_timeout", MILLISECONDS) {
        if !d.is_zero() {
            out.key(
                "connect_timeout",
                dur(d),
                &format!(
                    "pgpool: {} (milliseconds without a unit) — deadline to connect and log in \
                     to a server.",
                    origin(entry)
                ),
            );
        } else {
            out.comment(&format!(
                "{}: pgpool waited forever; pgha always has a deadline (default 5s).",
                origin(entry)
            ));
        }
    }
    if let Some((d, entry)) = ctx.duration("authentication_timeout", SECONDS) {
        if !d.is_zero() {
            out.key(
                "startup_timeout",
                dur(d),
                &format!(
                    "pgpool: {} — a client must finish logging in within this.",
                    origin(entry)
                ),
            );
        } else {
            out.comment(&format!(
                "{}: pgpool waited forever; pgha always has a deadline (default 10s).",
                origin(entry)
            ));
        }
    }
}

fn balancing(ctx: &mut Ctx<'_>, out: &mut Toml) {
    if let Some((on, entry)) = ctx.bool("load_balance_mode") {
        out.key(
            "load_balance",
            on,
            &format!(
                "pgpool: {} — lone reads go to standbys (and the primary) by weight.",
                origin(entry)
            ),
        );
    }
    if let Some((n, entry)) = ctx.int("delay_threshold", 0) {
        let note = format!(
            "pgpool: {} — bytes of WAL a standby may have left to replay and still get reads.",
            origin(entry)
        );
        if n > 0 {
            out.key("max_standby_lag", n, &note);
        } else {
            out.key(
                "max_standby_lag",
                "none",
                &format!("{note} 0 was pgpool's \"no limit\"."),
            );
        }
    }
    if let Some((d, entry)) = ctx.duration("delay_threshold_by_time", SECONDS) {
        let note = format!(
            "pgpool: {} (seconds without a unit, as pgpool reads it) — a standby \
             replaying later than this gets no reads.",
            origin(entry)
        );
        if !d.is_zero() {
            out.key("max_standby_lag_time", dur(d), &note);
        } else {
            out.key(
                "max_standby_lag_time",
                "none",
                &format!("{note} 0 was pgpool's \"no limit\"."),
            );
        }
    }
    if let Some((_, entry)) = ctx.text("disable_load_balance_on_write") {
        out.key(
            "consistency",
            "pin",
            &format!(
                "pgpool: {} — pgha's \"pin\" sends a session's reads to the primary for the \
                 rest of the session once it wrote (pgpool's 'always'); \"lsn\" instead sends \
                 them to standbys that replayed the write. pgpool's per-transaction modes \
                 ('transaction', 'trans_transaction', 'dml_adaptive') have no closer match.",
                origin(entry)
            ),
        );
    }
}

fn tls(ctx: &mut Ctx<'_>, out: &mut Toml) {
    // With SSL off, its settings are listed with those not carried over.
    if ctx.peek("ssl").and_then(|e| e.value.as_bool()) != Some(true) {
        return;
    }
    let Some((_, ssl_entry)) = ctx.bool("ssl") else {
        return;
    };
    let cert = ctx.text("ssl_cert").filter(|(_, e)| !is_empty(&e.value));
    let key = ctx.text("ssl_key").filter(|(_, e)| !is_empty(&e.value));
    out.table("[tls]");
    match (cert, key) {
        (Some((cert, cert_entry)), Some((key, key_entry))) => {
            out.key(
                "cert_file",
                cert,
                &format!(
                    "pgpool: {}, {} — PEM; check-config reads it, so it must exist here.",
                    origin(ssl_entry),
                    origin(cert_entry)
                ),
            );
            out.key("key_file", key, &format!("pgpool: {}", origin(key_entry)));
        }
        _ => {
            out.comment(&format!(
                "{}, but ssl_cert or ssl_key is missing: give cert_file and key_file.",
                origin(ssl_entry)
            ));
            ctx.warn(
                ssl_entry,
                "ssl = on without ssl_cert and ssl_key: [tls] left empty",
            );
        }
    }
}
