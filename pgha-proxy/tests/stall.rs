//! The stall detector of a serving proxy: a runtime thread held by a
//! blocking call shows on `/metrics`, as an operator reading it would see.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use pgha_core::{NodeState, Role, Topology};
use pgha_proxy::{Proxy, ProxyConfig};
use tokio::net::TcpListener;

/// The value of a series without labels in OpenMetrics text.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(name, _)| *name == series)
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
}

#[tokio::test]
async fn a_blocked_runtime_is_counted_as_a_stall_with_its_length() {
    let topology = Topology::new([NodeState::new("db1", Role::Primary, "127.0.0.1", 1)]);
    let (_publish, topology) = tokio::sync::watch::channel(Arc::new(topology));
    let proxy = Arc::new(Proxy::new(ProxyConfig::default(), topology));
    let metrics = proxy.metrics();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = proxy.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    // Let the detector start its rounds, then hold the only thread the way
    // a blocking call on the runtime would.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // (A busy machine may already have delayed it: count from here.)
    let before = value(&metrics.encode(), "pgha_runtime_stalls_total");
    std::thread::sleep(Duration::from_millis(300));
    // The detector's next wake sees the lateness.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = metrics.encode();
    assert!(
        value(&after, "pgha_runtime_stalls_total") >= before + 1.0,
        "{after}"
    );
    // Late by at least the hold less one detector period.
    assert!(
        value(&after, "pgha_runtime_stall_max_seconds") >= 0.3 - 0.01,
        "{after}"
    );
    let _ = stop.send(());
    task.await.unwrap();
}
