//! The mapping of each family of pgpool settings.

use super::*;

pub(super) const SEED_CONF: &str = include_str!("../../tests/fixtures/seed/pgpool.conf");
const SEED_HBA: &str = include_str!("../../tests/fixtures/seed/pool_hba.conf");
const SEED_PASSWD: &str = include_str!("../../tests/fixtures/seed/pool_passwd");

pub(super) fn run(conf: &str) -> Imported {
    import(&Request::new(Input::new("pgpool.conf", conf))).unwrap()
}

/// The output as TOML: it must always be valid.
pub(super) fn table(imported: &Imported) -> toml::Table {
    toml::from_str(&imported.toml).unwrap_or_else(|e| panic!("{e}\n{}", imported.toml))
}

pub(super) fn get<'t>(table: &'t toml::Table, path: &str) -> Option<&'t toml::Value> {
    let mut parts = path.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

pub(super) fn warned(imported: &Imported, text: &str) -> bool {
    imported.warnings.iter().any(|w| w.contains(text))
}

#[test]
fn every_seed_setting_is_named_with_its_line() {
    // An operator must be able to account for every line of pgpool.conf.
    let conf = pgpool_conf::PgpoolConf::parse(SEED_CONF).unwrap();
    let imported = run(SEED_CONF);
    for entry in &conf.entries {
        let mark = format!("(line {})", entry.line);
        assert!(
            imported.toml.contains(&mark),
            "{} = {} {mark} is not mentioned:\n{}",
            entry.key,
            entry.value,
            imported.toml
        );
    }
    assert!(
        !imported.toml.contains("Not known to this import"),
        "{}",
        imported.toml
    );
}

#[test]
fn backends_become_nodes_in_index_order() {
    let t = table(&run(SEED_CONF));
    let nodes = t.get("node").and_then(|n| n.as_array()).unwrap();
    let seen: Vec<(String, String, i64, i64)> = nodes
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["host"].as_str().unwrap().to_owned(),
                n["port"].as_integer().unwrap(),
                n["weight"].as_integer().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("node0".into(), "192.168.20.16".into(), 5432, 1),
            ("node1".into(), "192.168.20.17".into(), 5432, 1),
        ]
    );
}

#[test]
fn backends_without_a_port_are_skipped_and_fractional_weights_scaled() {
    let imported = run(
        "backend_hostname0 = 'a'\nbackend_port0 = 5432\nbackend_weight0 = 0.5\n\
                        backend_hostname1 = 'b'\nbackend_port1 = 5433\nbackend_weight1 = 1.25\n\
                        backend_hostname2 = 'c'\n\
                        backend_port3 = 5434\n",
    );
    let t = table(&imported);
    let nodes = t["node"].as_array().unwrap();
    let seen: Vec<(&str, &str, i64)> = nodes
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap(),
                n["host"].as_str().unwrap(),
                n.get("weight").and_then(|w| w.as_integer()).unwrap_or(-1),
            )
        })
        .collect();
    // Backend 2 has no port (pgpool ignores it); backend 3 has no host name
    // (pgpool uses its socket directory).
    assert_eq!(
        seen,
        vec![
            ("node0", "a", 50),
            ("node1", "b", 125),
            ("node3", "/tmp", -1)
        ]
    );
    assert!(
        warned(&imported, "backend 2 has no backend_port2"),
        "{:?}",
        imported.warnings
    );
}

#[test]
fn listen_addresses_and_port_become_one_listen_address() {
    for (conf, expected) in [
        (
            "listen_addresses = '*'\nport = 9999\n",
            Some("0.0.0.0:9999"),
        ),
        (
            "listen_addresses = 'localhost'\nport = 5433\n",
            Some("127.0.0.1:5433"),
        ),
        (
            "listen_addresses = '10.0.0.5, 10.0.0.6'\n",
            Some("10.0.0.5:9999"),
        ),
        (
            "listen_addresses = '::1'\nport = 6000\n",
            Some("[::1]:6000"),
        ),
        ("port = 7000\n", Some("127.0.0.1:7000")),
        ("listen_addresses = 'db.example.com'\n", None),
    ] {
        let imported = run(conf);
        let t = table(&imported);
        assert_eq!(
            get(&t, "proxy.listen").and_then(|v| v.as_str()),
            expected,
            "{conf}"
        );
    }
    assert!(warned(
        &run("listen_addresses = 'a.example'\n"),
        "not an IP address"
    ));
    assert!(warned(
        &run("listen_addresses = '10.0.0.5,10.0.0.6'\n"),
        "listens on 10.0.0.5 only"
    ));
}

