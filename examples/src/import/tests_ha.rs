//! `[watchdog]`, `[vip]` and `[local]` from pgpool's watchdog settings.

use super::tests::{get, run, table, warned, SEED_CONF};
use super::*;

fn str_at<'t>(t: &'t toml::Table, path: &str) -> &'t str {
    get(t, path)
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{path} missing"))
}

/// Whether the output's comments say `text` (their lines joined again).
fn said(imported: &Imported, text: &str) -> bool {
    imported.toml.replace("\n#   ", " ").contains(text)
}

/// `(id, address, witness)` of each `[[watchdog.member]]`.
fn members(t: &toml::Table) -> Vec<(i64, String, bool)> {
    get(t, "watchdog.member")
        .and_then(toml::Value::as_array)
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_integer().unwrap(),
                m["address"].as_str().unwrap().to_owned(),
                m.get("witness").is_some(),
            )
        })
        .collect()
}

/// The seed's host B: the same file with the two watchdog hosts swapped.
fn seed_host_b() -> String {
    SEED_CONF
        .replace(
            "wd_hostname = '192.168.20.16'",
            "wd_hostname = '192.168.20.17'",
        )
        .replace(
            "other_pgpool_hostname0 = '192.168.20.17'",
            "other_pgpool_hostname0 = '192.168.20.16'",
        )
}

#[test]
fn the_seeds_watchdog_vip_and_local_host_are_real_sections() {
    let imported = run(SEED_CONF);
    let t = table(&imported);
    assert_eq!(get(&t, "watchdog.id").unwrap().as_integer(), Some(1));
    assert_eq!(str_at(&t, "watchdog.state_dir"), "/var/lib/pgha/watchdog");
    assert_eq!(
        members(&t),
        vec![
            (1, "192.168.20.16:7400".into(), false),
            (2, "192.168.20.17:7400".into(), false),
        ]
    );
    // Two members: the witness is proposed, with what two alone cost.
    assert!(
        imported.toml.contains("# witness = true"),
        "{}",
        imported.toml
    );
    assert!(said(&imported, "never fails over nor moves the VIP"));
    // The seed had no wd_authkey: the operator creates the key, told how.
    assert_eq!(str_at(&t, "watchdog.secret_file"), "/etc/pgha/watchdog.key");
    assert!(imported
        .toml
        .contains("`head -c 32 /dev/urandom | base64 > /etc/pgha/watchdog.key`"));
    assert!(warned(&imported, "create /etc/pgha/watchdog.key"));
    assert_eq!(imported.watchdog_key, None);
    // pgpool's timers are explained, not copied.
    assert!(get(&t, "watchdog.lease").is_none());
    assert!(imported.toml.contains("wd_heartbeat_deadtime = 30 (line"));

    // The usual if_up_cmd: netlink, no commands.
    assert_eq!(str_at(&t, "vip.address"), "192.168.20.50/24");
    assert_eq!(str_at(&t, "vip.interface"), "ens33");
    for key in ["if_up_cmd", "if_down_cmd", "arping_cmd"] {
        assert!(get(&t, &format!("vip.{key}")).is_none(), "{key}");
    }
    assert!(said(&imported, "gratuitous ARP at each takeover"));
    assert!(said(&imported, "replaces arping_cmd"));

    assert_eq!(str_at(&t, "local.node"), "node0");
    assert_eq!(str_at(&t, "local.data_dir"), "/var/lib/pgsql/10/data");
    assert_eq!(str_at(&t, "local.run_as"), "postgres");
    assert!(!imported.toml.contains("# [watchdog]"));
}

#[test]
fn each_hosts_file_names_itself_and_gives_every_member_the_same_id() {
    let a = table(&run(SEED_CONF));
    let b = table(&run(&seed_host_b()));
    assert_eq!(members(&a), members(&b));
    assert_eq!(get(&b, "watchdog.id").unwrap().as_integer(), Some(2));
    assert_eq!(str_at(&b, "local.node"), "node1");
}

