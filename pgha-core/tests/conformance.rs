//! pgha's own controllers and probes pass the conformance suites that
//! `pgha_core::testing::conformance` offers to plugin authors, on real
//! PostgreSQL servers.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use pgha_core::testing::conformance::{self, ProbeCapabilities, Report};
use pgha_core::testing::{HarnessError, PgCluster};
use pgha_core::{
    CommandControllerConfig, CommandNodeController, ConnectConfig, LocalNodeController,
    NodeController, SqlNodeController, SqlProbe, TcpProbe,
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
