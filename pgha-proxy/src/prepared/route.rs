//! Where a statement, or a client batch, may run: the routing half of
//! prepared statements.

use super::{cstr, ClientStatements};
use crate::classify::{classify, ClassifyConfig, Reason, Route};
use crate::frame;

/// Where a statement may run as a unit: [`Route::Any`] only for a read that
/// starts no transaction (a transaction stays on one server; an empty
/// string is the primary's to answer).
pub fn statement_route(sql: &str, config: &ClassifyConfig) -> Route {
    let class = classify(sql, config);
    match class.route {
        Route::Any if class.starts_transaction => Route::Primary(Reason::TransactionStart),
        Route::Any if class.statements == 0 => Route::Primary(Reason::Unknown),
        route => route,
    }
}

/// The route of a simple query's text (without its NUL): the primary's
/// when it is not UTF-8.
pub(crate) fn text_route(sql: &[u8], config: &ClassifyConfig) -> Route {
    std::str::from_utf8(sql).map_or(Route::Primary(Reason::Unknown), |sql| {
        statement_route(sql, config)
    })
}

/// The route of the query in a `Parse` body's remainder.
pub(super) fn parse_route(parse_rest: &[u8], config: &ClassifyConfig) -> Route {
    query_text(parse_rest).map_or(Route::Primary(Reason::Unknown), |sql| {
        statement_route(sql, config)
    })
}

/// The query text at the start of a `Parse` body's remainder.
fn query_text(parse_rest: &[u8]) -> Option<&str> {
    let end = parse_rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&parse_rest[..end]).ok()
}

/// Where a client batch may run as a unit: [`Route::Any`] for one
/// simple-protocol read, or extended-protocol messages ending in Sync whose
/// every statement is a read (unnamed ones parsed in this batch, named ones
/// known to the client); otherwise the primary, with the first reason met.
pub fn batch_route(batch: &[u8], client: &ClientStatements, config: &ClassifyConfig) -> Route {
    route_batch(batch, client, config, false, |sql| text_route(sql, config))
}

/// As [`batch_route`], with a lone simple query's route taken from (or
/// added to) `cache`, classified with the cache's settings: the same
/// answer, without running the lexer again for a text already seen.
/// With `own_names` (session mode), a named `Parse` goes to the session's
/// own connection ([`Reason::Prepare`]).
pub fn batch_route_cached(
    batch: &[u8],
    client: &ClientStatements,
    cache: &crate::route_cache::RouteCache,
    own_names: bool,
) -> Route {
    route_batch(batch, client, cache.config(), own_names, |sql| {
        cache.route(sql)
    })
}

/// [`batch_route`] with `simple` giving a lone simple query's route.
fn route_batch(
    batch: &[u8],
    client: &ClientStatements,
    config: &ClassifyConfig,
    own_names: bool,
    simple: impl FnOnce(&[u8]) -> Route,
) -> Route {
    const UNKNOWN: Route = Route::Primary(Reason::Unknown);
    let mut messages = frame::messages(batch).peekable();
    let Some(first) = messages.peek() else {
        return UNKNOWN;
    };
    if first[0] == b'Q' {
        let mut all = frame::messages(batch);
        let (Some(query), None) = (all.next(), all.next()) else {
            return UNKNOWN; // pipelined queries: keep them together
        };
        let sql = frame::body(query);
        return simple(sql.strip_suffix(&[0]).unwrap_or(sql));
    }
    let mut unnamed = UNKNOWN;
    let mut last = 0;
    for message in messages {
        let body = frame::body(message);
        last = message[0];
        let route = match message[0] {
            b'P' => match cstr(body) {
                Some((b"", rest)) => {
                    unnamed = parse_route(rest, config);
                    unnamed
                }
                Some(_) if own_names => Route::Primary(Reason::Prepare),
                Some((_, rest)) => parse_route(rest, config),
                None => UNKNOWN,
            },
            b'B' => match cstr(body).and_then(|(_, rest)| cstr(rest)) {
                Some((b"", _)) => unnamed,
                Some((name, _)) => client.get(name).map_or(UNKNOWN, |s| s.route),
                None => UNKNOWN,
            },
            b'D' | b'E' | b'S' | b'H' => Route::Any,
            b'C' if body.first() == Some(&b'S') => Route::Any,
            _ => UNKNOWN,
        };
        if route.is_primary() {
            return route;
        }
    }
    if last == b'S' {
        Route::Any
    } else {
        // No Sync yet: the exchange may go on in the next batch.
        UNKNOWN
    }
}
