//! Health-aware primary discovery in an application, with `pgha-core`
//! alone: no proxy, no daemon.
//!
//! Given the addresses of a primary and its standbys (in any order), a
//! [`ClusterMonitor`] probes every node with the default
//! [`SqlProbe`](pgha_core::SqlProbe), settles on the writable one, and keeps
//! probing: when the primary dies it promotes the best standby with the
//! default SQL controller (`pg_promote()`) and publishes the new topology.
//! The application follows [`Topology::usable_primary`]: each time the
//! primary changes it connects to it with `tokio-postgres`, checks it takes
//! writes, and prints it.
//!
//! ```text
//! cargo run -p pgha --example discover_primary -- 10.0.0.1:5432 10.0.0.2:5432
//! cargo run -p pgha --example discover_primary -- --once 127.0.0.1:5432 127.0.0.1:5433
//! ```
//!
//! It connects as `postgres` to database `postgres` (a superuser: the
//! monitor promotes); `--once` stops after the first primary, otherwise it
//! follows failovers until Ctrl-C. `examples/tests/embedding_pg.rs` runs
//! [`run`] against a real primary and standby and kills the primary.
#![allow(clippy::print_stdout)] // an example program: printing is its output

use std::error::Error;
use std::time::Duration;

use pgha_core::{ClusterMonitor, ConnectConfig, NodeState, Role, Topology};
use tokio_postgres::NoTls;

/// Any error, sendable across tasks.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Follows the writable primary among `nodes` (host, port): calls
/// `found("host:port", term)` each time a new one takes writes, until
/// `found` returns `false`.
pub async fn run(
    nodes: &[(String, u16)],
    mut found: impl FnMut(&str, u64) -> bool,
) -> Result<(), BoxError> {
    // All standbys to start with: the monitor asks each node which it is.
    let topology =
        Topology::new(nodes.iter().map(|(host, port)| {
            NodeState::new(format!("{host}:{port}"), Role::Standby, host, *port)
        }));
    let (monitor, handle) = ClusterMonitor::builder(topology).build()?;
    let follow = async move {
        let (mut topology, mut last) = (handle.topology(), None);
        loop {
            let now = topology.borrow_and_update().clone();
            if let Some(primary) = now.usable_primary().filter(|p| last != Some(p.id.clone())) {
                let config = ConnectConfig::default().for_node(primary, Duration::from_secs(5));
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(connection);
                // A standby would refuse to hand out a transaction id.
                client
                    .query_one("SELECT pg_current_xact_id()::text", &[])
                    .await?;
                last = Some(primary.id.clone());
                if !found(primary.id.as_str(), now.term()) {
                    return Ok(());
                }
            }
            topology.changed().await?;
        }
    };
    tokio::select! {
        result = follow => result,
        () = monitor.run(std::future::pending()) => Ok(()),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    let nodes = args.iter().filter(|a| *a != "--once").map(|addr| {
        let (host, port) = addr.rsplit_once(':').ok_or("expected HOST:PORT")?;
        Ok::<_, BoxError>((host.to_owned(), port.parse()?))
    });
    let nodes = nodes.collect::<Result<Vec<_>, _>>()?;
    if nodes.is_empty() {
        eprintln!("usage: discover_primary [--once] HOST:PORT [HOST:PORT ...]");
        std::process::exit(2);
    }
    let found = |node: &str, term: u64| {
        println!("primary: {node} (term {term}), takes writes");
        !once
    };
    tokio::select! {
        result = run(&nodes, found) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
