//! Seeded fault histories over the simulated network on tokio's paused
//! clock. Invariants, checked every simulated millisecond:
//!
//! * never two members hold a valid lease at once (two VIP holders, two
//!   monitors failing over);
//! * the committed PostgreSQL term a member publishes never decreases, even
//!   across its crash and restart (a stale primary is never routed to
//!   again);
//! * a member cut off from a quorum for longer than the lease holds no
//!   lease (a minority side never acts);
//! * after the network heals, every member publishes the same record.
//!
//! `PGHA_SIM_SEEDS=n` runs more histories; `PGHA_SIM_SEED=s` replays one.

use std::collections::BTreeMap;
use std::time::Duration;

use pgha_watchdog::testing::SimCluster;
use pgha_watchdog::{MemberId, RecordChange, Timing};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

const MEMBERS: u64 = 3;
const STEPS: usize = 12;

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("PGHA_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let n = std::env::var("PGHA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    (1..=n).collect()
}

struct Checker {
    timing: Timing,
    terms: BTreeMap<MemberId, u64>,
    /// Since when each member has been without a quorum of links.
    minority_since: BTreeMap<MemberId, Instant>,
}

impl Checker {
    fn check(&mut self, cluster: &SimCluster, seed: u64) {
        let now = Instant::now();
        let holders = cluster.lease_holders(now);
        assert!(
            holders.len() <= 1,
            "seed {seed}: two valid leases at once: {holders:?}"
        );
        for member in cluster.running() {
            let term = member.record().borrow().term;
            let seen = self.terms.entry(member.id()).or_insert(0);
            assert!(
                term >= *seen,
                "seed {seed}: member {} term {seen} -> {term}",
                member.id()
            );
            *seen = term;
        }
        let ids = cluster.ids();
        for &id in &ids {
            let links = ids
                .iter()
                .filter(|&&o| o == id || cluster.net.connected(id, o))
                .count();
            if links as u64 * 2 > MEMBERS {
                self.minority_since.remove(&id);
                continue;
            }
            let since = *self.minority_since.entry(id).or_insert(now);
            if now >= since + self.timing.lease {
                assert!(
                    !holders.contains(&id),
                    "seed {seed}: member {id} cut off since {:?} still holds a lease",
                    now - since
                );
            }
        }
    }

    /// Runs for `span` of simulated time, checking every millisecond.
    async fn run_for(&mut self, cluster: &SimCluster, span: Duration, seed: u64) {
        let end = Instant::now() + span;
        while Instant::now() < end {
            self.check(cluster, seed);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn history(seed: u64) {
    let timing = Timing::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cluster = SimCluster::start(MEMBERS, timing.clone(), seed)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: start: {e}"));
    let mut checker = Checker {
        timing,
        terms: BTreeMap::new(),
        minority_since: BTreeMap::new(),
    };
    let ids = cluster.ids();
    for _ in 0..STEPS {
        let who = ids[rng.random_range(0..ids.len())];
        match rng.random_range(0..7) {
            0 => cluster.net.isolate(who, ids.iter().copied()),
            1 => cluster.net.cut(who, ids[rng.random_range(0..ids.len())]),
            2 => cluster.net.heal(),
            3 => cluster.net.drop_calls(0.2),
            4 => cluster.crash(who).await,
            5 => {
                if let Err(e) = cluster.restart(who).await {
                    panic!("seed {seed}: restart {who}: {e}");
                }
            }
            _ => {
                let now = Instant::now();
                if let Some(&holder) = cluster.lease_holders(now).first() {
                    if let Some(member) = cluster.member(holder) {
                        let term = member.record().borrow().term + 1;
                        let change = RecordChange::Promote {
                            term,
                            primary: format!("node{}", term % 3).into(),
                        };
                        // A cut may keep it from committing; not waited for long.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(2), member.propose(change))
                                .await;
                    }
                }
            }
        }
        let span = Duration::from_millis(rng.random_range(50..2000));
        checker.run_for(&cluster, span, seed).await;
    }
    cluster.net.heal();
    for id in ids.clone() {
        if let Err(e) = cluster.restart(id).await {
            panic!("seed {seed}: restart {id}: {e}");
        }
    }
    checker
        .run_for(&cluster, Duration::from_secs(5), seed)
        .await;
    assert_eq!(
        cluster.lease_holders(Instant::now()).len(),
        1,
        "seed {seed}: no leader after heal"
    );
    let records: Vec<_> = cluster
        .running()
        .map(|m| m.record().borrow().clone())
        .collect();
    assert!(
        records.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: records differ after heal: {records:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn seeded_fault_histories_keep_one_lease_and_a_rising_term() {
    for seed in seeds() {
        history(seed).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_isolated_leader_loses_its_lease_before_a_new_one_begins() {
    let timing = Timing::default();
    let mut cluster = SimCluster::start(3, timing.clone(), 0)
        .await
        .expect("start");
    let mut checker = Checker {
        timing: timing.clone(),
        terms: BTreeMap::new(),
        minority_since: BTreeMap::new(),
    };
    checker.run_for(&cluster, Duration::from_secs(3), 0).await;
    let old = cluster.lease_holders(Instant::now());
    assert_eq!(old.len(), 1, "a lease holder after 3 s");
    let old = old[0];
    let cut_at = Instant::now();
    cluster.net.isolate(old, cluster.ids());
    let mut lost_at = None;
    let mut new_at = None;
    while new_at.is_none() {
        checker.check(&cluster, 0);
        let now = Instant::now();
        let holders = cluster.lease_holders(now);
        if lost_at.is_none() && !holders.contains(&old) {
            lost_at = Some(now);
        }
        if holders.iter().any(|h| *h != old) {
            new_at = Some(now);
        }
        assert!(
            now - cut_at < Duration::from_secs(10),
            "no new lease holder"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (lost, new) = (
        lost_at.expect("lost") - cut_at,
        new_at.expect("new") - cut_at,
    );
    // Exact on the paused clock: the old lease ends within one lease of the
    // cut, the new one starts only after the new leader's wait.
    assert!(
        lost <= timing.lease,
        "old lease held {lost:?} after the cut"
    );
    assert!(
        new >= lost + timing.lease_margin,
        "new lease at {new:?}, old lost at {lost:?}"
    );
    tracing::info!(?lost, ?new, "isolated leader");
    // A new lease within the budget for moving the VIP.
    assert!(
        new <= Duration::from_secs(2),
        "new lease only {new:?} after the cut"
    );
    cluster.crash(old).await;
    cluster.shutdown().await;
}
