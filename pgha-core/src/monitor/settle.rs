//! Started without a durable term: who is primary, from the nodes' own
//! evidence (see [`evidence`](crate::evidence)).

use std::collections::BTreeMap;

use super::{ClusterMonitor, MonitorEventKind};
use crate::evidence::{self, Verdict};

impl ClusterMonitor {
    /// Probes every node once, reads the timeline history of the writable
    /// ones, and settles the model on the verdict; writes stay held until
    /// then (and after, when the evidence is ambiguous).
    pub(super) async fn settle(&mut self) {
        self.probe_all().await;
        let writable: Vec<_> = self
            .state
            .topology()
            .nodes()
            .iter()
            .filter(|n| n.in_recovery == Some(false))
            .cloned()
            .collect();
        let mut ancestors = BTreeMap::new();
        if writable.len() > 1 {
            for node in &writable {
                let timeout = self.config.probe_timeout;
                if let Some(history) = self.probe.timeline_ancestors(node, timeout).await {
                    ancestors.insert(node.id.clone(), history);
                }
            }
        }
        let verdict = evidence::weigh(self.state.topology(), &ancestors);
        let (primary, held) = match &verdict {
            Verdict::Primary(id) => {
                tracing::info!(primary = %id, writable = writable.len(), "no durable term: the nodes' evidence names the primary");
                (Some(id.to_string()), None)
            }
            Verdict::Ambiguous(why) => {
                tracing::error!(%why, "no durable term and the evidence is ambiguous: no writes are routed until an operator promotes a node");
                (None, Some(why.clone()))
            }
            Verdict::NoEvidence => {
                tracing::warn!(
                    "no durable term and no writable node answered: the configured primary stands"
                );
                (None, None)
            }
        };
        self.state.settle(&verdict);
        self.unsettled = false;
        if matches!(verdict, Verdict::Primary(_)) && self.may_record() {
            // Logged by `record_decision`; the evidence stands either way.
            let _ = self.record_decision().await;
        }
        self.emit(MonitorEventKind::Settled { primary, held });
        self.publish();
    }
}
