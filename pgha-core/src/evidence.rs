//! Who is primary when no durable term says so: the nodes' own evidence.
//!
//! A pgha started without its state file must not take the configured
//! node order on trust: after a failover the configured primary may be a
//! former primary, running writable again on an older timeline. The
//! writable node on the highest timeline whose history contains every
//! other writable node's timeline is the primary; anything less clear
//! (two writable nodes on one timeline, histories that diverge, an unknown
//! timeline) routes no writes until an operator names the winner.

use std::collections::BTreeMap;

use crate::{NodeId, Topology};

/// What the evidence says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This node is the primary.
    Primary(NodeId),
    /// No node can be trusted with writes; why, for the operator.
    Ambiguous(String),
    /// No node answered as writable: nothing contradicts the configuration.
    NoEvidence,
}

/// Weighs the last observations recorded in `topology` (in recovery or
/// not, timeline) with the timeline histories of writable nodes:
/// `ancestors[n]` = the parent timelines listed in `n`'s history file (a
/// missing entry: unknown).
pub fn weigh(topology: &Topology, ancestors: &BTreeMap<NodeId, Vec<u32>>) -> Verdict {
    let writable: Vec<_> = topology
        .nodes()
        .iter()
        .filter(|n| n.in_recovery == Some(false))
        .collect();
    let Some(top) = writable.iter().max_by_key(|n| n.timeline) else {
        return Verdict::NoEvidence;
    };
    if writable.len() == 1 {
        return Verdict::Primary(top.id.clone());
    }
    let Some(timeline) = top.timeline else {
        return Verdict::Ambiguous(format!(
            "{} writable nodes and the timeline of {} is unknown",
            writable.len(),
            top.id
        ));
    };
    let history = ancestors.get(&top.id);
    for other in writable.iter().filter(|n| n.id != top.id) {
        match other.timeline {
            Some(t) if t == timeline => {
                return Verdict::Ambiguous(format!(
                    "{} and {} are both writable on timeline {t}",
                    top.id, other.id
                ))
            }
            Some(t) if history.is_some_and(|h| h.contains(&t)) => {}
            Some(t) => {
                return Verdict::Ambiguous(format!(
                    "histories diverge: {} (timeline {timeline}) does not descend from {}'s timeline {t}",
                    top.id, other.id
                ))
            }
            None => {
                return Verdict::Ambiguous(format!(
                    "{} and {} are both writable and the timeline of {} is unknown",
                    top.id, other.id, other.id
                ))
            }
        }
    }
    Verdict::Primary(top.id.clone())
}

/// The parent timelines a timeline history file lists (its lines are
/// `parent<TAB>switchpoint<TAB>reason`).
pub fn parse_history(text: &str) -> Vec<u32> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeState, Role};

    fn seen(name: &str, in_recovery: bool, timeline: u32) -> NodeState {
        let mut n = NodeState::new(name, Role::Standby, "h", 5432);
        n.in_recovery = Some(in_recovery);
        n.timeline = Some(timeline);
        n
    }

    fn history(entries: &[(&str, &[u32])]) -> BTreeMap<NodeId, Vec<u32>> {
        entries
            .iter()
            .map(|(n, h)| (NodeId::new(*n), h.to_vec()))
            .collect()
    }

    #[test]
    fn the_writable_node_whose_history_contains_the_others_is_primary() {
        let t = Topology::new([seen("a", false, 1), seen("b", false, 2), seen("c", true, 2)]);
        assert_eq!(
            weigh(&t, &history(&[("b", &[1])])),
            Verdict::Primary(NodeId::new("b"))
        );
    }

    #[test]
    fn one_timeline_two_writers_or_diverged_histories_are_ambiguous() {
        let same = Topology::new([seen("a", false, 2), seen("b", false, 2)]);
        assert!(
            matches!(weigh(&same, &BTreeMap::new()), Verdict::Ambiguous(why) if why.contains("timeline 2"))
        );
        let diverged = Topology::new([seen("a", false, 2), seen("b", false, 3)]);
        let why = weigh(&diverged, &history(&[("b", &[1])]));
        assert!(
            matches!(&why, Verdict::Ambiguous(w) if w.contains("diverge")),
            "{why:?}"
        );
        // Unknown history: no proof of descent.
        assert!(matches!(
            weigh(&diverged, &BTreeMap::new()),
            Verdict::Ambiguous(_)
        ));
    }

    #[test]
    fn one_writer_is_primary_and_none_is_no_evidence() {
        let one = Topology::new([seen("a", true, 1), seen("b", false, 1)]);
        assert_eq!(
            weigh(&one, &BTreeMap::new()),
            Verdict::Primary(NodeId::new("b"))
        );
        let none = Topology::new([seen("a", true, 1)]);
        assert_eq!(weigh(&none, &BTreeMap::new()), Verdict::NoEvidence);
    }

    #[test]
    fn history_files_give_their_parent_timelines() {
        let text =
            "1\t0/3000060\tno recovery target specified\n\n2\t0/5000000\tbefore 2000-01-01\n";
        assert_eq!(parse_history(text), vec![1, 2]);
    }
}
