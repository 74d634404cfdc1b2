use std::time::{Duration, UNIX_EPOCH};

use pgha_core::NodeId;

use super::{cluster, show, BOOL, INT8, TEXT};
use crate::admin::{ClientRow, ClientState, ConfigRow, PoolRow, ServerRow, ServerState, StatsRow};

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn show_pools_splits_maxwait_as_pgbouncer() {
    let mut snapshot = cluster();
    snapshot.paused = true;
    snapshot.pools.push(PoolRow {
        node: NodeId::new("a"),
        database: "app".into(),
        user: "alice".into(),
        mode: "transaction".into(),
        cl_active: 3,
        cl_waiting: 2,
        sv_active: 3,
        sv_idle: 1,
        sv_login: 0,
        max_wait: Duration::from_micros(2_500_123),
    });
    let t = show("SHOW POOLS", &snapshot);
    assert_eq!(
        t.names(),
        [
            "node",
            "database",
            "user",
            "cl_active",
            "cl_waiting",
            "sv_active",
            "sv_idle",
            "sv_login",
            "maxwait",
            "maxwait_us",
            "pool_mode",
            "paused"
        ]
    );
    assert_eq!(t.columns[3].1, INT8);
    assert_eq!(
        t.rows,
        [[
            Some("a"),
            Some("app"),
            Some("alice"),
            Some("3"),
            Some("2"),
            Some("3"),
            Some("1"),
            Some("0"),
            Some("2"),
            Some("500123"),
            Some("transaction"),
            Some("t")
        ]
        .map(|v| v.map(str::to_owned))]
    );
    snapshot.pools.clear();
    assert!(
        show("SHOW POOLS", &snapshot).rows.is_empty(),
        "no pool, no row"
    );
}

#[test]
fn show_clients_shows_addresses_times_and_links() {
    let mut snapshot = cluster();
    let client = |pid, state, peer: Option<&str>| ClientRow {
        pid,
        user: "alice".into(),
        database: "app".into(),
        application_name: None,
        state,
        peer: peer.and_then(|p| p.parse().ok()),
        connect_time: at(1_700_000_000),
        request_time: None,
        node: None,
        server_pid: None,
    };
    snapshot.clients.push(ClientRow {
        application_name: Some("psql".into()),
        request_time: Some(at(1_700_000_060)),
        node: Some(NodeId::new("b")),
        server_pid: Some(4242),
        ..client(17, ClientState::Active, Some("192.0.2.7:50000"))
    });
    snapshot.clients.push(client(
        18,
        ClientState::Waiting,
        Some("[2001:db8::1]:40000"),
    ));
    snapshot.clients.push(client(19, ClientState::Idle, None));
    let t = show("SHOW CLIENTS", &snapshot);
    assert_eq!(
        t.names(),
        [
            "pid",
            "user",
            "database",
            "application_name",
            "state",
            "addr",
            "port",
            "connect_time",
            "request_time",
            "node",
            "server_pid"
        ]
    );
    let column = |name: &str| -> Vec<Option<&str>> { (0..3).map(|r| t.get(r, name)).collect() };
    assert_eq!(column("pid"), [Some("17"), Some("18"), Some("19")]);
    assert_eq!(
        column("state"),
        [Some("active"), Some("waiting"), Some("idle")]
    );
    assert_eq!(
        column("addr"),
        [Some("192.0.2.7"), Some("2001:db8::1"), None]
    );
    assert_eq!(column("port"), [Some("50000"), Some("40000"), None]);
    assert_eq!(column("application_name"), [Some("psql"), None, None]);
    assert_eq!(t.get(0, "connect_time"), Some("2023-11-14 22:13:20 UTC"));
    assert_eq!(
        column("request_time"),
        [Some("2023-11-14 22:14:20 UTC"), None, None]
    );
    assert_eq!(column("node"), [Some("b"), None, None]);
    assert_eq!(column("server_pid"), [Some("4242"), None, None]);
}

