//! A driver's prepared-statement cache through the proxy, written as the
//! client sees it (messages in, messages out), in both pool modes (issue
//! #11's "100 distinct queries" case).
//!
//! psycopg 3 with its defaults runs a query unnamed (Parse "" + Bind +
//! Execute + Sync) its first uses, prepares it by name (`_pg3_N`, numbered
//! per connection from 0) after a few, then only Binds the name; it keeps at
//! most 100 and evicts the least recently used with the SQL `DEALLOCATE
//! name` (a simple Query, or unnamed extended messages in pipeline mode).
//! Two such clients, interleaved, reuse the same names for different
//! queries, as two psycopg connections do. Every answer is checked: the
//! right value for the right statement, `DEALLOCATE` completed, no error.

use std::collections::VecDeque;
use std::sync::Arc;

use pgha_core::testing::PgCluster;
use pgha_proxy::{PoolMode, ProxyConfig};
use tokio::sync::watch;

mod common;
use common::start_proxy;
use common::wire::{error_field, message, Message, Wire};

type R = Result<(), Box<dyn std::error::Error>>;

/// Distinct statements each client runs.
const STATEMENTS: usize = 1_000;
/// Unnamed uses before a statement is prepared by name (psycopg's
/// `prepare_threshold` is 5).
const PREPARE_AFTER: usize = 5;
/// Prepared statements a client keeps (psycopg's `prepared_max`).
const KEPT: usize = 100;

fn cstr(s: &str) -> Vec<u8> {
    [s.as_bytes(), &[0]].concat()
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    // No parameter types: the server infers them, as psycopg lets it for
    // text parameters of unknown type.
    message(
        b'P',
        &[cstr(name), cstr(sql), 0u16.to_be_bytes().to_vec()].concat(),
    )
}

/// Bind of the unnamed portal to `statement`, text parameters, text results.
fn bind(statement: &str, params: &[&str]) -> Vec<u8> {
    let mut body = cstr("");
    body.extend(cstr(statement));
    body.extend(0u16.to_be_bytes());
    body.extend((params.len() as u16).to_be_bytes());
    for p in params {
        body.extend((p.len() as i32).to_be_bytes());
        body.extend(p.as_bytes());
    }
    body.extend(0u16.to_be_bytes());
    message(b'B', &body)
}

fn describe_portal() -> Vec<u8> {
    message(b'D', &cstr("P"))
}

fn execute() -> Vec<u8> {
    message(b'E', &[cstr(""), 0i32.to_be_bytes().to_vec()].concat())
}

fn sync() -> Vec<u8> {
    message(b'S', &[])
}

/// The first column of the DataRows among `messages`, as text.
fn values(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter(|(tag, _)| *tag == b'D')
        .filter_map(|(_, body)| {
            let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
            let len = usize::try_from(len).ok()?;
            Some(String::from_utf8_lossy(body.get(6..6 + len)?).into_owned())
        })
        .collect()
}

/// The round trip's messages, or why it failed: an ErrorResponse (its code
/// and message), or no ReadyForQuery at the end.
fn answered(what: &str, messages: Vec<Message>) -> Result<Vec<Message>, String> {
    if let Some((_, body)) = messages.iter().find(|(tag, _)| *tag == b'E') {
        return Err(format!(
            "{what}: {} {}",
            error_field(body, b'C').unwrap_or_default(),
            error_field(body, b'M').unwrap_or_default()
        ));
    }
    match messages.last() {
        Some((b'Z', _)) => Ok(messages),
        _ => Err(format!("{what}: the connection ended: {messages:?}")),
    }
}

/// One psycopg-like connection: a use count per query, the prepared ones
/// by name in least-recently-used order.
struct Driver {
    wire: Wire,
    /// Distinguishes this client's statements from the other's.
    id: usize,
    next_name: usize,
    /// (query number, statement name), least recently used first.
    prepared: VecDeque<(usize, String)>,
    /// Evict with a simple Query (else with unnamed extended messages).
    simple_deallocate: bool,
}

impl Driver {
    fn sql(&self, query: usize) -> String {
        // Distinct texts: the client's id and the query's number in them.
        format!("SELECT $1::int + {query} AS q{}_{query}", self.id)
    }

