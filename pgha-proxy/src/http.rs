//! The proxy's HTTP port, for monitoring: `GET /metrics` (Prometheus,
//! OpenMetrics text from [`ProxyMetrics`]) and `GET /status` (JSON, e.g.
//! [`topology_json`]).
//!
//! It has no authentication and serves nothing that changes state: bind it
//! to an address only the monitoring system reaches.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use pgha_core::Topology;
use serde_json::json;
use tokio::net::TcpListener;

use crate::metrics::ProxyMetrics;

/// The content type of `/metrics`: what Prometheus asks for first.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A client that has not sent its request headers by then is dropped, so
/// idle or slow connections cannot pile up.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for responses in flight before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

type StatusFn = dyn Fn() -> serde_json::Value + Send + Sync;

/// Serves `/metrics` and `/status` on `listener` until `shutdown`
/// completes, then lets responses in flight finish (a few seconds at most).
///
/// * `GET /metrics`: `metrics.encode()`, as [`OPENMETRICS_CONTENT_TYPE`];
/// * `GET /status`: `status()` as `application/json`;
/// * another method on those paths: `405` with `Allow: GET`;
/// * any other path: `404`.
///
/// `status` runs on the runtime for each request: keep it quick (reading a
/// `watch` of the topology, say).
pub async fn serve_http(
    listener: TcpListener,
    metrics: Arc<ProxyMetrics>,
    status: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    shutdown: impl Future<Output = ()>,
) {
    let status: Arc<StatusFn> = Arc::new(status);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (metrics, status) = (metrics.clone(), status.clone());
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let response = respond(&request, &metrics, &*status);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(%peer, error = %e, "http connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("http shutdown: gave up on responses still in flight");
    }
}

/// The response to one request; the routes are few and fixed, so a match
/// is the whole router.
fn respond<B>(
    request: &Request<B>,
    metrics: &ProxyMetrics,
    status: &StatusFn,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path != "/metrics" && path != "/status" {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    if path == "/metrics" {
        return body(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, metrics.encode());
    }
    match serde_json::to_vec(&status()) {
        Ok(json) => body(StatusCode::OK, "application/json", json),
        Err(e) => {
            tracing::warn!(error = %e, "status could not be serialized");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable\n")
        }
    }
}

fn plain(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    body(code, "text/plain; charset=utf-8", text)
}

fn body(
    code: StatusCode,
    content_type: &'static str,
    content: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(content.into()));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The topology as JSON for `/status`: the term, the primary's id (or
/// `null`), `writes_held` (why no node takes writes, or `null`) and each
/// node with its address, role, status, what it last reported (recovery,
/// timeline, WAL positions as `X/X` text) and its lags as reads are routed
/// by them: `lag_bytes`, the WAL it has not replayed against the most
/// advanced known position, `receive_lag_bytes`, the WAL it has not even
/// received, and a standby's `lag_us`, its replay delay (each `null` while
/// unknown).
///
/// ```
/// use pgha_core::{Lsn, NodeState, Role, Topology};
///
/// let topology = Topology::new([
///     NodeState::new("a", Role::Primary, "10.0.0.1", 5432).with_lsn(Lsn(0x500)),
///     NodeState::new("b", Role::Standby, "10.0.0.2", 5432).with_lsn(Lsn(0x400)),
/// ]);
/// let status = pgha_proxy::http::topology_json(&topology);
/// assert_eq!(status["primary"], "a");
/// assert_eq!(status["nodes"][1]["lag_bytes"], 0x100);
/// assert_eq!(status["nodes"][1]["receive_lag_bytes"], 0x100);
/// assert_eq!(status["nodes"][1]["received_lsn"], "0/400");
/// ```
pub fn topology_json(topology: &Topology) -> serde_json::Value {
    let nodes: Vec<_> = topology
        .nodes()
        .iter()
        .map(|node| {
            let receive_lag_bytes = topology
                .bytes_behind(&node.id)
                .filter(|_| node.known_lsn().is_some());
            let lag_us = (node.in_recovery == Some(true))
                .then(|| crate::route::replay_lag_time(topology, node))
                .flatten()
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            json!({
                "id": node.id,
                "host": node.host,
                "port": node.port,
                "role": node.role,
                "status": node.status,
                "weight": node.weight,
                "in_recovery": node.in_recovery,
                "timeline": node.timeline,
                "current_lsn": node.current_lsn,
                "received_lsn": node.received_lsn,
                "replayed_lsn": node.replayed_lsn,
                "lag_bytes": crate::route::replay_lag_bytes(topology, node),
                "receive_lag_bytes": receive_lag_bytes,
                "lag_us": lag_us,
            })
        })
        .collect();
    json!({
        "term": topology.term(),
        "primary": topology.primary_id(),
        "permission": topology.permission(),
        "writes_held": topology.held(),
        "nodes": nodes,
    })
}