#[test]
fn show_servers_takes_host_and_port_from_the_topology() {
    let mut snapshot = cluster();
    let server = |node: &str, state| ServerRow {
        node: NodeId::new(node),
        database: "app".into(),
        user: "alice".into(),
        state,
        backend_pid: None,
        connect_time: at(1_700_000_000),
        request_time: None,
        client_pid: None,
    };
    snapshot.servers.push(ServerRow {
        backend_pid: Some(4242),
        request_time: Some(at(1_700_000_060)),
        client_pid: Some(17),
        ..server("b", ServerState::Active)
    });
    snapshot.servers.push(server("gone", ServerState::Login));
    let t = show("SHOW SERVERS", &snapshot);
    assert_eq!(
        t.names(),
        [
            "node",
            "host",
            "port",
            "database",
            "user",
            "state",
            "backend_pid",
            "connect_time",
            "request_time",
            "client_pid"
        ]
    );
    let column = |name: &str| -> Vec<Option<&str>> { (0..2).map(|r| t.get(r, name)).collect() };
    assert_eq!(
        column("host"),
        [Some("10.0.0.2"), None],
        "a node no longer known"
    );
    assert_eq!(column("port"), [Some("5433"), None]);
    assert_eq!(column("state"), [Some("active"), Some("login")]);
    assert_eq!(column("backend_pid"), [Some("4242"), None]);
    assert_eq!(column("client_pid"), [Some("17"), None]);
    assert_eq!(
        column("request_time"),
        [Some("2023-11-14 22:14:20 UTC"), None]
    );
}

#[test]
fn show_stats_reports_microseconds_and_lifetime_averages() {
    let mut snapshot = cluster();
    snapshot.stats.push(StatsRow {
        xacts: 4,
        queries: 10,
        reads: 6,
        received: 1000,
        sent: 5000,
        xact_time: Duration::from_millis(10),
        query_time: Duration::from_millis(3),
        wait_time: Duration::from_micros(7),
        ..StatsRow::new(NodeId::new("a"))
    });
    snapshot.stats.push(StatsRow::new(NodeId::new("b")));
    let t = show("SHOW STATS", &snapshot);
    assert!(t.columns.iter().skip(1).all(|(_, oid)| *oid == INT8));
    let row = |r: usize| -> Vec<Option<&str>> { t.names().iter().map(|c| t.get(r, c)).collect() };
    assert_eq!(
        row(0),
        [
            Some("a"),
            Some("4"),
            Some("10"),
            Some("6"),
            Some("1000"),
            Some("5000"),
            Some("10000"),
            Some("3000"),
            Some("7"),
            Some("2500"),
            Some("300")
        ]
    );
    assert_eq!(row(1)[9..], [Some("0"), Some("0")], "no division by zero");
}

#[test]
fn show_config_masks_secrets() {
    let mut snapshot = cluster();
    let row = |key: &str, value: &str, default: Option<&str>, changeable| ConfigRow {
        key: key.into(),
        value: value.into(),
        default: default.map(Into::into),
        changeable,
    };
    snapshot.config = vec![
        row("max_standby_lag_bytes", "1048576", Some("1048576"), true),
        row("server_password", "hunter2", None, false),
        row("Auth_Secret_File", "/etc/x", Some("/etc/default"), false),
    ];
    let t = show("SHOW CONFIG", &snapshot);
    assert_eq!(
        t.columns,
        [
            ("key", TEXT),
            ("value", TEXT),
            ("default", TEXT),
            ("changeable", BOOL)
        ]
        .map(|(n, oid)| (n.to_owned(), oid))
    );
    assert_eq!(t.get(0, "value"), Some("1048576"));
    assert_eq!(t.get(0, "changeable"), Some("t"));
    assert_eq!(t.get(1, "value"), Some("********"));
    assert_eq!(t.get(1, "default"), None);
    assert_eq!(t.get(2, "value"), Some("********"));
    assert_eq!(t.get(2, "default"), Some("********"));
}

#[test]
fn show_help_lists_every_command() {
    let t = show("SHOW HELP", &cluster());
    let commands: Vec<&str> = (0..t.rows.len())
        .filter_map(|r| t.get(r, "command"))
        .collect();
    for (_, keyword) in crate::admin::ShowWhat::ALL {
        assert!(
            commands.contains(&format!("SHOW {keyword}").as_str()),
            "{keyword}"
        );
    }
    for command in [
        "PAUSE",
        "RESUME",
        "RELOAD",
        "PROMOTE node",
        "SWITCHOVER [node]",
        "ATTACH node",
        "DETACH node",
    ] {
        assert!(commands.contains(&command));
    }
    assert!((0..t.rows.len()).all(|r| t.get(r, "description").is_some_and(|d| !d.is_empty())));
}
