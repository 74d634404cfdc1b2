//! The cost of the pure failover core on a 3-node cluster: one probe
//! result, one whole failover, the policy's decision alone, and publishing
//! a snapshot to readers.
//!
//! `cargo bench -p pgha-benches --bench failover`
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pgha_core::{
    Action, ClusterState, DefaultPolicy, Event, FailoverPolicy, FailureReason, Health, Lsn,
    NodeState, Observation, Role, Topology,
};
use tokio::sync::watch;

const MIB: u64 = 1024 * 1024;

/// `a` primary at 10 MiB, standbys `b` and `c` slightly behind.
fn three_nodes() -> Topology {
    Topology::new([
        NodeState::new("a", Role::Primary, "10.0.0.1", 5432).with_lsn(Lsn(10 * MIB)),
        NodeState::new("b", Role::Standby, "10.0.0.2", 5432).with_lsn(Lsn(10 * MIB - 900)),
        NodeState::new("c", Role::Standby, "10.0.0.3", 5432).with_lsn(Lsn(10 * MIB - 100)),
    ])
}

fn healthy_primary() -> Event {
    Event::Observed {
        node: "a".into(),
        at: Duration::from_secs(10),
        observation: Observation::Healthy(Health::primary(Lsn(10 * MIB + 4096))),
    }
}

fn primary_failed(secs: u64) -> Event {
    Event::Observed {
        node: "a".into(),
        at: Duration::from_secs(secs),
        observation: Observation::Failed {
            reason: FailureReason::ConnectRefused,
        },
    }
}

fn per_probe(c: &mut Criterion) {
    let mut group = c.benchmark_group("handle healthy observation");
    let mut state = ClusterState::new(three_nodes(), DefaultPolicy::default());
    let event = healthy_primary();
    group.bench_function("nobody holds a snapshot", |b| {
        b.iter(|| black_box(state.handle(black_box(event.clone()))))
    });
    // What a monitor pays when every snapshot is published: readers hold
    // the previous one, so recording the event copies the topology.
    group.bench_function("previous snapshot held", |b| {
        b.iter(|| {
            let published = state.snapshot();
            let actions = state.handle(black_box(event.clone()));
            black_box((published, actions))
        })
    });
    group.finish();
}

fn full_failover(c: &mut Criterion) {
    let policy: Arc<dyn FailoverPolicy> = Arc::new(DefaultPolicy::default());
    let topology = three_nodes();
    c.bench_function("failover: 2 failed observations -> promote", |b| {
        b.iter_batched(
            || ClusterState::with_shared_policy(topology.clone(), Arc::clone(&policy)),
            |mut state| {
                let first = state.handle(primary_failed(10));
                let second = state.handle(primary_failed(11));
                debug_assert!(matches!(second.first(), Some(Action::Promote { .. })));
                black_box((first, second, state))
            },
            BatchSize::SmallInput,
        )
    });
}

fn decide_only(c: &mut Criterion) {
    let policy = DefaultPolicy::default();
    // The topology as the policy sees it on the second failure: both
    // failures recorded (by a policy that never acts), nothing decided yet.
    let mut recorded = ClusterState::new(
        three_nodes(),
        DefaultPolicy {
            failures_before_down: u32::MAX,
            ..DefaultPolicy::default()
        },
    );
    recorded.handle(primary_failed(10));
    recorded.handle(primary_failed(11));
    let topology = recorded.snapshot();
    let event = primary_failed(11);
    assert!(matches!(
        policy.decide(&topology, &event).first(),
        Some(Action::Promote { .. })
    ));

    let mut group = c.benchmark_group("DefaultPolicy::decide");
    group.bench_function("primary confirmed down", |b| {
        b.iter(|| black_box(policy.decide(black_box(&topology), black_box(&event))))
    });
    let steady = three_nodes();
    let healthy = healthy_primary();
    group.bench_function("healthy primary", |b| {
        b.iter(|| black_box(policy.decide(black_box(&steady), black_box(&healthy))))
    });
    group.finish();
}

fn publish_snapshot(c: &mut Criterion) {
    let state = ClusterState::new(three_nodes(), DefaultPolicy::default());
    let (publish, readers) = watch::channel(state.snapshot());
    c.bench_function("publish snapshot + reader clone", |b| {
        b.iter(|| {
            publish.send_replace(state.snapshot());
            black_box(readers.borrow().clone())
        })
    });
}

criterion_group!(
    benches,
    per_probe,
    full_failover,
    decide_only,
    publish_snapshot
);
criterion_main!(benches);
