//! The [`NodeController`] suite.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{record, violated, Checked, Fail, Report};
use crate::testing::{HarnessError, PgCluster, PgNode};
use crate::{Error, Fenced, NodeController, NodeId, NodeState, Role};

/// The checks of [`node_controller`], in the order they run.
pub const CONTROLLER_CHECKS: [&str; 6] = [
    "promote",
    "promote_is_idempotent",
    "follow",
    "fence_unreachable",
    "fence_reachable",
    "rejoin",
];

const PROMOTE: &str = "promote returns only once the node accepts writes";
const IDEMPOTENT: &str =
    "promote is idempotent: promoting a node that is already a primary returns Ok";
const FOLLOW: &str = "follow makes a running standby stream from `primary`";
const FENCE_UNREACHABLE: &str =
    "fence of an unreachable node returns Ok(Fenced::NotConfirmed), never Confirmed";
const FENCE_OK: &str = "fence reports what it could establish: a fence it cannot carry out is \
                        Ok(NotConfirmed), not an error";
const FENCE_CONFIRMED: &str = "Fenced::Confirmed: the node no longer accepts writes";
const REJOIN: &str = "rejoin turns a former primary into a standby of `primary`";
const BOUNDED: &str = "every call is bounded in time";

/// Longer than any default deadline of pgha's controllers (60 s for an
/// operator command): past it the call counts as hung.
const CALL_LIMIT: Duration = Duration::from_secs(90);
/// How long a standby may take to show up streaming, or to replay a row.
const WAIT: Duration = Duration::from_secs(30);

/// Runs every check of [`CONTROLLER_CHECKS`] against the controller `make`
/// builds for a fresh cluster (`node0` primary, `node1` and `node2`
/// streaming standbys, a table `pgha_conformance (v int)` everywhere):
///
/// * `promote`: promoting `node1` returns once it is out of recovery and
///   accepts a write;
/// * `promote_is_idempotent`: promoting it again, in the same term and in
///   a later one, is `Ok` and it stays primary;
/// * `follow` (skipped on `Error::Unsupported`): with `node0` killed and
///   `node1` promoted, `follow(node2, node1)` makes `node2` stream from
///   `node1` and replay a row written there;
/// * `fence_unreachable`: fencing a killed `node0` is
///   `Ok(Fenced::NotConfirmed)`;
/// * `fence_reachable`: fencing the running `node0` is `Ok`, and if it is
///   `Confirmed`, neither a new session nor one opened before the fence can
///   write to it;
/// * `rejoin` (skipped on `Error::Unsupported`): with `node0` killed,
///   `node1` promoted and a row written there, and `node0` started again,
///   `rejoin(node0, node1)` leaves `node0` in recovery, streaming from
///   `node1`, with that row.
///
/// Every call must return within 90 s. The node states passed come from
/// [`PgCluster::topology`], with roles adjusted to what the check did.
/// Returns [`HarnessError::Contract`] with the full [`Report`] if any
/// clause was violated.
pub async fn node_controller(
    make: impl Fn(&Arc<PgCluster>) -> Arc<dyn NodeController>,
) -> Result<Report, HarnessError> {
    node_controller_checks(&CONTROLLER_CHECKS, make).await
}

