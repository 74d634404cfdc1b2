//! Following the topology: `pgha_term` and the `pgha_node_*` series.

use std::collections::BTreeSet;

use pgha_core::{Status, Topology};

use super::labels::{NodeLabels, ServerLabels, ServerState};
use super::{gauge_value, NodeLabel, ProxyMetrics};

impl ProxyMetrics {
    /// Sets `pgha_term` and the `pgha_node_*` series from `topology`, and
    /// removes the series of nodes that are no longer in it.
    pub fn observe_topology(&self, topology: &Topology) {
        // Held throughout, so two observations do not interleave their
        // removals.
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        self.term.set(gauge_value(topology.term()));
        let mut now = BTreeSet::new();
        for node in topology.nodes() {
            let labels = NodeLabels {
                node: NodeLabel::from(&node.id),
            };
            let up = node.status == Status::Up;
            self.node_up.get_or_create(&labels).set(i64::from(up));
            let primary = topology.primary_id() == Some(&node.id);
            self.node_primary
                .get_or_create(&labels)
                .set(i64::from(primary));
            // What gates reads; while the position is unknown, no series
            // rather than a false one.
            match crate::route::replay_lag_bytes(topology, node) {
                Some(behind) => {
                    self.node_lag
                        .get_or_create(&labels)
                        .set(gauge_value(behind));
                }
                None => {
                    self.node_lag.remove(&labels);
                }
            }
            now.insert(labels.node);
        }
        for gone in observed.difference(&now) {
            self.forget_node(gone);
        }
        *observed = now;
    }

    fn forget_node(&self, node: &NodeLabel) {
        let labels = NodeLabels { node: node.clone() };
        self.node_lag.remove(&labels);
        self.node_up.remove(&labels);
        self.node_primary.remove(&labels);
        for state in [ServerState::Idle, ServerState::Active] {
            let node = node.clone();
            self.servers.remove(&ServerLabels { node, state });
        }
    }
}