#[test]
fn health_checks_become_probe_settings() {
    let t = table(&run(SEED_CONF));
    assert_eq!(
        get(&t, "monitor.probe_interval").unwrap().as_str(),
        Some("10s")
    );
    assert_eq!(
        get(&t, "monitor.probe_timeout").unwrap().as_str(),
        Some("20s")
    );
    assert_eq!(
        get(&t, "monitor.failures_before_down")
            .unwrap()
            .as_integer(),
        Some(1)
    );

    let imported = run("health_check_period = 5\nhealth_check_timeout = 0\n\
                        health_check_max_retries = 3\nhealth_check_retry_delay = 2\n\
                        health_check_period1 = 30\n");
    let t = table(&imported);
    assert_eq!(
        get(&t, "monitor.probe_interval").unwrap().as_str(),
        Some("5s")
    );
    // pgpool's "no timeout" keeps pgha's deadline.
    assert_eq!(get(&t, "monitor.probe_timeout"), None);
    assert_eq!(
        get(&t, "monitor.failures_before_down")
            .unwrap()
            .as_integer(),
        Some(4)
    );
    assert!(imported
        .toml
        .contains("health_check_retry_delay = 2 (line 4) is folded"));
    assert!(imported.toml.contains("health_check_period1 = 30 (line 5)"));

    // pgpool 4.2+ writes units.
    let t = table(&run(
        "health_check_period = 500ms\nhealth_check_timeout = '2s'\n",
    ));
    assert_eq!(
        get(&t, "monitor.probe_interval").unwrap().as_str(),
        Some("500ms")
    );
    assert_eq!(
        get(&t, "monitor.probe_timeout").unwrap().as_str(),
        Some("2s")
    );

    // Health check off: pgha still probes, at its own interval.
    let t = table(&run("health_check_period = 0\n"));
    assert_eq!(get(&t, "monitor.probe_interval"), None);
}

#[test]
fn sr_check_credentials_become_the_monitor_login() {
    let t = table(&run(SEED_CONF));
    assert_eq!(
        get(&t, "monitor.user").unwrap().as_str(),
        Some("actorcloud")
    );
    assert_eq!(
        get(&t, "monitor.password").unwrap().as_str(),
        Some("public")
    );
    assert_eq!(
        get(&t, "monitor.dbname").unwrap().as_str(),
        Some("postgres")
    );

    let t = table(&run(
        "sr_check_user = 'mon'\nsr_check_password = 'TEXTsecret'\n",
    ));
    assert_eq!(
        get(&t, "monitor.password").unwrap().as_str(),
        Some("secret")
    );

    // An encrypted password cannot be logged in with: left out, said so.
    let imported = run("health_check_user = 'hc'\nhealth_check_password = 'AESabc='\n");
    let t = table(&imported);
    assert_eq!(get(&t, "monitor.user").unwrap().as_str(), Some("hc"));
    assert_eq!(get(&t, "monitor.password"), None);
    assert!(warned(
        &imported,
        "AES-encrypted password cannot be carried over"
    ));
}

#[test]
fn load_balancing_and_delay_threshold_carry_over() {
    let t = table(&run(SEED_CONF));
    assert_eq!(get(&t, "proxy.load_balance").unwrap().as_bool(), Some(true));
    assert_eq!(
        get(&t, "proxy.max_standby_lag").unwrap().as_integer(),
        Some(10_000_000)
    );

    let t = table(&run("load_balance_mode = off\ndelay_threshold = 0\n"));
    assert_eq!(
        get(&t, "proxy.load_balance").unwrap().as_bool(),
        Some(false)
    );
    assert_eq!(
        get(&t, "proxy.max_standby_lag").unwrap().as_str(),
        Some("none")
    );
}

#[test]
fn pool_settings_and_timeouts_carry_over() {
    let t = table(&run(
        "num_init_children = 64\nmax_pool = 2\nconnection_life_time = 300\n\
                        connect_timeout = 2500\nauthentication_timeout = 30\n\
                        reset_query_list = 'ABORT; DISCARD ALL'\n",
    ));
    assert_eq!(get(&t, "proxy.pool_size").unwrap().as_integer(), Some(64));
    assert_eq!(
        get(&t, "proxy.server_idle_timeout").unwrap().as_str(),
        Some("300s")
    );
    assert_eq!(
        get(&t, "proxy.connect_timeout").unwrap().as_str(),
        Some("2500ms")
    );
    assert_eq!(
        get(&t, "proxy.startup_timeout").unwrap().as_str(),
        Some("30s")
    );
    assert_eq!(
        get(&t, "proxy.server_reset_query").unwrap().as_str(),
        Some("DISCARD ALL")
    );
}

