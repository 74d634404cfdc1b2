//! The monitoring port over real sockets: `/metrics`, `/status`, errors,
//! and a shutdown that does not wait for idle keep-alive connections.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pgha_core::{Lsn, NodeState, Role, Topology};
use pgha_proxy::http::{serve_http, topology_json, OPENMETRICS_CONTENT_TYPE};
use pgha_proxy::metrics::{NodeLabel, RouteReason, RouteTarget};
use pgha_proxy::ProxyMetrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const LIMIT: Duration = Duration::from_secs(5);

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn topology() -> Topology {
    Topology::new([
        NodeState::new("db1", Role::Primary, "10.0.0.1", 5432).with_lsn(Lsn(0x3000)),
        NodeState::new("db2", Role::Standby, "10.0.0.2", 5433).with_lsn(Lsn(0x2000)),
    ])
    .with_term(4)
}

async fn start(metrics: Arc<ProxyMetrics>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let status = || topology_json(&topology());
    let task = tokio::spawn(serve_http(listener, metrics, status, async {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse(raw: &str) -> Reply {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .map(|l| l.split_once(": ").unwrap())
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Reply {
        status: status.parse().unwrap(),
        headers,
        body: body.to_owned(),
    }
}

/// One request on its own connection, read until the server closes it.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: pgha\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        raw
    };
    parse(&tokio::time::timeout(LIMIT, exchange).await.unwrap())
}

async fn stop(server: Server) {
    server.stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, server.task)
        .await
        .expect("serve_http returns soon after shutdown")
        .unwrap();
}

#[tokio::test]
async fn metrics_are_served_as_openmetrics() {
    let metrics = Arc::new(ProxyMetrics::new());
    let db2 = NodeLabel::new("db2");
    metrics.query(&db2);
    let took = Duration::from_micros(300);
    metrics.transaction(&db2, RouteTarget::Standby, RouteReason::Read, took);
    metrics.observe_topology(&topology());
    let server = start(metrics.clone()).await;

    let reply = request(server.addr, "GET", "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    let lines: Vec<&str> = reply.body.lines().collect();
    for expected in [
        r#"pgha_queries_total{node="db2"} 1"#,
        r#"pgha_transactions_total{node="db2",route="standby",reason="read"} 1"#,
        "pgha_term 4",
        r#"pgha_node_lag_bytes{node="db2"} 4096"#,
        r#"pgha_node_primary{node="db1"} 1"#,
    ] {
        assert!(
            lines.contains(&expected),
            "{expected} not in\n{}",
            reply.body
        );
    }
    assert_eq!(lines.last(), Some(&"# EOF"));

    // Each scrape is rendered anew.
    metrics.query(&db2);
    let again = request(server.addr, "GET", "/metrics").await;
    assert!(again.body.contains("pgha_queries_total{node=\"db2\"} 2\n"));
    stop(server).await;
}

#[tokio::test]
async fn status_is_the_json_the_closure_returns() {
    let server = start(Arc::new(ProxyMetrics::new())).await;
    let reply = request(server.addr, "GET", "/status").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json, topology_json(&topology()));
    assert_eq!(json["term"], 4);
    assert_eq!(json["primary"], "db1");
    assert_eq!(json["nodes"][1]["port"], 5433);
    assert_eq!(json["nodes"][1]["lag_bytes"], 0x1000);
    assert_eq!(json["nodes"][0]["current_lsn"], "0/3000");
    stop(server).await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let server = start(Arc::new(ProxyMetrics::new())).await;
    assert_eq!(request(server.addr, "GET", "/nope").await.status, 404);
    assert_eq!(request(server.addr, "GET", "/").await.status, 404);
    assert_eq!(request(server.addr, "GET", "/metrics/x").await.status, 404);
    let post = request(server.addr, "POST", "/metrics").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
    assert_eq!(request(server.addr, "DELETE", "/status").await.status, 405);
    // The query string is not part of the path.
    assert_eq!(request(server.addr, "GET", "/status?x=1").await.status, 200);
    stop(server).await;
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_and_the_listener() {
    let server = start(Arc::new(ProxyMetrics::new())).await;
    let addr = server.addr;
    // A keep-alive connection that has had its answer and sits idle.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /nope HTTP/1.1\r\nHost: pgha\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(LIMIT, idle.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 404"));

    let started = tokio::time::Instant::now();
    stop(server).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} for an idle connection",
        started.elapsed()
    );
    let eof = tokio::time::timeout(LIMIT, idle.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(eof, Ok(0) | Err(_)), "idle connection closed");
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}
