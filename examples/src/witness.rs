//! `pgha witness`: a third member for the two-host deployment — it votes
//! and probes the PostgreSQL nodes, so that two hosts and a witness always
//! decide on two independent views, and it never leads (no proxy, no
//! PostgreSQL, no VIP). It reads the same `pgha.toml` as `pgha run`:
//! `[watchdog]` (its own id must be a member marked `witness = true`),
//! `[[node]]` and `[monitor]` (how to probe).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pgha_core::{MonitorConfig, SqlProbe};
use pgha_watchdog::witness::{self, Probing};
use pgha_watchdog::SharedSecret;

use crate::config::RunConfig;

/// How recent a member's probe views must be to count: three probe rounds
/// and a probe, so one late message does not put a member out of contact.
pub fn contact_window(monitor: &MonitorConfig) -> Duration {
    monitor.probe_interval * 3 + monitor.probe_timeout
}

/// Runs the witness `config` describes until `shutdown` completes.
pub async fn run_witness(
    config: &RunConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let settings = config
        .watchdog
        .as_ref()
        .context("pgha witness needs a [watchdog] section")?;
    if !settings.witnesses.contains(&settings.id) {
        anyhow::bail!(
            "[watchdog] member {} is not marked `witness = true`: a member that may lead runs `pgha run`",
            settings.id
        );
    }
    let probing = Probing {
        nodes: config.topology().nodes().to_vec(),
        interval: config.monitor.probe_interval,
        timeout: config.monitor.probe_timeout,
    };
    tracing::warn!(
        member = settings.id,
        nodes = probing.nodes.len(),
        "pgha witness: voting and probing"
    );
    witness::run(
        settings.member_config(),
        SharedSecret::new(settings.secret.clone()),
        Arc::new(SqlProbe::new(config.controller.connect.clone())),
        probing,
        shutdown,
    )
    .await
    .map_err(|e| anyhow::anyhow!("pgha witness: {e}"))
}
