use std::time::Duration;

use pgha_core::{Lsn, NodeState, Role, Status, Topology};

use super::*;
use crate::classify::Reason;

/// The sample lines of `text` whose series name and labels start with
/// `series` (e.g. `pgha_queries_total{node="a"}`), as `(series, value)`.
fn samples<'a>(text: &'a str, series: &str) -> Vec<(&'a str, &'a str)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(s, _)| s.starts_with(series))
        .collect()
}

/// The value of exactly one series, by its full name and labels.
fn value(text: &str, series: &str) -> Option<String> {
    let found: Vec<_> = samples(text, series)
        .into_iter()
        .filter(|(s, _)| *s == series)
        .collect();
    assert!(found.len() <= 1, "{series} appears twice in\n{text}");
    found.first().map(|(_, v)| v.to_string())
}

#[test]
fn clients_are_counted_while_their_guard_lives() {
    let m = ProxyMetrics::new();
    let first = m.client_connected();
    let second = m.client_connected();
    drop(first);
    let text = m.encode();
    assert_eq!(value(&text, "pgha_clients").as_deref(), Some("1"));
    assert_eq!(
        value(&text, "pgha_client_connections_total").as_deref(),
        Some("2")
    );
    drop(second);
    assert_eq!(value(&m.encode(), "pgha_clients").as_deref(), Some("0"));
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with EOF");
}

