//! The `[[node]]`s: pgpool's `backend_*N` settings.

use std::collections::BTreeMap;

use super::context::{is_empty, origin, Ctx, Toml};
use super::pgpool_conf::{Entry, LineError};

/// A backend as imported, for the command proposals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    /// pgpool's index N.
    pub index: u32,
    /// Its pgha name, `node<N>`.
    pub name: String,
    /// backend_hostnameN, if not empty (the watchdog's hosts are matched
    /// against it to find the node on this host).
    pub host: Option<String>,
    /// backend_data_directoryN, if given.
    pub data_dir: Option<String>,
}

/// Writes one `[[node]]` per pgpool backend, in index order.
pub(super) fn nodes(ctx: &mut Ctx<'_>, out: &mut Toml) -> Vec<Node> {
    let mut by_index: BTreeMap<u32, BTreeMap<&'static str, &Entry>> = BTreeMap::new();
    for entry in ctx.entries() {
        if let Some((field, index)) = backend_key(&entry.key) {
            by_index.entry(index).or_default().insert(field, entry);
        }
    }
    let socket_dir = ctx.take("backend_socket_dir");
    let weights = weights(&by_index);
    let mut nodes = Vec::new();
    for (index, fields) in &by_index {
        for entry in fields.values() {
            ctx.mark(entry);
        }
        let Some(port_entry) = fields.get("port") else {
            let any = fields.values().next();
            out.comment(&format!(
                "pgpool backend {index} has no backend_port{index}: pgpool does not use it, \
                 nor does pgha."
            ));
            if let Some(entry) = any {
                ctx.warn(
                    entry,
                    format!("backend {index} has no backend_port{index}: skipped"),
                );
            }
            continue;
        };
        let port = match port_entry.value.as_int() {
            Some(p) if (1..=65535).contains(&p) => p,
            _ => {
                ctx.problems.push(LineError {
                    line: port_entry.line,
                    message: format!(
                        "{}: {} is not a port (1 to 65535)",
                        port_entry.key, port_entry.value
                    ),
                });
                continue;
            }
        };
        let name = format!("node{index}");
        out.table("[[node]]");
        out.comment(&format!(
            "pgpool backend {index}{}",
            if nodes.is_empty() {
                " — the first node is the primary until the probes or the state file say otherwise."
            } else {
                ""
            }
        ));
        out.key("name", name.clone(), "");
        let mut host = None;
        match fields.get("hostname") {
            Some(e) if !is_empty(&e.value) => {
                host = Some(e.value.text().trim().to_owned());
                out.key(
                    "host",
                    e.value.text().trim(),
                    &format!("pgpool: {}", origin(e)),
                );
            }
            _ => {
                let dir = socket_dir.map_or("/tmp".to_owned(), |e| e.value.text());
                out.key(
                    "host",
                    dir,
                    &format!(
                        "backend_hostname{index} is empty: pgpool connects through the Unix \
                         socket in this directory{}.",
                        socket_dir
                            .map_or(" (its default)".to_owned(), |e| format!(" ({})", origin(e)))
                    ),
                );
            }
        }
        out.key("port", port, &format!("pgpool: {}", origin(port_entry)));
        if let Some(entry) = fields.get("weight") {
            let (weight, note) = weights.get(index).cloned().unwrap_or((1, String::new()));
            out.key(
                "weight",
                i64::from(weight),
                &format!("pgpool: {}{note}", origin(entry)),
            );
        }
        if let Some(entry) = fields.get("flag") {
            flag(ctx, out, entry);
        }
        let data_dir = fields.get("data_directory").map(|e| {
            out.comment(&format!(
                "{}: no [[node]] key; it is %D/%R for the commands proposed below and the \
                 data directory of the co-located node's local agent.",
                origin(e)
            ));
            e.value.text()
        });
        if let Some(entry) = fields.get("application_name") {
            out.comment(&format!(
                "{}: not needed; pgha asks each standby for its own replication state.",
                origin(entry)
            ));
        }
        nodes.push(Node {
            index: *index,
            name,
            host,
            data_dir,
        });
    }
    if nodes.is_empty() {
        out.comment("No backend_hostnameN/backend_portN: add a [[node]] per PostgreSQL server.");
        ctx.warnings
            .push((0, "no backend found: add [[node]] sections by hand".into()));
    }
    nodes
}

/// `backend_hostname3` → `("hostname", 3)`.
pub(super) fn backend_key(key: &str) -> Option<(&'static str, u32)> {
    let rest = key.strip_prefix("backend_")?;
    let digits = rest.len() - rest.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let (field, index) = rest.split_at(rest.len() - digits);
    let field = [
        "hostname",
        "port",
        "weight",
        "data_directory",
        "flag",
        "application_name",
    ]
    .into_iter()
    .find(|f| *f == field)?;
    Some((field, index.parse().ok()?))
}

/// pgpool's weights are relative reals; pgha's are integers: whole
/// numbers are kept, fractions scaled by 100 for all nodes alike.
fn weights(
    by_index: &BTreeMap<u32, BTreeMap<&'static str, &Entry>>,
) -> BTreeMap<u32, (u32, String)> {
    let values: BTreeMap<u32, f64> = by_index
        .iter()
        .filter_map(|(i, f)| Some((*i, f.get("weight")?.value.as_f64()?.max(0.0))))
        .collect();
    let whole = values
        .values()
        .all(|w| w.fract() == 0.0 && *w <= f64::from(u32::MAX));
    values
        .into_iter()
        .map(|(i, w)| {
            if whole {
                (i, (w as u32, String::new()))
            } else {
                let scaled = (w * 100.0).round().min(f64::from(u32::MAX)) as u32;
                (
                    i,
                    (
                        scaled,
                        " — times 100 for every node, as pgha's weights are whole numbers."
                            .to_owned(),
                    ),
                )
            }
        })
        .collect()
}

fn flag(ctx: &mut Ctx<'_>, out: &mut Toml, entry: &Entry) {
    let text = entry.value.text();
    let flags: Vec<String> = text
        .split('|')
        .map(|f| f.trim().to_ascii_uppercase())
        .collect();
    if flags.iter().all(|f| f == "ALLOW_TO_FAILOVER") {
        out.comment(&format!("{}: pgha's behaviour.", origin(entry)));
        return;
    }
    out.comment(&format!(
        "{}: no counterpart — pgha fails over (or detaches) every node it finds down. \
         priority = 0 only keeps a node from being promoted.",
        origin(entry)
    ));
    ctx.warn(
        entry,
        format!("{} = '{text}' is not carried over", entry.key),
    );
}
