//! ARP probes between two hosts in network namespaces on one bridge
//! (pgha-core's `NetLab`), and a new leader that takes the address as soon
//! as nobody answers for it. Needs root; skips loudly outside CI, fails in
//! CI.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

mod support;

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::{require_root_or_skip, HarnessError, NetLab};
use pgha_vip::{
    AddressMover, HandoverConfig, KeeperConfig, KeeperStatus, LinkProbe, NetlinkMover, VipAddress,
    VipKeeper,
};
use support::{vip, Observer, Sampler};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

type R = Result<(), HarnessError>;

const LISTEN: Duration = Duration::from_millis(100);

fn lab() -> Result<NetLab, HarnessError> {
    NetLab::builder().hosts(["a", "b"]).build()
}

async fn probe(on: &Observer, vip: &VipAddress) -> LinkProbe {
    on.mover.probe_link(vip, LISTEN).await.unwrap()
}

#[tokio::test]
async fn a_probe_is_answered_while_another_host_has_the_address_and_not_after() -> R {
    if !require_root_or_skip("a_probe_is_answered_while_another_host_has_the_address_and_not_after")
    {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let (oa, ob) = Observer::a_and_b(&lab).await?;
    assert_eq!(
        probe(&ob, &vip).await,
        LinkProbe::Silent,
        "nobody has it yet"
    );

    oa.mover
        .acquire(&vip, Duration::from_secs(30))
        .await
        .unwrap();
    // No announcement: the answer is the kernel's, to the probe itself.
    assert_eq!(probe(&ob, &vip).await, LinkProbe::Answered);
    assert_eq!(probe(&ob, &vip).await, LinkProbe::Answered, "every time");
    // The holder's own copy is no answer to its own probe.
    assert_eq!(probe(&oa, &vip).await, LinkProbe::Silent);

    oa.mover.release(&vip).await.unwrap();
    assert_eq!(probe(&ob, &vip).await, LinkProbe::Silent);

    // An IPv6 address: no probe yet, so no claim either way.
    let v6 = VipAddress::new(
        "fd00:198:18::100".parse::<std::net::IpAddr>().unwrap(),
        64,
        "eth0",
    )
    .unwrap();
    assert_eq!(probe(&ob, &v6).await, LinkProbe::CannotTell);
    Ok(())
}

/// B's keeper on `follow_leader_lease` (probing, with a wait far longer
/// than the test) and the lease it follows; its status.
async fn taker(
    lab: &NetLab,
    vip: VipAddress,
) -> Result<
    (
        watch::Sender<Option<Instant>>,
        watch::Receiver<KeeperStatus>,
        pgha_core::testing::NetnsTask<()>,
    ),
    HarnessError,
> {
    let (lease, lease_rx) = watch::channel(None);
    let (status_tx, status_rx) = oneshot::channel();
    let task = lab.spawn("b", move || async move {
        let mover: Arc<dyn AddressMover> = Arc::new(NetlinkMover::new().unwrap());
        let config = HandoverConfig {
            wait: Duration::from_secs(600),
            ..HandoverConfig::default()
        };
        let address_lease =
            pgha_vip::follow_leader_lease(lease_rx, config, Arc::clone(&mover), vip.clone());
        let keeper = VipKeeper::new(mover, vip).with_config(KeeperConfig {
            margin: Duration::ZERO,
            ..KeeperConfig::default()
        });
        let _ = status_tx.send(keeper.status());
        keeper.run(address_lease, std::future::pending()).await;
    })?;
    Ok((lease, status_rx.await.unwrap(), task))
}

#[tokio::test]
async fn a_new_leader_takes_the_address_once_the_old_holders_copy_is_gone_not_before() -> R {
    if !require_root_or_skip(
        "a_new_leader_takes_the_address_once_the_old_holders_copy_is_gone_not_before",
    ) {
        return Ok(());
    }
    let lab = lab()?;
    let vip = vip(&lab);
    let (oa, ob) = Observer::a_and_b(&lab).await?;
    let sampler = Sampler::start(&oa, &ob, &vip);
    // A's pgha died holding the address: a 3 s kernel lifetime nobody
    // renews or releases.
    oa.mover
        .acquire(&vip, Duration::from_secs(3))
        .await
        .unwrap();

    // B leads from now on (its lease renewed every 100 ms), with a wait of
    // 10 minutes: only the probes can bring it the address in this test.
    let (lease, mut status, _task) = taker(&lab, vip.clone()).await?;
    let renewer = tokio::spawn(async move {
        loop {
            lease.send_replace(Some(Instant::now() + Duration::from_millis(400)));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // While A's copy is there, B's probes are answered: B does not take
    // it. B is looked at first: A's copy, once gone, never comes back, so
    // B holding before A is seen still holding means both did at once.
    let mut looks = 0;
    loop {
        let b = ob.holds(&vip).await;
        if !oa.holds(&vip).await {
            break;
        }
        assert!(!b, "b took the address while a still had it");
        looks += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(looks > 10, "a held it for a while ({looks} looks)");
    // Gone from A (the kernel's lifetime): B takes it, long before its
    // 10-minute wait.
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.held))
        .await
        .expect("b took the address once a's was gone")
        .unwrap();
    assert!(ob.holds(&vip).await && !oa.holds(&vip).await);
    renewer.abort();
    let (samples, two) = sampler.finish();
    assert!(samples > 50, "{samples} samples");
    assert_eq!(two, 0, "two-holder samples out of {samples}");
    Ok(())
}
