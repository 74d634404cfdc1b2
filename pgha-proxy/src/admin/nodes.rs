//! `SHOW NODES` (pgha's view of the backends) and `SHOW POOL_NODES` (the
//! same nodes with pgpool-II 4.3's columns, so operators' scripts that
//! read pgpool keep working).

use std::collections::BTreeSet;

use pgha_core::{FailureReason, NodeId, NodeState, Role, Status};

use super::table::{boolean, int8, text, utc_text, Column, Table, Value};
use super::AdminSnapshot;
use crate::route::{read_candidates, replay_lag_bytes, replay_lag_time, LagLimits};

const NODES: &[Column] = &[
    text("node"),
    text("host"),
    int8("port"),
    text("role"),
    text("status"),
    int8("weight"),
    int8("priority"),
    text("upstream"),
    int8("term"),
    boolean("term_primary"),
    boolean("writable"),
    boolean("read_candidate"),
    boolean("suspected"),
    boolean("in_recovery"),
    int8("timeline"),
    text("lsn"),
    int8("lag_bytes"),
    int8("receive_lag_bytes"),
    int8("lag_us"),
    int8("failures"),
    text("last_failure"),
    text("status_since"),
    text("writes_held"),
];

/// `SHOW NODES`: every node, by id; `writes_held` is why no node takes
/// writes, when the monitor holds them (who is primary is not settled).
pub(super) fn nodes(snapshot: &AdminSnapshot) -> Table {
    let topology = &snapshot.topology;
    let readers = readers(snapshot);
    let mut table = Table::new(NODES);
    for node in topology.nodes() {
        table.push(vec![
            Value::text(node.id.as_str()),
            Value::text(node.host.as_str()),
            Value::int(node.port),
            Value::text(role(node.role)),
            Value::text(status(node.status)),
            Value::int(node.weight),
            Value::int(node.priority),
            Value::opt_text(node.upstream.as_ref().map(NodeId::as_str)),
            Value::int(topology.term()),
            Value::Bool(topology.primary_id() == Some(&node.id)),
            Value::Bool(topology.is_writable(&node.id)),
            Value::Bool(readers.contains(&node.id)),
            Value::Bool(snapshot.suspected.contains(&node.id)),
            node.in_recovery.map_or(Value::Null, Value::Bool),
            Value::opt_int(node.timeline),
            Value::opt_text(node.known_lsn().map(|lsn| lsn.to_string())),
            Value::opt_int(lag_bytes(snapshot, node)),
            Value::opt_int(receive_lag_bytes(snapshot, node)),
            lag_time(snapshot, node).map_or(Value::Null, Value::micros),
            Value::int(node.consecutive_failures),
            Value::opt_text(node.last_failure.map(failure)),
            snapshot
                .status_since
                .get(&node.id)
                .map_or(Value::Null, |t| Value::time(*t)),
            Value::opt_text(topology.held()),
        ]);
    }
    table
}

// pgpool-II sends every column of SHOW POOL_NODES as text; so does this.
const POOL_NODES: &[Column] = &[
    text("node_id"),
    text("hostname"),
    text("port"),
    text("status"),
    text("pg_status"),
    text("lb_weight"),
    text("role"),
    text("pg_role"),
    text("select_cnt"),
    text("load_balance_node"),
    text("replication_delay"),
    text("replication_state"),
    text("replication_sync_state"),
    text("last_status_change"),
];

