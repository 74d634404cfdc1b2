//! Pool upkeep: closes idle server connections past their idle timeout or
//! lifetime, and every idle connection to a node the topology no longer
//! allows (an old primary after a failover, a failed standby); opens the
//! connections pools of allowed nodes lack to reach `min_pool_size`.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use pgha_core::NodeId;

use crate::metrics::NodeLabel;
use crate::session::Holdable;
use crate::Shared;

/// How often idle connections are checked.
const PERIOD: Duration = Duration::from_secs(1);

/// Rings the sessions' bell when a new topology may no longer allow a
/// server connection a session holds (and once more when the topology's
/// sender is gone: sessions end then); returns then. Sessions waiting for
/// their server register no waiter of their own (see `Relay::busy`).
pub(crate) async fn ring_on_topology(shared: Arc<Shared>) {
    let mut topology = shared.topology.clone();
    let mut holdable = Holdable::of(&topology.borrow_and_update());
    while topology.changed().await.is_ok() {
        let now = Holdable::of(&topology.borrow_and_update());
        if now != holdable {
            // Sessions holding such a connection look at it; the others
            // go back to sleep.
            shared.drain.bell().ring();
            holdable = now;
        }
    }
    shared.drain.bell().ring();
}

/// Runs until the proxy stops serving (the future is dropped).
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut topology = shared.topology.clone();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watching = true;
    // Connections being opened for min_pool_size: a slow or hung server
    // must not hold up the rounds; dropped (aborted) with the upkeep.
    let mut filling = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = topology.changed(), if watching => watching = changed.is_ok(),
        }
        while filling.try_join_next().is_some() {}
        let t = topology.borrow_and_update().clone();
        shared.metrics.observe_topology(&t);
        let config = &*shared.live();
        // Server connections per node (a node has a pool per database/user).
        let mut per_node: HashMap<NodeId, (NodeLabel, usize, usize)> = HashMap::new();
        for pool in shared.pools.all() {
            let node = &pool.key.node;
            let usable = t.is_writable(node) || t.readable_nodes().any(|n| &n.id == node);
            pool.evict(
                config.server_idle_timeout,
                config.server_lifetime,
                config.min_pool_size,
                !usable,
            );
            if usable {
                for permit in pool.reserve_missing(config.min_pool_size) {
                    let (pool, shared) = (pool.clone(), shared.clone());
                    filling.spawn(async move {
                        let opened = pool
                            .open_spare(&shared.live(), &shared.metrics, permit)
                            .await;
                        if let Err(e) = opened {
                            // Retried next round, as long as the node stays allowed.
                            tracing::debug!(node = %pool.key.node, error = %e, "could not open a min_pool_size connection");
                        }
                    });
                }
            }
            let (open, idle, _) = pool.sizes();
            let entry = per_node
                .entry(node.clone())
                .or_insert_with(|| (pool.label.clone(), 0, 0));
            entry.1 += idle;
            entry.2 += open.saturating_sub(idle);
        }
        for (label, idle, active) in per_node.values() {
            shared.metrics.set_servers(label, *idle, *active);
        }
    }
}
