//! Creating every series of [`ProxyMetrics`] and registering it under its
//! name, so the record methods only touch handles.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use super::labels::{AddrLabels, AuthLabels, RouteLabels};
use super::{AuthFailure, ProxyMetrics, RouteTarget};

/// Bucket bounds, in seconds, for transaction latency and pool waits: from
/// a local round trip (50 µs) to a stuck statement (10 s), 1-2.5-5 steps.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyMetrics {
    /// Fresh metrics in a registry of their own. Series without a node
    /// label start at zero, so a rate over them exists from the first
    /// scrape.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pgha");
        let clients = Gauge::default();
        registry.register("clients", "Clients connected now", clients.clone());
        let client_connections = Counter::default();
        registry.register(
            "client_connections",
            "Client connections accepted",
            client_connections.clone(),
        );
        let auth_family = Family::<AuthLabels, Counter>::default();
        let auth_failures =
            AuthFailure::ALL.map(|reason| auth_family.get_or_create_owned(&AuthLabels { reason }));
        registry.register(
            "client_auth_failures",
            "Clients turned away before their session began, by reason",
            auth_family,
        );
        let servers = Family::default();
        registry.register(
            "server_connections",
            "Server connections open now, idle in the pool or active",
            servers.clone(),
        );
        let server_connects = Family::default();
        registry.register(
            "server_connects",
            "Connects to a server, by outcome",
            server_connects.clone(),
        );
        let pool_waits = Family::default();
        registry.register(
            "pool_waits",
            "Pool checkouts that had to queue for a server connection",
            pool_waits.clone(),
        );
        let pool_wait_seconds = latency_histogram();
        registry.register_with_unit(
            "pool_wait_duration",
            "How long queued pool checkouts waited",
            Unit::Seconds,
            pool_wait_seconds.clone(),
        );
        let pool_timeouts = Family::default();
        registry.register(
            "pool_wait_timeouts",
            "Queued pool checkouts that gave up",
            pool_timeouts.clone(),
        );
        let suspicions = Family::default();
        registry.register(
            "node_suspicions",
            "Standbys suspected of not answering (reads avoided them until probed healthy)",
            suspicions.clone(),
        );
        let transactions = Family::default();
        registry.register(
            "transactions",
            "Transactions by server, route and routing reason",
            transactions.clone(),
        );
        let queries = Family::default();
        registry.register("queries", "Statements relayed, by server", queries.clone());
        let tx_family: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        let transaction_seconds =
            RouteTarget::ALL.map(|route| tx_family.get_or_create_owned(&RouteLabels { route }));
        registry.register_with_unit(
            "transaction_duration",
            "Transaction latency through the proxy, by route",
            Unit::Seconds,
            tx_family,
        );
        let term = Gauge::default();
        registry.register("term", "The cluster's term", term.clone());
        let node_lag = Family::default();
        registry.register_with_unit(
            "node_lag",
            "WAL bytes the node has not replayed, against the most advanced known position",
            Unit::Bytes,
            node_lag.clone(),
        );
        let node_up = Family::default();
        registry.register("node_up", "1 while the node is up", node_up.clone());
        let node_primary = Family::default();
        registry.register(
            "node_primary",
            "1 for the primary of the current term",
            node_primary.clone(),
        );
        let runtime_stall_max = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "runtime_stall_max",
            "The longest the runtime ran a due timer late",
            Unit::Seconds,
            runtime_stall_max.clone(),
        );
        let runtime_stalls = Counter::default();
        registry.register(
            "runtime_stalls",
            "Times the runtime ran a due timer more than 20 ms late",
            runtime_stalls.clone(),
        );
        let vip_held = Family::default();
        registry.register(
            "vip_held",
            "1 while this node holds the virtual IP",
            vip_held.clone(),
        );
        let vip_counts: [Family<AddrLabels, Counter>; 4] = Default::default();
        for (name, help, family) in [
            (
                "vip_acquisitions",
                "Times the virtual IP was acquired",
                &vip_counts[0],
            ),
            (
                "vip_renewals",
                "Times its kernel lifetime was renewed",
                &vip_counts[1],
            ),
            (
                "vip_announcements",
                "Gratuitous ARP / unsolicited NA bursts sent",
                &vip_counts[2],
            ),
            (
                "vip_failures",
                "Virtual IP commands that failed",
                &vip_counts[3],
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        ProxyMetrics {
            registry,
            clients,
            client_connections,
            auth_failures,
            servers,
            server_connects,
            pool_waits,
            pool_wait_seconds,
            pool_timeouts,
            suspicions,
            transactions,
            queries,
            transaction_seconds,
            term,
            node_lag,
            node_up,
            node_primary,
            runtime_stall_max,
            runtime_stalls,
            vip_held,
            vip_counts,
            observed: Mutex::new(BTreeSet::new()),
        }
    }
}
