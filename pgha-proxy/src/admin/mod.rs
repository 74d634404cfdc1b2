//! The admin console: database `pgha` on the proxy's own port, as
//! PgBouncer's `pgbouncer` database.
//!
//! `psql -h proxy -p 6432 -U admin pgha`, then:
//!
//! | command | answer |
//! |---|---|
//! | `SHOW NODES` | every backend node: role, status, term, WAL position, lag |
//! | `SHOW POOL_NODES` | the same nodes with pgpool-II 4.3's `SHOW POOL_NODES` columns, for operators' scripts written for pgpool |
//! | `SHOW POOLS` | one row per pool (node, database, user): clients and servers by state |
//! | `SHOW CLIENTS` | one row per client connection |
//! | `SHOW SERVERS` | one row per server connection |
//! | `SHOW STATS` | counters per node (times in microseconds) |
//! | `SHOW CONFIG` | the settings (passwords and secrets masked) |
//! | `SHOW HELP` | the commands |
//! | `PAUSE` | hold new requests; running transactions finish |
//! | `RESUME` | let held requests go |
//! | `RELOAD` | read the configuration again; one row per changed setting, applied or not (and why) |
//! | `SHOW STATUS` | one row per node: role, status, term, lag, held writes, paused, leader, lease, VIP holder |
//! | `PROMOTE node` | make the standby `node` the primary now (the old one is fenced) |
//! | `SWITCHOVER [node]` | planned hand-over to `node` (or the best standby): pause, promote, re-point, resume |
//! | `ATTACH node` / `DETACH node` | put a node back into routing / take it out (the primary: fail over) |
//!
//! The commands that act (`RELOAD`, `PROMOTE`, `SWITCHOVER`, `ATTACH`,
//! `DETACH`) must be alone in their query string (`0A000` otherwise, and
//! nothing runs). They answer once done: one row per action the monitor
//! took (`action`, `node`, `term`, `status` done or failed, `detail`) and
//! `CommandComplete`, or an error — `42704` unknown node, `55000` not
//! possible in the cluster's state (nothing ran), `58000` the action the
//! command is for failed, `F0000` a configuration with mistakes (nothing
//! applied; one mistake per line in DETAIL), `0A000` a proxy built without
//! a monitor. A node name is a word as
//! written, a `"quoted identifier"` or a `'string'`.
//!
//! Keywords are case-insensitive; comments, a trailing `;` and several
//! statements in one query string are accepted. A query string runs all or
//! nothing as far as parsing goes: one statement the console does not know
//! (`42601`, or `0A000` for `SHOW` of something it does not list) and none
//! of them runs. `PAUSE` while paused or `RESUME` while not is an error
//! (`55000`) that stops the statements after it.
//!
//! Only the users of the configuration's `admin_users` may connect to
//! `pgha`; the session checks that, after authentication, before it hands
//! any query here. The console speaks the simple query protocol only.
//!
//! This module is the pure part: the session copies the proxy's live state
//! into an [`AdminSnapshot`], calls [`handle_query`] with each `Query`
//! message's text, sends the bytes followed by `ReadyForQuery`, then
//! performs the returned [`AdminAction`]s in order. A snapshot is taken
//! before the query string runs, so `PAUSE; SHOW POOLS` shows the pools as
//! they were before the pause.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::BytesMut;
//! use pgha_core::{NodeState, Role, Topology};
//! use pgha_proxy::admin::{handle_query, AdminAction, AdminSnapshot};
//!
//! let topology = Topology::new([NodeState::new("db1", Role::Primary, "10.0.0.1", 5432)]);
//! let snapshot = AdminSnapshot::new(Arc::new(topology));
//! let mut out = BytesMut::new();
//! let actions = handle_query("show nodes; PAUSE;", &snapshot, &mut out);
//! assert_eq!(actions, [AdminAction::Pause]);
//! assert_eq!(out[0], b'T'); // RowDescription of SHOW NODES comes first
//! ```

mod command;
mod connections;
mod nodes;
mod outcome;
mod render;
mod snapshot;
mod status;
mod table;

#[cfg(test)]
mod tests;

use bytes::BytesMut;

pub use command::{cluster_tag, parse, parse_all, AdminAction, AdminCommand, AdminError, ShowWhat};
pub use outcome::{
    check, judge, respond_outcome, Acted, ControlError, Outcome, ReloadLine, ReloadReport,
};
pub use render::respond;
pub use snapshot::{
    AdminSnapshot, ClientRow, ClientState, ConfigRow, PoolRow, ServerRow, ServerState, StatsRow,
};
pub use status::{Membership, SINGLE_NODE};

use crate::messages;

/// The database name that selects the admin console.
pub const ADMIN_DATABASE: &str = "pgha";

/// Answers one simple-protocol query string of the console into `out`: the
/// answer of each statement in turn, `EmptyQueryResponse` if there is none,
/// or an `ErrorResponse` (then nothing more). Returns what the session must
/// do now, in order: the actions of the statements that ran.
pub fn handle_query(sql: &str, snapshot: &AdminSnapshot, out: &mut BytesMut) -> Vec<AdminAction> {
    let commands = match parse_all(sql) {
        Ok(commands) => commands,
        Err(e) => {
            write_error(&e, out);
            return Vec::new();
        }
    };
    if commands.is_empty() {
        messages::empty_query(out);
        return Vec::new();
    }
    let mut paused = snapshot.paused;
    let mut actions = Vec::new();
    for command in commands {
        if let Err(e) = check_pause_state(&command, &mut paused) {
            write_error(&e, out);
            break;
        }
        respond(&command, snapshot, out);
        actions.extend(command.action());
    }
    actions
}

/// Refuses a `PAUSE` of a paused proxy and a `RESUME` of a running one (a
/// script that thinks it paused must learn that it did not), and tracks
/// the state across the statements of one string.
fn check_pause_state(command: &AdminCommand, paused: &mut bool) -> Result<(), AdminError> {
    match (command, *paused) {
        (AdminCommand::Pause, true) => Err(AdminError::AlreadyPaused),
        (AdminCommand::Resume, false) => Err(AdminError::NotPaused),
        (AdminCommand::Pause, false) => {
            *paused = true;
            Ok(())
        }
        (AdminCommand::Resume, true) => {
            *paused = false;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn write_error(e: &AdminError, out: &mut BytesMut) {
    messages::error_with_hint(out, "ERROR", e.sqlstate(), &e.to_string(), e.hint());
}
