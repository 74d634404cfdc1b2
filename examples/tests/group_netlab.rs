//! Three `pgha run` processes in network namespaces agree through the
//! watchdog: one leads and holds the VIP; when its pgha is killed or
//! frozen another takes over, the address is never on two hosts, and
//! PostgreSQL is not failed over for a pgha fault. Real processes (the
//! built binary, configured by files written here), real PostgreSQL on
//! hosts `a` (primary) and `b` (standby), a client on its own host
//! writing through the VIP every 50 ms.
//!
//! Needs root (namespaces); skips loudly outside CI, fails in CI.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // a failing unwrap is a failing test

#[path = "support/group.rs"]
mod group;

use std::time::{Duration, Instant};

use group::{Deployment, Sampler, R};
use pgha_core::testing::require_root_or_skip;

#[tokio::test]
async fn the_vip_holders_pgha_killed_another_member_takes_the_vip_and_postgres_stays() -> R {
    if !require_root_or_skip(
        "the_vip_holders_pgha_killed_another_member_takes_the_vip_and_postgres_stays",
    ) {
        return Ok(());
    }
    let d = Deployment::start().await?;
    let sampler = Sampler::start(d.lab.clone());
    let killed_at = Instant::now();
    d.daemon(d.holder).signal("KILL");
    let next = group::wait_holder(&d.lab, Some(d.holder), Duration::from_secs(30)).await;
    let moved = killed_at.elapsed();
    d.writer
        .wait_acknowledged_after(killed_at, 5, Duration::from_secs(30))
        .await;
    let (samples, doubles) = sampler.finish();
    let outage = d.writer.outage_around(killed_at);
    eprintln!(
        "pgha on {} killed: VIP on {next} after {moved:?}; writes through the VIP back after {outage:?} (last ack before → first after); {samples} samples, {} with two holders",
        d.holder,
        doubles.len()
    );
    assert!(
        doubles.is_empty(),
        "two VIP holders: {doubles:?}\n{}",
        d.logs()
    );
    d.postgres_unchanged().await?;
    d.nothing_acknowledged_is_missing().await?;
    Ok(())
}

#[tokio::test]
async fn a_frozen_vip_holder_loses_the_address_before_another_takes_it_and_never_takes_it_back() -> R
{
    if !require_root_or_skip(
        "a_frozen_vip_holder_loses_the_address_before_another_takes_it_and_never_takes_it_back",
    ) {
        return Ok(());
    }
    let d = Deployment::start().await?;
    let sampler = Sampler::start(d.lab.clone());
    let frozen_at = Instant::now();
    d.daemon(d.holder).signal("STOP");
    let next = group::wait_holder(&d.lab, Some(d.holder), Duration::from_secs(30)).await;
    let moved = frozen_at.elapsed();
    d.writer
        .wait_acknowledged_after(frozen_at, 5, Duration::from_secs(30))
        .await;
    // Thawed, the old holder finds its lease long gone: it must not put
    // the address back.
    d.daemon(d.holder).signal("CONT");
    let thawed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (samples, doubles) = sampler.finish();
    eprintln!(
        "pgha on {} frozen: VIP on {next} after {moved:?}; writes back after {:?}; {samples} samples, {} with two holders",
        d.holder,
        d.writer.outage_around(frozen_at),
        doubles.len()
    );
    assert!(
        doubles.is_empty(),
        "two VIP holders: {doubles:?}\n{}",
        d.logs()
    );
    assert_eq!(group::holders(&d.lab), vec![next], "after the thaw");
    d.writer
        .wait_acknowledged_after(thawed_at, 5, Duration::from_secs(10))
        .await;
    d.postgres_unchanged().await?;
    d.nothing_acknowledged_is_missing().await?;
    Ok(())
}

#[tokio::test]
async fn pgha_ctl_reads_the_group_through_the_vip_and_a_switchover_under_load_costs_clients_nothing(
) -> R {
    if !require_root_or_skip(
        "pgha_ctl_reads_the_group_through_the_vip_and_a_switchover_under_load_costs_clients_nothing",
    ) {
        return Ok(());
    }
    let d = Deployment::start().await?;
    let vip = d.lab.vip(0).to_string();
    let (code, status) = group::ctl(&d.lab, &vip, &["status"]);
    assert_eq!(code, 0, "{status}");
    // The VIP reaches the leader, which holds the lease and the address.
    for field in ["leader", "vip_holder"] {
        assert!(
            status[field]
                .as_str()
                .is_some_and(|s| s.contains("this node")),
            "{field}: {status}"
        );
    }
    assert!(
        status["lease"]
            .as_str()
            .is_some_and(|s| s.starts_with("held")),
        "{status}"
    );
    // A follower answers status and names the leader, and refuses to act.
    let follower = group::MEMBERS
        .iter()
        .map(|(h, _)| *h)
        .find(|h| *h != d.holder)
        .unwrap();
    let follower_ip = d.lab.ip(follower).to_string();
    let (code, status) = group::ctl(&d.lab, &follower_ip, &["status"]);
    assert_eq!(code, 0, "{status}");
    assert!(
        status["leader"]
            .as_str()
            .is_some_and(|s| s.contains(&d.lab.ip(d.holder).to_string())),
        "{status}"
    );
    let (code, refused) = group::ctl(&d.lab, &follower_ip, &["switchover", "--to", "node1"]);
    assert_eq!(code, 1, "a follower refuses: {refused}");
    assert!(refused.to_string().contains("leader"), "{refused}");
    assert!(!d.cluster.nodes()[0].is_in_recovery().await?, "nothing ran");

    let started = Instant::now();
    let (code, done) = group::ctl(&d.lab, &vip, &["switchover", "--to", "node1"]);
    assert_eq!(code, 0, "{done}\n{}", d.logs());
    assert!(
        !d.cluster.nodes()[1].is_in_recovery().await?,
        "node1 is the primary"
    );
    d.writer
        .wait_acknowledged_after(Instant::now(), 10, Duration::from_secs(30))
        .await;
    let errors: Vec<_> = d
        .writer
        .attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.at >= started && !a.ok)
        .cloned()
        .collect();
    eprintln!(
        "switchover under load: {:?}; writes paused {:?}; {} client errors",
        started.elapsed(),
        d.writer.outage_around(started),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "client errors during the switchover: {errors:?}\n{}",
        d.logs()
    );
    d.nothing_acknowledged_is_missing_on(1).await?;
    Ok(())
}
