//! `[monitor]`: pgpool's health and replication checks.

use std::time::Duration;

use super::context::{dur, is_empty, origin, origins, Ctx, Toml, SECONDS};
use super::pgpool_conf::Entry;

/// pgpool's defaults for the health check keys the file leaves out.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Writes `[monitor]`.
pub(super) fn monitor(ctx: &mut Ctx<'_>, out: &mut Toml) {
    out.table("[monitor]");
    health_check(ctx, out);
    credentials(ctx, out);
    if let Some((_, entry)) = ctx.duration("sr_check_period", SECONDS) {
        out.comment(&format!(
            "{}: pgha's probe reads the replication positions on every round \
             (probe_interval); there is no separate period.",
            origin(entry)
        ));
    }
    let logdir = ctx.take("logdir");
    let mut note = String::from(
        "The term and the primary survive restarts here (packaging/pgha.service makes \
         /var/lib/pgha writable).",
    );
    if let Some(entry) = logdir {
        note.push_str(&format!(
            " pgpool kept its node status in {}/pgpool_status ({}).",
            entry.value.text(),
            origin(entry)
        ));
    }
    out.key("state_file", "/var/lib/pgha/state.json", &note);
}

fn health_check(ctx: &mut Ctx<'_>, out: &mut Toml) {
    let period = ctx.duration("health_check_period", SECONDS);
    let timeout = ctx.duration("health_check_timeout", SECONDS);
    let retries = ctx.int("health_check_max_retries", 0);
    let delay = ctx.duration("health_check_retry_delay", SECONDS);
    let p = period.map_or(Duration::ZERO, |(d, _)| d);
    let t = timeout.map_or(DEFAULT_TIMEOUT, |(d, _)| d);
    let r = retries.map_or(0, |(n, _)| n);
    let d = delay.map_or(DEFAULT_RETRY_DELAY, |(d, _)| d);
    match period {
        Some((p, entry)) if !p.is_zero() => out.key(
            "probe_interval",
            dur(p),
            &format!(
                "pgpool: {} — one probe of every node per round. pgha's default is 500ms: \
                 with pgpool's period a dead server is noticed only that much later.",
                origin(entry)
            ),
        ),
        Some((_, entry)) => out.comment(&format!(
            "{}: pgpool's health check was off. pgha always probes: probe_interval keeps \
             its default (500ms).",
            origin(entry)
        )),
        None => out.comment(
            "health_check_period is not set (pgpool's default 0: no health check). pgha \
             always probes: probe_interval keeps its default (500ms).",
        ),
    }
    match timeout {
        Some((t, entry)) if !t.is_zero() => {
            let mut note = format!(
                "pgpool: {} — the deadline of one probe, connecting included.",
                origin(entry)
            );
            if !p.is_zero() && t > p {
                note.push_str(
                    " It is longer than probe_interval: a hung server holds a probe for \
                     the whole timeout.",
                );
            }
            out.key("probe_timeout", dur(t), &note);
        }
        Some((_, entry)) => out.comment(&format!(
            "{}: pgpool waited forever; every pgha probe has a deadline (probe_timeout, \
             default 500ms).",
            origin(entry)
        )),
        None => {}
    }
    let mut note = format!(
        "pgpool: {} — pgpool failed a node after 1 + health_check_max_retries failed \
         checks, retrying every health_check_retry_delay = {}; pgha fails it after this \
         many consecutive failed probes, one per probe_interval (retries are not spaced \
         separately).",
        retries.map_or(
            "health_check_max_retries not set (0)".to_owned(),
            |(_, e)| origin(e)
        ),
        dur(d)
    );
    if let Some((_, e)) = delay {
        note.push_str(&format!(" ({} is folded into the interval.)", origin(e)));
    }
    let tries = u32::try_from(r + 1).unwrap_or(u32::MAX);
    if !p.is_zero() {
        let pgpool_worst = p + t * tries + d * (tries - 1);
        let pgha_worst = p * tries + t;
        note.push_str(&format!(
            " Worst case to notice a server that hangs: pgpool about {} (period + tries × \
             timeout + retries × delay), pgha about {} (interval × failures + timeout).",
            dur(pgpool_worst),
            dur(pgha_worst)
        ));
    }
    if r == 0 {
        note.push_str(
            " One failed probe then fails a primary over, as in pgpool; pgha's default \
             is 2.",
        );
    }
    out.key("failures_before_down", r + 1, &note);
    per_node_checks(ctx, out);
}