/// `SHOW POOL_NODES`: pgpool numbers nodes from 0 in configuration order;
/// here `node_id` is the node's position in `SHOW NODES` (by name), since
/// pgpool's columns have no place for the name.
pub(super) fn pool_nodes(snapshot: &AdminSnapshot) -> Table {
    let topology = &snapshot.topology;
    let readers = readers(snapshot);
    let total_weight: u64 = topology.nodes().iter().map(|n| u64::from(n.weight)).sum();
    let mut table = Table::new(POOL_NODES);
    for (index, node) in topology.nodes().iter().enumerate() {
        let share = if total_weight == 0 {
            0.0
        } else {
            f64::from(node.weight) / total_weight as f64
        };
        let selects: u64 = snapshot
            .stats
            .iter()
            .filter(|s| s.node == node.id)
            .map(|s| s.reads)
            .sum();
        table.push(vec![
            Value::text(index.to_string()),
            Value::text(node.host.as_str()),
            Value::text(node.port.to_string()),
            Value::text(pgpool_status(node.status)),
            Value::text(observed_status(node)),
            Value::text(format!("{share:.6}")),
            Value::text(role(node.role)),
            Value::text(match node.in_recovery {
                Some(true) => "standby",
                Some(false) => "primary",
                None => "unknown",
            }),
            Value::text(selects.to_string()),
            Value::text(if readers.contains(&node.id) {
                "true"
            } else {
                "false"
            }),
            Value::opt_text(lag_bytes(snapshot, node).map(|b| b.to_string())),
            // pgha does not read pg_stat_replication; pgpool shows these
            // empty when it could not either.
            Value::text(""),
            Value::text(""),
            Value::opt_text(
                snapshot
                    .status_since
                    .get(&node.id)
                    .and_then(|t| utc_text(*t)),
            ),
        ]);
    }
    table
}

/// The standbys reads are load-balanced to right now (a suspected one is
/// avoided).
fn readers(snapshot: &AdminSnapshot) -> BTreeSet<NodeId> {
    if !snapshot.load_balance {
        return BTreeSet::new();
    }
    let limits = LagLimits {
        bytes: snapshot.max_standby_lag_bytes,
        time: snapshot.max_standby_lag_time,
    };
    read_candidates(&snapshot.topology, limits)
        .filter(|n| !snapshot.suspected.contains(&n.id))
        .map(|n| n.id.clone())
        .collect()
}

/// The WAL a read on this node would miss, as the router judges it
/// ([`replay_lag_bytes`]); `None` while its position was never observed.
pub(super) fn lag_bytes(snapshot: &AdminSnapshot, node: &NodeState) -> Option<u64> {
    replay_lag_bytes(&snapshot.topology, node)
}

/// The WAL this node has not even received (replication's network lag):
/// next to [`lag_bytes`], it tells a slow link from a stalled replay.
fn receive_lag_bytes(snapshot: &AdminSnapshot, node: &NodeState) -> Option<u64> {
    node.known_lsn()?;
    snapshot.topology.bytes_behind(&node.id)
}

/// A standby's replay delay as the router judges it ([`replay_lag_time`]);
/// a primary's has no meaning.
pub(super) fn lag_time(snapshot: &AdminSnapshot, node: &NodeState) -> Option<std::time::Duration> {
    if node.in_recovery == Some(true) {
        replay_lag_time(&snapshot.topology, node)
    } else {
        node.lag_time
    }
}

/// A role as the console words it.
pub(super) fn role_name(r: Role) -> &'static str {
    role(r)
}

/// A status as the console words it.
pub(super) fn status_name(s: Status) -> &'static str {
    status(s)
}

fn role(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Standby => "standby",
        Role::Unknown => "unknown",
    }
}

fn status(status: Status) -> &'static str {
    match status {
        Status::Up => "up",
        Status::Down => "down",
        Status::Detached => "detached",
        Status::Quarantined => "quarantined",
        Status::Rejoining => "rejoining",
        Status::Maintenance => "maintenance",
    }
}

/// pgpool's `status` knows only up, down and quarantine: every node pgha
/// does not route to is down to it.
fn pgpool_status(status: Status) -> &'static str {
    match status {
        Status::Up => "up",
        Status::Quarantined => "quarantine",
        Status::Down | Status::Detached | Status::Rejoining | Status::Maintenance => "down",
    }
}

/// pgpool's `pg_status`: what the last probe saw, whatever pgha decided.
fn observed_status(node: &NodeState) -> &'static str {
    if node.consecutive_failures > 0 {
        "down"
    } else if node.last_observed_at.is_some() {
        "up"
    } else {
        "unknown"
    }
}

fn failure(reason: FailureReason) -> &'static str {
    match reason {
        FailureReason::ConnectRefused => "connect refused",
        FailureReason::Timeout => "timeout",
        FailureReason::ConnectionLost => "connection lost",
        FailureReason::Query => "query failed",
        FailureReason::Crashed => "crashed",
    }
}
