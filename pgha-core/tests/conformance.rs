//! pgha's own controllers and probes pass the conformance suites that
//! `pgha_core::testing::conformance` offers to plugin authors, on real
//! PostgreSQL servers.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::conformance::{self, Outcome, ProbeCapabilities, Report};
use pgha_core::testing::{HarnessError, PgCluster};
use pgha_core::{
    Action, Command, CommandControllerConfig, CommandNodeController, ConnectConfig, DefaultPolicy,
    Event, FailoverPolicy, LocalNodeController, NodeController, Observation, SqlNodeController,
    SqlProbe, TcpProbe, Topology,
};

type R = Result<(), Box<dyn std::error::Error>>;

fn init_tracing() {
    // RUST_LOG=pgha_core=info narrates each check.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The suite's result, its report shown in full when a clause was
/// violated.
fn suite(result: Result<Report, HarnessError>) -> Report {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn assert_checks(report: &Report, passed: &[&str], skipped: &[&str]) {
    eprintln!("{report}");
    assert_eq!(report.passed(), passed, "{report}");
    assert_eq!(report.skipped(), skipped, "{report}");
}

#[tokio::test]
async fn sql_node_controller_keeps_the_contract_but_cannot_rejoin() -> R {
    init_tracing();
    let report =
        suite(conformance::node_controller(|_| Arc::new(SqlNodeController::default())).await);
    assert_checks(
        &report,
        &[
            "promote",
            "promote_is_idempotent",
            "follow",
            "fence_unreachable",
            "fence_reachable",
        ],
        &["rejoin"],
    );
    Ok(())
}

fn local(cluster: &Arc<PgCluster>) -> Arc<dyn NodeController> {
    Arc::new(LocalNodeController::new(
        SqlNodeController::default(),
        cluster.clone(),
        cluster.local_controller_config(),
    ))
}

#[tokio::test]
async fn local_node_controller_promotes_follows_fences_and_rejoins() -> R {
    init_tracing();
    let report = suite(conformance::node_controller(local).await);
    assert_checks(&report, &conformance::CONTROLLER_CHECKS, &[]);
    Ok(())
}

/// Operator commands as pgpool users write them: psql against the node to
/// promote (`%H %r`) or to fence (`%h %p`). No follow or rejoin command.
fn psql_commands(cluster: &Arc<PgCluster>) -> Arc<dyn NodeController> {
    let psql = cluster.primary().bins().bin("psql");
    let psql = psql.display();
    let mut config = CommandControllerConfig::new(format!(
        "{psql} -h %H -p %r -U postgres -d postgres -v ON_ERROR_STOP=1 -Atc \
         'SELECT pg_promote() WHERE pg_is_in_recovery()'"
    ));
    config.fence_command = Some(format!(
        "{psql} -h %h -p %p -U postgres -d postgres -v ON_ERROR_STOP=1 \
         -c 'ALTER SYSTEM SET default_transaction_read_only = on' \
         -c 'SELECT pg_reload_conf()' \
         -c \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
               WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()\""
    ));
    Arc::new(CommandNodeController::new(config).unwrap())
}

#[tokio::test]
async fn command_node_controller_with_psql_commands_keeps_the_contract() -> R {
    init_tracing();
    let report = suite(conformance::node_controller(psql_commands).await);
    assert_checks(
        &report,
        &[
            "promote",
            "promote_is_idempotent",
            "fence_unreachable",
            "fence_reachable",
        ],
        &["follow", "rejoin"],
    );
    Ok(())
}

#[tokio::test]
async fn sql_probe_sees_roles_and_hangs() -> R {
    init_tracing();
    let probe = Arc::new(SqlProbe::new(ConnectConfig::default()));
    let capabilities = ProbeCapabilities {
        sees_role: true,
        detects_hang: true,
    };
    let report = suite(conformance::health_probe(probe, capabilities).await);
    assert_checks(&report, &conformance::PROBE_CHECKS, &[]);
    Ok(())
}

#[tokio::test]
async fn tcp_probe_keeps_the_contract_without_seeing_roles_or_hangs() -> R {
    init_tracing();
    let capabilities = ProbeCapabilities {
        sees_role: false,
        detects_hang: false,
    };
    let report = suite(conformance::health_probe(Arc::new(TcpProbe), capabilities).await);
    let mut ran = conformance::PROBE_CHECKS.to_vec();
    ran.retain(|c| *c != "frozen_node_times_out");
    assert_checks(&report, &ran, &["frozen_node_times_out"]);
    Ok(())
}

/// Enough histories to reach failovers, failed promotions, gated clusters
/// and operator commands many times over, in well under a second.
const HISTORIES: usize = 2000;

#[test]
fn default_policy_passes_the_failover_policy_suite() {
    for policy in [
        DefaultPolicy::default(),
        DefaultPolicy {
            failures_before_down: 1,
            maximum_lag_bytes: Some(100),
            auto_rejoin: true,
            minimum_down_time: Duration::ZERO,
        },
    ] {
        let report = conformance::failover_policy(Arc::new(policy), HISTORIES, 14);
        eprintln!("{report}");
        assert_eq!(report.passed(), conformance::POLICY_CHECKS, "{report}");
    }
}

/// Promotes whichever standby just failed a probe: what the suite exists
/// to catch.
struct PromotesTheFailed;

impl FailoverPolicy for PromotesTheFailed {
    fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action> {
        match event {
            Event::Observed {
                node,
                observation: Observation::Failed { .. },
                ..
            } if topology.primary_id() != Some(node) => vec![Action::Promote {
                node: node.clone(),
                term: topology.term() + 1,
            }],
            _ => Vec::new(),
        }
    }
}

/// Counts the calls it gets and probes the primary every 50th: what it
/// decides depends on how often it was asked, not on the cluster.
#[derive(Default)]
struct CountsItself(AtomicU64);

impl FailoverPolicy for CountsItself {
    fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action> {
        let seen = self.0.fetch_add(1, Ordering::Relaxed);
        match (event, topology.primary_id()) {
            (Event::Observed { .. }, Some(primary)) if seen % 50 == 49 => vec![Action::Probe {
                node: primary.clone(),
            }],
            _ => Vec::new(),
        }
    }
}

/// Promotes with the current term: the model drops it.
struct StaleTerm;

impl FailoverPolicy for StaleTerm {
    fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action> {
        match event {
            Event::Command {
                command: Command::Promote { node },
                ..
            } => vec![Action::Promote {
                node: node.clone(),
                term: topology.term(),
            }],
            _ => Vec::new(),
        }
    }
}

fn violated(report: &Report, name: &str) -> String {
    match report.outcome(name) {
        Some(Outcome::Violated { detail, .. }) => detail.clone(),
        other => panic!("{name} not violated: {other:?}\n{report}"),
    }
}

#[test]
fn a_policy_promoting_a_failed_standby_is_reported_with_a_replayable_seed() {
    let report = conformance::failover_policy(Arc::new(PromotesTheFailed), 200, 7);
    eprintln!("{report}");
    let detail = violated(&report, "a_standby_failure_never_promotes");
    assert!(report.passed().contains(&"deterministic"), "{report}");
    // The named history alone breaks it again.
    let seed: u64 = detail
        .strip_prefix("history seed ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no seed in {detail}"));
    let replay = conformance::failover_policy(Arc::new(PromotesTheFailed), 1, seed);
    assert!(
        replay
            .violated()
            .contains(&"a_standby_failure_never_promotes"),
        "{replay}"
    );
}

#[test]
fn a_policy_with_hidden_state_or_invalid_actions_is_reported() {
    let report = conformance::failover_policy(Arc::new(CountsItself::default()), 200, 7);
    eprintln!("{report}");
    violated(&report, "deterministic");
    violated(&report, "no_hidden_state");

    let report = conformance::failover_policy(Arc::new(StaleTerm), 200, 7);
    eprintln!("{report}");
    violated(&report, "actions_are_valid");
}

/// Takes a terminated session for a dead primary and fences it.
struct FencesOnAHint;

impl FailoverPolicy for FencesOnAHint {
    fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action> {
        match event {
            Event::SessionHint { node, .. } if topology.primary_id() == Some(node) => {
                vec![Action::Fence {
                    node: node.clone(),
                    term: topology.term(),
                }]
            }
            _ => Vec::new(),
        }
    }
}

#[test]
fn a_policy_fencing_a_healthy_primary_on_a_hint_is_reported() {
    let report = conformance::failover_policy(Arc::new(FencesOnAHint), 200, 7);
    eprintln!("{report}");
    violated(&report, "never_fences_a_healthy_primary_unasked");
    violated(&report, "a_session_hint_only_probes");
    assert!(report.passed().contains(&"actions_are_valid"), "{report}");
}

/// Cannot handle a switchover.
struct PanicsOnSwitchover;

impl FailoverPolicy for PanicsOnSwitchover {
    fn decide(&self, _: &Topology, event: &Event) -> Vec<Action> {
        match event {
            Event::Command {
                command: Command::Switchover { .. },
                ..
            } => panic!("switchover not implemented"),
            _ => Vec::new(),
        }
    }
}

#[test]
fn a_panicking_policy_is_reported_and_the_other_checks_still_run() {
    let report = conformance::failover_policy(Arc::new(PanicsOnSwitchover), 100, 7);
    eprintln!("{report}");
    let detail = violated(&report, "never_panics");
    assert!(detail.contains("switchover not implemented"), "{detail}");
    assert_eq!(report.violated(), ["never_panics"], "{report}");
}