#[test]
fn auth_failures_count_by_reason_and_every_reason_starts_at_zero() {
    for (i, reason) in AuthFailure::ALL.into_iter().enumerate() {
        assert_eq!(reason as usize, i, "ALL must follow declaration order");
    }
    let m = ProxyMetrics::new();
    m.auth_failure(AuthFailure::Password);
    m.auth_failure(AuthFailure::Password);
    m.auth_failure(AuthFailure::HbaReject);
    let text = m.encode();
    let of = |reason: &str| {
        value(
            &text,
            &format!("pgha_client_auth_failures_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(of("password").as_deref(), Some("2"));
    assert_eq!(of("hba_reject").as_deref(), Some("1"));
    assert_eq!(of("timeout").as_deref(), Some("0"));
    assert_eq!(of("unknown_database").as_deref(), Some("0"));
}

#[test]
fn server_connections_and_connects_by_node() {
    let m = ProxyMetrics::new();
    let a = NodeLabel::new("a");
    m.set_servers(&a, 3, 1);
    m.set_servers(&a, 2, 2);
    m.server_connect(&a, true);
    m.server_connect(&a, false);
    m.server_connect(&a, true);
    let text = m.encode();
    let get = |s: &str| value(&text, s);
    assert_eq!(
        get(r#"pgha_server_connections{node="a",state="idle"}"#).as_deref(),
        Some("2")
    );
    assert_eq!(
        get(r#"pgha_server_connections{node="a",state="active"}"#).as_deref(),
        Some("2")
    );
    assert_eq!(
        get(r#"pgha_server_connects_total{node="a",outcome="ok"}"#).as_deref(),
        Some("2")
    );
    assert_eq!(
        get(r#"pgha_server_connects_total{node="a",outcome="error"}"#).as_deref(),
        Some("1")
    );
}

#[test]
fn pool_waits_and_timeouts() {
    let m = ProxyMetrics::new();
    let b = NodeLabel::new("b");
    m.pool_wait(&b, Duration::from_millis(3));
    m.pool_wait(&b, Duration::from_millis(30));
    m.pool_timeout(&b);
    let text = m.encode();
    let get = |s: &str| value(&text, s);
    assert_eq!(
        get(r#"pgha_pool_waits_total{node="b"}"#).as_deref(),
        Some("2")
    );
    assert_eq!(
        get(r#"pgha_pool_wait_timeouts_total{node="b"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        get("pgha_pool_wait_duration_seconds_count").as_deref(),
        Some("2")
    );
    // 3 ms lands in the 5 ms bucket, 30 ms only from 50 ms on.
    assert_eq!(
        get(r#"pgha_pool_wait_duration_seconds_bucket{le="0.005"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        get(r#"pgha_pool_wait_duration_seconds_bucket{le="0.05"}"#).as_deref(),
        Some("2")
    );
}

#[test]
fn transactions_by_node_route_and_reason_with_latency_by_route() {
    let m = ProxyMetrics::new();
    let (p, s) = (NodeLabel::new("p"), NodeLabel::new("s"));
    let primary = RouteTarget::Primary;
    m.transaction(
        &s,
        RouteTarget::Standby,
        RouteReason::Read,
        Duration::from_micros(80),
    );
    m.transaction(
        &s,
        RouteTarget::Standby,
        RouteReason::Read,
        Duration::from_micros(80),
    );
    m.transaction(&p, primary, Reason::Write.into(), Duration::from_millis(2));
    m.transaction(&p, primary, RouteReason::NoStandby, Duration::from_secs(20));
    m.query(&p);
    m.query(&p);
    m.query(&s);
    let text = m.encode();
    let get = |s: &str| value(&text, s);
    let tx = |node: &str, route: &str, reason: &str| {
        get(&format!(
            "pgha_transactions_total{{node=\"{node}\",route=\"{route}\",reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(tx("s", "standby", "read").as_deref(), Some("2"));
    assert_eq!(tx("p", "primary", "write").as_deref(), Some("1"));
    assert_eq!(tx("p", "primary", "no_standby").as_deref(), Some("1"));
    assert_eq!(tx("p", "primary", "read"), None);
    assert_eq!(get(r#"pgha_queries_total{node="p"}"#).as_deref(), Some("2"));
    assert_eq!(get(r#"pgha_queries_total{node="s"}"#).as_deref(), Some("1"));
    let standby_in_100us =
        r#"pgha_transaction_duration_seconds_bucket{le="0.0001",route="standby"}"#;
    assert_eq!(get(standby_in_100us).as_deref(), Some("2"));
    // 20 s is past the last bound: only +Inf holds it.
    let primary_10s = r#"pgha_transaction_duration_seconds_bucket{le="10.0",route="primary"}"#;
    assert_eq!(get(primary_10s).as_deref(), Some("1"));
    let primary_inf = r#"pgha_transaction_duration_seconds_bucket{le="+Inf",route="primary"}"#;
    assert_eq!(get(primary_inf).as_deref(), Some("2"));
}

#[test]
fn node_labels_are_escaped_in_the_output() {
    let m = ProxyMetrics::new();
    m.query(&NodeLabel::new("odd\"name"));
    let text = m.encode();
    assert_eq!(
        value(&text, r#"pgha_queries_total{node="odd\"name"}"#).as_deref(),
        Some("1")
    );
}

fn three_nodes() -> Topology {
    Topology::new([
        NodeState::new("a", Role::Primary, "h", 1).with_lsn(Lsn(10_000)),
        NodeState::new("b", Role::Standby, "h", 2).with_lsn(Lsn(9_000)),
        NodeState::new("c", Role::Standby, "h", 3).with_status(Status::Down),
    ])
    .with_term(7)
}

#[test]
fn topology_sets_term_lag_up_and_primary() {
    let m = ProxyMetrics::new();
    m.observe_topology(&three_nodes());
    let text = m.encode();
    let get = |s: &str| value(&text, s);
    assert_eq!(get("pgha_term").as_deref(), Some("7"));
    assert_eq!(
        get(r#"pgha_node_lag_bytes{node="a"}"#).as_deref(),
        Some("0")
    );
    assert_eq!(
        get(r#"pgha_node_lag_bytes{node="b"}"#).as_deref(),
        Some("1000")
    );
    assert_eq!(
        get(r#"pgha_node_lag_bytes{node="c"}"#),
        None,
        "c has no known position: no lag series rather than a false one"
    );
    assert_eq!(get(r#"pgha_node_up{node="b"}"#).as_deref(), Some("1"));
    assert_eq!(get(r#"pgha_node_up{node="c"}"#).as_deref(), Some("0"));
    assert_eq!(get(r#"pgha_node_primary{node="a"}"#).as_deref(), Some("1"));
    assert_eq!(get(r#"pgha_node_primary{node="b"}"#).as_deref(), Some("0"));
}

#[test]
fn nodes_that_leave_the_topology_lose_their_series() {
    let m = ProxyMetrics::new();
    m.observe_topology(&three_nodes());
    let b = NodeLabel::new("b");
    m.set_servers(&b, 1, 0);
    m.query(&b);
    let after = Topology::new([
        NodeState::new("a", Role::Standby, "h", 1).with_lsn(Lsn(10_000)),
        NodeState::new("c", Role::Primary, "h", 3).with_lsn(Lsn(12_000)),
    ])
    .with_term(8);
    m.observe_topology(&after);
    let text = m.encode();
    let get = |s: &str| value(&text, s);
    assert_eq!(get("pgha_term").as_deref(), Some("8"));
    for gone in [
        "pgha_node_lag_bytes{node=\"b\"}",
        "pgha_node_up{node=\"b\"}",
    ] {
        assert_eq!(get(gone), None, "{gone} should be gone");
    }
    assert_eq!(get(r#"pgha_node_primary{node="b"}"#), None);
    assert!(samples(&text, r#"pgha_server_connections{node="b""#).is_empty());
    assert_eq!(
        get(r#"pgha_queries_total{node="b"}"#).as_deref(),
        Some("1"),
        "counters are history and stay"
    );
    assert_eq!(get(r#"pgha_node_primary{node="c"}"#).as_deref(), Some("1"));
    assert_eq!(get(r#"pgha_node_primary{node="a"}"#).as_deref(), Some("0"));
    assert_eq!(
        get(r#"pgha_node_lag_bytes{node="a"}"#).as_deref(),
        Some("2000")
    );
}

#[test]
fn two_proxies_keep_separate_counts() {
    let (one, two) = (ProxyMetrics::new(), ProxyMetrics::new());
    one.query(&NodeLabel::new("a"));
    assert_eq!(
        value(&one.encode(), r#"pgha_queries_total{node="a"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&two.encode(), r#"pgha_queries_total{node="a"}"#),
        None
    );
}

#[test]
fn a_recorder_adds_to_the_same_series_as_the_proxy_metrics() {
    let m = ProxyMetrics::new();
    let p = NodeLabel::new("p");
    let recorder = m.recorder(&p);
    m.transaction(
        &p,
        RouteTarget::Primary,
        RouteReason::Pinned,
        Duration::ZERO,
    );
    for _ in 0..3 {
        recorder.transaction(RouteTarget::Primary, RouteReason::Pinned, Duration::ZERO);
    }
    recorder.transaction(RouteTarget::Standby, RouteReason::Read, Duration::ZERO);
    recorder.queries(4);
    m.query(&p);
    let text = m.encode();
    let get = |s: &str| value(&text, s);
    let pinned = r#"pgha_transactions_total{node="p",route="primary",reason="pinned"}"#;
    assert_eq!(get(pinned).as_deref(), Some("4"));
    let read = r#"pgha_transactions_total{node="p",route="standby",reason="read"}"#;
    assert_eq!(get(read).as_deref(), Some("1"));
    assert_eq!(get(r#"pgha_queries_total{node="p"}"#).as_deref(), Some("5"));
    let all_standby = r#"pgha_transaction_duration_seconds_count{route="standby"}"#;
    assert_eq!(get(all_standby).as_deref(), Some("1"));
}

#[test]
fn runtime_stalls_start_at_zero_and_keep_the_longest_reported() {
    let m = ProxyMetrics::new();
    let text = m.encode();
    assert_eq!(
        value(&text, "pgha_runtime_stalls_total").as_deref(),
        Some("0")
    );
    assert_eq!(
        value(&text, "pgha_runtime_stall_max_seconds").as_deref(),
        Some("0.0")
    );
    m.runtime_stall_max(Duration::from_millis(250));
    m.runtime_stalled();
    let text = m.encode();
    assert_eq!(
        value(&text, "pgha_runtime_stalls_total").as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&text, "pgha_runtime_stall_max_seconds").as_deref(),
        Some("0.25")
    );
}

#[test]
fn the_vip_series_follow_the_keepers_totals() {
    let m = ProxyMetrics::new();
    let addr = "198.18.0.100/24 on eth0";
    let series = |name: &str| format!("{name}{{addr=\"{addr}\"}}");
    m.vip(addr, true, [1, 5, 3, 0]);
    m.vip(addr, true, [1, 9, 4, 0]);
    let text = m.encode();
    assert_eq!(value(&text, &series("pgha_vip_held")).as_deref(), Some("1"));
    assert_eq!(
        value(&text, &series("pgha_vip_acquisitions_total")).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&text, &series("pgha_vip_renewals_total")).as_deref(),
        Some("9")
    );
    assert_eq!(
        value(&text, &series("pgha_vip_announcements_total")).as_deref(),
        Some("4")
    );
    m.vip(addr, false, [1, 9, 4, 1]);
    let text = m.encode();
    assert_eq!(value(&text, &series("pgha_vip_held")).as_deref(), Some("0"));
    assert_eq!(
        value(&text, &series("pgha_vip_failures_total")).as_deref(),
        Some("1")
    );
}
