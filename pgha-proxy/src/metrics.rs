//! What the proxy counts, for Prometheus: [`ProxyMetrics`].
//!
//! Each proxy owns its own registry (no globals: two proxies in one process
//! report separately); [`ProxyMetrics::encode`] renders it as OpenMetrics
//! text, which [`serve_http`](crate::http::serve_http) serves on `/metrics`.
//!
//! What each series tells an operator (counters end in `_total`):
//!
//! | series | labels | meaning |
//! |---|---|---|
//! | `pgha_clients` | | clients connected now |
//! | `pgha_client_connections_total` | | client connections accepted |
//! | `pgha_client_auth_failures_total` | `reason` | clients turned away: `password`, `hba_reject`, `unknown_database`, `too_many`, `protocol` (at startup or after login), `timeout` ([`AuthFailure`]); a jump in `password` is a misconfigured app or a guesser; each is also logged at WARN (`client refused`, with peer, user, database and reason; `timeout` at INFO) |
//! | `pgha_server_connections` | `node`, `state` | server connections open now, `idle` in the pool or `active` (lent to a client) |
//! | `pgha_server_connects_total` | `node`, `outcome` | connects to a server, `ok` or `error`; errors before the monitor marks a node down show trouble early |
//! | `pgha_node_suspicions_total` | `node` | times a standby was suspected of not answering (a connect failed or timed out, a read went unanswered past its deadline): reads avoided it until the monitor probed it healthy |
//! | `pgha_pool_waits_total` | `node` | checkouts that found no free server connection and queued: the pool is too small for the load |
//! | `pgha_pool_wait_duration_seconds` | | how long those queued checkouts waited |
//! | `pgha_pool_wait_timeouts_total` | `node` | queued checkouts that gave up: clients got an error |
//! | `pgha_transactions_total` | `node`, `route`, `reason` | transactions (or lone statements) by the server they ran on, `primary` or `standby`, and why ([`RouteReason`]): the share of reads that leave the primary, and what keeps the others on it |
//! | `pgha_queries_total` | `node` | statements relayed |
//! | `pgha_transaction_duration_seconds` | `route` | time from a transaction's first byte to the client until its last result, through the proxy |
//! | `pgha_term` | | the cluster's term: it goes up by one on every promotion (0 until the first topology is observed) |
//! | `pgha_node_lag_bytes` | `node` | WAL the node has not replayed, against the most advanced position known in the cluster (what a read there would miss; what `max_standby_lag_bytes` is compared with); absent while its position is unknown |
//! | `pgha_node_up` | `node` | 1 while the node is up, 0 otherwise (down, detached, quarantined, …) |
//! | `pgha_node_primary` | `node` | 1 for the primary of the current term |
//! | `pgha_runtime_stall_max_seconds` | | the longest the proxy's runtime ran a due timer late since start ([`crate::stall`]): every client waited as long |
//! | `pgha_runtime_stalls_total` | | times the runtime ran a due timer more than 20 ms late |
//! | `pgha_vip_held` | `addr` | 1 while this node holds the virtual IP (`pgha run` with `[vip]`) |
//! | `pgha_vip_acquisitions_total`, `pgha_vip_renewals_total`, `pgha_vip_announcements_total`, `pgha_vip_failures_total` | `addr` | what its keeper did |
//!
//! The `pgha_node_*` series and `pgha_term` follow the topology passed to
//! [`ProxyMetrics::observe_topology`]; a node that leaves the topology loses
//! its `pgha_node_*` and `pgha_server_connections` series. Counters keep
//! their series: they are history.
//!
//! Recording is meant for the hot path: label values are a shared
//! [`NodeLabel`] and enums (no string is built per call), and the series
//! without a node label are held directly, so they cost an atomic add or a
//! short lock, not a lookup.

mod cluster;
mod labels;
mod register;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use labels::{
    AddrLabels, ConnectLabels, NodeLabels, Outcome, ServerLabels, ServerState, TransactionLabels,
};
pub use labels::{AuthFailure, NodeLabel, RouteReason, RouteTarget};

