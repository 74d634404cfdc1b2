//! Tests of the admin console: answers are decoded with postgres-protocol,
//! as a client would read them.

#![allow(clippy::unwrap_used)]

mod acting;
mod connections;
mod nodes;
mod parse;
mod query;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use pgha_core::{FailureReason, Lsn, NodeState, Role, Status, Topology};
use postgres_protocol::message::backend::Message;

use super::{handle_query, AdminAction, AdminSnapshot};

/// One decoded backend message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Columns(Vec<(String, u32)>),
    Row(Vec<Option<String>>),
    Complete(String),
    Empty,
    Error {
        code: String,
        message: String,
        hint: String,
    },
}

/// Every message in `out`; panics on bytes that are not whole, valid
/// backend messages.
fn decode(mut out: BytesMut) -> Vec<Reply> {
    let mut replies = Vec::new();
    while !out.is_empty() {
        let message = match Message::parse(&mut out) {
            Ok(Some(message)) => message,
            other => panic!("not a whole message: {:?}", other.err()),
        };
        replies.push(match message {
            Message::RowDescription(desc) => Reply::Columns(
                desc.fields()
                    .map(|f| Ok((f.name().to_owned(), f.type_oid())))
                    .collect()
                    .unwrap(),
            ),
            Message::DataRow(row) => {
                let buffer = row.buffer();
                Reply::Row(
                    row.ranges()
                        .map(|r| Ok(r.map(|r| String::from_utf8(buffer[r].to_vec()).unwrap())))
                        .collect()
                        .unwrap(),
                )
            }
            Message::CommandComplete(c) => Reply::Complete(c.tag().unwrap().to_owned()),
            Message::EmptyQueryResponse => Reply::Empty,
            Message::ErrorResponse(e) => {
                let fields: Vec<(u8, String)> = e
                    .fields()
                    .map(|f| {
                        Ok((
                            f.type_(),
                            String::from_utf8(f.value_bytes().to_vec()).unwrap(),
                        ))
                    })
                    .collect()
                    .unwrap();
                let field = |t: u8| {
                    fields
                        .iter()
                        .find(|(k, _)| *k == t)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                Reply::Error {
                    code: field(b'C'),
                    message: field(b'M'),
                    hint: field(b'H'),
                }
            }
            _ => panic!("the console sent an unexpected message"),
        });
    }
    replies
}

/// The replies and actions for one query string.
fn run(sql: &str, snapshot: &AdminSnapshot) -> (Vec<Reply>, Vec<AdminAction>) {
    let mut out = BytesMut::new();
    let actions = handle_query(sql, snapshot, &mut out);
    (decode(out), actions)
}

/// A result set as column names and rows of named values.
struct Rows {
    columns: Vec<(String, u32)>,
    rows: Vec<Vec<Option<String>>>,
}

impl Rows {
    /// The value of `column` in row `row`; panics on an unknown column.
    fn get(&self, row: usize, column: &str) -> Option<&str> {
        let at = self
            .columns
            .iter()
            .position(|(name, _)| name == column)
            .unwrap_or_else(|| panic!("no column {column}"));
        self.rows[row][at].as_deref()
    }

    fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// The one result set `sql` answers, checking it is well formed: a
/// description, rows as wide as it, `SHOW`, no action.
fn show(sql: &str, snapshot: &AdminSnapshot) -> Rows {
    let (replies, actions) = run(sql, snapshot);
    assert!(actions.is_empty(), "SHOW has no side effect");
    let mut replies = replies.into_iter();
    let Some(Reply::Columns(columns)) = replies.next() else {
        panic!("{sql}: no RowDescription first");
    };
    let mut rows = Vec::new();
    for reply in replies.by_ref() {
        match reply {
            Reply::Row(row) => {
                assert_eq!(
                    row.len(),
                    columns.len(),
                    "{sql}: row as wide as the description"
                );
                rows.push(row);
            }
            Reply::Complete(tag) => {
                assert_eq!(tag, "SHOW");
                break;
            }
            other => panic!("{sql}: unexpected {other:?}"),
        }
    }
    assert_eq!(replies.next(), None, "{sql}: nothing after CommandComplete");
    Rows { columns, rows }
}

const TEXT: u32 = 25;
const INT8: u32 = 20;
const BOOL: u32 = 16;

/// The primary's WAL position in [`cluster`].
const PRIMARY_LSN: u64 = 0x0300_0000;

/// Term 3: primary `a` at 0/3000000, standby `b` 0x100 bytes behind with
/// weight 2 and 250 ms of lag, standby `c` 1 MiB behind, `d` down after
/// two refused connections and never observed. Standbys more than 4096
/// bytes behind get no reads.
fn cluster() -> AdminSnapshot {
    let observed = |mut node: NodeState, in_recovery: bool| {
        node.in_recovery = Some(in_recovery);
        node.timeline = Some(4);
        node.last_observed_at = Some(Duration::from_secs(9));
        node
    };
    let a = NodeState::new("a", Role::Primary, "10.0.0.1", 5432).with_lsn(Lsn(PRIMARY_LSN));
    let mut b = NodeState::new("b", Role::Standby, "10.0.0.2", 5433)
        .with_weight(2)
        .with_lsn(Lsn(PRIMARY_LSN - 0x100));
    b.lag_time = Some(Duration::from_millis(250));
    let c =
        NodeState::new("c", Role::Standby, "10.0.0.3", 5434).with_lsn(Lsn(PRIMARY_LSN - (1 << 20)));
    let mut d = NodeState::new("d", Role::Standby, "10.0.0.4", 5435).with_status(Status::Down);
    d.consecutive_failures = 2;
    d.last_failure = Some(FailureReason::ConnectRefused);
    let nodes = [observed(a, false), observed(b, true), observed(c, true), d];
    let mut snapshot = AdminSnapshot::new(Arc::new(Topology::new(nodes).with_term(3)));
    snapshot.max_standby_lag_bytes = Some(4096);
    snapshot
}
