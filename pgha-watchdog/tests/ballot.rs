//! A new leader reports its lease at once (no wait), so every vote it won
//! must come from a member that cannot still be vouching for the old
//! leader's lease. The two votes that could, forced here on the simulated
//! network and paused clock: the lease holder's own, asked by a follower
//! that campaigns at once; and that of a member restarted right after it
//! acknowledged the leader. (openraft 0.9.25 refuses both by itself too —
//! its leader refreshes its own vote, and a restart dates the stored vote
//! from the start — the `Ballot` makes pgha's lease not depend on that.)
//! In both, at no sampled instant (every millisecond) do two members hold
//! a valid lease, and the group leads again afterwards.

use std::time::Duration;

use pgha_watchdog::testing::SimCluster;
use pgha_watchdog::{Member, MemberId, Timing};
use tokio::time::Instant;

async fn lease_holder(cluster: &SimCluster) -> MemberId {
    loop {
        if let Some(id) = cluster.lease_holders(Instant::now()).first() {
            return *id;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Samples the lease holders every millisecond for `span`; panics on two.
async fn never_two_holders(cluster: &SimCluster, span: Duration, what: &str) -> Vec<MemberId> {
    let end = Instant::now() + span;
    let mut seen = Vec::new();
    while Instant::now() < end {
        let holders = cluster.lease_holders(Instant::now());
        assert!(holders.len() <= 1, "{what}: two lease holders {holders:?}");
        if let Some(h) = holders.first() {
            if seen.last() != Some(h) {
                seen.push(*h);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    seen
}

fn member(cluster: &SimCluster, id: MemberId) -> &Member {
    cluster.member(id).expect("member runs")
}

/// `candidate` campaigns at once; for 3 s never two lease holders, and
/// someone leads again.
async fn campaign_and_watch(cluster: SimCluster, candidate: MemberId, what: &str) {
    member(&cluster, candidate)
        .raft()
        .trigger()
        .elect()
        .await
        .expect("campaign starts");
    let seen = never_two_holders(&cluster, Duration::from_secs(3), what).await;
    assert!(!seen.is_empty(), "{what}: someone leads again");
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_lease_holder_grants_no_vote_to_a_forced_campaign() {
    let cluster = SimCluster::start(3, Timing::default(), 21)
        .await
        .expect("cluster starts");
    let leader = lease_holder(&cluster).await;
    // Longer than the follower lease: a leader whose own vote were not
    // refreshed while it leads would grant a higher term its vote.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.lease_holders(Instant::now()), vec![leader]);
    let candidate = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    campaign_and_watch(cluster, candidate, "forced campaign").await;
}

#[tokio::test(start_paused = true)]
async fn a_member_restarted_after_acknowledging_the_leader_grants_no_vote_at_once() {
    let mut cluster = SimCluster::start(3, Timing::default(), 22)
        .await
        .expect("cluster starts");
    let leader = lease_holder(&cluster).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut others = cluster.ids().into_iter().filter(|id| *id != leader);
    let (candidate, voter) = (
        others.next().expect("a follower"),
        others.next().expect("another"),
    );
    // The candidate hears nothing from the leader; the voter acknowledged
    // it a moment ago, crashes and is back at once, and the candidate
    // campaigns right then.
    cluster.net.cut(leader, candidate);
    tokio::time::sleep(Duration::from_millis(50)).await;
    cluster.crash(voter).await;
    cluster.restart(voter).await.expect("voter restarts");
    campaign_and_watch(cluster, candidate, "restarted voter").await;
}
