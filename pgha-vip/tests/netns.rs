//! The virtual IP between two hosts and a client in network namespaces,
//! on one bridge (pgha-core's `NetLab`). Needs root; skips loudly outside
//! CI, fails in CI.
//!
//! Measured numbers: `cargo test -p pgha-vip --test netns -- --ignored
//! --nocapture handover_times`.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

mod support;

use std::time::{Duration, Instant as StdInstant};

use pgha_core::testing::{require_root_or_skip, HarnessError, NetLab, CLIENT};
use pgha_vip::{AddressMover, CommandMover, CommandMoverConfig, Error, NetlinkMover, VipAddress};
use support::{client_neighbour, mac, median_worst, reach, vip, Holder, Observer, Sampler};
use tokio::time::Instant;

type R = Result<(), HarnessError>;

/// The watchdog's lease in these tests: 3 s, extended every 500 ms; with
/// the keeper's 1 s margin the kernel lifetime is 1 s, renewed every 500 ms.
const LEASE: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_millis(500);
/// How long the client may take to reach the new holder: the 1 s.
const REACH_WITHIN: Duration = Duration::from_secs(1);

fn lab() -> Result<NetLab, HarnessError> {
    NetLab::builder().hosts(["a", "b"]).build()
}

/// Runs `f` with a mover built inside `host`'s namespace.
async fn in_host<T, F, Fut>(lab: &NetLab, host: &str, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    lab.spawn(host, f)
        .unwrap()
        .join()
        .await
        .expect("the namespace task finished")
}

#[tokio::test]
async fn netlink_mover_passes_the_conformance_suite() -> R {
    if !require_root_or_skip("netlink_mover_passes_the_conformance_suite") {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let report = in_host(&lab, "a", move || async move {
        let mover = NetlinkMover::new().unwrap();
        pgha_vip::testing::address_mover(&mover, &vip).await
    })
    .await?;
    eprintln!("{report}");
    assert!(report.skipped().is_empty(), "{report}");
    Ok(())
}

#[tokio::test]
async fn netlink_mover_errors_name_the_interface_and_the_address() -> R {
    if !require_root_or_skip("netlink_mover_errors_name_the_interface_and_the_address") {
        return Ok(());
    }
    let lab = lab()?;
    // The VIP already on another interface, by hand.
    lab.run(
        "a",
        &[
            "ip",
            "addr",
            "add",
            &format!("{}/32", lab.vip(1)),
            "dev",
            "lo",
        ],
    )?;
    let (vip0, vip1, own) = (lab.vip(0), lab.vip(1), lab.ip("a"));
    in_host(&lab, "a", move || async move {
        let mover = NetlinkMover::new().unwrap();
        let second = Duration::from_secs(1);

        let missing = VipAddress::new(vip0, 24, "eth9").unwrap();
        let error = mover.acquire(&missing, second).await.unwrap_err();
        assert!(matches!(error, Error::InterfaceMissing { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("acquire {vip0}/24 on eth9: interface eth9 does not exist")
        );
        assert!(matches!(
            mover.announce(&missing).await,
            Err(Error::InterfaceMissing { .. })
        ));
        // Nothing to release or hold on an interface that is not there.
        mover.release(&missing).await.unwrap();
        assert!(!mover.holds(&missing).await.unwrap());

        let elsewhere = VipAddress::new(vip1, 24, "eth0").unwrap();
        let error = mover.acquire(&elsewhere, second).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "acquire {vip1}/24 on eth0: the address is already configured as {vip1}/32 on lo"
            )
        );
        // The host's own address, with another prefix length.
        let own = VipAddress::new(own, 32, "eth0").unwrap();
        let error = mover.acquire(&own, second).await.unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with(&format!("already configured as {}/24 on eth0", own.ip())),
            "{error}"
        );
        // …which release leaves alone.
        mover.release(&own).await.unwrap();
        assert!(mover
            .holds(&VipAddress::new(own.ip(), 24, "eth0").unwrap())
            .await
            .unwrap());

        let error = mover
            .acquire(
                &VipAddress::new(vip0, 24, "eth0").unwrap(),
                Duration::from_millis(900),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Lifetime { .. }), "{error:?}");
    })
    .await;
    Ok(())
}