    /// Runs query number `query` once with parameter `arg`, the way psycopg
    /// does on its `use_`th use, and checks the answer.
    async fn run(&mut self, query: usize, use_: usize, arg: i32) -> Result<(), String> {
        let sql = self.sql(query);
        let param = arg.to_string();
        let kept = self.prepared.iter().position(|(q, _)| *q == query);
        let mut out = Vec::new();
        let what;
        if let Some(i) = kept {
            // Prepared earlier: Bind by name only, and it is now the most
            // recently used.
            let entry = self.prepared.remove(i).ok_or("lost entry")?;
            out.extend(bind(&entry.1, &[&param]));
            what = format!("client {} query {query}: Bind {:?}", self.id, entry.1);
            self.prepared.push_back(entry);
        } else if use_ >= PREPARE_AFTER {
            let name = format!("_pg3_{}", self.next_name);
            self.next_name += 1;
            out.extend(parse(&name, &sql));
            out.extend(bind(&name, &[&param]));
            what = format!("client {} query {query}: Parse {name:?}", self.id);
            self.prepared.push_back((query, name));
        } else {
            out.extend(parse("", &sql));
            out.extend(bind("", &[&param]));
            what = format!("client {} query {query}: unnamed", self.id);
        }
        out.extend(describe_portal());
        out.extend(execute());
        out.extend(sync());
        let messages = self.round_trip(&what, &out).await?;
        let got = values(&messages);
        let want = (i64::from(arg) + query as i64).to_string();
        if got != [want.clone()] {
            return Err(format!("{what}: rows {got:?}, expected [{want:?}]"));
        }
        // psycopg evicts after the execution that made the cache too big.
        while self.prepared.len() > KEPT {
            let (_, oldest) = self.prepared.pop_front().ok_or("empty cache")?;
            self.deallocate(&oldest).await?;
        }
        Ok(())
    }

    async fn deallocate(&mut self, name: &str) -> Result<(), String> {
        let sql = format!("DEALLOCATE {name}");
        let what = format!("client {}: {sql}", self.id);
        let messages = if self.simple_deallocate {
            self.round_trip(&what, &message(b'Q', &cstr(&sql))).await?
        } else {
            let mut out = parse("", &sql);
            out.extend(bind("", &[]));
            out.extend(execute());
            out.extend(sync());
            self.round_trip(&what, &out).await?
        };
        let done = messages
            .iter()
            .any(|(tag, body)| *tag == b'C' && body.starts_with(b"DEALLOCATE"));
        if !done {
            return Err(format!(
                "{what}: no CommandComplete DEALLOCATE: {messages:?}"
            ));
        }
        Ok(())
    }

    async fn round_trip(&mut self, what: &str, bytes: &[u8]) -> Result<Vec<Message>, String> {
        self.wire
            .send(bytes)
            .await
            .map_err(|e| format!("{what}: send: {e}"))?;
        let messages = self
            .wire
            .until_ready()
            .await
            .map_err(|e| format!("{what}: read: {e}"))?;
        answered(what, messages)
    }
}

/// Two psycopg-like clients of the server (or proxy) on `port`.
async fn psycopg_like_clients(port: u16) -> R {
    let mut clients = Vec::new();
    for id in 0..2 {
        clients.push(Driver {
            wire: Wire::connect(port).await?,
            id,
            next_name: 0,
            prepared: VecDeque::new(),
            simple_deallocate: id == 0,
        });
    }
    for query in 0..STATEMENTS {
        // Each query a few uses more than the threshold, the two clients
        // interleaved; every tenth step also an older query still kept.
        for use_ in 0..PREPARE_AFTER + 2 {
            for c in clients.iter_mut() {
                c.run(query, use_, use_ as i32).await?;
            }
        }
        if query % 10 == 9 && query >= 50 {
            for c in clients.iter_mut() {
                c.run(query - 50, PREPARE_AFTER + 2, 7).await?;
            }
        }
    }
    for c in clients.iter_mut() {
        // What the driver keeps is still there, by its own names.
        let oldest = c.prepared.front().map(|(q, _)| *q).ok_or("nothing kept")?;
        c.run(oldest, PREPARE_AFTER + 2, 1).await?;
        assert_eq!(c.prepared.len(), KEPT);
        assert!(c.next_name >= STATEMENTS);
    }
    Ok(())
}

async fn through_the_proxy(pool_mode: PoolMode) -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let config = ProxyConfig {
        pool_mode,
        pool_size: 2,
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;
    psycopg_like_clients(proxy.port).await
}

/// The control: what the test expects is what PostgreSQL does.
#[tokio::test]
async fn a_psycopg_like_statement_cache_works_on_postgresql_itself() -> R {
    let cluster = PgCluster::builder().start().await?;
    psycopg_like_clients(cluster.primary().port()).await
}

#[tokio::test]
async fn a_psycopg_like_statement_cache_works_in_session_mode() -> R {
    through_the_proxy(PoolMode::Session).await
}

#[tokio::test]
async fn a_psycopg_like_statement_cache_works_in_transaction_mode() -> R {
    through_the_proxy(PoolMode::Transaction).await
}
