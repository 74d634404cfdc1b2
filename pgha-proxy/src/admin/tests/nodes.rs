use std::time::{Duration, UNIX_EPOCH};

use pgha_core::NodeId;

use super::{cluster, show, BOOL, INT8, TEXT};
use crate::admin::table::utc_text;
use crate::admin::StatsRow;

#[test]
fn show_nodes_lists_every_node_with_its_model_state() {
    let mut snapshot = cluster();
    snapshot.status_since.insert(
        NodeId::new("d"),
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    let t = show("SHOW NODES", &snapshot);
    assert_eq!(
        t.names(),
        [
            "node",
            "host",
            "port",
            "role",
            "status",
            "weight",
            "priority",
            "upstream",
            "term",
            "term_primary",
            "writable",
            "read_candidate",
            "suspected",
            "in_recovery",
            "timeline",
            "lsn",
            "lag_bytes",
            "receive_lag_bytes",
            "lag_us",
            "failures",
            "last_failure",
            "status_since",
            "writes_held"
        ]
    );
    let kind = |name: &str| {
        t.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, oid)| *oid)
    };
    assert_eq!(kind("host"), Some(TEXT));
    assert_eq!(kind("port"), Some(INT8));
    assert_eq!(kind("writable"), Some(BOOL));
    assert_eq!(t.rows.len(), 4);
    let column = |name: &str| -> Vec<Option<&str>> { (0..4).map(|r| t.get(r, name)).collect() };
    assert_eq!(column("node"), [Some("a"), Some("b"), Some("c"), Some("d")]);
    assert_eq!(t.get(1, "host"), Some("10.0.0.2"));
    assert_eq!(t.get(1, "port"), Some("5433"));
    assert_eq!(
        column("role"),
        [
            Some("primary"),
            Some("standby"),
            Some("standby"),
            Some("standby")
        ]
    );
    assert_eq!(
        column("status"),
        [Some("up"), Some("up"), Some("up"), Some("down")]
    );
    assert_eq!(t.get(1, "weight"), Some("2"));
    assert_eq!(column("upstream"), [None, Some("a"), Some("a"), Some("a")]);
    assert_eq!(column("term"), [Some("3"); 4]);
    assert_eq!(
        column("term_primary"),
        [Some("t"), Some("f"), Some("f"), Some("f")]
    );
    assert_eq!(
        column("writable"),
        [Some("t"), Some("f"), Some("f"), Some("f")]
    );
    // c is over the 4096-byte limit, d is down, a is the primary.
    assert_eq!(
        column("read_candidate"),
        [Some("f"), Some("t"), Some("f"), Some("f")]
    );
    assert_eq!(
        column("in_recovery"),
        [Some("f"), Some("t"), Some("t"), None]
    );
    assert_eq!(column("timeline"), [Some("4"), Some("4"), Some("4"), None]);
    assert_eq!(
        column("lsn"),
        [
            Some("0/3000000"),
            Some("0/2FFFF00"),
            Some("0/2F00000"),
            None
        ]
    );
    assert_eq!(
        column("lag_bytes"),
        [Some("0"), Some("256"), Some("1048576"), None]
    );
    assert_eq!(
        column("receive_lag_bytes"),
        [Some("0"), Some("256"), Some("1048576"), None]
    );
    assert_eq!(column("lag_us"), [None, Some("250000"), None, None]);
    assert_eq!(
        column("failures"),
        [Some("0"), Some("0"), Some("0"), Some("2")]
    );
    assert_eq!(
        column("last_failure"),
        [None, None, None, Some("connect refused")]
    );
    assert_eq!(
        column("status_since"),
        [None, None, None, Some("2023-11-14 22:13:20 UTC")]
    );
}

#[test]
fn without_load_balancing_no_node_is_a_read_candidate() {
    let mut snapshot = cluster();
    snapshot.load_balance = false;
    let t = show("SHOW NODES", &snapshot);
    assert!((0..4).all(|r| t.get(r, "read_candidate") == Some("f")));
    let t = show("SHOW POOL_NODES", &snapshot);
    assert!((0..4).all(|r| t.get(r, "load_balance_node") == Some("false")));
}

#[test]
fn the_time_lag_limit_takes_slow_replayers_off_the_read_candidates() {
    let mut snapshot = cluster();
    let candidates = |snapshot: &crate::admin::AdminSnapshot| -> Vec<Option<String>> {
        let t = show("SHOW NODES", snapshot);
        (0..4)
            .map(|r| t.get(r, "read_candidate").map(str::to_owned))
            .collect()
    };
    let b_only = [Some("f"), Some("t"), Some("f"), Some("f")].map(|v| v.map(str::to_owned));
    assert_eq!(candidates(&snapshot), b_only);
    // b replays 250 ms late.
    snapshot.max_standby_lag_time = Some(Duration::from_millis(250));
    assert_eq!(candidates(&snapshot), b_only);
    snapshot.max_standby_lag_time = Some(Duration::from_millis(249));
    assert!(candidates(&snapshot)
        .iter()
        .all(|v| v.as_deref() == Some("f")));
}