#[test]
fn failover_commands_are_proposed_not_configured() {
    let imported = run(SEED_CONF);
    let t = table(&imported);
    assert!(t.get("commands").is_none());
    assert!(imported
        .toml
        .contains("# promote_command = \"/var/lib/pgsql/10/failover_stream.sh %d %H\""));
    assert!(imported
        .toml
        .contains("# node1 = \"/var/lib/pgsql/10/data\""));

    let imported = run("follow_primary_command = '/etc/follow.sh \"%h\"'\n");
    assert!(
        imported.toml.contains("# follow_command = "),
        "{}",
        imported.toml
    );
    assert!(
        warned(&imported, "pgha would refuse this command"),
        "{:?}",
        imported.warnings
    );
}

#[test]
fn unmapped_settings_are_listed_under_their_reason() {
    let imported = run("replication_mode = on\nmemory_cache_enabled = on\nmy_own_setting = 1\n");
    let text = &imported.toml;
    let position = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("{s} missing:\n{text}"))
    };
    assert!(position("native") < position("replication_mode = on (line 1)"));
    assert!(position("query cache") < position("memory_cache_enabled = on (line 2)"));
    assert!(position("Not known to this import") < position("my_own_setting = 1 (line 3)"));
    assert!(warned(&imported, "streaming replication only"));
}

#[test]
fn hba_and_passwd_become_the_auth_section() {
    let request = Request {
        pool_hba: Some(Input::new("pool_hba.conf", SEED_HBA)),
        pool_passwd: Some(Input::new("pool_passwd", SEED_PASSWD)),
        ..Request::new(Input::new("pgpool.conf", SEED_CONF))
    };
    let imported = import(&request).unwrap();
    let t = table(&imported);
    assert_eq!(get(&t, "auth.hba_file").unwrap().as_str(), Some("hba.conf"));
    assert_eq!(
        get(&t, "auth.auth_file").unwrap().as_str(),
        Some("userlist.txt")
    );
    assert!(imported
        .auth_file
        .as_deref()
        .unwrap()
        .contains("\"postgres\" \"md53175bce1d3201d16594cebf9d7eb3f9d\""));
    assert!(
        warned(&imported, "pool_hba.conf:7: left out"),
        "{:?}",
        imported.warnings
    );

    // Rules that ask for passwords, and no pool_passwd: check-config would
    // refuse hba_file alone, so it stays a comment.
    let request = Request {
        pool_hba: Some(Input::new("pool_hba.conf", SEED_HBA)),
        ..Request::new(Input::new("pgpool.conf", SEED_CONF))
    };
    let imported = import(&request).unwrap();
    assert_eq!(get(&table(&imported), "auth.hba_file"), None);
    assert!(imported.toml.contains("# hba_file = \"hba.conf\""));
    assert!(warned(&imported, "no pool_passwd was given"));

    // No pool_hba.conf at all: every client would be let in; say so.
    assert!(warned(&run(SEED_CONF), "lets every client in"));
}

#[test]
fn values_pgpool_would_refuse_fail_the_import_with_their_line() {
    let error = import(&Request::new(Input::new(
        "pgpool.conf",
        "port = 9999\nhealth_check_period = 'often'\nload_balance_mode = perhaps\n",
    )))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "pgpool.conf:2: health_check_period: 'often' is not a duration (seconds, or with a unit: ms, s, min, h, d) (pgpool would refuse it too)\n\
         pgpool.conf:3: load_balance_mode: perhaps is not on or off (pgpool would refuse it too)"
    );
    let error = import(&Request::new(Input::new(
        "pgpool.conf",
        "port = 9999\nport\n",
    )))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "pgpool.conf:2: port has no value (write port = 'value')"
    );
}

/// Any short value after any key the import maps: an error or a TOML, never
/// a panic, and the TOML always parses.
#[test]
fn no_short_value_makes_the_import_panic() {
    let keys = [
        "port",
        "listen_addresses",
        "backend_hostname0",
        "backend_port0",
        "backend_weight0",
        "backend_flag0",
        "health_check_period",
        "health_check_max_retries",
        "delay_threshold",
        "sr_check_password",
        "delegate_IP",
        "if_up_cmd",
        "failover_command",
        "use_watchdog",
        "other_pgpool_hostname0",
        "reset_query_list",
        "num_init_children",
        "ssl",
    ];
    let values = [
        "0",
        "-1",
        "''",
        "'x'",
        "on",
        "1.5",
        "'%'",
        "'$_IP_$'",
        "'a,b'",
        "99999999999",
        "10s",
    ];
    for key in keys {
        for value in values {
            let conf = format!("{key} = {value}\nbackend_port0 = 5432\nuse_watchdog = on\ndelegate_IP = '10.0.0.9'\n");
            if let Ok(imported) = import(&Request::new(Input::new("pgpool.conf", &conf))) {
                table(&imported);
            }
        }
    }
}