#[test]
fn a_long_enough_wd_authkey_goes_to_the_secret_file_never_into_the_toml() {
    let key = "a-shared-key-of-32-bytes-or-so!!";
    let conf = SEED_CONF.replace("wd_authkey = ''", &format!("wd_authkey = '{key}'"));
    let imported = run(&conf);
    assert_eq!(
        str_at(&table(&imported), "watchdog.secret_file"),
        "watchdog.key"
    );
    assert_eq!(imported.watchdog_key.as_deref(), Some(&*format!("{key}\n")));
    assert!(!imported.toml.contains(key));

    // Printed to stdout: nothing is written beside it; the operator is
    // told where to put the key.
    let request = Request {
        secret_name: None,
        ..Request::new(Input::new("pgpool.conf", &conf))
    };
    let imported = import(&request).unwrap();
    assert_eq!(imported.watchdog_key, None);
    assert!(!imported.toml.contains(key));
    assert_eq!(
        str_at(&table(&imported), "watchdog.secret_file"),
        "/etc/pgha/watchdog.key"
    );
    assert!(warned(&imported, "wd_authkey is not written to stdout"));

    // Too short for pgha: a new key, said so.
    let imported = run(&SEED_CONF.replace("wd_authkey = ''", "wd_authkey = 'short'"));
    assert_eq!(imported.watchdog_key, None);
    assert!(!imported.toml.contains("'short'"));
    assert_eq!(
        str_at(&table(&imported), "watchdog.secret_file"),
        "/etc/pgha/watchdog.key"
    );
    assert!(warned(&imported, "shorter than 16 bytes"));
}

#[test]
fn another_if_up_cmd_keeps_pgpools_commands_and_says_what_that_costs() {
    let conf = SEED_CONF
        .replace(
            "if_up_cmd = 'ip addr add $_IP_$/24 dev ens33 label ens33:0'",
            "if_up_cmd = '/etc/pgpool-II/vip.sh up $_IP_$'",
        )
        .replace(
            "if_down_cmd = 'ip addr del $_IP_$/24 dev ens33'",
            "if_down_cmd = '/etc/pgpool-II/vip.sh down $_IP_$'",
        );
    let imported = run(&conf);
    let t = table(&imported);
    assert_eq!(
        str_at(&t, "vip.if_up_cmd"),
        "/etc/pgpool-II/vip.sh up $_IP_$"
    );
    assert_eq!(
        str_at(&t, "vip.if_down_cmd"),
        "/etc/pgpool-II/vip.sh down $_IP_$"
    );
    assert_eq!(
        str_at(&t, "vip.arping_cmd"),
        "arping -U $_IP_$ -w 1 -I ens33"
    );
    // The interface from arping's -I; no prefix anywhere: /24, to check.
    assert_eq!(str_at(&t, "vip.interface"), "ens33");
    assert_eq!(str_at(&t, "vip.address"), "192.168.20.50/24");
    assert!(warned(&imported, "prefix length /24 assumed"));
    assert!(
        said(&imported, "the kernel puts no lifetime on the address"),
        "{}",
        imported.toml
    );
}

#[test]
fn a_prefix_from_delegate_ip_or_if_up_cmd_and_pgpools_default_command() {
    let imported = run(&SEED_CONF.replace("$_IP_$/24 dev ens33 label", "$_IP_$ dev ens33 label"));
    assert_eq!(str_at(&table(&imported), "vip.address"), "192.168.20.50/24");
    assert!(warned(&imported, "/24 assumed"));

    let imported = run(&SEED_CONF.replace("'192.168.20.50'", "'192.168.20.50/26'"));
    assert_eq!(str_at(&table(&imported), "vip.address"), "192.168.20.50/26");
    assert!(!warned(&imported, "assumed"));

    // No if_up_cmd: pgpool's default, on eth0.
    let imported = run(&SEED_CONF.replace(
        "if_up_cmd = 'ip addr add $_IP_$/24 dev ens33 label ens33:0'",
        "",
    ));
    let t = table(&imported);
    assert_eq!(str_at(&t, "vip.interface"), "eth0");
    assert!(imported.toml.contains("pgpool's default"));
}

