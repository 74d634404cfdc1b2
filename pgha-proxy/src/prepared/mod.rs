//! Protocol-level prepared statements on pooled server connections.
//!
//! A client's named statement (`Parse` with a name) may be used in a later
//! transaction that lands on another server connection. So the proxy keeps
//! the client's names to itself and gives every distinct statement (query
//! text and parameter types) one proxy-wide server name, `pgha_<id>`. Each
//! server connection remembers which of those it has; before a `Bind` or
//! `Describe` of a statement the server lacks, the proxy prepares it there
//! first and hides the answer ([`crate::tracker`]). A client's own `Parse`
//! always reaches the server (prepared again: the server's copy may be stale
//! after a schema change); a `Close` is answered by the proxy and leaves the
//! statement on the server for other clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, BytesMut};

use crate::classify::{ClassifyConfig, Reason, Route};
use crate::frame;
use crate::tracker::{Origin, Request, Tracker};

/// One distinct statement, shared by every client that prepares it.
#[derive(Debug)]
pub struct Statement {
    /// Proxy-wide id.
    pub id: u64,
    /// Its name on every server connection.
    pub server_name: String,
    /// The `Parse` body after the name: query text and parameter types.
    parse_rest: Box<[u8]>,
    /// Where it may run ([`statement_route`]).
    pub route: Route,
}

impl Statement {
    /// A client's unnamed statement: kept by the client's session only (not
    /// in the proxy-wide registry), so a later round trip that binds it can
    /// prepare it again on whichever connection runs it.
    fn unnamed(parse_rest: &[u8]) -> Self {
        Statement {
            id: 0,
            server_name: String::new(),
            parse_rest: parse_rest.into(),
            route: Route::Primary(Reason::Unknown),
        }
    }
}

/// Every distinct statement clients have prepared through this proxy and
/// still hold: a statement no client holds any more is forgotten (its
/// copies on server connections go with their LRU), so memory follows
/// what clients keep, not every text ever prepared.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Interned>,
}

#[derive(Debug, Default)]
struct Interned {
    statements: HashMap<Box<[u8]>, std::sync::Weak<Statement>>,
    /// Ids are never reused: a server may still hold an old one's name.
    last_id: u64,
    /// Entries at the last sweep of forgotten statements.
    swept_at: usize,
}

impl Registry {
    /// The statement with this query and types, registered on first use.
    pub fn intern(&self, parse_rest: &[u8], config: &ClassifyConfig) -> Arc<Statement> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = inner.statements.get(parse_rest).and_then(|w| w.upgrade()) {
            return s;
        }
        inner.last_id += 1;
        let id = inner.last_id;
        let statement = Arc::new(Statement {
            id,
            server_name: format!("pgha_{id}"),
            parse_rest: parse_rest.into(),
            route: parse_route(parse_rest, config),
        });
        inner
            .statements
            .insert(parse_rest.into(), Arc::downgrade(&statement));
        if inner.statements.len() >= 2 * inner.swept_at.max(64) {
            // Amortised: a sweep each time the map doubles.
            inner.statements.retain(|_, w| w.strong_count() > 0);
            inner.swept_at = inner.statements.len();
        }
        statement
    }

    /// Whether no statement was prepared yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many distinct statements clients hold.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .statements
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

mod route;
mod server;

use route::parse_route;
pub(crate) use route::text_route;
pub use route::{batch_route, batch_route_cached, statement_route};
pub use server::ServerStatements;

/// Splits a NUL-terminated string off the front of `body`.
fn cstr(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = body.iter().position(|&b| b == 0)?;
    Some((&body[..end], &body[end + 1..]))
}

/// A client's named statements, by its own names, and its unnamed
/// statement (the last unnamed `Parse` since its last simple query): the
/// empty name. The unnamed one is held apart, not hashed: a driver using
/// the extended protocol without names looks it up on every transaction.
/// The named ones get a map only once one is stored: every session holds
/// this, most idle ones with nothing in it, and an empty `HashMap` is 48
/// bytes inline where its box is 8.
#[derive(Debug, Default)]
pub struct ClientStatements {
    unnamed: Option<Arc<Statement>>,
    named: Option<Box<StatementMap>>,
}

type StatementMap = HashMap<Box<[u8]>, Arc<Statement>>;

impl ClientStatements {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The statement called `name` (empty: the unnamed one).
    pub fn get(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        if name.is_empty() {
            return self.unnamed.as_ref();
        }
        self.named.as_ref()?.get(name)
    }