/// Gauges are `i64`; the values put in them (counts, bytes, the term) fit
/// for any real cluster, and saturate rather than wrap if not.
fn gauge_value(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// The metrics of one proxy and the registry they are encoded from.
///
/// Share it as an `Arc<ProxyMetrics>` between the sessions and
/// [`serve_http`](crate::http::serve_http).
#[derive(Debug)]
pub struct ProxyMetrics {
    registry: Registry,
    clients: Gauge,
    client_connections: Counter,
    /// One per [`AuthFailure`], in declaration order.
    auth_failures: [Counter; AuthFailure::ALL.len()],
    servers: Family<ServerLabels, Gauge>,
    server_connects: Family<ConnectLabels, Counter>,
    pool_waits: Family<NodeLabels, Counter>,
    pool_wait_seconds: Histogram,
    pool_timeouts: Family<NodeLabels, Counter>,
    suspicions: Family<NodeLabels, Counter>,
    transactions: Family<TransactionLabels, Counter>,
    queries: Family<NodeLabels, Counter>,
    /// One per [`RouteTarget`], by [`RouteTarget::index`].
    transaction_seconds: [Histogram; 2],
    term: Gauge,
    node_lag: Family<NodeLabels, Gauge>,
    node_up: Family<NodeLabels, Gauge>,
    node_primary: Family<NodeLabels, Gauge>,
    runtime_stall_max: Gauge<f64, AtomicU64>,
    runtime_stalls: Counter,
    vip_held: Family<AddrLabels, Gauge>,
    /// Acquisitions, renewals, announcements, failures, in that order.
    vip_counts: [Family<AddrLabels, Counter>; 4],
    /// The nodes of the last observed topology, to drop those that leave.
    observed: Mutex<BTreeSet<NodeLabel>>,
}

impl ProxyMetrics {
    /// A client connection was accepted: counts it and keeps it in
    /// `pgha_clients` until the returned guard is dropped.
    pub fn client_connected(&self) -> ClientGauge {
        self.client_arrived();
        ClientGauge {
            clients: self.clients.clone(),
        }
    }

    /// [`Self::client_connected`] without the guard, for a caller whose
    /// own guard calls [`Self::client_left`] (a guard here would be one
    /// more pointer in every session).
    pub(crate) fn client_arrived(&self) {
        self.client_connections.inc();
        self.clients.inc();
    }

    /// A client counted by [`Self::client_arrived`] left.
    pub(crate) fn client_left(&self) {
        self.clients.dec();
    }

    /// A client was turned away before its session began.
    pub fn auth_failure(&self, reason: AuthFailure) {
        self.auth_failures[reason as usize].inc();
    }

    /// A connect (with login) to `node` succeeded (`ok`) or failed.
    pub fn server_connect(&self, node: &NodeLabel, ok: bool) {
        let outcome = if ok { Outcome::Ok } else { Outcome::Error };
        let labels = ConnectLabels {
            node: node.clone(),
            outcome,
        };
        self.server_connects.get_or_create(&labels).inc();
    }

    /// The pool of `node` now holds `idle` free and `active` lent server
    /// connections.
    pub fn set_servers(&self, node: &NodeLabel, idle: usize, active: usize) {
        for (state, count) in [(ServerState::Idle, idle), (ServerState::Active, active)] {
            let labels = ServerLabels {
                node: node.clone(),
                state,
            };
            self.servers.get_or_create(&labels).set(gauge_value(count));
        }
    }

    /// A checkout from the pool of `node` queued for `waited` before it got
    /// a connection.
    pub fn pool_wait(&self, node: &NodeLabel, waited: Duration) {
        let labels = NodeLabels { node: node.clone() };
        self.pool_waits.get_or_create(&labels).inc();
        self.pool_wait_seconds.observe(waited.as_secs_f64());
    }

    /// `node` was suspected of not answering.
    pub fn suspected(&self, node: &NodeLabel) {
        let labels = NodeLabels { node: node.clone() };
        self.suspicions.get_or_create(&labels).inc();
    }

    /// A queued checkout from the pool of `node` gave up.
    pub fn pool_timeout(&self, node: &NodeLabel) {
        let labels = NodeLabels { node: node.clone() };
        self.pool_timeouts.get_or_create(&labels).inc();
    }

    /// A transaction (or a statement outside one) ran on `node`, sent there
    /// as `route` for `reason`, and took `took`.
    pub fn transaction(
        &self,
        node: &NodeLabel,
        route: RouteTarget,
        reason: RouteReason,
        took: Duration,
    ) {
        let labels = TransactionLabels {
            node: node.clone(),
            route,
            reason,
        };
        self.transactions.get_or_create(&labels).inc();
        self.transaction_seconds[route.index()].observe(took.as_secs_f64());
    }

    /// The series a session records on every transaction it runs on
    /// `node`, looked up once: a pool holds one, so the hot path adds to
    /// counters it already has instead of hashing labels per transaction.
    pub fn recorder(&self, node: &NodeLabel) -> NodeRecorder {
        NodeRecorder {
            node: node.clone(),
            queries: self
                .queries
                .get_or_create(&NodeLabels { node: node.clone() })
                .clone(),
            transactions: self.transactions.clone(),
            seen: Mutex::default(),
            transaction_seconds: self.transaction_seconds.clone(),
        }
    }

    /// A statement was relayed to `node`.
    pub fn query(&self, node: &NodeLabel) {
        let labels = NodeLabels { node: node.clone() };
        self.queries.get_or_create(&labels).inc();
    }

    /// The runtime ran a due timer `longest` late, the most so far.
    pub fn runtime_stall_max(&self, longest: Duration) {
        self.runtime_stall_max.set(longest.as_secs_f64());
    }

    /// The runtime ran a due timer later than a stall's threshold.
    pub fn runtime_stalled(&self) {
        self.runtime_stalls.inc();
    }

    /// What this node's VIP keeper reports for `addr`: whether it holds
    /// the address, and its running totals (acquisitions, renewals,
    /// announcements, failed commands) — the counters follow them.
    pub fn vip(&self, addr: &str, held: bool, totals: [u64; 4]) {
        let labels = AddrLabels {
            addr: NodeLabel::new(addr),
        };
        self.vip_held.get_or_create(&labels).set(i64::from(held));
        for (family, total) in self.vip_counts.iter().zip(totals) {
            let counter = family.get_or_create(&labels);
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        }
    }

    /// Every series, as OpenMetrics text (ending in `# EOF`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            // Writing to a String cannot fail; only a label's encoder can.
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        text
    }
}

