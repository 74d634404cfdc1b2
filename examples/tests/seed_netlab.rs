//! The seed deployment's failure cases, end to end: hosts `a` and `b` each
//! run PostgreSQL and `pgha run` (with `[local]`: its local agent), host
//! `w` a third member, a client writes through the VIP every 50 ms. Real
//! processes, real PostgreSQL, network namespaces.
//!
//! Needs root; skips loudly outside CI, fails in CI.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // a failing unwrap is a failing test

#[path = "support/group.rs"]
mod group;

use std::time::{Duration, Instant};

use group::{streams_from, Deployment, R};
use pgha_core::testing::require_root_or_skip;

/// A1: the primary's PostgreSQL killed → the standby is promoted, writes
/// come back through the VIP, and the old primary is rewound and streams
/// from the new one by itself (its host's pgha did it).
#[tokio::test]
async fn a1_the_primary_killed_is_failed_over_and_comes_back_as_a_standby_by_itself() -> R {
    if !require_root_or_skip(
        "a1_the_primary_killed_is_failed_over_and_comes_back_as_a_standby_by_itself",
    ) {
        return Ok(());
    }
    let d = Deployment::start().await?;
    let (old, new) = (&d.cluster.nodes()[0], &d.cluster.nodes()[1]);
    let killed_at = Instant::now();
    old.kill9()?;
    d.writer
        .wait_acknowledged_after(killed_at, 5, Duration::from_secs(60))
        .await;
    let outage = d.writer.outage_around(killed_at);
    assert!(!new.is_in_recovery().await?, "b promoted\n{}", d.logs());
    streams_from(&d, old, new, Duration::from_secs(120)).await;
    let rejoined = killed_at.elapsed();
    let acknowledged = d.writer.acknowledged().len();
    let missing = missing_count(&d).await?;
    d.nothing_told_failed_is_present_on(1).await?;
    eprintln!(
        "A1 primary killed: writes back after {outage:?} (longest gap between acknowledged writes); old primary streaming from the new one {rejoined:?} after the kill; {acknowledged} writes acknowledged, {missing} of them missing (asynchronous replication)"
    );
    Ok(())
}

/// A2: the standby's PostgreSQL killed → no client sees an error, and the
/// standby comes back by itself.
#[tokio::test]
async fn a2_the_standby_killed_costs_clients_nothing_and_comes_back_by_itself() -> R {
    if !require_root_or_skip("a2_the_standby_killed_costs_clients_nothing_and_comes_back_by_itself")
    {
        return Ok(());
    }
    let d = Deployment::start().await?;
    let (primary, standby) = (&d.cluster.nodes()[0], &d.cluster.nodes()[1]);
    let killed_at = Instant::now();
    standby.kill9()?;
    let back = streams_from(&d, standby, primary, Duration::from_secs(120)).await;
    d.writer
        .wait_acknowledged_after(Instant::now(), 5, Duration::from_secs(10))
        .await;
    let errors = d.writer.errors_since(killed_at);
    eprintln!(
        "A2 standby killed: streaming again after {back:?}; {} client errors",
        errors.len()
    );
    assert!(errors.is_empty(), "client errors: {errors:?}\n{}", d.logs());
    assert!(
        !primary.is_in_recovery().await?,
        "no failover for a standby"
    );
    d.nothing_acknowledged_is_missing().await?;
    Ok(())
}

/// C: the whole primary host cut off (synchronous replication) → the
/// other members fail over and move the VIP; after the heal the old
/// primary comes back as a standby of the new one by itself, and no
/// acknowledged write is missing. The VIP is never on two hosts.
#[tokio::test]
async fn c_the_primary_host_cut_off_fails_over_and_after_the_heal_nothing_acknowledged_is_lost() -> R
{
    if !require_root_or_skip(
        "c_the_primary_host_cut_off_fails_over_and_after_the_heal_nothing_acknowledged_is_lost",
    ) {
        return Ok(());
    }
    let d = Deployment::start_with(true).await?;
    let (old, new) = (&d.cluster.nodes()[0], &d.cluster.nodes()[1]);
    let sampler = group::Sampler::start(d.lab.clone());
    let cut_at = Instant::now();
    d.lab.isolate("a")?;
    d.writer
        .wait_acknowledged_after(cut_at, 5, Duration::from_secs(60))
        .await;
    let outage = d.writer.outage_around(cut_at);
    let holder = group::wait_holder(&d.lab, Some("a"), Duration::from_secs(30)).await;
    assert!(!new.is_in_recovery().await?, "b promoted\n{}", d.logs());
    // The cut-off side kept its primary all along (nobody could tell it).
    assert!(!old.is_in_recovery().await?);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healed_at = Instant::now();
    d.lab.heal()?;
    streams_from(&d, old, new, Duration::from_secs(120)).await;
    let rejoined = healed_at.elapsed();
    d.writer
        .wait_acknowledged_after(Instant::now(), 5, Duration::from_secs(10))
        .await;
    let (samples, doubles) = sampler.finish();
    eprintln!(
        "C host a cut off: writes back through the VIP (on {holder}) after {outage:?}; after the heal the old primary streams from the new one in {rejoined:?}; {samples} samples, {} with two VIP holders",
        doubles.len()
    );
    d.never_two_holders(&doubles);
    let missing = missing_count(&d).await?;
    d.nothing_told_failed_is_present_on(1).await?;
    assert_eq!(
        missing,
        0,
        "acknowledged writes missing on the new primary\n{}",
        d.logs()
    );
    Ok(())
}

async fn missing_count(d: &Deployment) -> Result<usize, Box<dyn std::error::Error>> {
    let present = d.cluster.nodes()[1]
        .query_one_text("SELECT string_agg(id::text, ',') FROM writes")
        .await?
        .unwrap_or_default();
    let present: std::collections::BTreeSet<i64> =
        present.split(',').filter_map(|s| s.parse().ok()).collect();
    Ok(d.writer
        .acknowledged()
        .iter()
        .filter(|id| !present.contains(id))
        .count())
}
