//! `pgha import-pgpool` as an operator runs it: the built binary on the
//! seed deployment's pgpool.conf, pool_hba.conf and pool_passwd, then
//! `pgha check-config` on what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seed")
        .join(name)
}

fn pgha(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgha"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the pgha binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// Imports the seed's three files into `dir/pgha.toml`.
fn import_seed(dir: &Path) -> Output {
    let (conf, hba, passwd) = (
        fixture("pgpool.conf"),
        fixture("pool_hba.conf"),
        fixture("pool_passwd"),
    );
    let out = dir.join("pgha.toml");
    pgha(&[
        "import-pgpool",
        path(&conf),
        path(&hba),
        path(&passwd),
        "-o",
        path(&out),
    ])
}

#[test]
fn the_seeds_pgpool_config_imports_into_a_file_check_config_accepts() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let imported = import_seed(dir.path());
    assert!(
        imported.status.success(),
        "import failed: {}",
        text(&imported.stderr)
    );
    let stderr = text(&imported.stderr);
    // The replication rules of pool_hba.conf are named, with their lines.
    assert!(
        stderr.contains("pool_hba.conf:7: left out")
            && stderr.contains("pool_hba.conf:8: left out"),
        "{stderr}"
    );

    let config = dir.path().join("pgha.toml");
    // The seed had no wd_authkey: check-config names the key file the
    // import's comment says to create, and the import warned about it.
    assert!(stderr.contains("create /etc/pgha/watchdog.key"), "{stderr}");
    let refused = pgha(&["check-config", "--config", path(&config)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("secret_file /etc/pgha/watchdog.key"),
        "{}",
        text(&refused.stderr)
    );
    // The operator creates it as told (here beside the file, not in /etc).
    let key = dir.path().join("watchdog.key");
    std::fs::write(&key, "c2VjcmV0LXNoYXJlZC1ieS1ldmVyeS1tZW1iZXI=\n").expect("write the key");
    let imported_text = std::fs::read_to_string(&config).expect("the import wrote pgha.toml");
    std::fs::write(
        &config,
        runnable_here(&imported_text.replace("/etc/pgha/watchdog.key", path(&key))),
    )
    .expect("rewrite pgha.toml");

    let checked = pgha(&["check-config", "--config", path(&config)]);
    let shown = text(&checked.stdout);
    assert!(
        checked.status.success(),
        "check-config refused the import:\n{}\n{}",
        text(&checked.stderr),
        std::fs::read_to_string(&config).unwrap_or_default()
    );
    // Two members and no witness: valid, and what that costs is said.
    assert!(
        text(&checked.stderr).contains("note: 2 watchdog members and no third"),
        "{}",
        text(&checked.stderr)
    );

    // The effective settings are the seed's.
    let effective: toml::Table = toml::from_str(&shown).expect("check-config prints TOML");
    let value = |section: &str, key: &str| {
        effective
            .get(section)
            .and_then(|s| s.get(key))
            .cloned()
            .unwrap_or_else(|| panic!("[{section}] {key} missing:\n{shown}"))
    };
    let nodes: Vec<(String, String, i64, i64)> = effective["node"]
        .as_array()
        .expect("[[node]]s")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or_default().to_owned(),
                n["host"].as_str().unwrap_or_default().to_owned(),
                n["port"].as_integer().unwrap_or_default(),
                n["weight"].as_integer().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("node0".into(), "192.168.20.16".into(), 5432, 1),
            ("node1".into(), "192.168.20.17".into(), 5432, 1),
        ]
    );
    for (section, key, expected) in [
        ("proxy", "listen", toml::Value::from("0.0.0.0:9999")),
        ("proxy", "load_balance", toml::Value::from(true)),
        ("proxy", "max_standby_lag", toml::Value::from(10_000_000)),
        ("proxy", "pool_size", toml::Value::from(32)),
        ("proxy", "connect_timeout", toml::Value::from("10s")),
        ("proxy", "startup_timeout", toml::Value::from("60s")),
        (
            "proxy",
            "server_reset_query",
            toml::Value::from("DISCARD ALL"),
        ),
        ("monitor", "probe_interval", toml::Value::from("10s")),
        ("monitor", "probe_timeout", toml::Value::from("20s")),
        ("monitor", "failures_before_down", toml::Value::from(1)),
        ("monitor", "user", toml::Value::from("actorcloud")),
        ("monitor", "dbname", toml::Value::from("postgres")),
    ] {
        assert_eq!(value(section, key), expected, "[{section}] {key}");
    }
    // The converted hba and auth files are the ones in use.
    let hba = value("auth", "hba_file");
    assert_eq!(
        hba.as_str().map(Path::new).and_then(Path::file_name),
        Some("hba.conf".as_ref())
    );
    let auth = value("auth", "auth_file");
    assert_eq!(
        auth.as_str().map(Path::new).and_then(Path::file_name),
        Some("userlist.txt".as_ref())
    );
    assert!(
        shown.contains("# [monitor] password: set (not shown)"),
        "{shown}"
    );

    // The seed's watchdog, VIP and this host's server, as pgha runs them.
    let members: Vec<(i64, String)> = value("watchdog", "member")
        .as_array()
        .expect("[[watchdog.member]]s")
        .iter()
        .map(|m| {
            (
                m["id"].as_integer().unwrap_or_default(),
                m["address"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![
            (1, "192.168.20.16:7400".into()),
            (2, "192.168.20.17:7400".into()),
        ]
    );
    for (section, key, expected) in [
        ("watchdog", "id", toml::Value::from(1)),
        (
            "watchdog",
            "listen",
            toml::Value::from("192.168.20.16:7400"),
        ),
        ("vip", "address", toml::Value::from("192.168.20.50/24")),
        ("vip", "interface", toml::Value::from("ens33")),
        ("local", "node", toml::Value::from("node0")),
        (
            "local",
            "data_dir",
            toml::Value::from("/var/lib/pgsql/10/data"),
        ),
    ] {
        assert_eq!(value(section, key), expected, "[{section}] {key}");
    }
    // Netlink: pgpool's commands are not used.
    assert!(effective["vip"].get("if_up_cmd").is_none(), "{shown}");
}

/// `run_as = "postgres"` names a user check-config looks up: on a machine
/// without one the line goes (the test is about the import, not the
/// machine).
fn runnable_here(config: &str) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    if passwd.lines().any(|l| l.starts_with("postgres:")) {
        config.to_owned()
    } else {
        config.replace("run_as = \"postgres\"", "")
    }
}

#[test]
fn pgpools_wd_authkey_is_written_beside_the_output_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let conf = dir.path().join("pgpool.conf");
    let seed = std::fs::read_to_string(fixture("pgpool.conf")).expect("the seed's pgpool.conf");
    let authkey = "the-seeds-watchdog-key-1234";
    std::fs::write(
        &conf,
        seed.replace("wd_authkey = ''", &format!("wd_authkey = '{authkey}'")),
    )
    .expect("write pgpool.conf");
    let out = dir.path().join("pgha.toml");
    let imported = pgha(&["import-pgpool", path(&conf), "-o", path(&out)]);
    assert!(imported.status.success(), "{}", text(&imported.stderr));

    let key = dir.path().join("watchdog.key");
    assert_eq!(
        std::fs::read_to_string(&key).expect("watchdog.key written"),
        format!("{authkey}\n")
    );
    let mode = std::fs::metadata(&key)
        .expect("its metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let toml_text = std::fs::read_to_string(&out).expect("pgha.toml written");
    assert!(
        !toml_text.contains(authkey),
        "the key is never in pgha.toml"
    );
    std::fs::write(&out, runnable_here(&toml_text)).expect("rewrite pgha.toml");

    // No step left for the operator: check-config accepts it as written.
    let checked = pgha(&["check-config", "--config", path(&out)]);
    assert!(checked.status.success(), "{}", text(&checked.stderr));

    // A second import does not replace the key without --force.
    let again = pgha(&["import-pgpool", path(&conf), "-o", path(&out)]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn without_an_output_file_the_toml_goes_to_stdout() {
    let conf = fixture("pgpool.conf");
    let printed = pgha(&["import-pgpool", path(&conf)]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let toml_text = text(&printed.stdout);
    let table: toml::Table = toml::from_str(&toml_text).expect("valid TOML on stdout");
    assert_eq!(table["node"].as_array().map(Vec::len), Some(2));
    // Without pool_hba.conf, the change in who gets in is said.
    assert!(
        text(&printed.stderr).contains("lets every client in"),
        "{}",
        text(&printed.stderr)
    );

    // The hba and auth files need a place: an output file.
    let hba = fixture("pool_hba.conf");
    let refused = pgha(&["import-pgpool", path(&conf), path(&hba)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("-o OUT"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn a_malformed_pgpool_conf_is_refused_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conf = dir.path().join("pgpool.conf");
    std::fs::write(
        &conf,
        "port = 9999\nbackend_hostname0 = '10.0.0.1\nload_balance_mode = on\nfailover_command = /bin/failover.sh %d\n",
    )
    .expect("write the file");
    let out = dir.path().join("pgha.toml");
    let refused = pgha(&["import-pgpool", path(&conf), "-o", path(&out)]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{}:2: backend_hostname0:", conf.display())),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{}:4: failover_command:", conf.display())),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written for a malformed input");

    let missing = pgha(&["import-pgpool", path(&dir.path().join("nope.conf"))]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("nope.conf: cannot read it"));
}

#[test]
fn existing_files_are_replaced_only_with_force() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = import_seed(dir.path());
    assert!(first.status.success(), "{}", text(&first.stderr));
    let again = import_seed(dir.path());
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    let (conf, out) = (fixture("pgpool.conf"), dir.path().join("pgha.toml"));
    let forced = pgha(&["import-pgpool", path(&conf), "-o", path(&out), "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
}

#[test]
fn pgpool_42s_node_id_file_beside_pgpool_conf_names_this_host() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conf = dir.path().join("pgpool.conf");
    std::fs::write(
        &conf,
        "use_watchdog = on\nhostname0 = '10.0.0.1'\nwd_port0 = 9000\n\
         hostname1 = '10.0.0.2'\nwd_port1 = 9000\nbackend_hostname0 = '10.0.0.1'\n\
         backend_port0 = 5432\nbackend_hostname1 = '10.0.0.2'\nbackend_port1 = 5432\n\
         backend_data_directory1 = '/pg/data'\n",
    )
    .expect("write pgpool.conf");
    std::fs::write(dir.path().join("pgpool_node_id"), "1\n").expect("write pgpool_node_id");
    let printed = pgha(&["import-pgpool", path(&conf)]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let table: toml::Table = toml::from_str(&text(&printed.stdout)).expect("valid TOML");
    assert_eq!(table["watchdog"]["id"].as_integer(), Some(2));
    assert_eq!(table["local"]["node"].as_str(), Some("node1"));
    assert_eq!(table["local"]["data_dir"].as_str(), Some("/pg/data"));

    // A file that holds no number stops the import at its line.
    std::fs::write(dir.path().join("pgpool_node_id"), "# this host\nB\n").expect("rewrite it");
    let refused = pgha(&["import-pgpool", path(&conf)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("pgpool_node_id:2: \"B\" is not a pgpool node id"),
        "{}",
        text(&refused.stderr)
    );
}