/// The per-transaction series of one node ([`ProxyMetrics::recorder`]).
///
/// Counters handed out by a family share their value with it, and the
/// families never drop counter series, so a handle stays valid.
#[derive(Debug)]
pub struct NodeRecorder {
    node: NodeLabel,
    queries: Counter,
    transactions: Family<TransactionLabels, Counter>,
    /// The `pgha_transactions_total` series already used, by route and
    /// reason (a handful per node).
    seen: Mutex<Vec<(RouteTarget, RouteReason, Counter)>>,
    transaction_seconds: [Histogram; 2],
}

impl NodeRecorder {
    /// `n` statements were relayed to the node.
    pub fn queries(&self, n: u64) {
        self.queries.inc_by(n);
    }

    /// A transaction ran on the node, sent there as `route` for `reason`,
    /// and took `took` (as [`ProxyMetrics::transaction`]).
    pub fn transaction(&self, route: RouteTarget, reason: RouteReason, took: Duration) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen
            .iter()
            .find(|(r, why, _)| *r == route && *why == reason)
        {
            Some((_, _, counter)) => {
                counter.inc();
            }
            None => {
                let labels = TransactionLabels {
                    node: self.node.clone(),
                    route,
                    reason,
                };
                let counter = self.transactions.get_or_create(&labels).clone();
                counter.inc();
                seen.push((route, reason, counter));
            }
        }
        drop(seen);
        self.transaction_seconds[route.index()].observe(took.as_secs_f64());
    }
}

/// Keeps one client in `pgha_clients` while it lives: hold it for the
/// session's lifetime, whatever way the session ends.
#[derive(Debug)]
#[must_use = "the client is counted only while the guard lives"]
pub struct ClientGauge {
    clients: Gauge,
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.clients.dec();
    }
}