    /// Whether a statement is called `name`.
    pub fn contains_key(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// Stores `statement` as `name`; returns the one it replaces.
    pub fn insert(&mut self, name: Box<[u8]>, statement: Arc<Statement>) -> Option<Arc<Statement>> {
        if name.is_empty() {
            return self.unnamed.replace(statement);
        }
        self.named
            .get_or_insert_with(Box::default)
            .insert(name, statement)
    }

    /// Forgets `name`'s statement, if any.
    pub fn remove(&mut self, name: &[u8]) -> Option<Arc<Statement>> {
        if name.is_empty() {
            return self.unnamed.take();
        }
        self.named.as_mut()?.remove(name)
    }

    /// Forgets every statement (keeping the map's room, as before).
    pub fn clear(&mut self) {
        self.unnamed = None;
        if let Some(map) = &mut self.named {
            map.clear();
        }
    }

    /// Whether no statement is stored.
    pub fn is_empty(&self) -> bool {
        self.unnamed.is_none() && self.named.as_ref().is_none_or(|m| m.is_empty())
    }
}

/// A server connection's unnamed statement, as the proxy last set it.
pub type ServerUnnamed = Option<Arc<Statement>>;

/// Everything [`rewrite`] reads and updates.
pub struct Rewrite<'a> {
    /// The proxy's statements.
    pub registry: &'a Registry,
    /// Classification settings (for new statements).
    pub classify: &'a ClassifyConfig,
    /// The client's statements.
    pub client: &'a mut ClientStatements,
    /// What the server connection has.
    pub server: &'a mut ServerStatements,
    /// The server connection's unnamed statement.
    pub server_unnamed: &'a mut ServerUnnamed,
    /// The connection is the client's own for its session (session mode's
    /// primary connection): the client's names reach the server unchanged,
    /// so SQL that names them (`EXECUTE`, `DEALLOCATE`) works.
    pub own_names: bool,
    /// The most proxy statements a shared connection keeps.
    pub cap: usize,
    /// Bytes for the server (appended).
    pub out: &'a mut BytesMut,
    /// Requests in flight on that connection.
    pub tracker: &'a mut Tracker,
}

/// Translates a client batch for one server connection, recording every
/// request in the tracker. Messages it does not understand pass unchanged
/// (the server judges them).
pub fn rewrite(batch: &[u8], cx: &mut Rewrite<'_>) {
    for message in frame::messages(batch) {
        let body = frame::body(message);
        match message[0] {
            b'P' => match cstr(body) {
                Some((name, rest)) if !name.is_empty() && cx.own_names => {
                    let statement = cx.registry.intern(rest, cx.classify);
                    cx.client.insert(name.into(), statement);
                    forward(cx, message, Request::Parse(None));
                }
                Some((name, rest)) if !name.is_empty() => {
                    let statement = cx.registry.intern(rest, cx.classify);
                    cx.client.insert(name.into(), statement.clone());
                    // Always prepared again, never answered from what the
                    // proxy believes: after a schema change the server's
                    // copy may fail every Bind ("cached plan must not
                    // change result type"), and a client's new Parse is
                    // how PostgreSQL lets it recover.
                    if !cx.server.contains(&statement.id) {
                        make_room(cx);
                    }
                    close_on_server(cx, &statement);
                    put_parse(cx.out, &statement);
                    cx.server.insert(statement.id);
                    cx.tracker
                        .push(Request::Parse(Some(statement.id)), Origin::Client);
                }
                Some((_, rest)) => {
                    let statement = match cx.client.get(&b""[..]) {
                        Some(s) if *s.parse_rest == *rest => s.clone(),
                        _ => {
                            let s = Arc::new(Statement::unnamed(rest));
                            cx.client.insert(Box::default(), s.clone());
                            s
                        }
                    };
                    *cx.server_unnamed = Some(statement);
                    forward(cx, message, Request::Parse(None));
                }
                None => forward(cx, message, Request::Parse(None)),
            },
            b'B' if cx.own_names => {
                if unnamed_target(body, false) {
                    ensure_unnamed(cx);
                }
                forward(cx, message, Request::Bind);
            }
            b'D' if cx.own_names => {
                if unnamed_target(body, true) {
                    ensure_unnamed(cx);
                }
                forward(cx, message, Request::Describe);
            }
            b'C' if cx.own_names => {
                if let Some(name) = closed_statement(body) {
                    cx.client.remove(name);
                }
                forward(cx, message, Request::Close);
            }
            b'B' => {
                let named = cstr(body).and_then(|(portal, rest)| {
                    let (name, rest) = cstr(rest)?;
                    if name.is_empty() {
                        return None;
                    }
                    Some((portal, cx.client.get(name)?.clone(), rest))
                });
                match named {
                    Some((portal, statement, rest)) => {
                        ensure(cx, &statement);
                        put_message(cx.out, b'B', |b| {
                            b.put_slice(portal);
                            b.put_u8(0);
                            b.put_slice(statement.server_name.as_bytes());
                            b.put_u8(0);
                            b.put_slice(rest);
                        });
                        cx.tracker.push(Request::Bind, Origin::Client);
                    }
                    None => {
                        if unnamed_target(body, false) {
                            ensure_unnamed(cx);
                        }
                        forward(cx, message, Request::Bind);
                    }
                }
            }
            b'D' => match named_statement(cx.client, body) {
                Some(statement) => {
                    ensure(cx, &statement);
                    put_target(cx.out, b'D', &statement.server_name);
                    cx.tracker.push(Request::Describe, Origin::Client);
                }
                None => {
                    if unnamed_target(body, true) {
                        ensure_unnamed(cx);
                    }
                    forward(cx, message, Request::Describe);
                }
            },
            b'C' => match named_statement(cx.client, body) {
                Some(_) => {
                    // Other clients may use the server's copy: only the
                    // client's name goes.
                    if let Some(name) = closed_statement(body) {
                        cx.client.remove(name);
                    }
                    cx.tracker.push(Request::Synthetic(b'3'), Origin::Client);
                }
                None => forward(cx, message, Request::Close),
            },
            b'E' => forward(cx, message, Request::Execute),
            b'S' => forward(cx, message, Request::Sync),
            b'F' => forward(cx, message, Request::FunctionCall),
            b'Q' => {
                if !cx.server.is_empty() && resets_statements(frame::body(message)) {
                    // DISCARD ALL / DEALLOCATE drop the server's statements
                    // too; re-preparing always closes first, so forgetting
                    // is safe even if the statement failed.
                    cx.server.clear();
                }
                // A simple query drops the unnamed statement.
                *cx.server_unnamed = None;
                if !cx.client.is_empty() {
                    cx.client.remove(&b""[..]);
                }
                forward(cx, message, Request::Query)
            }
            b'c' | b'f' => {
                cx.out.put_slice(message);
                cx.tracker.push(Request::CopyEnd, Origin::Client);
            }
            // Flush, COPY data and anything else: no answer of its own.
            _ => cx.out.put_slice(message),
        }
    }
}