/// Runs only the named checks of [`node_controller`] (each one of
/// [`CONTROLLER_CHECKS`]), in the order given: to run one while working on
/// it, or to keep the others running while one is a known failure.
pub async fn node_controller_checks(
    checks: &[&'static str],
    make: impl Fn(&Arc<PgCluster>) -> Arc<dyn NodeController>,
) -> Result<Report, HarnessError> {
    if let Some(unknown) = checks.iter().find(|c| !CONTROLLER_CHECKS.contains(c)) {
        return Err(HarnessError::Io {
            what: format!("no controller check {unknown:?} (see CONTROLLER_CHECKS)"),
            source: std::io::Error::other("unknown check"),
        });
    }
    let mut report: Option<Report> = None;
    for &name in checks {
        let started = Instant::now();
        let cluster = Arc::new(fresh_cluster().await?);
        let controller = make(&cluster);
        let report = report.get_or_insert_with(|| Report::new(controller.name()));
        let c = (&*cluster, &*controller);
        let result = match name {
            "promote" => promote(c).await,
            "promote_is_idempotent" => promote_is_idempotent(c).await,
            "follow" => follow(c).await,
            "fence_unreachable" => fence_unreachable(c).await,
            "fence_reachable" => fence_reachable(c).await,
            _ => rejoin(c).await,
        };
        record(report, name, started, result)?;
    }
    report
        .unwrap_or_else(|| Report::new("node controller"))
        .into_result()
}

type Ctx<'a> = (&'a PgCluster, &'a dyn NodeController);

async fn promote((cluster, controller): Ctx<'_>) -> Checked {
    let node1 = state(cluster, "node1", Role::Standby)?;
    required(PROMOTE, "promote(node1)", controller.promote(&node1, 2)).await?;
    accepts_writes(&cluster.nodes()[1], 1, PROMOTE).await?;
    Ok(None)
}

async fn promote_is_idempotent((cluster, controller): Ctx<'_>) -> Checked {
    let node1 = state(cluster, "node1", Role::Standby)?;
    required(PROMOTE, "promote(node1)", controller.promote(&node1, 2)).await?;
    let node1 = state(cluster, "node1", Role::Primary)?;
    let again = "promote(node1) again in the same term";
    required(IDEMPOTENT, again, controller.promote(&node1, 2)).await?;
    accepts_writes(&cluster.nodes()[1], 1, IDEMPOTENT).await?;
    let later = "promote(node1) again in a later term";
    required(IDEMPOTENT, later, controller.promote(&node1, 3)).await?;
    accepts_writes(&cluster.nodes()[1], 2, IDEMPOTENT).await?;
    Ok(None)
}

async fn follow((cluster, controller): Ctx<'_>) -> Checked {
    let [node0, node1, node2] = nodes(cluster)?;
    node0.kill9()?;
    let new_primary = promoted(cluster, controller).await?;
    let standby = state(cluster, "node2", Role::Standby)?;
    optional(
        FOLLOW,
        "follow(node2, node1)",
        controller.follow(&standby, &new_primary),
    )
    .await?;
    streams_from(node1, node2, FOLLOW).await?;
    write_on(node1, 7, PROMOTE).await?;
    has_row(node2, 7, FOLLOW).await?;
    Ok(None)
}

async fn fence_unreachable((cluster, controller): Ctx<'_>) -> Checked {
    cluster.nodes()[0].kill9()?;
    let node0 = state(cluster, "node0", Role::Primary)?;
    match bounded("fence(killed node0)", controller.fence(&node0)).await? {
        Ok(Fenced::NotConfirmed { why }) => Ok(Some(format!("not confirmed: {why}"))),
        Ok(Fenced::Confirmed) => Err(violated(
            FENCE_UNREACHABLE,
            "fence of a killed node0 returned Confirmed",
        )),
        Err(e) => Err(violated(
            FENCE_UNREACHABLE,
            format!("fence of a killed node0 failed: {e}"),
        )),
    }
}

async fn fence_reachable((cluster, controller): Ctx<'_>) -> Checked {
    let harness = &cluster.nodes()[0];
    // A client connected before the fence must not write after it either.
    let session = harness.connect().await?;
    let node0 = state(cluster, "node0", Role::Primary)?;
    match bounded("fence(running node0)", controller.fence(&node0)).await? {
        Ok(Fenced::NotConfirmed { why }) => {
            Ok(Some(format!("not confirmed ({why}): nothing to verify")))
        }
        Err(e) => Err(violated(
            FENCE_OK,
            format!("fence of a running node0 failed: {e}"),
        )),
        Ok(Fenced::Confirmed) => {
            let insert = "INSERT INTO pgha_conformance VALUES (1)";
            if harness.execute(insert).await.is_ok() {
                return Err(violated(
                    FENCE_CONFIRMED,
                    "fence returned Confirmed, then a new session wrote to node0",
                ));
            }
            if session.batch_execute(insert).await.is_ok() {
                return Err(violated(
                    FENCE_CONFIRMED,
                    "fence returned Confirmed, then a session opened before it wrote to node0",
                ));
            }
            Ok(None)
        }
    }
}

async fn rejoin((cluster, controller): Ctx<'_>) -> Checked {
    let [node0, node1, _] = nodes(cluster)?;
    node0.kill9()?;
    let new_primary = promoted(cluster, controller).await?;
    write_on(node1, 42, PROMOTE).await?;
    // It comes back as it went down: a primary on the old timeline.
    node0.start().await?;
    let former = state(cluster, "node0", Role::Unknown)?;
    optional(
        REJOIN,
        "rejoin(node0, node1)",
        controller.rejoin(&former, &new_primary),
    )
    .await?;
    match node0.is_in_recovery().await {
        Ok(true) => {}
        Ok(false) => return Err(violated(REJOIN, "node0 is not in recovery after rejoin")),
        Err(e) => {
            return Err(violated(
                REJOIN,
                format!("node0 does not answer after rejoin: {e}"),
            ))
        }
    }
    streams_from(node1, node0, REJOIN).await?;
    has_row(node0, 42, REJOIN).await?;
    Ok(None)
}

/// Promotes `node1` (term 2) after `node0` went away; its new state.
async fn promoted(cluster: &PgCluster, controller: &dyn NodeController) -> Result<NodeState, Fail> {
    let node1 = state(cluster, "node1", Role::Standby)?;
    required(PROMOTE, "promote(node1)", controller.promote(&node1, 2)).await?;
    Ok(state(cluster, "node1", Role::Primary)?)
}

/// A cluster of three, every standby streaming and caught up with a
/// table `pgha_conformance` created on the primary.
async fn fresh_cluster() -> Result<PgCluster, HarnessError> {
    let cluster = PgCluster::builder().standbys(2).start().await?;
    cluster.wait_streaming().await?;
    let primary = cluster.primary();
    primary
        .execute("CREATE TABLE pgha_conformance (v int)")
        .await?;
    let lsn = primary.current_wal_lsn().await?;
    let sql = format!("SELECT (pg_last_wal_replay_lsn() >= '{lsn}')::text");
    for standby in cluster.standbys() {
        let deadline = Instant::now() + WAIT;
        while standby.query_one_text(&sql).await?.as_deref() != Some("true") {
            if Instant::now() > deadline {
                return Err(HarnessError::Timeout {
                    what: format!("{} replaying up to {lsn}", standby.name()),
                    after: WAIT,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(cluster)
}

fn nodes(cluster: &PgCluster) -> Result<[&PgNode; 3], HarnessError> {
    match cluster.nodes() {
        [a, b, c] => Ok([a, b, c]),
        other => Err(HarnessError::Io {
            what: format!("a conformance cluster has 3 nodes, not {}", other.len()),
            source: std::io::Error::other("wrong cluster size"),
        }),
    }
}

/// The node called `name` as pgha would pass it, with `role`.
fn state(cluster: &PgCluster, name: &str, role: Role) -> Result<NodeState, HarnessError> {
    let mut node = cluster
        .topology()
        .node(&NodeId::new(name))
        .cloned()
        .ok_or_else(|| HarnessError::Io {
            what: format!("no node {name} in the conformance cluster"),
            source: std::io::Error::other("no such node"),
        })?;
    node.role = role;
    Ok(node)
}

async fn bounded<T>(
    call: &str,
    running: impl Future<Output = Result<T, Error>>,
) -> Result<Result<T, Error>, Fail> {
    tokio::time::timeout(CALL_LIMIT, running)
        .await
        .map_err(|_| {
            violated(
                BOUNDED,
                format!("{call} still running after {CALL_LIMIT:?}"),
            )
        })
}

/// A call that must succeed.
async fn required<T>(
    clause: &'static str,
    call: &str,
    running: impl Future<Output = Result<T, Error>>,
) -> Result<T, Fail> {
    bounded(call, running)
        .await?
        .map_err(|e| violated(clause, format!("{call} failed: {e}")))
}

/// A call that must succeed unless the controller does not support it.
async fn optional<T>(
    clause: &'static str,
    call: &str,
    running: impl Future<Output = Result<T, Error>>,
) -> Result<T, Fail> {
    match bounded(call, running).await? {
        Ok(v) => Ok(v),
        Err(e @ Error::Unsupported { .. }) => Err(Fail::Skipped(e.to_string())),
        Err(e) => Err(violated(clause, format!("{call} failed: {e}"))),
    }
}

async fn accepts_writes(node: &PgNode, value: i32, clause: &'static str) -> Result<(), Fail> {
    match node.is_in_recovery().await {
        Ok(false) => {}
        Ok(true) => {
            return Err(violated(
                clause,
                format!("{} is still in recovery", node.name()),
            ))
        }
        Err(e) => {
            return Err(violated(
                clause,
                format!("{} does not answer: {e}", node.name()),
            ))
        }
    }
    write_on(node, value, clause).await
}

async fn write_on(node: &PgNode, value: i32, clause: &'static str) -> Result<(), Fail> {
    node.execute(&format!("INSERT INTO pgha_conformance VALUES ({value})"))
        .await
        .map_err(|e| violated(clause, format!("a write to {} failed: {e}", node.name())))
}

/// Waits until `primary` lists `standby` as streaming.
async fn streams_from(
    primary: &PgNode,
    standby: &PgNode,
    clause: &'static str,
) -> Result<(), Fail> {
    let sql = format!(
        "SELECT coalesce(string_agg(state, ','), 'nothing') FROM pg_stat_replication \
         WHERE application_name = '{}'",
        standby.name()
    );
    let last = poll(primary, &sql, "streaming").await;
    last.map_err(|last| {
        violated(
            clause,
            format!(
                "{} never listed {} as streaming within {WAIT:?} (last saw {last})",
                primary.name(),
                standby.name()
            ),
        )
    })
}

/// Waits until `node` has replayed the row `value`.
async fn has_row(node: &PgNode, value: i32, clause: &'static str) -> Result<(), Fail> {
    let sql = format!("SELECT count(*)::text FROM pgha_conformance WHERE v = {value}");
    poll(node, &sql, "1").await.map_err(|last| {
        violated(
            clause,
            format!(
                "{} did not replay row {value} within {WAIT:?} (last saw {last})",
                node.name()
            ),
        )
    })
}

/// Runs `sql` on `node` until it answers `want`; what it said last if it
/// never did within [`WAIT`].
async fn poll(node: &PgNode, sql: &str, want: &str) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match node.query_one_text(sql).await {
            Ok(Some(v)) if v == want => return Ok(()),
            Ok(v) => format!("{v:?}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
