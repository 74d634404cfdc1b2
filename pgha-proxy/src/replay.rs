//! How far each standby has replayed, polled often (default every 20 ms)
//! for read-your-writes: a client that wrote at LSN L reads only from a
//! standby whose replay position is at least L. The monitor's probes (every
//! second) would make such reads wait a second for the primary's answer to
//! reach a standby's known position; this poll is one tiny query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgha_core::{ConnectConfig, Lsn, NodeId, NodeState, Role};

use crate::Shared;

/// Replay positions last seen by the poller.
#[derive(Debug, Default)]
pub(crate) struct ReplayPositions(Mutex<HashMap<NodeId, Lsn>>);

impl ReplayPositions {
    /// The best known replay position of `node`: polled or probed.
    pub(crate) fn of(&self, node: &NodeState) -> Option<Lsn> {
        let polled = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node.id)
            .copied();
        polled.max(node.replayed_lsn)
    }

    fn set(&self, node: &NodeId, lsn: Option<Lsn>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match lsn {
            Some(lsn) => map.insert(node.clone(), lsn),
            None => map.remove(node),
        };
    }
}

/// Polls every standby of the topology until the future is dropped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.replay_poll_interval;
    let connect = ConnectConfig {
        user: shared
            .config
            .server_auth
            .user
            .clone()
            .unwrap_or_else(|| ConnectConfig::default().user),
        password: shared.config.server_auth.password.clone(),
        application_name: "pgha-proxy replay poll".into(),
        ..ConnectConfig::default()
    };
    let mut clients: HashMap<NodeId, tokio_postgres::Client> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let topology = shared.topology.borrow().clone();
        let standbys: Vec<NodeState> = topology
            .readable_nodes()
            .filter(|n| n.role == Role::Standby)
            .cloned()
            .collect();
        clients.retain(|id, _| standbys.iter().any(|n| &n.id == id));
        for node in &standbys {
            let lsn = poll(&connect, &mut clients, node, interval).await;
            shared.replay.set(&node.id, lsn);
        }
    }
}

async fn poll(
    connect: &ConnectConfig,
    clients: &mut HashMap<NodeId, tokio_postgres::Client>,
    node: &NodeState,
    interval: Duration,
) -> Option<Lsn> {
    // A slow standby is not waited for longer than a few polls.
    let timeout = (interval * 5).max(Duration::from_millis(200));
    if !clients.contains_key(&node.id) {
        match connect.connect(node, timeout).await {
            Ok(client) => {
                clients.insert(node.id.clone(), client);
            }
            Err(e) => {
                tracing::debug!(node = %node.id, error = %e, "replay poll: cannot connect");
                return None;
            }
        }
    }
    let client = clients.get(&node.id)?;
    let query = client.query_one("SELECT pg_last_wal_replay_lsn()::text", &[]);
    let answer = tokio::time::timeout(timeout, query).await;
    match answer {
        Ok(Ok(row)) => row
            .try_get::<_, Option<String>>(0)
            .ok()
            .flatten()
            .and_then(|text| text.parse().ok()),
        _ => {
            clients.remove(&node.id);
            None
        }
    }
}
