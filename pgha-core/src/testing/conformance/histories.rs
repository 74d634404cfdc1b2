//! Seeded random event histories for the [`FailoverPolicy`](crate::FailoverPolicy)
//! suite: a starting cluster and the events that happen to it, replayable
//! from one seed.
//!
//! `pgha-core/tests/failover_invariants.rs` generates the same kinds of
//! events with proptest (which shrinks a failing history); this generator
//! needs no dependency, so plugin authors get it with the `testing`
//! feature alone.

use std::time::Duration;

use crate::{
    Action, Command, Event, FailureReason, Health, Lsn, NodeId, NodeState, Observation, Role,
    Topology,
};

/// SplitMix64: small, fast, and the same sequence everywhere for a seed.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// One generated history in progress: the nodes, and their WAL positions
/// so far (they only move forward, as on a real cluster).
pub(super) struct History {
    names: Vec<NodeId>,
    lsns: Vec<u64>,
    step: u64,
    rng: Rng,
}

/// How many events a history has at most.
const MAX_STEPS: u64 = 60;

impl History {
    /// A cluster of 2 to `names.len()` of `names` (the first is the
    /// primary), with random priorities and WAL positions, gated behind a
    /// coordinator one time in four.
    pub(super) fn start(names: &[&str], seed: u64) -> (Self, Topology, u64) {
        let mut rng = Rng::new(seed);
        let count = 2 + rng.index(names.len().saturating_sub(1));
        let names: Vec<NodeId> = names.iter().take(count).map(|n| NodeId::new(*n)).collect();
        let lsns: Vec<u64> = names.iter().map(|_| 1000 + rng.below(2000)).collect();
        let nodes = names.iter().zip(&lsns).enumerate().map(|(i, (id, lsn))| {
            let role = if i == 0 { Role::Primary } else { Role::Standby };
            NodeState::new(id.clone(), role, format!("10.0.0.{}", i + 1), 5432)
                .with_priority(rng.below(3) as u32)
                .with_lsn(Lsn(*lsn))
        });
        let mut topology = Topology::new(nodes.collect::<Vec<_>>());
        if rng.below(4) == 0 {
            topology = topology.gated();
        }
        let steps = 1 + rng.below(MAX_STEPS);
        let history = History {
            names,
            lsns,
            step: 0,
            rng,
        };
        (history, topology, steps)
    }

    /// The next event, 100 ms after the previous one. `last` is what the
    /// previous event led to: one of those actions may fail, as an
    /// executor would report it.
    pub(super) fn next_event(&mut self, last: &[Action]) -> Event {
        self.step += 1;
        let at = Duration::from_millis(100 * self.step);
        let rng = &mut self.rng;
        let node = rng.index(self.names.len());
        let id = self.names[node].clone();
        let timeline = Some(1 + rng.below(2) as u32);
        let observed = |observation| Event::Observed {
            node: id.clone(),
            at,
            observation,
        };
        let command = |command| Event::Command { at, command };
        // Weights as in failover_invariants.rs: mostly probes, some noise.
        match rng.below(24) {
            0..=5 => {
                let reasons = [
                    FailureReason::ConnectRefused,
                    FailureReason::Timeout,
                    FailureReason::ConnectionLost,
                    FailureReason::Query,
                    FailureReason::Crashed,
                ];
                let reason = reasons[rng.index(reasons.len())];
                observed(Observation::Failed { reason })
            }
            6..=10 => {
                self.lsns[node] += rng.below(200);
                let health = Health::standby(Lsn(self.lsns[node]));
                observed(Observation::Healthy(Health { timeline, ..health }))
            }
            11..=12 => {
                self.lsns[node] += rng.below(200);
                let health = Health::primary(Lsn(self.lsns[node]));
                observed(Observation::Healthy(Health { timeline, ..health }))
            }
            13..=14 => {
                let states = ["57P01", "57P02", "08006", "40001"];
                Event::SessionHint {
                    node: id.clone(),
                    at,
                    sqlstate: states[rng.index(states.len())].to_owned(),
                }
            }
            15 => command(Command::Promote { node: id.clone() }),
            16 => command(Command::Switchover {
                target: rng.coin().then(|| id.clone()),
            }),
            17 => command(Command::Attach { node: id.clone() }),
            18 => command(Command::Detach { node: id.clone() }),
            19 => command(Command::Maintenance {
                node: id.clone(),
                enabled: rng.coin(),
            }),
            20 => Event::Permission {
                at,
                granted: rng.coin(),
            },
            _ if last.is_empty() => Event::Permission { at, granted: true },
            _ => Event::ActionFailed {
                at,
                action: last[rng.index(last.len())].clone(),
                error: "generated failure".into(),
            },
        }
    }
}
