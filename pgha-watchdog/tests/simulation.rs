//! Seeded fault histories over the simulated network on tokio's paused
//! clock. Invariants, checked every simulated millisecond:
//!
//! * never two members hold a valid lease at once (two VIP holders, two
//!   monitors failing over);
//! * the committed PostgreSQL term a member publishes never decreases, even
//!   across its crash and restart (a stale primary is never routed to
//!   again);
//! * a member cut off from a quorum for longer than the lease holds no
//!   lease and no permission to act (a minority side never acts);
//! * a witness never holds a lease or permission;
//! * after the network heals, every member publishes the same record;
//! * a lease holder's monitor sees a PostgreSQL node failed only when at
//!   least two members' own probes reported it failed within the contact
//!   window — with one member's link to the primary broken and the others
//!   seeing it healthy, never (histories with scripted probe views).
//!
//! `PGHA_SIM_SEEDS=n` runs more histories; `PGHA_SIM_SEED=s` replays one.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::ServerState;
use pgha_core::Coordinator;
use pgha_watchdog::testing::SimCluster;
use pgha_watchdog::{MemberId, RecordChange, Timing};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

const MEMBERS: u64 = 3;
const STEPS: usize = 12;

#[path = "simulation/probe_views.rs"]
mod probe_views;

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
    fn new(timing: Timing) -> Self {
        Checker {
            timing,
            terms: BTreeMap::new(),
            minority_since: BTreeMap::new(),
        }
    }

    fn check(&mut self, cluster: &SimCluster, seed: u64) {
        let now = Instant::now();
        let holders = cluster.lease_holders(now);
        assert!(
            holders.len() <= 1,
            "seed {seed}: two valid leases at once: {holders:?}"
        );
        for member in cluster.running().filter(|m| m.is_witness()) {
            let id = member.id();
            assert!(
                !holders.contains(&id),
                "seed {seed}: witness {id} holds a lease"
            );
            assert!(
                !*member.coordinator().permission().borrow(),
                "seed {seed}: witness {id} may act"
            );
        }
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
                let acts = cluster
                    .member(id)
                    .is_some_and(|m| *m.coordinator().permission().borrow());
                assert!(
                    !acts,
                    "seed {seed}: member {id} cut off since {:?} may act",
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

async fn history(seed: u64, witnesses: u64) {
    let timing = Timing::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cluster = SimCluster::start_with_witnesses(MEMBERS, witnesses, timing.clone(), seed)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: start: {e}"));
    let mut checker = Checker::new(timing);
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
                        let change = RecordChange::promote(term, format!("node{}", term % 3));
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
        history(seed, 0).await;
    }
}

#[tokio::test(start_paused = true)]
async fn two_hosts_and_a_witness_keep_one_lease_and_the_witness_never_holds_it() {
    for seed in seeds() {
        history(seed, 1).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_isolated_leader_loses_its_lease_before_a_new_one_begins() {
    let timing = Timing::default();
    let mut cluster = SimCluster::start(3, timing.clone(), 0)
        .await
        .expect("start");
    let mut checker = Checker::new(timing.clone());
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

#[tokio::test(start_paused = true)]
async fn with_a_witness_the_other_host_takes_over_and_the_witness_never_holds_a_lease() {
    let timing = Timing::default();
    let mut cluster = SimCluster::start_with_witnesses(3, 1, timing.clone(), 0)
        .await
        .expect("start");
    let mut checker = Checker::new(timing);
    checker.run_for(&cluster, Duration::from_secs(3), 0).await;
    let first = cluster.lease_holders(Instant::now());
    assert!(first == [1] || first == [2], "a host leads: {first:?}");
    let (host, other) = (first[0], 3 - first[0]);
    // The leading host's pgha dies: the other host and the witness are a
    // majority, and only the host may lead it.
    cluster.crash(host).await;
    checker.run_for(&cluster, Duration::from_secs(3), 0).await;
    assert_eq!(cluster.lease_holders(Instant::now()), [other]);
    // Both hosts down: the witness alone never leads.
    cluster.crash(other).await;
    checker.run_for(&cluster, Duration::from_secs(5), 0).await;
    assert!(cluster.lease_holders(Instant::now()).is_empty());
    assert_ne!(state(&cluster, 3), Some(ServerState::Leader));
    // The first host comes back without the entries the other committed
    // with the witness: only the witness can hand them over, then the host
    // leads.
    cluster.restart(host).await.expect("restart");
    let restarted = Instant::now();
    while cluster.lease_holders(Instant::now()) != [host] {
        checker.check(&cluster, 0);
        assert!(
            restarted.elapsed() < Duration::from_secs(8),
            "the returning host never led"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // On the paused clock: the witness's next campaign (≤ 4 × 600 ms),
    // the host's election timeout, the new leader's wait.
    eprintln!("returning host leads after {:?}", restarted.elapsed());
    assert_eq!(state(&cluster, host), Some(ServerState::Leader));
    cluster.shutdown().await;
}

fn state(cluster: &SimCluster, id: MemberId) -> Option<ServerState> {
    let member = cluster.member(id)?;
    let state = member.raft().metrics().borrow().state;
    Some(state)
}

#[tokio::test(start_paused = true)]
async fn a_witness_cut_off_and_back_does_not_depose_the_leader() {
    let timing = Timing::default();
    let cluster = SimCluster::start_with_witnesses(3, 1, timing.clone(), 0)
        .await
        .expect("start");
    let mut checker = Checker::new(timing);
    checker.run_for(&cluster, Duration::from_secs(3), 0).await;
    let holder = cluster.lease_holders(Instant::now());
    assert_eq!(holder.len(), 1);
    let raft_term = |id| {
        let member = cluster.member(id).expect("running");
        let term = member.raft().metrics().borrow().current_term;
        term
    };
    let term = raft_term(holder[0]);
    cluster.net.isolate(3, cluster.ids());
    checker.run_for(&cluster, Duration::from_secs(10), 0).await;
    cluster.net.heal();
    let healed = Instant::now();
    while healed.elapsed() < Duration::from_secs(3) {
        checker.check(&cluster, 0);
        assert_eq!(
            cluster.lease_holders(Instant::now()),
            holder,
            "the lease moved"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(raft_term(holder[0]), term, "the leader was deposed");
    assert_eq!(raft_term(3), term, "the witness campaigned");
    cluster.shutdown().await;
}
