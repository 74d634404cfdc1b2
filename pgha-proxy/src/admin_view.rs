//! The proxy's live state copied into an [`AdminSnapshot`] for one admin
//! console query.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::admin::{
    AdminSnapshot, ClientState, ConfigRow, PoolRow, ServerRow, ServerState, StatsRow,
};
use crate::{ProxyConfig, Shared};

pub(crate) fn snapshot(shared: &Shared) -> AdminSnapshot {
    let config = &*shared.live();
    let mut snapshot = AdminSnapshot::new(shared.topology.borrow().clone());
    snapshot.load_balance = config.load_balance;
    snapshot.max_standby_lag_bytes = config.max_standby_lag_bytes;
    snapshot.max_standby_lag_time = config.max_standby_lag_time;
    snapshot.paused = shared.gate.is_paused();
    if let Some(control) = &shared.control {
        snapshot.membership = control.membership();
    }
    snapshot.suspected = shared
        .suspects
        .holding(&snapshot.topology, std::time::Instant::now());
    let clients = shared.clients.rows();
    let mode = format!("{:?}", config.pool_mode).to_lowercase();
    let mut stats: BTreeMap<_, StatsRow> = BTreeMap::new();
    for pool in shared.pools.all() {
        let key = &pool.key;
        let (open, idle, waiting) = pool.sizes();
        let cl_active = clients
            .iter()
            .filter(|c| c.state == ClientState::Active && c.node.as_ref() == Some(&key.node))
            .filter(|c| c.database == key.database)
            .count();
        snapshot.pools.push(PoolRow {
            node: key.node.clone(),
            database: key.database.clone(),
            user: key.user.clone(),
            mode: mode.clone(),
            cl_active: cl_active as u64,
            cl_waiting: waiting as u64,
            sv_active: open.saturating_sub(idle) as u64,
            sv_idle: idle as u64,
            sv_login: 0,
            max_wait: Duration::ZERO,
        });
        snapshot.servers.extend(pool.idle_rows());
        let s = &pool.stats;
        let row = stats
            .entry(key.node.clone())
            .or_insert_with(|| StatsRow::new(key.node.clone()));
        row.xacts += s.transactions.load(Ordering::Relaxed);
        row.queries += s.queries.load(Ordering::Relaxed);
        row.reads += s.reads.load(Ordering::Relaxed);
        row.xact_time += Duration::from_micros(s.transaction_us.load(Ordering::Relaxed));
        row.wait_time += Duration::from_micros(s.wait_us.load(Ordering::Relaxed));
    }
    snapshot.stats = stats.into_values().collect();
    for c in &clients {
        if let (ClientState::Active, Some(node)) = (c.state, &c.node) {
            snapshot.servers.push(ServerRow {
                node: node.clone(),
                database: c.database.clone(),
                user: c.user.clone(),
                state: ServerState::Active,
                backend_pid: c.server_pid,
                connect_time: c.connect_time,
                request_time: None,
                client_pid: Some(c.pid),
            });
        }
    }
    snapshot.clients = clients;
    let defaults: BTreeMap<_, _> = ProxyConfig::default().settings().into_iter().collect();
    snapshot.config = config
        .settings()
        .into_iter()
        .map(|(key, value)| ConfigRow {
            key: key.to_string(),
            value,
            default: defaults.get(key).cloned(),
            // RELOAD applies these while serving.
            changeable: crate::LIVE_SETTINGS.contains(&key),
        })
        .collect();
    snapshot
}
