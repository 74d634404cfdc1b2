//! Histories with scripted probe views of one PostgreSQL node: every
//! running member's monitor probes it through its `QuorumProbe` each
//! round, while the network and members fail as in the other histories.

use std::sync::Arc;

use pgha_core::{FailureReason, Health, HealthProbe, Lsn, NodeState, Observation, Role};
use pgha_watchdog::testing::ScriptedProbe;

use super::*;

const WINDOW: Duration = Duration::from_millis(1000);
const ROUND: Duration = Duration::from_millis(250);
const TIMEOUT: Duration = Duration::from_millis(100);
/// A view counted at `t` arrived within `WINDOW`; it was recorded by its
/// member's probe at most this long before it arrived (the sender may wait
/// out an earlier call's deadline, then two 1 ms hops).
const SEND_SLACK: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Views {
    /// Member 1's link to the primary is broken; the others see it.
    OneBrokenLink,
    /// Members' views flip at random.
    Random,
}

fn pg0() -> NodeState {
    NodeState::new("pg0", Role::Primary, "198.18.0.10", 5432)
}

fn healthy(member: MemberId) -> Observation {
    Observation::Healthy(Health::primary(Lsn(member)))
}

fn failed() -> Observation {
    Observation::Failed {
        reason: FailureReason::Timeout,
    }
}

struct World {
    cluster: SimCluster,
    checker: Checker,
    scripts: BTreeMap<MemberId, ScriptedProbe>,
    seed: u64,
    /// Rounds in which a lease holder's monitor saw the node failed.
    failed_on_holder: usize,
}

impl World {
    /// One probe round on every running member, as their monitors would.
    /// Returns what the lease holder's monitor saw, if there is one.
    async fn round(&mut self) -> Option<Observation> {
        let node = pg0();
        let mut on_holder = None;
        for id in self.cluster.ids() {
            let Some(member) = self.cluster.member(id) else {
                continue;
            };
            let probe = member.quorum_probe(Arc::new(self.scripts[&id].clone()), WINDOW);
            let seen = probe.probe(&node, TIMEOUT).await;
            let now = Instant::now();
            if !self.cluster.lease_holders(now).contains(&id) {
                continue;
            }
            if matches!(seen, Observation::Failed { .. }) {
                let recent: Vec<_> = self
                    .scripts
                    .iter()
                    .filter(|(_, s)| {
                        s.last_failed(&node.id)
                            .is_some_and(|at| at + WINDOW + SEND_SLACK >= now)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                assert!(
                    recent.len() >= 2,
                    "seed {}: lease holder {id} saw the node failed; only {recent:?} saw it so",
                    self.seed
                );
                self.failed_on_holder += 1;
            }
            on_holder = Some(seen);
        }
        on_holder
    }

    /// Runs for `span`, checking the lease every millisecond and probing
    /// every round; returns what the lease holder saw last.
    async fn run_for(&mut self, span: Duration) -> Option<Observation> {
        let end = Instant::now() + span;
        let mut next_round = Instant::now();
        let mut last = None;
        while Instant::now() < end {
            self.checker.check(&self.cluster, self.seed);
            if Instant::now() >= next_round {
                next_round += ROUND;
                if let Some(seen) = self.round().await {
                    last = Some(seen);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        last
    }
}

async fn probe_history(seed: u64, views: Views) -> usize {
    let timing = Timing::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let cluster = SimCluster::start_with_witnesses(MEMBERS, 1, timing.clone(), seed)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: start: {e}"));
    let ids = cluster.ids();
    let node = pg0().id;
    let mut scripts = BTreeMap::new();
    for &id in &ids {
        let script = ScriptedProbe::default();
        script.set(&node, healthy(id));
        scripts.insert(id, script);
    }
    if views == Views::OneBrokenLink {
        scripts[&1].set(&node, failed());
    }
    let mut world = World {
        cluster,
        checker: Checker::new(timing),
        scripts,
        seed,
        failed_on_holder: 0,
    };
    for _ in 0..STEPS {
        let who = ids[rng.random_range(0..ids.len())];
        let net = &world.cluster.net;
        match rng.random_range(0..8) {
            0 => net.isolate(who, ids.iter().copied()),
            1 => net.cut(who, ids[rng.random_range(0..ids.len())]),
            2 => net.heal(),
            3 => net.drop_calls(0.2),
            4 => world.cluster.crash(who).await,
            5 => {
                if let Err(e) = world.cluster.restart(who).await {
                    panic!("seed {seed}: restart {who}: {e}");
                }
            }
            _ if views == Views::Random => {
                let view = match rng.random_bool(0.5) {
                    true => failed(),
                    false => healthy(who),
                };
                world.scripts[&who].set(&node, view);
            }
            _ => {}
        }
        let span = Duration::from_millis(rng.random_range(200..2000));
        world.run_for(span).await;
    }
    // Healed, every member running: the cluster decides on everyone's
    // views — the broken link is outvoted; a node all see failed is failed.
    world.cluster.net.heal();
    for &id in &ids {
        if let Err(e) = world.cluster.restart(id).await {
            panic!("seed {seed}: restart {id}: {e}");
        }
    }
    let expected = match views {
        Views::OneBrokenLink => healthy(2),
        Views::Random => {
            for script in world.scripts.values() {
                script.set(&node, failed());
            }
            failed()
        }
    };
    let seen = world.run_for(Duration::from_secs(4)).await;
    match (views, seen) {
        (Views::OneBrokenLink, Some(Observation::Healthy(_))) => {}
        (Views::Random, Some(seen)) if seen == expected => {}
        (_, seen) => panic!("seed {seed}: after heal the lease holder saw {seen:?}"),
    }
    world.cluster.shutdown().await;
    world.failed_on_holder
}

#[tokio::test(start_paused = true)]
async fn one_members_broken_link_never_fails_the_primary_on_a_lease_holder() {
    for seed in seeds() {
        let failed = probe_history(seed, Views::OneBrokenLink).await;
        assert_eq!(failed, 0, "seed {seed}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_holder_sees_a_failure_only_when_two_members_saw_it() {
    for seed in seeds() {
        let failed = probe_history(seed, Views::Random).await;
        // The healed end alone makes the holder see it failed.
        assert!(failed > 0, "seed {seed}: the invariant was never exercised");
    }
}
