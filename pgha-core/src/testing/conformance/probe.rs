//! The [`HealthProbe`] suite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{record, violated, Checked, Fail, Report};
use crate::testing::{HarnessError, PgCluster, PgNode};
use crate::{FailureReason, HealthProbe, NodeState, Observation};

/// The checks of [`health_probe`], in the order they run.
pub const PROBE_CHECKS: [&str; 6] = [
    "primary_is_healthy",
    "standby_is_healthy",
    "concurrent_probes",
    "frozen_node_is_bounded",
    "frozen_node_times_out",
    "killed_node_fails",
];

/// What a probe claims it can see, so that the suite checks exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeCapabilities {
    /// It reports a node's real role (`Health::in_recovery` from the
    /// server, not from the model).
    pub sees_role: bool,
    /// It notices a server that accepts connections but does not answer,
    /// and says `Failed { reason: Timeout }`.
    pub detects_hang: bool,
}

const RETURNS_IN_TIME: &str = "probe returns within `timeout`";
const HEALTHY: &str = "a running server is Healthy";
const ROLE: &str = "a probe that sees the role reports pg_is_in_recovery()";
const HANG: &str = "a probe that cannot get an answer in time returns Failed { Timeout }";
const KILLED: &str = "a server that is gone is Failed";
const NO_PANIC: &str = "a probe never panics";

/// The timeout each probe is given.
const TIMEOUT: Duration = Duration::from_secs(1);
/// What a probe may overrun its timeout by before it counts as unbounded:
/// generous, so a loaded machine does not fail the suite.
const MARGIN: Duration = Duration::from_secs(2);

/// Runs every check of [`PROBE_CHECKS`] against `probe`, with a 1 s
/// timeout, on one cluster (`node0` primary, `node1` streaming standby):
///
/// * `primary_is_healthy`, `standby_is_healthy`: `Healthy`, with
///   `in_recovery` false and true when the probe `sees_role`;
/// * `concurrent_probes`: probing both nodes at once gives both answers;
/// * `frozen_node_is_bounded`: a probe of a frozen (`SIGSTOP`ped) node
///   returns within the timeout plus 2 s;
/// * `frozen_node_times_out` (skipped unless `detects_hang`): and it is
///   `Failed { reason: Timeout }`;
/// * `killed_node_fails`: after `kill -9`, two probes in a row are
///   `Failed`, in time, without panicking.
///
/// Returns [`HarnessError::Contract`] with the full [`Report`] if any
/// clause was violated.
pub async fn health_probe(
    probe: Arc<dyn HealthProbe>,
    capabilities: ProbeCapabilities,
) -> Result<Report, HarnessError> {
    let mut report = Report::new(probe.name());
    let started = Instant::now();
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let topology = cluster.topology();
    let [primary, standby] = match topology.nodes() {
        [p, s] => [p.clone(), s.clone()],
        _ => {
            return Err(HarnessError::Io {
                what: "a probe conformance cluster has 2 nodes".to_string(),
                source: std::io::Error::other("wrong cluster size"),
            })
        }
    };
    let harness = &cluster.nodes()[1];
    let p = &probe;
    for name in PROBE_CHECKS {
        // The first check's time includes starting the cluster.
        let since = report.checks.last().map_or(started, |_| Instant::now());
        let result = match name {
            "primary_is_healthy" => healthy(p, &primary, false, capabilities).await,
            "standby_is_healthy" => healthy(p, &standby, true, capabilities).await,
            "concurrent_probes" => concurrent(p, &primary, &standby, capabilities).await,
            "frozen_node_is_bounded" => frozen(p, &standby, harness, None).await,
            "frozen_node_times_out" if capabilities.detects_hang => {
                frozen(p, &standby, harness, Some(HANG)).await
            }
            "frozen_node_times_out" => Err(Fail::Skipped(
                "the probe does not claim to detect a hung server".to_string(),
            )),
            _ => killed(p, &standby, harness).await,
        };
        record(&mut report, name, since, result)?;
    }
    report.into_result()
}