/// pgpool 3.7+ lets each backend have its own health check settings.
fn per_node_checks(ctx: &mut Ctx<'_>, out: &mut Toml) {
    let per_node: Vec<&Entry> = ctx
        .entries()
        .iter()
        .filter(|e| {
            e.key.starts_with("health_check_") && e.key.ends_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    if per_node.is_empty() {
        return;
    }
    for entry in &per_node {
        ctx.mark(entry);
    }
    out.comment(&format!(
        "Not carried over: {} — pgha probes every node on one schedule; set the values \
         above to the ones you want for all.",
        origins(&per_node)
    ));
}

/// The user pgha's own connections log in as: pgpool's sr_check_user
/// (the probe reads replication state, as the sr check did), else its
/// health_check_user.
fn credentials(ctx: &mut Ctx<'_>, out: &mut Toml) {
    let sr_user = ctx
        .text("sr_check_user")
        .filter(|(u, _)| !u.trim().is_empty());
    let sr_password = ctx.take("sr_check_password");
    let hc_user = ctx
        .text("health_check_user")
        .filter(|(u, _)| !u.trim().is_empty());
    let hc_password = ctx.take("health_check_password");
    let (user, password, other) = match (sr_user, hc_user) {
        (Some(sr), hc) => (Some(sr), sr_password, hc.map(|h| (h, hc_password))),
        (None, Some(hc)) => (Some(hc), hc_password, None),
        (None, None) => (None, None, None),
    };
    if let Some((name, entry)) = &user {
        out.key(
            "user",
            name.trim(),
            &format!(
                "pgpool: {} — pgha's probes and promotions log in as this user.",
                origin(entry)
            ),
        );
        if name.trim() == "nobody" {
            ctx.warn(entry, "the monitor user is pgpool's placeholder 'nobody'");
        }
    }
    if let Some(((other_name, other_entry), other_password)) = &other {
        let same = user
            .as_ref()
            .is_some_and(|(u, _)| u.trim() == other_name.trim());
        out.comment(&format!(
            "{}{}: {}",
            origin(other_entry),
            other_password
                .map(|p| format!(", {}", origin(p)))
                .unwrap_or_default(),
            if same {
                "the same user."
            } else {
                "pgha has one monitoring user; this one is not used."
            }
        ));
    }
    if let Some(entry) = password {
        monitor_password(ctx, out, entry);
    }
    for (key, fallback) in [
        ("sr_check_database", false),
        ("health_check_database", true),
    ] {
        let Some((db, entry)) = ctx.text(key) else {
            continue;
        };
        if db.trim().is_empty() {
            continue;
        }
        if fallback
            && ctx
                .peek("sr_check_database")
                .is_some_and(|e| !is_empty(&e.value))
        {
            out.comment(&format!(
                "{}: pgha has one database for its connections; sr_check_database is used.",
                origin(entry)
            ));
            continue;
        }
        out.key("dbname", db.trim(), &format!("pgpool: {}", origin(entry)));
    }
    let guess = user.map(|(u, _)| u.trim().to_owned());
    out.comment(
        "replication_user: not in pgpool.conf (it is in each standby's primary_conninfo); \
         pgha writes it into primary_conninfo when a standby follows a new primary \
         (default \"postgres\").",
    );
    if let Some(guess) = guess {
        out.proposal("replication_user", guess);
    }
}

fn monitor_password(ctx: &mut Ctx<'_>, out: &mut Toml, entry: &Entry) {
    let text = entry.value.text();
    let (kind, plain) = super::passwd::classify(&text);
    match plain {
        _ if text.is_empty() => out.comment(&format!(
            "{}: pgpool looked the password up in pool_passwd. Give it with password_env \
             (or password).",
            origin(entry)
        )),
        Some(plain) => out.key(
            "password",
            plain,
            &format!(
                "pgpool: {}, carried over as it stood in the clear. Better: \
                 password_env = \"PGHA_MONITOR_PASSWORD\" and the password in the unit's \
                 environment.",
                origin(entry)
            ),
        ),
        None => {
            out.comment(&format!(
                "{} (line {}) holds a {kind} password, which pgha cannot log in with: give \
                 the password with password_env (or password).",
                entry.key, entry.line
            ));
            ctx.warn(
                entry,
                format!(
                    "{}: a {kind} password cannot be carried over; set [monitor] password_env",
                    entry.key
                ),
            );
        }
    }
}
