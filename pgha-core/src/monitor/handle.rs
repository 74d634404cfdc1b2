//! The embedder's side of a running [`ClusterMonitor`](super::ClusterMonitor).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{MonitorEvent, Request};
use crate::{Action, Command, Error, NodeId, Topology};

/// Talks to a running monitor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MonitorHandle {
    topology: watch::Receiver<Arc<Topology>>,
    events: broadcast::Sender<MonitorEvent>,
    requests: mpsc::UnboundedSender<Request>,
}

impl MonitorHandle {
    pub(super) fn new(
        topology: watch::Receiver<Arc<Topology>>,
        events: broadcast::Sender<MonitorEvent>,
        requests: mpsc::UnboundedSender<Request>,
    ) -> Self {
        Self {
            topology,
            events,
            requests,
        }
    }

    /// A receiver of every new topology snapshot.
    pub fn topology(&self) -> watch::Receiver<Arc<Topology>> {
        self.topology.clone()
    }

    /// The topology now.
    pub fn current(&self) -> Arc<Topology> {
        self.topology.borrow().clone()
    }

    /// Every decision and action from now on.
    pub fn events(&self) -> broadcast::Receiver<MonitorEvent> {
        self.events.subscribe()
    }

    /// Tells the monitor a client session on `node` failed with `sqlstate`
    /// (e.g. `57P01`). A hint only: the monitor probes the node at once and
    /// decides on what the probe sees.
    pub fn hint(&self, node: &NodeId, sqlstate: &str) {
        let _ = self.requests.send(Request::Hint {
            node: node.clone(),
            sqlstate: sqlstate.to_string(),
        });
    }

    /// Runs an operator command (promote, switchover, attach, detach,
    /// maintenance) and returns the actions it led to once they are done.
    pub async fn command(&self, command: Command) -> Result<Vec<Action>, Error> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Io {
            what: "sending a command to the monitor".into(),
            source: std::io::Error::other("the monitor has stopped"),
        };
        self.requests
            .send(Request::Command { command, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Waits until the topology satisfies `condition`, at most `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&Topology) -> bool,
    ) -> Result<Arc<Topology>, Error> {
        let mut rx = self.topology.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|t| condition(t))).await;
        match waited {
            Ok(Ok(topology)) => Ok(topology.clone()),
            Ok(Err(_)) => Err(Error::Io {
                what: "waiting for a topology".into(),
                source: std::io::Error::other("the monitor has stopped"),
            }),
            Err(_) => Err(Error::Timeout {
                node: "cluster (waiting for a topology condition)".into(),
                after: timeout,
            }),
        }
    }
}