/// How [`rewrite_head`] puts a streamed message's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// The header and `head` are in `out` (translated as needed); the rest
    /// of the body follows unchanged.
    Forward,
    /// A named `Parse` on a shared connection: the proxy would have to
    /// hold the whole text to share it, which is what streaming avoids.
    NamedParseTooLong,
}

/// The start of a message too long to hold ([`crate::frame::Input::Large`]):
/// its tag, the first bytes of its body (for `P` the statement name, for
/// `B` the portal and statement names, each NUL-terminated) and its body
/// length. Writes the header (with the length adjusted when a name is
/// translated) and the translated `head` to `out`, and records the request.
pub fn rewrite_head(tag: u8, head: &[u8], body_len: usize, cx: &mut Rewrite<'_>) -> Head {
    let rest = body_len - head.len();
    let put = |out: &mut BytesMut, head: &[u8]| {
        out.put_u8(tag);
        out.put_u32((head.len() + rest + 4) as u32);
        out.put_slice(head);
    };
    match tag {
        b'Q' => {
            *cx.server_unnamed = None;
            cx.client.remove(&b""[..]);
            put(cx.out, head);
            cx.tracker.push(Request::Query, Origin::Client);
        }
        b'P' => {
            let name = cstr(head).map_or(&b""[..], |(n, _)| n);
            if !name.is_empty() && !cx.own_names {
                return Head::NamedParseTooLong;
            }
            // Not kept: too long to hold (a later round trip binding it by
            // name finds it on the session's own connection).
            cx.client.remove(name);
            if name.is_empty() {
                *cx.server_unnamed = None;
            }
            put(cx.out, head);
            cx.tracker.push(Request::Parse(None), Origin::Client);
        }
        b'B' => {
            let named = (!cx.own_names)
                .then(|| {
                    let (portal, after) = cstr(head)?;
                    let (name, tail) = cstr(after)?;
                    let statement = cx.client.get(name).filter(|_| !name.is_empty())?;
                    Some((portal, statement.clone(), tail))
                })
                .flatten();
            match named {
                Some((portal, statement, tail)) => {
                    ensure(cx, &statement);
                    let mut translated = Vec::with_capacity(head.len() + 16);
                    translated.extend_from_slice(portal);
                    translated.push(0);
                    translated.extend_from_slice(statement.server_name.as_bytes());
                    translated.push(0);
                    translated.extend_from_slice(tail);
                    put(cx.out, &translated);
                }
                None => {
                    if unnamed_target(head, false) {
                        ensure_unnamed(cx);
                    }
                    put(cx.out, head);
                }
            }
            cx.tracker.push(Request::Bind, Origin::Client);
        }
        b'F' => {
            put(cx.out, head);
            cx.tracker.push(Request::FunctionCall, Origin::Client);
        }
        // CopyData: no answer of its own.
        _ => put(cx.out, head),
    }
    Head::Forward
}

