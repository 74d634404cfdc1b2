//! The cost of one metrics record call, which the proxy pays per
//! transaction and per statement; and of one scrape of a few nodes.
//!
//! `cargo bench -p pgha-benches --bench metrics`
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pgha_core::{Lsn, NodeId, NodeState, Role, Topology};
use pgha_proxy::classify::Reason;
use pgha_proxy::metrics::{AuthFailure, NodeLabel, RouteReason, RouteTarget};
use pgha_proxy::ProxyMetrics;

fn bench_record(c: &mut Criterion) {
    let metrics = ProxyMetrics::new();
    let node = NodeLabel::new("node1");
    let id = NodeId::new("node1");
    let took = Duration::from_micros(420);
    let mut group = c.benchmark_group("metrics_record");
    group.bench_function("transaction", |b| {
        b.iter(|| {
            metrics.transaction(
                black_box(&node),
                RouteTarget::Primary,
                RouteReason::from(Reason::Write),
                black_box(took),
            )
        })
    });
    group.bench_function("query", |b| b.iter(|| metrics.query(black_box(&node))));
    // What a caller pays that builds the label from a NodeId on each call
    // instead of keeping one: the allocation the NodeLabel is there to avoid.
    group.bench_function("query_label_per_call", |b| {
        b.iter(|| metrics.query(&NodeLabel::from(black_box(&id))))
    });
    group.bench_function("client_connected_and_gone", |b| {
        b.iter(|| drop(metrics.client_connected()))
    });
    group.bench_function("auth_failure", |b| {
        b.iter(|| metrics.auth_failure(black_box(AuthFailure::Password)))
    });
    group.finish();
}

fn bench_scrape(c: &mut Criterion) {
    let metrics = ProxyMetrics::new();
    let topology = Topology::new((0..3).map(|i| {
        let role = if i == 0 { Role::Primary } else { Role::Standby };
        NodeState::new(format!("node{i}"), role, "h", 5432).with_lsn(Lsn(1_000 - i))
    }));
    metrics.observe_topology(&topology);
    for node in topology.nodes() {
        let label = NodeLabel::from(&node.id);
        metrics.query(&label);
        metrics.set_servers(&label, 4, 2);
        let route = if node.role == Role::Primary {
            RouteTarget::Primary
        } else {
            RouteTarget::Standby
        };
        metrics.transaction(&label, route, RouteReason::Read, Duration::from_millis(1));
    }
    c.bench_function("metrics_encode_3_nodes", |b| {
        b.iter(|| metrics.encode().len())
    });
    c.bench_function("metrics_observe_topology_3_nodes", |b| {
        b.iter(|| metrics.observe_topology(black_box(&topology)))
    });
}

criterion_group!(benches, bench_record, bench_scrape);
criterion_main!(benches);
