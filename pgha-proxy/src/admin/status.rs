//! `SHOW STATUS`: the cluster in one table, for people and for
//! `pgha-ctl status`.

use super::nodes::{lag_bytes, lag_time, role_name, status_name};
use super::table::{boolean, int8, text, Column, Table, Value};
use super::AdminSnapshot;

/// Who leads the pgha nodes and holds the virtual IP. A proxy with no
/// watchdog is a single node: each field says `single node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The pgha node that may act (the watchdog's leader).
    pub leader: String,
    /// The leader's lease (e.g. how long it has left).
    pub lease: String,
    /// The pgha node holding the virtual IP.
    pub vip_holder: String,
}

/// What every field says without a watchdog.
pub const SINGLE_NODE: &str = "single node";

impl Default for Membership {
    fn default() -> Self {
        Self {
            leader: SINGLE_NODE.into(),
            lease: SINGLE_NODE.into(),
            vip_holder: SINGLE_NODE.into(),
        }
    }
}

const STATUS: &[Column] = &[
    text("node"),
    text("role"),
    text("status"),
    int8("term"),
    boolean("term_primary"),
    int8("lag_bytes"),
    int8("lag_us"),
    text("writes_held"),
    boolean("paused"),
    text("leader"),
    text("lease"),
    text("vip_holder"),
];

/// One row per node: its role, status and lag, with the cluster's term,
/// why writes are held (NULL when they are not), whether the proxy is
/// paused and who leads on every row, so each row reads alone.
pub(super) fn status(snapshot: &AdminSnapshot) -> Table {
    let topology = &snapshot.topology;
    let m = &snapshot.membership;
    let mut table = Table::new(STATUS);
    for node in topology.nodes() {
        table.push(vec![
            Value::text(node.id.as_str()),
            Value::text(role_name(node.role)),
            Value::text(status_name(node.status)),
            Value::int(topology.term()),
            Value::Bool(topology.primary_id() == Some(&node.id)),
            Value::opt_int(lag_bytes(snapshot, node)),
            lag_time(snapshot, node).map_or(Value::Null, Value::micros),
            Value::opt_text(topology.held()),
            Value::Bool(snapshot.paused),
            Value::text(m.leader.as_str()),
            Value::text(m.lease.as_str()),
            Value::text(m.vip_holder.as_str()),
        ]);
    }
    table
}