fn forward(cx: &mut Rewrite<'_>, message: &[u8], request: Request) {
    cx.out.put_slice(message);
    cx.tracker.push(request, Origin::Client);
}

/// The statement name a Close body (`S` + name) closes, if any.
fn closed_statement(body: &[u8]) -> Option<&[u8]> {
    let (&kind, rest) = body.split_first()?;
    let (name, _) = cstr(rest)?;
    (kind == b'S' && !name.is_empty()).then_some(name)
}

/// Before the proxy prepares one more statement on a shared connection:
/// the least recently used goes if the connection holds its cap.
fn make_room(cx: &mut Rewrite<'_>) {
    if let Some(id) = cx.server.evict(cx.cap) {
        put_target(cx.out, b'C', &format!("pgha_{id}"));
        cx.tracker.push(Request::Close, Origin::Proxy);
    }
}

/// The client's statement a Describe/Close body (`S` + name) names.
fn named_statement(client: &ClientStatements, body: &[u8]) -> Option<Arc<Statement>> {
    let (&kind, rest) = body.split_first()?;
    if kind != b'S' {
        return None;
    }
    let (name, _) = cstr(rest)?;
    if name.is_empty() {
        return None;
    }
    client.get(name).cloned()
}

/// Whether a Bind (`describe` false) or Describe body names the unnamed
/// statement.
fn unnamed_target(body: &[u8], describe: bool) -> bool {
    if describe {
        body.starts_with(b"S\0")
    } else {
        cstr(body)
            .and_then(|(_, rest)| cstr(rest))
            .is_some_and(|(name, _)| name.is_empty())
    }
}

/// Prepares the client's unnamed statement on the server if the server's
/// is another (parsed in an earlier round trip, perhaps on another
/// connection: with pooling or load balancing the next round trip may run
/// elsewhere); hidden answer. A client that never parsed one gets the
/// server's own error.
fn ensure_unnamed(cx: &mut Rewrite<'_>) {
    let Some(statement) = cx.client.get(&b""[..]) else {
        return;
    };
    if cx
        .server_unnamed
        .as_ref()
        .is_some_and(|s| Arc::ptr_eq(s, statement))
    {
        return;
    }
    put_parse(cx.out, statement);
    cx.tracker.push(Request::Parse(None), Origin::Proxy);
    *cx.server_unnamed = Some(statement.clone());
}

/// Prepares `statement` on the server if it lacks it; hidden answers.
fn ensure(cx: &mut Rewrite<'_>, statement: &Statement) {
    if cx.server.contains(&statement.id) {
        return;
    }
    make_room(cx);
    close_on_server(cx, statement);
    put_parse(cx.out, statement);
    cx.server.insert(statement.id);
    cx.tracker
        .push(Request::Parse(Some(statement.id)), Origin::Proxy);
}

/// A Close before every (re-)Parse: the server may still hold the name
/// after the proxy forgot it (a DISCARD the proxy guessed wrong about), and
/// closing a name that does not exist is no error.
fn close_on_server(cx: &mut Rewrite<'_>, statement: &Statement) {
    put_target(cx.out, b'C', &statement.server_name);
    cx.tracker.push(Request::Close, Origin::Proxy);
}

fn put_parse(out: &mut BytesMut, statement: &Statement) {
    put_message(out, b'P', |b| {
        b.put_slice(statement.server_name.as_bytes());
        b.put_u8(0);
        b.put_slice(&statement.parse_rest);
    });
}

/// A Describe or Close of a statement.
fn put_target(out: &mut BytesMut, tag: u8, name: &str) {
    put_message(out, tag, |b| {
        b.put_u8(b'S');
        b.put_slice(name.as_bytes());
        b.put_u8(0);
    });
}

fn put_message(out: &mut BytesMut, tag: u8, fill: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let at = out.len();
    out.put_u32(0);
    fill(out);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Whether a simple query may drop server-side prepared statements.
fn resets_statements(sql: &[u8]) -> bool {
    let contains = |word: &[u8]| {
        sql.windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word))
    };
    contains(b"discard") || contains(b"deallocate")
}

#[cfg(test)]
mod tests;
