//! A custom [`FailoverPolicy`], checked by pgha's conformance suite.
//!
//! `NeverPromoteDr` is [`DefaultPolicy`] with one rule on top: a node whose
//! name starts with `dr-` (a disaster-recovery site, far away) is never
//! promoted automatically; only an operator naming it promotes it
//! (`pgha-ctl promote dr-…`). Where the default would have promoted it, the
//! policy reports that no standby can be promoted and takes the failed
//! primary out of routing, as the default does when no standby qualifies.
//!
//! ```text
//! cargo run -p pgha --example custom_policy            # 2000 histories, seed 1
//! cargo run -p pgha --example custom_policy -- 10000 42
//! ```
//!
//! `main` runs `pgha_core::testing::conformance::failover_policy_on` over
//! seeded random histories of a cluster with `dr-` nodes, prints the report
//! and exits with 1 if a check was violated. Use the policy in a monitor with
//! `ClusterMonitor::builder(topology).policy(NeverPromoteDr::default())`;
//! `examples/tests/embedding_pg.rs` does, on real PostgreSQL servers.
#![allow(clippy::print_stdout)] // an example program: printing is its output

use std::process::ExitCode;
use std::sync::Arc;

use pgha_core::testing::conformance::{self, Report};
use pgha_core::{Action, Command, DefaultPolicy, Event, FailoverPolicy, NodeId, Status, Topology};

/// [`DefaultPolicy`], except that `dr-` nodes are promoted only by hand.
#[derive(Debug, Default)]
pub struct NeverPromoteDr(pub DefaultPolicy);

impl FailoverPolicy for NeverPromoteDr {
    fn decide(&self, topology: &Topology, event: &Event) -> Vec<Action> {
        let actions = self.0.decide(topology, event);
        let vetoed = actions.iter().any(|action| match action {
            Action::Promote { node, .. } => node.as_str().starts_with("dr-") && !named(event, node),
            _ => false,
        });
        if !vetoed {
            return actions;
        }
        let failed = topology.primary_id().cloned();
        let mut instead = vec![Action::NoPromotionCandidate { failed }];
        if let Some(primary) = topology.primary() {
            // A primary that failed stays out of routing until it is back.
            if primary.status == Status::Up && primary.consecutive_failures > 0 {
                instead.push(Action::Detach {
                    node: primary.id.clone(),
                });
            }
        }
        instead
    }

    fn name(&self) -> &str {
        "never-promote-dr"
    }
}

/// Whether an operator asked for `node` by name.
fn named(event: &Event, node: &NodeId) -> bool {
    matches!(event, Event::Command { command: Command::Promote { node: asked }
        | Command::Switchover { target: Some(asked) }, .. } if asked == node)
}

/// The conformance suite on clusters of `main`, `dr-site`, `standby`, `dr-2`.
pub fn check(histories: usize, seed: u64) -> Report {
    let names = ["main", "dr-site", "standby", "dr-2"];
    conformance::failover_policy_on(Arc::new(NeverPromoteDr::default()), &names, histories, seed)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let histories = args.next().unwrap_or(Ok(2000));
    let seed = args.next().unwrap_or(Ok(1));
    let (Ok(histories), Ok(seed)) = (histories, seed) else {
        eprintln!("usage: custom_policy [HISTORIES [SEED]]");
        return ExitCode::from(2);
    };
    let report = check(histories as usize, seed);
    println!("{report}");
    if report.violated().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
