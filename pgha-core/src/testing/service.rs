//! The harness's servers as a [`LocalService`], so that pgha's local
//! controller (fence by stop, rejoin) drives them through the harness and
//! they stay under its control (and its teardown).

use async_trait::async_trait;

use super::{HarnessError, PgCluster};
use crate::{Error, LocalService, NodeState};

fn to_error(node: &NodeState, e: HarnessError) -> Error {
    Error::Io {
        what: format!("harness node {}", node.id),
        source: std::io::Error::other(e.to_string()),
    }
}

impl PgCluster {
    fn harness_node(&self, node: &NodeState) -> Result<&super::PgNode, Error> {
        self.node(node.id.as_str()).ok_or_else(|| Error::Io {
            what: format!("harness node {}", node.id),
            source: std::io::Error::other("no such node in the test cluster"),
        })
    }
}

#[async_trait]
impl LocalService for PgCluster {
    async fn stop(&self, node: &NodeState) -> Result<(), Error> {
        self.harness_node(node)?
            .stop()
            .await
            .map_err(|e| to_error(node, e))
    }

    async fn start(&self, node: &NodeState) -> Result<(), Error> {
        self.harness_node(node)?
            .start()
            .await
            .map_err(|e| to_error(node, e))
    }
}

impl PgCluster {
    /// The cluster as pgha first sees it: `node0` primary, the others its
    /// standbys, at their TCP addresses.
    pub fn topology(&self) -> crate::Topology {
        crate::Topology::new(self.nodes().iter().enumerate().map(|(i, n)| {
            let role = if i == 0 {
                crate::Role::Primary
            } else {
                crate::Role::Standby
            };
            NodeState::new(n.name(), role, n.host().to_string(), n.port())
        }))
    }

    /// Settings for a [`LocalNodeController`](crate::LocalNodeController)
    /// that controls this cluster's data directories (as the harness's
    /// PostgreSQL user).
    pub fn local_controller_config(&self) -> crate::LocalControllerConfig {
        let data_dirs = self
            .nodes()
            .iter()
            .map(|n| (crate::NodeId::new(n.name()), n.data_dir()))
            .collect();
        let primary = self.primary();
        let mut config = crate::LocalControllerConfig::new(primary.bins().dir(), data_dirs);
        let run_as = primary.run_as();
        if run_as.switch {
            config.run_as = Some((run_as.uid, run_as.gid));
        }
        config
    }
}
