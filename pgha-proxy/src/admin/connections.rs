//! `SHOW POOLS`, `SHOW CLIENTS`, `SHOW SERVERS`: the proxy's connections,
//! with PgBouncer's column names where the meaning is the same.

use std::time::SystemTime;

use pgha_core::NodeId;

use super::table::{boolean, int8, text, Column, Table, Value};
use super::AdminSnapshot;

const POOLS: &[Column] = &[
    text("node"),
    text("database"),
    text("user"),
    int8("cl_active"),
    int8("cl_waiting"),
    int8("sv_active"),
    int8("sv_idle"),
    int8("sv_login"),
    int8("maxwait"),
    int8("maxwait_us"),
    text("pool_mode"),
    boolean("paused"),
];

/// `SHOW POOLS`: one row per pool, in the snapshot's order.
pub(super) fn pools(snapshot: &AdminSnapshot) -> Table {
    let mut table = Table::new(POOLS);
    for pool in &snapshot.pools {
        table.push(vec![
            Value::text(pool.node.as_str()),
            Value::text(pool.database.as_str()),
            Value::text(pool.user.as_str()),
            Value::int(pool.cl_active),
            Value::int(pool.cl_waiting),
            Value::int(pool.sv_active),
            Value::int(pool.sv_idle),
            Value::int(pool.sv_login),
            // As PgBouncer: whole seconds, then the microseconds beyond.
            Value::int(pool.max_wait.as_secs()),
            Value::int(pool.max_wait.subsec_micros()),
            Value::text(pool.mode.as_str()),
            Value::Bool(snapshot.paused),
        ]);
    }
    table
}

const CLIENTS: &[Column] = &[
    int8("pid"),
    text("user"),
    text("database"),
    text("application_name"),
    text("state"),
    text("addr"),
    int8("port"),
    text("connect_time"),
    text("request_time"),
    text("node"),
    int8("server_pid"),
];

/// `SHOW CLIENTS`: one row per client connection.
pub(super) fn clients(snapshot: &AdminSnapshot) -> Table {
    let mut table = Table::new(CLIENTS);
    for client in &snapshot.clients {
        table.push(vec![
            Value::int(client.pid),
            Value::text(client.user.as_str()),
            Value::text(client.database.as_str()),
            Value::opt_text(client.application_name.as_deref()),
            Value::text(client.state.as_str()),
            // Over a Unix socket there is no address; PgBouncer shows
            // "unix" there, which a script reading addresses would misread.
            Value::opt_text(client.peer.map(|p| p.ip().to_string())),
            Value::opt_int(client.peer.map(|p| p.port())),
            Value::time(client.connect_time),
            opt_time(client.request_time),
            Value::opt_text(client.node.as_ref().map(NodeId::as_str)),
            Value::opt_int(client.server_pid),
        ]);
    }
    table
}

const SERVERS: &[Column] = &[
    text("node"),
    text("host"),
    int8("port"),
    text("database"),
    text("user"),
    text("state"),
    int8("backend_pid"),
    text("connect_time"),
    text("request_time"),
    int8("client_pid"),
];

/// `SHOW SERVERS`: one row per server connection; host and port come from
/// the topology (NULL for a node it no longer has).
pub(super) fn servers(snapshot: &AdminSnapshot) -> Table {
    let mut table = Table::new(SERVERS);
    for server in &snapshot.servers {
        let node = snapshot.topology.node(&server.node);
        table.push(vec![
            Value::text(server.node.as_str()),
            Value::opt_text(node.map(|n| n.host.as_str())),
            Value::opt_int(node.map(|n| n.port)),
            Value::text(server.database.as_str()),
            Value::text(server.user.as_str()),
            Value::text(server.state.as_str()),
            Value::opt_int(server.backend_pid),
            Value::time(server.connect_time),
            opt_time(server.request_time),
            Value::opt_int(server.client_pid),
        ]);
    }
    table
}

fn opt_time(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, Value::time)
}
