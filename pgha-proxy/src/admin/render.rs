//! The answer to one admin command, and the small tables (`STATS`,
//! `CONFIG`, `HELP`) that need no module of their own.

use bytes::BytesMut;

use super::table::{boolean, int8, text, Column, Table, Value};
use super::{connections, nodes, AdminCommand, AdminSnapshot, ShowWhat};
use crate::messages;

/// Writes the answer to `command`: a result set then `CommandComplete`
/// `SHOW` for `SHOW`, the bare `CommandComplete` (`PAUSE`, `RESUME`,
/// `RELOAD`) otherwise — the session performs those, see
/// [`AdminCommand::action`]. No `ReadyForQuery`: the session adds it once
/// the whole query string is answered.
///
/// Commands that [act](AdminCommand::acts) are answered once done, by
/// [`respond_outcome`](super::respond_outcome): nothing is written here.
pub fn respond(command: &AdminCommand, snapshot: &AdminSnapshot, out: &mut BytesMut) {
    match command {
        AdminCommand::Show(what) => table(*what, snapshot).write(command.tag(), out),
        AdminCommand::Pause | AdminCommand::Resume => {
            messages::command_complete(out, command.tag());
        }
        AdminCommand::Reload | AdminCommand::Cluster(_) => {}
    }
}

fn table(what: ShowWhat, snapshot: &AdminSnapshot) -> Table {
    match what {
        ShowWhat::Nodes => nodes::nodes(snapshot),
        ShowWhat::PoolNodes => nodes::pool_nodes(snapshot),
        ShowWhat::Pools => connections::pools(snapshot),
        ShowWhat::Clients => connections::clients(snapshot),
        ShowWhat::Servers => connections::servers(snapshot),
        ShowWhat::Stats => stats(snapshot),
        ShowWhat::Config => config(snapshot),
        ShowWhat::Help => help(),
        ShowWhat::Status => super::status::status(snapshot),
    }
}

const STATS: &[Column] = &[
    text("node"),
    int8("total_xact_count"),
    int8("total_query_count"),
    int8("total_read_count"),
    int8("total_received"),
    int8("total_sent"),
    int8("total_xact_time"),
    int8("total_query_time"),
    int8("total_wait_time"),
    int8("avg_xact_time"),
    int8("avg_query_time"),
];

/// `SHOW STATS`: times in microseconds, as PgBouncer's. The averages are
/// over the proxy's whole life (PgBouncer's are over its last stats
/// period, which pgha does not keep).
fn stats(snapshot: &AdminSnapshot) -> Table {
    let mut table = Table::new(STATS);
    for row in &snapshot.stats {
        let average = |total: std::time::Duration, count: u64| {
            total
                .as_micros()
                .checked_div(u128::from(count))
                .unwrap_or(0)
        };
        table.push(vec![
            Value::text(row.node.as_str()),
            Value::int(row.xacts),
            Value::int(row.queries),
            Value::int(row.reads),
            Value::int(row.received),
            Value::int(row.sent),
            Value::micros(row.xact_time),
            Value::micros(row.query_time),
            Value::micros(row.wait_time),
            Value::int(average(row.xact_time, row.xacts)),
            Value::int(average(row.query_time, row.queries)),
        ]);
    }
    table
}

const CONFIG: &[Column] = &[
    text("key"),
    text("value"),
    text("default"),
    boolean("changeable"),
];

/// What a secret's value shows as.
const MASK: &str = "********";

/// `SHOW CONFIG`. Values of keys naming a password or secret are masked:
/// the console must not be the way a credential leaks, whatever the
/// session puts in the snapshot.
fn config(snapshot: &AdminSnapshot) -> Table {
    let mut table = Table::new(CONFIG);
    for row in &snapshot.config {
        let key = row.key.to_ascii_lowercase();
        let secret = key.contains("password") || key.contains("secret");
        let shown = |value: &str| {
            if secret {
                MASK.to_owned()
            } else {
                value.to_owned()
            }
        };
        table.push(vec![
            Value::text(row.key.as_str()),
            Value::text(shown(&row.value)),
            Value::opt_text(row.default.as_deref().map(shown)),
            Value::Bool(row.changeable),
        ]);
    }
    table
}

const HELP: &[Column] = &[text("command"), text("description")];

/// Every command, for `SHOW HELP`.
const COMMANDS: [(&str, &str); 16] = [
    (
        "SHOW STATUS",
        "the cluster: each node's role, status and lag, the term, held writes, leader, lease, VIP holder",
    ),
    (
        "SHOW NODES",
        "backend nodes as pgha sees them: role, status, WAL position, lag",
    ),
    (
        "SHOW POOL_NODES",
        "the nodes with pgpool-II's SHOW POOL_NODES columns",
    ),
    (
        "SHOW POOLS",
        "connection pools: clients and servers per node, database and user",
    ),
    ("SHOW CLIENTS", "client connections"),
    ("SHOW SERVERS", "server connections"),
    ("SHOW STATS", "counters per node since the proxy started"),
    ("SHOW CONFIG", "the proxy's settings"),
    ("SHOW HELP", "this list"),
    ("PAUSE", "hold new requests (running transactions finish)"),
    ("RESUME", "let held requests go"),
    (
        "RELOAD",
        "read the configuration file again: one row per changed setting, applied or not (and why)",
    ),
    (
        "PROMOTE node",
        "make the up standby node the primary now (the old primary is fenced)",
    ),
    (
        "SWITCHOVER [node]",
        "planned hand-over to node (or the best standby): pause, promote, re-point, resume",
    ),
    ("ATTACH node", "put node back into routing"),
    (
        "DETACH node",
        "take node out of routing (detaching the primary fails over)",
    ),
];

fn help() -> Table {
    let mut table = Table::new(HELP);
    for (command, description) in COMMANDS {
        table.push(vec![Value::text(command), Value::text(description)]);
    }
    table
}
