//! Probe views over the simulated network (paused clock): what
//! [`QuorumProbe`] tells each member's monitor when the members' own
//! probes of a PostgreSQL node disagree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pgha_core::{FailureReason, Health, HealthProbe, Lsn, NodeState, Observation, Role};
use pgha_watchdog::testing::{ScriptedProbe, SimCluster};
use pgha_watchdog::{MemberId, QuorumProbe, Timing};
use tokio::sync::mpsc;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_millis(1500);
const ROUND: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_millis(500);

fn pg0() -> NodeState {
    NodeState::new("pg0", Role::Primary, "198.18.0.10", 5432)
}

fn healthy(lsn: u64) -> Observation {
    Observation::Healthy(Health::primary(Lsn(lsn)))
}

fn failed() -> Observation {
    Observation::Failed {
        reason: FailureReason::ConnectRefused,
    }
}

/// Two hosts (1, 2) and a witness (3), each member's monitor probe a
/// [`QuorumProbe`] around a scripted local probe.
struct Setup {
    cluster: SimCluster,
    scripts: BTreeMap<MemberId, ScriptedProbe>,
    probes: BTreeMap<MemberId, QuorumProbe>,
}

async fn setup(views: [Observation; 3]) -> Setup {
    let cluster = SimCluster::start_with_witnesses(3, 1, Timing::default(), 7)
        .await
        .expect("start");
    let mut scripts = BTreeMap::new();
    let mut probes = BTreeMap::new();
    for (id, view) in (1..=3).zip(views) {
        let script = ScriptedProbe::default();
        script.set(&pg0().id, view);
        let member = cluster.member(id).expect("running");
        probes.insert(id, member.quorum_probe(Arc::new(script.clone()), WINDOW));
        scripts.insert(id, script);
    }
    Setup {
        cluster,
        scripts,
        probes,
    }
}

impl Setup {
    /// One probe round on every member (as their monitors would), then
    /// the rest of the round; returns what each monitor saw.
    async fn round(&self) -> BTreeMap<MemberId, Observation> {
        let mut seen = BTreeMap::new();
        for (id, probe) in &self.probes {
            seen.insert(*id, probe.probe(&pg0(), TIMEOUT).await);
        }
        tokio::time::sleep(ROUND).await;
        seen
    }
}

#[tokio::test(start_paused = true)]
async fn one_members_broken_link_to_the_primary_never_fails_it() {
    let s = setup([failed(), healthy(2), healthy(3)]).await;
    // The first round: member 1 has no peer views yet and nobody's
    // healthy view to go by, so it reports its own.
    s.round().await;
    for _ in 0..10 {
        let seen = s.round().await;
        assert!(
            seen[&1] == healthy(2) || seen[&1] == healthy(3),
            "member 1's monitor saw {:?}",
            seen[&1]
        );
        assert_eq!(seen[&2], healthy(2));
        assert_eq!(seen[&3], healthy(3));
    }
    s.cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn two_failed_views_fail_the_node_even_where_it_looks_healthy() {
    let s = setup([failed(), failed(), healthy(3)]).await;
    s.round().await;
    let seen = s.round().await;
    assert_eq!(seen[&1], failed());
    assert_eq!(seen[&2], failed());
    assert_eq!(seen[&3], failed(), "the witness is outvoted");
    // The tie left when member 2 sees it again is not a failure.
    s.scripts[&2].set(&pg0().id, healthy(2));
    s.round().await;
    let seen = s.round().await;
    assert!(
        matches!(seen[&1], Observation::Healthy(_)),
        "{:?}",
        seen[&1]
    );
    s.cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_one_member_sees_wakes_the_others_and_is_agreed_at_once() {
    let s = setup([healthy(1), healthy(2), healthy(3)]).await;
    let mut wakes = BTreeMap::new();
    for id in [1, 3] {
        let (tx, rx) = mpsc::unbounded_channel();
        s.probes[&id].set_wake(tx);
        wakes.insert(id, rx);
    }
    s.round().await;
    for wake in wakes.values_mut() {
        while wake.try_recv().is_ok() {}
    }
    // The primary crashes; member 2's probe notices first, by its
    // monitoring connection ending (the crash signature); the others
    // will only find the port closed.
    let crashed = Observation::Failed {
        reason: FailureReason::Crashed,
    };
    s.scripts[&2].set(&pg0().id, crashed.clone());
    s.scripts[&1].set(&pg0().id, failed());
    s.scripts[&3].set(&pg0().id, failed());
    let noticed = Instant::now();
    // Alone, it is told its peers' healthy view.
    let seen = s.probes[&2].probe(&pg0(), TIMEOUT).await;
    assert!(matches!(seen, Observation::Healthy(_)), "{seen:?}");
    for (id, wake) in &mut wakes {
        let woken = tokio::time::timeout(Duration::from_millis(50), wake.recv())
            .await
            .unwrap_or_else(|_| panic!("member {id} not woken"));
        assert_eq!(woken, Some(pg0().id));
    }
    // Two network hops of 1 ms: woken in milliseconds, not at the next
    // probe round.
    assert!(noticed.elapsed() <= Duration::from_millis(5));
    // The woken member probes, sees it failed too: agreed at once, and
    // its monitor gets the crash signature, on which pgha-core's policy
    // acts without waiting for a second failure.
    assert_eq!(s.probes[&1].probe(&pg0(), TIMEOUT).await, crashed);
    s.cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn views_older_than_the_contact_window_stop_counting() {
    let s = setup([healthy(1), failed(), failed()]).await;
    s.round().await;
    assert_eq!(s.round().await[&1], failed(), "outvoted while in contact");
    s.cluster.net.isolate(1, [2, 3]);
    let cut = Instant::now();
    let mut last = None;
    while cut.elapsed() <= WINDOW + ROUND {
        let seen = s.round().await;
        assert_eq!(seen[&2], failed(), "members 2 and 3 still agree");
        last = Some(seen[&1].clone());
    }
    assert_eq!(
        last,
        Some(healthy(1)),
        "alone, member 1 goes by its own view"
    );
    s.cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_overruns_its_deadline_counts_as_failed() {
    struct Hangs;
    #[async_trait::async_trait]
    impl HealthProbe for Hangs {
        async fn probe(&self, _node: &NodeState, _timeout: Duration) -> Observation {
            std::future::pending().await
        }
    }
    let s = setup([failed(), healthy(2), healthy(3)]).await;
    let hung = s
        .cluster
        .member(2)
        .expect("running")
        .quorum_probe(Arc::new(Hangs), WINDOW);
    s.round().await;
    let started = Instant::now();
    // Member 2's probe hangs; member 1's failed view and member 2's
    // timeout now agree.
    let seen = hung.probe(&pg0(), TIMEOUT).await;
    assert!(started.elapsed() < TIMEOUT + Duration::from_millis(50));
    assert_eq!(
        seen,
        Observation::Failed {
            reason: FailureReason::Timeout
        }
    );
    s.cluster.shutdown().await;
}