#[test]
fn show_pool_nodes_has_pgpool_columns_and_values() {
    let mut snapshot = cluster();
    snapshot.stats.push(StatsRow {
        reads: 7,
        ..StatsRow::new(NodeId::new("b"))
    });
    snapshot.status_since.insert(
        NodeId::new("a"),
        UNIX_EPOCH + Duration::from_secs(951_782_400),
    );
    let t = show("SHOW POOL_NODES", &snapshot);
    assert_eq!(
        t.names(),
        [
            "node_id",
            "hostname",
            "port",
            "status",
            "pg_status",
            "lb_weight",
            "role",
            "pg_role",
            "select_cnt",
            "load_balance_node",
            "replication_delay",
            "replication_state",
            "replication_sync_state",
            "last_status_change"
        ]
    );
    assert!(
        t.columns.iter().all(|(_, oid)| *oid == TEXT),
        "pgpool sends text"
    );
    let column = |name: &str| -> Vec<Option<&str>> { (0..4).map(|r| t.get(r, name)).collect() };
    assert_eq!(
        column("node_id"),
        [Some("0"), Some("1"), Some("2"), Some("3")]
    );
    assert_eq!(t.get(3, "hostname"), Some("10.0.0.4"));
    assert_eq!(t.get(3, "port"), Some("5435"));
    assert_eq!(
        column("status"),
        [Some("up"), Some("up"), Some("up"), Some("down")]
    );
    assert_eq!(
        column("pg_status"),
        [Some("up"), Some("up"), Some("up"), Some("down")]
    );
    // Weights 1, 2, 1, 1 normalised as pgpool shows them.
    assert_eq!(
        column("lb_weight"),
        [
            Some("0.200000"),
            Some("0.400000"),
            Some("0.200000"),
            Some("0.200000")
        ]
    );
    assert_eq!(
        column("role"),
        [
            Some("primary"),
            Some("standby"),
            Some("standby"),
            Some("standby")
        ]
    );
    assert_eq!(
        column("pg_role"),
        [
            Some("primary"),
            Some("standby"),
            Some("standby"),
            Some("unknown")
        ]
    );
    assert_eq!(
        column("select_cnt"),
        [Some("0"), Some("7"), Some("0"), Some("0")]
    );
    assert_eq!(
        column("load_balance_node"),
        [Some("false"), Some("true"), Some("false"), Some("false")]
    );
    assert_eq!(
        column("replication_delay"),
        [Some("0"), Some("256"), Some("1048576"), None]
    );
    assert_eq!(column("replication_state"), [Some(""); 4]);
    assert_eq!(
        column("last_status_change"),
        [Some("2000-02-29 00:00:00"), None, None, None]
    );
}

#[test]
fn timestamps_are_utc_calendar_text() {
    let at = |secs: u64| utc_text(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0).as_deref(), Some("1970-01-01 00:00:00"));
    assert_eq!(at(951_782_400).as_deref(), Some("2000-02-29 00:00:00"));
    assert_eq!(at(951_868_800).as_deref(), Some("2000-03-01 00:00:00"));
    assert_eq!(at(1_735_689_599).as_deref(), Some("2024-12-31 23:59:59"));
    assert_eq!(
        at(4_107_542_400).as_deref(),
        Some("2100-03-01 00:00:00"),
        "2100 is no leap year"
    );
    assert_eq!(at(253_402_300_799).as_deref(), Some("9999-12-31 23:59:59"));
    assert_eq!(at(253_402_300_800), None);
    assert_eq!(utc_text(UNIX_EPOCH - Duration::from_secs(1)), None);
}

#[test]
fn a_standby_with_replay_paused_shows_its_unreplayed_wal_and_gets_no_reads() {
    let mut snapshot = cluster();
    let mut topology = (*snapshot.topology).clone();
    let nodes: Vec<_> = topology
        .nodes()
        .iter()
        .cloned()
        .map(|mut n| {
            if n.id.as_str() == "b" {
                // Everything received, 8 MiB of it not replayed.
                n.received_lsn = Some(pgha_core::Lsn(super::PRIMARY_LSN));
                n.replayed_lsn = Some(pgha_core::Lsn(super::PRIMARY_LSN - (8 << 20)));
            }
            n
        })
        .collect();
    topology = pgha_core::Topology::new(nodes).with_term(3);
    snapshot.topology = std::sync::Arc::new(topology);
    let t = show("SHOW NODES", &snapshot);
    assert_eq!(t.get(1, "node"), Some("b"));
    assert_eq!(t.get(1, "lag_bytes"), Some("8388608"));
    assert_eq!(t.get(1, "receive_lag_bytes"), Some("0"));
    assert_eq!(t.get(1, "read_candidate"), Some("f"));
    let t = show("SHOW POOL_NODES", &snapshot);
    assert_eq!(t.get(1, "replication_delay"), Some("8388608"));
}

#[test]
fn a_suspected_standby_is_shown_and_is_no_read_candidate() {
    let mut snapshot = cluster();
    assert_eq!(
        show("SHOW NODES", &snapshot).get(1, "read_candidate"),
        Some("t")
    );
    snapshot.suspected.insert(NodeId::new("b"));
    let t = show("SHOW NODES", &snapshot);
    assert_eq!(t.get(1, "node"), Some("b"));
    assert_eq!(t.get(1, "suspected"), Some("t"));
    assert_eq!(t.get(1, "read_candidate"), Some("f"));
    assert_eq!(t.get(0, "suspected"), Some("f"));
    let t = show("SHOW POOL_NODES", &snapshot);
    assert_eq!(t.get(1, "load_balance_node"), Some("false"));
}
