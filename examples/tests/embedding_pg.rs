//! The embedding examples, compiled into this test from their own files,
//! against a real primary and standby: `discover_primary` finds the primary
//! and follows a failover; `custom_policy` passes the conformance suite and,
//! as a monitor's policy, leaves a `dr-` standby alone when the primary dies.

use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_core::{
    Action, ClusterMonitor, ConnectConfig, MonitorConfig, MonitorEventKind, NodeId, NodeState,
    Role, SqlProbe, Topology,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

#[allow(dead_code)] // its `main`, run by `cargo run --example`
#[path = "../examples/discover_primary.rs"]
mod discover_primary;

#[allow(dead_code)]
#[path = "../examples/custom_policy.rs"]
mod custom_policy;

type R = Result<(), Box<dyn std::error::Error>>;

/// Long enough for a loaded CI machine; a wait that runs out fails.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn discover_primary_finds_the_primary_and_follows_a_failover() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let addr = |i: usize| {
        let node = &cluster.nodes()[i];
        format!("{}:{}", node.host(), node.port())
    };
    let node = |i: usize| {
        let node = &cluster.nodes()[i];
        (node.host().to_string(), node.port())
    };
    // Given standby first: discovery must not take the order on trust.
    let nodes = vec![node(1), node(0)];
    let (found, mut reports) = mpsc::unbounded_channel();
    let discovery = tokio::spawn(async move {
        discover_primary::run(&nodes, |node, term| {
            found.send((node.to_owned(), term)).is_ok()
        })
        .await
        .map_err(|e| e.to_string())
    });

    let first = tokio::time::timeout(WAIT, reports.recv()).await?;
    assert_eq!(first, Some((addr(0), 1)), "node0 is the primary");

    cluster.primary().kill9()?;
    let second = tokio::time::timeout(WAIT, reports.recv()).await?;
    assert_eq!(second, Some((addr(1), 2)), "node1 promoted in term 2");
    // Promoted for real: the server says so, not only the model.
    assert!(!cluster.standbys()[0].is_in_recovery().await?);
    assert!(!discovery.is_finished(), "still following: {discovery:?}");
    discovery.abort();
    Ok(())
}

#[test]
fn custom_policy_passes_the_conformance_suite() {
    let report = custom_policy::check(2000, 14);
    assert!(report.violated().is_empty(), "{report}");
}

#[tokio::test]
async fn custom_policy_never_promotes_a_dr_standby_when_the_primary_dies() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let (primary, standby) = (cluster.primary(), &cluster.standbys()[0]);
    let host = primary.host().to_string();
    let topology = Topology::new([
        NodeState::new("main", Role::Primary, host.clone(), primary.port()),
        NodeState::new("dr-site", Role::Standby, host, standby.port()),
    ]);
    let (monitor, handle) = ClusterMonitor::builder(topology)
        .policy(custom_policy::NeverPromoteDr::default())
        .probe(std::sync::Arc::new(SqlProbe::new(ConnectConfig::default())))
        .config(MonitorConfig {
            probe_interval: Duration::from_millis(300),
            ..MonitorConfig::default()
        })
        .build()?;
    let mut events = handle.events();
    let running = tokio::spawn(monitor.run(std::future::pending()));
    handle
        .wait_for(WAIT, |t| t.nodes().iter().all(|n| n.in_recovery.is_some()))
        .await?;

    primary.kill9()?;
    let main = NodeId::new("main");
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(event) => match event.kind {
                    MonitorEventKind::Decided { actions, .. }
                        if actions.contains(&Action::NoPromotionCandidate {
                            failed: Some(main.clone()),
                        }) =>
                    {
                        return Ok(actions)
                    }
                    _ => {}
                },
                // Missed events: the decision may come again.
                Err(RecvError::Lagged(_)) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await??;
    assert!(
        !refused.iter().any(|a| matches!(a, Action::Promote { .. })),
        "{refused:?}"
    );
    let now = handle.current();
    assert_eq!(now.term(), 1, "{now:?}");
    assert!(
        now.usable_primary().is_none(),
        "the dead primary is not routed: {now:?}"
    );
    assert!(standby.is_in_recovery().await?, "dr-site was not promoted");
    running.abort();
    Ok(())
}