#[test]
fn without_a_watchdog_there_is_no_watchdog_vip_or_local_section() {
    let imported = run(
        "use_watchdog = off\nwd_hostname = ''\nwd_port = 9000\ndelegate_IP = '10.0.0.9'\n\
         if_up_cmd = 'ip addr add $_IP_$/24 dev eth0'\nbackend_hostname0 = '10.0.0.1'\n\
         backend_port0 = 5432\n",
    );
    let t = table(&imported);
    for section in ["watchdog", "vip", "local"] {
        assert!(t.get(section).is_none(), "{section}:\n{}", imported.toml);
    }
    assert!(imported.toml.contains("[local] left out"));
    // Their settings are listed as not carried over.
    for line in [
        "# wd_port = 9000 (line 3)",
        "# delegate_IP = '10.0.0.9' (line 4)",
        "# if_up_cmd = 'ip addr add $_IP_$/24 dev eth0' (line 5)",
    ] {
        assert!(imported.toml.contains(line), "{line}:\n{}", imported.toml);
    }
}

#[test]
fn a_watchdog_host_that_is_no_backend_gets_no_local_section() {
    let imported = run(&SEED_CONF.replace(
        "wd_hostname = '192.168.20.16'",
        "wd_hostname = '192.168.20.30'",
    ));
    let t = table(&imported);
    assert!(t.get("local").is_none());
    assert!(said(
        &imported,
        "(192.168.20.30) is none of the backend_hostnameN"
    ));
    // The backends' hosts first, so the ids do not depend on which host
    // is importing.
    assert_eq!(
        members(&t),
        vec![
            (1, "192.168.20.17:7400".into(), false),
            (2, "192.168.20.30:7400".into(), false),
        ]
    );
    assert_eq!(get(&t, "watchdog.id").unwrap().as_integer(), Some(2));
}

const PGPOOL_42: &str = "use_watchdog = on\nhostname0 = 'a.example'\nwd_port0 = 9000\n\
                         pgpool_port0 = 9999\nhostname1 = 'b.example'\nwd_port1 = 9001\n\
                         pgpool_port1 = 9999\nheartbeat_hostname0 = 'a.example'\n\
                         heartbeat_port0 = 9694\nbackend_clustering_mode = 'streaming_replication'\n\
                         backend_hostname0 = 'a.example'\nbackend_port0 = 5432\n\
                         backend_data_directory0 = '/pg/a'\nbackend_hostname1 = 'b.example'\n\
                         backend_port1 = 5432\nbackend_data_directory1 = '/pg/b'\n";

#[test]
fn pgpool_42_hosts_and_the_pgpool_node_id_file_name_this_host() {
    let request = Request {
        pgpool_node_id: Some(Input::new("pgpool_node_id", "1\n")),
        ..Request::new(Input::new("pgpool.conf", PGPOOL_42))
    };
    let imported = import(&request).unwrap();
    let t = table(&imported);
    assert_eq!(
        members(&t),
        vec![
            (1, "a.example:7400".into(), false),
            (2, "b.example:7400".into(), false),
        ]
    );
    assert_eq!(get(&t, "watchdog.id").unwrap().as_integer(), Some(2));
    assert_eq!(str_at(&t, "local.node"), "node1");
    assert_eq!(str_at(&t, "local.data_dir"), "/pg/b");
    for line in 1..=16 {
        assert!(
            imported.toml.contains(&format!("(line {line})")),
            "line {line}:\n{}",
            imported.toml
        );
    }
    assert!(!warned(&imported, "streaming replication only"));

    // Without the file this host is unknown: said, and check-config will
    // refuse the file until the id is set.
    let imported = run(PGPOOL_42);
    let t = table(&imported);
    assert!(get(&t, "watchdog.id").is_none());
    assert!(t.get("local").is_none());
    assert!(warned(&imported, "[watchdog] id left out"));

    let request = Request {
        pgpool_node_id: Some(Input::new("/etc/pgpool-II/pgpool_node_id", "one\n")),
        ..Request::new(Input::new("pgpool.conf", PGPOOL_42))
    };
    assert_eq!(
        import(&request).unwrap_err().to_string(),
        "/etc/pgpool-II/pgpool_node_id:1: \"one\" is not a pgpool node id (0, 1, …)"
    );
}