/// Probes `node` in a task of its own, so that a panic is seen as one.
async fn observe(
    probe: &Arc<dyn HealthProbe>,
    node: &NodeState,
) -> Result<(Observation, Duration), Fail> {
    let (probe, node) = (probe.clone(), node.clone());
    let started = Instant::now();
    let task = tokio::spawn(async move { probe.probe(&node, TIMEOUT).await });
    let seen = match tokio::time::timeout(TIMEOUT + MARGIN, task).await {
        Ok(Ok(seen)) => seen,
        Ok(Err(e)) => return Err(violated(NO_PANIC, format!("the probe task failed: {e}"))),
        Err(_) => {
            return Err(violated(
                RETURNS_IN_TIME,
                format!(
                    "no answer {:?} after a {TIMEOUT:?} timeout",
                    TIMEOUT + MARGIN
                ),
            ))
        }
    };
    Ok((seen, started.elapsed()))
}

fn check_healthy(
    node: &NodeState,
    seen: &Observation,
    in_recovery: bool,
    capabilities: ProbeCapabilities,
) -> Result<(), Fail> {
    match seen {
        Observation::Healthy(health) => {
            if capabilities.sees_role && health.in_recovery != in_recovery {
                return Err(violated(
                    ROLE,
                    format!(
                        "{} reported in_recovery = {}, the server says {in_recovery}",
                        node.id, health.in_recovery
                    ),
                ));
            }
            Ok(())
        }
        Observation::Failed { reason } => Err(violated(
            HEALTHY,
            format!("running {} observed as Failed {{ {reason:?} }}", node.id),
        )),
    }
}

async fn healthy(
    probe: &Arc<dyn HealthProbe>,
    node: &NodeState,
    in_recovery: bool,
    capabilities: ProbeCapabilities,
) -> Checked {
    let (seen, _) = observe(probe, node).await?;
    check_healthy(node, &seen, in_recovery, capabilities)?;
    // A probe keeping a connection must still answer the second time.
    let (seen, _) = observe(probe, node).await?;
    check_healthy(node, &seen, in_recovery, capabilities)?;
    Ok(None)
}

async fn concurrent(
    probe: &Arc<dyn HealthProbe>,
    primary: &NodeState,
    standby: &NodeState,
    capabilities: ProbeCapabilities,
) -> Checked {
    let (a, b) = tokio::join!(observe(probe, primary), observe(probe, standby));
    check_healthy(primary, &a?.0, false, capabilities)?;
    check_healthy(standby, &b?.0, true, capabilities)?;
    Ok(None)
}

/// Probes `node` while its server is frozen; thaws it whatever happens.
async fn frozen(
    probe: &Arc<dyn HealthProbe>,
    node: &NodeState,
    harness: &PgNode,
    must_time_out: Option<&'static str>,
) -> Checked {
    harness.freeze()?;
    let seen = observe(probe, node).await;
    harness.thaw()?;
    let (seen, took) = seen?;
    let note = format!("answered {seen:?} after {:.1}s", took.as_secs_f64());
    if let Some(clause) = must_time_out {
        if seen
            != (Observation::Failed {
                reason: FailureReason::Timeout,
            })
        {
            return Err(violated(clause, note));
        }
    }
    // Give the thawed server time to settle before the next check.
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.execute("SELECT 1").await.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Some(note))
}

async fn killed(probe: &Arc<dyn HealthProbe>, node: &NodeState, harness: &PgNode) -> Checked {
    harness.kill9()?;
    let mut notes = Vec::new();
    // Twice: a probe keeping a connection sees it break, then cannot
    // reconnect.
    for _ in 0..2 {
        let (seen, took) = observe(probe, node).await?;
        if let Observation::Healthy(_) = seen {
            return Err(violated(
                KILLED,
                format!("killed {} observed as {seen:?}", node.id),
            ));
        }
        notes.push(format!("{seen:?} after {:.1}s", took.as_secs_f64()));
    }
    Ok(Some(notes.join(", then ")))
}