/// The seed's pgpool commands, with the interface as a placeholder.
fn seed_commands() -> CommandMoverConfig {
    CommandMoverConfig {
        arping_cmd: Some("arping -U $_IP_$ -w 1 -I $_IF_$".into()),
        ..CommandMoverConfig::new(
            "ip addr add $_IP_$/24 dev $_IF_$ label $_IF_$:0",
            "ip addr del $_IP_$/24 dev $_IF_$",
        )
    }
}

#[tokio::test]
async fn command_mover_with_the_seed_commands_passes_the_conformance_suite() -> R {
    if !require_root_or_skip("command_mover_with_the_seed_commands_passes_the_conformance_suite") {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let report = in_host(&lab, "a", move || async move {
        let mover = CommandMover::new(seed_commands()).unwrap();
        pgha_vip::testing::address_mover(&mover, &vip).await
    })
    .await?;
    eprintln!("{report}");
    assert_eq!(report.skipped(), ["lifetime"], "{report}");
    Ok(())
}

#[tokio::test]
async fn command_mover_moves_the_address_and_its_arping_redirects_the_client() -> R {
    if !require_root_or_skip("command_mover_moves_the_address_and_its_arping_redirects_the_client")
    {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let ip = vip.ip();
    let on = |host: &'static str| {
        let vip = vip.clone();
        move || async move {
            let mover = CommandMover::new(seed_commands()).unwrap();
            mover.acquire(&vip, LEASE).await.unwrap();
            mover.announce(&vip).await.unwrap();
            assert!(mover.holds(&vip).await.unwrap(), "{host} holds it");
        }
    };
    let _a = support::service(&lab, "a")?;
    let _b = support::service(&lab, "b")?;
    in_host(&lab, "a", on("a")).await;
    assert!(reach(&lab, ip, "a", REACH_WITHIN).await.is_some());
    let vip_a = vip.clone();
    in_host(&lab, "a", move || async move {
        CommandMover::new(seed_commands())
            .unwrap()
            .release(&vip_a)
            .await
            .unwrap();
    })
    .await;
    in_host(&lab, "b", on("b")).await;
    assert_eq!(client_neighbour(&lab, ip), Some(mac(&lab, "b")));
    assert!(reach(&lab, ip, "b", REACH_WITHIN).await.is_some());
    Ok(())
}

#[tokio::test]
async fn without_an_announcement_the_client_keeps_sending_to_the_old_holder() -> R {
    // The control for the tests above: what gratuitous ARP saves clients.
    if !require_root_or_skip("without_an_announcement_the_client_keeps_sending_to_the_old_holder") {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let ip = vip.ip();
    let (_a, _b) = (support::service(&lab, "a")?, support::service(&lab, "b")?);
    let silently = |acquire: bool| {
        let vip = vip.clone();
        move || async move {
            let mover = NetlinkMover::new().unwrap();
            if acquire {
                mover.acquire(&vip, Duration::from_secs(30)).await.unwrap();
            } else {
                mover.release(&vip).await.unwrap();
            }
        }
    };
    in_host(&lab, "a", silently(true)).await;
    assert!(reach(&lab, ip, "a", REACH_WITHIN).await.is_some());
    in_host(&lab, "a", silently(false)).await;
    in_host(&lab, "b", silently(true)).await;
    assert!(
        reach(&lab, ip, "b", REACH_WITHIN).await.is_none(),
        "reached b without an announcement"
    );
    assert_eq!(client_neighbour(&lab, ip), Some(mac(&lab, "a")));
    Ok(())
}

#[tokio::test]
async fn an_ipv6_address_moves_and_the_neighbour_advertisement_redirects_the_client() -> R {
    if !require_root_or_skip(
        "an_ipv6_address_moves_and_the_neighbour_advertisement_redirects_the_client",
    ) {
        return Ok(());
    }
    let lab = lab()?;
    let ip: std::net::IpAddr = "fd00:198:18::100".parse().unwrap();
    let vip = VipAddress::new(ip, 64, "eth0").unwrap();
    lab.run(
        CLIENT,
        &[
            "ip",
            "addr",
            "add",
            "fd00:198:18::250/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    let mut a = Holder::start_with(&lab, "a", vip.clone()).await?;
    let mut b = Holder::start_with(&lab, "b", vip.clone()).await?;
    a.grant(LEASE, RENEW);
    a.wait_held(true).await;
    assert!(reach(&lab, ip, "a", Duration::from_secs(5)).await.is_some());
    assert_eq!(client_neighbour(&lab, ip), Some(mac(&lab, "a")));
    a.lose();
    a.wait_held(false).await;
    b.grant(LEASE, RENEW);
    b.wait_held(true).await;
    let deadline = StdInstant::now() + Duration::from_secs(1);
    while client_neighbour(&lab, ip) != Some(mac(&lab, "b")) {
        assert!(
            StdInstant::now() < deadline,
            "the client still has {:?}",
            client_neighbour(&lab, ip)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reach(&lab, ip, "b", REACH_WITHIN).await.is_some());
    Ok(())
}

/// One clean handover: `from` loses the lease, `to` is granted it; the
/// client, whose neighbour entry points at `from`, reaches `to`. Returns
/// the time from the lease changing hands to the client's answer.
async fn hand_over(
    lab: &NetLab,
    from: &mut Holder,
    to: &mut Holder,
    name: &'static str,
) -> Duration {
    let ip = vip(lab).ip();
    from.lose();
    from.wait_held(false).await;
    let changed = StdInstant::now();
    to.grant(LEASE, RENEW);
    let reached = reach(lab, ip, name, REACH_WITHIN)
        .await
        .unwrap_or_else(|| panic!("the client did not reach {name} within {REACH_WITHIN:?}"));
    reached - changed
}

#[tokio::test]
async fn the_address_follows_the_lease_and_gratuitous_arp_redirects_the_client() -> R {
    if !require_root_or_skip(
        "the_address_follows_the_lease_and_gratuitous_arp_redirects_the_client",
    ) {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let ip = vip.ip();
    let (mut a, mut b) = (
        Holder::start(&lab, "a").await?,
        Holder::start(&lab, "b").await?,
    );
    let (oa, ob) = Observer::a_and_b(&lab).await?;
    let sampler = Sampler::start(&oa, &ob, &vip);

    a.grant(LEASE, RENEW);
    a.wait_held(true).await;
    assert!(oa.holds(&vip).await && !ob.holds(&vip).await);
    assert!(reach(&lab, ip, "a", REACH_WITHIN).await.is_some());
    assert_eq!(client_neighbour(&lab, ip), Some(mac(&lab, "a")));
    // Held across several renewals (1 s lifetimes, 500 ms apart).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(oa.holds(&vip).await, "renewals keep the address");

    // A's lease is lost: released at once. B is granted it: the client's
    // neighbour entry, still A's, is corrected by B's gratuitous ARP
    // without the client sending anything.
    a.lose();
    a.wait_held(false).await;
    assert!(!oa.holds(&vip).await);
    b.grant(LEASE, RENEW);
    b.wait_held(true).await;
    let deadline = StdInstant::now() + Duration::from_secs(1);
    while client_neighbour(&lab, ip) != Some(mac(&lab, "b")) {
        assert!(
            StdInstant::now() < deadline,
            "the client still has {:?}",
            client_neighbour(&lab, ip)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reach(&lab, ip, "b", REACH_WITHIN).await.is_some());

    // And back, with the client asking all along.
    let took = hand_over(&lab, &mut b, &mut a, "a").await;
    eprintln!("b → a: the client reached a {took:?} after the lease changed hands");

    let (samples, two) = sampler.finish();
    assert!(samples > 100, "{samples} samples");
    assert_eq!(two, 0, "two-holder samples out of {samples}");
    Ok(())
}

/// A's keeper is killed while it holds the address: nothing releases it,
/// the kernel removes it when its lifetime runs out, before A's lease
/// ends; B, granted the lease when A's ends, takes over and the client
/// follows. Returns (address gone before the lease's end by, lease end →
/// client reaches B).
async fn killed_holder(lab: &NetLab, oa: &Observer, ob: &Observer) -> (Duration, Duration) {
    let vip = vip(lab);
    let ip = vip.ip();
    let mut a = Holder::start(lab, "a").await.unwrap();
    let mut b = Holder::start(lab, "b").await.unwrap();
    a.grant(LEASE, RENEW);
    a.wait_held(true).await;
    assert!(reach(lab, ip, "a", REACH_WITHIN).await.is_some());
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // kill -9: the keeper stops, nothing is released.
    let end = a.kill().expect("a's lease");
    assert!(oa.holds(&vip).await, "a killed keeper released nothing");
    while oa.holds(&vip).await {
        assert!(
            Instant::now() < end + Duration::from_secs(1),
            "still on a after its lease"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gone = Instant::now();
    assert!(
        gone <= end,
        "the address outlived the lease by {:?}",
        gone - end
    );

    // The watchdog elects B once A's lease has ended.
    tokio::time::sleep_until(end).await;
    let changed = StdInstant::now();
    b.grant(LEASE, RENEW);
    let reached = reach(lab, ip, "b", REACH_WITHIN)
        .await
        .expect("the client reaches b within 1 s");
    assert!(ob.holds(&vip).await);
    assert_eq!(client_neighbour(lab, ip), Some(mac(lab, "b")));
    b.lose();
    b.wait_held(false).await;
    (end - gone, reached - changed)
}

#[tokio::test]
async fn a_killed_holder_loses_the_address_by_its_lifetime_and_the_next_one_takes_over() -> R {
    if !require_root_or_skip(
        "a_killed_holder_loses_the_address_by_its_lifetime_and_the_next_one_takes_over",
    ) {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let (oa, ob) = Observer::a_and_b(&lab).await?;
    let sampler = Sampler::start(&oa, &ob, &vip);
    let (early, took) = killed_holder(&lab, &oa, &ob).await;
    eprintln!(
        "killed holder: address gone {early:?} before its lease ended; client on b {took:?} after"
    );
    let (samples, two) = sampler.finish();
    assert_eq!(two, 0, "two-holder samples out of {samples}");
    Ok(())
}

#[tokio::test]
async fn a_restarted_keeper_removes_a_copy_left_by_a_crash_before_anything_else() -> R {
    if !require_root_or_skip(
        "a_restarted_keeper_removes_a_copy_left_by_a_crash_before_anything_else",
    ) {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    // A crash left the address, forever (no lifetime).
    lab.run(
        "a",
        &[
            "ip",
            "addr",
            "add",
            &format!("{}/24", vip.ip()),
            "dev",
            "eth0",
        ],
    )?;
    let oa = Observer::on(&lab, "a").await?;
    assert!(oa.holds(&vip).await);
    let mut a = Holder::start(&lab, "a").await?;
    tokio::time::timeout(
        Duration::from_secs(5),
        a.status.wait_for(|s| s.releases == 1),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!oa.holds(&vip).await, "removed at start, without a lease");
    Ok(())
}

#[tokio::test]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn handover_times() -> R {
    if !require_root_or_skip("handover_times") {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let (oa, ob) = Observer::a_and_b(&lab).await?;
    let sampler = Sampler::start(&oa, &ob, &vip);

    let (mut a, mut b) = (
        Holder::start(&lab, "a").await?,
        Holder::start(&lab, "b").await?,
    );
    a.grant(LEASE, RENEW);
    a.wait_held(true).await;
    assert!(reach(&lab, vip.ip(), "a", REACH_WITHIN).await.is_some());
    let mut clean = Vec::new();
    for i in 0..10 {
        let took = if i % 2 == 0 {
            hand_over(&lab, &mut a, &mut b, "b").await
        } else {
            hand_over(&lab, &mut b, &mut a, "a").await
        };
        clean.push(took);
    }
    a.lose();
    b.lose();
    a.wait_held(false).await;
    b.wait_held(false).await;
    drop((a, b));

    let mut killed = Vec::new();
    let mut early = Vec::new();
    for _ in 0..10 {
        let (before_end, took) = killed_holder(&lab, &oa, &ob).await;
        early.push(before_end);
        killed.push(took);
    }
    let (samples, two) = sampler.finish();
    let (m, w) = median_worst(clean.clone());
    eprintln!("lease lost → granted to the other host → client reaches it, 10 runs: median {m:?}, worst {w:?}; {clean:?}");
    let (m, w) = median_worst(killed.clone());
    eprintln!("holder killed → its lease ends → other host granted → client reaches it, 10 runs: median {m:?}, worst {w:?}; {killed:?}");
    let (m, _) = median_worst(early.clone());
    eprintln!(
        "killed holder's address removed by the kernel before its lease ended by: median {m:?}, least {:?}",
        early.iter().min().unwrap()
    );
    eprintln!("two-holder samples: {two} of {samples}");
    assert_eq!(two, 0);
    Ok(())
}
